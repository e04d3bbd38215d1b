// The station page: per parameter, minute, hourly and daily charts against the limit with verdict bands and flagged data, then events and HJ 212 packets.
import {
  ROOT, STATE_COLORS, VERDICT_COLORS, addStrings, api, badge, chartOn, failure, fmtNum, fmtTime, h, lang, link,
  onChange, paramName, t,
} from "../core.js";

addStrings({
  zh: {
    "station.province": "全省", "station.online": "在线", "station.offline": "离线", "station.unknown_state": "状态未知",
    "station.standard": "执行标准", "station.class": "类别", "station.mn": "MN", "station.tz": "时区",
    "station.last": "最近数据", "station.path": "数据通道", "station.parameters": "监测因子",
    "station.raw": "分钟数据（最近 24 小时）", "station.hour": "小时均值（最近 7 天）", "station.day": "日均值（最近 30 天）",
    "station.rtd": "实时数据（最近 24 小时）",
    "station.value": "监测值", "station.judged": "判定值",
    "station.invalid_hour": "无效小时", "station.invalid_hour_tip": "有效分钟 {valid}/{expected}，不足以构成有效小时",
    "station.limit": "限值", "station.limit_low": "下限", "station.limit_high": "上限", "station.limit_line": "{window}{which} {value}", "station.no_limit": "无适用限值",
    "station.no_limit_note": "该因子没有判定限值（或限值取决于未知条件）",
    "station.nodata": "无数据", "station.window.hour": "小时", "station.window.1h": "1小时", "station.window.8h": "8小时",
    "station.window.24h": "24小时", "station.window.day": "日", "station.verdict_line": "{window}判定：{verdict}",
    "station.coverage_h": "有效 {valid}/{expected} 分钟", "station.coverage_d": "有效 {valid}/{expected} 小时",
    "station.events": "站点事件", "station.packets": "最近 HJ 212 报文", "station.no_events": "无事件",
    "station.no_packets": "无 HJ 212 报文（站点可能通过 MQTT 上报）",
    "col.time": "时间", "col.kind": "类型", "col.subject": "设施", "col.value": "值", "col.received": "接收时间",
    "col.datatime": "数据时间", "col.cn": "命令", "col.qn": "请求编号", "col.findings": "解析发现", "col.raw": "原始报文",
    "station.show_raw": "查看", "station.legend_bands": "色带：判定时段（红=超标，灰=数据不足，绿=达标）",
    "event.facility_state": "设施运行状态", "event.facility_runtime": "设施运行时间", "event.logger_restart": "数采仪重启",
    "event.path": "数据通道",
    "fstate.0": "停运", "fstate.1": "运行", "fstate.2": "校准", "fstate.3": "维护", "fstate.4": "报警", "fstate.5": "反吹",
    "cn.2011": "实时数据", "cn.2051": "分钟数据", "cn.2061": "小时数据", "cn.2031": "日数据", "cn.2021": "设施运行状态",
    "cn.2041": "设施运行时间", "cn.2081": "数采仪开机", "cn.9014": "数据应答", "cn.9011": "请求应答", "cn.9012": "执行结果",
    "flag.N": "正常", "flag.F": "停运", "flag.M": "维护期间数据", "flag.S": "手工输入的设定值", "flag.D": "仪器故障",
    "flag.C": "校准中", "flag.T": "超测定上限", "flag.B": "通讯异常", "flag.P": "电源故障", "flag.?": "未知标记",
    "station.flag_series": "标记 {flag}：{meaning}",
  },
  en: {
    "station.province": "Province", "station.online": "Online", "station.offline": "Offline", "station.unknown_state": "State unknown",
    "station.standard": "Standard", "station.class": "Class", "station.mn": "MN", "station.tz": "Time zone",
    "station.last": "Latest data", "station.path": "Data path", "station.parameters": "Parameters",
    "station.raw": "Minute data (last 24 h)", "station.hour": "Hourly means (last 7 days)", "station.day": "Daily means (last 30 days)",
    "station.rtd": "Real-time data (last 24 h)",
    "station.value": "Value", "station.judged": "Judged value",
    "station.invalid_hour": "Invalid hour", "station.invalid_hour_tip": "{valid}/{expected} valid minutes: not a valid hour",
    "station.limit_line": "{window} {which} {value}", "station.limit": "limit", "station.limit_low": "lower limit", "station.limit_high": "upper limit", "station.no_limit": "No applicable limit",
    "station.no_limit_note": "No limit judges this parameter (or its limit depends on an unknown condition)",
    "station.nodata": "No data", "station.window.hour": "Hour", "station.window.1h": "1 h", "station.window.8h": "8 h",
    "station.window.24h": "24 h", "station.window.day": "Day", "station.verdict_line": "{window} verdict: {verdict}",
    "station.coverage_h": "{valid}/{expected} valid minutes", "station.coverage_d": "{valid}/{expected} valid hours",
    "station.events": "Station events", "station.packets": "Recent HJ 212 packets", "station.no_events": "No events",
    "station.no_packets": "No HJ 212 packets (the station may report over MQTT)",
    "col.time": "Time", "col.kind": "Kind", "col.subject": "Facility", "col.value": "Value", "col.received": "Received",
    "col.datatime": "Data time", "col.cn": "Command", "col.qn": "QN", "col.findings": "Findings", "col.raw": "Packet",
    "station.show_raw": "Show", "station.legend_bands": "Bands: judged windows (red = exceedance, grey = insufficient data, green = compliant)",
    "event.facility_state": "Facility state", "event.facility_runtime": "Facility running time", "event.logger_restart": "Logger restart",
    "event.path": "Data path",
    "fstate.0": "Off", "fstate.1": "Running", "fstate.2": "Calibrating", "fstate.3": "Maintenance", "fstate.4": "Alarm", "fstate.5": "Back-blowing",
    "cn.2011": "Real-time data", "cn.2051": "Minute data", "cn.2061": "Hour data", "cn.2031": "Day data", "cn.2021": "Facility state",
    "cn.2041": "Facility running time", "cn.2081": "Logger start", "cn.9014": "Data reply", "cn.9011": "Request reply", "cn.9012": "Result",
    "flag.N": "normal", "flag.F": "out of service", "flag.M": "maintenance", "flag.S": "set by hand", "flag.D": "instrument fault",
    "flag.C": "calibrating", "flag.T": "above measuring range", "flag.B": "communication fault", "flag.P": "power failure", "flag.?": "unknown flag",
    "station.flag_series": "Flag {flag}: {meaning}",
  },
});

