// Big-screen mode (大屏) for a control-room wall: dark, large, rotating through the cities, and
// recovering by itself from a network break or a restarted server (docs/dashboard.md#big-screen).
import {
  STATE_COLORS, SEVERITY_COLORS, addStrings, api, badge, chartOn, fmtNum, fmtTime, h, onChange, paramName, t,
} from "../core.js";
import { STATE_ORDER, loadGeo, mapOption } from "../provincemap.js";

addStrings({
  zh: {
    "screen.title": "湖南省工业园区环境在线监控", "screen.fullscreen": "全屏", "screen.alerts": "未关闭告警",
    "screen.parks": "园区", "screen.online": "站点在线", "screen.judged": "今日判定", "screen.exceed": "今日超标",
    "screen.city": "{city} · {parks} 个园区", "screen.aqi": "AQI", "screen.no_alerts": "无未关闭告警",
    "screen.stale": "数据可能过时：最后更新 {time}",
  },
  en: {
    "screen.title": "Hunan industrial parks: online monitoring", "screen.fullscreen": "Full screen", "screen.alerts": "Open alerts",
    "screen.parks": "Parks", "screen.online": "Stations online", "screen.judged": "Judged today", "screen.exceed": "Exceedances today",
    "screen.city": "{city}: {parks} parks", "screen.aqi": "AQI", "screen.no_alerts": "No open alerts",
    "screen.stale": "Possibly stale: last updated {time}",
  },
});

// Seconds each city is shown (?rotate=N changes it).
const ROTATE_S = 15;
// A wall display runs for weeks: it reloads itself this often (when the server answers), which
// also picks up a new version of the dashboard.
const RELOAD_AFTER_MS = 12 * 3600 * 1000;
// Besides the change stream, the figures are refetched this often, and after a failure retried
// this often: a screen never stays wrong for long whatever broke.
const POLL_MS = 60_000;
const RETRY_MS = 10_000;
const ALERTS_SHOWN = 8;

export async function render(main) {
  const query = new URLSearchParams(location.search);
  const rotate = Math.max(3, Number(query.get("rotate")) || ROTATE_S) * 1000;
  const clock = h("span", { class: "screen-clock", id: "screen-clock" });
  const live = document.getElementById("live");
  const full = h("button", { type: "button", class: "screen-full", onclick: () => document.documentElement.requestFullscreen?.() }, t("screen.fullscreen"));
  const stale = h("div", { class: "screen-stale", id: "screen-stale", hidden: true });
  const tiles = h("div", { class: "screen-tiles", id: "screen-tiles" });
  const mapEl = h("div", { class: "screen-map", id: "screen-map" });
  const city = h("div", { class: "screen-city", id: "screen-city" });
  const alerts = h("div", { class: "screen-alerts", id: "screen-alerts" });
  main.replaceChildren(
    h("div", { class: "screen-head" }, h("h1", {}, t("screen.title")), h("span", { class: "screen-spacer" }), live, clock, full),
    stale, tiles,
    h("div", { class: "screen-body" }, mapEl, h("div", { class: "screen-side" }, city, alerts)),
  );
  const started = Date.now();
  const tick = () => { clock.textContent = fmtTime(new Date(), "Asia/Shanghai", { seconds: true }); };
  tick();
  setInterval(tick, 1000);

  const [geo, chart] = await Promise.all([loadGeo(), chartOn(mapEl, { dark: true })]);
  let overview = null, index = 0, lastOk = null;

  const showCity = () => {
    if (!overview) return;
    const cities = overview.cities.filter((c) => c.parks > 0);
    if (!cities.length) { city.replaceChildren(); return; }
    const c = cities[index % cities.length];
    mapEl.dataset.city = c.name;
    chart.dispatchAction({ type: "geoUnSelect", geoIndex: 0 });
    chart.dispatchAction({ type: "geoSelect", geoIndex: 0, name: c.name });
    const parks = overview.parks.filter((p) => p.city === c.name)
      .sort((x, y) => STATE_ORDER.indexOf(y.state) - STATE_ORDER.indexOf(x.state));
    city.replaceChildren(
      h("h2", {}, t("screen.city", { city: c.name, parks: c.parks }),
        c.aqi === null ? null : h("span", { class: "screen-aqi", style: { background: c.aqi_color ?? "#5f6368" } }, `${t("screen.aqi")} ${c.aqi}`)),
      h("ul", { class: "screen-parks" }, ...parks.slice(0, 12).map((p) =>
        h("li", { dataset: { parkId: p.id, state: p.state } }, h("i", { style: { background: STATE_COLORS[p.state] } }),
          h("span", { class: "name" }, p.name), badge("state", p.state, STATE_COLORS)))),
    );
  };

  const refresh = async () => {
    try {
      const [o, open] = await Promise.all([
        api("/dashboard/overview"),
        api("/alerts", { status: ["pending", "active"], limit: ALERTS_SHOWN }).catch(() => null),
      ]);
      overview = o;
      lastOk = new Date();
      stale.hidden = true;
      drawTiles(tiles, o);
      const option = mapOption(o, geo, { dark: true });
      option.geo.selectedMode = "single";
      option.geo.select = { itemStyle: { areaColor: "#2b4a6f" }, label: { show: true, color: "#fff" } };
      chart.setOption(option, { replaceMerge: ["series"] });
      showCity();
      drawAlerts(alerts, open?.results ?? [], o.timezone);
      if (Date.now() - started > RELOAD_AFTER_MS) location.reload();
    } catch (error) {
      // keep what is shown; say how old it is; try again soon
      stale.hidden = false;
      stale.textContent = t("screen.stale", { time: lastOk ? fmtTime(lastOk, "Asia/Shanghai", { seconds: true }) : "—" });
      setTimeout(refresh, RETRY_MS);
      throw error;
    }
  };
  await refresh().catch(() => {});
  onChange(refresh, 2000);
  setInterval(() => refresh().catch(() => {}), POLL_MS);
  setInterval(() => { index += 1; showCity(); }, rotate);
}

function drawTiles(el, o) {
  const a = o.totals.alerts_open;
  const tile = (label, value, extra) => h("div", { class: "screen-tile" }, h("div", { class: "label" }, label),
    h("div", { class: "value" }, value, extra ? h("small", {}, extra) : null));
  el.replaceChildren(
    tile(t("screen.parks"), fmtNum(o.totals.parks)),
    tile(t("screen.online"), fmtNum(o.totals.stations_online), ` / ${fmtNum(o.totals.stations)}`),
    tile(t("screen.judged"), fmtNum(o.totals.windows_judged_today)),
    tile(t("screen.exceed"), fmtNum(o.totals.exceedances_today)),
    h("div", { class: "screen-tile" }, h("div", { class: "label" }, t("screen.alerts")),
      h("div", { class: "value" }, ...["critical", "major", "warning", "advisory"].map((s) =>
        h("span", { title: t(`severity.${s}`), style: { color: SEVERITY_COLORS[s], marginRight: "18px" } }, fmtNum(a[s]))))),
  );
}

function drawAlerts(el, rows, timeZone) {
  el.replaceChildren(h("h2", {}, t("screen.alerts")), rows.length
    ? h("ul", {}, ...rows.map((r) => h("li", { dataset: { alertId: r.id } },
      badge("severity", r.severity, SEVERITY_COLORS), " ",
      h("span", {}, r.station_name ?? r.station_id), " ",
      h("span", { class: "muted" }, paramName(r)), " ",
      h("span", { class: "muted" }, fmtTime(r.first_seen, timeZone)))))
    : h("p", { class: "muted" }, t("screen.no_alerts")));
}
