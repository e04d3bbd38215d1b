"""The dispatcher: delivers the outbox's notices, retrying with backoff, giving up after a limit and saying so.

Notices are claimed with a lease (FOR UPDATE SKIP LOCKED, then 'sending' until the lease ends):
several dispatchers, in one process or many, never take the same notice at once, and a notice
whose dispatcher died is taken again when its lease ends. Delivery is at least once: a crash
after a receiver took a notice and before it was marked sent sends it again, with the same
idempotency key (docs/alerts.md). A channel that is down delays only its own notices.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import asyncpg
import httpx

from alerts import store
from alerts.channels import Context, DeliveryError, deliver
from alerts.channels.mqtt import Publisher
from alerts.messages import render
from parkwatch.aio import wait_any
from parkwatch.connected import LoopPolicy, run_connected
from parkwatch.retry import backoff
from parkwatch.settings import Settings

logger = logging.getLogger(__name__)

# Notices claimed per round and delivered concurrently: a storm of 1,000 alerts is a few rounds.
CLAIM = 100
CONCURRENCY = 32
# A delivery that has not finished in this time is abandoned and counted as a failed attempt;
# the lease outlives it, so nobody else takes the notice meanwhile.
DELIVERY_TIMEOUT = 20.0
LEASE = timedelta(seconds=60)
# Attempts before a notice is given up (recorded as failed, on the alert's timeline too), and
# the backoff between them: from seconds to ten minutes, about half an hour in all.
MAX_ATTEMPTS = 8
RETRY_BASE = 2.0
RETRY_CAP = 600.0
# Without a NOTIFY, and for retries that come due, look at the outbox this often.
POLL_INTERVAL = 1.0
RECONNECT_BASE = 0.5
RECONNECT_CAP = 30.0
OUTBOX_CHANNEL = "parkwatch_notifications"

CLAIM_DUE = """
WITH due AS (
    SELECT id FROM notifications
    WHERE next_attempt_at <= clock_timestamp()
      AND (status = 'queued' OR (status = 'sending' AND lease_until < clock_timestamp()))
    ORDER BY next_attempt_at, id
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
UPDATE notifications n SET status = 'sending', attempts = n.attempts + 1,
    lease_until = clock_timestamp() + $2::interval
FROM due WHERE n.id = due.id
RETURNING n.id
"""
# Everything a notice says, read after the claim (an alert may have changed since it was queued:
# the notice reports the event as it happened and the alert as it is now).
DETAILS = """
SELECT n.id, n.alert_id, n.event_id, n.channel_id, n.attempts,
       c.kind AS channel_kind, c.config AS channel_config,
       e.kind AS event_kind, e.at AS event_at, e.detail AS event_detail,
       a.rule, a.family, a.status, a.severity, a.first_seen, a.last_seen, a.occurrences, a.value,
       a.limit_value, a.unit, a.standard, a.clause, a.exceedance_multiple, a.details, a.late,
       s.id AS station_id, s.name AS station_name, s.timezone, k.id AS park_id, k.name AS park_name, k.city,
       p.code AS parameter, p.name_zh AS parameter_zh
FROM notifications n
JOIN alert_events e ON e.id = n.event_id
JOIN alerts a ON a.id = n.alert_id
LEFT JOIN stations s ON s.sid = a.sid
JOIN parks k ON k.id = coalesce(s.park_id, a.park)
LEFT JOIN parameters p ON p.pid = a.pid
LEFT JOIN alert_channels c ON c.id = n.channel_id
WHERE n.id = any($1::bigint[])
ORDER BY n.id
"""
SENT = """
UPDATE notifications SET status = 'sent', sent_at = clock_timestamp(), lease_until = NULL, last_error = NULL
WHERE id = $1
"""
RETRY = """
UPDATE notifications SET status = 'queued', next_attempt_at = clock_timestamp() + $2::interval,
    lease_until = NULL, last_error = $3
WHERE id = $1
"""
GIVE_UP = "UPDATE notifications SET status = 'failed', lease_until = NULL, last_error = $2 WHERE id = $1"


@dataclass
class DispatchStats:
    """Counters for /metrics and the benchmark."""

    sent: int = 0
    retried: int = 0
    failed: int = 0


class Dispatcher:
    """Delivers queued notices until stopped."""

    def __init__(self, settings: Settings, *, http: httpx.AsyncClient | None = None) -> None:
        self.settings = settings
        self.stats = DispatchStats()
        self._http = http
        self._wake = asyncio.Event()
        self._publisher = Publisher(settings.mqtt, client_id=f"{settings.MQTT_CLIENT_ID}-alerts")

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver, reconnecting to the database with backoff, until stopped (any number may run)."""
        async with contextlib.AsyncExitStack() as stack:
            http = self._http
            if http is None:
                http = await stack.enter_async_context(httpx.AsyncClient(timeout=DELIVERY_TIMEOUT))
            stack.push_async_callback(self._publisher.close)
            ctx = Context(http=http, mqtt=self._publisher, topic_prefix=self.settings.TOPIC_PREFIX)

            async def work(conn: asyncpg.Connection, stop: asyncio.Event) -> None:
                await conn.add_listener(OUTBOX_CHANNEL, self._on_notify)
                while not stop.is_set():
                    self._wake.clear()
                    if await self.step(conn, ctx):
                        continue
                    await wait_any(self._wake, stop, seconds=POLL_INTERVAL)

            await run_connected(
                "dispatcher",
                self.settings.DATABASE_URL,
                stop,
                work,
                policy=LoopPolicy(retry_base=RECONNECT_BASE, retry_cap=RECONNECT_CAP),
            )

    def _on_notify(self, *_args: object) -> None:
        self._wake.set()

    async def step(self, conn: asyncpg.Connection, ctx: Context) -> int:
        """Claim due notices, deliver them concurrently, record each outcome; returns how many."""
        ids = [r["id"] for r in await conn.fetch(CLAIM_DUE, CLAIM, LEASE)]
        if not ids:
            return 0
        rows = await conn.fetch(DETAILS, ids)
        limit = asyncio.Semaphore(CONCURRENCY)

        async def one(row: asyncpg.Record) -> tuple[asyncpg.Record, DeliveryError | None]:
            async with limit:
                return row, await self._deliver(row, ctx)

        outcomes = await asyncio.gather(*(one(r) for r in rows))
        for row, error in outcomes:
            await self._record(conn, row, error)
        return len(ids)

    async def _deliver(self, row: asyncpg.Record, ctx: Context) -> DeliveryError | None:
        if row["channel_kind"] is None:
            return DeliveryError(f"channel {row['channel_id']!r} no longer exists", retryable=False)
        config: dict[str, Any] = _json(row["channel_config"])
        try:
            notice = render(row, self.settings.public_url)
            async with asyncio.timeout(DELIVERY_TIMEOUT):
                await deliver(row["channel_kind"], config, notice, ctx)
        except DeliveryError as exc:
            return exc
        except TimeoutError:
            return DeliveryError(f"no answer within {DELIVERY_TIMEOUT:.0f}s", retryable=True)
        except Exception as exc:
            logger.exception("dispatcher: notice %d through %s failed unexpectedly", row["id"], row["channel_id"])
            return DeliveryError(f"{type(exc).__name__}: {exc}", retryable=True)
        return None

    async def _record(self, conn: asyncpg.Connection, row: asyncpg.Record, error: DeliveryError | None) -> None:
        if error is None:
            await conn.execute(SENT, row["id"])
            self.stats.sent += 1
            return
        if error.retryable and row["attempts"] < MAX_ATTEMPTS:
            delay = timedelta(seconds=max(RETRY_BASE, backoff(row["attempts"], base=RETRY_BASE, cap=RETRY_CAP)))
            await conn.execute(RETRY, row["id"], delay, error.reason[:500])
            self.stats.retried += 1
            logger.warning(
                "dispatcher: notice %d through %s failed (%s); retry %d in %.0fs",
                row["id"],
                row["channel_id"],
                error.reason,
                row["attempts"],
                delay.total_seconds(),
            )
            return
        async with conn.transaction():
            await conn.execute(GIVE_UP, row["id"], error.reason[:500])
            await store.event(
                conn,
                row["alert_id"],
                "notify_failed",
                {"channel": row["channel_id"], "attempts": row["attempts"], "error": error.reason[:500]},
            )
        self.stats.failed += 1
        logger.error(
            "dispatcher: gave up notice %d through %s after %d attempt(s): %s",
            row["id"],
            row["channel_id"],
            row["attempts"],
            error.reason,
        )


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value