const HOUR = 3600e3, DAY = 24 * HOUR;
const TABLE_ROWS = 20;
// The three resolutions: what each reads, its span, its step (for gaps and the tooltip's reach), and
// which judged windows it draws (the first present of `kinds`, else of `fallback`).
const RESOLUTIONS = {
  raw: { span: DAY, step: 60e3, kinds: ["hour", "1h"], fallback: ["day", "24h", "8h"] },
  hour: { span: 7 * DAY, step: HOUR, kinds: ["hour", "1h"], fallback: ["day", "24h", "8h"] },
  day: { span: 30 * DAY, step: DAY, kinds: ["day", "24h", "8h"], fallback: ["hour", "1h"] },
};
// Non-N flags: a symbol and colour each, so a fault reads apart from calibration or over-range.
const FLAG_STYLE = {
  T: ["triangle", "#e8710a"], C: ["diamond", "#1a73e8"], M: ["diamond", "#12b5cb"], D: ["rect", "#9334e6"],
  B: ["rect", "#a142f4"], P: ["rect", "#5f6368"], F: ["rect", "#3c4043"], S: ["circle", "#795548"], "?": ["pin", "#202124"],
};
const BAND_ALPHA = { exceedance: 0.16, insufficient_data: 0.18, compliant: 0.06 };
const LIMIT_COLOR = "#d93025";

const ms = (iso) => new Date(iso).getTime();
const flagMeaning = (flag) => t(`flag.${flag}`) === `flag.${flag}` ? flag : t(`flag.${flag}`);

// every page of a list (bounded: a page of 10,000 rows is more than any span here holds)
async function all(path, params, pages = 5, limit = 10000) {
  let rows = [], cursor;
  for (let i = 0; i < pages; i++) {
    const page = await api(path, { ...params, limit, cursor });
    rows = rows.concat(page.results);
    cursor = page.meta?.next;
    if (!cursor) break;
  }
  return rows;
}

// The newest `n` rows of an oldest-first list: the lists have no newest-first order, so the span asked
// widens until it holds `n` rows (a busy station answers from the last hour).
async function newest(path, params, keep, n = TABLE_ROWS) {
  const now = Date.now();
  let rows = [];
  for (const hours of [1, 24, 24 * 7, 24 * 90]) {
    rows = [];
    let cursor;
    for (let i = 0; i < 20; i++) {
      const page = await api(path, { ...params, start: new Date(now - hours * HOUR).toISOString(), limit: 1000, cursor });
      rows = rows.concat(page.results.filter(keep)).slice(-n);
      cursor = page.meta?.next;
      if (!cursor) break;
    }
    if (rows.length >= n) break;
  }
  return rows.reverse();
}

// a round axis bound just beyond `x`, so the limit line is never at the chart's edge
function roundAway(x, up) {
  if (!Number.isFinite(x) || x === 0) return 0;
  const step = 10 ** Math.floor(Math.log10(Math.abs(x))) / 2;
  return (up ? Math.ceil(x / step) : Math.floor(x / step)) * step;
}

function windowLabel(kind) {
  return t(`station.window.${kind}`);
}

