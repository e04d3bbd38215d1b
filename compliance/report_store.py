"""Reports kept: stored once made, read back, listed; the scheduled generation; the command line's report.

docs/kpis.md#reports: a report of a period that is over is stored when first made (by the
schedule or on request) and served as stored after, so what was issued stays what was issued;
`refresh` makes it again from the current data and replaces it. A period still under way is
made on each request and never stored: the schedule, which makes only what is not stored yet,
would otherwise keep a partial report.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO, TextIO
from zoneinfo import ZoneInfo

import asyncpg

from compliance.report_labels import Lang
from compliance.report_render import Format, render
from compliance.reports import Kind, ReportError, Scope, build_report, cut
from compliance.targets import province_targets
from parkwatch.settings import Settings

logger = logging.getLogger(__name__)

# Data of a day keep arriving for a while after it (hourly records after their hour, windows
# closed within half a minute, loggers catching up after a short outage): yesterday's reports
# are made once this much of today has passed (a choice, docs/kpis.md#reports).
SETTLE = timedelta(hours=1)
# Last month's reports are due on the first days of a month; a week covers any outage worth
# catching up (after that, a report is made when asked for).
MONTHLY_DUE_DAYS = 7

SAVE = """
INSERT INTO reports (kind, park_id, period_start, content, generated_at, generated_by)
VALUES ($1, $2, $3, $4::jsonb, $5, $6)
ON CONFLICT (kind, park_id, period_start) DO UPDATE SET
    content = EXCLUDED.content, generated_at = EXCLUDED.generated_at, generated_by = EXCLUDED.generated_by
RETURNING id
"""
# The schedule never replaces: a report someone refreshed on request stays as they made it.
SAVE_NEW = """
INSERT INTO reports (kind, park_id, period_start, content, generated_at, generated_by)
VALUES ($1, $2, $3, $4::jsonb, $5, 'schedule')
ON CONFLICT (kind, park_id, period_start) DO NOTHING
RETURNING id
"""
LOAD = "SELECT content FROM reports WHERE kind = $1 AND park_id IS NOT DISTINCT FROM $2 AND period_start = $3"
# Rollup hours of the report's period (and park) rewritten after the report was made: late data.
CHANGED_SINCE = """
SELECT EXISTS (
    SELECT 1 FROM rollup_hour h JOIN stations s USING (sid)
    WHERE ($1::text IS NULL OR s.park_id = $1)
      AND h.hour >= ($2::date)::timestamp AT TIME ZONE $4
      AND h.hour < (($2::date) + $3::text::interval)::timestamp AT TIME ZONE $4
      AND h.updated_at > $5
)
"""
STORED_SCOPES = "SELECT park_id FROM reports WHERE kind = $1 AND period_start = $2"
PARK_IDS = "SELECT id FROM parks ORDER BY id"
LIST = """
SELECT id, kind, park_id, content->'park'->>'name' AS park_name, period_start, generated_at, generated_by,
       jsonb_array_length(content->'exceedances') AS exceedances, jsonb_array_length(content->'alerts') AS alerts
FROM reports
WHERE ($1::text IS NULL OR kind = $1) AND ($2::text IS NULL OR park_id = $2)
  AND ($3::text IS NULL OR ($3 = 'province') = (park_id IS NULL))
  AND (period_start, id) < ($4, $5)
