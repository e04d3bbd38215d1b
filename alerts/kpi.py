"""KPI alerts: a park's figure below its target, a station short of valid data, an emission cap passed or near.

A periodic job (parkwatch/jobs.py) computes the figures of the period under way (docs/kpis.md#targets)
and, in one transaction, opens an alert for each figure off its target, updates those already
open, and clears those whose figure is back on target. A figure that cannot be computed (too
little metering, nothing reported) neither raises nor clears: there is no evidence either way.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from alerts import queries, store
from compliance.delivery import Period, delivery
from compliance.kpis import kpis
from compliance.loads import cap_positions
from compliance.targets import park_targets, province_targets
from parkwatch.settings import Settings
from schemas.alerting import Family, Severity

logger = logging.getLogger(__name__)

# The period each figure is held to its target over: the month under way for what the data
# give day by day, the year for what is reported monthly and for the annual caps.
PARK_FIGURES: dict[str, Period] = {
    "treatment_rate": "month",
    "treated_water_compliance_rate": "month",
    "solid_waste_rate": "year",
}
SEVERITY = {
    "kpi.treatment_rate": Severity.MAJOR,
    "kpi.treated_water_compliance_rate": Severity.MAJOR,
    "kpi.solid_waste_rate": Severity.MAJOR,
    "kpi.effective_transmission_rate": Severity.WARNING,
    "kpi.cap_projected": Severity.WARNING,
    "kpi.cap_exceeded": Severity.CRITICAL,
}
CAP_RULES = ("kpi.cap_projected", "kpi.cap_exceeded")

OPEN_PARK_ALERT = """
INSERT INTO alerts (sid, pid, park, rule, family, status, severity, first_seen, last_seen, activated_at,
                    value, limit_value, details)
