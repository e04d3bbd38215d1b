// The park page: its state, its stations' latest values against their limits, open alerts, KPIs and rank.
import {
  ROOT, STATE_COLORS, SEVERITY_COLORS, VERDICT_COLORS, addStrings, api, badge, failure, fmtNum, fmtTime, h, lang, link,
  onChange, paramName, t, throttle,
} from "../core.js";

addStrings({
  zh: {
    "park.province": "全省", "park.updated": "更新于 {time}", "park.unavailable": "暂无数据，或无权查看",
    "park.tile.online": "站点在线", "park.tile.verdicts": "今日判定时段", "park.tile.alerts": "未关闭告警",
    "park.tile.last": "最近数据",
    "park.stations": "站点与最新监测值", "park.col.parameter": "监测因子", "park.col.value": "最新值",
    "park.col.time": "时间", "park.col.verdict": "最近判定", "park.col.judged": "判定值 / 限值", "park.col.window": "判定时段",
    "park.col.alert": "告警", "park.online": "在线", "park.offline": "离线", "park.no_values": "暂无监测数据",
    "park.not_judged": "尚未判定", "park.multiple": "超标倍数 {m}", "park.flag": "标记 {flag}",
    "park.window.hour": "小时", "park.window.1h": "1小时", "park.window.8h": "8小时", "park.window.24h": "24小时",
    "park.window.day": "日",
    "park.alerts": "未关闭告警", "park.col.severity": "级别", "park.col.station": "站点", "park.col.rule": "告警",
    "park.col.vs": "值 / 限值", "park.col.since": "开始于", "park.col.status": "状态",
    "park.status.pending": "待生效", "park.status.active": "生效中", "park.acked": "已确认", "park.late": "迟报",
    "park.whole_park": "园区整体", "park.no_alerts": "没有未关闭的告警", "park.more_alerts": "查看全部告警 →",
    "park.kpis": "主要指标", "park.kpi.figure": "指标", "park.kpi.day": "今日", "park.kpi.month": "本月",
    "park.kpi.target": "目标", "park.kpi.met": "达到目标", "park.kpi.below": "低于目标", "park.kpi.yes": "是", "park.kpi.no": "否",
    "park.kpi.reasons": "部分指标无法计算的原因", "park.kpi.group.delivery": "数据传输",
    "park.kpi.group.compliance": "达标情况", "park.kpi.group.treatment": "污水处理", "park.kpi.group.waste": "固体废物",
    "park.kpi.transmission_rate": "传输率", "park.kpi.validity_rate": "有效率",
    "park.kpi.effective_transmission_rate": "有效传输率", "park.kpi.compliance_rate": "排放达标率",
    "park.kpi.treated_water_compliance_rate": "处理后出水达标率", "park.kpi.treatment_rate": "污水处理率",
    "park.kpi.water_balance": "水量平衡（出水/进水）", "park.kpi.removal": "{name}去除率",
    "park.kpi.solid_waste_rate": "固废处置利用率", "park.kpi.solid_waste_utilisation_rate": "固废综合利用率",
    "park.kpi.hazardous_waste_dumped": "危险废物排放",
    "park.plants": "污水处理厂", "park.plant.inlet": "进口", "park.plant.outlets": "出口",
    "park.plant.enterprises": "接入企业排口", "park.plant.inlet_m3": "本月进水量", "park.plant.outlet_m3": "本月出水量",
    "park.plant.discharged_m3": "本月企业排水量", "park.plant.days": "比对天数", "park.plant.latest": "最新浓度：进口 → 出口",
    "park.plant.none": "本园区未登记污水处理厂",
    "park.rank": "考核排名", "park.rank.period": "{month} 月度考核", "park.rank.place": "全省第 {rank} 名",
    "park.rank.city": "市内第 {rank} 名", "park.rank.score": "得分 {score}", "park.rank.yellow": "黄牌",
    "park.rank.tied": "并列", "park.rank.insufficient": "数据不足，未排名", "park.rank.missing": "缺少：{list}",
    "park.rank.none": "本园区没有考核结果", "park.rank.link": "查看考核排名 →", "park.rank.indicator": "考核指标",
    "park.rank.value": "数值", "park.rank.points": "得分", "park.rank.weight": "权重",
    "park.ind.monitoring_coverage": "监测覆盖率", "park.ind.within_caps": "总量控制达标",
    "park.ind.facility_coverage": "治理设施覆盖率", "park.ind.energy_intensity": "单位产值能耗",
  },
  en: {
    "park.province": "Province", "park.updated": "Updated {time}", "park.unavailable": "No data yet, or not yours to see",
    "park.tile.online": "Stations online", "park.tile.verdicts": "Windows judged today", "park.tile.alerts": "Open alerts",
    "park.tile.last": "Latest data",
    "park.stations": "Stations and latest values", "park.col.parameter": "Parameter", "park.col.value": "Latest value",
    "park.col.time": "Time", "park.col.verdict": "Latest verdict", "park.col.judged": "Judged / limit", "park.col.window": "Window",
    "park.col.alert": "Alert", "park.online": "Online", "park.offline": "Offline", "park.no_values": "No data yet",
    "park.not_judged": "not judged yet", "park.multiple": "multiple {m}", "park.flag": "flag {flag}",
    "park.window.hour": "hour", "park.window.1h": "1 h", "park.window.8h": "8 h", "park.window.24h": "24 h",
    "park.window.day": "day",
    "park.alerts": "Open alerts", "park.col.severity": "Severity", "park.col.station": "Station", "park.col.rule": "Alert",
    "park.col.vs": "Value / limit", "park.col.since": "Since", "park.col.status": "Status",
    "park.status.pending": "Pending", "park.status.active": "Active", "park.acked": "acknowledged", "park.late": "late",
    "park.whole_park": "Whole park", "park.no_alerts": "No open alerts", "park.more_alerts": "All alerts →",
    "park.kpis": "Key figures", "park.kpi.figure": "Figure", "park.kpi.day": "Today", "park.kpi.month": "This month",
    "park.kpi.target": "Target", "park.kpi.met": "target met", "park.kpi.below": "below target", "park.kpi.yes": "yes", "park.kpi.no": "no",
    "park.kpi.reasons": "Why some figures cannot be computed", "park.kpi.group.delivery": "Data delivery",
    "park.kpi.group.compliance": "Compliance", "park.kpi.group.treatment": "Wastewater treatment", "park.kpi.group.waste": "Solid waste",
    "park.kpi.transmission_rate": "Transmission rate", "park.kpi.validity_rate": "Validity rate",
    "park.kpi.effective_transmission_rate": "Effective transmission rate", "park.kpi.compliance_rate": "Discharge compliance rate",
    "park.kpi.treated_water_compliance_rate": "Treated-water compliance rate", "park.kpi.treatment_rate": "Sewage treatment rate",
    "park.kpi.water_balance": "Water balance (out / in)", "park.kpi.removal": "{name} removal",
    "park.kpi.solid_waste_rate": "Solid waste disposed or utilised", "park.kpi.solid_waste_utilisation_rate": "Solid waste utilised",
    "park.kpi.hazardous_waste_dumped": "Hazardous waste dumped",
    "park.plants": "Wastewater treatment plants", "park.plant.inlet": "Inlet", "park.plant.outlets": "Outlets",
    "park.plant.enterprises": "Enterprise outlets discharging to it", "park.plant.inlet_m3": "Inlet volume this month",
    "park.plant.outlet_m3": "Outlet volume this month", "park.plant.discharged_m3": "Enterprises' discharge this month",
    "park.plant.days": "Days compared", "park.plant.latest": "Latest concentrations: inlet → outlet",
    "park.plant.none": "No treatment plant registered in this park",
    "park.rank": "Assessment ranking", "park.rank.period": "Month {month}", "park.rank.place": "#{rank} in the province",
    "park.rank.city": "#{rank} in its city", "park.rank.score": "score {score}", "park.rank.yellow": "Yellow card",
    "park.rank.tied": "tied", "park.rank.insufficient": "Not ranked: too little data", "park.rank.missing": "Missing: {list}",
    "park.rank.none": "No assessment for this park", "park.rank.link": "Assessment page →", "park.rank.indicator": "Indicator",
    "park.rank.value": "Value", "park.rank.points": "Score", "park.rank.weight": "Weight",
    "park.ind.monitoring_coverage": "Monitoring coverage", "park.ind.within_caps": "Within emission caps",
    "park.ind.facility_coverage": "Facility coverage", "park.ind.energy_intensity": "Energy intensity",
  },
});

