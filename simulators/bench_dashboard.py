"""`parkwatch bench dashboard`: the province page's first meaningful paint (issue 16: under 1 s at 150 parks).

A scratch province filled as a day of running leaves it (station activity with a few stations
offline, a day of hourly verdicts per station and parameter, open alerts of every family, hourly
AQI of the air stations, a day of minute data for one parameter per station), served in-process
with the dashboard's local viewer on. Then, at the full size and at a small one in the same run:
the two dashboard routes' latency and size over HTTP, and the page `/` in Debian's Chromium, cold
(a fresh browser context each load) and warm (the same context again): first contentful paint,
and the first meaningful paint, the frame after the page has drawn its parks (table and map).
The resource timings of each load say where the time went; EXPLAIN ANALYZE of the overview's
statements, in the local viewer's scope, says which query costs most.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import math
import os
import platform
import shutil
import statistics
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import orjson

from api.access import LOCAL_VIEWER_MAKER, LOCAL_VIEWER_NAME, SELECT_LOCAL_VIEWER, enter_scope
from api.app import create_app
from api.principals import Principal, Role
from api.routes import dashboard
from parkwatch.embedded.process import pick_port
from parkwatch.serve import serving_asgi
from parkwatch.settings import Settings
from schemas.catalogue import catalogue
from simulators.fleet import province
from simulators.scratch import drop, recreate, with_db

# Issue 16's target for the province page, at 150 parks and 2,000 stations.
TARGET_MS = 1000.0
# The size the ratio is taken against, in the same run: parks, stations per park.
SMALL = (4, 6)
# API requests: this many after one warm-up, the median reported (as bench access does).
REPEATS = 7
# Page loads: this many, cold and warm, after one load that warms the browser itself.
LOADS = 5
# Runs of each statement (and of its EXPLAIN ANALYZE, whose timing of every row adds to what it
# measures) after one warm-up; the medians are reported.
EXPLAINS = 3
CHROMIUM = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
VIEWPORT = {"width": 1400, "height": 900}
# Stations whose sid % 131 is this are offline (16 in 2,100; one at the small size).
OFFLINE_EVERY, OFFLINE_AT = 131, 5
# The edition the AQI rows name: its categories and colours are what the page shows.
AQI_STANDARD = "HJ633"

FILL_READINGS = """
INSERT INTO readings (sid, pid, iv, ts, value, flag, received_at)
SELECT s.sid, sp.pid, 1, t, 10 + (s.sid % 7) + (extract(minute FROM t)::int % 5), 'N', t + interval '30 seconds'
FROM stations s
JOIN LATERAL (SELECT pid FROM station_parameters WHERE sid = s.sid ORDER BY pid LIMIT 1) sp ON true
CROSS JOIN generate_series($1::timestamptz - interval '1 day' + interval '1 minute', $1::timestamptz,
                           interval '1 minute') AS t
"""
FILL_SERIES = "INSERT INTO series (sid, pid, iv) SELECT DISTINCT sid, pid, iv FROM readings ON CONFLICT DO NOTHING"
# Every parameter of every station with a standard, each closed hour of the last day. A few
# stations (sid % 89 = 17: some parks in seven) exceed for a sixth of their hours, by 0.1 to 1.5
# times the limit (alerts of each severity); elsewhere one window in 600 did, more than six hours
# ago (today's exceedances, their alerts since cleared).
FILL_VERDICTS = """
INSERT INTO verdicts (sid, pid, window_kind, window_start, window_end, standard, class, verdict, value, value_judged,
                      limit_value, unit, exceedance_multiple, rule, coverage, closed)
SELECT sp.sid, sp.pid, 'hour', h, h + interval '1 hour', s.attrs->>'standard', coalesce(s.attrs->>'class', '-'),
       CASE WHEN x.hit THEN 'exceedance' ELSE 'compliant' END, x.v, x.v, to_jsonb(50), p.unit,
       CASE WHEN x.hit THEN (x.v - 50) / 50 END, '{}', '{"minutes": 60}', true
FROM station_parameters sp
JOIN stations s ON s.sid = sp.sid
JOIN parameters p ON p.pid = sp.pid
CROSS JOIN generate_series($1::timestamptz - interval '24 hours', $1::timestamptz - interval '1 hour',
                           interval '1 hour') AS h
