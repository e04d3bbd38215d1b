// Assessment (/assessment): the parks' scores and ranking with the figures behind each rank, the yellow cards, the province's KPI scorecard, and the daily and monthly reports.
import { API, ROOT, addStrings, api, chartOn, failure, fmtNum, fmtTime, h, lang, link, onChange, t, whoami } from "../core.js";

addStrings({
  zh: {
    "assessment.title": "园区考核与排名", "assessment.rules":
      "各指标得分 = 100 × 实际值 / 目标值（最高 100），园区得分为加权平均；有分指标的权重不足 {share} 的园区列出但不排名；排名最后三位亮黄牌。",
    "assessment.period": "考核周期", "assessment.kind.month": "月度", "assessment.kind.quarter": "季度", "assessment.kind.year": "年度",
    "assessment.rel.month.0": "本月", "assessment.rel.month.1": "上月", "assessment.rel.quarter.0": "本季度",
    "assessment.rel.quarter.1": "上季度", "assessment.rel.year.0": "本年", "assessment.rel.year.1": "上年",
    "assessment.running": "进行中", "assessment.updated": "更新于 {time}",
    "assessment.label.month": "{y}年{m}月", "assessment.label.quarter": "{y}年第{q}季度", "assessment.label.year": "{y}年",
    "assessment.scorecard": "全省主要指标", "assessment.scorecard.scoped": "主要指标（您的辖区合计）",
    "assessment.scorecard.scoped_note": "全省指标只对全省范围的用户开放；这里是您权限范围内站点的合计。",
    "assessment.forbidden": "您的权限范围不含此项（全省数据只对全省范围的用户开放）。",
    "assessment.target": "目标 {op}{value}", "assessment.target.best": "越低越好（以最优园区计分）",
    "assessment.pass": "达标", "assessment.fail": "未达标", "assessment.unknown": "无法计算", "assessment.no_caps": "无总量指标",
    "assessment.tile.treatment_rate": "污水集中处理率", "assessment.tile.treated_water_compliance_rate": "处理后水质达标率",
    "assessment.tile.solid_waste_rate": "工业固废处置利用率", "assessment.tile.compliance_rate": "排放达标率（废水、废气）",
    "assessment.tile.effective_transmission_rate": "数据有效传输率", "assessment.tile.cap": "{name} 总量控制",
    "assessment.detail.treatment": "处理 {treated} m³ / 排放 {discharged} m³；{counted}/{plants} 座污水厂可计算",
    "assessment.detail.windows": "达标 {ok} / 判定 {judged} 个时段；{stations} 个站点",
    "assessment.detail.solid_waste": "处置利用 {done} t / 产生及贮存 {total} t；{parks} 个园区上报",
    "assessment.detail.delivery": "传输率 {tx}，有效率 {valid}；{stations} 个站点",
    "assessment.detail.cap": "{within}/{all} 个排口在年度总量内；已超 {over}，预计超 {projected}",
    "assessment.detail.cap_share": "最高已用 {share}（{station}）", "assessment.detail.cap_year": "{year} 年累计至今",
    "assessment.no_data": "无数据",
    "assessment.ranking": "园区排名", "assessment.ranking.summary": "{ranked} 个园区参与排名，{unranked} 个数据不足未排名。",
    "assessment.ranking.scoped": "只列出您权限范围内的园区；名次为全省排名。",
    "assessment.ranking.none": "本期没有可排名的园区（各园区的有分指标不足）。",
    "assessment.chart.score": "得分", "assessment.chart.yellow": "黄牌（排名末三位）", "assessment.chart.other": "其他园区",
    "assessment.col.rank": "排名", "assessment.col.park": "园区", "assessment.col.city": "城市", "assessment.col.score": "得分",
    "assessment.col.card": "黄牌 / 缺失", "assessment.weight": "权重 {w}", "assessment.city_rank": "市内第 {n}",
    "assessment.tied": "并列", "assessment.yellow_card": "黄牌", "assessment.insufficient": "数据不足",
    "assessment.missing": "缺失：{list}", "assessment.reported": "报", "assessment.reported_by": "上报：{who}，{at}",
    "assessment.reported_unknown": "需上报，尚未上报", "assessment.na": "不适用", "assessment.ind_score": "得分 {s}",
    "assessment.reason": "{name} {value}（得分 {score}，权重 {weight}）",
    "assessment.ind.monitoring_coverage": "在线监控覆盖率", "assessment.ind.treatment_rate": "污水集中处理率",
    "assessment.ind.treated_water_compliance_rate": "处理后水质达标率", "assessment.ind.compliance_rate": "排放达标率",
    "assessment.ind.within_caps": "总量控制达标率", "assessment.ind.solid_waste_rate": "固废处置利用率",
    "assessment.ind.effective_transmission_rate": "数据有效传输率", "assessment.ind.facility_coverage": "环保设施建成运行率",
    "assessment.ind.energy_intensity": "单位工业增加值能耗",
    "assessment.short.monitoring_coverage": "监控覆盖", "assessment.short.treatment_rate": "污水处理",
    "assessment.short.treated_water_compliance_rate": "处理水达标", "assessment.short.compliance_rate": "排放达标",
    "assessment.short.within_caps": "总量控制", "assessment.short.solid_waste_rate": "固废处置",
    "assessment.short.effective_transmission_rate": "有效传输", "assessment.short.facility_coverage": "设施运行",
    "assessment.short.energy_intensity": "能耗强度",
    "assessment.unit.energy": "吨标煤/万元",
    "assessment.reports": "日报 · 月报", "assessment.reports.daily": "日报", "assessment.reports.monthly": "月报",
    "assessment.reports.scope": "范围", "assessment.reports.province": "全省",
    "assessment.reports.json": "查看（JSON）", "assessment.reports.html": "打印版（HTML）", "assessment.reports.xlsx": "下载 XLSX",
    "assessment.reports.scoped_note": "全省日报、月报只对全省范围的用户开放；可选择您权限范围内的园区。",
    "assessment.reports.stored": "已生成的报表", "assessment.reports.kind_all": "全部",
    "assessment.reports.none": "还没有已生成的报表。", "assessment.reports.more": "更多",
    "assessment.reports.partial": "所选周期尚未结束，报表为截至目前的数据，不存档。",
    "assessment.col.kind": "类型", "assessment.col.scope": "范围", "assessment.col.period": "周期",
    "assessment.col.generated": "生成时间", "assessment.col.exceed": "超标时段", "assessment.col.alerts": "告警",
    "assessment.col.links": "查看 / 下载", "assessment.by.schedule": "定时", "assessment.by.request": "按需",
  },
  en: {
    "assessment.title": "Park assessment and ranking", "assessment.rules":
      "Each indicator scores 100 × value / target (at most 100); a park's score is the weighted mean. A park whose scored indicators carry less than {share} of the weight is listed, not ranked. The three lowest-ranked parks get a yellow card.",
    "assessment.period": "Period", "assessment.kind.month": "Month", "assessment.kind.quarter": "Quarter", "assessment.kind.year": "Year",
    "assessment.rel.month.0": "this month", "assessment.rel.month.1": "last month", "assessment.rel.quarter.0": "this quarter",
    "assessment.rel.quarter.1": "last quarter", "assessment.rel.year.0": "this year", "assessment.rel.year.1": "last year",
    "assessment.running": "under way", "assessment.updated": "Updated {time}",
    "assessment.label.month": "{mon} {y}", "assessment.label.quarter": "Q{q} {y}", "assessment.label.year": "{y}",
    "assessment.scorecard": "Province KPIs", "assessment.scorecard.scoped": "KPIs (your scope's total)",
    "assessment.scorecard.scoped_note": "The province's figures are for province-wide scopes; these add up the stations you see.",
    "assessment.forbidden": "Not in your scope (the province's figures are for province-wide scopes).",
    "assessment.target": "Target {op}{value}", "assessment.target.best": "Lower is better (scored against the best park)",
    "assessment.pass": "Met", "assessment.fail": "Not met", "assessment.unknown": "Cannot be computed", "assessment.no_caps": "No caps",
    "assessment.tile.treatment_rate": "Sewage treatment rate", "assessment.tile.treated_water_compliance_rate": "Treated water compliance",
    "assessment.tile.solid_waste_rate": "Solid waste disposed or utilised", "assessment.tile.compliance_rate": "Discharge compliance (water, air)",
    "assessment.tile.effective_transmission_rate": "Effective data transmission", "assessment.tile.cap": "{name} within caps",
    "assessment.detail.treatment": "Treated {treated} m³ / discharged {discharged} m³; {counted} of {plants} plants computed",
    "assessment.detail.windows": "{ok} compliant of {judged} windows judged; {stations} stations",
    "assessment.detail.solid_waste": "{done} t disposed or utilised of {total} t; {parks} parks reporting",
    "assessment.detail.delivery": "Transmission {tx}, validity {valid}; {stations} stations",
    "assessment.detail.cap": "{within} of {all} outlets within the year's cap; {over} over, {projected} projected over",
    "assessment.detail.cap_share": "Highest share used {share} ({station})", "assessment.detail.cap_year": "{year} so far",
    "assessment.no_data": "No data",
    "assessment.ranking": "Ranking", "assessment.ranking.summary": "{ranked} parks ranked, {unranked} with too little data (not ranked).",
    "assessment.ranking.scoped": "Only the parks in your scope are listed; ranks are the province's.",
    "assessment.ranking.none": "No park can be ranked for this period (too few indicators have a value).",
    "assessment.chart.score": "Score", "assessment.chart.yellow": "Yellow card (bottom three)", "assessment.chart.other": "Other parks",
    "assessment.col.rank": "Rank", "assessment.col.park": "Park", "assessment.col.city": "City", "assessment.col.score": "Score",
    "assessment.col.card": "Yellow card / missing", "assessment.weight": "weight {w}", "assessment.city_rank": "#{n} in city",
    "assessment.tied": "tied", "assessment.yellow_card": "Yellow card", "assessment.insufficient": "Insufficient data",
    "assessment.missing": "Missing: {list}", "assessment.reported": "R", "assessment.reported_by": "Reported by {who}, {at}",
    "assessment.reported_unknown": "To be reported; not reported yet", "assessment.na": "n/a", "assessment.ind_score": "score {s}",
    "assessment.reason": "{name} {value} (score {score}, weight {weight})",
    "assessment.ind.monitoring_coverage": "Monitoring coverage", "assessment.ind.treatment_rate": "Sewage treatment rate",
    "assessment.ind.treated_water_compliance_rate": "Treated water compliance", "assessment.ind.compliance_rate": "Discharge compliance",
    "assessment.ind.within_caps": "Within caps", "assessment.ind.solid_waste_rate": "Solid waste disposed/utilised",
    "assessment.ind.effective_transmission_rate": "Effective transmission", "assessment.ind.facility_coverage": "Facilities built and running",
    "assessment.ind.energy_intensity": "Energy intensity",
    "assessment.short.monitoring_coverage": "Monitoring", "assessment.short.treatment_rate": "Treatment",
    "assessment.short.treated_water_compliance_rate": "Treated water", "assessment.short.compliance_rate": "Discharges",
    "assessment.short.within_caps": "Caps", "assessment.short.solid_waste_rate": "Solid waste",
    "assessment.short.effective_transmission_rate": "Transmission", "assessment.short.facility_coverage": "Facilities",
    "assessment.short.energy_intensity": "Energy",
    "assessment.unit.energy": "tce/10⁴ yuan",
    "assessment.reports": "Daily and monthly reports", "assessment.reports.daily": "Daily", "assessment.reports.monthly": "Monthly",
    "assessment.reports.scope": "Scope", "assessment.reports.province": "Province",
    "assessment.reports.json": "View (JSON)", "assessment.reports.html": "Printable (HTML)", "assessment.reports.xlsx": "Download XLSX",
    "assessment.reports.scoped_note": "The province's reports are for province-wide scopes; pick one of your parks.",
    "assessment.reports.stored": "Reports issued", "assessment.reports.kind_all": "All",
    "assessment.reports.none": "No report has been issued yet.", "assessment.reports.more": "More",
    "assessment.reports.partial": "The period chosen is still under way: the report holds the figures so far and is not stored.",
    "assessment.col.kind": "Kind", "assessment.col.scope": "Scope", "assessment.col.period": "Period",
    "assessment.col.generated": "Made", "assessment.col.exceed": "Exceedances", "assessment.col.alerts": "Alerts",
    "assessment.col.links": "View / download", "assessment.by.schedule": "schedule", "assessment.by.request": "on request",
  },
});

