// The alerts page (/alerts): a filtered list kept live from /api/v1/events, and one alert's timeline and actions.
import {
  SEVERITY_COLORS, addStrings, api, badge, failure, fmtNum, fmtTime, h, lang, link, may, paramName, send,
  subscribe, t, throttle, whoami,
} from "../core.js";

addStrings({
  zh: {
    "alerts.title": "告警", "alerts.scope": "查看范围：{scope}", "alerts.scope.all": "全部", "alerts.scope.province": "全省",
    "alerts.readonly": "只读，不能处理告警",
    "alerts.f.status": "状态", "alerts.f.severity": "等级", "alerts.f.family": "类别", "alerts.f.park": "园区",
    "alerts.f.station": "站点", "alerts.f.any": "全部", "alerts.f.open": "未关闭", "alerts.f.parameter": "因子：{value}",
    "alerts.f.reset": "清除筛选",
    "alerts.col.severity": "等级", "alerts.col.family": "类别", "alerts.col.station": "站点", "alerts.col.parameter": "因子",
    "alerts.col.value": "监测值 / 限值", "alerts.col.status": "状态", "alerts.col.first": "开始", "alerts.col.last": "最近",
    "alerts.count": "已显示 {n} 条", "alerts.count_more": "已显示 {n} 条，还有更多", "alerts.more": "加载更多",
    "alerts.empty": "没有符合条件的告警", "alerts.pick": "选择一条告警查看详情与处理记录",
    "alerts.mark.ack": "已确认", "alerts.mark.verified": "已核实", "alerts.mark.late": "迟报",
    "alerts.multiple": "超标 {m} 倍", "alerts.park_alert": "园区整体",
    "status.pending": "待定", "status.active": "生效", "status.cleared": "已解除",
    "alerts.d.close": "关闭", "alerts.d.station": "站点", "alerts.d.park": "园区", "alerts.d.value": "监测值",
    "alerts.d.limit": "限值", "alerts.d.standard": "依据", "alerts.d.first": "开始", "alerts.d.last": "最近",
    "alerts.d.raised": "发现", "alerts.d.activated": "生效", "alerts.d.cleared": "解除", "alerts.d.occurrences": "次数",
    "alerts.d.ack": "确认", "alerts.d.verified": "核实", "alerts.d.explanation": "情况说明",
    "alerts.d.explanation_due": "情况说明截止", "alerts.d.explanation_overdue": "（已逾期）", "alerts.d.timezone": "时区",
    "alerts.d.by": "{who} 于 {time}", "alerts.d.meaning": "说明", "alerts.d.timeline": "处理时间线",
    "alerts.d.late": "迟报（数据补传或修正后发现）",
    "alerts.a.comment": "备注（可选）", "alerts.a.ack": "确认", "alerts.a.verify": "核实",
    "alerts.a.verify_again": "更正核实结论", "alerts.a.choose": "核实结论", "alerts.a.busy": "提交中…",
    "alerts.err.already_acknowledged": "该告警已被确认", "alerts.err.alert_cleared": "该告警已解除，不能再确认",
    "alerts.err.forbidden": "无权执行此操作", "alerts.err.csrf_failed": "会话校验失败，请重新登录",
    "alerts.err.unknown_alert": "告警不存在或无权查看",
    "alerts.err.409": "操作冲突：告警状态已变化（可能已被他人处理）", "alerts.err.403": "无权执行此操作",
    "alerts.err.404": "告警不存在或无权查看", "alerts.err.422": "提交内容不符合要求",
    "ev.raised": "发现", "ev.activated": "生效", "ev.repeated": "再次超标", "ev.revised": "数据修正",
    "ev.window_revised": "时段修正", "ev.severity_raised": "等级升高", "ev.acknowledged": "确认", "ev.verified": "核实",
    "ev.explained": "情况说明", "ev.reviewed": "审核情况说明", "ev.reminder": "提醒", "ev.escalated": "升级督办",
    "ev.explanation_overdue": "情况说明逾期", "ev.notify_failed": "通知失败", "ev.cleared": "解除", "ev.notified": "通知",
    "notice.sent": "已发送", "notice.queued": "排队中", "notice.sending": "发送中", "notice.failed": "失败",
    "notice.muted": "已静默",
    "ver.genuine_exceedance": "确属超标", "ver.instrument_fault": "仪器故障", "ver.maintenance": "运维检修",
    "ver.data_falsification_suspected": "疑似数据弄虚作假", "ver.false_alarm": "误报", "ver.other": "其他",
    "review.accepted": "通过", "review.rejected": "退回",
    "clear.compliant": "监测值已恢复达标", "clear.judged": "时段已判定", "clear.receded": "均值已回落至限值以下",
    "clear.window_ended": "时段已结束", "clear.values_move": "监测值恢复波动", "clear.data_valid_again": "数据已恢复有效",
    "clear.pattern_ended": "可疑模式已不再出现", "clear.revised": "数据修正后不再超标", "clear.data_returned": "站点数据已恢复",
    "clear.resolved": "已人工处置", "clear.values_in_range": "不再出现超量程数值", "clear.clock_on_time": "时钟已恢复准确",
    "clear.one_path": "已仅经一条路径上报", "clear.target_met": "指标已回到目标以内",
    "rule.exceedance.hour": "小时均值", "rule.exceedance.day": "日均值", "rule.exceedance.1h": "1小时平均",
    "rule.exceedance.8h": "8小时滑动平均", "rule.exceedance.24h": "24小时平均", "rule.early_warning.hour": "小时（进行中）",
    "rule.early_warning.day": "日（进行中）", "rule.data_quality.offline": "站点离线",
    "rule.data_quality.missing_parameter": "因子缺测", "rule.data_quality.flatline": "数据恒值",
    "rule.data_quality.invalid_flags": "数据标记异常", "rule.data_quality.out_of_range": "数据超量程",
    "rule.data_quality.clock_drift": "数采仪时钟偏差", "rule.data_quality.two_paths": "双路径上报",
    "rule.suspicious.pinned_below_limit": "长期贴近限值", "rule.suspicious.flag_near_limit": "近限值后标记无效",
    "rule.suspicious.drop_with_flow_stop": "断流时浓度骤降",
  },
  en: {
    "alerts.title": "Alerts", "alerts.scope": "You see: {scope}", "alerts.scope.all": "everything",
    "alerts.scope.province": "the whole province", "alerts.readonly": "read-only: you cannot act on alerts",
    "alerts.f.status": "Status", "alerts.f.severity": "Severity", "alerts.f.family": "Family", "alerts.f.park": "Park",
    "alerts.f.station": "Station", "alerts.f.any": "All", "alerts.f.open": "Open", "alerts.f.parameter": "Parameter: {value}",
    "alerts.f.reset": "Clear filters",
    "alerts.col.severity": "Severity", "alerts.col.family": "Family", "alerts.col.station": "Station",
    "alerts.col.parameter": "Parameter", "alerts.col.value": "Value / limit", "alerts.col.status": "Status",
    "alerts.col.first": "First seen", "alerts.col.last": "Last seen",
    "alerts.count": "{n} shown", "alerts.count_more": "{n} shown, more to load", "alerts.more": "Load more",
    "alerts.empty": "No alerts match", "alerts.pick": "Select an alert to see its timeline and act on it",
    "alerts.mark.ack": "Acknowledged", "alerts.mark.verified": "Verified", "alerts.mark.late": "Late",
    "alerts.multiple": "{m}× over", "alerts.park_alert": "Whole park",
    "status.pending": "Pending", "status.active": "Active", "status.cleared": "Cleared",
    "alerts.d.close": "Close", "alerts.d.station": "Station", "alerts.d.park": "Park", "alerts.d.value": "Value",
    "alerts.d.limit": "Limit", "alerts.d.standard": "Standard", "alerts.d.first": "First seen", "alerts.d.last": "Last seen",
    "alerts.d.raised": "Raised", "alerts.d.activated": "Activated", "alerts.d.cleared": "Cleared",
    "alerts.d.occurrences": "Occurrences", "alerts.d.ack": "Acknowledged", "alerts.d.verified": "Verified",
    "alerts.d.explanation": "Explanation", "alerts.d.explanation_due": "Explanation due",
    "alerts.d.explanation_overdue": " (overdue)", "alerts.d.timezone": "Time zone", "alerts.d.by": "{who} at {time}",
    "alerts.d.meaning": "What it means", "alerts.d.timeline": "Timeline",
    "alerts.d.late": "Found late (back-filled or revised data)",
    "alerts.a.comment": "Comment (optional)", "alerts.a.ack": "Acknowledge", "alerts.a.verify": "Verify",
    "alerts.a.verify_again": "Correct the verification", "alerts.a.choose": "Finding", "alerts.a.busy": "Sending…",
    "alerts.err.already_acknowledged": "Already acknowledged", "alerts.err.alert_cleared": "The alert has cleared",
    "alerts.err.forbidden": "You may not do this", "alerts.err.csrf_failed": "Session check failed; sign in again",
    "alerts.err.unknown_alert": "No such alert, or not yours to see",
    "alerts.err.409": "Conflict: the alert changed (someone may have acted on it)", "alerts.err.403": "You may not do this",
    "alerts.err.404": "No such alert, or not yours to see", "alerts.err.422": "The request was not accepted",
    "ev.raised": "Raised", "ev.activated": "Activated", "ev.repeated": "Repeated", "ev.revised": "Revised",
    "ev.window_revised": "Window revised", "ev.severity_raised": "Severity raised", "ev.acknowledged": "Acknowledged",
    "ev.verified": "Verified", "ev.explained": "Explained", "ev.reviewed": "Explanation reviewed", "ev.reminder": "Reminder",
    "ev.escalated": "Escalated", "ev.explanation_overdue": "Explanation overdue", "ev.notify_failed": "Notice failed",
    "ev.cleared": "Cleared", "ev.notified": "Notice",
    "notice.sent": "sent", "notice.queued": "queued", "notice.sending": "sending", "notice.failed": "failed",
    "notice.muted": "muted",
    "ver.genuine_exceedance": "Genuine exceedance", "ver.instrument_fault": "Instrument fault",
    "ver.maintenance": "Maintenance", "ver.data_falsification_suspected": "Data falsification suspected",
    "ver.false_alarm": "False alarm", "ver.other": "Other",
    "review.accepted": "accepted", "review.rejected": "rejected",
    "clear.compliant": "compliant again", "clear.judged": "window judged", "clear.receded": "fell back under the limit",
    "clear.window_ended": "window ended", "clear.values_move": "values move again", "clear.data_valid_again": "data valid again",
    "clear.pattern_ended": "pattern no longer seen", "clear.revised": "revised away", "clear.data_returned": "data returned",
    "clear.resolved": "resolved by hand", "clear.values_in_range": "values in range again", "clear.clock_on_time": "clock on time",
    "clear.one_path": "one way in again", "clear.target_met": "target met",
    "rule.exceedance.hour": "hourly mean", "rule.exceedance.day": "daily mean", "rule.exceedance.1h": "1-hour mean",
    "rule.exceedance.8h": "8-hour mean", "rule.exceedance.24h": "24-hour mean", "rule.early_warning.hour": "hour (running)",
    "rule.early_warning.day": "day (running)", "rule.data_quality.offline": "offline",
    "rule.data_quality.missing_parameter": "missing parameter", "rule.data_quality.flatline": "flat values",
    "rule.data_quality.invalid_flags": "invalid flags", "rule.data_quality.out_of_range": "out of range",
    "rule.data_quality.clock_drift": "clock drift", "rule.data_quality.two_paths": "two paths",
    "rule.suspicious.pinned_below_limit": "pinned below limit", "rule.suspicious.flag_near_limit": "flagged near limit",
    "rule.suspicious.drop_with_flow_stop": "drop with flow stop",
  },
});