const OPEN = ["pending", "active"];
const SEVERITY_ORDER = ["critical", "major", "warning", "advisory"];
const VERDICTS = ["compliant", "exceedance", "insufficient_data"];
// KPIs and the assessment are computed on read from the rollups (docs/kpis.md: seconds at province
// scale), so they follow the live stream at most this often rather than on every commit.
const SLOW_MS = 60000;
const KPI_GROUPS = [
  ["delivery", ["effective_transmission_rate", "transmission_rate", "validity_rate"]],
  ["compliance", ["compliance_rate", "treated_water_compliance_rate"]],
  ["treatment", ["treatment_rate", "water_balance", "removal"]],
  ["waste", ["solid_waste_rate", "solid_waste_utilisation_rate", "hazardous_waste_dumped"]],
];
// Figures that are ratios but not rates: shown as a plain number, never coloured against a target.
const PLAIN = new Set(["water_balance"]);

/** A string of this page, or `fallback` when the page has none for that key. */
function tOr(key, fallback) {
  const text = t(key);
  return text === key ? fallback : text;
}

const pct = (x) => (x === null || x === undefined ? t("none") : `${fmtNum(x * 100, 1)}%`);
const withUnit = (value, unit) => (value === null || value === undefined ? t("none") : `${fmtNum(value)}${unit ? ` ${unit}` : ""}`);
const muted = (...children) => h("span", { class: "muted" }, ...children);
const note = (text) => h("p", { class: "muted park-note" }, text);

