"""Industrial solid waste: monthly reports checked and kept with their history (the rates: solidwaste_rates.py).

No sensor measures solid waste: parks and their enterprises report each month, per category
(general, hazardous), the tonnes generated, utilised, disposed, put into storage, taken out of
earlier stock (utilised or disposed) and dumped. docs/kpis.md holds the formulas; their sources
are docs/reference/standards.md B7:

- disposal-and-utilisation rate 处置利用率 = (utilised + disposed) / (generated + utilised from
  earlier stock + disposed from earlier stock) (definition [M], name and the ≥ 90 % threshold [S1]);
- comprehensive utilisation rate 综合利用率 = utilised / (generated + utilised from earlier stock) [S2];
- the NBS identity generated = (utilised − from stock) + stored + (disposed − from stock) + dumped [S1],
  which every report must satisfy within a tolerance (TOLERANCE_RELATIVE, TOLERANCE_T).

A report is refused, whole, when a figure is negative or not a number, its unit unknown, the
identity broken, or when the stock it draws on was never reported: each month's draws must come
out of the stock its park, enterprise and category held at the start of that month.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal, get_args

import asyncpg

logger = logging.getLogger(__name__)

Category = Literal["general", "hazardous"]
CATEGORIES: tuple[str, ...] = get_args(Category)
# value in the unit × numerator / denominator = tonnes; 万t is 10,000 t.
UNITS: dict[str, tuple[int, int]] = {"t": (1, 1), "kg": (1, 1000), "万t": (10_000, 1)}
QUANTITIES = ("generated", "utilised", "disposed", "stored", "utilised_from_stock", "disposed_from_stock", "dumped")
ENTERPRISE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# The identity and the stock balance hold within the larger of 1 % and 0.01 t: ledgers round each
# term (to 10 kg, to whole tonnes, to 0.01 万t), so five rounded terms rarely sum exactly; 1 % is
# above that rounding, yet moves a rate computed from an accepted report by about a point at most.
TOLERANCE_RELATIVE = 0.01
TOLERANCE_T = 0.01
MAX_T = 1e12  # the schema's bound (schemas/migrations/0015_solid_waste.sql)
FIRST_MONTH = date(2000, 1, 1)
MONTHS: dict[str, int] = {"month": 1, "quarter": 3, "year": 12}

PARK_CITY = "SELECT city FROM parks WHERE id = $1"
# One series (park, enterprise, category) at a time: its stock balance is checked over all its
# months, so two reports of the same series must not be checked against each other's absence.
LOCK_SERIES = "SELECT pg_advisory_xact_lock(hashtextextended('solid_waste/' || $1 || '/' || $2 || '/' || $3, 0))"
SELECT_SERIES = """
SELECT month, stored_t, utilised_from_stock_t, disposed_from_stock_t FROM solid_waste_reports
WHERE park_id = $1 AND enterprise IS NOT DISTINCT FROM $2 AND category = $3
ORDER BY month
"""
SELECT_CURRENT = """
SELECT id FROM solid_waste_reports
WHERE park_id = $1 AND enterprise IS NOT DISTINCT FROM $2 AND category = $3 AND month = $4
"""
KEEP_REPLACED = """
INSERT INTO solid_waste_report_history (
    report_id, park_id, enterprise, month, category, generated_t, utilised_t, disposed_t, stored_t,
    utilised_from_stock_t, disposed_from_stock_t, dumped_t, reported_by, reported_at, note, replaced_by)
SELECT id, park_id, enterprise, month, category, generated_t, utilised_t, disposed_t, stored_t,
       utilised_from_stock_t, disposed_from_stock_t, dumped_t, reported_by, reported_at, note, $2
FROM solid_waste_reports WHERE id = $1
"""
REPLACE_REPORT = """
UPDATE solid_waste_reports SET generated_t = $2, utilised_t = $3, disposed_t = $4, stored_t = $5,
    utilised_from_stock_t = $6, disposed_from_stock_t = $7, dumped_t = $8, reported_by = $9, note = $10,
    reported_at = clock_timestamp()