const STATUSES = ["pending", "active", "cleared"];
const STATUS_COLORS = { pending: "#f29900", active: "#d93025", cleared: "#80868b" };
const SEVERITIES = ["critical", "major", "warning", "advisory"];
const FAMILIES = ["exceedance", "early_warning", "data_quality", "suspicious", "watchdog", "kpi"];
// VerifyBody.verification in the API (api/routes/alerts.py Verification); the labels are ours.
const VERIFICATIONS = [
  "genuine_exceedance", "instrument_fault", "maintenance", "data_falsification_suspected", "false_alarm", "other",
];
const DEFAULT_TZ = "Asia/Shanghai";
const PAGE_SIZE = 50;
// Several events of one alert often commit together (raised + activated, ack + its notice): one fetch serves them.
const EVENT_COALESCE_MS = 150;
const FLASH_MS = 3000;
const STATION_CACHE_MS = 10 * 60 * 1000;

// ---------------------------------------------------------------- filters <-> address

const list = (v) => (v ? v.split(",").map((x) => x.trim()).filter(Boolean) : []);

function readFilters() {
  const q = new URLSearchParams(location.search);
  const limit = Number.parseInt(q.get("limit") ?? "", 10);
  return {
    status: q.get("status") ?? "",
    severity: q.get("severity") ?? "",
    family: q.get("family") ?? q.get("rule") ?? "",
    park_id: q.get("park_id") ?? "",
    station_id: q.get("station_id") ?? "",
    parameter: q.get("parameter") ?? "",
    limit: limit >= 1 && limit <= 1000 ? limit : PAGE_SIZE,
  };
}