function stationName(s) {
  return s?.name || s?.id || "";
}

// ---------------------------------------------------------------- head

function crumbs(view) {
  return [link("/", t("park.province")), " › ",
    h("a", { href: `${ROOT}/?city=${encodeURIComponent(view.city)}` }, view.city), " › ", view.name];
}

function stateBadge(row) {
  const state = row?.state ?? "unknown";
  return h("span", { id: "park-state", dataset: { state } }, row ? badge("state", state, STATE_COLORS) : t("none"));
}

function tiles(view, row) {
  const online = view.stations.filter((s) => s.online).length;
  const last = view.stations.map((s) => s.last_received_at).filter(Boolean).sort().pop();
  const tile = (id, label, ...value) => h("div", { class: "tile", id }, h("div", { class: "label" }, label),
    h("div", { class: "value" }, ...value));
  const coloured = (counts, order, colors, kind) => order.map((k) => h("span", {
    title: t(`${kind}.${k}`), dataset: { [kind]: k }, style: { color: colors[k], marginRight: "10px" },
  }, fmtNum(counts?.[k] ?? 0)));
  return h("div", { class: "tiles", id: "park-tiles" },
    tile("park-tile-online", t("park.tile.online"), fmtNum(online), h("small", {}, ` / ${fmtNum(view.stations.length)}`)),
    tile("park-tile-verdicts", t("park.tile.verdicts"), coloured(view.verdicts_today, VERDICTS, VERDICT_COLORS, "verdict")),
    tile("park-tile-alerts", t("park.tile.alerts"),
      row ? coloured(row.alerts_open, SEVERITY_ORDER, SEVERITY_COLORS, "severity") : t("none")),
    tile("park-tile-last", t("park.tile.last"), h("small", {}, fmtTime(last, view.timezone))),
  );
}

// ---------------------------------------------------------------- stations

function limitText(v) {
  if (v.limit === null || v.limit === undefined) return t("none");
  return withUnit(v.limit, v.verdict_unit ?? v.unit);
}

