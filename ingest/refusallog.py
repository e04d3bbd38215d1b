"""Logs refused messages without letting a misbehaving station flood the log."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

logger = logging.getLogger("ingest.service")

# A station that sends the same bad message every second would otherwise write a log line
# per message; one line per station and reason per minute says the same, and the dead
# letters keep every refused message anyway (docs/mqtt.md#what-is-refused-and-where-it-goes).
REFUSAL_LOG_WINDOW = 60.0
# Distinct (topic, reason) pairs remembered per window; beyond it refusals are only counted.
REFUSAL_LOG_KEYS = 1024


class RefusalLog:
    """The first refusal per topic and reason in a window is logged; the rest are counted and summed up."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._window_start = clock()
        self._suppressed: dict[tuple[str, str], int] = {}
        self._overflow = 0

    def refused(self, topic: str, reason: str, message: str) -> None:
        now = self._clock()
        if now - self._window_start >= REFUSAL_LOG_WINDOW:
            self.flush()
            self._window_start = now
        key = (topic, reason)
        seen = self._suppressed.get(key)
        if seen is not None:
            self._suppressed[key] = seen + 1
        elif len(self._suppressed) >= REFUSAL_LOG_KEYS:
            self._overflow += 1
        else:
            self._suppressed[key] = 0
            logger.info("refused %s from %s: %s", reason, topic, message)

    def flush(self) -> None:
        """Log how many refusals the window held back, then start a new window."""
        for (topic, reason), count in self._suppressed.items():
            if count:
                logger.info("refused %d more %s from %s in the last %.0f s", count, reason, topic, REFUSAL_LOG_WINDOW)
        if self._overflow:
            logger.warning(
                "refused %d more messages from more than %d topics in the last %.0f s (see dead letters)",
                self._overflow,
                REFUSAL_LOG_KEYS,
                REFUSAL_LOG_WINDOW,
            )
        self._suppressed.clear()
        self._overflow = 0
