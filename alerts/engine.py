"""The alert engine: applies verdict changes to exceedance alerts, with their timeline and notices, in one transaction.

Verdict changes reach it through alert_inbox, written by a trigger in the transaction that
changed the verdict (schemas/migrations/0006_alerts.sql). Each batch of changes, the alerts they
open, change or clear, their timeline entries and the notices routing chooses commit together,
and the batch's inbox rows are deleted in the same transaction: a crash anywhere loses nothing
and doubles nothing. One engine leads at a time (an advisory lock); another stands by.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import asyncpg

from alerts import rules, store
from parkwatch.aio import wait_any
from parkwatch.connected import LoopPolicy, run_connected
from parkwatch.settings import Settings
from schemas.alerting import Family, Severity

logger = logging.getLogger(__name__)

# Verdict changes applied per transaction: a storm of 1,000 stations is a few batches.
BATCH = 500
# Without a NOTIFY (a missed one, or a connection that was down), look at the inbox this often.
POLL_INTERVAL = 1.0
STANDBY_INTERVAL = 5.0
RETRY_BASE = 0.5
RETRY_CAP = 30.0
LEADER_LOCK = 0x7077616C  # "pwal"
INBOX_CHANNEL = "parkwatch_alert_inbox"


@dataclass
class EngineStats:
    """Counters for /metrics and the benchmark."""

    applied: int = 0
    raised: int = 0
    cleared: int = 0
    errors: int = 0


class AlertEngine:
    """Turns verdict changes into exceedance alerts."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.stats = EngineStats()
        self._wake = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        """Lead (or stand by) until stopped, reconnecting with backoff.

        A failed batch leaves its inbox rows: they are applied when the cause is fixed.
        """
        await run_connected(
            "alert engine",
            self.settings.DATABASE_URL,
            stop,
            self._work,
            lock_key=LEADER_LOCK,
            policy=LoopPolicy(retry_base=RETRY_BASE, retry_cap=RETRY_CAP, standby_interval=STANDBY_INTERVAL),
            on_error=self._count_error,
        )

    def _count_error(self) -> None:
        self.stats.errors += 1

    async def _work(self, conn: asyncpg.Connection, stop: asyncio.Event) -> None:
        await conn.add_listener(INBOX_CHANNEL, self._on_notify)
        while not stop.is_set():
            self._wake.clear()
            if await self.step(conn):
                continue
            await wait_any(self._wake, stop, seconds=POLL_INTERVAL)

    def _on_notify(self, *_args: object) -> None:
        self._wake.set()

    async def drain(self, conn: asyncpg.Connection) -> int:
        """Apply every pending change now (tests, `compliance catch-up`); returns how many."""
        await conn.execute("SELECT pg_advisory_lock($1)", LEADER_LOCK)
        try:
            total = 0
            while n := await self.step(conn):
                total += n
            return total
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", LEADER_LOCK)

    async def step(self, conn: asyncpg.Connection) -> int:
        """Apply one batch of verdict changes in one transaction; returns how many."""
        started = time.perf_counter()
        async with conn.transaction():
            changes = await store.claim_inbox(conn, BATCH)
            for change in changes:
                await self._apply(conn, change)
            await store.delete_inbox(conn, [c["id"] for c in changes])
        if changes:
            self.stats.applied += len(changes)
            logger.debug("alert engine: %d verdict changes in %.3fs", len(changes), time.perf_counter() - started)
        return len(changes)

    async def _apply(self, conn: asyncpg.Connection, change: asyncpg.Record) -> None:
        await self._early_warning(conn, change)
        if change["verdict"] == "exceedance":
            await self._exceedance(conn, change)
        else:
            await self._not_exceedance(conn, change)

    async def _early_warning(self, conn: asyncpg.Connection, c: asyncpg.Record) -> None:
        """A window still running that is already over its limit: warn now; stop when it is judged or recedes."""
        rule = rules.early_warning_rule(c["window_kind"])
        window = _window(c)
        if c["early_warning"] and not c["closed"]:
            alert, opened = await store.open_or_find(
                conn,
                (
                    c["sid"],
                    c["pid"],
                    rule,
                    Family.EARLY_WARNING.value,
                    "active",
                    Severity.WARNING.value,
                    c["window_start"],
                    c["window_end"],
                    False,
                    c["value_judged"],
                    _number(c["limit_value"]),
                    c["unit"],
                    c["standard"],
                    c["rule"],
                    c["exceedance_multiple"],
                    _details(c),
                    timedelta(0),
                ),
            )
            if opened:
                event_id = await store.event(conn, alert["id"], "raised", window)
                await store.enqueue(conn, alert, event_id, c["park_id"])
            elif alert["first_seen"] != c["window_start"]:
                await conn.execute(store.TOUCH, alert["id"], c["window_end"])
            return
        found = await store.find_open(conn, c["sid"], c["pid"], rule)
        if found is None or c["window_end"] < found["last_seen"]:
            return  # news of an earlier window than the one warned of
        # The window it warned of is now judged (an exceedance alert takes over), ended, or back under.
        if c["window_end"] > found["last_seen"] or c["closed"]:
            reason = (
                "judged" if c["verdict"] == "exceedance" and c["window_end"] == found["last_seen"] else "window_ended"
            )
        else:
            reason = "judged" if c["verdict"] == "exceedance" else "receded"
        await self._clear(conn, found, c["park_id"], reason, {**window, "verdict": c["verdict"]})

    async def _exceedance(self, conn: asyncpg.Connection, c: asyncpg.Record) -> None:
        s = self.settings
        now = await conn.fetchval("SELECT clock_timestamp()")
        severity = rules.exceedance_severity(
            c["exceedance_multiple"], major_at=s.ALERT_MAJOR_AT, critical_at=s.ALERT_CRITICAL_AT
        ).value
        late = rules.is_late(c["window_end"], now)
        # A window already over is final: active at once. One still running may change: pending.
        status = "active" if c["closed"] else "pending"
        limit = _number(c["limit_value"])
        alert, opened = await store.open_or_find(
            conn,
            (
                c["sid"],
                c["pid"],
                rules.exceedance_rule(c["window_kind"]),
                Family.EXCEEDANCE.value,
                status,
                severity,
                c["window_start"],
                c["window_end"],
                late,
                c["value_judged"],
                limit,
                c["unit"],
                c["standard"],
                c["rule"],
                c["exceedance_multiple"],
                _details(c),
                _hours(s.ALERT_EXPLANATION_HOURS),
            ),
        )
        inserted = await conn.fetchval(
            store.ADD_WINDOW,
            alert["id"],
            c["window_start"],
            c["window_end"],
            c["value_judged"],
            c["exceedance_multiple"],
        )
        window = _window(c)
        if opened:
            self.stats.raised += 1
            event_id = await store.event(
                conn, alert["id"], "raised", {**window, "status": status, "severity": severity, "late": late}
            )
            if status == "active":
                await store.enqueue(conn, alert, event_id, c["park_id"])
            return
        before = alert
        alert = await _one(
            conn,
            store.RECORD_WINDOW,
            alert["id"],
            1 if inserted else 0,
            c["window_start"],
            c["window_end"],
            c["value_judged"],
            c["exceedance_multiple"],
            rules.higher(before["severity"], severity),
        )
        if before["status"] == "pending" and c["closed"]:
            alert = await _one(conn, store.ACTIVATE, alert["id"], _hours(s.ALERT_EXPLANATION_HOURS))
            event_id = await store.event(conn, alert["id"], "activated", {**window, "severity": alert["severity"]})
            await store.enqueue(conn, alert, event_id, c["park_id"])
        elif before["status"] == "active" and alert["severity"] != before["severity"]:
            event_id = await store.event(
                conn, alert["id"], "severity_raised", {**window, "from": before["severity"], "to": alert["severity"]}
            )
            await store.enqueue(conn, alert, event_id, c["park_id"])
        elif inserted:
            await store.event(conn, alert["id"], "repeated", {**window, "occurrences": alert["occurrences"]})
        else:
            await store.event(conn, alert["id"], "revised", {**window, "revision": c["revision"]})

    async def _not_exceedance(self, conn: asyncpg.Connection, c: asyncpg.Record) -> None:
        """A compliant or short window: take it out of an alert it belonged to, or count it towards clearing."""
        alert = await store.find_open(conn, c["sid"], c["pid"], rules.exceedance_rule(c["window_kind"]))
        if alert is None:
            return
        window = _window(c)
        if await conn.fetchval(store.REMOVE_WINDOW, alert["id"], c["window_start"]) is not None:
            span = await _one(conn, store.WINDOW_SPAN, alert["id"])
            if span["n"] == 0:
                # Its only windows were revised away: it was never an exceedance after all.
                await self._clear(conn, alert, c["park_id"], "revised", {**window, "verdict": c["verdict"]})
                return
            await conn.execute(store.SHRINK, alert["id"], span["n"], span["first"], span["last"], span["multiple"])
            await store.event(conn, alert["id"], "window_revised", {**window, "verdict": c["verdict"]})
            return
        if c["verdict"] != "compliant" or not c["closed"] or c["window_start"] < alert["last_seen"]:
            return
        streak = await conn.fetchval(store.COMPLIANT_AFTER, c["sid"], c["pid"], c["window_kind"], alert["last_seen"])
        if streak >= rules.clears_after(c["window_kind"]):
            await self._clear(conn, alert, c["park_id"], "compliant", {**window, "compliant_windows": streak})
        else:
            await conn.execute(store.SET_STREAK, alert["id"], streak)

    async def _clear(
        self, conn: asyncpg.Connection, alert: asyncpg.Record, park_id: str, reason: str, detail: dict[str, Any]
    ) -> None:
        cleared = await conn.fetchrow(store.CLEAR, alert["id"], reason)
        if cleared is None:
            return
        self.stats.cleared += 1
        event_id = await store.event(conn, alert["id"], "cleared", {**detail, "reason": reason})
        if alert["status"] == "active":  # a pending alert was never announced: nothing to take back
            await store.enqueue(conn, cleared, event_id, park_id, resolve=True)


