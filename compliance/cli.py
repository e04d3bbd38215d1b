"""`parkwatch standards`, `parkwatch evaluate` and `parkwatch compliance` on the command line."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any, TextIO

import asyncpg

from compliance.assessment import AssessedPeriod, Assessment, assessment
from compliance.delivery import Level, Period
from compliance.evaluate import evaluate
from compliance.kpis import kpis
from compliance.targets import province_targets
from compliance.worker import ComplianceWorker
from parkwatch.progress import Bar
from parkwatch.settings import Settings
from schemas.catalogue import CatalogError, Standard, catalogue

# Hours of a station's existing rollups put back in the queue by `compliance rejudge`.
REQUEUE = """
INSERT INTO rollup_queue (sid, hour)
SELECT DISTINCT h.sid, date_trunc('hour', h.hour, 'UTC')
FROM rollup_hour h JOIN stations s USING (sid)
WHERE ($1::text[] IS NULL OR s.id = any($1::text[])) AND ($2::text IS NULL OR s.park_id = $2)
  AND h.hour >= $3 AND h.hour < $4
ON CONFLICT (sid, hour) DO UPDATE SET claimed_at = NULL, queued_at = now()
"""


SELECT_PROFILES = """
SELECT sid, attrs FROM stations
WHERE ($1::text[] IS NULL OR id = any($1::text[])) AND ($2::text IS NULL OR park_id = $2)
"""
DELETE_STALE = """
DELETE FROM verdicts
WHERE sid = $1 AND NOT (standard = any($2::text[])) AND window_start >= $3 AND window_start < $4
"""


def evaluate_command(stdin: TextIO, stdout: TextIO) -> int:
    """One JSON answer per JSON line read; a bad line gets an error line. Exit status 0 whatever the lines."""
    for number, line in enumerate(stdin, start=1):
        text = line.strip()
        if not text:
            continue
        try:
            doc: Any = json.loads(text)
        except json.JSONDecodeError as exc:
            answer: dict[str, Any] = {"error": "invalid_json", "message": f"line {number}: not valid JSON: {exc}"}
        else:
            answer = evaluate(doc)
        stdout.write(json.dumps(answer, ensure_ascii=False) + "\n")
        stdout.flush()
    return 0


def standards_command(stdout: TextIO, *, action: str, ident: str | None, as_json: bool) -> int:
    """List the catalogue, or show one edition: classes, limits with clause and confidence, rules."""
    cat = catalogue()
    if action == "list":
        for s in sorted(cat.by_id.values(), key=lambda s: (s.family, s.effective_from)):
            if as_json:
                stdout.write(json.dumps(s.summary(), ensure_ascii=False) + "\n")
                continue
            until = f"–{s.effective_to}" if s.effective_to else "– "
            stdout.write(f"{s.id:<16} {s.medium:<8} {s.effective_from}{until:<12} {s.number}  {s.title}\n")
        return 0
    try:
        standard = cat.resolve(ident or "", datetime.now(UTC).date())
    except CatalogError as exc:
        stdout.write(f"parkwatch: {exc}\n")
        return 1
    if as_json:
        stdout.write(json.dumps(standard.model_dump(mode="json", exclude_none=True), ensure_ascii=False) + "\n")
        return 0
    stdout.write(_show(standard))
    return 0


def _show(s: Standard) -> str:
    lines = [
        f"{s.id}  {s.number}  {s.title}",
        f"  {s.title_en}",
        f"  medium {s.medium}; in force from {s.effective_from}" + (f" to {s.effective_to}" if s.effective_to else ""),
    ]
    if s.classes:
        lines.append("classes (the `class` of a station profile or an evaluate question):")
        lines += [f"  {cid:<24} {text}" for cid, text in s.classes.items()]
    if s.sectors:
        lines.append("sectors (context.sector):")
        lines += [f"  {sid:<24} {text}" for sid, text in s.sectors.items()]
    if s.reference_o2:
        lines.append("reference O2 (measured values are corrected to it):")
        lines += [f"  {cid:<24} {ref.value:g} %" for cid, ref in s.reference_o2.items()]
    if s.validity:
        lines.append("data validity:")
        lines += [
            f"  {name:<24} {v.value:g}  [{v.confidence}] {v.clause or v.note or ''}" for name, v in s.validity.items()
        ]
    if s.limits:
        lines.append("limits (parameter, period, unit, value per class, [confidence], clause):")
        for lim in s.limits:
            values = ", ".join(f"{c}={_number(v)}" for c, v in lim.values.items())
            when = f" when {lim.when}" if lim.when else ""
            where = " ".join(x for x in (lim.clause.table, lim.clause.item) if x)
            note = f" ({lim.clause.note})" if lim.clause.note else ""
            head = f"  {lim.parameter} {lim.period:<5} {lim.unit or '-':<6}"
            lines.append(f"{head} {values}{when} [{lim.confidence}] {where}{note}")
    if s.aqi is not None:
        lines.append("AQI reports: " + ", ".join(f"{p}: {', '.join(keys)}" for p, keys in s.aqi.reports.items()))
    lines += [f"note: {n}" for n in s.notes]
    if s.confidence_note:
        lines.append(f"confidence: {s.confidence_note}")
    return "\n".join(lines) + "\n"


def _number(v: float | tuple[float, float]) -> str:
    return f"{v[0]:g}–{v[1]:g}" if isinstance(v, tuple | list) else f"{v:g}"


async def catch_up(dsn: str) -> tuple[int | None, float]:
    """Bring rollups, verdicts and AQI current once: (hours processed, seconds).

    The hours are None when a running worker leads: it is doing this already.
    """
    conn = await asyncpg.connect(dsn)
    try:
        started = datetime.now(UTC)
        hours = await ComplianceWorker(dsn).drain(conn, wait=False)
        return hours, (datetime.now(UTC) - started).total_seconds()
    finally:
        await conn.close()


# Hours set aside by the worker for these stations are judged again with the rest.
RESOLVE_FAILURES = (
    "UPDATE compliance_failures SET resolved_at = now() WHERE sid = any($1::integer[]) AND resolved_at IS NULL"
)


async def rejudge(dsn: str, *, stations: list[str] | None, park: str | None, start: datetime, end: datetime) -> int:
    """Queue the hours of the chosen stations again (after a profile or standard change); returns how many."""
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            rows = await conn.fetch(SELECT_PROFILES, stations, park)
            for r in rows:
                # Windows judged under a standard the station no longer has would stand beside the
                # new verdicts: they go, and the requeued hours are judged under the current one.
                ident = json.loads(r["attrs"]).get("standard")
                current = [s.id for s in catalogue().editions(ident)] if ident else []
                await conn.execute(DELETE_STALE, r["sid"], current, start, end)
            status = await conn.execute(REQUEUE, stations, park, start, end)
            await conn.execute(RESOLVE_FAILURES, [r["sid"] for r in rows])
    finally:
        await conn.close()
    return int(status.split()[-1])


# The table's columns: a figure and its short heading.
KPI_COLUMNS = {
    "transmission_rate": "transmit",
    "validity_rate": "validity",
    "effective_transmission_rate": "effective",
    "compliance_rate": "compliant",
    "treated_water_compliance_rate": "treated-ok",
    "treatment_rate": "treatment",
    "water_balance": "balance",
}


def kpis_command(
    out: TextIO,
    url: str,
    *,
    period: Period,
    on: date,
    level: Level,
    park_id: str | None,
    city: str | None,
    as_json: bool,
    targets: Mapping[str, float] | None = None,
) -> int:
    """`parkwatch kpis`: the KPI rows as JSON lines or a table."""

    async def fetch() -> list[dict[str, Any]]:
        conn = await asyncpg.connect(url)
        try:
            return await kpis(
                conn, period=period, on=on, level=level, park_id=park_id, city=city, now=datetime.now(UTC),
                targets=targets, progress=bar,
            )  # fmt: skip
        finally:
            await conn.close()

    bar = Bar()
    try:
        rows = asyncio.run(fetch())
    finally:
        bar.close()
    if as_json:
        for r in rows:
            out.write(json.dumps(r, ensure_ascii=False, default=str) + "\n")
        return 0
    names = list(KPI_COLUMNS)
    out.write(f"{level:<24} " + " ".join(f"{KPI_COLUMNS[n]:>11}" for n in names) + "\n")
    for r in rows:
        shown = ["—" if r.get(n) is None else f"{r[n]:.1%}" for n in names]
        out.write(f"{r['id']:<24} " + " ".join(f"{v:>11}" for v in shown) + "\n")
    if not rows:
        out.write("no stations selected\n")
    return 0


def assessment_command(
    out: TextIO, settings: Settings, *, period: AssessedPeriod, on: date, city: str | None, as_json: bool
) -> int:
    """`parkwatch assessment`: the ranking as a table (yellow cards marked) or the whole assessment as JSON."""

    async def fetch() -> Assessment:
        conn = await asyncpg.connect(settings.DATABASE_URL)
        try:
            return await assessment(
                conn, period=period, on=on, now=datetime.now(UTC), targets=province_targets(settings),
                weights=settings.ASSESSMENT_WEIGHTS, city=city, progress=bar,
            )  # fmt: skip
        finally:
            await conn.close()

    bar = Bar()
    try:
        result = asyncio.run(fetch())
    finally:
        bar.close()
    if as_json:
        out.write(json.dumps(result.as_json(), ensure_ascii=False, default=str) + "\n")
        return 0
    out.write(f"{'rank':>4} {'park':<24} {'city':<8} {'score':>6}  card / status\n")
    for c in result.cards:
        rank = "—" if c.rank is None else str(c.rank)
        score = "—" if c.score is None else f"{c.score:.1f}"
        note = ("黄牌 yellow card: " + "; ".join(c.card_reasons)) if c.yellow_card else c.status
        out.write(f"{rank:>4} {c.park_id:<24} {c.city:<8} {score:>6}  {note}\n")
    return 0
