"""The refusal log: one line per topic and reason per window, then a count."""

from __future__ import annotations

import logging

import pytest

from ingest import refusallog
from ingest.refusallog import RefusalLog


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_repeats_are_counted_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    log = RefusalLog(clock)
    with caplog.at_level(logging.INFO, logger="ingest.service"):
        for _ in range(1000):
            log.refused("t/p1/s1/readings", "schema", "bad")
        log.refused("t/p1/s1/readings", "out_of_range", "too big")
        log.refused("t/p1/s2/readings", "schema", "bad")
        assert len(caplog.records) == 3
        clock.now = refusallog.REFUSAL_LOG_WINDOW
        log.refused("t/p1/s1/readings", "schema", "bad")
    lines = [r.getMessage() for r in caplog.records]
    assert "refused 999 more schema from t/p1/s1/readings in the last 60 s" in lines
    assert not any("more out_of_range" in line for line in lines), "nothing was held back for it"
    assert lines[-1] == "refused schema from t/p1/s1/readings: bad", "a new window logs the first again"


def test_many_topics_are_bounded(caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(refusallog, "REFUSAL_LOG_KEYS", 3)
    log = RefusalLog(Clock())
    with caplog.at_level(logging.INFO, logger="ingest.service"):
        for i in range(10):
            log.refused(f"t/p/s{i}/readings", "schema", "bad")
        log.flush()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 4
    assert lines[-1].startswith("refused 7 more messages from more than 3 topics")
    assert len(log._suppressed) == 0
