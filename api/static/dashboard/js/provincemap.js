// The province's map (一张图), shared by the province page and the big screen: city outlines
// coloured by their AQI, each park a marker coloured by its state (docs/dashboard.md#the-map).
import { ROOT, STATE_COLORS, charts, t } from "./core.js";

const MAP = "hunan";
const MAP_URL = `${ROOT}/assets/maps/hunan.json`;
// States drawn last lie on top: an exceedance is never hidden under a compliant neighbour.
export const STATE_ORDER = ["no_stations", "compliant", "offline", "data_problem", "exceedance"];
// Parks of a city without a location stand around its centre, turning by the golden angle.
const SPREAD = 0.06;
const GOLDEN = Math.PI * (3 - Math.sqrt(5));

let geoPromise = null;

/** The GeoJSON of the province's cities, loaded and registered with ECharts once. */
export function loadGeo() {
  geoPromise ??= Promise.all([fetch(MAP_URL).then((r) => {
    if (!r.ok) throw new Error(`map outlines: HTTP ${r.status}`);
    return r.json();
  }), charts()]).then(([geo, echarts]) => {
    echarts.registerMap(MAP, geo);
    for (const f of geo.features) {
      echarts.registerMap(`${MAP}:${f.properties.name}`, { type: "FeatureCollection", features: [f] });
    }
    return geo;
  });
  return geoPromise;
}

/** Where each park is drawn: its own location, or a place around its city's centre. */
export function positions(parks, geo) {
  const centres = Object.fromEntries(geo.features.map((f) => [f.properties.name, f.properties.center]));
  const placed = {};
  const out = new Map();
  for (const p of parks) {
    if (p.location) { out.set(p.id, [p.location.lon, p.location.lat]); continue; }
    const c = centres[p.city];
    if (!c) continue;  // a city the map does not have: listed, not drawn
    const n = (placed[p.city] = (placed[p.city] ?? 0) + 1);
    const r = SPREAD * Math.sqrt(n), a = GOLDEN * n;
    out.set(p.id, [c[0] + r * Math.cos(a), c[1] + r * Math.sin(a)]);
  }
  return out;
}

/** The ECharts option of the map for `overview` (narrowed to `city` when given). */
export function mapOption(overview, geo, { city = null, dark = false, labels = true } = {}) {
  const where = positions(overview.parks, geo);
  const aqi = Object.fromEntries(overview.cities.map((c) => [c.name, c]));
  const regions = geo.features.map((f) => {
    const c = aqi[f.properties.name];
    return {
      name: f.properties.name,
      itemStyle: { areaColor: c?.aqi_color ? tint(c.aqi_color, dark ? 0.2 : 0.25) : (dark ? "#16263a" : "#eef1f5") },
    };
  });
  const series = STATE_ORDER.map((state) => ({
    id: `parks-${state}`,
    name: t(`state.${state}`),
    type: state === "exceedance" ? "effectScatter" : "scatter",
    coordinateSystem: "geo",
    symbolSize: state === "exceedance" ? (dark ? 22 : 16) : (dark ? 14 : 10),
    rippleEffect: { scale: 3, brushType: "stroke" },
    itemStyle: { color: STATE_COLORS[state], borderColor: dark ? "#0b1420" : "#fff", borderWidth: 1 },
    zlevel: STATE_ORDER.indexOf(state),
    data: overview.parks.filter((p) => p.state === state && where.has(p.id)).map((p) => ({
      name: p.name, value: [...where.get(p.id), 1], park: p,
    })),
  }));
  return {
    animation: false,
    tooltip: {
      trigger: "item",
      formatter: (item) => {
        const p = item.data?.park;
        if (!p) {
          const c = aqi[item.name];
          return c ? `${escape(item.name)}<br>AQI ${c.aqi ?? "—"} ${escape(c.aqi_category ?? "")}` : escape(item.name);
        }
        return `${escape(p.name)}<br>${t(`state.${p.state}`)}<br>${p.stations_online}/${p.stations} ${t("map.online")}`;
      },
    },
    geo: {
      map: city ? `${MAP}:${city}` : MAP,
      roam: true,
      layoutCenter: ["50%", "50%"],
      layoutSize: "96%",
      selectedMode: false,
      // below the centre, where the parks of a city without locations stand
      label: { show: labels && !city, color: dark ? "#9aa0a6" : "#5f6368", fontSize: dark ? 16 : 12, offset: [0, 14] },
      emphasis: { label: { show: true }, itemStyle: { areaColor: dark ? "#23364f" : "#dbe7f7" } },
      itemStyle: { borderColor: dark ? "#4a6382" : "#9aa7b8", borderWidth: 1 },
      regions,
    },
    series,
  };
}

// A light version of an AQI colour for a region's fill.
function tint(hex, alpha) {
  const m = /^#?([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(hex);
  if (!m) return hex;
  const [r, g, b] = m.slice(1).map((x) => parseInt(x, 16));
  return `rgba(${r}, ${g}, ${b}, ${alpha})`;
}

// Tooltips are HTML in ECharts: names from the registry are escaped.
function escape(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}