// ---------------------------------------------------------------- data → chart

/** Which judged windows a resolution draws, and their verdicts. */
function windowsFor(res, verdicts) {
  const present = new Set(verdicts.map((v) => v.window));
  let kinds = res.kinds.filter((k) => present.has(k));
  const primary = kinds.length > 0;
  if (!primary) kinds = res.fallback.filter((k) => present.has(k));
  return { kinds, primary, rows: verdicts.filter((v) => kinds.includes(v.window)) };
}

/** The latest limit of each window kind drawn: [{kind, values: [..], unit}]. */
function limitsOf(kinds, verdicts) {
  const out = [];
  for (const kind of kinds) {
    let last = null;
    for (const v of verdicts) if (v.window === kind && v.limit !== null && v.limit !== undefined) last = v;
    if (!last) continue;
    const values = Array.isArray(last.limit) ? last.limit.filter((x) => x !== null) : [last.limit];
    if (values.length && !out.some((o) => o.values.join() === values.join())) {
      out.push({ kind, values, range: Array.isArray(last.limit), unit: last.unit });
    }
  }
  return out;
}

// Breaks the line where data are missing: a null after any gap of more than 1.5 steps.
function withGaps(points, step) {
  const out = [];
  for (const p of points) {
    const prev = out[out.length - 1];
    if (prev && p.value[0] - prev.value[0] > 1.5 * step) out.push({ value: [prev.value[0] + step, null] });
    out.push(p);
  }
  return out;
}

/** Points of one resolution: the line (valid values), and the marked ones (by flag). */
function pointsOf(key, rows, now) {
  const line = [], marked = new Map();
  const mark = (flag, item) => {
    if (!marked.has(flag)) marked.set(flag, []);
    marked.get(flag).push(item);
  };
  for (const r of rows) {
    if (r.value === null || r.value === undefined) continue;
    if (key === "raw") {
      const item = { value: [ms(r.ts), r.value], row: r };
      if (r.flag === "N") line.push(item);
      else mark(r.flag ?? "?", item);
      continue;
    }
    // hours and days are drawn in the middle of their period, inside their verdict band
    const step = RESOLUTIONS[key].step;
    const item = { value: [ms(r.ts) + step / 2, r.value], row: r };
    const running = ms(r.ts) + step > now;
    if (key === "hour" && r.coverage && r.coverage.valid === false && !running) mark("invalid", item);
    else line.push(item);
  }
  return { line: withGaps(line, RESOLUTIONS[key].step), marked };
}

function bandsOf(windows) {
  const out = [];
  for (const v of windows.rows) {
    // a window still running is not yet short of data; an exceedance already is one
    if (!v.closed && v.verdict === "insufficient_data") continue;
    if (v.verdict === "compliant" && !windows.primary) continue;
    out.push([
      { xAxis: ms(v.window_start), itemStyle: { color: VERDICT_COLORS[v.verdict] ?? "#9aa0a6", opacity: BAND_ALPHA[v.verdict] ?? 0.1 } },
      { xAxis: ms(v.window_end) },
    ]);
  }
  return out;
}

function judgedOf(key, windows) {
  if (key === "raw" || !windows.primary) return [];
  // the judged value is worth a line only where it is not the mean already drawn (O2-corrected, flow-weighted)
  const differs = windows.rows.some((v) => typeof v.value_judged === "number" && typeof v.value === "number"
    && Math.abs(v.value_judged - v.value) > 1e-6 * Math.max(1, Math.abs(v.value)));
  if (!differs) return [];
  const step = RESOLUTIONS[key].step;
  const pts = [];
  for (const v of windows.rows) {
    const value = v.value_judged ?? (v.verdict === "insufficient_data" ? null : v.value);
    if (typeof value !== "number") continue;
    pts.push({ value: [Math.min(ms(v.window_start) + step / 2, ms(v.window_end)), value], verdict: v });
  }
  pts.sort((a, b) => a.value[0] - b.value[0]);
  return withGaps(pts, step);
}

function limitLines(limits) {
  const data = [];
  for (const l of limits) {
    l.values.forEach((value, i) => {
      const which = l.range ? t(i === 0 ? "station.limit_low" : "station.limit_high") : t("station.limit");
      data.push({
        yAxis: value,
        label: { formatter: t("station.limit_line", { window: windowLabel(l.kind), which, value: fmtNum(value) }), position: "insideEndTop", color: LIMIT_COLOR },
        lineStyle: { color: LIMIT_COLOR, type: "dashed", width: 1.5 },
      });
    });
  }
  return data;
}

function axisTime(value, tz, key) {
  const text = fmtTime(new Date(value), tz);  // YYYY-MM-DD HH:mm
  const date = text.slice(5, 10), clock = text.slice(11, 16);
  if (key === "day") return date;
  return clock === "00:00" ? date : key === "hour" ? `${clock}\n${date}` : clock;
}