// Periods and reports are the province's local calendar (PARKWATCH_DEFAULT_TIMEZONE, docs/kpis.md#reports).
const ZONE = "Asia/Shanghai";
const PERIODS = ["month", "quarter", "year"];
const CHOICES = { month: 12, quarter: 8, year: 5 };
// The plan's targets (docs/kpis.md#targets): used only when no park row says what the province's are.
const PLAN_TARGETS = { treatment_rate: 0.95, treated_water_compliance_rate: 1, solid_waste_rate: 0.9, effective_transmission_rate: 0.9 };
const CAP_NAMES = {
  a21026: { zh: "二氧化硫", en: "SO2" }, a21002: { zh: "氮氧化物", en: "NOx" }, a34013: { zh: "颗粒物", en: "PM" },
  w01018: { zh: "化学需氧量", en: "COD" }, w21003: { zh: "氨氮", en: "NH3-N" }, w21011: { zh: "总磷", en: "TP" }, w21001: { zh: "总氮", en: "TN" },
};
// SO2 and NOx are the plan's caps: their tiles are shown even where nothing is capped.
const PLAN_CAPS = ["a21026", "a21002"];
const YELLOW = "#f9ab00", BAR = "#1a73e8";
const LOADS_MS = 5 * 60 * 1000;  // the caps move by the hour, and are the slowest figure to compute