ORDER BY period_start DESC, id DESC
LIMIT $6
"""
# A position before every stored report: the first page.
NEWEST = (date(9999, 12, 31), 2**62)


def parse_period(kind: Kind, text: str) -> date:
    """A day (YYYY-MM-DD), or for a monthly report also a month (YYYY-MM), between 2000 and 2100; ValueError."""
    try:
        on = date.fromisoformat(f"{text}-01" if kind == "monthly" and len(text) == 7 else text)
    except ValueError:
        shape = "YYYY-MM or YYYY-MM-DD" if kind == "monthly" else "YYYY-MM-DD"
        raise ValueError(f"{text[:40]!r} is not {shape}") from None
    if not date(2000, 1, 1) <= on < date(2100, 1, 1):
        raise ValueError("the period must fall between 2000 and 2100")
    return on


async def make(conn: asyncpg.Connection, settings: Settings, scope: Scope, *, now: datetime) -> dict[str, Any]:
    """A report made now from the current data, with the configured targets, weights and zone."""
    return await build_report(
        conn,
        scope,
        now=now,
        targets=province_targets(settings),
        weights=settings.ASSESSMENT_WEIGHTS or None,
        zone=settings.DEFAULT_TIMEZONE,
    )


async def save(conn: asyncpg.Connection, content: Mapping[str, Any], *, by: str) -> int:
    """Store a report, replacing the one of the same kind, scope and period; its id."""
    report_id: int = await conn.fetchval(
        SAVE,
        content["kind"],
        content["park_id"],
        date.fromisoformat(content["period_start"]),
        json.dumps(content, ensure_ascii=False),
        datetime.fromisoformat(content["generated_at"]),
        by,
    )
    return report_id


async def obtain(
    conn: asyncpg.Connection, settings: Settings, scope: Scope, *, now: datetime | None = None, refresh: bool = False
) -> dict[str, Any]:
    """The stored report, or one made now (and stored when its period is over); ReportError as build_report."""
    if not refresh:
        stored = await conn.fetchval(LOAD, scope.kind, scope.park_id, scope.start)
        if stored is not None:
            content: dict[str, Any] = json.loads(stored)
            # An issued report stays as issued; it says so when late data changed its period since.
            content["data_changed_since"] = await conn.fetchval(
                CHANGED_SINCE,
                scope.park_id,
                scope.start,
                "1 month" if scope.kind == "monthly" else "1 day",
                settings.DEFAULT_TIMEZONE,
                datetime.fromisoformat(content["generated_at"]),
            )
            return content
    content = await make(conn, settings, scope, now=now or datetime.now(UTC))
    if content["complete"]:
        await save(conn, content, by="request")
    return content


async def list_reports(
    conn: asyncpg.Connection,
    *,
    kind: Kind | None = None,
    park_id: str | None = None,
    scope: str | None = None,
    before: tuple[date, int] | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Stored reports (`scope`: park or province), newest period first, after the position `before`."""
    rows = await conn.fetch(LIST, kind, park_id, scope, *(before or NEWEST), limit)
    return [dict(r) for r in rows]


def due(now: datetime, zone: str) -> list[Scope]:
    """The periods whose reports are due at `now`: yesterday's, and last month's in a month's first days."""
    settled = (now - SETTLE).astimezone(ZoneInfo(zone)).date()
    out = [Scope.of("daily", settled - timedelta(days=1))]
    if settled.day <= MONTHLY_DUE_DAYS:
        out.append(Scope.of("monthly", settled.replace(day=1) - timedelta(days=1)))
    return out


async def generate_due_reports(conn: asyncpg.Connection, settings: Settings, now: datetime | None = None) -> int:
    """Make and store the due reports of every park and of the province not stored yet; how many were made.

    The province's report is made once and each park's cut from it: every figure is computed once.
    """
    now = now or datetime.now(UTC)
    parks: list[str | None] = [None, *(r["id"] for r in await conn.fetch(PARK_IDS))]
    made = 0
    for scope in due(now, settings.DEFAULT_TIMEZONE):
        stored = {r["park_id"] for r in await conn.fetch(STORED_SCOPES, scope.kind, scope.start)}
        missing = [p for p in parks if p not in stored]
        if not missing:
            continue
        province = await make(conn, settings, scope, now=now)
        for park_id in missing:
            content = province if park_id is None else cut(province, park_id)
            report_id = await conn.fetchval(
                SAVE_NEW, scope.kind, park_id, scope.start, json.dumps(content, ensure_ascii=False), now
            )
            made += report_id is not None
        logger.info("reports: %s of %s made for %d scope(s)", scope.kind, scope.start, len(missing))
    return made


def report_command(
    settings: Settings,
    *,
    kind: Kind,
    on: str,
    park_id: str | None,
    fmt: Format,
    output: Path | None,
    lang: Lang = "zh",
    refresh: bool = False,
    out: BinaryIO | None = None,
    err: TextIO | None = None,
) -> int:
    """`parkwatch report`: the report written to a file (or JSON and HTML to stdout); 0, or 1 and why on stderr."""
    err = err or sys.stderr
    try:
        scope = Scope.of(kind, parse_period(kind, on), park_id)
    except ValueError as exc:
        err.write(f"parkwatch: --date: {exc}\n")
        return 2
    if fmt == "xlsx" and output is None:
        err.write("parkwatch: an XLSX report needs --output FILE\n")
        return 2

    async def fetch() -> dict[str, Any]:
        conn = await asyncpg.connect(settings.DATABASE_URL)
        try:
            return await obtain(conn, settings, scope, refresh=refresh)
        finally:
            await conn.close()

    try:
        content = asyncio.run(fetch())
    except ReportError as exc:
        err.write(f"parkwatch: {exc.detail}\n")
        return 1
    data = render(content, fmt, lang)
    if output is not None:
        output.write_bytes(data)
    else:
        (out or sys.stdout.buffer).write(data)
    return 0