function periodText(row, key, tz) {
  if (key === "raw") return fmtTime(row.ts, tz);
  if (key === "day") return fmtTime(row.ts, tz).slice(0, 10);
  return `${fmtTime(row.ts, tz)}–${fmtTime(new Date(ms(row.ts) + HOUR), tz).slice(11)}`;
}

// The tooltip as DOM (text nodes only): the period, each series' value there, and the verdict of
// the windows that hold it.
function tooltip(params, ctx) {
  const list = Array.isArray(params) ? params : [params];
  if (!list.length) return "";
  const x = list[0].axisValue ?? list[0].value?.[0];
  const reach = RESOLUTIONS[ctx.key].step / 2 + 1;
  const near = list.filter((p) => Array.isArray(p.value) && p.value[1] !== null && Math.abs(p.value[0] - x) <= reach);
  const row = near.find((p) => p.data?.row)?.data.row;
  const title = row ? periodText(row, ctx.key, ctx.tz) : fmtTime(new Date(x), ctx.tz);
  const lines = [h("div", { class: "tt-title" }, title)];
  for (const p of near) {
    const d = p.data ?? {};
    lines.push(h("div", {},
      h("span", { class: "tt-dot", style: { background: p.color } }), `${p.seriesName}: `,
      h("b", {}, fmtNum(p.value[1])), ctx.unit ? ` ${ctx.unit}` : "",
      d.row?.coverage && ctx.key === "hour" ? ` · ${t("station.coverage_h", { valid: d.row.coverage.valid_minutes, expected: d.row.coverage.expected_minutes })}` : "",
      d.row?.coverage && ctx.key === "day" && d.row.coverage.valid_hours !== undefined ? ` · ${t("station.coverage_d", { valid: d.row.coverage.valid_hours, expected: d.row.coverage.expected_hours })}` : ""));
  }
  for (const v of ctx.windows.rows) {
    if (ms(v.window_start) > x || ms(v.window_end) <= x) continue;
    if (!v.closed && v.verdict === "insufficient_data") continue;
    const judged = v.value_judged ?? v.value;
    lines.push(h("div", { class: "tt-verdict", style: { color: VERDICT_COLORS[v.verdict] } },
      t("station.verdict_line", { window: windowLabel(v.window), verdict: t(`verdict.${v.verdict}`) }),
      judged !== null && judged !== undefined ? ` · ${fmtNum(judged)}` : "",
      v.limit !== null && v.limit !== undefined ? ` / ${fmtNum(v.limit)} ${v.unit ?? ""}` : "",
      v.verdict === "insufficient_data" && v.notes?.length ? ` · ${v.notes[0]}` : ""));
  }
  return h("div", { class: "station-tooltip" }, ...lines);
}

/** The whole option of one chart (series by id, so a refresh merges without redrawing). */
function chartOption(key, st, now) {
  const res = RESOLUTIONS[key];
  const rows = [...st[key].values()].sort((a, b) => ms(a.ts) - ms(b.ts));
  const verdicts = [...st.verdicts.values()];
  const windows = windowsFor(res, verdicts);
  const limits = limitsOf(windows.kinds, verdicts);
  const { line, marked } = pointsOf(key, rows, now);
  const judged = judgedOf(key, windows);
  const allLimits = limits.flatMap((l) => l.values);
  const ctx = { key, tz: st.tz, unit: st.unit, windows };
  const start = now - res.span;
  // an hour or day is drawn at its middle: the running one may lie ahead of now
  const end = key === "raw" ? now : now + res.step / 2;
  const series = [
    {
      id: "value", name: t("station.value"), type: "line", data: line, showSymbol: key !== "raw", symbolSize: 5,
      connectNulls: false, lineStyle: { width: 1.5 }, color: "#1a73e8",
      z: 3,
    },
    {
      // the limits and the verdict bands hang on a series of their own, outside the legend's toggles
      id: "marks", name: "marks", type: "line", data: [], silent: true, legendHoverLink: false, z: 1,
      markLine: { symbol: "none", silent: true, animation: false, data: limitLines(limits) },
      markArea: { silent: true, animation: false, data: bandsOf(windows) },
    },
  ];
  if (judged.length) {
    series.push({
      id: "judged", name: t("station.judged"),
      type: "line", data: judged, symbol: "circle", symbolSize: 4, color: "#202124", lineStyle: { width: 1, type: "dotted" }, z: 4,
    });
  }
  for (const [flag, items] of marked) {
    const [symbol, color] = flag === "invalid" ? ["emptyCircle", "#80868b"] : (FLAG_STYLE[flag] ?? FLAG_STYLE["?"]);
    series.push({
      id: `flag-${flag}`, type: "scatter", data: items, symbol, symbolSize: key === "raw" ? 7 : 9, color, z: 5,
      name: flag === "invalid" ? t("station.invalid_hour") : t("station.flag_series", { flag, meaning: flagMeaning(flag) }),
    });
  }
  const empty = !rows.length;
  return {
    option: {
      animation: false,
      title: { show: empty, text: t("station.nodata"), left: "center", top: "middle", textStyle: { color: "#80868b", fontSize: 14, fontWeight: 400 } },
      grid: { left: 56, right: 24, top: 36, bottom: 64 },
      legend: { top: 4, left: "center", data: series.filter((s) => s.id !== "marks").map((s) => s.name) },
      tooltip: {
        trigger: "axis", confine: true, axisPointer: { type: "line", label: { formatter: ({ value }) => fmtTime(new Date(value), st.tz) } },
        formatter: (params) => tooltip(params, ctx),
      },
      xAxis: {
        type: "time", min: start, max: end,
        axisLabel: { hideOverlap: true, formatter: (value) => axisTime(value, st.tz, key) },
        splitLine: { show: false },
      },
      yAxis: {
        type: "value", name: st.unit || "", nameTextStyle: { align: "right" },
        min: ({ min }) => {
          const low = allLimits.length > 1 || limits.some((l) => l.range) ? Math.min(...allLimits) : null;
          if (low !== null) return roundAway(Math.min(min, low) - Math.abs(Math.max(...allLimits) - low) * 0.1, false);
          return min >= 0 ? 0 : roundAway(min, false);
        },
        max: ({ max }) => roundAway(Math.max(max, ...allLimits) * 1.05 || 1, true),
      },
      dataZoom: [
        { type: "inside", xAxisIndex: 0, filterMode: "none" },
        { type: "slider", xAxisIndex: 0, filterMode: "none", height: 18, bottom: 8, labelFormatter: (value) => fmtTime(new Date(value), st.tz) },
      ],
      series,
    },
    limits: allLimits,
    exceedances: windows.rows.filter((v) => v.verdict === "exceedance").length,
    flagged: [...marked.values()].reduce((n, items) => n + items.length, 0),
  };
}