CROSS JOIN LATERAL (SELECT extract(hour FROM h)::int AS hr) k
CROSS JOIN LATERAL (
    SELECT CASE WHEN sp.sid % 89 = 17 THEN (sp.pid + k.hr) % 6 = 0
                ELSE (sp.sid * 7 + sp.pid * 13 + k.hr) % 600 = 0 AND h < $1::timestamptz - interval '6 hours'
           END AS hit
) e
CROSS JOIN LATERAL (
    SELECT e.hit, CASE WHEN e.hit THEN 50 * (1.1 + ((sp.sid + sp.pid + k.hr) % 15) / 10.0)
                       ELSE 50 * (0.3 + ((sp.sid * sp.pid + k.hr) % 60) / 100.0) END::float8 AS v
) x
WHERE s.attrs ? 'standard'
"""
# Open alerts: each (station, parameter) whose exceedance is in the last three hours, with the
# severity its multiple gives; the offline stations; a few stations' data-quality, early-warning,
# suspicious and watchdog ones. And each station's closed history: three cleared a month.
FILL_ALERTS = """
INSERT INTO alerts (sid, pid, rule, family, status, severity, first_seen, last_seen, activated_at, value, limit_value,
                    unit, standard, exceedance_multiple)
SELECT DISTINCT ON (v.sid, v.pid) v.sid, v.pid, 'exceedance.hour', 'exceedance', 'active',
       CASE WHEN v.exceedance_multiple >= 1 THEN 'critical' WHEN v.exceedance_multiple >= 0.5 THEN 'major'
            ELSE 'warning' END,
       v.window_start, v.window_end, v.window_end, v.value_judged, 50, v.unit, v.standard, v.exceedance_multiple
FROM verdicts v
WHERE v.verdict = 'exceedance' AND v.window_start >= $1::timestamptz - interval '3 hours'
ORDER BY v.sid, v.pid, v.window_start DESC
"""
FILL_OTHER_ALERTS = """
INSERT INTO alerts (sid, pid, rule, family, status, severity, first_seen, last_seen, activated_at)
SELECT s.sid, CASE WHEN f.rule = 'data_quality.offline' OR f.rule LIKE 'watchdog.%' THEN NULL ELSE sp.pid END,
       f.rule, split_part(f.rule, '.', 1), 'active', f.severity, $1::timestamptz - interval '3 hours', $1::timestamptz,
       $1::timestamptz - interval '150 minutes'
FROM stations s
JOIN LATERAL (SELECT pid FROM station_parameters WHERE sid = s.sid ORDER BY pid LIMIT 1) sp ON true
JOIN (VALUES ('data_quality.offline', 'major', $2::int, $3::int), ('data_quality.flatline', 'warning', 113, 3),
             ('early_warning.hour', 'advisory', 29, 7), ('suspicious.pinned_below_limit', 'warning', 151, 11),
             ('watchdog.compliance_stalled', 'critical', 307, 13)) AS f (rule, severity, every, at)
     ON s.sid % f.every = f.at
"""
FILL_CLEARED = """
INSERT INTO alerts (sid, pid, rule, family, status, severity, first_seen, last_seen, activated_at, cleared_at,
                    clear_reason, raised_at)
SELECT s.sid, sp.pid, CASE WHEN k = 2 THEN 'data_quality.flatline' ELSE 'exceedance.hour' END,
       CASE WHEN k = 2 THEN 'data_quality' ELSE 'exceedance' END, 'cleared',
       CASE WHEN k = 2 THEN 'warning' ELSE 'major' END,
       $1::timestamptz - k * interval '9 days', $1::timestamptz - k * interval '9 days' + interval '2 hours',
       $1::timestamptz - k * interval '9 days', $1::timestamptz - k * interval '9 days' + interval '3 hours',
       'compliant', $1::timestamptz - k * interval '9 days'
FROM stations s
JOIN LATERAL (SELECT pid FROM station_parameters WHERE sid = s.sid ORDER BY pid LIMIT 1) sp ON true
CROSS JOIN generate_series(1, 3) AS k
"""
# Last: online stations sent just now, the offline ones three hours ago. Run again before each
# phase of measures, so that a long run does not let them all fall offline.
FILL_ACTIVITY = """
INSERT INTO station_activity (sid, last_received_at, last_ts)
SELECT sid, CASE WHEN sid % $2 = $3 THEN now() - interval '3 hours' ELSE now() END,
       CASE WHEN sid % $2 = $3 THEN $1::timestamptz - interval '3 hours' ELSE $1::timestamptz END