// ---------------------------------------------------------------- periods

// replaceChildren would write a null as the text "null"
const put = (el, ...children) => el.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false && c !== ""));

const pad = (n, w = 2) => String(n).padStart(w, "0");
const ymd = (y, m, d = 1) => `${pad(y, 4)}-${pad(m)}-${pad(d)}`;

function today() {
  return new Intl.DateTimeFormat("sv-SE", { timeZone: ZONE, year: "numeric", month: "2-digit", day: "2-digit" }).format(new Date());
}

function startOf(period, day) {
  const [y, m] = day.split("-").map(Number);
  if (period === "year") return ymd(y, 1);
  if (period === "quarter") return ymd(y, Math.floor((m - 1) / 3) * 3 + 1);
  return ymd(y, m);
}

function back(period, start, n) {
  const [y, m] = start.split("-").map(Number);
  const index = y * 12 + (m - 1) - n * (period === "year" ? 12 : period === "quarter" ? 3 : 1);
  return ymd(Math.floor(index / 12), (index % 12) + 1);
}

function periodLabel(period, start) {
  const [y, m] = start.split("-").map(Number);
  const mon = new Intl.DateTimeFormat("en-US", { month: "short", timeZone: "UTC" }).format(Date.UTC(y, m - 1, 1));
  return t(`assessment.label.${period}`, { y, m, q: Math.floor((m - 1) / 3) + 1, mon });
}

