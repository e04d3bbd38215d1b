"""Ingest counters and latency samples, for /metrics, /healthz and the benchmark."""

from __future__ import annotations

import math
from array import array
from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

# Latency percentiles are computed over the most recent samples only: enough for a stable p99,
# small enough (1.6 MB) to keep for ever.
LATENCY_WINDOW = 200_000


# Histogram bucket bounds for /metrics, seconds: from a fast commit (5 ms) to a replayed spool or
# a back-filled day (5 min); Prometheus adds +Inf.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class LatencyWindow:
    """A ring of the most recent latency samples, in seconds, and a histogram of every sample."""

    def __init__(self, size: int = LATENCY_WINDOW) -> None:
        self._buf = array("d")
        self._size = size
        self._next = 0
        self.count = 0
        self.total = 0.0  # the sum of every sample
        self.buckets = [0] * len(LATENCY_BUCKETS)  # samples ≤ each bound (not cumulative)

    def add(self, seconds: float) -> None:
        """Record one sample."""
        self.count += 1
        self.total += seconds
        k = bisect_left(LATENCY_BUCKETS, seconds)
        if k < len(self.buckets):
            self.buckets[k] += 1
        if len(self._buf) < self._size:
            self._buf.append(seconds)
        else:
            self._buf[self._next] = seconds
            self._next = (self._next + 1) % self._size

    def percentiles(self, *qs: float) -> list[float | None]:
        """Nearest-rank percentiles (0-100) of the window; None when empty."""
        if not self._buf:
            return [None for _ in qs]
        ordered = sorted(self._buf)
        n = len(ordered)
        # nearest rank: the smallest value with at least q % of the samples at or below it
        return [ordered[min(n - 1, max(0, math.ceil(q / 100 * n) - 1))] for q in qs]

    def cumulative(self) -> list[tuple[str, float]]:
        """The histogram as Prometheus buckets: (upper bound, samples at or below it), +Inf last."""
        out, running = [], 0
        for bound, n in zip(LATENCY_BUCKETS, self.buckets, strict=True):
            running += n
            out.append((repr(bound), float(running)))
        out.append(("+Inf", float(self.count)))
        return out

    def reset(self) -> None:
        """Forget every sample."""
        self._buf = array("d")
        self._next = 0
        self.count = 0
        self.total = 0.0
        self.buckets = [0] * len(LATENCY_BUCKETS)


@dataclass
class IngestStats:
    """Process-wide ingest counters."""

    messages: int = 0
    readings_offered: int = 0
    readings_new: int = 0
    readings_duplicate: int = 0
    revisions: int = 0
    batches_db: int = 0
    batches_spooled: int = 0
    batches_replayed: int = 0
    db_outages: int = 0
    # Reconnections to a broker that no longer had the ingest's session (ingest/mqtt.py).
    broker_sessions_lost: int = 0
    # Tries at a batch neither the database nor the spool took (a full disk: docs/faults.md).
    durability_failures: int = 0
    dead_letters: Counter[str] = field(default_factory=Counter)
    # receive → durable (committed or fsynced to the spool)
    ingest_latency: LatencyWindow = field(default_factory=LatencyWindow)
    # reading ts → durable, for real-time readings: publish → commit when stations stamp ts at
    # publish time (the benchmark does)
    data_latency: LatencyWindow = field(default_factory=LatencyWindow)
    # sent → durable, for messages that say when they were sent (JSON sent_at, HJ 212 QN): the
    # delivery delay whatever the data's own time (back-fill, accelerated replays)
    delivery_latency: LatencyWindow = field(default_factory=LatencyWindow)

    def snapshot(self) -> dict[str, Any]:
        """A JSON-ready view."""
        p50, p99 = self.ingest_latency.percentiles(50, 99)
        d50, d99 = self.data_latency.percentiles(50, 99)
        s50, s99 = self.delivery_latency.percentiles(50, 99)
        return {
            "messages": self.messages,
            "readings_offered": self.readings_offered,
            "readings_new": self.readings_new,
            "readings_duplicate": self.readings_duplicate,
            "revisions": self.revisions,
            "batches_db": self.batches_db,
            "batches_spooled": self.batches_spooled,
            "batches_replayed": self.batches_replayed,
            "db_outages": self.db_outages,
            "broker_sessions_lost": self.broker_sessions_lost,
            "durability_failures": self.durability_failures,
            "dead_letters": dict(self.dead_letters),
            "ingest_latency_s": {"p50": p50, "p99": p99, "count": self.ingest_latency.count},
            "data_latency_s": {"p50": d50, "p99": d99, "count": self.data_latency.count},
            "delivery_latency_s": {"p50": s50, "p99": s99, "count": self.delivery_latency.count},
        }


STATS = IngestStats()