function valueRow(station, v, openAlerts) {
  const alerts = openAlerts.get(`${station.id}|${v.parameter}`) ?? [];
  // An exceedance stays "not yet cleared" (the park's state) while its alert is open, even once the
  // latest window is compliant again: the row is marked for either.
  const exceeding = v.verdict === "exceedance" || alerts.some((a) => a.family === "exceedance");
  const worst = alerts[0];
  return h("tr", {
    class: exceeding ? "exceedance" : "",
    dataset: { station: station.id, parameter: v.parameter, verdict: v.verdict ?? "none", openAlert: worst ? String(worst.id) : undefined },
  },
  h("td", {}, paramName(v), " ", muted(v.parameter)),
  h("td", { class: "num" }, withUnit(v.value, v.unit),
    v.flag && v.flag !== "N" ? h("div", {}, muted(t("park.flag", { flag: v.flag }))) : null),
  h("td", {}, fmtTime(v.ts, station.timezone)),
  h("td", {}, v.verdict ? badge("verdict", v.verdict, VERDICT_COLORS) : muted(t("park.not_judged"))),
  h("td", { class: "num" }, v.verdict
    ? [withUnit(v.value_judged, v.verdict_unit), " / ", limitText(v),
      v.exceedance_multiple > 0 ? h("div", { class: "park-multiple" }, t("park.multiple", { m: fmtNum(v.exceedance_multiple, 2) })) : null]
    : t("none")),
  h("td", {}, v.window_kind
    ? [tOr(`park.window.${v.window_kind}`, v.window_kind), " ", muted(fmtTime(v.window_start, station.timezone))]
    : t("none")),
  h("td", {}, worst
    ? link(`/alerts?alert_id=${encodeURIComponent(worst.id)}`, badge("severity", worst.severity, SEVERITY_COLORS))
    : null));
}

function stationTable(view, openAlerts) {
  const cols = ["parameter", "value", "time", "verdict", "judged", "window", "alert"];
  const body = [];
  for (const s of view.stations) {
    body.push(h("tr", { class: "park-station-head", dataset: { station: s.id, online: String(s.online) } },
      h("th", { colspan: cols.length, scope: "rowgroup" },
        link(`/stations/${encodeURIComponent(s.id)}`, stationName(s)), " ",
        muted(t(`kind.${s.kind}`), " · ", s.id, " · "),
        h("span", { class: s.online ? "park-online" : "park-offline" }, s.online ? t("park.online") : t("park.offline")),
        " ", muted(fmtTime(s.last_received_at, s.timezone)))));
    if (!s.latest.length) {
      body.push(h("tr", { dataset: { station: s.id, empty: "" } }, h("td", { colspan: cols.length, class: "muted" }, t("park.no_values"))));
    }
    for (const v of s.latest) body.push(valueRow(s, v, openAlerts));
  }
  return h("table", { class: "data", id: "park-stations" },
    h("thead", {}, h("tr", {}, ...cols.map((c) => h("th", {}, t(`park.col.${c}`))))),
    h("tbody", {}, ...body));
}

// ---------------------------------------------------------------- alerts

function openAlertIndex(alerts) {
  const index = new Map();
  for (const a of alerts ?? []) {
    if (!a.station_id || !a.parameter) continue;
    const key = `${a.station_id}|${a.parameter}`;
    if (!index.has(key)) index.set(key, []);
    index.get(key).push(a);
  }
  return index;
}

function sortAlerts(alerts) {
  return [...alerts].sort((x, y) => SEVERITY_ORDER.indexOf(x.severity) - SEVERITY_ORDER.indexOf(y.severity)
    || String(y.raised_at).localeCompare(String(x.raised_at)));
}

