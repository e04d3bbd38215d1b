"""The pipeline watchdog: parkwatch watching itself, and saying so without needing the database.

Each process checks what it can see (a periodic job, parkwatch/jobs.py): the database answers;
its ingest is connected to the broker and writes what it receives; the compliance worker keeps
up (the oldest dirty hour); notices leave the outbox. A check failing for longer than its
pending period raises, and recovering clears, a watchdog alarm that goes out directly from the
process: to PARKWATCH_WATCHDOG_WEBHOOK_URL (signed like every webhook) and retained on MQTT
`{prefix}/watchdog/{process}`; it also shows in /healthz and /metrics. None of it needs
PostgreSQL, which may be the very thing that failed (docs/alerts.md).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import orjson

from alerts.channels import DeliveryError, webhook
from alerts.channels.mqtt import Publisher
from alerts.messages import Notice
from alerts.processes import beat, leave, process_name
from parkwatch.settings import Settings

logger = logging.getLogger(__name__)

# A check must fail this long before it is an alarm: a database restart or a broker blip takes
# seconds, and the spool and the broker's queue ride them out without anyone being woken.
PENDING = 60.0
# The compliance worker is behind when its oldest dirty hour waits longer than this (it keeps
# the lag to seconds at 20,000 readings/s; docs/benchmarks.md).
BACKLOG_LIMIT = 600.0
# A notice still in the outbox this long after it was written is stuck (retries included).
OUTBOX_LIMIT = 3600.0
PROBE_TIMEOUT = 3.0
WEBHOOK_TIMEOUT = 10.0

CHECK_ZH = {
    "database": "数据库不可达",
    "broker": "消息服务器不可达",
    "ingest_stalled": "数据接收停滞",
    "compliance_backlog": "合规判定积压",
    "outbox_stuck": "通知发送积压",
    "compliance_failures": "部分站点数据无法判定",
}
BACKLOG = """
SELECT extract(epoch FROM clock_timestamp() - min(queued_at))::float8 AS compliance_lag,
       (SELECT extract(epoch FROM clock_timestamp() - min(created_at))::float8 FROM notifications
        WHERE status IN ('queued', 'sending')) AS outbox_lag,
       (SELECT count(*) FROM compliance_failures WHERE resolved_at IS NULL) AS failures
