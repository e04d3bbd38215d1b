"""Check a scenario's expected outcomes against what parkwatch stored: verdicts and dead letters."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg

from simulators.scenario import Scenario

SELECT_VERDICTS = """
SELECT s.id AS station, p.code AS parameter, v.window_kind, v.window_start, v.verdict
FROM verdicts v JOIN stations s USING (sid) JOIN parameters p USING (pid)
WHERE v.window_start >= $1 AND v.window_end <= $2
"""
# Dead letters carry the topic's station id (none for a payload that named no station).
EVER = datetime.min.replace(tzinfo=UTC)
# Only those of this replay: a database that saw an earlier run keeps that run's too.
SELECT_DEAD_LETTERS = """
SELECT reason, count(*) AS n FROM dead_letters WHERE resolved_at IS NULL AND received_at >= $1 GROUP BY reason
"""


@dataclass
class Report:
    """What matched, and every difference."""

    checked: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every expectation held (and, if strict, nothing else came out)."""
        return not self.problems


async def check(
    conn: asyncpg.Connection,
    scenario: Scenario,
    *,
    fmt: str = "json",
    since: datetime = EVER,
) -> Report:
    """Compare the scenario's `expect` list with the verdicts, and the dead letters received since `since`."""
    report = Report()
    rows = await conn.fetch(SELECT_VERDICTS, scenario.start, scenario.end)
    found: dict[tuple[str, str, str, datetime], str] = {
        (r["station"], r["parameter"], r["window_kind"], r["window_start"]): r["verdict"] for r in rows
    }
    expected: set[tuple[str, str, str, datetime]] = set()
    for e in scenario.expect:
        if e.verdict is None or not (e.station and e.parameter and e.window and e.start):
            continue  # a dead-letter expectation (the model requires all four for a verdict)
        key: tuple[str, str, str, datetime] = (e.station, e.parameter, str(e.window), e.start)
        expected.add(key)
        report.checked += 1
        got = found.get(key)
        if got != e.verdict:
            where = f"{e.station} {e.parameter} {e.window} from {e.start.isoformat()}"
            report.problems.append(f"{where}: expected {e.verdict}, got {got or 'no verdict'}")
    if scenario.strict:
        for key, verdict in sorted(found.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2], kv[0][3])):
            if verdict != "compliant" and key not in expected:
                station, parameter, window, start = key
                report.problems.append(f"unexpected {verdict}: {station} {parameter} {window} from {start.isoformat()}")
    letters = Counter({r["reason"]: r["n"] for r in await conn.fetch(SELECT_DEAD_LETTERS, since)})
    wanted: Counter[str] = Counter()
    for e in scenario.expect:
        letters_expected = e.letters(fmt)
        if letters_expected is not None:
            wanted[letters_expected[0]] += letters_expected[1]
    for reason in sorted(set(wanted) | (set(letters) if scenario.strict else set())):
        report.checked += 1
        if letters.get(reason, 0) != wanted.get(reason, 0):
            report.problems.append(
                f"dead letters {reason}: expected {wanted.get(reason, 0)}, got {letters.get(reason, 0)}"
            )
    return report
