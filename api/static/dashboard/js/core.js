// What every page uses: the API client, strings in two languages, times in a zone, DOM building,
// colours, and the live connection (docs/dashboard.md). No framework and no build step.

export const ROOT = document.querySelector('meta[name="pw-root"]')?.content ?? "";
export const API = `${ROOT}/api/v1`;

// ---------------------------------------------------------------- strings

const STRINGS = { zh: {}, en: {} };

/** Add a page's strings: {zh: {key: text}, en: {key: text}}; `{name}` in a text is a variable. */
export function addStrings(dict) {
  for (const lang of Object.keys(STRINGS)) Object.assign(STRINGS[lang], dict[lang] ?? {});
}

/** The language: ?lang= in the address, then the last choice, then Chinese. */
export function lang() {
  const asked = new URLSearchParams(location.search).get("lang");
  if (asked === "en" || asked === "zh") return asked;
  return localStorage.getItem("pw_lang") === "en" ? "en" : "zh";
}

export function setLang(value) {
  localStorage.setItem("pw_lang", value);
  const url = new URL(location.href);
  url.searchParams.delete("lang");
  location.replace(url);
}

/** The text of `key` in the page's language (the key itself when no string has it). */
export function t(key, vars = {}) {
  const text = STRINGS[lang()][key] ?? STRINGS.zh[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => (name in vars ? String(vars[name]) : `{${name}}`));
}

addStrings({
  zh: {
    "nav.province": "全省一张图", "nav.alerts": "告警", "nav.assessment": "考核排名", "nav.screen": "大屏",
    "nav.signin": "登录", "nav.signout": "退出", "nav.api": "API 文档",
    "live.ok": "实时", "live.connecting": "连接中…", "live.broken": "连接中断，正在重连…",
    "state.compliant": "达标", "state.exceedance": "超标未消除", "state.data_problem": "数据异常",
    "state.offline": "离线", "state.no_stations": "无站点",
    "severity.advisory": "提示", "severity.warning": "一般", "severity.major": "较重", "severity.critical": "严重",
    "verdict.compliant": "达标", "verdict.exceedance": "超标", "verdict.insufficient_data": "数据不足",
    "family.exceedance": "超标", "family.early_warning": "超标预警", "family.data_quality": "数据质量",
    "family.suspicious": "数据可疑", "family.watchdog": "监控异常", "family.kpi": "考核指标未达标",
    "kind.wastewater_inlet": "污水处理厂进口", "kind.wastewater_outlet": "废水排放口",
    "kind.ambient_air": "环境空气站", "kind.stack": "废气排放口",
    "error.load": "加载失败：{detail}", "error.notfound": "未找到或无权查看", "none": "—",
    "role.admin": "管理员", "role.bureau": "生态环境局", "role.operator": "园区运维", "role.enterprise": "企业",
    "role.inspector": "检查人员（只读）", "who.local": "本机只读访问",
  },
  en: {
    "nav.province": "Province map", "nav.alerts": "Alerts", "nav.assessment": "Assessment", "nav.screen": "Big screen",
    "nav.signin": "Sign in", "nav.signout": "Sign out", "nav.api": "API docs",
    "live.ok": "Live", "live.connecting": "Connecting…", "live.broken": "Connection lost, reconnecting…",
    "state.compliant": "Compliant", "state.exceedance": "Exceedance open", "state.data_problem": "Data problem",
    "state.offline": "Offline", "state.no_stations": "No stations",
    "severity.advisory": "Advisory", "severity.warning": "Warning", "severity.major": "Major", "severity.critical": "Critical",
    "verdict.compliant": "Compliant", "verdict.exceedance": "Exceedance", "verdict.insufficient_data": "Insufficient data",
    "family.exceedance": "Exceedance", "family.early_warning": "Early warning", "family.data_quality": "Data quality",
    "family.suspicious": "Suspicious data", "family.watchdog": "Watchdog", "family.kpi": "KPI below target",
    "kind.wastewater_inlet": "WWTP inlet", "kind.wastewater_outlet": "Wastewater outlet",
    "kind.ambient_air": "Ambient air", "kind.stack": "Stack",
    "error.load": "Could not load: {detail}", "error.notfound": "Not found, or not yours to see", "none": "—",
    "role.admin": "Administrator", "role.bureau": "Bureau", "role.operator": "Park operator", "role.enterprise": "Enterprise",
    "role.inspector": "Inspector (read-only)", "who.local": "Local read-only view",
  },
});

// ---------------------------------------------------------------- colours

export const STATE_COLORS = {
  compliant: "#2e9d5b", exceedance: "#d93025", data_problem: "#f29900", offline: "#80868b", no_stations: "#bdc1c6",
};
export const SEVERITY_COLORS = { advisory: "#5f6368", warning: "#f29900", major: "#e8710a", critical: "#d93025" };
export const VERDICT_COLORS = { compliant: "#2e9d5b", exceedance: "#d93025", insufficient_data: "#9aa0a6" };

// ---------------------------------------------------------------- the API

