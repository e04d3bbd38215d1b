"""The content of a daily or monthly report (日报, 月报) for one park or the province, as JSON-ready data.

docs/kpis.md#reports says what each part holds and why. In short, for the period (a local day or
month):

- the headline KPIs of each park (compliance/kpis.py) with its targets and shortfalls, and for
  the province a row of its own;
- the exceedances: closed windows judged in exceedance, each in its station's local time;
- the alerts whose condition began in the period (first_seen), so a day's exceedances and the
  alerts they raised are in the same report, found-late ones included; their handling is timed
  from when parkwatch raised them;
- the caps (total-quantity control) of the year up to the period's end;
- for a month, the park assessment (compliance/assessment.py) with its yellow cards.

A province report is built once and each park's report is cut from it (`cut`): the scheduled
job computes every figure once, and a park's report reads the same whether built alone or cut.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

import asyncpg

from compliance.assessment import assessment
from compliance.delivery import Period, period_end, period_start
from compliance.kpis import jsonb, kpis
from compliance.loads import cap_positions
from compliance.targets import park_targets

Kind = Literal["daily", "monthly"]
PERIOD: dict[str, Period] = {"daily": "day", "monthly": "month"}
# The figures a report heads with, in this order (docs/kpis.md); removal efficiency, a figure
# per pollutant, is given apart.
HEADLINE = (
    "transmission_rate",
    "validity_rate",
    "effective_transmission_rate",
    "compliance_rate",
    "treated_water_compliance_rate",
    "treatment_rate",
    "water_balance",
    "solid_waste_rate",
    "solid_waste_utilisation_rate",
)
# Bumped when the content's shape changes: a stored report says which shape it has.
CONTENT_VERSION = 1
# Any zone's local day lies within a day of the UTC one: a coarse UTC range lets the index on
# window_start (or first_seen) narrow the scan before the station's own zone decides.
SLACK = timedelta(days=1)

PARKS = "SELECT id, name, city, attrs FROM parks WHERE ($1::text IS NULL OR id = $1) ORDER BY id"
EXCEEDANCES = """
SELECT s.id AS station_id, s.name AS station_name, s.park_id, s.timezone, p.code AS parameter,
       p.name_zh AS parameter_name, v.window_kind, v.window_start, v.window_end, v.value, v.value_judged,
       v.limit_value, v.unit, v.exceedance_multiple, v.standard, v.class
FROM verdicts v JOIN stations s ON s.sid = v.sid JOIN parameters p ON p.pid = v.pid
WHERE v.verdict = 'exceedance' AND v.closed AND ($3::text IS NULL OR s.park_id = $3)
  AND v.window_start >= $4 AND v.window_start < $5
  AND v.window_start >= ($1::date)::timestamp AT TIME ZONE s.timezone
  AND v.window_start < ($2::date)::timestamp AT TIME ZONE s.timezone
ORDER BY s.park_id, s.id, p.code, v.window_kind, v.window_start, v.standard
"""
# A park's own alerts (a KPI off target) have no station: the report's zone places them.
ALERTS = """
SELECT x.id, coalesce(s.park_id, x.park) AS park_id, s.id AS station_id, s.name AS station_name,
       coalesce(s.timezone, $6) AS timezone, p.code AS parameter, p.name_zh AS parameter_name, x.rule, x.family,
       x.severity, x.status, x.first_seen, x.raised_at, x.late, x.occurrences, x.value, x.limit_value, x.unit,
       x.exceedance_multiple, x.acked_at, x.acked_by, x.cleared_at, x.clear_reason, x.verification,
       x.verified_by, x.explanation_due_at, x.explanation, x.explained_at, x.overdue_at, x.review
FROM alerts x LEFT JOIN stations s ON s.sid = x.sid LEFT JOIN parameters p ON p.pid = x.pid
WHERE ($3::text IS NULL OR coalesce(s.park_id, x.park) = $3)
  AND x.first_seen >= $4 AND x.first_seen < $5
  AND x.first_seen >= ($1::date)::timestamp AT TIME ZONE coalesce(s.timezone, $6)
  AND x.first_seen < ($2::date)::timestamp AT TIME ZONE coalesce(s.timezone, $6)
