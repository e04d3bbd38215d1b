"""`parkwatch bench kpis`: what the KPIs and the assessment of a province cost, from scratch and per late hour.

The KPIs are computed on read from the hourly and daily rollups and the judged windows
(docs/kpis.md). This benchmark fills a scratch database with what a month of minute data leaves
behind for a simulated province (simulators/fleet.py: parks of a plant, an enterprise outlet,
an air station and stacks) — rollups and verdicts written directly in SQL, since writing and
judging the minute data themselves is `parkwatch bench compliance`'s subject — then times:

1. every KPI of every park, city and station for the month, the caps of the year, the
   assessment, and the KPI alert job, from scratch;
2. one late hour of minute data for one station: written by the ingest's path, rolled up and
   re-judged by the worker, and read back by the next KPI query (there is no KPI cache).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import platform
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from alerts.kpi import check_kpis
from compliance.assessment import assessment
from compliance.kpis import kpis
from compliance.loads import cap_positions
from compliance.targets import province_targets
from compliance.worker import ComplianceWorker
from ingest.batch import Batch
from ingest.rows import Row
from ingest.store import Store
from parkwatch.settings import Settings
from simulators.fleet import province
from simulators.scratch import recreate, with_db

CST = ZoneInfo("Asia/Shanghai")
# A typical hourly mean per code; others get 1.0. Values vary ±30 % hour by hour.
TYPICAL = {
    "a21026": 120.0, "a21002": 250.0, "a34013": 15.0, "a19001": 10.5, "a00000": 60.0, "a01012": 120.0,
    "a01014": 8.0, "w01018": 35.0, "w21003": 3.0, "w21011": 0.35, "w21001": 12.0, "w00000": 120.0,
    "w01001": 7.2, "w01010": 18.0, "a34004": 45.0, "a34002": 80.0, "a21004": 30.0, "a05024": 90.0, "a21005": 0.8,
}  # fmt: skip
# The limits the synthetic verdicts are judged by (roughly those of the fleet's standards).
LIMITS = {"stack": {"a21026": 200.0, "a21002": 400.0, "a34013": 20.0},
          "wastewater_outlet": {"w01018": 50.0, "w21003": 5.0, "w21011": 0.5},
          "ambient_air": {"a34004": 75.0, "a34002": 150.0, "a21026": 150.0}}  # fmt: skip
WINDOW = {"stack": "hour", "wastewater_outlet": "day", "ambient_air": "24h"}
# The shares of station-hours missing and half-covered, so that rates are not all 1.
MISSING_HOURS = 0.02
HALF_HOURS = 0.03

SYNTH_HOURS = """
INSERT INTO rollup_hour (sid, pid, hour, source_iv, n_observed, n_valid, n_over_range, observed_minutes,
                         valid_minutes, measured_minutes, maintenance_minutes, avg, vmin, vmax, avg_lower)
SELECT sid, pid, h, 1, v, v, 0, v, v, v, 0, a, a * 0.8, a * 1.2, a
FROM (
    SELECT sp.sid, sp.pid, h, CASE WHEN random() < $5 THEN 30 ELSE 60 END AS v,
           coalesce(t.typical, 1.0) * (0.7 + 0.6 * random()) AS a, random() AS r
    FROM station_parameters sp JOIN parameters p USING (pid)
    LEFT JOIN unnest($3::text[], $4::float8[]) AS t(code, typical) ON t.code = p.code
    CROSS JOIN generate_series($1::timestamptz, $2::timestamptz - interval '1 hour', interval '1 hour') AS h
) x
WHERE r >= $6
"""
SYNTH_DAYS = """
INSERT INTO rollup_day (sid, pid, day, day_start, hours_expected, hours_observed, hours_valid, n_observed, n_valid,
                        avg, avg_flow_weighted, vmin, vmax)
SELECT sid, pid, d, d::timestamp AT TIME ZONE 'Asia/Shanghai', 24, count(*),
       count(*) FILTER (WHERE valid_minutes >= 45), sum(n_observed), sum(n_valid),
       avg(avg) FILTER (WHERE valid_minutes >= 45), NULL, min(vmin), max(vmax)
