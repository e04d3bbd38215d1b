"""The rules' judgement, without I/O: rule names, severity bands, when an alert is active, late, or clear."""

from __future__ import annotations

from datetime import datetime, timedelta

from schemas.alerting import Family, Severity

# A window's exceedance is reported as found late when parkwatch learnt of it this long after
# the window ended: back-filled data (补发), a late correction, a re-judgement of history.
FOUND_LATE_AFTER = timedelta(hours=1)
# An exceedance judged while its window is still open may yet change; it stays pending (raised,
# not notified) until the window closes as an exceedance or it has held this long.
EXCEEDANCE_PENDING = timedelta(minutes=5)
# Compliant windows, closed, after the latest exceedance window before the alert clears: a value
# hovering at the limit keeps one alert open instead of raising and clearing it hour by hour.
# Daily windows are rare enough to clear on the first.
CLEAR_AFTER_WINDOWS = {"hour": 2, "1h": 2, "8h": 2, "24h": 1, "day": 1}
# Families a person may resolve by hand; an exceedance clears only when the data say so.
MANUALLY_RESOLVABLE = frozenset({Family.EARLY_WARNING, Family.DATA_QUALITY, Family.SUSPICIOUS, Family.WATCHDOG})

OFFLINE_RULE = "data_quality.offline"


def exceedance_rule(window_kind: str) -> str:
    """One rule per kind of window: an hour's exceedance and a day's are separate episodes."""
    return f"exceedance.{window_kind}"


def early_warning_rule(window_kind: str) -> str:
    """The early warning of a kind of window (a stack hour, a water day) still running."""
    return f"early_warning.{window_kind}"


def family_of(rule: str) -> Family:
    """The family a rule belongs to: its first part."""
    return Family(rule.split(".", 1)[0])


def exceedance_severity(multiple: float | None, *, major_at: float, critical_at: float) -> Severity:
    """Severity from the exceedance multiple (C - limit) / limit; a range limit (pH) has none: major."""
    if multiple is None:
        return Severity.MAJOR
    if multiple >= critical_at:
        return Severity.CRITICAL
    if multiple >= major_at:
        return Severity.MAJOR
    return Severity.WARNING


def higher(a: str, b: str) -> str:
    """The more urgent of two severities."""
    return a if Severity(a).rank >= Severity(b).rank else b


def is_late(window_end: datetime, known_at: datetime) -> bool:
    """True when the window ended long before parkwatch knew of its exceedance."""
    return known_at - window_end > FOUND_LATE_AFTER


def clears_after(window_kind: str) -> int:
    """Compliant closed windows after the latest exceedance that clear an exceedance alert."""
    return CLEAR_AFTER_WINDOWS.get(window_kind, 2)