// ---------------------------------------------------------------- tables

function eventsTable(rows, tz) {
  if (!rows.length) return h("p", { class: "muted", id: "station-events-empty" }, t("station.no_events"));
  const value = (e) => {
    if (e.kind === "facility_state" && e.value !== null) return `${e.value} ${t(`fstate.${e.value}`) === `fstate.${e.value}` ? "" : t(`fstate.${e.value}`)}`;
    if (e.kind === "facility_runtime" && e.value !== null) return `${fmtNum(e.value, 2)} h`;
    return e.value === null ? t("none") : fmtNum(e.value);
  };
  return h("table", { class: "data", id: "station-events" },
    h("thead", {}, h("tr", {}, ...["col.time", "col.kind", "col.subject", "col.value", "col.received"].map((k) => h("th", {}, t(k))))),
    h("tbody", {}, ...rows.map((e) => h("tr", { dataset: { kind: e.kind } },
      h("td", {}, fmtTime(e.ts, tz, { seconds: true })),
      h("td", {}, t(`event.${e.kind}`) === `event.${e.kind}` ? e.kind : t(`event.${e.kind}`)),
      h("td", {}, e.subject ?? t("none")),
      h("td", {}, value(e)),
      h("td", {}, fmtTime(e.received_at, tz, { seconds: true }))))));
}

const FINDING_COLORS = { error: "#d93025", warning: "#f29900", info: "#80868b" };

function packetsTable(rows, tz) {
  if (!rows.length) return h("p", { class: "muted", id: "station-packets-empty" }, t("station.no_packets"));
  const cn = (code) => (code && t(`cn.${code}`) !== `cn.${code}` ? `${code} ${t(`cn.${code}`)}` : code ?? t("none"));
  return h("table", { class: "data", id: "station-packets" },
    h("thead", {}, h("tr", {}, ...["col.received", "col.datatime", "col.cn", "col.findings", "col.raw"].map((k) => h("th", {}, t(k))))),
    h("tbody", {}, ...rows.map((p) => h("tr", { dataset: { packetId: p.id, findings: p.findings.map((f) => f.code).join(",") } },
      h("td", {}, fmtTime(p.received_at, tz, { seconds: true })),
      h("td", {}, p.data_time ? fmtTime(p.data_time, tz, { seconds: true }) : t("none")),
      h("td", {}, cn(p.cn)),
      h("td", { class: "findings" }, p.findings.length ? p.findings.map((f) => h("div", { class: "finding" },
        h("span", { class: "badge", style: { background: FINDING_COLORS[f.severity] ?? "#80868b" } }, f.code), " ",
        h("span", { class: "muted" }, f.message ?? ""))) : t("none")),
      h("td", {}, h("details", {}, h("summary", {}, t("station.show_raw")), h("code", { class: "raw" }, p.raw)))))));
}