/** An API error: `status`, the envelope's `code` and `detail`. */
export class ApiFailure extends Error {
  constructor(status, code, detail) {
    super(detail || code || `HTTP ${status}`);
    this.status = status;
    this.code = code;
    this.detail = detail;
  }
}

function url(path, params) {
  const u = new URL(`${API}${path}`, location.origin);
  for (const [k, v] of Object.entries(params ?? {})) {
    if (v === undefined || v === null || v === "") continue;
    for (const one of Array.isArray(v) ? v : [v]) u.searchParams.append(k, String(one));
  }
  return u;
}

async function answer(response) {
  if (response.status === 204) return null;
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (response.ok) return body;
  // the API's envelope: {"error": code, "detail": text} (docs/api.md)
  const problem = typeof body?.error === "string" ? { code: body.error, detail: body.detail } : (body ?? {});
  if (response.status === 401 && !location.pathname.endsWith("/login")) {
    const next = location.pathname + location.search;
    location.assign(`${ROOT}/login?next=${encodeURIComponent(next)}`);
  }
  throw new ApiFailure(response.status, problem.code, typeof problem.detail === "string" ? problem.detail : problem.message);
}

/** GET /api/v1{path} with query `params`; the JSON body, or an ApiFailure (401 goes to sign-in). */
export async function api(path, params = {}, { signal } = {}) {
  const response = await fetch(url(path, params), {
    credentials: "same-origin", headers: { Accept: "application/json" }, signal,
  });
  return answer(response);
}

