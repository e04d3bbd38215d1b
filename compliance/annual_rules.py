"""The rules of an ambient year's statistics (pure): HJ 663's percentiles and GB 3095 Table 4's data capture.

HJ 663-2013 itself was not read (docs/reference/standards.md B3, D11). Its percentile is taken by
the rank rule k = 1 + (n − 1)·p over the values sorted ascending, X(1) … X(n), with linear
interpolation between X(s) and X(s+1), s the integer part of k: the rule two independent
ambient-air codebases implement under HJ 663's name (docs/kpis.md). A choice, in one place, until
the text is read. It is computed on the decimal inputs (0.98 is 98/100), so a percentile that
lands on a value is that value, not a binary neighbour of it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from fractions import Fraction
from typing import Any

METHOD = "rank k = 1 + (n − 1)·p over the ascending values, linear interpolation between X(s) and X(s+1), s = ⌊k⌋"
O3 = "a05024"
# HJ 663's annual percentiles of the daily values: SO2 and NO2 24 h P98, PM10 and PM2.5 P95, CO
# 24 h P95, O3 daily maximum 8 h P90. Tagged [S1] (docs/reference/standards.md B3: one secondary
# source, HJ 663-2013 not read): a text that says otherwise changes this table only.
ANNUAL_PERCENTILES: dict[str, float] = {
    "a21026": 0.98, "a21004": 0.98, "a34002": 0.95, "a34004": 0.95, "a21005": 0.95, O3: 0.90,
}  # fmt: skip
# GB 3095 Table 1 sets annual limits for these four; CO and O3 get their percentile only.
ANNUAL_MEAN_CODES = frozenset({"a21026", "a21004", "a34002", "a34004"})
# The percentile is judged against the daily limit: 24 h, or the O3 daily maximum 8 h.
PERCENTILE_PERIOD = {code: "8h" if code == O3 else "24h" for code in ANNUAL_PERCENTILES}
# GB 3095 Table 4 [P] (docs/reference/standards.md A7): an annual statistic needs ≥ 324 valid
# daily values, ≥ 27 in each month, ≥ 25 in February. Table 4 names SO2, NO2, PM10 and PM2.5;
# applying it to the CO and O3 percentiles too is a choice (HJ 663's own minimum not read).
YEAR_MIN_DAYS = 324
MONTH_MIN_DAYS = 27
FEBRUARY_MIN_DAYS = 25


def percentile(values: Iterable[float], p: float) -> float | None:
    """The p-th percentile (p a fraction, 0.98 for P98) of the values; None for no values."""
    if not 0 <= p <= 1:
        raise ValueError(f"percentile fraction {p!r} is not between 0 and 1")
    xs = sorted(Fraction(repr(float(v))) for v in values)
    n = len(xs)
    if n == 0:
        return None
    k = 1 + (n - 1) * Fraction(repr(float(p)))
    s = int(k)  # k ≥ 1: the integer part is the floor
    if s >= n:
        return float(xs[-1])
    lower, upper = xs[s - 1], xs[s]
    return float(lower + (upper - lower) * (k - s))


@dataclass(frozen=True)
class Span:
    """The local days a statistic covers: a calendar year, or the part of it that has ended."""

    year: int
    end: date  # exclusive: 1 January of the next year, or today for the year to date

    @property
    def first(self) -> date:
        """1 January."""
        return date(self.year, 1, 1)

    @property
    def complete(self) -> bool:
        """True once the whole year has ended."""
        return self.end == date(self.year + 1, 1, 1)

    @property
    def last(self) -> date:
        """The span's last day: the edition in force on it judges the statistic."""
        return self.end - timedelta(days=1)


def year_span(year: int, today: date) -> Span | None:
    """The year, or its part up to yesterday while it runs; None while no day of it has ended."""
    if year > today.year or (year == today.year and today == date(year, 1, 1)):
        return None
    return Span(year, min(date(year + 1, 1, 1), today))


def capture(days: list[date], span: Span) -> dict[str, Any]:
    """GB 3095 Table 4's test of the valid daily values: per month, for the year, and which months fail.

    A month still running passes once it holds its minimum and fails only when it has ended; the
    year's minimum is tested once the year has ended.
    """
    per_month = Counter(d.month for d in days)
    months = []
    for m in range(1, 13):
        if date(span.year, m, 1) >= span.end:
            break
        ended = (date(span.year + 1, 1, 1) if m == 12 else date(span.year, m + 1, 1)) <= span.end
        required = FEBRUARY_MIN_DAYS if m == 2 else MONTH_MIN_DAYS
        n = per_month[m]
        passes = True if n >= required else (False if ended else None)
        months.append({"month": f"{span.year}-{m:02d}", "valid_days": n, "required": required, "passes": passes})
    failing = [m["month"] for m in months if m["passes"] is False]
    year_ok = len(days) >= YEAR_MIN_DAYS if span.complete else None
    return {
        "valid_days": len(days),
        "required_days": YEAR_MIN_DAYS,
        "year_passes": year_ok,
        "months": months,
        "failing_months": failing,
        "met": not failing and year_ok is not False,
    }