function alertTable(page, view) {
  const zones = new Map(view.stations.map((s) => [s.id, s]));
  const alerts = page.results;
  if (!alerts.length) return note(t("park.no_alerts"));
  const rows = alerts.map((a) => {
    const station = zones.get(a.station_id);
    const zone = station?.timezone ?? view.timezone;
    const href = `/alerts?alert_id=${encodeURIComponent(a.id)}`;
    return h("tr", { dataset: { alertId: String(a.id), severity: a.severity, family: a.family }, class: a.family === "exceedance" ? "exceedance" : "" },
      h("td", {}, badge("severity", a.severity, SEVERITY_COLORS)),
      h("td", {}, link(href, tOr(`family.${a.family}`, a.family)), " ", muted(a.rule),
        a.parameter ? h("div", {}, paramName(a)) : null),
      h("td", {}, a.station_id ? link(`/stations/${encodeURIComponent(a.station_id)}`, stationName(station) || a.station_id) : t("park.whole_park")),
      h("td", { class: "num" }, a.value === null ? t("none") : [withUnit(a.value, a.unit), " / ", withUnit(a.limit, a.unit)]),
      h("td", {}, fmtTime(a.first_seen, zone), a.late ? [" ", muted(t("park.late"))] : null),
      h("td", {}, tOr(`park.status.${a.status}`, a.status), a.acknowledged ? h("div", {}, muted(t("park.acked"))) : null));
  });
  return [
    h("table", { class: "data" },
      h("thead", {}, h("tr", {}, ...["severity", "rule", "station", "vs", "since", "status"].map((c) => h("th", {}, t(`park.col.${c}`))))),
      h("tbody", {}, ...rows)),
    page.meta?.next ? h("p", {}, link(`/alerts?park_id=${encodeURIComponent(view.id)}&status=open`, t("park.more_alerts"))) : null,
  ];
}

// ---------------------------------------------------------------- KPIs

function kpiCell(row, key) {
  if (!row) return h("td", { class: "num" }, t("none"));
  const value = row[key];
  const reasons = row.reasons?.[key];
  if (key === "hazardous_waste_dumped") {
    const text = value === null || value === undefined ? t("none") : value ? t("park.kpi.yes") : t("park.kpi.no");
    return h("td", { class: `num ${value ? "park-fail" : ""}`, title: reasons?.join("\n") }, text);
  }
  if (value === null || value === undefined) return h("td", { class: "num", title: reasons?.join("\n") }, t("none"));
  const target = row.targets?.[key];
  if (PLAIN.has(key)) return h("td", { class: "num" }, fmtNum(value, 3));
  if (target === undefined || target === null) return h("td", { class: "num" }, pct(value));
  const met = value >= target;
  return h("td", { class: `num ${met ? "park-pass" : "park-fail"}`, dataset: { met: String(met) },
    title: met ? t("park.kpi.met") : t("park.kpi.below") }, pct(value));
}

function removalRows(day, month, names) {
  const codes = [...new Set([...Object.keys(day?.removal_efficiency ?? {}), ...Object.keys(month?.removal_efficiency ?? {})])].sort();
  return codes.map((code) => {
    const cell = (row) => h("td", { class: "num" }, pct(row?.removal_efficiency?.[code]));
    return h("tr", { dataset: { kpi: `removal_efficiency.${code}` } },
      h("td", {}, t("park.kpi.removal", { name: names.get(code) ?? code })), cell(day), cell(month), h("td", { class: "num" }, t("none")));
  });
}

function kpiTable(day, month, names) {
  const targets = month?.targets ?? day?.targets ?? {};
  const body = [];
  for (const [group, keys] of KPI_GROUPS) {
    body.push(h("tr", { class: "park-group" }, h("th", { colspan: 4, scope: "rowgroup" }, t(`park.kpi.group.${group}`))));
    for (const key of keys) {
      if (key === "removal") { body.push(...removalRows(day, month, names)); continue; }
      body.push(h("tr", { dataset: { kpi: key } },
        h("td", {}, t(`park.kpi.${key}`)), kpiCell(day, key), kpiCell(month, key),
        h("td", { class: "num" }, targets[key] === undefined ? t("none") : pct(targets[key]))));
    }
  }
  const reasons = [];
  for (const [label, row] of [["park.kpi.day", day], ["park.kpi.month", month]]) {
    for (const [key, texts] of Object.entries(row?.reasons ?? {})) {
      for (const text of texts) reasons.push(h("li", {}, `${t(label)} · ${tOr(`park.kpi.${key}`, key)}: ${text}`));
    }
  }
  return [
    h("table", { class: "data park-kpi-table" },
      h("thead", {}, h("tr", {}, ...["park.kpi.figure", "park.kpi.day", "park.kpi.month", "park.kpi.target"].map((k) => h("th", {}, t(k))))),
      h("tbody", {}, ...body)),
    reasons.length ? h("details", { class: "park-reasons" }, h("summary", { class: "muted" }, t("park.kpi.reasons")), h("ul", { class: "muted" }, ...reasons)) : null,
  ];
}