ORDER BY x.first_seen, x.id
"""


class ReportError(Exception):
    """A report that cannot be made: `code` says why (unknown_park, future_period)."""

    def __init__(self, code: str, detail: str) -> None:
        self.code = code
        self.detail = detail
        super().__init__(detail)


@dataclass(frozen=True)
class Scope:
    """What a report is about and over when: a park (or the province, park_id None) and a period."""

    kind: Kind
    start: date
    park_id: str | None = None

    @property
    def end(self) -> date:
        """The first day after the period."""
        return period_end(PERIOD[self.kind], self.start)

    @classmethod
    def of(cls, kind: Kind, on: date, park_id: str | None = None) -> Scope:
        """The report of the day, or of the month, that holds `on`."""
        return cls(kind=kind, start=period_start(PERIOD[kind], on), park_id=park_id)


async def build_report(
    conn: asyncpg.Connection,
    scope: Scope,
    *,
    now: datetime,
    targets: Mapping[str, float],
    weights: Mapping[str, float] | None = None,
    zone: str = "Asia/Shanghai",
) -> dict[str, Any]:
    """The report's content; ReportError when the park is unknown or the period has not begun."""
    tz = ZoneInfo(zone)
    lo, hi = (datetime.combine(d, time(), tz) for d in (scope.start, scope.end))
    if lo > now:
        raise ReportError("future_period", f"the period starting {scope.start} has not begun")
    parks = await conn.fetch(PARKS, scope.park_id)
    if scope.park_id is not None and not parks:
        raise ReportError("unknown_park", f"not registered: {scope.park_id}")
    period = PERIOD[scope.kind]
    coarse = (lo.astimezone(UTC) - SLACK, hi.astimezone(UTC) + SLACK)
    exceedances = await conn.fetch(EXCEEDANCES, scope.start, scope.end, scope.park_id, *coarse)
    alerts = await conn.fetch(ALERTS, scope.start, scope.end, scope.park_id, *coarse, zone)
    rows = await kpis(conn, period=period, on=scope.start, level="park", park_id=scope.park_id, now=now,
                      targets=targets)  # fmt: skip
    if scope.park_id is None:
        rows += await kpis(conn, period=period, on=scope.start, level="province", now=now)
    caps = await cap_positions(conn, year=scope.start.year, now=min(now, hi), park_id=scope.park_id)
    ranking = None
    if scope.kind == "monthly":
        ranked = await assessment(conn, period="month", on=scope.start, now=now, targets=targets, weights=weights)
        ranking = _assessment(ranked.as_json(), scope.park_id)
    alert_rows = [_alert(r, now) for r in alerts]
    return {
        "version": CONTENT_VERSION,
        "kind": scope.kind,
        "park_id": scope.park_id,
        "park": _park(parks[0]) if scope.park_id is not None else None,
        "parks": [_park(p) for p in parks],
        "period_start": scope.start.isoformat(),
        "period_end": (scope.end - timedelta(days=1)).isoformat(),
        "timezone": zone,
        "generated_at": _local(now, zone),
        "complete": hi <= now,
        "kpis": _kpi_rows(parks, rows, targets),
        "exceedances": [_exceedance(r) for r in exceedances],
        "alerts": alert_rows,
        "alert_counts": count_alerts(alert_rows),
        "caps": [c.as_json() for c in caps],
        "caps_as_of": _local(min(now, hi), zone),
        "assessment": ranking,
    }


def cut(content: Mapping[str, Any], park_id: str) -> dict[str, Any]:
    """A park's report from the province's: its own rows of every part."""
    [park] = [p for p in content["parks"] if p["id"] == park_id]
    alerts = [a for a in content["alerts"] if a["park_id"] == park_id]
    ranking = content["assessment"]
    if ranking is not None:
        ranking = {**ranking, "results": [r for r in ranking["results"] if r["park_id"] == park_id]}
    return {
        **content,
        "park_id": park_id,
        "park": park,
        "parks": [park],
        "kpis": [k for k in content["kpis"] if k["park_id"] == park_id],
        "exceedances": [e for e in content["exceedances"] if e["park_id"] == park_id],
        "alerts": alerts,
        "alert_counts": count_alerts(alerts),
        "caps": [c for c in content["caps"] if c["park_id"] == park_id],
        "assessment": ranking,
    }


