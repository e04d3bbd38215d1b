// The province map (landing page): headline counts, every park on the map by state, cities' AQI.
import {
  ROOT, STATE_COLORS, SEVERITY_COLORS, addStrings, api, badge, chartOn, failure, fmtNum, fmtTime, h, link, onChange, t,
} from "../core.js";
import { STATE_ORDER, loadGeo, mapOption } from "../provincemap.js";

addStrings({
  zh: {
    "province.title": "湖南省工业园区环境监管一张图", "province.city_title": "{city} · 工业园区",
    "province.all": "全省", "tile.parks": "园区", "tile.online": "站点在线", "tile.judged": "今日判定时段",
    "tile.exceedances": "今日超标时段", "tile.alerts": "未关闭告警", "map.online": "站点在线",
    "province.parks": "园区状态", "province.cities": "各市", "col.park": "园区", "col.city": "城市",
    "col.state": "状态", "col.stations": "站点在线", "col.alerts": "告警", "col.exceed": "今日超标",
    "col.last": "最近数据", "col.aqi": "AQI（最高站点）", "col.parks": "园区数", "province.updated": "更新于 {time}",
    "province.attention": "需要关注", "province.none_attention": "所有园区达标",
  },
  en: {
    "province.title": "Hunan industrial parks: one map", "province.city_title": "{city}: industrial parks",
    "province.all": "Province", "tile.parks": "Parks", "tile.online": "Stations online", "tile.judged": "Windows judged today",
    "tile.exceedances": "Exceedances today", "tile.alerts": "Open alerts", "map.online": "stations online",
    "province.parks": "Parks", "province.cities": "Cities", "col.park": "Park", "col.city": "City",
    "col.state": "State", "col.stations": "Online", "col.alerts": "Alerts", "col.exceed": "Exceed. today",
    "col.last": "Latest data", "col.aqi": "AQI (worst station)", "col.parks": "Parks", "province.updated": "Updated {time}",
    "province.attention": "Needing attention", "province.none_attention": "Every park is compliant",
  },
});

const RANK = Object.fromEntries(STATE_ORDER.map((s, i) => [s, -i]));

function tiles(o) {
  const a = o.totals.alerts_open;
  const tile = (id, label, value, extra) => h("div", { class: "tile", id }, h("div", { class: "label" }, label),
    h("div", { class: "value" }, value, extra ? h("small", {}, " ", extra) : null));
  return h("div", { class: "tiles", id: "province-tiles" },
    tile("tile-parks", t("tile.parks"), fmtNum(o.totals.parks)),
    tile("tile-online", t("tile.online"), fmtNum(o.totals.stations_online), `/ ${fmtNum(o.totals.stations)}`),
    tile("tile-judged", t("tile.judged"), fmtNum(o.totals.windows_judged_today)),
    tile("tile-exceedances", t("tile.exceedances"), fmtNum(o.totals.exceedances_today)),
    h("div", { class: "tile", id: "tile-alerts" }, h("div", { class: "label" }, t("tile.alerts")),
      h("div", { class: "value sev" }, ...["critical", "major", "warning", "advisory"].map((s) =>
        h("span", { title: t(`severity.${s}`), dataset: { severity: s }, style: { color: SEVERITY_COLORS[s], marginRight: "10px" } },
          fmtNum(a[s]))))),
  );
}

function legend(o) {
  const counts = {};
  for (const p of o.parks) counts[p.state] = (counts[p.state] ?? 0) + 1;
  return h("div", { class: "legend" }, ...[...STATE_ORDER].reverse().filter((s) => s !== "no_stations" || counts[s]).map((s) =>
    h("span", {}, h("i", { style: { background: STATE_COLORS[s] } }), `${t(`state.${s}`)} ${counts[s] ?? 0}`)));
}

