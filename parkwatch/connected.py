"""The long-running database loop: connect with backoff, optionally lead alone, survive failures, stop cleanly.

The compliance worker, the alert engine and the dispatcher all run this way. With a lock key,
one process at a time does the work (a session advisory lock); the others stand by and take
over when the leader's session ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg

from parkwatch.aio import sleep_or_stop
from parkwatch.retry import backoff

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoopPolicy:
    """How a loop retries: backoff while the database is away, a pause after a failed round."""

    retry_base: float = 0.5
    retry_cap: float = 30.0
    standby_interval: float = 5.0


async def run_connected(
    name: str,
    dsn: str,
    stop: asyncio.Event,
    work: Callable[[asyncpg.Connection, asyncio.Event], Awaitable[None]],
    *,
    lock_key: int | None = None,
    policy: LoopPolicy = LoopPolicy(),
    on_error: Callable[[], None] | None = None,
) -> None:
    """Run `work(conn, stop)` on a fresh connection until stopped, reconnecting and retrying as it fails.

    An unexpected exception in `work` is logged and counted (`on_error`) and the loop pauses for
    `retry_cap` before trying again: a bug in one component must not take the others in the
    process down with it.
    """
    attempt = 0
    while not stop.is_set():
        try:
            conn = await asyncpg.connect(dsn)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            delay = backoff(attempt, base=policy.retry_base, cap=policy.retry_cap)
            attempt += 1
            logger.warning("%s: database unreachable (%s); retrying in %.1fs", name, exc, delay)
            await sleep_or_stop(stop, delay)
            continue
        attempt = 0
        try:
            if lock_key is not None:
                while not await conn.fetchval("SELECT pg_try_advisory_lock($1)", lock_key):
                    logger.info("%s: another process leads; standing by", name)
                    if await sleep_or_stop(stop, policy.standby_interval):
                        return
                logger.info("%s: leading", name)
            await work(conn, stop)
        except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError) as exc:
            logger.warning("%s: connection lost (%s); reconnecting", name, exc)
            await sleep_or_stop(stop, policy.retry_base)
        except Exception:
            if on_error is not None:
                on_error()
            logger.exception("%s: failed; retrying in %.0fs", name, policy.retry_cap)
            await sleep_or_stop(stop, policy.retry_cap)
        finally:
            with contextlib.suppress(Exception):
                await conn.close(timeout=5)