function choices(period, selected) {
  const now = startOf(period, today());
  const list = Array.from({ length: CHOICES[period] }, (_, i) => back(period, now, i));
  if (!list.includes(selected)) list.push(selected);
  return list.map((start) => {
    const i = list.indexOf(start);
    const rel = start === now ? `${t(`assessment.rel.${period}.0`)}${lang() === "en" ? ", " : "，"}${t("assessment.running")}`
      : i === 1 ? t(`assessment.rel.${period}.1`) : "";
    return { start, label: rel ? `${periodLabel(period, start)}${lang() === "en" ? ` (${rel})` : `（${rel}）`}` : periodLabel(period, start) };
  });
}

function readState() {
  const q = new URLSearchParams(location.search);
  const period = PERIODS.includes(q.get("period")) ? q.get("period") : "month";
  const asked = q.get("date") ?? q.get("at") ?? "";
  const day = /^\d{4}-\d{2}-\d{2}$/.test(asked) ? asked : /^\d{4}-\d{2}$/.test(asked) ? `${asked}-01` : today();
  return { period, start: startOf(period, day) };
}

// ---------------------------------------------------------------- figures

const pct = (v, digits = 1) => (v === null || v === undefined ? t("none") : `${fmtNum(v * 100, digits)}%`);
const met = (value, target) => value !== null && value !== undefined && target !== null && target !== undefined && value >= target - 1e-9;
const indName = (name) => t(`assessment.ind.${name}`);

function targetText(target) {
  if (target === null || target === undefined) return "";
  return t("assessment.target", { op: target >= 1 ? "" : "≥ ", value: pct(target, 0) });
}

function indValue(name, value) {
  if (value === null || value === undefined) return t("none");
  return name === "energy_intensity" ? fmtNum(value, 3) : pct(value);
}

// The province's targets: what most parks are held to (a park may set its own), else the plan's.
function provinceTargets(assessment) {
  const out = { ...PLAN_TARGETS };
  for (const name of Object.keys(PLAN_TARGETS)) {
    const counts = new Map();
    for (const card of assessment?.results ?? []) {
      const target = card.indicators?.[name]?.target;
      if (target !== null && target !== undefined) counts.set(target, (counts.get(target) ?? 0) + 1);
    }
    const [best] = [...counts.entries()].sort((a, b) => b[1] - a[1]);
    if (best) out[name] = best[0];
  }
  return out;
}

// ---------------------------------------------------------------- scorecard

function kpiTile(key, { label, value, target, pass, warn = false, detail, title }) {
  const state = pass === null ? "unknown" : pass && warn ? "warn" : String(pass);
  return h("div", { class: "tile kpi", dataset: { kpi: key, pass: state }, title },
    h("div", { class: "label" }, label),
    h("div", { class: "value" }, value),
    h("div", { class: "target" }, target, target ? " · " : "",
      h("span", { class: "verdict" }, pass === null ? t("assessment.unknown") : pass ? t("assessment.pass") : t("assessment.fail"))),
    detail ? h("div", { class: "detail" }, detail) : null);
}

function rateTile(row, name, target, detail) {
  const value = row[name];
  const reasons = row.reasons?.[name] ?? [];
  return kpiTile(name, {
    label: t(`assessment.tile.${name}`),
    value: value === null || value === undefined ? t("none") : pct(value),
    target: targetText(target),
    pass: value === null || value === undefined ? null : met(value, target),
    detail: value === null || value === undefined ? (reasons[0] ?? t("assessment.no_data")) : detail,
    title: reasons.length ? reasons.join("\n") : undefined,
  });
}

// /loads counts the calendar year up to now (it takes no end): the tiles say so for a past period.
function capTiles(loads, year) {
  const by = new Map(PLAN_CAPS.map((code) => [code, []]));
  for (const row of loads ?? []) {
    if (!by.has(row.parameter)) by.set(row.parameter, []);
    by.get(row.parameter).push(row);
  }
  return [...by.entries()].map(([code, rows]) => {
    const name = CAP_NAMES[code]?.[lang()] ?? code;
    const label = t("assessment.tile.cap", { name });
    if (!rows.length) {
      return kpiTile(`cap-${code}`, { label, value: t("none"), target: "", pass: null, detail: t("assessment.no_caps") });
    }
    const over = rows.filter((r) => r.over_cap).length;
    const projected = rows.filter((r) => !r.over_cap && r.projected_over_cap).length;
    const top = rows.reduce((a, b) => (b.share_of_cap > a.share_of_cap ? b : a));
    return kpiTile(`cap-${code}`, {
      label,
      value: h("span", {}, fmtNum(rows.length - over), h("small", {}, ` / ${fmtNum(rows.length)}`)),
      target: targetText(1),
      pass: over === 0,
      warn: projected > 0,  // a cap projected to be passed is a warning before it is a failure
      detail: [t("assessment.detail.cap_year", { year }), h("br"), t("assessment.detail.cap", { within: rows.length - over, all: rows.length, over, projected }), h("br"),
        t("assessment.detail.cap_share", { share: pct(top.share_of_cap), station: top.station_id })],
    });
  });
}