WHERE id = $1
RETURNING *
"""
INSERT_REPORT = """
INSERT INTO solid_waste_reports (park_id, enterprise, month, category, generated_t, utilised_t, disposed_t,
    stored_t, utilised_from_stock_t, disposed_from_stock_t, dumped_t, reported_by, note)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
RETURNING *
"""
# Keyset paging by (month, id); the filters are all optional.
SELECT_REPORTS = """
SELECT * FROM solid_waste_reports
WHERE ($1::text IS NULL OR park_id = $1) AND ($2::date IS NULL OR month >= $2) AND ($3::date IS NULL OR month <= $3)
  AND ($4::text IS NULL OR enterprise IS NOT DISTINCT FROM nullif($4, '-')) AND ($5::text IS NULL OR category = $5)
  AND ($6::date IS NULL OR (month, id) > ($6, $7))
ORDER BY month, id
LIMIT $8
"""
# Newest replacement first, keyset (id descending: ids follow replacement order).
SELECT_HISTORY = """
SELECT * FROM solid_waste_report_history
WHERE park_id = $1 AND ($2::date IS NULL OR month = $2) AND ($3::bigint IS NULL OR id < $3)
ORDER BY id DESC
LIMIT $4
"""


class SolidWasteError(Exception):
    """A report or a question refused: `code` for machines, `detail` naming the figures, `status` for HTTP."""

    def __init__(self, code: str, detail: str, *, status: int = 422) -> None:
        self.code = code
        self.detail = detail
        self.status = status
        super().__init__(detail)


@dataclass(frozen=True)
class Report:
    """One month's figures of a park (enterprise None) or of one of its enterprises, in tonnes."""

    park_id: str
    enterprise: str | None
    month: date
    category: Category
    generated: float
    utilised: float
    disposed: float
    stored: float
    utilised_from_stock: float
    disposed_from_stock: float
    dumped: float
    reported_by: str
    note: str | None = None

    @property
    def drawn(self) -> float:
        """Tonnes taken out of earlier stock this month."""
        return self.utilised_from_stock + self.disposed_from_stock


@dataclass(frozen=True)
class StoredReport:
    """A report as the database holds it: the current version, or a replaced one with who replaced it."""

    id: int
    report: Report
    reported_at: datetime
    replaced: bool = False  # this submission replaced an earlier version
    replaced_by: str | None = None  # history rows: who replaced this version, and when
    replaced_at: datetime | None = None

    def as_json(self) -> dict[str, Any]:
        """The report by name, quantities in tonnes."""
        r = self.report
        out: dict[str, Any] = {
            "id": self.id,
            "park_id": r.park_id,
            "enterprise": r.enterprise,
            "month": r.month,
            "category": r.category,
            "unit": "t",
            **{q: getattr(r, q) for q in QUANTITIES},
            "reported_by": r.reported_by,
            "reported_at": self.reported_at,
            "note": r.note,
        }
        if self.replaced_at is not None:
            out.update(replaced_by=self.replaced_by, replaced_at=self.replaced_at)
        else:
            out["replaced"] = self.replaced
        return out


def tolerance(*figures: float) -> float:
    """How far two figures that should agree may differ: 1 % of the larger, at least 0.01 t."""
    return max(TOLERANCE_T, TOLERANCE_RELATIVE * max(figures, default=0.0))


def parse_month(text: str, name: str = "month") -> date:
    """'YYYY-MM' or 'YYYY-MM-01' → the month's first day; 422 bad_month otherwise."""
    value = text.strip()
    try:
        month = date.fromisoformat(f"{value}-01" if len(value) == 7 else value)
    except ValueError:
        raise SolidWasteError("bad_month", f"{name} {value[:40]!r} is not YYYY-MM (or YYYY-MM-01)") from None
    if month.day != 1:
        raise SolidWasteError("bad_month", f"{name} {value!r} is not the first of a month: give YYYY-MM")
    if not FIRST_MONTH <= month < date(2100, 1, 1):
        raise SolidWasteError("bad_month", f"{name} must fall between 2000-01 and 2099-12")
    return month


