// Sign in with a user account: the session cookie, and the CSRF token kept for changes.
import { ROOT, addStrings, h, t } from "../core.js";

addStrings({
  zh: { "login.title": "登录 parkwatch", "login.user": "用户名", "login.password": "密码", "login.submit": "登录",
        "login.failed": "用户名或密码错误", "login.locked": "尝试次数过多，请稍后再试" },
  en: { "login.title": "Sign in to parkwatch", "login.user": "User name", "login.password": "Password", "login.submit": "Sign in",
        "login.failed": "Wrong user name or password", "login.locked": "Too many attempts; wait a minute" },
});

function next() {
  const asked = new URLSearchParams(location.search).get("next") ?? "";
  // only a path of this dashboard: never another site
  return asked.startsWith("/") && !asked.startsWith("//") ? asked : `${ROOT}/`;
}

export async function render(main) {
  const message = h("p", { class: "error", role: "alert", hidden: true });
  const user = h("input", { name: "username", autocomplete: "username", required: true, "aria-label": t("login.user"), placeholder: t("login.user") });
  const password = h("input", { name: "password", type: "password", autocomplete: "current-password", required: true, "aria-label": t("login.password"), placeholder: t("login.password") });
  const form = h("form", { class: "signin panel" }, h("h1", {}, t("login.title")), user, password,
    h("button", { type: "submit" }, t("login.submit")), message);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    message.hidden = true;
    const response = await fetch(`${ROOT}/api/v1/session`, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ username: user.value, password: password.value }),
    });
    if (response.ok) {
      const body = await response.json();
      localStorage.setItem("pw_csrf", body.csrf_token);
      location.assign(next());
      return;
    }
    message.textContent = response.status === 429 ? t("login.locked") : t("login.failed");
    message.hidden = false;
  });
  main.replaceChildren(form);
  user.focus();
}