function latestByStation(view) {
  return new Map(view.stations.map((s) => [s.id, new Map(s.latest.map((v) => [v.parameter, v]))]));
}

function plantBlock(plant, view, names) {
  const latest = latestByStation(view);
  const stations = new Map(view.stations.map((s) => [s.id, s]));
  const inlet = latest.get(plant.inlet) ?? new Map();
  const outlets = plant.outlets ?? [];
  const codes = [...new Set([...inlet.keys(), ...outlets.flatMap((o) => [...(latest.get(o)?.keys() ?? [])])])].sort();
  const stationLink = (id) => link(`/stations/${encodeURIComponent(id)}`, stationName(stations.get(id)) || id);
  const fact = (label, ...value) => h("div", {}, muted(label, lang() === "en" ? ": " : "："), ...value);
  const facts = h("div", { class: "park-plant-facts" },
    fact(t("park.plant.inlet"), stationLink(plant.inlet)),
    fact(t("park.plant.outlets"), ...outlets.flatMap((o, i) => [i ? "、" : "", stationLink(o)])),
    plant.enterprises?.length ? fact(t("park.plant.enterprises"), ...plant.enterprises.flatMap((o, i) => [i ? "、" : "", stationLink(o)])) : null,
    fact(t("park.plant.inlet_m3"), withUnit(plant.inlet_m3, "m³")),
    fact(t("park.plant.outlet_m3"), withUnit(plant.outlet_m3, "m³")),
    fact(t("park.plant.discharged_m3"), withUnit(plant.discharged_m3, "m³")),
    fact(t("park.kpi.treatment_rate"), pct(plant.treatment_rate)),
    fact(t("park.kpi.water_balance"), fmtNum(plant.water_balance, 3)),
    fact(t("park.plant.days"), fmtNum(plant.compared_days)),
    ...Object.entries(plant.removal_efficiency ?? {}).map(([code, x]) => fact(t("park.kpi.removal", { name: names.get(code) ?? code }), pct(x))),
    plant.reason ? h("div", { class: "muted" }, plant.reason) : null);
  const rows = codes.map((code) => {
    const any = inlet.get(code) ?? outlets.map((o) => latest.get(o)?.get(code)).find(Boolean);
    return h("tr", { dataset: { parameter: code } },
      h("td", {}, paramName(any)),
      h("td", { class: "num" }, withUnit(inlet.get(code)?.value, any.unit)),
      ...outlets.map((o) => {
        const v = latest.get(o)?.get(code);
        return h("td", { class: `num ${v?.verdict === "exceedance" ? "park-fail" : ""}` }, withUnit(v?.value, any.unit));
      }));
  });
  return h("div", { class: "park-plant", dataset: { inlet: plant.inlet } },
    h("h4", {}, stationName(stations.get(plant.inlet)) || plant.inlet),
    facts,
    rows.length ? [h("p", { class: "muted" }, t("park.plant.latest")),
      h("table", { class: "data" },
        h("thead", {}, h("tr", {}, h("th", {}, t("park.col.parameter")), h("th", {}, t("park.plant.inlet")),
          ...outlets.map((o) => h("th", {}, `${t("park.plant.outlets")} ${stationName(stations.get(o)) || o}`)))),
        h("tbody", {}, ...rows))] : null);
}