function parkTable(o) {
  const parks = [...o.parks].sort((x, y) => RANK[x.state] - RANK[y.state] || x.city.localeCompare(y.city) || x.id.localeCompare(y.id));
  return h("table", { class: "data", id: "park-list" },
    h("thead", {}, h("tr", {}, ...["col.park", "col.city", "col.state", "col.stations", "col.alerts", "col.exceed", "col.last"].map((k) => h("th", {}, t(k))))),
    h("tbody", {}, ...parks.map((p) => {
      const open = p.alerts_open.advisory + p.alerts_open.warning + p.alerts_open.major + p.alerts_open.critical;
      return h("tr", { dataset: { parkId: p.id, state: p.state }, class: p.state === "exceedance" ? "exceedance" : "" },
        h("td", {}, link(`/parks/${encodeURIComponent(p.id)}`, p.name)),
        h("td", {}, h("a", { href: `${ROOT}/?city=${encodeURIComponent(p.city)}` }, p.city)),
        h("td", {}, badge("state", p.state, STATE_COLORS)),
        h("td", { class: "num" }, `${p.stations_online}/${p.stations}`),
        h("td", { class: "num" }, open ? link(`/alerts?park_id=${encodeURIComponent(p.id)}&status=open`, fmtNum(open)) : "0"),
        h("td", { class: "num" }, fmtNum(p.exceedances_today)),
        h("td", {}, fmtTime(p.last_received_at, o.timezone)));
    })));
}

function cityTable(o) {
  return h("table", { class: "data", id: "city-list" },
    h("thead", {}, h("tr", {}, ...["col.city", "col.parks", "col.state", "col.aqi"].map((k) => h("th", {}, t(k))))),
    h("tbody", {}, ...o.cities.map((c) => h("tr", { dataset: { city: c.name } },
      h("td", {}, h("a", { href: `${ROOT}/?city=${encodeURIComponent(c.name)}` }, c.name)),
      h("td", { class: "num" }, fmtNum(c.parks)),
      h("td", {}, ...[...STATE_ORDER].reverse().filter((s) => c.states[s]).map((s) =>
        h("span", { title: t(`state.${s}`), style: { color: STATE_COLORS[s], marginRight: "8px" } }, `● ${c.states[s]}`))),
      h("td", {}, c.aqi === null ? t("none") : h("span", {},
        h("span", { class: "badge", style: { background: c.aqi_color ?? "#9aa0a6", color: ink(c.aqi_color) } }, String(c.aqi)), " ", c.aqi_category ?? ""))))));
}

// Dark text on light AQI colours (yellow), white on the others.
export function ink(hex) {
  const m = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(hex ?? "");
  if (!m) return "#fff";
  const [r, g, b] = m.slice(1).map((x) => parseInt(x, 16));
  return 0.299 * r + 0.587 * g + 0.114 * b > 160 ? "#202124" : "#fff";
}

export async function render(main) {
  const city = new URLSearchParams(location.search).get("city") || null;
  const mapEl = h("div", { class: "map panel", id: "province-map" });
  const head = h("div", {});
  const side = h("div", { class: "panel" });
  const list = h("div", { class: "panel" });
  const updated = h("p", { class: "muted", id: "province-updated" });
  main.replaceChildren(
    h("div", { class: "crumbs" }, city ? [link("/", t("province.all")), " › ", city] : null),
    h("h1", {}, city ? t("province.city_title", { city }) : t("province.title")),
    head,
    h("div", { class: "grid cols-2" }, h("div", {}, mapEl), side),
    h("h2", {}, t("province.parks")), list, updated,
  );
  // the figures are asked for at once, while the map's outlines and ECharts load
  let pending = api("/dashboard/overview", { city });
  pending.catch(() => {});
  const [geo, chart] = await Promise.all([loadGeo(), chartOn(mapEl)]);
  chart.on("click", (item) => {
    const park = item.data?.park;
    if (park) location.assign(`${ROOT}/parks/${encodeURIComponent(park.id)}`);
    else if (item.componentType === "geo" && item.name && item.name !== city) {
      location.assign(`${ROOT}/?city=${encodeURIComponent(item.name)}`);
    }
  });

  const refresh = async () => {
    let o;
    try {
      o = await (pending ?? api("/dashboard/overview", { city }));
      pending = null;
    } catch (error) {
      pending = null;
      if (!head.childElementCount) head.replaceChildren(failure(error));
      throw error;
    }
    head.replaceChildren(tiles(o));
    // replaceMerge: a park whose state changed leaves its old series instead of being drawn twice
    chart.setOption(mapOption(o, geo, { city }), { replaceMerge: ["series"] });
    mapEl.dataset.exceedance = o.parks.filter((p) => p.state === "exceedance").map((p) => p.id).join(",");
    mapEl.dataset.parks = String(o.parks.length);
    side.replaceChildren(legend(o), h("h2", {}, t("province.cities")), cityTable(o));
    list.replaceChildren(parkTable(o));
    updated.textContent = t("province.updated", { time: fmtTime(o.generated_at, o.timezone, { seconds: true }) });
  };
  await refresh();
  onChange(refresh, 1000);
}
