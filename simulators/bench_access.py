"""`parkwatch bench access`: what the row-level security of each role costs the API's reads.

A scratch province (150 parks by default) with a day of minute readings per station, hourly
verdicts and an alert per station; the same requests over HTTP with an administrator's key
(the owner: no policy applies) and with scoped keys (bureau of the province, of a city, a park's
operator, an inspector), each repeated; medians and their ratio to the administrator's.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import platform
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson

from api.app import create_app
from api.principals import Role, Scope, create_key
from parkwatch.embedded.process import pick_port
from parkwatch.serve import serving_asgi
from parkwatch.settings import Settings
from simulators.fleet import province
from simulators.scratch import drop, recreate, with_db

DAY = datetime(2026, 11, 2, tzinfo=UTC)
# Each request this many times after one warm-up; the median is what is reported.
REPEATS = 7

FILL_READINGS = """
INSERT INTO readings (sid, pid, iv, ts, value, flag, received_at)
SELECT s.sid, sp.pid, 1, t, 10 + (s.sid % 7), 'N', t + interval '1 minute'
FROM stations s
JOIN LATERAL (SELECT pid FROM station_parameters WHERE sid = s.sid ORDER BY pid LIMIT 1) sp ON true
CROSS JOIN generate_series($1::timestamptz, $1::timestamptz + interval '1 day' - interval '1 minute',
                           interval '1 minute') AS t
"""
# The ingest keeps the list of series beside the readings; /readings walks it.
FILL_SERIES = "INSERT INTO series (sid, pid, iv) SELECT DISTINCT sid, pid, iv FROM readings ON CONFLICT DO NOTHING"
FILL_VERDICTS = """
INSERT INTO verdicts (sid, pid, window_kind, window_start, window_end, standard, class, verdict, rule, coverage,
                      closed)
SELECT s.sid, sp.pid, 'hour', h, h + interval '1 hour', 'bench', '-', 'compliant', '{}', '{}', true
FROM stations s
JOIN LATERAL (SELECT pid FROM station_parameters WHERE sid = s.sid ORDER BY pid LIMIT 1) sp ON true
CROSS JOIN generate_series($1::timestamptz, $1::timestamptz + interval '23 hours', interval '1 hour') AS h
"""
FILL_ALERTS = """
INSERT INTO alerts (sid, pid, rule, family, status, severity, first_seen, last_seen)
SELECT s.sid, sp.pid, 'exceedance.hour', 'exceedance', 'active', 'major', $1::timestamptz,
       $1::timestamptz + interval '1 hour'