function scorecard(row, targets, loads, year) {
  const inputs = row.inputs ?? {};
  const tr = inputs.treatment ?? {}, tw = inputs.treated_water_compliance ?? {}, co = inputs.compliance ?? {};
  const sw = inputs.solid_waste ?? {}, de = inputs.delivery ?? {};
  const windows = (w) => t("assessment.detail.windows", {
    ok: fmtNum(w.windows_compliant ?? 0), judged: fmtNum((w.windows_compliant ?? 0) + (w.windows_exceedance ?? 0)), stations: fmtNum(w.stations ?? 0),
  });
  return [
    rateTile(row, "treatment_rate", targets.treatment_rate, t("assessment.detail.treatment", {
      treated: fmtNum(tr.treated_m3, 0), discharged: fmtNum(tr.discharged_m3, 0), counted: tr.plants_counted ?? 0, plants: tr.plants ?? 0,
    })),
    rateTile(row, "treated_water_compliance_rate", targets.treated_water_compliance_rate, windows(tw)),
    rateTile(row, "solid_waste_rate", targets.solid_waste_rate, t("assessment.detail.solid_waste", {
      done: fmtNum(sw.utilised_and_disposed_t, 1), total: fmtNum(sw.generated_and_prior_stock_t, 1), parks: sw.parks_reporting ?? 0,
    })),
    rateTile(row, "compliance_rate", 1, windows(co)),
    ...capTiles(loads, year),
    rateTile(row, "effective_transmission_rate", targets.effective_transmission_rate, t("assessment.detail.delivery", {
      tx: pct(row.transmission_rate), valid: pct(row.validity_rate), stations: fmtNum(de.stations ?? 0),
    })),
  ];
}

// ---------------------------------------------------------------- ranking

function indicatorCell(name, ind) {
  if (!ind) return h("td", { class: "ind", dataset: { indicator: name, pass: "missing" } }, t("none"));
  const { value, target, score, weight, source } = ind;
  let pass, below;
  if (source === "not_applicable") {
    pass = "na";
    below = t("assessment.na");
  } else if (value === null || value === undefined) {
    pass = "missing";
    below = source === "reported" ? t("assessment.reported_unknown") : targetText(target);
  } else if (name === "energy_intensity" || target === null || target === undefined) {
    pass = "";  // scored against the best park: no pass or fail of its own
    below = t("assessment.ind_score", { s: fmtNum(score, 0) });
  } else {
    pass = String(met(value, target));
    below = targetText(target);
  }
  const reported = source === "reported" && value !== null && value !== undefined;
  const title = [
    `${indName(name)} · ${t("assessment.weight", { w: fmtNum(weight) })}`,
    value === null || value === undefined ? null : `${indValue(name, value)}${name === "energy_intensity" ? ` ${t("assessment.unit.energy")}` : ""}`,
    target === null || target === undefined ? (name === "energy_intensity" ? t("assessment.target.best") : null) : targetText(target),
    score === null || score === undefined ? null : t("assessment.ind_score", { s: fmtNum(score, 1) }),
    reported ? t("assessment.reported_by", { who: ind.reported_by ?? "?", at: fmtTime(ind.reported_at, ZONE) }) : null,
  ].filter(Boolean).join("\n");
  return h("td", { class: "ind", title, dataset: { indicator: name, pass, source } },
    h("span", { class: "v" }, value === null || value === undefined ? t("none") : indValue(name, value)),
    reported ? h("sup", { class: "rep" }, t("assessment.reported")) : null,
    h("small", {}, below));
}

// The API words a card's reasons as "indicator: value (score …)": each is shown again from the card's own figures.
function reasonText(card, reason) {
  const name = /^(\w+):/.exec(reason)?.[1];
  const ind = name && card.indicators?.[name];
  if (!ind) return reason;
  return t("assessment.reason", {
    name: indName(name), value: indValue(name, ind.value), score: fmtNum(ind.score, 1), weight: fmtNum(ind.weight),
  });
}

function rankingTable(a) {
  const names = Object.keys(a.weights);
  return h("table", { class: "data", id: "ranking" },
    h("thead", {}, h("tr", {},
      h("th", {}, t("assessment.col.rank")), h("th", {}, t("assessment.col.park")), h("th", {}, t("assessment.col.city")),
      h("th", { class: "num" }, t("assessment.col.score")),
      ...names.map((n) => h("th", { class: "num", title: `${indName(n)} · ${t("assessment.weight", { w: fmtNum(a.weights[n]) })}`, dataset: { indicator: n } },
        t(`assessment.short.${n}`), h("small", {}, t("assessment.weight", { w: fmtNum(a.weights[n]) })))),
      h("th", {}, t("assessment.col.card")))),
    h("tbody", {}, ...a.results.map((c) => h("tr", {
      class: [c.yellow_card ? "yellow" : "", c.status !== "ranked" ? "unranked" : ""].join(" ").trim(),
      dataset: { parkId: c.park_id, rank: c.rank ?? "", yellowCard: String(Boolean(c.yellow_card)), status: c.status },
    },
    h("td", { class: "rank" }, c.rank ?? t("none"), c.tied ? h("small", {}, t("assessment.tied")) : null),
    h("td", {}, link(`/parks/${encodeURIComponent(c.park_id)}`, c.park_name)),
    h("td", {}, c.city, c.city_rank ? h("small", {}, t("assessment.city_rank", { n: c.city_rank })) : null),
    h("td", { class: "num score" }, c.score === null ? h("span", { class: "badge insufficient" }, t("assessment.insufficient")) : fmtNum(c.score, 1)),
    ...names.map((n) => indicatorCell(n, c.indicators?.[n])),
    h("td", { class: "card" },
      c.yellow_card ? h("span", { class: "badge yellow-card", dataset: { yellowCard: "true" } }, t("assessment.yellow_card")) : null,
      c.yellow_card && c.card_reasons.length ? h("ul", { class: "reasons" }, ...c.card_reasons.map((r) => h("li", {}, reasonText(c, r)))) : null,
      c.missing.length ? h("div", { class: "missing" }, t("assessment.missing", { list: c.missing.map(indName).join(lang() === "en" ? ", " : "、") })) : null,
    )))));
}