def make_report(
    *,
    park_id: str,
    month: date | str,
    category: str,
    generated: float,
    utilised: float,
    disposed: float,
    stored: float,
    utilised_from_stock: float = 0.0,
    disposed_from_stock: float = 0.0,
    dumped: float = 0.0,
    unit: str = "t",
    reported_by: str,
    enterprise: str | None = None,
    note: str | None = None,
) -> Report:
    """A report checked on its own (units, signs, from-stock parts, the identity) and in tonnes."""
    if unit not in UNITS:
        raise SolidWasteError("unknown_unit", f"unit {unit[:20]!r} is not one of {', '.join(UNITS)}")
    if category not in CATEGORIES:
        raise SolidWasteError("unknown_category", f"category {category[:40]!r} is not one of {', '.join(CATEGORIES)}")
    if enterprise is not None and not ENTERPRISE.fullmatch(enterprise):
        raise SolidWasteError("bad_enterprise", "enterprise ids are 1-64 letters, digits, '.', '_' or '-'")
    who = reported_by.strip()
    if not who:
        raise SolidWasteError("missing_reporter", "say who reports (reported_by)")
    if len(who) > 200:
        raise SolidWasteError("bad_reporter", "reported_by is limited to 200 characters")
    if note is not None and len(note) > 2000:
        raise SolidWasteError("bad_note", "note is limited to 2000 characters")
    first = parse_month(month) if isinstance(month, str) else month
    if first.day != 1 or not FIRST_MONTH <= first < date(2100, 1, 1):
        raise SolidWasteError("bad_month", f"month {first} is not the first of a month between 2000-01 and 2099-12")
    given = {
        "generated": generated,
        "utilised": utilised,
        "disposed": disposed,
        "stored": stored,
        "utilised_from_stock": utilised_from_stock,
        "disposed_from_stock": disposed_from_stock,
        "dumped": dumped,
    }
    numerator, denominator = UNITS[unit]
    tonnes: dict[str, float] = {}
    for name, value in given.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise SolidWasteError("bad_quantity", f"{name} is not a finite number")
        if value < 0:
            raise SolidWasteError("negative_quantity", f"{name} is {value:g} {unit}: quantities are never negative")
        # kept to the gram: a kg figure converted is not left with binary noise
        tonnes[name] = round(value * numerator / denominator, 6)
        if tonnes[name] >= MAX_T:
            raise SolidWasteError("bad_quantity", f"{name} is {value:g} {unit}, beyond any park's month")
    for part, whole in (("utilised_from_stock", "utilised"), ("disposed_from_stock", "disposed")):
        if tonnes[part] > tonnes[whole]:
            raise SolidWasteError(
                "from_stock_exceeds",
                f"{part} {tonnes[part]:g} t is more than {whole} {tonnes[whole]:g} t, of which it is a part",
            )
    report = Report(
        park_id=park_id,
        enterprise=enterprise,
        month=first,
        category=category,  # type: ignore[arg-type]  # checked against CATEGORIES above
        reported_by=who,
        note=note,
        **tonnes,
    )
    check_identity(report)
    return report


def check_identity(r: Report) -> None:
    """Check generated = (utilised − from stock) + stored + (disposed − from stock) + dumped, within tolerance."""
    accounted = (r.utilised - r.utilised_from_stock) + r.stored + (r.disposed - r.disposed_from_stock) + r.dumped
    allowed = tolerance(r.generated, accounted)
    if abs(r.generated - accounted) > allowed:
        raise SolidWasteError(
            "identity_broken",
            f"generated {r.generated:g} t ≠ (utilised {r.utilised:g} − from stock {r.utilised_from_stock:g})"
            f" + stored {r.stored:g} + (disposed {r.disposed:g} − from stock {r.disposed_from_stock:g})"
            f" + dumped {r.dumped:g} = {accounted:g} t: off by {abs(r.generated - accounted):g} t,"
            f" more than the {allowed:g} t allowed (the larger of 1 % and 0.01 t)",
        )