FROM stations
ON CONFLICT (sid) DO UPDATE SET last_received_at = excluded.last_received_at, last_ts = excluded.last_ts
"""
AMBIENT = "SELECT sid FROM stations WHERE kind = 'ambient_air' ORDER BY sid"
COUNTS = """
SELECT (SELECT count(*) FROM readings) AS readings, (SELECT count(*) FROM verdicts) AS verdicts,
       (SELECT count(*) FROM alerts WHERE status <> 'cleared') AS open_alerts, (SELECT count(*) FROM aqi) AS aqi
"""

# Installed before the page's own scripts: marks when ECharts starts evaluating (its UMD wrapper
# assigns window.echarts first) and when the parks are drawn, then the frame after (the paint).
MARK = """
(() => {
  const b = (window.__pwBench = {});
  let ec;
  Object.defineProperty(window, "echarts", { configurable: true, enumerable: true, get: () => ec,
    set: (v) => { ec = v; b.echartsAt ??= performance.now(); } });
  const drawn = () => document.querySelector("#park-list tr[data-park-id]")
    && document.querySelector("#province-map[data-parks]");
  new MutationObserver((_, observer) => {
    if (b.drawn || !drawn()) return;
    b.drawn = performance.now();
    observer.disconnect();
    requestAnimationFrame(() => setTimeout(() => { b.painted = performance.now(); }, 0));
  }).observe(document, { childList: true, subtree: true, attributes: true, attributeFilter: ["data-parks"] });
})();
"""
COLLECT = """
() => {
  const b = window.__pwBench, nav = performance.getEntriesByType("navigation")[0];
  const fcp = performance.getEntriesByName("first-contentful-paint")[0];
  return {
    fcp: fcp ? fcp.startTime : null, drawn: b.drawn, painted: b.painted, echarts_at: b.echartsAt ?? null,
    html_end: nav.responseEnd, dcl: nav.domContentLoadedEventStart,
    resources: performance.getEntriesByType("resource").map((e) => ({
      name: e.name, start: e.startTime, ttfb: e.responseStart, end: e.responseEnd, transfer: e.transferSize,
      body: e.encodedBodySize })),
  };
}
"""
# The resources each load's breakdown follows, by the end of their URL.
RESOURCES = {
    "echarts": "/assets/vendor/echarts.min.js",
    "map": "/assets/maps/hunan.json",
    "session": "/api/v1/session",
    "overview": "/api/v1/dashboard/overview",
    "page_js": "/assets/js/pages/province.js",
}


def _chromium() -> str | None:
    found = next((p for p in CHROMIUM if Path(p).exists()), None)
    return found or shutil.which("chromium")


def _day_start(timezone: str) -> datetime:
    """The start of today where the province is: what the overview's 'today' counts from."""
    return datetime.now(ZoneInfo(timezone)).replace(hour=0, minute=0, second=0, microsecond=0)


async def _fill(url: str, now: datetime) -> dict[str, int]:
    hour = now.replace(minute=0)
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(FILL_READINGS, now)
        await conn.execute(FILL_SERIES)
        await conn.execute(FILL_VERDICTS, hour)
        await conn.execute(FILL_ALERTS, hour)
        await conn.execute(FILL_OTHER_ALERTS, hour, OFFLINE_EVERY, OFFLINE_AT)
        await conn.execute(FILL_CLEARED, hour)
        await conn.copy_records_to_table(
            "aqi",
            records=_aqi_rows([r["sid"] for r in await conn.fetch(AMBIENT)], hour),
            columns=["sid", "period", "window_start", "window_end", "standard", "aqi", "level", "category", "color",
                     "primary_pollutants", "iaqi", "concentrations", "closed"],
        )  # fmt: skip
        await conn.execute(FILL_ACTIVITY, now, OFFLINE_EVERY, OFFLINE_AT)
        # as autovacuum keeps a running system, and so that it does not start during the measures
        await conn.execute("VACUUM (ANALYZE)")
        counts = dict(await conn.fetchrow(COUNTS) or {})
    finally:
        await conn.close()
    return counts


