// The shell: picks the page from the path, draws the header (navigation, who, language, live state).
import { ROOT, h, lang, setLang, t, whoami, send, failure } from "./core.js";

// path pattern → page module (each exports `render(main, params)`, which may return a cleanup function)
const ROUTES = [
  [/^\/$/, "province"],
  [/^\/parks\/([^/]+)$/, "park", ["park_id"]],
  [/^\/stations\/([^/]+)$/, "station", ["station_id"]],
  [/^\/alerts$/, "alerts"],
  [/^\/assessment$/, "assessment"],
  [/^\/screen$/, "screen"],
  [/^\/login$/, "login"],
];

function route() {
  const path = location.pathname.slice(ROOT.length) || "/";
  for (const [pattern, name, keys = []] of ROUTES) {
    const m = pattern.exec(path);
    if (m) return { name, params: Object.fromEntries(keys.map((k, i) => [k, decodeURIComponent(m[i + 1])])) };
  }
  return { name: "province", params: {} };
}

async function header(page) {
  document.documentElement.lang = lang() === "en" ? "en" : "zh-CN";
  const nav = document.getElementById("nav");
  const items = [["/", "nav.province"], ["/alerts", "nav.alerts"], ["/assessment", "nav.assessment"], ["/screen", "nav.screen"], ["/docs", "nav.api"]];
  nav.replaceChildren(...items.map(([path, key]) =>
    h("a", { href: `${ROOT}${path}`, class: `/${page}` === path || (page === "province" && path === "/") ? "current" : "" }, t(key))));
  const button = document.getElementById("lang");
  button.textContent = lang() === "en" ? "中文" : "EN";
  button.onclick = () => setLang(lang() === "en" ? "zh" : "en");
  if (page === "login") return;
  const who = document.getElementById("who");
  try {
    const me = await whoami();
    const local = me.kind === "key" && me.name === "local-viewer";
    who.replaceChildren(
      h("span", { class: "who-name" }, local ? t("who.local") : me.name), " ",
      h("span", { class: "who-role" }, t(`role.${me.role}`)), " ",
      me.kind === "user"
        ? h("button", { type: "button", class: "link", onclick: signOut }, t("nav.signout"))
        : h("a", { href: `${ROOT}/login` }, t("nav.signin")),
    );
  } catch {
    who.replaceChildren();
  }
}

async function signOut() {
  try { await send("DELETE", "/session"); } catch { /* already gone */ }
  localStorage.removeItem("pw_csrf");
  location.assign(`${ROOT}/login`);
}

async function main() {
  const { name, params } = route();
  document.body.dataset.page = name;
  const container = document.getElementById("page");
  header(name);
  try {
    const module = await import(`./pages/${name}.js`);
    container.replaceChildren();
    await module.render(container, params);
  } catch (error) {
    console.error(error);
    container.replaceChildren(failure(error));
  } finally {
    container.setAttribute("aria-busy", "false");
  }
}

main();