// ---------------------------------------------------------------- the page

export async function render(main, params) {
  const stationId = params.station_id;
  let station;
  try {
    station = await api(`/stations/${encodeURIComponent(stationId)}`);
  } catch (error) {
    main.replaceChildren(failure(error));
    return;
  }
  const tz = station.timezone || "Asia/Shanghai";
  const details = station.parameter_details?.length
    ? station.parameter_details : station.parameters.map((p) => ({ parameter: p }));
  const attrs = station.attrs ?? {};

  const crumbs = h("div", { class: "crumbs", id: "station-crumbs" }, link("/", t("station.province")), " › ",
    link(`/parks/${encodeURIComponent(station.park_id)}`, station.park_id), " › ", station.name);
  const stateEl = h("span", { id: "station-state" });
  const facts = h("div", { class: "station-facts muted", id: "station-facts" });
  const picker = h("div", { class: "toolbar station-params", id: "station-parameters", role: "group", "aria-label": t("station.parameters") });
  const note = h("p", { class: "muted", id: "station-limit-note" });
  const panes = {}, charts = {};
  for (const key of ["raw", "hour", "day"]) {
    const title = h("h2", {}, t(`station.${key}`));
    const el = h("div", { class: "chart station-chart", id: `station-chart-${key}`, dataset: { resolution: key } });
    panes[key] = { title, el };
  }
  const eventsBox = h("div", { class: "panel", id: "station-events-panel" });
  const packetsBox = h("div", { class: "panel", id: "station-packets-panel" });
  main.replaceChildren(
    crumbs,
    h("h1", {}, station.name, " ", stateEl),
    facts, picker, note,
    ...["raw", "hour", "day"].map((key) => h("div", { class: "panel station-pane" }, panes[key].title, panes[key].el)),
    h("p", { class: "muted" }, t("station.legend_bands")),
    h("div", { class: "grid station-tables" },
      h("div", {}, h("h2", {}, t("station.events")), eventsBox),
      h("div", {}, h("h2", {}, t("station.packets")), packetsBox)),
  );

  // the park's view: its name and city for the crumbs, the station's online state
  let lastPath = null;
  let view = null;
  const drawHead = () => {
    const mine = view?.stations?.find((s) => s.id === station.id);
    if (view) {
      crumbs.replaceChildren(link("/", t("station.province")), " › ",
        h("a", { href: `${ROOT}/?city=${encodeURIComponent(view.city)}` }, view.city), " › ",
        link(`/parks/${encodeURIComponent(view.id)}`, view.name), " › ", station.name);
    }
    if (mine) {
      stateEl.replaceChildren(h("span", {
        class: `badge station-${mine.online ? "online" : "offline"}`, dataset: { online: String(mine.online) },
        style: { background: mine.online ? STATE_COLORS.compliant : STATE_COLORS.offline },
      }, t(mine.online ? "station.online" : "station.offline")));
    } else {
      stateEl.replaceChildren(h("span", { class: "badge", style: { background: STATE_COLORS.no_stations } }, t("station.unknown_state")));
    }
    const fact = (label, value) => value ? h("span", { class: "fact" }, `${label} `, h("b", {}, value)) : null;
    facts.replaceChildren(
      h("span", { class: "fact" }, h("b", { id: "station-kind", dataset: { kind: station.kind } }, t(`kind.${station.kind}`))),
      fact(t("station.standard"), attrs.standard), fact(t("station.class"), attrs.class),
      fact(t("station.mn"), station.mn), fact(t("station.tz"), tz),
      fact(t("station.last"), mine?.last_ts ? fmtTime(mine.last_ts, tz) : null),
      fact(t("station.path"), lastPath ? lastPath.toUpperCase().replaceAll("HJ212", "HJ 212") : null),
    );
  };
  // Each parameter's verdicts of the last day (every parameter in one request): the picker's dot is
  // the newest closed verdict (else the running one); the page opens on a recent exceedance.
  let summary = new Map();
  const loadSummary = async () => {
    const rows = await api("/compliance", { station_id: station.id, start: new Date(Date.now() - DAY - 2 * HOUR).toISOString(), limit: 10000 });
    const next = new Map();
    for (const v of rows.results) {
      const one = next.get(v.parameter) ?? { closed: null, open: null, exceedance: false, limit: false };
      if (v.closed) one.closed = v.verdict; else one.open = v.verdict;
      one.exceedance ||= v.verdict === "exceedance";
      one.limit ||= v.limit !== null;
      next.set(v.parameter, one);
    }
    summary = next;
  };
  const loadHead = async () => {
    // without the park's view (an API that refuses it) the page still stands on the station alone
    await Promise.all([
      api(`/dashboard/parks/${encodeURIComponent(station.park_id)}`).then((v) => { view = v; }, () => { view = null; }),
      loadSummary().catch((e) => console.warn("verdict summary failed", e)),
    ]);
    drawHead();
    drawPicker();
  };

  const asked = new URLSearchParams(location.search).get("parameter");
  let code = details.some((d) => d.parameter === asked) ? asked : null;

  // the buttons are made once and updated in place: a live refresh must not swap one under a click
  const buttons = details.map((d) => {
    const dot = h("i", { hidden: true });
    const button = h("button", { type: "button", class: "param", dataset: { parameter: d.parameter }, onclick: () => choose(d.parameter) },
      dot, paramName(d));
    picker.append(button);
    return { d, button, dot };
  });
  const drawPicker = () => {
    for (const { d, button, dot } of buttons) {
      const sum = summary.get(d.parameter);
      const verdict = sum?.closed ?? sum?.open ?? null;
      button.classList.toggle("current", d.parameter === code);
      button.setAttribute("aria-pressed", String(d.parameter === code));
      button.dataset.verdict = verdict ?? "";
      button.title = verdict ? `${d.parameter} · ${t(`verdict.${verdict}`)}` : d.parameter;
      dot.hidden = !verdict;
      dot.style.background = VERDICT_COLORS[verdict] ?? "";
    }
  };

  await loadHead();
  if (!code) {
    // open on what matters: a parameter in exceedance, else one with a limit, else the first
    const judged = details.filter((d) => summary.get(d.parameter)?.limit);
    code = (judged.find((d) => summary.get(d.parameter).exceedance) ?? judged[0] ?? details[0])?.parameter ?? null;
  }
  if (code) {
    const url = new URL(location.href);
    url.searchParams.set("parameter", code);
    history.replaceState(null, "", url);
  }
  drawPicker();
  if (!code) {
    note.textContent = t("station.nodata");
    return () => {};
  }

  for (const key of Object.keys(panes)) charts[key] = await chartOn(panes[key].el);

  // the zoom a person chose survives a live refresh; untouched, the view follows the newest data
  const zoom = {};
  for (const [key, chart] of Object.entries(charts)) {
    chart.on("datazoom", () => {
      const dz = chart.getOption().dataZoom?.[0];
      zoom[key] = dz && (dz.start > 0 || dz.end < 100) ? { startValue: dz.startValue, endValue: dz.endValue } : null;
    });
  }

  let st = null;      // the chosen parameter's data: rows by key, verdicts by window
  let generation = 0; // a newer choice makes an older load's answer moot

  const draw = () => {
    const now = Date.now();
    const limitsShown = new Set();
    for (const key of Object.keys(charts)) {
      const built = chartOption(key, st, now);
      const el = panes[key].el;
      charts[key].setOption(built.option, { replaceMerge: ["series"] });
      if (zoom[key]) charts[key].dispatchAction({ type: "dataZoom", dataZoomIndex: [0, 1], ...zoom[key] });
      el.dataset.limit = built.limits.map((v) => String(v)).join(",");
      el.dataset.parameter = st.code;
      el.dataset.exceedances = String(built.exceedances);
      el.dataset.flagged = String(built.flagged);
      el.dataset.points = String(st[key].size);
      built.limits.forEach((v) => limitsShown.add(v));
    }
    if (st.rawInterval === "rtd") panes.raw.title.textContent = t("station.rtd");
    note.textContent = limitsShown.size ? "" : t("station.no_limit_note");
    note.hidden = limitsShown.size > 0;
  };

  // merge rows into a map by key; returns the newest time seen
  const merge = (map, rows, keyOf) => { for (const r of rows) map.set(keyOf(r), r); };
  const lastTs = (map) => { let m = null; for (const r of map.values()) if (m === null || r.ts > m) m = r.ts; return m; };
  const vKey = (v) => `${v.window}|${v.window_start}`;

  const load = async (full) => {
    // a refresh never overtakes a new choice still loading: it tops up only the parameter on show
    if (!full && st?.code !== code) return;
    const mine = full ? ++generation : generation;
    const now = Date.now();
    const s = full ? {
      code, tz, unit: "", raw: new Map(), hour: new Map(), day: new Map(), verdicts: new Map(), rawInterval: "min",
    } : st;
    const since = (key) => {
      const last = full ? null : lastTs(s[key]);
      return last ?? new Date(now - RESOLUTIONS[key].span - (key === "raw" ? 0 : RESOLUTIONS[key].step)).toISOString();
    };
    const base = { station_id: station.id, parameter: code };
    const raw = async () => {
      let rows = await all("/readings", { ...base, interval: s.rawInterval, start: since("raw") });
      // a station that sends only real-time values has no minute data: its raw chart is its rtd
      if (full && !rows.length) {
        const rtd = await all("/readings", { ...base, interval: "rtd", start: since("raw") });
        if (rtd.length) { s.rawInterval = "rtd"; rows = rtd; }
      }
      return rows;
    };
    const verdictsSince = full ? new Date(now - RESOLUTIONS.day.span - DAY).toISOString() : new Date(now - 2 * DAY).toISOString();
    const [rawRows, hourRows, dayRows, verdicts] = await Promise.all([
      raw(),
      all("/readings", { ...base, interval: "hour", start: since("hour") }),
      all("/readings", { ...base, interval: "day", start: since("day") }),
      all("/compliance", { ...base, start: verdictsSince }),
    ]);
    if (mine !== generation) return;
    merge(s.raw, rawRows, (r) => r.ts);
    merge(s.hour, hourRows, (r) => r.ts);
    merge(s.day, dayRows, (r) => r.ts);
    merge(s.verdicts, verdicts, vKey);
    // the raw span slides with the clock; older minutes leave it
    const cut = now - RESOLUTIONS.raw.span;
    for (const [k, r] of s.raw) if (ms(r.ts) < cut) s.raw.delete(k);
    s.unit = details.find((d) => d.parameter === code)?.unit || rawRows.find((r) => r.unit)?.unit || s.unit || "";
    st = s;
    draw();
  };

  // The tables hold the newest rows: found once by widening spans, then topped up from the newest seen.
  const eventsPath = `/stations/${encodeURIComponent(station.id)}/events`;
  const packetsPath = `/stations/${encodeURIComponent(station.id)}/hj212-packets`;
  const notPath = (e) => e.kind !== "path";  // hourly records of how data came: the head says it once
  const eKey = (e) => `${e.kind}|${e.subject}|${e.ts}`;
  let events = null, packets = null;
  const topUp = async (path, rows, at, keyOf, keep) => {
    const since = rows.length ? rows[0][at] : new Date(Date.now() - HOUR).toISOString();
    const fresh = (await all(path, { start: since }, 3, 1000)).filter(keep);
    const byKey = new Map(rows.map((r) => [keyOf(r), r]));
    for (const r of fresh) byKey.set(keyOf(r), r);
    return [...byKey.values()].sort((a, b) => (a[at] < b[at] ? 1 : a[at] > b[at] ? -1 : 0)).slice(0, TABLE_ROWS);
  };
  const loadTables = async () => {
    const pathNow = api(eventsPath, { kind: "path", start: new Date(Date.now() - 3 * HOUR).toISOString() })
      .then((page) => {
        // one hour's data may come both ways (MQTT and HJ 212): every way of the newest hour
        const newestTs = page.results.at(-1)?.ts;
        const ways = page.results.filter((e) => e.ts === newestTs).map((e) => e.subject);
        return ways.length ? [...new Set(ways)].sort().join(", ") : null;
      }, () => lastPath);
    [events, packets, lastPath] = await Promise.all([
      events ? topUp(eventsPath, events, "ts", eKey, notPath) : newest(eventsPath, {}, notPath),
      packets ? topUp(packetsPath, packets, "received_at", (p) => p.id, () => true) : newest(packetsPath, {}, () => true),
      pathNow,
    ]);
    eventsBox.replaceChildren(eventsTable(events, tz));
    packetsBox.replaceChildren(packetsTable(packets, tz));
    drawHead();
  };

  async function choose(next) {
    if (next === code && st) return;
    code = next;
    const url = new URL(location.href);
    url.searchParams.set("parameter", code);
    history.replaceState(null, "", url);
    for (const key of Object.keys(zoom)) zoom[key] = null;
    for (const chart of Object.values(charts)) {
      chart.dispatchAction({ type: "dataZoom", dataZoomIndex: [0, 1], start: 0, end: 100 });
      chart.showLoading({ text: "", color: "#1a73e8" });
    }
    drawPicker();
    try {
      await load(true);
    } catch (error) {
      note.hidden = false;
      note.replaceChildren(failure(error));
    } finally {
      for (const chart of Object.values(charts)) chart.hideLoading();
    }
  }

  try {
    await Promise.all([load(true), loadTables().catch((error) => { eventsBox.replaceChildren(failure(error)); })]);
  } catch (error) {
    note.hidden = false;
    note.replaceChildren(failure(error));
  }

  // Live: a verdict or alert commit (or a reconnect) brings the newest rows; a quiet province still
  // gets its minutes once a minute.
  // one refresh at a time; a change signalled meanwhile runs one more after it
  let busy = false, again = false;
  const refresh = async () => {
    if (!st) return;
    if (busy) { again = true; return; }
    busy = true;
    try {
      do {
        again = false;
        await Promise.all([load(false), loadHead(), loadTables()]);
      } while (again);
    } finally {
      busy = false;
    }
  };
  const close = onChange(refresh, 1500);
  const timer = setInterval(() => refresh().catch((e) => console.warn("refresh failed", e)), 60e3);
  return () => {
    close();
    clearInterval(timer);
    for (const chart of Object.values(charts)) chart.__pwDispose?.();
  };
}