VALUES (NULL, NULL, $1, $2, 'kpi', 'active', $3, $4, $4, clock_timestamp(), $5, $6, $7::jsonb)
ON CONFLICT (park, rule) WHERE status <> 'cleared' AND sid IS NULL DO NOTHING
RETURNING *
"""
SELECT_OPEN_PARK = """
SELECT * FROM alerts WHERE park = $1 AND rule = $2 AND sid IS NULL AND status <> 'cleared' FOR UPDATE
"""
UPDATE_KPI = """
UPDATE alerts SET value = $2, limit_value = $3, last_seen = $4, details = $5::jsonb, updated_at = clock_timestamp()
WHERE id = $1
"""
OPEN_KPI = """
SELECT x.*, coalesce(s.park_id, x.park) AS park_id, s.id AS station_id, p.code AS parameter
FROM alerts x LEFT JOIN stations s ON s.sid = x.sid LEFT JOIN parameters p ON p.pid = x.pid
WHERE x.family = 'kpi' AND x.status <> 'cleared'
FOR UPDATE OF x
"""
STATION_PARKS = "SELECT s.id, s.sid, s.park_id, s.timezone, s.created_at FROM stations s"
PARKS = "SELECT id, attrs FROM parks"


@dataclass(frozen=True)
class Breach:
    """A figure off its target: whom it is about, the rule, and the facts for the alert."""

    rule: str
    park_id: str
    sid: int | None
    pid: int | None
    value: float
    limit: float
    details: dict[str, Any]

    @property
    def key(self) -> tuple[str, int | None, int | None, str]:
        """What identifies the alert: a park's or a station's (and parameter's) rule."""
        return (self.park_id if self.sid is None else "", self.sid, self.pid, self.rule)


@dataclass
class Judged:
    """The breaches found, and the keys whose figure was computed (and so may clear)."""

    breaches: list[Breach]
    computed: set[tuple[str, int | None, int | None, str]]


async def judge(
    conn: asyncpg.Connection, settings: Settings, now: datetime, *, figures: bool = True, caps: bool = True
) -> Judged:
    """The KPI figures of the periods under way set against their targets, and the caps, as asked."""
    today = now.astimezone(ZoneInfo(settings.DEFAULT_TIMEZONE)).date()
    defaults = province_targets(settings)
    parks = {r["id"]: queries.decode(r["attrs"]) for r in await conn.fetch(PARKS)}
    targets = {park: park_targets(defaults, attrs) for park, attrs in parks.items()}
    out = Judged(breaches=[], computed=set())
    if figures:
        await _targets(conn, today=today, now=now, defaults=defaults, targets=targets, out=out)
    if caps:
        await _caps(conn, today, now, out)
    return out


async def _targets(
    conn: asyncpg.Connection,
    *,
    today: date,
    now: datetime,
    defaults: dict[str, float],
    targets: dict[str, dict[str, float]],
    out: Judged,
) -> None:
    for period in sorted(set(PARK_FIGURES.values())):
        for row in await kpis(conn, period=period, on=today, level="park", now=now, targets=defaults):
            for figure, over in PARK_FIGURES.items():
                if over != period or row.get(figure) is None:
                    continue
                rule = f"kpi.{figure}"
                out.computed.add((row["id"], None, None, rule))
                target = targets[row["id"]][figure]
                if row[figure] < target:
                    details = _details(figure, row[figure], target, period, row["period_start"])
                    out.breaches.append(Breach(rule, row["id"], None, None, row[figure], target, details))
    stations = {r["id"]: r for r in await conn.fetch(STATION_PARKS)}
    rule = "kpi.effective_transmission_rate"
    for d in await delivery(conn, period="month", on=today, level="station"):
        rate = d.figures()["effective_transmission_rate"]
        st = stations[d.id]
        # A station registered during the month could not deliver before it existed: its month is
        # judged from the next one on (docs/kpis.md#kpi-alerts).
        begun = datetime.fromisoformat(d.period_start).replace(tzinfo=ZoneInfo(st["timezone"]))
        if rate is None or st["created_at"] > begun:
            continue
        out.computed.add(("", st["sid"], None, rule))
        target = targets[st["park_id"]]["effective_transmission_rate"]
        if rate < target:
            details = {**_details("effective_transmission_rate", rate, target, "month", d.period_start), **d.inputs()}
            out.breaches.append(Breach(rule, st["park_id"], st["sid"], None, rate, target, details))


async def _caps(conn: asyncpg.Connection, today: date, now: datetime, out: Judged) -> None:
    for cap in await cap_positions(conn, year=today.year, now=now):
        for rule in CAP_RULES:
            out.computed.add(("", cap.sid, cap.pid, rule))
        details = {**cap.as_json(), "period": "year", "period_start": f"{today.year}-01-01"}
        if cap.cumulative_kg > cap.cap_kg:
            out.breaches.append(
                Breach("kpi.cap_exceeded", cap.park_id, cap.sid, cap.pid, cap.cumulative_kg, cap.cap_kg, details)
            )
        elif cap.projected_kg is not None and cap.projected_kg > cap.cap_kg:
            out.breaches.append(
                Breach("kpi.cap_projected", cap.park_id, cap.sid, cap.pid, cap.cumulative_kg, cap.cap_kg, details)
            )


async def check_kpis(
    conn: asyncpg.Connection,
    settings: Settings,
    now: datetime | None = None,
    *,
    targets: bool = True,
    caps: bool = True,
) -> tuple[int, int]:
    """Raise, update and clear KPI alerts from the figures now (the targets', the caps', or both); (raised, cleared).

    An alert whose figure was not computed in this run (the other part's) is left as it is.
    """
    now = now or datetime.now(UTC)
    judged = await judge(conn, settings, now, figures=targets, caps=caps)
    raised = cleared = 0
    async with conn.transaction():
        wanted = {b.key: b for b in judged.breaches}
        for row in await conn.fetch(OPEN_KPI):
            key = (row["park"] or "", row["sid"], row["pid"], row["rule"])
            breach = wanted.pop(key, None)
            if breach is not None:
                await conn.execute(
                    UPDATE_KPI, row["id"], breach.value, breach.limit, now, json.dumps(breach.details, default=str)
                )
            elif key in judged.computed:
                cleared += await _clear(conn, row, _clear_reason(row["rule"], judged.breaches, key))
        for breach in wanted.values():
            raised += await _raise(conn, breach, now)
    if raised or cleared:
        logger.info("KPI alerts: %d raised, %d cleared", raised, cleared)
    return raised, cleared


async def _raise(conn: asyncpg.Connection, b: Breach, now: datetime) -> int:
    severity = SEVERITY[b.rule].value
    details = json.dumps(b.details, default=str)
    if b.sid is None:
        alert = await conn.fetchrow(OPEN_PARK_ALERT, b.park_id, b.rule, severity, now, b.value, b.limit, details)
        if alert is None:  # opened by another run meanwhile: the next run updates it
            return 0
    else:
        args = (b.sid, b.pid, b.rule, Family.KPI.value, "active", severity, now, now, False, b.value, b.limit,
                None, None, None, None, details, timedelta(0))  # fmt: skip
        alert, opened = await store.open_or_find(conn, args)
        if not opened:
            return 0
    event_id = await store.event(conn, alert["id"], "raised", b.details)
    await store.enqueue(conn, alert, event_id, b.park_id)
    return 1


def _clear_reason(rule: str, breaches: Iterable[Breach], key: tuple[str, int | None, int | None, str]) -> str:
    if rule == "kpi.cap_projected":
        # A projection past the cap becomes the cap passed: the one alert follows the other.
        passed = any(b.rule == "kpi.cap_exceeded" and b.key[:3] == key[:3] for b in breaches)
        return "judged" if passed else "projection_within_cap"
    return "target_met"


async def _clear(conn: asyncpg.Connection, row: asyncpg.Record, reason: str) -> int:
    return await store.clear_all(conn, [row], reason)


def _details(figure: str, value: float, target: float, period: str, start: str) -> dict[str, Any]:
    return {"figure": figure, "value": value, "target": target, "period": period, "period_start": start}