/** A change (POST/DELETE) with the session's CSRF token. */
export async function send(method, path, body = undefined) {
  const headers = { Accept: "application/json", "X-CSRF-Token": localStorage.getItem("pw_csrf") ?? "" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(url(path), {
    method, credentials: "same-origin", headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  return answer(response);
}

let whoPromise = null;
/** The caller (GET /session), fetched once a page. */
export function whoami() {
  whoPromise ??= api("/session");
  return whoPromise;
}

/** Whether the caller's role grants `permission` (the API's own list). */
export async function may(permission) {
  try {
    return (await whoami()).permissions.includes(permission);
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------- formatting

const formatters = new Map();
function formatter(timeZone, withSeconds) {
  const key = `${timeZone}|${withSeconds}`;
  if (!formatters.has(key)) {
    formatters.set(key, new Intl.DateTimeFormat("sv-SE", {
      timeZone, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
      second: withSeconds ? "2-digit" : undefined, hourCycle: "h23",
    }));
  }
  return formatters.get(key);
}

/** An ISO time as `YYYY-MM-DD HH:mm` in `timeZone` (the station's; default Asia/Shanghai). */
export function fmtTime(iso, timeZone = "Asia/Shanghai", { seconds = false } = {}) {
  if (!iso) return t("none");
  const date = iso instanceof Date ? iso : new Date(iso);
  if (Number.isNaN(date.getTime())) return String(iso);
  return formatter(timeZone, seconds).format(date);
}

/** A number for people: at most `digits` decimals, no trailing zeros; "—" for null. */
const numberFormats = new Map();
// toLocaleString builds a formatter per call: 30-60 ms of a cold province page's 330 numbers.
function numberFormat(digits) {
  const key = `${lang()}|${digits}`;
  if (!numberFormats.has(key)) {
    numberFormats.set(key, new Intl.NumberFormat(lang() === "en" ? "en-US" : "zh-CN", { maximumFractionDigits: digits }));
  }
  return numberFormats.get(key);
}

export function fmtNum(value, digits = 3) {
  if (value === null || value === undefined || Number.isNaN(value)) return t("none");
  if (Array.isArray(value)) return value.map((v) => fmtNum(v, digits)).join("–");
  return numberFormat(digits).format(Number(value));
}

/** A parameter's name in the page's language, from a row carrying the API's names. */
export function paramName(row) {
  const zh = row.parameter_name_zh, en = row.parameter_name;
  return (lang() === "zh" ? zh || en : en || zh) || row.parameter || row.code || "";
}

// ---------------------------------------------------------------- DOM

/** An element: h("a", {href, class, onclick}, child, ...). Text is text: nothing is parsed as HTML. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "style" && typeof v === "object") Object.assign(el.style, v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** A link to a dashboard page (a path under ROOT). */
export function link(path, ...children) {
  return h("a", { href: `${ROOT}${path}` }, ...children);
}

/** A coloured pill: a state, severity or verdict. */
export function badge(kind, value, colors) {
  return h("span", { class: `badge ${kind}-${value}`, style: { background: colors[value] ?? "#9aa0a6" } },
    t(`${kind}.${value}`));
}

/** An error shown in place of what could not be loaded. */
export function failure(error) {
  const text = error?.status === 404 ? t("error.notfound") : t("error.load", { detail: error?.message ?? error });
  return h("p", { class: "error", role: "alert" }, text);
}

/** Run `fn` at most once per `ms` however often it is asked for (the last ask is never lost). */
export function throttle(fn, ms) {
  let timer = null, again = false, running = false;
  const run = async () => {
    running = true;
    try {
      await fn();
    } catch (e) {
      console.warn("refresh failed", e);
    } finally {
      running = false;
      timer = setTimeout(() => {
        timer = null;
        if (again) { again = false; ask(); }
      }, ms);
    }
  };
  const ask = () => {
    if (timer !== null || running) { again = true; return; }
    run();
  };
  return ask;
}

// ---------------------------------------------------------------- live

// Reconnect waits: EventSource retries by itself after a dropped stream, but not after an error
// answer (a restarting server's 502/503), so a closed source is remade with these waits.
const RECONNECT_MS = [1000, 2000, 5000, 10000];

function setLive(state) {
  const el = document.getElementById("live");
  if (!el) return;
  el.dataset.state = state;
  el.textContent = t(`live.${state}`);
  document.body.classList.toggle("offline", state === "broken");
}

/**
 * Subscribe to a server-sent event stream under /api/v1: `handlers` maps event names to functions
 * of the parsed data; `onopen` runs at each (re)connection, so a page can refetch what it missed.
 * Returns a function that closes it.
 */
export function subscribe(path, params, handlers, { onopen, silentMs = 0 } = {}) {
  let source = null, closed = false, attempt = 0, retryTimer = null, heard = 0, watchdog = null;
  const reopen = () => {
    source?.close();
    setLive("broken");
    clearTimeout(retryTimer);
    const wait = RECONNECT_MS[Math.min(attempt++, RECONNECT_MS.length - 1)];
    retryTimer = setTimeout(open, wait);
  };
  const open = () => {
    if (closed) return;
    setLive("connecting");
    source = new EventSource(url(path, params), { withCredentials: true });
    heard = Date.now();
    source.onopen = () => {
      attempt = 0;
      heard = Date.now();
      setLive("ok");
      onopen?.();
    };
    source.onerror = () => {
      setLive("broken");
      if (source.readyState === EventSource.CLOSED) reopen();
    };
    // A stream that pings (silentMs): a cable pulled mid-stream sends no error, only silence.
    if (silentMs) source.addEventListener("ping", () => { heard = Date.now(); });
    for (const [name, fn] of Object.entries(handlers)) {
      source.addEventListener(name, (ev) => {
        heard = Date.now();
        let data = null;
        try { data = JSON.parse(ev.data); } catch { data = ev.data; }
        fn(data, ev);
      });
    }
    source.addEventListener("end", () => {  // the key or session ended: sign in again
      closed = true;
      source.close();
      location.assign(`${ROOT}/login?next=${encodeURIComponent(location.pathname + location.search)}`);
    });
  };
  open();
  if (silentMs) {
    watchdog = setInterval(() => {
      if (!closed && source?.readyState === EventSource.OPEN && Date.now() - heard > silentMs) reopen();
    }, Math.min(silentMs, 5000));
  }
  // The machine's own network going away is said at once, and coming back reconnects at once.
  const offline = () => { if (!closed) { source?.close(); clearTimeout(retryTimer); setLive("broken"); } };
  const online = () => { if (!closed) { attempt = 0; clearTimeout(retryTimer); open(); } };
  window.addEventListener("offline", offline);
  window.addEventListener("online", online);
  return () => {
    closed = true;
    clearTimeout(retryTimer);
    clearInterval(watchdog);
    window.removeEventListener("offline", offline);
    window.removeEventListener("online", online);
    source?.close();
  };
}

/**
 * Call `refresh` (throttled to one call per `ms`) on every change of verdicts or alerts, and on
 * reconnect: the stream's first event at each connection is a change, which covers what a break
 * missed (refreshing at `open` as well fetched everything twice).
 */
// The change stream pings every 15 s (api/routes/dashboard.py KEEPALIVE_S): this long without a
// word, the connection is taken for dead and remade.
const CHANGE_STREAM_SILENT_MS = 40000;

export function onChange(refresh, ms = 500) {
  const ask = throttle(refresh, ms);
  return subscribe("/dashboard/stream", {}, { change: () => ask() }, { silentMs: CHANGE_STREAM_SILENT_MS });
}

/** Wait for ECharts (loaded with `defer` beside the module). */
export function charts() {
  if (window.echarts) return Promise.resolve(window.echarts);
  // loaded `async` beside the module (index.html), so neither waits for the other
  const script = document.querySelector('script[src$="/echarts.min.js"]');
  return new Promise((resolve, reject) => {
    script.addEventListener("load", () => resolve(window.echarts), { once: true });
    script.addEventListener("error", () => reject(new Error("echarts.min.js did not load")), { once: true });
  });
}

/** An ECharts instance on `el` that follows the window's size; dispose it with the page. */
export async function chartOn(el, { dark = false } = {}) {
  const echarts = await charts();
  const chart = echarts.init(el, dark ? "dark" : null, { renderer: "canvas" });
  const observer = new ResizeObserver(() => chart.resize());
  observer.observe(el);
  chart.__pwDispose = () => { observer.disconnect(); chart.dispose(); };
  return chart;
}