FROM rollup_queue
"""


@dataclass
class Check:
    """One thing watched: failing since when, and whether that has become an alarm."""

    failing_since: float | None = None
    alarm: bool = False
    detail: str = ""
    changed_at: float = field(default_factory=time.time)


class Watchdog:
    """The checks of one process; run `check()` periodically."""

    def __init__(self, settings: Settings, *, ingest: Any = None, role: str = "serve") -> None:
        self.settings = settings
        self.ingest = ingest
        self.process = f"{socket.gethostname()}-{os.getpid()}-{role}"
        self.role = role
        # This process's row in service_processes, written every pass (alerts/processes.py).
        self.name = process_name(socket.gethostname(), role, settings.MQTT_CLIENT_ID if ingest is not None else None)
        self.started_at = datetime.now(UTC)
        self.checks: dict[str, Check] = {}
        self._last_ingest: tuple[int, int] | None = None
        self._publisher = Publisher(settings.mqtt, client_id=f"{settings.MQTT_CLIENT_ID}-watchdog-{os.getpid()}")

    def state(self) -> dict[str, Any]:
        """What /healthz shows: each check, ok or not, since when."""
        return {
            name: {
                "ok": not c.alarm,
                "failing": c.failing_since is not None,
                "detail": c.detail,
                "since": datetime.fromtimestamp(c.changed_at, UTC).isoformat(),
            }
            for name, c in sorted(self.checks.items())
        }

    @property
    def alarms(self) -> list[str]:
        """Checks in alarm now."""
        return sorted(n for n, c in self.checks.items() if c.alarm)

    async def check(self) -> list[tuple[str, bool]]:
        """Run every check once; returns the alarms raised (True) or cleared (False) by this pass."""
        observed: dict[str, str | None] = {}
        lags = await self._database(observed)
        self._ingest(observed)
        if lags is not None:
            compliance, outbox, failures = lags
            observed["compliance_failures"] = (
                f"{failures} set-aside failure(s): `parkwatch compliance rejudge` once fixed" if failures else None
            )
            observed["compliance_backlog"] = (
                f"oldest dirty hour waiting {compliance:.0f} s" if compliance and compliance > BACKLOG_LIMIT else None
            )
            observed["outbox_stuck"] = (
                f"oldest notice waiting {outbox:.0f} s" if outbox and outbox > OUTBOX_LIMIT else None
            )
        now = time.time()
        changes = []
        for name, problem in observed.items():
            c = self.checks.setdefault(name, Check())
            if problem is None:
                c.failing_since, c.detail = None, ""
                if c.alarm:
                    c.alarm, c.changed_at = False, now
                    changes.append((name, False))
                continue
            c.detail = problem
            if c.failing_since is None:
                c.failing_since = now
            if not c.alarm and now - c.failing_since >= PENDING:
                c.alarm, c.changed_at = True, now
                changes.append((name, True))
        for name, raised in changes:
            await self._announce(name, raised)
        return changes

    async def _database(self, observed: dict[str, str | None]) -> tuple[float | None, float | None, int] | None:
        try:
            conn = await asyncpg.connect(self.settings.DATABASE_URL, timeout=PROBE_TIMEOUT)
        except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
            observed["database"] = f"{type(exc).__name__}: {exc}"[:200]
            return None
        try:
            row = await conn.fetchrow(BACKLOG)
            await self._beat(conn)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            observed["database"] = f"{type(exc).__name__}: {exc}"[:200]
            return None
        finally:
            await conn.close()
        observed["database"] = None
        return (row["compliance_lag"], row["outbox_lag"], row["failures"]) if row is not None else (None, None, 0)

    async def _beat(self, conn: asyncpg.Connection) -> None:
        detail: dict[str, Any] = {}
        if self.ingest is not None:
            snapshot = self.ingest.stats.snapshot()
            detail = {
                "mqtt_client_id": self.settings.MQTT_CLIENT_ID,
                "mqtt_connected": self.ingest.receiver.connected.is_set(),
                "spool_pending_batches": self.ingest.spool.pending_records,
                "writes_stalled": self.ingest.stalled_since is not None,
                "clock_offset_s": self.ingest.clock_offset_s,
                # the counters /metrics shows for an ingest in another process (api/metrics.py)
                "counters": {k: v for k, v in snapshot.items() if isinstance(v, int)},
                "dead_letters": snapshot["dead_letters"],
            }
        await beat(
            conn,
            name=self.name,
            host=socket.gethostname(),
            pid=os.getpid(),
            role=self.role,
            started_at=self.started_at,
            alarms=self.alarms,
            detail=detail,
        )

    def _ingest(self, observed: dict[str, str | None]) -> None:
        if self.ingest is None:
            return
        observed["broker"] = None if self.ingest.receiver.connected.is_set() else "the ingest is not connected"
        snap = self.ingest.stats
        now = (snap.messages, snap.batches_db + snap.batches_spooled)
        previous, self._last_ingest = self._last_ingest, now
        received = previous is not None and now[0] > previous[0]
        written = previous is not None and now[1] > previous[1]
        observed["ingest_stalled"] = "messages arrive and nothing is written" if received and not written else None

    async def _announce(self, name: str, raised: bool) -> None:
        what = CHECK_ZH.get(name, name)
        title = f"【parkwatch】系统异常：{what}" if raised else f"【parkwatch】系统恢复：{what}"
        detail = self.checks[name].detail
        text = "\n".join([title, f"进程：{self.process}", f"检查：{name}", *([f"详情：{detail}"] if detail else [])])
        document = {
            "idempotency_key": f"parkwatch-watchdog-{self.process}-{name}-{int(time.time())}",
            "event": {"kind": "raised" if raised else "cleared", "at": datetime.now(UTC).isoformat(), "detail": {}},
            "watchdog": {"process": self.process, "check": name, "alarm": raised, "detail": detail},
            "message": {"title": title, "text": text},
        }
        logger.log(
            logging.ERROR if raised else logging.WARNING,
            "watchdog: %s %s (%s)",
            name,
            "ALARM" if raised else "recovered",
            detail or "ok",
        )
        notice = Notice(title=title, text=text, markdown=text, document=document, fields={})
        if self.settings.WATCHDOG_WEBHOOK_URL:
            config = {"url": self.settings.WATCHDOG_WEBHOOK_URL, "secret": self.settings.WATCHDOG_WEBHOOK_SECRET}
            try:
                async with httpx.AsyncClient(timeout=WEBHOOK_TIMEOUT) as http:
                    await webhook.send(config, notice, http)
            except DeliveryError as exc:
                logger.error("watchdog: webhook not delivered: %s", exc.reason)
        try:
            async with asyncio.timeout(WEBHOOK_TIMEOUT):
                await self._publisher.publish(
                    f"{self.settings.TOPIC_PREFIX}/watchdog/{self.process}",
                    orjson.dumps({"process": self.process, "alarms": self.alarms, "checks": self.state()}),
                    retain=True,
                )
        except Exception as exc:  # the broker may be what failed; the webhook and the log still say it
            logger.warning("watchdog: MQTT not published: %s", exc)

    async def close(self) -> None:
        """Remove this process's row (a clean stop) and disconnect from the broker."""
        try:
            conn = await asyncpg.connect(self.settings.DATABASE_URL, timeout=PROBE_TIMEOUT)
            try:
                await leave(conn, name=self.name, pid=os.getpid())
            finally:
                await conn.close()
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            logger.warning("watchdog: this process's row stays in service_processes: %s", exc)
        await self._publisher.close()