function kpiSection(day, month, view) {
  // KPI rows name pollutants by code only; the park's own latest values carry their names.
  const names = new Map();
  for (const s of view.stations) for (const v of s.latest) names.set(v.parameter, paramName(v));
  if (!day && !month) return note(t("park.unavailable"));
  // No treatment inputs at all: the caller's scope holds no plant station (an enterprise), not "no plant".
  const treatment = month?.inputs?.treatment ?? day?.inputs?.treatment;
  const plants = treatment?.plants ?? [];
  return h("div", { class: "grid park-kpi-grid" },
    h("div", {}, kpiTable(day, month, names)),
    h("div", {}, h("h3", {}, t("park.plants")),
      plants.length ? plants.map((p) => plantBlock(p, view, names)) : note(t(treatment ? "park.plant.none" : "park.unavailable"))));
}

// ---------------------------------------------------------------- rank

function indicatorName(key) {
  return tOr(`park.ind.${key}`, tOr(`park.kpi.${key}`, key));
}

function rankSection(assessment, parkId) {
  const card = assessment?.results?.find((r) => r.park_id === parkId);
  const more = h("p", {}, link("/assessment", t("park.rank.link")));
  if (!card) return [note(assessment ? t("park.rank.none") : t("park.unavailable")), more];
  const reasons = new Set((card.card_reasons ?? []).map((r) => r.split(":")[0]));
  const head = card.status === "ranked"
    ? h("p", { class: "park-place" },
      h("strong", {}, t("park.rank.place", { rank: card.rank })), card.tied ? [" ", muted(t("park.rank.tied"))] : null,
      " · ", t("park.rank.city", { rank: card.city_rank }), " · ", t("park.rank.score", { score: fmtNum(card.score, 1) }),
      card.yellow_card ? [" ", h("span", { class: "badge park-yellow", title: (card.card_reasons ?? []).join("\n") }, t("park.rank.yellow"))] : null)
    : h("p", { class: "park-place" }, h("strong", {}, t("park.rank.insufficient")),
      card.missing?.length ? h("div", { class: "muted" }, t("park.rank.missing", { list: card.missing.map(indicatorName).join(lang() === "en" ? ", " : "、") })) : null);
  const rows = Object.entries(card.indicators ?? {}).map(([key, i]) => h("tr", {
    class: reasons.has(key) && card.yellow_card ? "exceedance" : "", dataset: { indicator: key },
  },
  h("td", {}, indicatorName(key)),
  h("td", { class: "num" }, key === "energy_intensity" ? fmtNum(i.value) : pct(i.value)),
  h("td", { class: "num" }, i.target === null ? t("none") : key === "energy_intensity" ? fmtNum(i.target) : pct(i.target)),
  h("td", { class: "num" }, fmtNum(i.score, 1)),
  h("td", { class: "num" }, fmtNum(i.weight))));
  return [
    h("p", { class: "muted" }, t("park.rank.period", { month: String(assessment.period_start).slice(0, 7) })),
    head,
    h("table", { class: "data park-indicators" },
      h("thead", {}, h("tr", {}, ...["indicator", "value"].map((k) => h("th", {}, t(`park.rank.${k}`))),
        h("th", {}, t("park.kpi.target")), h("th", {}, t("park.rank.points")), h("th", {}, t("park.rank.weight")))),
      h("tbody", {}, ...rows)),
    more,
  ];
}

// ---------------------------------------------------------------- the page

/** A section that shows "—" when its source refuses or has nothing, and keeps what it showed on a failed refresh. */
function settle(container, result, draw) {
  if (result.status === "fulfilled") {
    container.replaceChildren(...[draw(result.value)].flat(Infinity).filter(Boolean));
    container.dataset.loaded = "true";
    return;
  }
  const status = result.reason?.status;
  if ([403, 404].includes(status) || container.dataset.loaded !== "true") {
    container.replaceChildren(note(t("park.unavailable")));
    container.dataset.loaded = "unavailable";
  }
}

/** The park's row on the map: found in the province (first load, which also says "not found") or its city. */
async function parkRow(parkId, city) {
  const overview = await api("/dashboard/overview", { city });
  return { found: overview.parks.find((p) => p.id === parkId) ?? null, overview };
}