function chartOption(ranked, width) {
  // names as wide as their share of the axis allows; turned when that is too narrow to read
  const room = Math.max(60, Math.min(220, (width - 60) / Math.max(ranked.length, 1) - 8));
  const turn = room < 90;
  return {
    animation: false,
    grid: { left: 44, right: 16, top: 28, bottom: turn ? 90 : 40 },
    tooltip: {
      trigger: "item",
      // an element, not a string: ECharts would read a string as HTML, and park names are data
      formatter: (p) => {
        const c = p.data.park;
        return h("div", {}, h("b", {}, c.park_name), h("br"), `${t("assessment.col.rank")} ${c.rank} · ${t("assessment.col.score")} ${fmtNum(c.score, 1)}`,
          c.yellow_card ? [h("br"), t("assessment.yellow_card")] : null);
      },
    },
    xAxis: {
      type: "category", data: ranked.map((c) => c.park_name),
      axisLabel: { interval: 0, rotate: turn ? 35 : 0, width: turn ? 120 : room, overflow: "truncate" },
    },
    yAxis: { type: "value", min: 0, max: 100, name: t("assessment.chart.score") },
    dataZoom: ranked.length > 30 ? [{ type: "slider", startValue: 0, endValue: 29, bottom: 4, height: 14 }] : [],
    series: [{
      type: "bar", barMaxWidth: 48,
      data: ranked.map((c) => ({ value: c.score, park: c, itemStyle: { color: c.yellow_card ? YELLOW : BAR } })),
      label: {
        show: true, position: "top",
        formatter: (p) => (p.data.park.yellow_card ? `${t("assessment.yellow_card")} ${fmtNum(p.value, 1)}` : fmtNum(p.value, 1)),
      },
    }],
  };
}

// ---------------------------------------------------------------- reports

function reportLinks(kind, params) {
  const formats = ["json", "html", "xlsx"];
  return formats.map((fmt) => {
    const u = new URL(`${API}/reports/${kind}`, location.origin);
    for (const [k, v] of Object.entries({ ...params, format: fmt, lang: lang() })) if (v) u.searchParams.set(k, v);
    return h("a", {
      href: u.pathname + u.search, dataset: { report: kind, format: fmt },
      target: fmt === "xlsx" ? undefined : "_blank", rel: "noopener", download: fmt === "xlsx" ? "" : undefined,
    }, t(`assessment.reports.${fmt}`));
  });
}

function storedRows(results) {
  return results.map((r) => h("tr", { dataset: { reportId: r.id, kind: r.kind, scope: r.scope } },
    h("td", {}, t(`assessment.reports.${r.kind}`)),
    h("td", {}, r.park_id ? link(`/parks/${encodeURIComponent(r.park_id)}`, r.park_name ?? r.park_id) : t("assessment.reports.province")),
    h("td", {}, r.kind === "daily" ? r.period_start : r.period_start.slice(0, 7)),
    h("td", {}, fmtTime(r.generated_at, ZONE), h("small", {}, t(`assessment.by.${r.generated_by}`))),
    h("td", { class: "num" }, fmtNum(r.exceedances)),
    h("td", { class: "num" }, fmtNum(r.alerts)),
    h("td", { class: "links" }, ...["json", "html", "xlsx"].map((fmt) => h("a", {
      href: `${ROOT}${r.links[fmt]}${fmt === "json" ? "" : `&lang=${lang()}`}`, dataset: { format: fmt },
      target: fmt === "xlsx" ? undefined : "_blank", rel: "noopener", download: fmt === "xlsx" ? "" : undefined,
    }, fmt.toUpperCase())))));
}

function forbidden(error) {
  return error?.status === 403
    ? h("p", { class: "muted forbidden", dataset: { forbidden: "true" } }, t("assessment.forbidden"))
    : failure(error);
}

