"""The processes table: each parkwatch process says it is alive, and /healthz reads how every part is doing."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
import orjson

# A process writes its row every watchdog pass (15 s, parkwatch/serve.py); one not seen for
# this long has stopped or hangs: /healthz shows it as not running.
STALE_AFTER_S = 60.0

UPSERT_PROCESS = """
INSERT INTO service_processes (name, host, pid, role, started_at, seen_at, alarms, detail)
VALUES ($1, $2, $3, $4, $5, clock_timestamp(), $6, $7::jsonb)
ON CONFLICT (name) DO UPDATE SET
    host = EXCLUDED.host, pid = EXCLUDED.pid, role = EXCLUDED.role, started_at = EXCLUDED.started_at,
    seen_at = EXCLUDED.seen_at, alarms = EXCLUDED.alarms, detail = EXCLUDED.detail
"""
DELETE_PROCESS = "DELETE FROM service_processes WHERE name = $1 AND pid = $2"
SELECT_PROCESSES = """
SELECT name, host, pid, role, started_at, alarms, detail,
       extract(epoch FROM clock_timestamp() - seen_at)::float8 AS seen_s
FROM service_processes
ORDER BY role, name
"""


def process_name(host: str, role: str, client_id: str | None) -> str:
    """The row's key: stable across restarts of the same part on the same host (and MQTT session)."""
    return f"{host}/{role}" + (f"/{client_id}" if client_id else "")


async def beat(
    conn: asyncpg.Connection,
    *,
    name: str,
    host: str,
    pid: int,
    role: str,
    started_at: datetime,
    alarms: list[str],
    detail: dict[str, Any],
) -> None:
    """Write this process's row."""
    await conn.execute(UPSERT_PROCESS, name, host, pid, role, started_at, alarms, orjson.dumps(detail).decode())


async def leave(conn: asyncpg.Connection, *, name: str, pid: int) -> None:
    """Remove this process's row on a clean stop (a restarted successor's row is left alone)."""
    await conn.execute(DELETE_PROCESS, name, pid)


async def processes(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    """Every process known, with whether it is running (seen within STALE_AFTER_S)."""
    rows = await conn.fetch(SELECT_PROCESSES)
    return [
        {
            "name": r["name"],
            "role": r["role"],
            "host": r["host"],
            "pid": r["pid"],
            "started_at": r["started_at"].isoformat(),
            "seen_s_ago": round(r["seen_s"], 1),
            "running": r["seen_s"] < STALE_AFTER_S,
            "alarms": list(r["alarms"]),
            "detail": orjson.loads(r["detail"]) if isinstance(r["detail"], str) else r["detail"],
        }
        for r in rows
    ]