def _aqi_rows(sids: list[int], hour: datetime) -> list[tuple[Any, ...]]:
    """A day of hourly AQI per air station, 30 to 170 (优 to 中度污染), categories from the edition in force."""
    edition = catalogue().resolve(AQI_STANDARD, hour.date())
    table = edition.aqi
    if table is None:
        raise ValueError(f"{edition.id} has no AQI table")
    rows = []
    for sid in sids:
        for k in range(1, 25):
            start = hour - timedelta(hours=k)
            aqi = 30 + (sid * 37 + start.hour * 11) % 140
            cat = next(c for c in table.categories if c.max is None or aqi <= c.max)
            primary = ["PM2.5"] if aqi > 50 else []
            iaqi = orjson.dumps({"pm25": aqi, "pm10": aqi - 10, "so2": 12, "no2": 20, "co": 8, "o3_1h": 30}).decode()
            conc = orjson.dumps({"pm25": aqi * 0.7, "pm10": aqi, "so2": 10, "no2": 25, "co": 0.6, "o3_1h": 60}).decode()
            rows.append((sid, "1h", start, start + timedelta(hours=1), edition.id, aqi, cat.level, cat.category,
                         cat.color, primary, iaqi, conc, True))  # fmt: skip
    return rows


async def _activity(url: str, now: datetime) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(FILL_ACTIVITY, now, OFFLINE_EVERY, OFFLINE_AT)
    finally:
        await conn.close()


async def _api(client: httpx.AsyncClient, path: str) -> dict[str, float]:
    """Median milliseconds of a GET (the local viewer: no key) after a warm-up, and the body's bytes."""
    times, size = [], 0
    for attempt in range(REPEATS + 1):
        started = time.perf_counter()
        r = await client.get(path)
        r.raise_for_status()
        size = len(r.content)
        if attempt:
            times.append((time.perf_counter() - started) * 1000)
    return {"ms": statistics.median(times), "bytes": size}


def _breakdown(load: dict[str, Any]) -> dict[str, Any]:
    """One load's milestones (ms from navigation start) and the sizes transferred."""
    out: dict[str, Any] = {k: load[k] for k in ("fcp", "drawn", "painted", "echarts_at", "html_end", "dcl")}
    for key, tail in RESOURCES.items():
        entry = next((e for e in load["resources"] if e["name"].split("?")[0].endswith(tail)), None)
        out[f"{key}_start"] = entry["start"] if entry else None
        out[f"{key}_ttfb"] = entry["ttfb"] if entry else None
        out[f"{key}_end"] = entry["end"] if entry else None
        out[f"{key}_transfer"] = entry["transfer"] if entry else None
    done = [e for e in load["resources"] if "/dashboard/stream" not in e["name"]]
    out["transfer"] = sum(e["transfer"] for e in done)
    out["requests"] = len(done)
    if load["painted"] is not None and out["overview_end"] is not None:
        out["render"] = load["painted"] - out["overview_end"]  # the overview's JSON to a drawn frame
    return out


def _median(loads: list[dict[str, Any]]) -> dict[str, Any]:
    keys = loads[0].keys()
    return {k: statistics.median(v) if (v := [x[k] for x in loads if x.get(k) is not None]) else None for k in keys}


async def _browser(base: str, executable: str) -> dict[str, Any]:
    """Cold loads (a fresh context each: nothing cached) and warm ones (the same context reloaded)."""
    from playwright.async_api import async_playwright  # noqa: PLC0415 - the dev extra's: imported when run

    async def load(page: Any, reload: bool) -> dict[str, Any]:
        if reload:
            await page.reload(wait_until="commit")
        else:
            await page.goto(f"{base}/", wait_until="commit")
        await page.wait_for_function("() => window.__pwBench && window.__pwBench.painted", timeout=60_000)
        await page.wait_for_selector("#park-list tr[data-park-id]", state="attached")
        return _breakdown(await page.evaluate(COLLECT))

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            errors: list[str] = []

            async def context() -> tuple[Any, Any]:
                ctx = await browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
                await ctx.add_init_script(MARK)
                page = await ctx.new_page()
                page.on("pageerror", lambda e: errors.append(str(e)))
                page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
                return ctx, page

            ctx, page = await context()  # the browser's own first start, not counted
            await load(page, False)
            await ctx.close()
            cold = []
            for _ in range(LOADS):
                ctx, page = await context()
                cold.append(await load(page, False))
                await ctx.close()
            ctx, page = await context()
            await load(page, False)
            warm = [await load(page, True) for _ in range(LOADS)]
            await ctx.close()
        finally:
            await browser.close()
    return {"cold": _median(cold), "warm": _median(warm), "cold_loads": cold, "warm_loads": warm, "errors": errors}