function reportsSection(provinceWide) {
  const yesterday = (() => {
    const [y, m, d] = today().split("-").map(Number);
    const date = new Date(Date.UTC(y, m - 1, d - 1));
    return date.toISOString().slice(0, 10);
  })();
  const lastMonth = back("month", startOf("month", today()), 1).slice(0, 7);
  const scope = h("select", { id: "report-scope" },
    provinceWide ? h("option", { value: "" }, t("assessment.reports.province")) : null);
  const day = h("input", { type: "date", id: "report-day", value: yesterday, max: today() });
  const month = h("input", { type: "month", id: "report-month", value: lastMonth, max: today().slice(0, 7) });
  const dailyLinks = h("span", { class: "links", id: "report-daily-links" });
  const monthlyLinks = h("span", { class: "links", id: "report-monthly-links" });
  const partial = h("p", { class: "muted", hidden: true }, t("assessment.reports.partial"));
  const update = () => {
    const park = scope.value || undefined;
    dailyLinks.replaceChildren(...(scope.options.length ? reportLinks("daily", { date: day.value, park_id: park }) : []));
    monthlyLinks.replaceChildren(...(scope.options.length ? reportLinks("monthly", { month: month.value, park_id: park }) : []));
    partial.hidden = !(day.value >= today() || month.value >= today().slice(0, 7));
  };
  for (const el of [scope, day, month]) el.addEventListener("change", update);

  const kind = h("select", { id: "report-kind" },
    h("option", { value: "" }, t("assessment.reports.kind_all")),
    h("option", { value: "daily" }, t("assessment.reports.daily")),
    h("option", { value: "monthly" }, t("assessment.reports.monthly")));
  const body = h("tbody", {});
  const more = h("button", { type: "button", class: "link", hidden: true }, t("assessment.reports.more"));
  const listNote = h("div", {});
  let cursor = null, appended = false;
  const list = async (append = false, live = false) => {
    if (live && appended) return;  // a live refresh would drop the pages the reader asked for
    appended ||= append;
    try {
      const page = await api("/reports", { kind: kind.value, limit: 20, cursor: append ? cursor : undefined });
      cursor = page.next_cursor;
      more.hidden = !cursor;
      if (!append) body.replaceChildren();
      body.append(...storedRows(page.results));
      put(listNote, body.childElementCount ? null : h("p", { class: "muted" }, t("assessment.reports.none")));
    } catch (error) {
      listNote.replaceChildren(forbidden(error));
    }
  };
  kind.addEventListener("change", () => { appended = false; list(); });
  more.addEventListener("click", () => list(true));

  const el = h("section", { id: "reports", class: "panel" },
    h("div", { class: "toolbar" }, h("label", { for: "report-scope" }, t("assessment.reports.scope")), scope),
    h("div", { class: "toolbar" }, h("label", { for: "report-day" }, t("assessment.reports.daily")), day, dailyLinks),
    h("div", { class: "toolbar" }, h("label", { for: "report-month" }, t("assessment.reports.monthly")), month, monthlyLinks),
    partial,
    provinceWide ? null : h("p", { class: "muted forbidden", dataset: { forbidden: "true" } }, t("assessment.reports.scoped_note")),
    h("h3", {}, t("assessment.reports.stored"), " ", kind),
    h("div", { class: "scroll" }, h("table", { class: "data", id: "report-list" },
      h("thead", {}, h("tr", {}, ...["kind", "scope", "period", "generated", "exceed", "alerts", "links"].map((k) =>
        h("th", { class: k === "exceed" || k === "alerts" ? "num" : "" }, t(`assessment.col.${k}`))))),
      body)),
    listNote, more);

  return {
    el,
    list,
    // The parks offered are those the caller sees whole: the assessment's (a park report of any other is refused).
    setParks(cards) {
      const chosen = scope.value;
      const keep = provinceWide ? [scope.options[0]] : [];
      scope.replaceChildren(...keep, ...cards.map((c) => h("option", { value: c.park_id }, c.park_name)));
      if ([...scope.options].some((o) => o.value === chosen)) scope.value = chosen;
      update();
    },
    setMonth(state) {
      if (state.period === "month" && state.start.slice(0, 7) < today().slice(0, 7)) month.value = state.start.slice(0, 7);
      update();
    },
    update,
  };
}

// ---------------------------------------------------------------- page