FROM stations s
JOIN LATERAL (SELECT pid FROM station_parameters WHERE sid = s.sid ORDER BY pid LIMIT 1) sp ON true
"""
COUNT_READINGS = "SELECT count(*) FROM readings"


async def _fill(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(FILL_READINGS, DAY)
        await conn.execute(FILL_SERIES)
        await conn.execute(FILL_VERDICTS, DAY)
        await conn.execute(FILL_ALERTS, DAY)
        await conn.execute("ANALYZE")
        count: int = await conn.fetchval(COUNT_READINGS)
    finally:
        await conn.close()
    return count


async def _keys(url: str, park: str, city: str) -> dict[str, str]:
    conn = await asyncpg.connect(url)
    try:
        made = {}
        for name, role, scopes in (
            ("admin", Role.ADMIN, []),
            ("bureau (province)", Role.BUREAU, [Scope("province")]),
            ("bureau (city)", Role.BUREAU, [Scope("city", city)]),
            ("operator (park)", Role.OPERATOR, [Scope("park", park)]),
            ("inspector (province)", Role.INSPECTOR, [Scope("province")]),
        ):
            made[name] = (await create_key(conn, name=name, role=role, scopes=scopes, created_by="bench"))[1]
    finally:
        await conn.close()
    return made


async def _time(client: httpx.AsyncClient, key: str, path: str, params: dict[str, Any]) -> tuple[float, int]:
    """Median seconds to read every page of the request, and the rows read."""
    times, rows = [], 0
    for attempt in range(REPEATS + 1):
        started = time.perf_counter()
        cursor, rows = None, 0
        while True:
            r = await client.get(path, params={**params, **({"cursor": cursor} if cursor else {})},
                                 headers={"X-API-Key": key})  # fmt: skip
            r.raise_for_status()
            body = orjson.loads(r.content)
            rows += len(body["results"])
            cursor = body.get("next_cursor") or (body.get("meta") or {}).get("next")
            if not cursor:
                break
        if attempt:  # the first run warms the caches and the plans
            times.append(time.perf_counter() - started)
    return statistics.median(times), rows


def run(settings: Settings, *, parks: int, stations: int, json_path: Path | None) -> int:
    """The `parkwatch bench access` command."""
    per_park = max(1, math.ceil(stations / parks))
    registry = province(parks=parks, stations_per_park=per_park)
    url = with_db(settings.DATABASE_URL, f"{settings.database_name}_bench_access")
    station = registry.stations[0]
    park = station.park_id
    city = next(p.city for p in registry.parks if p.id == park)
    window = {
        "start": DAY.isoformat(),
        "end": (DAY + timedelta(days=1)).isoformat(),
        "limit": 10_000,
        "interval": "min",
    }
    requests: list[tuple[str, str, dict[str, Any], list[str]]] = [
        ("a station's day of minute data", "/api/v1/readings", {**window, "station_id": station.id},
         ["bureau (province)", "bureau (city)", "operator (park)", "inspector (province)"]),
        ("a park's day of minute data", "/api/v1/readings", {**window, "park_id": park},
         ["bureau (province)", "bureau (city)", "operator (park)"]),
        ("a park's hourly verdicts", "/api/v1/compliance",
         {"park_id": park, "start": window["start"], "end": window["end"], "limit": 1000},
         ["bureau (province)", "operator (park)"]),
        ("every open alert, in pages of 100", "/api/v1/alerts", {"status": "active", "limit": 100},
         ["bureau (province)", "bureau (city)", "operator (park)"]),
        ("the station list", "/api/v1/stations", {},
         ["bureau (province)", "bureau (city)", "operator (park)"]),
    ]  # fmt: skip
    # a line per request would drown the figures
    for name in ("httpx", "api.access", "uvicorn.error", "schemas.migrate"):
        logging.getLogger(name).setLevel(logging.WARNING)
    print(f"parkwatch bench access: {parks} parks, {len(registry.stations)} stations, a day of minute data", flush=True)

    async def main() -> dict[str, Any]:
        await recreate(url, timescale=settings.TIMESCALE, registry=registry)
        started = time.perf_counter()
        readings = await _fill(url)
        print(f"  {readings:,} readings, verdicts and alerts in {time.perf_counter() - started:.1f} s", flush=True)
        keys = await _keys(url, park, city)
        port = pick_port(settings.API_PORT + 7)
        app = create_app(settings.model_copy(update={"DATABASE_URL": url, "API_RATE_LIMIT": 1_000_000}))
        results = []
        async with (
            serving_asgi(app, "127.0.0.1", port),
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=300) as client,
        ):
            for label, path, params, roles in requests:
                base_s, base_rows = await _time(client, keys["admin"], path, params)
                figures: dict[str, dict[str, float]] = {}
                for role in roles:
                    s, rows = await _time(client, keys[role], path, params)
                    figures[role] = {"ms": s * 1000, "rows": rows, "ratio": s / base_s}
                line = {"request": label, "admin_ms": base_s * 1000, "admin_rows": base_rows, "roles": figures}
                results.append(line)
                print(f"  {label}: admin {base_s * 1000:.1f} ms ({base_rows} rows)", flush=True)
                for role, fig in figures.items():
                    print(f"      {role:<22} {fig['ms']:8.1f} ms ({fig['rows']} rows)  {fig['ratio']:.2f}x", flush=True)
        await drop(url)
        return {"readings": readings, "results": results}

    out = asyncio.run(main())
    print(f"machine: {os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}")
    if json_path is not None:
        json_path.write_bytes(orjson.dumps(out, option=orjson.OPT_INDENT_2))
    return 0
