"""/metrics through the Prometheus client library: ingest, compliance, watchdog, HTTP and process metrics.

Each app has a registry of its own (several apps share a test process): the process and platform
collectors, the HTTP request histogram the middleware feeds, and a collector that reads the
ingest counters, the compliance backlog and the watchdog when scraped. The backlog needs the
database, which a synchronous collector cannot ask: the route reads it first and hands it over.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, PlatformCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ingest.stats import STATS

# The ingest's counters, as parkwatch_ingest_<name>_total.
INGEST_COUNTERS = (
    ("messages", "MQTT messages received"),
    ("readings_offered", "readings in the messages received"),
    ("readings_new", "readings stored for the first time"),
    ("readings_duplicate", "readings already stored with the same value"),
    ("revisions", "readings stored again with another value (kept as revisions)"),
    ("batches_db", "batches committed to PostgreSQL"),
    ("batches_spooled", "batches written to the spool while the database was out of reach"),
    ("batches_replayed", "spooled batches committed since"),
    ("db_outages", "times the database became unreachable"),
    ("broker_sessions_lost", "reconnections to a broker that no longer had the ingest's session"),
    ("durability_failures", "tries at a batch neither the database nor the spool took"),
)
LATENCIES = (
    ("ingest_latency", "parkwatch_ingest_latency_seconds", "receive to durable (committed or spooled)"),
    ("data_latency", "parkwatch_data_latency_seconds", "a real-time reading's timestamp to durable"),
    ("delivery_latency", "parkwatch_delivery_latency_seconds", "a message's sent_at (or HJ 212 QN) to durable"),
)
# Request durations from a cached answer (~1 ms) to the statement timeout (15 s).
HTTP_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0)


class StateCollector(Collector):
    """The app's ingest, compliance backlog and watchdog, read at scrape time."""

    def __init__(self, state: Any) -> None:
        self.state = state
        self.backlog: dict[str, Any] | None = None  # set by the route just before a scrape
        # every parkwatch process's row (alerts/processes.py), likewise set by the route
        self.processes: list[dict[str, Any]] | None = None

    def collect(self) -> Iterator[Metric]:
        """Every family, from the state as it is now."""
        ingest = getattr(self.state, "ingest", None)
        if ingest is None and self.processes:
            # The ingest runs in other processes (a supervised serve, several instances): their
            # counters as of their last beat (every 15 s), one series per MQTT client id.
            yield from self._other_ingests(self.processes)
        else:
            yield from self._own_ingest(ingest)
        if self.processes is not None:
            up = GaugeMetricFamily(
                "parkwatch_process_running", "1 while the process beats (alerts/processes.py)", labels=["name", "role"]
            )
            for proc in self.processes:
                up.add_metric([proc["name"], proc["role"]], 1 if proc["running"] else 0)
            yield up
        yield from self._backlog_and_watchdog()

    def _other_ingests(self, processes: list[dict[str, Any]]) -> Iterator[Metric]:
        ingests = [p for p in processes if "ingest" in p["role"].split(",") and "counters" in p["detail"]]
        for name, what in INGEST_COUNTERS:
            family = CounterMetricFamily(f"parkwatch_ingest_{name}", what, labels=["ingest"])
            for p in ingests:
                family.add_metric([p["detail"]["mqtt_client_id"]], p["detail"]["counters"].get(name, 0))
            yield family
        letters = CounterMetricFamily(
            "parkwatch_ingest_dead_letters", "payloads refused, by reason", labels=["ingest", "reason"]
        )
        spool = GaugeMetricFamily("parkwatch_ingest_spool_pending_batches", "batches in the spool", labels=["ingest"])
        for p in ingests:
            client = p["detail"]["mqtt_client_id"]
            for reason, count in sorted(p["detail"].get("dead_letters", {}).items()):
                letters.add_metric([client, reason], count)
            spool.add_metric([client], p["detail"].get("spool_pending_batches", 0))
        yield letters
        yield spool

    def _own_ingest(self, ingest: Any) -> Iterator[Metric]:
        stats = ingest.stats if ingest is not None else STATS
        for name, what in INGEST_COUNTERS:
            yield CounterMetricFamily(f"parkwatch_ingest_{name}", what, value=getattr(stats, name))
        letters = CounterMetricFamily("parkwatch_ingest_dead_letters", "payloads refused, by reason", labels=["reason"])
        for reason, count in sorted(stats.dead_letters.items()):
            letters.add_metric([reason], count)
        yield letters
        for attr, name, what in LATENCIES:
            window = getattr(stats, attr)
            yield HistogramMetricFamily(name, what, buckets=window.cumulative(), sum_value=window.total)
        if ingest is not None:
            yield GaugeMetricFamily(
                "parkwatch_ingest_spool_pending_batches", "batches in the spool", value=ingest.spool.pending_records
            )
            if ingest.clock_offset_s is not None:
                yield GaugeMetricFamily(
                    "parkwatch_ingest_clock_offset_seconds",
                    "the database server's clock minus this host's",
                    value=ingest.clock_offset_s,
                )

    def _backlog_and_watchdog(self) -> Iterator[Metric]:
        if self.backlog is not None:
            yield GaugeMetricFamily(
                "parkwatch_compliance_queue_hours",
                "station-hours waiting to be judged",
                value=self.backlog["queue_hours"],
            )
            yield GaugeMetricFamily(
                "parkwatch_compliance_lag_seconds", "age of the oldest hour waiting", value=self.backlog["lag_seconds"]
            )
            yield GaugeMetricFamily(
                "parkwatch_compliance_set_aside_failures",
                "stations whose hours the worker set aside after failing on them",
                value=self.backlog["set_aside_stations"],
            )
        watchdog = getattr(self.state, "watchdog", None)
        if watchdog is not None:
            alarm = GaugeMetricFamily("parkwatch_watchdog_alarm", "1 when the check is failing", labels=["check"])
            for check, ok in watchdog.state().items():
                alarm.add_metric([check], 0 if ok["ok"] else 1)
            yield alarm


class Metrics:
    """An app's registry and the instruments its middleware feeds."""

    def __init__(self, state: Any) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self.state = StateCollector(state)
        self.registry.register(self.state)
        self.requests = Counter(
            "parkwatch_http_requests", "HTTP requests answered", ["method", "route", "status"], registry=self.registry
        )
        self.duration = Histogram(
            "parkwatch_http_request_duration_seconds",
            "time to the end of the answer (a stream: to its end)",
            ["method", "route"],
            buckets=HTTP_BUCKETS,
            registry=self.registry,
        )


class MetricsMiddleware:
    """Counts and times every request by its route's template (never the raw path: no unbounded labels)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method = scope.get("method", "")
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.duration.labels(method, route).observe(time.perf_counter() - started)