def check_stock(series: list[tuple[date, float, float]], label: str) -> None:
    """Each month's draws (month, stored, drawn) come out of the stock held at its start."""
    stock = 0.0
    for month, stored, drawn in sorted(series):
        if drawn - stock > tolerance(drawn, stock):
            raise SolidWasteError(
                "stock_negative",
                f"{label} draws {drawn:g} t from stock in {month:%Y-%m} but held {stock:g} t at the start of the"
                " month (stored minus earlier draws, over its reported months): report the months that built"
                " the stock first, or correct the draws",
            )
        stock += stored - drawn


def report_from_row(row: asyncpg.Record) -> Report:
    return Report(
        park_id=row["park_id"],
        enterprise=row["enterprise"],
        month=row["month"],
        category=row["category"],
        reported_by=row["reported_by"],
        note=row["note"],
        **{q: row[f"{q}_t"] for q in QUANTITIES},
    )


async def submit_report(conn: asyncpg.Connection, report: Report, *, today: date | None = None) -> StoredReport:
    """Store a checked report, replacing (and keeping in history) the month's earlier version.

    404 unknown_park, 422 future_month or stock_negative: then nothing is stored.
    """
    current = (today or date.today()).replace(day=1)
    if report.month > current:
        raise SolidWasteError("future_month", f"month {report.month:%Y-%m} has not begun (this is {current:%Y-%m})")
    series_key = (report.park_id, report.enterprise, report.category)
    who = report.reported_by
    label = f"{report.park_id}/{report.enterprise or '(park)'}/{report.category}"
    async with conn.transaction():
        if await conn.fetchval(PARK_CITY, report.park_id) is None:
            raise SolidWasteError("unknown_park", f"park {report.park_id[:64]!r} is not registered", status=404)
        await conn.execute(LOCK_SERIES, report.park_id, report.enterprise or "", report.category)
        months = {
            r["month"]: (r["month"], r["stored_t"], r["utilised_from_stock_t"] + r["disposed_from_stock_t"])
            for r in await conn.fetch(SELECT_SERIES, *series_key)
        }
        months[report.month] = (report.month, report.stored, report.drawn)
        check_stock(list(months.values()), label)
        existing = await conn.fetchval(SELECT_CURRENT, *series_key, report.month)
        figures = [getattr(report, q) for q in QUANTITIES]
        if existing is not None:
            await conn.execute(KEEP_REPLACED, existing, report.reported_by)
            row = await conn.fetchrow(REPLACE_REPORT, existing, *figures, report.reported_by, report.note)
        else:
            row = await conn.fetchrow(
                INSERT_REPORT, *series_key[:2], report.month, report.category, *figures, report.reported_by, report.note
            )
    assert row is not None  # noqa: S101 - written just now
    logger.info("solid waste %s %s %s by %s", label, report.month, "replaced" if existing else "reported", who)
    return StoredReport(
        id=row["id"], report=report_from_row(row), reported_at=row["reported_at"], replaced=existing is not None
    )


async def list_reports(
    conn: asyncpg.Connection,
    *,
    park_id: str | None = None,
    month_from: date | None = None,
    month_to: date | None = None,
    enterprise: str | None = None,
    category: str | None = None,
    after: tuple[date, int] | None = None,
    limit: int = 100,
) -> list[StoredReport]:
    """Current reports by month, then id; `enterprise='-'` selects the park-level ones."""
    position = after or (None, None)
    rows = await conn.fetch(SELECT_REPORTS, park_id, month_from, month_to, enterprise, category, *position, limit)
    return [StoredReport(id=r["id"], report=report_from_row(r), reported_at=r["reported_at"]) for r in rows]


async def report_history(
    conn: asyncpg.Connection, *, park_id: str, month: date | None = None, before: int | None = None, limit: int = 100
) -> list[StoredReport]:
    """Replaced versions of a park's reports (of one month, or all), newest replacement first."""
    rows = await conn.fetch(SELECT_HISTORY, park_id, month, before, limit)
    return [
        StoredReport(
            id=r["id"],
            report=report_from_row(r),
            reported_at=r["reported_at"],
            replaced_by=r["replaced_by"],
            replaced_at=r["replaced_at"],
        )
        for r in rows
    ]