export async function render(main, params) {
  const parkId = params.park_id;
  const fail = (error) => main.replaceChildren(h("div", { class: "crumbs" }, link("/", t("park.province"))),
    h("div", { id: "park-error", dataset: { status: String(error?.status ?? "") } }, failure(error)));

  // Asking the map first means a park outside the caller's scope is said to be missing without a
  // 404 in the console; the park view is asked anyway when the map cannot be read.
  let first = null;
  try {
    first = await parkRow(parkId, null);
  } catch {
    first = null;
  }
  if (first && !first.found) {
    fail({ status: 404 });
    return undefined;
  }
  let view;
  try {
    view = await api(`/dashboard/parks/${encodeURIComponent(parkId)}`);
  } catch (error) {
    fail(error);
    return undefined;
  }

  const title = h("h1", {});
  const crumbBar = h("div", { class: "crumbs", id: "park-crumbs" });
  const head = h("div", {});
  const stations = h("div", { class: "panel", id: "park-stations-panel" });
  const alerts = h("section", { class: "panel", id: "park-alerts" });
  const alertBody = h("div", {});
  const kpis = h("section", { class: "panel", id: "park-kpis" });
  const kpiBody = h("div", {}, h("p", { class: "loading" }, "…"));
  const rank = h("section", { class: "panel", id: "park-rank" });
  const rankBody = h("div", {}, h("p", { class: "loading" }, "…"));
  const updated = h("p", { class: "muted", id: "park-updated" });
  alerts.append(h("h2", {}, t("park.alerts")), alertBody);
  kpis.append(h("h2", {}, t("park.kpis")), kpiBody);
  rank.append(h("h2", {}, t("park.rank")), rankBody);
  // Alerts first: they are what an operator acts on; the station table needs the full width.
  main.replaceChildren(crumbBar, title, head,
    h("div", { class: "grid cols-2" }, alerts, rank),
    h("h2", {}, t("park.stations")), stations,
    kpis, updated);

  let row = first?.found ?? null;
  let openAlerts = { status: "rejected", reason: null };
  const draw = () => {
    document.title = `${view.name} · parkwatch`;
    crumbBar.replaceChildren(...crumbs(view));
    title.replaceChildren(view.name, " ", stateBadge(row), " ", muted(h("small", {}, view.id)));
    head.replaceChildren(tiles(view, row));
    const index = openAlertIndex(openAlerts.status === "fulfilled" ? openAlerts.value.results : []);
    stations.replaceChildren(stationTable(view, index));
    settle(alertBody, openAlerts, (page) => alertTable({ ...page, results: sortAlerts(page.results) }, view));
    updated.textContent = t("park.updated", { time: fmtTime(new Date(), view.timezone, { seconds: true }) });
  };

  const fast = async (fresh = true) => {
    const [v, r, a] = await Promise.allSettled([
      fresh ? api(`/dashboard/parks/${encodeURIComponent(parkId)}`) : Promise.resolve(view),
      fresh ? parkRow(parkId, view.city) : Promise.resolve({ found: row }),
      api("/alerts", { park_id: parkId, status: OPEN, limit: 100 }),
    ]);
    if (v.status === "fulfilled") view = v.value;
    if (r.status === "fulfilled") row = r.value.found;
    openAlerts = a;
    draw();
    if (v.status === "rejected") throw v.reason;
  };
  const slowNow = async () => {
    const [day, month, assessment] = await Promise.allSettled([
      api("/kpis", { park_id: parkId, period: "day", level: "park" }),
      api("/kpis", { park_id: parkId, period: "month", level: "park" }),
      api("/assessment", { period: "month" }),
    ]);
    const pick = (res) => (res.status === "fulfilled" ? res.value.results.find((x) => x.id === parkId) ?? null : null);
    const kpiResult = day.status === "rejected" && month.status === "rejected"
      ? day : { status: "fulfilled", value: [pick(day), pick(month)] };
    settle(kpiBody, kpiResult, ([d, m]) => kpiSection(d, m, view));
    settle(rankBody, assessment, (value) => rankSection(value, parkId));
  };
  const slow = throttle(slowNow, SLOW_MS);

  await fast(false);
  slow();
  return onChange(async () => {
    slow();
    await fast();
  }, 1000);
}