FROM (SELECT *, (hour AT TIME ZONE 'Asia/Shanghai')::date AS d FROM rollup_hour) h
GROUP BY sid, pid, d
"""
# Verdicts of the windows each kind is judged by; triggers are off (session_replication_role) so
# that a month of history does not flood the alert inbox.
SYNTH_VERDICTS = """
INSERT INTO verdicts (sid, pid, window_kind, window_start, window_end, standard, class, verdict, value,
                      value_judged, limit_value, unit, exceedance_multiple, rule, coverage, closed)
SELECT w.sid, w.pid, $1, w.start, w.start + $2::text::interval, 'bench', 'bench',
       CASE WHEN w.valid THEN CASE WHEN w.value > l.lim THEN 'exceedance' ELSE 'compliant' END
            ELSE 'insufficient_data' END,
       w.value, w.value, to_jsonb(l.lim), 'mg/m3', CASE WHEN w.value > l.lim THEN w.value / l.lim - 1 END,
       '{}'::jsonb, '{}'::jsonb, true
FROM (
    SELECT sid, pid, hour AS start, avg AS value, valid_minutes >= 45 AS valid FROM rollup_hour WHERE $1 = 'hour'
    UNION ALL
    SELECT sid, pid, day_start, avg, hours_valid >= 20 FROM rollup_day WHERE $1 <> 'hour'
) w
JOIN stations s ON s.sid = w.sid AND s.kind = $3
JOIN parameters p ON p.pid = w.pid
JOIN unnest($4::text[], $5::float8[]) AS l(code, lim) ON l.code = p.code
"""

COUNT = {t: f"SELECT count(*) FROM {t}" for t in ("rollup_hour", "rollup_day", "verdicts")}


async def _timed(label: str, work: Callable[[], Awaitable[Any]], out: dict[str, float]) -> Any:
    started = time.perf_counter()
    result = await work()
    out[label] = time.perf_counter() - started
    print(f"    {label:<44}{out[label]:>8.2f} s", flush=True)
    return result


async def fill(url: str, month: date, days: int) -> dict[str, int]:
    """A month of rollups and verdicts for every station of the scratch database."""
    lo = datetime(month.year, month.month, month.day, tzinfo=CST)
    hi = lo + timedelta(days=days)
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("SET session_replication_role = replica")
        await conn.execute(SYNTH_HOURS, lo, hi, list(TYPICAL), list(TYPICAL.values()), HALF_HOURS, MISSING_HOURS)
        await conn.execute(SYNTH_DAYS)
        for kind, limits in LIMITS.items():
            span = "1 hour" if WINDOW[kind] == "hour" else "1 day"
            await conn.execute(SYNTH_VERDICTS, WINDOW[kind], span, kind, list(limits), list(limits.values()))
        counts = {
            t: await conn.fetchval(f"SELECT count(*) FROM {t}") for t in ("rollup_hour", "rollup_day", "verdicts")
        }
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    return counts


async def late_hour(url: str, station: str, hour: datetime) -> tuple[int, float, float]:
    """One hour of minute data for one station arriving late: (readings, write s, rollup and rejudge s)."""
    conn = await asyncpg.connect(url)
    try:
        sid = await conn.fetchval("SELECT sid FROM stations WHERE id = $1", station)
        params = await conn.fetch(
            "SELECT p.pid, p.code FROM station_parameters sp JOIN parameters p USING (pid) WHERE sp.sid = $1", sid
        )
    finally:
        await conn.close()
    now = datetime.now(UTC)
    rows: list[Row] = [
        (sid, r["pid"], 1, hour + timedelta(minutes=m), TYPICAL.get(r["code"], 1.0), "N", now, None, None, None, None)
        for m in range(60)
        for r in params
    ]
    store = Store(url)
    started = time.perf_counter()
    try:
        await store.write(Batch(rows=rows))
    finally:
        await store.close()
    write_s = time.perf_counter() - started
    conn = await asyncpg.connect(url)
    try:
        started = time.perf_counter()
        await ComplianceWorker(url).drain(conn)
        judge_s = time.perf_counter() - started
    finally:
        await conn.close()
    return len(rows), write_s, judge_s


def run(settings: Settings, *, parks: int, stations: int, json_path: Path | None, days: int = 30) -> int:
    """The `parkwatch bench kpis` command."""
    per_park = max(1, math.ceil(stations / parks))
    registry = province(parks=parks, stations_per_park=per_park)
    url = with_db(settings.DATABASE_URL, f"{settings.database_name}_bench_kpis")
    month = date(2026, 11, 1)
    now = datetime(2026, 12, 1, 0, 30, tzinfo=CST)  # the month just ended, the year under way
    targets = province_targets(settings)
    print(
        f"parkwatch bench kpis: {parks} parks, {len(registry.stations)} stations ({per_park} a park), "
        f"{days} days of rollups and verdicts",
        flush=True,
    )

    async def main() -> dict[str, Any]:
        out: dict[str, Any] = {"timings_s": {}}
        t: dict[str, float] = out["timings_s"]
        print("  1/3 scratch database, registry, a month of rollups and verdicts ...", flush=True)
        await recreate(url, timescale=settings.TIMESCALE, registry=registry)
        started = time.perf_counter()
        out["rows"] = await fill(url, month, days)
        out["fill_s"] = time.perf_counter() - started
        print(f"    {out['rows']} in {out['fill_s']:.1f} s", flush=True)
        print("  2/3 every figure from scratch ...", flush=True)
        conn = await asyncpg.connect(url)
        try:
            kw: dict[str, Any] = {"period": "month", "on": month, "now": now, "targets": targets}
            parks_rows = await _timed("KPIs per park (month)", lambda: kpis(conn, level="park", **kw), t)
            await _timed("KPIs per city (month)", lambda: kpis(conn, level="city", **kw), t)
            await _timed("KPIs per station (month)", lambda: kpis(conn, level="station", **kw), t)
            caps = await _timed("loads against caps (year to date)", lambda: cap_positions(conn, year=2026, now=now), t)
            result = await _timed(
                "assessment (month)",
                lambda: assessment(conn, period="month", on=month, now=now, targets=targets),
                t,
            )
            await _timed(
                "KPI alert job kpi-targets (15 min)", lambda: check_kpis(conn, settings, now=now, caps=False), t
            )
            await _timed(
                "KPI alert job kpi-caps (hourly)", lambda: check_kpis(conn, settings, now=now, targets=False), t
            )
        finally:
            await conn.close()
        out["parks_with_treatment_rate"] = sum(1 for r in parks_rows if r.get("treatment_rate") is not None)
        out["caps"] = len(caps)
        out["ranked"] = sum(1 for c in result.cards if c.rank is not None)
        print("  3/3 one late hour for one station ...", flush=True)
        station = registry.stations[0].id
        readings, write_s, judge_s = await late_hour(url, station, datetime(2026, 11, 15, 10, tzinfo=CST))
        out["late"] = {"station": station, "readings": readings, "write_s": write_s, "rollup_rejudge_s": judge_s}
        conn = await asyncpg.connect(url)
        try:
            await _timed("KPIs per park after the late hour", lambda: kpis(conn, level="park", **kw), t)
        finally:
            await conn.close()
        return out

    out = asyncio.run(main())
    t = out["timings_s"]
    scratch = t["KPIs per park (month)"] + t["KPIs per city (month)"] + t["KPIs per station (month)"]
    scratch += t["loads against caps (year to date)"] + t["assessment (month)"]
    late = out["late"]
    machine = f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}"
    print()
    print(f"machine: {machine}")
    print(
        f"every KPI (park, city, station), caps and the assessment from scratch: {scratch:.1f} s; "
        f"the KPI alert jobs: kpi-targets {t['KPI alert job kpi-targets (15 min)']:.1f} s, "
        f"kpi-caps {t['KPI alert job kpi-caps (hourly)']:.1f} s"
    )
    print(
        f"rows read from: {out['rows']['rollup_hour']:,} hourly rollups, {out['rows']['rollup_day']:,} daily, "
        f"{out['rows']['verdicts']:,} verdicts; {out['parks_with_treatment_rate']} parks with a treatment rate, "
        f"{out['caps']} caps, {out['ranked']} parks ranked"
    )
    incremental = late["write_s"] + late["rollup_rejudge_s"]
    print(
        f"a late hour ({late['readings']} readings of {late['station']}): written {late['write_s']:.2f} s, rolled up "
        f"and re-judged {late['rollup_rejudge_s']:.2f} s = {incremental / scratch:.4f}× the from-scratch KPI time; "
        f"the next read includes it ({t['KPIs per park after the late hour']:.2f} s, no cache to refresh)"
    )
    if json_path is not None:
        json_path.write_text(json.dumps({"machine": machine, **out}, indent=2, default=str))
        print(f"figures written to {json_path}")
    return 0