export async function render(main) {
  let state = readState();
  const me = await whoami().catch(() => null);
  const provinceWide = Boolean(me && (me.role === "admin" || me.scopes?.some((s) => s.kind === "province")));

  const kindSelect = h("select", { id: "period-kind" }, ...PERIODS.map((p) => h("option", { value: p }, t(`assessment.kind.${p}`))));
  const atSelect = h("select", { id: "period-at" });
  const updated = h("span", { class: "muted", id: "assessment-updated" });
  const rules = h("p", { class: "muted" }, t("assessment.rules", { share: "70%" }));
  const cardTitle = h("h2", {}, provinceWide ? t("assessment.scorecard") : t("assessment.scorecard.scoped"));
  const cards = h("div", { class: "tiles", id: "scorecard" });
  const cardNote = h("div", {}, provinceWide ? null : h("p", { class: "muted", dataset: { scoped: "true" } }, t("assessment.scorecard.scoped_note")));
  const rankTitle = h("h2", {}, t("assessment.ranking"));
  const rankNote = h("div", { id: "ranking-note" });
  const chartEl = h("div", { class: "chart", id: "score-chart" });
  const chartPanel = h("div", { class: "panel" }, chartEl, h("div", { class: "legend" },
    h("span", {}, h("i", { style: { background: YELLOW } }), t("assessment.chart.yellow")),
    h("span", {}, h("i", { style: { background: BAR } }), t("assessment.chart.other"))));
  const tableBox = h("div", { class: "panel scroll" });
  const reports = reportsSection(provinceWide);

  main.replaceChildren(
    h("h1", {}, t("assessment.title")),
    rules,
    h("div", { class: "toolbar", id: "period-bar" },
      h("label", { for: "period-kind" }, t("assessment.period")), kindSelect, atSelect, updated),
    cardTitle, cardNote, cards,
    rankTitle, rankNote, chartPanel, tableBox,
    h("h2", {}, t("assessment.reports")), reports.el,
  );
  const chart = await chartOn(chartEl);
  chart.on("click", (item) => {
    const id = item.data?.park?.park_id;
    if (id) location.assign(`${ROOT}/parks/${encodeURIComponent(id)}`);
  });

  const fillSelects = () => {
    kindSelect.value = state.period;
    atSelect.replaceChildren(...choices(state.period, state.start).map((c) => h("option", { value: c.start }, c.label)));
    atSelect.value = state.start;
  };
  fillSelects();

  let generation = 0, controller = null, loadsCache = null, loadedAt = 0;
  const shown = { cards: null, ranking: null };
  const loads = async (year, signal) => {
    if (loadsCache && loadsCache.year === year && Date.now() - loadsCache.at < LOADS_MS) return loadsCache.rows;
    const rows = (await api("/loads", { year }, { signal })).results;
    loadsCache = { year, at: Date.now(), rows };
    return rows;
  };

  const refresh = async () => {
    const mine = ++generation;
    controller?.abort();
    controller = new AbortController();
    const { signal } = controller;
    const key = `${state.period}|${state.start}`;
    const params = { period: state.period, date: state.start };
    const [a, k, l] = await Promise.allSettled([
      api("/assessment", params, { signal }),
      api("/kpis", { ...params, level: "province" }, { signal }),
      loads(Number(state.start.slice(0, 4)), signal),
    ]);
    if (mine !== generation) return;  // a newer period was asked for meanwhile

    // a failed refresh of what is already shown keeps it (stale beats blank); another period's shows the failure
    if (a.status === "fulfilled") {
      const data = a.value;
      const ranked = data.results.filter((c) => c.status === "ranked");
      rankTitle.textContent = `${t("assessment.ranking")} · ${periodLabel(data.period, data.period_start)}`;
      rules.textContent = t("assessment.rules", { share: pct(data.min_weight_share, 0) });
      put(rankNote,
        h("p", { class: "muted" }, t("assessment.ranking.summary", { ranked: ranked.length, unranked: data.results.length - ranked.length }),
          provinceWide ? "" : ` ${t("assessment.ranking.scoped")}`),
        ranked.length ? null : h("p", { class: "muted", id: "ranking-empty" }, t("assessment.ranking.none")));
      chartPanel.hidden = !ranked.length;
      chart.setOption(chartOption(ranked, chartEl.clientWidth || 1200), { notMerge: true });
      chartEl.dataset.parks = String(ranked.length);
      chartEl.dataset.yellow = ranked.filter((c) => c.yellow_card).map((c) => c.park_id).join(",");
      tableBox.replaceChildren(rankingTable(data));
      tableBox.hidden = false;
      reports.setParks(data.results);
      shown.ranking = key;
    } else if (a.reason?.name !== "AbortError" && shown.ranking !== key) {
      rankNote.replaceChildren(forbidden(a.reason));
      chartPanel.hidden = true;
      tableBox.replaceChildren(h("table", { class: "data", id: "ranking" }));
      tableBox.hidden = true;
      shown.ranking = null;
    }

    if (k.status === "fulfilled") {
      const row = k.value.results[0];
      const capRows = l.status === "fulfilled" ? l.value : [];
      cards.replaceChildren(...(row ? scorecard(row, provinceTargets(a.value), capRows, state.start.slice(0, 4)) : [h("p", { class: "muted" }, t("assessment.no_data"))]));
      put(cardNote,
        provinceWide ? null : h("p", { class: "muted", dataset: { scoped: "true" } }, t("assessment.scorecard.scoped_note")),
        l.status === "rejected" && l.reason?.name !== "AbortError" ? forbidden(l.reason) : null);
      shown.cards = key;
    } else if (k.reason?.name !== "AbortError" && shown.cards !== key) {
      cards.replaceChildren();
      cardNote.replaceChildren(forbidden(k.reason));
      shown.cards = null;
    }
    if (a.status === "fulfilled" || k.status === "fulfilled") {
      updated.textContent = t("assessment.updated", { time: fmtTime(new Date(), ZONE, { seconds: true }) });
    }
    loadedAt = Date.now();
  };

  const choose = (next) => {
    state = next;
    const u = new URL(location.href);
    u.searchParams.set("period", state.period);
    u.searchParams.set("date", state.start);
    u.searchParams.delete("at");
    history.pushState(null, "", u);
    fillSelects();
    reports.setMonth(state);
    refresh();
  };
  kindSelect.addEventListener("change", () => choose({ period: kindSelect.value, start: startOf(kindSelect.value, state.start) }));
  atSelect.addEventListener("change", () => choose({ period: state.period, start: atSelect.value }));
  window.addEventListener("popstate", () => {
    state = readState();
    fillSelects();
    reports.setMonth(state);
    refresh();
  });

  reports.setMonth(state);
  await Promise.all([refresh(), reports.list()]);
  // Every figure here is computed on read and costs seconds at province scale: a change is
  // followed at most every 15 s, and the stream's first (re)connect right after loading is skipped.
  let first = true;
  const stop = onChange(() => {
    const skip = first && Date.now() - loadedAt < 5000;
    first = false;
    return skip ? undefined : Promise.all([refresh(), reports.list(false, true)]);
  }, 15000);
  return () => { stop(); controller?.abort(); chart.__pwDispose?.(); };
}