function writeAddress(filters, alertId) {
  const u = new URL(location.href);
  for (const key of ["status", "severity", "family", "rule", "park_id", "station_id", "parameter", "alert_id"]) {
    u.searchParams.delete(key);
  }
  for (const key of ["status", "severity", "family", "park_id", "station_id", "parameter"]) {
    if (filters[key]) u.searchParams.set(key, filters[key]);
  }
  if (alertId) u.searchParams.set("alert_id", String(alertId));
  history.replaceState(null, "", u);
}

// "open" is the page's word for pending or active; the API takes the states themselves.
function statusParam(value) {
  return list(value).flatMap((s) => (s === "open" ? ["pending", "active"] : [s]));
}

function query(filters) {
  return {
    status: statusParam(filters.status), severity: list(filters.severity), rule: list(filters.family),
    park_id: filters.park_id || undefined, station_id: list(filters.station_id), parameter: list(filters.parameter),
    limit: filters.limit,
  };
}

/** Whether an alert (from the list, the detail or an event) belongs under the filters, as the API decides it. */
function matches(filters, a) {
  const statuses = statusParam(filters.status), severities = list(filters.severity), rules = list(filters.family);
  const stations = list(filters.station_id);
  if (statuses.length && !statuses.includes(a.status)) return false;
  if (severities.length && !severities.includes(a.severity)) return false;
  if (rules.length && !rules.includes(a.rule) && !rules.includes(a.family)) return false;
  if (filters.park_id && a.park_id !== filters.park_id) return false;
  if (stations.length && !stations.includes(a.station_id)) return false;
  return true;
}

// ---------------------------------------------------------------- stations: names and time zones

// Stations change seldom and every page load would otherwise list them all again: kept a while per caller.
async function stationIndex(who, { fresh = false } = {}) {
  const key = `pw_alerts_stations:${who.kind}:${who.name}`;
  if (!fresh) {
    try {
      const kept = JSON.parse(sessionStorage.getItem(key) ?? "null");
      if (kept && Date.now() - kept.at < STATION_CACHE_MS) return new Map(kept.stations);
    } catch { /* a bad entry is refetched */ }
  }
  const body = await api("/stations");
  const stations = body.results.map((s) => [s.id, { name: s.name, park_id: s.park_id, timezone: s.timezone || DEFAULT_TZ }]);
  try { sessionStorage.setItem(key, JSON.stringify({ at: Date.now(), stations })); } catch { /* storage full: fine */ }
  return new Map(stations);
}

// ---------------------------------------------------------------- small pieces

function ruleLabel(rule) {
  const label = t(`rule.${rule}`);
  return label === `rule.${rule}` ? rule : label;
}

function familyLabel(family) {
  const label = t(`family.${family}`);
  return label === `family.${family}` ? family : label;
}

function textOr(key, fallback) {
  const s = t(key);
  return s === key ? fallback : s;
}

function valueText(a) {
  if (a.value === null && a.limit === null) return t("none");
  const unit = a.unit ? ` ${a.unit}` : "";
  const value = fmtNum(a.value), limit = a.limit === null ? t("none") : fmtNum(a.limit);
  return `${value} / ${limit}${unit}`;
}