async def _explain(url: str, settings: Settings) -> list[dict[str, Any]]:
    """EXPLAIN ANALYZE of the overview's statements on a connection in the local viewer's scope."""
    statements = [
        ("SELECT_PARKS", dashboard.SELECT_PARKS, (None, settings.ALERT_OFFLINE_AFTER)),
        ("SELECT_OPEN_ALERTS", dashboard.SELECT_OPEN_ALERTS, (None,)),
        ("SELECT_JUDGED_TODAY", dashboard.SELECT_JUDGED_TODAY, (_day_start(settings.DEFAULT_TIMEZONE), None)),
        ("SELECT_AQI", dashboard.SELECT_AQI, (None,)),
    ]
    conn = await asyncpg.connect(url)
    try:
        viewer = await conn.fetchval(SELECT_LOCAL_VIEWER, LOCAL_VIEWER_NAME, LOCAL_VIEWER_MAKER)
        await enter_scope(conn, Principal(id=int(viewer), kind="key", name=LOCAL_VIEWER_NAME, role=Role.INSPECTOR))
        out = []
        for name, sql, args in statements:
            rows = len(await conn.fetch(sql, *args))
            times, explained, plan = [], [], ""
            for _ in range(EXPLAINS):
                started = time.perf_counter()
                await conn.fetch(sql, *args)
                times.append((time.perf_counter() - started) * 1000)
                lines = [r[0] for r in await conn.fetch(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", *args)]
                explained.append(float(next(x for x in lines if x.startswith("Execution Time")).split()[2]))
                plan = "\n".join(lines)
            out.append({"statement": name, "ms": statistics.median(times), "explain_ms": statistics.median(explained),
                        "rows": rows, "plan": plan})  # fmt: skip
    finally:
        await conn.close()
    return out


async def _size(settings: Settings, url: str, parks: int, per_park: int, *, explain: bool) -> dict[str, Any]:
    registry = province(parks=parks, stations_per_park=per_park)
    label = f"{parks} parks, {len(registry.stations):,} stations"
    print(f"  {label}:", flush=True)
    await recreate(url, timescale=settings.TIMESCALE, registry=registry)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    started = time.perf_counter()
    counts = await _fill(url, now)
    print(
        f"    filled in {time.perf_counter() - started:.1f} s: {counts['readings']:,} readings, "
        f"{counts['verdicts']:,} hourly verdicts, {counts['open_alerts']:,} open alerts, {counts['aqi']:,} AQI hours",
        flush=True,
    )
    park = registry.parks[0].id
    port = pick_port(settings.API_PORT + 9)
    app_settings = settings.model_copy(
        update={"DATABASE_URL": url, "API_RATE_LIMIT": 1_000_000, "DASHBOARD_LOCAL_VIEWER": True}
    )
    out: dict[str, Any] = {"parks": parks, "stations": len(registry.stations), "fill": counts}
    base = f"http://127.0.0.1:{port}"
    async with (
        serving_asgi(create_app(app_settings), "127.0.0.1", port),
        httpx.AsyncClient(base_url=base, timeout=120) as client,
    ):
        await _activity(url, now)
        out["overview"] = await _api(client, "/api/v1/dashboard/overview")
        parks_now = (await client.get("/api/v1/dashboard/overview")).json()["parks"]
        out["states"] = dict(Counter(p["state"] for p in parks_now).most_common())
        print("    parks by state: " + ", ".join(f"{n} {state}" for state, n in out["states"].items()), flush=True)
        out["park"] = await _api(client, f"/api/v1/dashboard/parks/{park}")
        for key, path in (("overview", "/dashboard/overview"), (f"park {park}", f"/dashboard/parks/{park}")):
            fig = out["overview" if key == "overview" else "park"]
            print(f"    API GET {path:<28} {fig['ms']:8.1f} ms  {fig['bytes']:>10,} bytes", flush=True)
        executable = _chromium()
        if executable is None:
            print("    browser: no Chromium (apt-get install chromium); page loads not measured", flush=True)
        else:
            await _activity(url, now)
            out["browser"] = await _browser(base, executable)
            for kind in ("cold", "warm"):
                m = out["browser"][kind]
                print(
                    f"    page / {kind}: first contentful paint {m['fcp']:6.0f} ms, first meaningful paint "
                    f"{m['painted']:6.0f} ms ({m['requests']} requests, {m['transfer'] / 1024:,.0f} KB transferred)",
                    flush=True,
                )
            _where(out["browser"]["cold"])
            if out["browser"]["errors"]:
                print(f"    page errors: {out['browser']['errors'][:5]}", flush=True)
        if explain:
            out["explain"] = await _explain(url, settings)
    return out


def _where(m: dict[str, Any]) -> None:
    """Where a cold load's time goes: the milestones, in order (medians, ms from navigation start)."""

    def at(key: str) -> str:
        return "-" if m.get(key) is None else f"{m[key]:.0f}"

    def kb(key: str) -> str:
        return "-" if m.get(key) is None else f"{m[key] / 1024:,.0f} KB"

    print(
        f"      cold, ms from navigation start: html {at('html_end')}, echarts.min.js {at('echarts_start')}-"
        f"{at('echarts_end')} ({kb('echarts_transfer')}), evaluated {at('echarts_at')}-{at('dcl')} "
        "(DOMContentLoaded),\n"
        f"      hunan.json -{at('map_end')} ({kb('map_transfer')}), province.js -{at('page_js_end')}, "
        f"overview {at('overview_start')}-{at('overview_end')} (first byte {at('overview_ttfb')}, "
        f"{kb('overview_transfer')}), drawn {at('drawn')}, painted {at('painted')} (render {at('render')})",
        flush=True,
    )


def run(settings: Settings, *, parks: int, stations: int, json_path: Path | None) -> int:
    """The `parkwatch bench dashboard` command."""
    if importlib.util.find_spec("playwright") is None:
        print("parkwatch bench dashboard needs Playwright: pip install -e '.[dev]'")
        return 2
    per_park = max(1, math.ceil(stations / parks))
    url = with_db(settings.DATABASE_URL, f"{settings.database_name}_bench_dashboard")
    for name in ("httpx", "api.access", "uvicorn.error", "schemas.migrate", "api.livefeed"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # its warning that the local viewer is on, once per size: on is what this measures
    logging.getLogger("api.app").setLevel(logging.ERROR)
    print(
        f"parkwatch bench dashboard: {parks} parks x {per_park} stations, and {SMALL[0]} x {SMALL[1]} for the ratio; "
        f"API medians of {REPEATS}, page loads medians of {LOADS} (Chromium {VIEWPORT['width']}x{VIEWPORT['height']})",
        flush=True,
    )

    async def main() -> dict[str, Any]:
        try:
            small = await _size(settings, url, *SMALL, explain=False)
            large = await _size(settings, url, parks, per_park, explain=True)
        finally:
            await drop(url)
        return {"small": small, "large": large}

    out = asyncio.run(main())
    large, small = out["large"], out["small"]
    ratios = {k: large[k]["ms"] / small[k]["ms"] for k in ("overview", "park")}
    if "browser" in large and "browser" in small:
        for kind in ("cold", "warm"):
            ratios[f"paint_{kind}"] = large["browser"][kind]["painted"] / small["browser"][kind]["painted"]
    out["ratios"] = ratios
    print(
        f"  ratio {large['parks']} parks / {small['parks']}: "
        + ", ".join(f"{k.replace('_', ' ')} {v:.2f}x" for k, v in ratios.items()),
        flush=True,
    )
    if "browser" in large:
        paint = large["browser"]["cold"]["painted"]
        out["target_met"] = paint < TARGET_MS
        verdict = "met" if out["target_met"] else "NOT met"
        print(
            f"  issue 16 (first meaningful paint under {TARGET_MS / 1000:.0f} s at {large['parks']} parks, "
            f"{large['stations']:,} stations): {paint:.0f} ms cold, {large['browser']['warm']['painted']:.0f} ms warm"
            f" — {verdict}",
            flush=True,
        )
    explained = sorted(large.get("explain", []), key=lambda e: -e["ms"])
    if explained:
        print(f"  the overview's statements at {large['parks']} parks (the local viewer's scope, medians):")
        for e in explained:
            print(
                f"    {e['statement']:<22} {e['ms']:8.2f} ms (EXPLAIN ANALYZE {e['explain_ms']:.2f} ms)  "
                f"{e['rows']:>6,} rows",
                flush=True,
            )
        print(f"  the slowest, {explained[0]['statement']}:")
        print("\n".join(f"    {line}" for line in explained[0]["plan"].splitlines()), flush=True)
    print(f"machine: {os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}")
    if json_path is not None:
        json_path.write_bytes(orjson.dumps(out, option=orjson.OPT_INDENT_2))
        print(f"figures written to {json_path}")
    return 0