def count_alerts(alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Alerts by family and severity: how many, acknowledged, cleared, and explanations overdue."""
    keys = Counter((a["family"], a["severity"]) for a in alerts)
    out = []
    for family, severity in sorted(keys):
        mine = [a for a in alerts if (a["family"], a["severity"]) == (family, severity)]
        out.append({
            "family": family,
            "severity": severity,
            "count": len(mine),
            "acknowledged": sum(a["acked_at"] is not None for a in mine),
            "cleared": sum(a["cleared_at"] is not None for a in mine),
            "explanations_overdue": sum(a["explanation_state"] == "overdue" for a in mine),
        })  # fmt: skip
    return out


def _park(r: asyncpg.Record) -> dict[str, Any]:
    return {"id": r["id"], "name": r["name"], "city": r["city"]}


def _kpi_rows(
    parks: list[asyncpg.Record], rows: list[dict[str, Any]], targets: Mapping[str, float]
) -> list[dict[str, Any]]:
    """A row per park (figures null for a park without stations), then the province's when given."""
    by_id = {(r["level"], r["id"]): r for r in rows}
    out = []
    for park in parks:
        row = by_id.get(("park", park["id"]), {})
        own = row.get("targets") or park_targets(targets, jsonb(park["attrs"]))
        out.append({
            "level": "park",
            "park_id": park["id"],
            "park_name": park["name"],
            "city": park["city"],
            **_figures(row),
            "targets": own,
            "shortfalls": row.get("shortfalls", {}),
        })  # fmt: skip
    if ("province", "province") in by_id:
        row = by_id[("province", "province")]
        out.append({"level": "province", "park_id": None, "park_name": None, "city": None, **_figures(row),
                    "targets": None, "shortfalls": {}})  # fmt: skip
    return out


def _figures(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "figures": {name: row.get(name) for name in HEADLINE},
        "removal_efficiency": row.get("removal_efficiency"),
        "reasons": row.get("reasons", {}),
    }


def _exceedance(r: asyncpg.Record) -> dict[str, Any]:
    zone = r["timezone"]
    return {
        "park_id": r["park_id"],
        "station_id": r["station_id"],
        "station_name": r["station_name"],
        "parameter": r["parameter"],
        "parameter_name": r["parameter_name"],
        "window_kind": r["window_kind"],
        "window_start": _local(r["window_start"], zone),
        "window_end": _local(r["window_end"], zone),
        "value": r["value_judged"],
        "measured": r["value"],
        "limit": jsonb(r["limit_value"]),
        "unit": r["unit"],
        "multiple": r["exceedance_multiple"],
        "standard": r["standard"],
        "class": r["class"],
    }


def _alert(r: asyncpg.Record, now: datetime) -> dict[str, Any]:
    zone = r["timezone"]
    if r["explanation"] is not None:
        state: str | None = "given"
    elif r["overdue_at"] is not None or (r["explanation_due_at"] is not None and r["explanation_due_at"] <= now):
        state = "overdue"
    else:
        state = "due" if r["explanation_due_at"] is not None else None
    return {
        "id": r["id"],
        "park_id": r["park_id"],
        "station_id": r["station_id"],
        "station_name": r["station_name"],
        "parameter": r["parameter"],
        "parameter_name": r["parameter_name"],
        "rule": r["rule"],
        "family": r["family"],
        "severity": r["severity"],
        "status": r["status"],
        "first_seen": _local(r["first_seen"], zone),
        "raised_at": _local(r["raised_at"], zone),
        "late": r["late"],
        "occurrences": r["occurrences"],
        "value": r["value"],
        "limit": r["limit_value"],
        "unit": r["unit"],
        "multiple": r["exceedance_multiple"],
        "acked_at": _local(r["acked_at"], zone),
        "acked_by": r["acked_by"],
        "ack_minutes": _minutes(r["raised_at"], r["acked_at"]),
        "cleared_at": _local(r["cleared_at"], zone),
        "clear_reason": r["clear_reason"],
        "clear_minutes": _minutes(r["raised_at"], r["cleared_at"]),
        "verification": r["verification"],
        "verified_by": r["verified_by"],
        "explanation_state": state,
        "explanation_due_at": _local(r["explanation_due_at"], zone),
        "explanation": r["explanation"],
        "explained_at": _local(r["explained_at"], zone),
        "review": r["review"],
    }


def _assessment(doc: Mapping[str, Any], park_id: str | None) -> dict[str, Any]:
    """The ranking as the report keeps it: every park's place, the indicators without who reported them."""
    results = []
    for r in doc["results"]:
        indicators = {
            name: {k: i.get(k) for k in ("value", "target", "score", "weight", "source")}
            for name, i in r["indicators"].items()
        }
        keep = ("park_id", "park_name", "city", "status", "score", "rank", "city_rank", "yellow_card", "card_reasons")
        results.append({**{k: r.get(k) for k in keep}, "missing": list(r["missing"]), "indicators": indicators})
    return {
        "period_start": doc["period_start"],
        "weights": dict(doc["weights"]),
        "tie_break": list(doc["tie_break"]),
        "parks": len(results),
        "ranked": sum(r["rank"] is not None for r in results),
        "results": [r for r in results if park_id is None or r["park_id"] == park_id],
    }


def _minutes(start: datetime, end: datetime | None) -> float | None:
    return None if end is None else round((end - start).total_seconds() / 60, 1)


def _local(at: datetime | None, zone: str) -> str | None:
    return None if at is None else at.astimezone(ZoneInfo(zone)).isoformat()