async def _one(conn: asyncpg.Connection, query: str, *args: Any) -> asyncpg.Record:
    """The row a statement must return (it updates or reads a row this transaction holds)."""
    row = await conn.fetchrow(query, *args)
    if row is None:
        raise RuntimeError(f"expected a row from: {query.strip().splitlines()[0]}")
    return row


def _number(limit: Any) -> float | None:
    """A limit as one number (a [low, high] range has none)."""
    if isinstance(limit, str):  # asyncpg hands jsonb over as text
        limit = json.loads(limit)
    return float(limit) if isinstance(limit, int | float) else None


def _details(c: asyncpg.Record) -> str:
    limit = c["limit_value"]
    return json.dumps(
        {
            "window_kind": c["window_kind"],
            "class": c["class"],
            "limit": json.loads(limit) if isinstance(limit, str) else limit,
            "value_measured": c["value"],
        },
        ensure_ascii=False,
    )


def _window(c: asyncpg.Record) -> dict[str, Any]:
    return {
        "window_kind": c["window_kind"],
        "window_start": c["window_start"].isoformat(),
        "window_end": c["window_end"].isoformat(),
        "value": c["value_judged"],
        "exceedance_multiple": c["exceedance_multiple"],
    }


def _hours(hours: float) -> timedelta:
    return timedelta(hours=hours)