function flash(el) {
  el.classList.add("alerts-new");
  el.animate?.([{ backgroundColor: "#fff3b0" }, { backgroundColor: "transparent" }], { duration: FLASH_MS, easing: "ease-in" });
  setTimeout(() => el.classList.remove("alerts-new"), FLASH_MS);
}

/** An API failure as people read it: our words for its code or status, then the API's own detail. */
function failureText(error) {
  const byCode = error?.code ? textOr(`alerts.err.${error.code}`, "") : "";
  const byStatus = error?.status ? textOr(`alerts.err.${error.status}`, "") : "";
  const said = byCode || byStatus;
  const detail = error?.detail || (said ? "" : error?.message) || "";
  const head = error?.status ? `${error.status}${error.code ? ` ${error.code}` : ""}` : "";
  return [head, said, detail].filter(Boolean).join(" · ");
}

// ---------------------------------------------------------------- the page

export async function render(main) {
  const filters = readFilters();
  let who = null;
  try { who = await whoami(); } catch { /* the list's own request will say what is wrong */ }
  const [parksBody, stations0, canAck, canVerify] = await Promise.all([
    api("/parks").catch(() => ({ results: [] })),
    who ? stationIndex(who).catch(() => new Map()) : new Map(),
    may("alerts.ack"), may("alerts.verify"),
  ]);
  let stations = stations0;
  const parks = new Map(parksBody.results.map((p) => [p.id, p]));

  const tz = (a) => stations.get(a.station_id)?.timezone ?? DEFAULT_TZ;
  const stationName = (id) => stations.get(id)?.name ?? id;

  // ---- scope note
  const scopeText = () => {
    if (!who) return "";
    const scopes = who.scopes ?? [];
    if (!scopes.length) return t("alerts.scope.all");
    return scopes.map((s) => {
      if (s.kind === "province") return t("alerts.scope.province");
      if (s.kind === "park") return parks.get(s.value)?.name ? `${parks.get(s.value).name}（${s.value}）` : s.value;
      if (s.kind === "station") return stationName(s.value);
      return s.value;
    }).join(lang() === "en" ? ", " : "、");
  };
  // Who the caller is shows in the header; here, what of the province this list can hold.
  const scopeNote = h("p", { class: "muted", id: "alerts-scope", dataset: { role: who?.role ?? "" } },
    who ? t("alerts.scope", { scope: scopeText() }) : null,
    who && !canAck && !canVerify ? ` · ${t("alerts.readonly")}` : null);

  // ---- toolbar
  const option = (value, label, current) => h("option", { value, selected: value === current }, label);
  const withCurrent = (options, current) =>
    current && !options.some(([v]) => v === current) ? [...options, [current, current]] : options;
  const select = (id, label, options, current) => h("label", {}, `${label} `,
    h("select", { id, name: id }, ...withCurrent(options, current).map(([v, l]) => option(v, l, current))));

  const statusSel = select("alerts-f-status", t("alerts.f.status"),
    [["", t("alerts.f.any")], ["open", t("alerts.f.open")], ...STATUSES.map((s) => [s, t(`status.${s}`)])], filters.status);
  const severitySel = select("alerts-f-severity", t("alerts.f.severity"),
    [["", t("alerts.f.any")], ...SEVERITIES.map((s) => [s, t(`severity.${s}`)])], filters.severity);
  const familySel = select("alerts-f-family", t("alerts.f.family"),
    [["", t("alerts.f.any")], ...FAMILIES.map((f) => [f, familyLabel(f)])], filters.family);
  const parkSel = select("alerts-f-park", t("alerts.f.park"),
    [["", t("alerts.f.any")], ...[...parks.values()].map((p) => [p.id, p.name])], filters.park_id);
  const stationBox = h("span", {});
  const stationOptions = () => {
    const rows = [...stations.entries()].filter(([, s]) => !filters.park_id || s.park_id === filters.park_id)
      .sort(([a], [b]) => a.localeCompare(b));
    return [["", t("alerts.f.any")], ...rows.map(([id, s]) => [id, s.name && s.name !== id ? `${s.name}（${id}）` : id])];
  };
  const drawStationSel = () => stationBox.replaceChildren(
    select("alerts-f-station", t("alerts.f.station"), stationOptions(), filters.station_id));
  drawStationSel();
  const parameterChip = h("span", {});
  const drawParameterChip = () => parameterChip.replaceChildren(...(filters.parameter
    ? [h("span", { class: "alerts-chip", id: "alerts-f-parameter" }, t("alerts.f.parameter", { value: filters.parameter }), " ",
      h("button", { type: "button", class: "link", "aria-label": "×", onclick: () => { filters.parameter = ""; changed(); } }, "×"))]
    : []));
  drawParameterChip();
  const reset = h("button", { type: "button", class: "link", id: "alerts-f-reset" }, t("alerts.f.reset"));
  const toolbar = h("div", { class: "toolbar", id: "alerts-toolbar" },
    statusSel, severitySel, familySel, parkSel, stationBox, parameterChip, reset);

  // ---- list
  const tbody = h("tbody", {});
  const table = h("table", { class: "data", id: "alerts-table" },
    h("thead", {}, h("tr", {}, ...["severity", "family", "station", "parameter", "value", "status", "first", "last"]
      .map((k) => h("th", {}, t(`alerts.col.${k}`))))),
    tbody);
  const count = h("span", { class: "muted", id: "alerts-count" });
  const more = h("button", { type: "button", id: "alerts-more", hidden: true }, t("alerts.more"));
  const listError = h("div", {});
  const detail = h("section", { class: "panel", id: "alert-detail", "aria-live": "polite" },
    h("p", { class: "muted" }, t("alerts.pick")));

  main.replaceChildren(
    h("h1", {}, t("alerts.title")), scopeNote, toolbar,
    h("div", { class: "grid cols-2 alerts-layout" },
      h("div", {}, listError, h("div", { class: "panel alerts-list" }, table,
        h("div", { class: "alerts-foot" }, count, " ", more))),
      h("div", {}, detail)),
  );

  const rows = new Map();          // alert id -> its row data
  let next = null, generation = 0, loadedOnce = false, loadedAt = 0;
  let selected = Number.parseInt(new URLSearchParams(location.search).get("alert_id") ?? "", 10) || null;

  const order = (a, b) => (Date.parse(b.raised_at) - Date.parse(a.raised_at)) || (b.id - a.id);

  // Date over time: two short lines leave the table room for its other columns.
  function timeCell(iso, zone) {
    const [day, clock] = fmtTime(iso, zone).split(" ");
    return h("td", { class: "alerts-time", title: zone }, h("span", { class: "alerts-day" }, day), clock ? h("span", {}, clock) : null);
  }

  function mark(kind, title, text) {
    return h("span", { class: `alerts-mark alerts-mark-${kind}`, title, dataset: { mark: kind } }, text);
  }

  function rowOf(a) {
    const zone = tz(a);
    const ack = a.acknowledged, ver = a.verified;
    const tr = h("tr", {
      tabindex: "0",
      class: [a.id === selected ? "selected" : "", a.status === "cleared" ? "alerts-cleared" : ""].join(" ").trim(),
      "aria-selected": a.id === selected ? "true" : "false",
      dataset: {
        alertId: String(a.id), status: a.status, severity: a.severity, family: a.family,
        acknowledged: ack ? "true" : "false", verified: ver ? "true" : "false",
      },
      onclick: (ev) => { if (!ev.target.closest("a")) choose(a.id); },
      onkeydown: (ev) => { if (ev.key === "Enter" && !ev.target.closest("a")) choose(a.id); },
    },
    h("td", {}, badge("severity", a.severity, SEVERITY_COLORS)),
    h("td", {}, familyLabel(a.family), h("div", { class: "muted alerts-rule" }, ruleLabel(a.rule))),
    h("td", {}, a.station_id
      ? link(`/stations/${encodeURIComponent(a.station_id)}`, stationName(a.station_id))
      : h("span", { class: "muted" }, parks.get(a.park_id)?.name ?? a.park_id, " · ", t("alerts.park_alert"))),
    h("td", {}, a.parameter ? paramName(a) : t("none")),
    h("td", { class: "num" }, valueText(a),
      a.exceedance_multiple ? h("div", { class: "alerts-multiple" }, t("alerts.multiple", { m: fmtNum(a.exceedance_multiple, 2) })) : null),
    h("td", {}, badge("status", a.status, STATUS_COLORS), h("div", { class: "alerts-marks" },
      ack ? mark("ack", t("alerts.d.by", { who: ack.by, time: fmtTime(ack.at, zone) }), `✓ ${t("alerts.mark.ack")}`) : null,
      ver ? mark("verified", `${t(`ver.${ver.verification}`)} · ${t("alerts.d.by", { who: ver.by, time: fmtTime(ver.at, zone) })}`,
        `◆ ${t("alerts.mark.verified")}`) : null,
      a.late ? mark("late", t("alerts.d.late"), t("alerts.mark.late")) : null)),
    timeCell(a.first_seen, zone),
    timeCell(a.last_seen, zone));
    return tr;
  }

  function drawCount() {
    const n = rows.size;
    count.textContent = t(next ? "alerts.count_more" : "alerts.count", { n: fmtNum(n) });
    more.hidden = !next;
    const empty = tbody.querySelector("tr.alerts-empty");
    if (!n && !empty) tbody.append(h("tr", { class: "alerts-empty" }, h("td", { colspan: "8", class: "muted" }, t("alerts.empty"))));
    if (n && empty) empty.remove();
  }

  function rowElement(id) {
    return tbody.querySelector(`tr[data-alert-id="${id}"]`);
  }

  /** Put an alert's row where it belongs (newest raised first), or take it out when the filters no longer hold it. */
  function place(a, { isNew = false } = {}) {
    const old = rowElement(a.id);
    if (!matches(filters, a)) {
      old?.remove();
      rows.delete(a.id);
      drawCount();
      return;
    }
    const fresh = rowOf(a);
    if (old) {
      old.replaceWith(fresh);
    } else {
      const all = [...rows.values()];
      const oldest = all.length ? all.reduce((x, y) => (order(x, y) < 0 ? y : x)) : null;
      // Older than the last row loaded with pages still to come: it turns up when the pages do.
      if (next && oldest && order(a, oldest) > 0) return;
      // before the newest of the rows older than it
      const before = all.filter((x) => order(x, a) > 0).sort(order)[0];
      tbody.insertBefore(fresh, before ? rowElement(before.id) : null);
    }
    rows.set(a.id, a);
    if (isNew || !old) flash(fresh);
    drawCount();
  }

  async function load({ append = false } = {}) {
    const mine = ++generation;
    if (!append) listError.replaceChildren();
    let body;
    try {
      body = await api("/alerts", { ...query(filters), cursor: append ? next : undefined });
    } catch (error) {
      if (mine === generation) listError.replaceChildren(failure(error));
      throw error;
    }
    if (mine !== generation) return;
    if (!append) {
      rows.clear();
      tbody.replaceChildren();
    }
    for (const a of body.results) {
      if (rows.has(a.id)) continue;
      rows.set(a.id, a);
      tbody.append(rowOf(a));
    }
    next = body.meta?.next ?? body.next_cursor ?? null;
    loadedOnce = true;
    loadedAt = Date.now();
    drawCount();
    // A station registered since the index was kept: its name and zone are worth one more listing.
    if (who && body.results.some((a) => a.station_id && !stations.has(a.station_id))) {
      stations = await stationIndex(who, { fresh: true }).catch(() => stations);
      for (const a of body.results) if (rows.has(a.id)) rowElement(a.id)?.replaceWith(rowOf(a));
    }
  }

  more.addEventListener("click", async () => {
    more.disabled = true;
    try { await load({ append: true }); } catch { /* shown in place */ } finally { more.disabled = false; }
  });

  function changed() {
    filters.status = statusSel.querySelector("select").value;
    filters.severity = severitySel.querySelector("select").value;
    filters.family = familySel.querySelector("select").value;
    const park = parkSel.querySelector("select").value;
    if (park !== filters.park_id) {
      filters.park_id = park;
      // a station of another park would make the list empty for no visible reason
      if (filters.station_id && park && list(filters.station_id).some((id) => stations.get(id)?.park_id !== park)) {
        filters.station_id = "";
      }
      drawStationSel();
    } else {
      filters.station_id = stationBox.querySelector("select").value;
    }
    drawParameterChip();
    writeAddress(filters, selected);
    next = null;
    load().catch(() => {});
  }
  toolbar.addEventListener("change", changed);
  reset.addEventListener("click", () => {
    Object.assign(filters, { status: "", severity: "", family: "", park_id: "", station_id: "", parameter: "" });
    for (const sel of toolbar.querySelectorAll("select")) sel.value = "";
    drawStationSel();
    changed();
  });

  // ---- detail
  let current = null;              // the alert shown, as GET /alerts/{id} answered
  let seenEntries = new Set();     // timeline entries already drawn for it, so new ones can be pointed out
  let detailGeneration = 0;
  let refusal = null;              // the latest action the API refused, shown until the next attempt or alert

  function fact(label, ...value) {
    return [h("dt", {}, label), h("dd", {}, ...value)];
  }

  function entrySummary(e, zone) {
    const d = e.detail ?? {};
    const parts = [];
    if (e.kind === "verified" && d.verification) parts.push(t(`ver.${d.verification}`));
    if (e.kind === "reviewed" && d.decision) parts.push(t(`review.${d.decision}`));
    if (e.kind === "cleared" && d.reason) parts.push(textOr(`clear.${d.reason}`, d.reason));
    if (e.kind === "severity_raised" && (d.from || d.to)) {
      parts.push(`${d.from ? t(`severity.${d.from}`) : ""} → ${d.to ? t(`severity.${d.to}`) : ""}`);
    }
    if (d.value !== undefined && d.value !== null && ["raised", "repeated", "revised", "window_revised", "severity_raised"].includes(e.kind)) {
      parts.push(`${fmtNum(d.value)}${current?.unit ? ` ${current.unit}` : ""}`);
    }
    if (d.exceedance_multiple) parts.push(t("alerts.multiple", { m: fmtNum(d.exceedance_multiple, 2) }));
    if (d.window_start && d.window_end) parts.push(`${fmtTime(d.window_start, zone)} – ${fmtTime(d.window_end, zone).slice(11)}`);
    if (d.occurrences) parts.push(`#${d.occurrences}`);
    if (d.text) parts.push(d.text);
    if (d.comment) parts.push(`“${d.comment}”`);
    return parts.join(" · ");
  }

  function timeline(a) {
    const zone = tz(a);
    const entries = [
      ...a.timeline.map((e) => ({ key: `e${e.id}`, at: e.at, kind: e.kind, actor: e.actor, text: entrySummary(e, zone), id: e.id })),
      // Notices are not timeline entries in the API, but who was told and when is part of the story.
      ...(a.notifications ?? []).map((n) => ({
        key: `n${n.id}`, at: n.sent_at ?? n.created_at, kind: "notified", actor: n.channel_id, notice: n,
        text: [textOr(`notice.${n.status}`, n.status), n.attempts > 1 ? `×${n.attempts}` : "", n.last_error ?? ""].filter(Boolean).join(" · "),
      })),
    ].sort((x, y) => Date.parse(x.at) - Date.parse(y.at) || x.key.localeCompare(y.key));
    const fresh = [];
    const ol = h("ol", { id: "alert-timeline", class: "alerts-timeline" }, ...entries.map((e) => {
      const li = h("li", {
        dataset: { kind: e.kind, ...(e.id ? { eventId: String(e.id) } : { notificationId: String(e.notice.id), noticeStatus: e.notice.status }) },
        class: `alerts-ev-${e.kind}`,
      },
      h("time", { datetime: e.at, title: zone }, fmtTime(e.at, zone, { seconds: true })), " ",
      h("strong", {}, textOr(`ev.${e.kind}`, e.kind)), " ",
      h("span", { class: "muted" }, e.actor), e.text ? h("div", { class: "alerts-ev-text" }, e.text) : null);
      if (seenEntries.size && !seenEntries.has(e.key)) fresh.push(li);
      return li;
    }));
    seenEntries = new Set(entries.map((e) => e.key));
    return { ol, fresh };
  }

  function actions(a) {
    const out = [];
    const said = refusal?.alertId === a.id ? refusal : null;
    const message = h("p", {
      class: "error", role: "alert", id: "alert-action-error", hidden: !said,
      dataset: { status: String(said?.error?.status ?? ""), code: said?.error?.code ?? "" },
    }, said ? failureText(said.error) : "");
    const run = async (button, path, body) => {
      message.hidden = true;
      refusal = null;
      const label = button.textContent;
      button.disabled = true;
      button.textContent = t("alerts.a.busy");
      try {
        const answer = await send("POST", `/alerts/${a.id}/${path}`, body);
        showDetail(answer, { keepTyping: false });
        place(answer);
      } catch (error) {
        refusal = { alertId: a.id, error };
        button.disabled = false;
        button.textContent = label;
        message.textContent = failureText(error);
        message.dataset.status = String(error?.status ?? "");
        message.dataset.code = error?.code ?? "";
        message.hidden = false;
        // A conflict means the alert moved on (someone else acted): show it as it now is, the refusal kept.
        if (error?.status === 409) openDetail(a.id);
      }
    };
    // The API refuses an acknowledgement of a cleared or already acknowledged alert; offering it would only earn a 409.
    if (canAck && !a.acknowledged && a.status !== "cleared") {
      const comment = h("input", { id: "alert-ack-comment", maxlength: "2000", placeholder: t("alerts.a.comment"), "aria-label": t("alerts.a.comment") });
      const button = h("button", { type: "submit", id: "alert-ack", class: "alerts-act" }, t("alerts.a.ack"));
      out.push(h("form", { class: "alerts-action", id: "alert-ack-form", onsubmit: (ev) => {
        ev.preventDefault();
        run(button, "ack", { comment: comment.value.trim() || null });
      } }, comment, button));
    }
    if (canVerify) {
      const choice = h("select", { id: "alert-verification", "aria-label": t("alerts.a.choose"), required: true },
        h("option", { value: "", disabled: true, selected: !a.verified }, `${t("alerts.a.choose")}…`),
        ...VERIFICATIONS.map((v) => h("option", { value: v, selected: a.verified?.verification === v }, t(`ver.${v}`))));
      const comment = h("input", { id: "alert-verify-comment", maxlength: "2000", placeholder: t("alerts.a.comment"), "aria-label": t("alerts.a.comment") });
      const button = h("button", { type: "submit", id: "alert-verify", class: "alerts-act" },
        a.verified ? t("alerts.a.verify_again") : t("alerts.a.verify"));
      out.push(h("form", { class: "alerts-action", id: "alert-verify-form", onsubmit: (ev) => {
        ev.preventDefault();
        if (!choice.value) { choice.focus(); return; }
        run(button, "verify", { verification: choice.value, comment: comment.value.trim() || null });
      } }, choice, comment, button));
    }
    return out.length || said ? h("div", { class: "alerts-actions", id: "alert-actions" }, ...out, message) : null;
  }

  function showDetail(a, { keepTyping = true } = {}) {
    const sameAlert = current?.id === a.id;
    if (!sameAlert) {
      seenEntries = new Set();
      refusal = null;
    }
    // Keep what someone is typing when the live feed redraws the panel under them.
    const typing = sameAlert && keepTyping ? {
      ack: detail.querySelector("#alert-ack-comment")?.value, verifyComment: detail.querySelector("#alert-verify-comment")?.value,
      choice: detail.querySelector("#alert-verification")?.value, focus: document.activeElement?.id,
    } : null;
    current = a;
    const zone = tz(a);
    const by = (x) => t("alerts.d.by", { who: x.by, time: fmtTime(x.at, zone) });
    const sup = a.supervision;
    const meaning = a.details?.explanation ?? a.details?.meaning;
    const { ol, fresh } = timeline(a);
    detail.dataset.alertId = String(a.id);
    detail.dataset.status = a.status;
    detail.dataset.severity = a.severity;
    detail.dataset.acknowledged = a.acknowledged ? "true" : "false";
    detail.dataset.verified = a.verified ? "true" : "false";
    // replaceChildren would write a missing part as the text "null"
    detail.replaceChildren(...[
      h("div", { class: "alerts-detail-head" },
        h("h2", {}, badge("severity", a.severity, SEVERITY_COLORS), " ", familyLabel(a.family), " · ", ruleLabel(a.rule),
          a.parameter ? ` · ${paramName(a)}` : "", " ", h("small", { class: "muted" }, `#${a.id}`)),
        h("button", { type: "button", class: "link", id: "alert-detail-close", "aria-label": t("alerts.d.close"),
          onclick: () => choose(null) }, "✕")),
      h("p", {}, badge("status", a.status, STATUS_COLORS), " ",
        a.station_id ? link(`/stations/${encodeURIComponent(a.station_id)}`, stationName(a.station_id)) : t("alerts.park_alert"),
        " · ", link(`/parks/${encodeURIComponent(a.park_id)}`, parks.get(a.park_id)?.name ?? a.park_id)),
      h("dl", { class: "alerts-facts" },
        a.value !== null || a.limit !== null ? fact(t("alerts.col.value"), valueText(a),
          a.exceedance_multiple ? ` (${t("alerts.multiple", { m: fmtNum(a.exceedance_multiple, 2) })})` : "") : null,
        a.standard ? fact(t("alerts.d.standard"), [a.standard, a.clause?.table, a.clause?.item].filter(Boolean).join(" ")) : null,
        meaning ? fact(t("alerts.d.meaning"), String(meaning)) : null,
        fact(t("alerts.d.first"), fmtTime(a.first_seen, zone)),
        fact(t("alerts.d.last"), fmtTime(a.last_seen, zone)),
        fact(t("alerts.d.raised"), fmtTime(a.raised_at, zone, { seconds: true }), a.late ? ` · ${t("alerts.mark.late")}` : ""),
        a.activated_at ? fact(t("alerts.d.activated"), fmtTime(a.activated_at, zone, { seconds: true })) : null,
        a.cleared_at ? fact(t("alerts.d.cleared"), fmtTime(a.cleared_at, zone, { seconds: true }),
          a.clear_reason ? ` · ${textOr(`clear.${a.clear_reason}`, a.clear_reason)}` : "") : null,
        fact(t("alerts.d.occurrences"), fmtNum(a.occurrences)),
        fact(t("alerts.d.ack"), h("span", { id: "alert-acknowledged" }, a.acknowledged
          ? [by(a.acknowledged), a.acknowledged.comment ? ` · “${a.acknowledged.comment}”` : ""] : t("none"))),
        fact(t("alerts.d.verified"), h("span", { id: "alert-verified" }, a.verified
          ? [t(`ver.${a.verified.verification}`), " · ", by(a.verified), a.verified.comment ? ` · “${a.verified.comment}”` : ""] : t("none"))),
        sup?.explained_at ? fact(t("alerts.d.explanation"), sup.text ?? "", " · ",
          by({ by: sup.explained_by, at: sup.explained_at }), sup.review ? ` · ${t(`review.${sup.review}`)}` : "") : null,
        sup?.due_at && !sup?.explained_at && a.status !== "cleared" ? fact(t("alerts.d.explanation_due"),
          fmtTime(sup.due_at, zone), sup.overdue_at ? t("alerts.d.explanation_overdue") : "") : null,
        zone !== DEFAULT_TZ ? fact(t("alerts.d.timezone"), zone) : null),
      actions(a),
      h("h3", {}, t("alerts.d.timeline")), ol,
    ].filter(Boolean));
    if (typing) {
      const put = (id, v) => { const el = detail.querySelector(`#${id}`); if (el && v !== undefined && v !== "") el.value = v; };
      put("alert-ack-comment", typing.ack);
      put("alert-verify-comment", typing.verifyComment);
      put("alert-verification", typing.choice);
      if (typing.focus) detail.querySelector(`#${typing.focus}`)?.focus();
    }
    for (const li of fresh) flash(li);
  }

  async function openDetail(id) {
    const mine = ++detailGeneration;
    try {
      const a = await api(`/alerts/${id}`);
      if (mine !== detailGeneration || selected !== id) return;
      showDetail(a);
    } catch (error) {
      if (mine !== detailGeneration) return;
      current = null;
      delete detail.dataset.alertId;
      detail.replaceChildren(failure(error));
    }
  }

  function choose(id) {
    selected = id;
    for (const tr of tbody.querySelectorAll("tr.selected")) {
      tr.classList.remove("selected");
      tr.setAttribute("aria-selected", "false");
    }
    writeAddress(filters, id);
    if (!id) {
      current = null;
      ++detailGeneration;
      for (const key of ["alertId", "status", "severity", "acknowledged", "verified"]) delete detail.dataset[key];
      detail.replaceChildren(h("p", { class: "muted" }, t("alerts.pick")));
      return;
    }
    const tr = rowElement(id);
    tr?.classList.add("selected");
    tr?.setAttribute("aria-selected", "true");
    if (current?.id !== id) {
      delete detail.dataset.alertId;
      detail.replaceChildren(h("p", { class: "loading" }, "…"));
    }
    openDetail(id);
  }

  // ---- live: every timeline entry the caller may see, as it commits
  const waiting = new Set();
  let flushTimer = null;
  // A parameter filter may name an alias (so2) that only the API resolves: a newcomer is checked by asking it again.
  const reloadSoon = throttle(() => load(), 1000);

  async function flush() {
    flushTimer = null;
    const ids = [...waiting];
    waiting.clear();
    await Promise.all(ids.map(async (id) => {
      let a;
      try {
        a = await api(`/alerts/${id}`);
      } catch (error) {
        if (error?.status === 404) { rowElement(id)?.remove(); rows.delete(id); drawCount(); }
        return;
      }
      if (filters.parameter && !rows.has(id)) {
        if (matches(filters, a)) reloadSoon();
      } else {
        place(a, { isNew: !rows.has(id) });
      }
      if (selected === id) {
        if (current?.id === id) showDetail(a);
        else openDetail(id);
      }
    }));
  }

  function onEvent(ev) {
    const a = ev?.alert;
    if (!a?.id) return;
    // Not shown, not selected, and not for these filters: nothing on the page changes.
    if (!rows.has(a.id) && selected !== a.id && !matches(filters, a)) return;
    waiting.add(a.id);
    flushTimer ??= setTimeout(() => flush().catch((e) => console.warn("live update failed", e)), EVENT_COALESCE_MS);
  }

  let opens = 0;
  const close = subscribe("/events", {}, { alert: onEvent }, {
    // A reconnection may have missed events (a remade stream starts from now): the list is read again.
    onopen: () => {
      opens += 1;
      if (opens > 1 || (loadedOnce && Date.now() - loadedAt > 1000)) load().catch(() => {});
      if (opens > 1 && selected) openDetail(selected);
    },
  });

  try {
    await load();
  } catch {
    // shown in place; the live feed's reconnection reloads
  }
  if (selected) choose(selected);
  return close;
}
