"""The gateway's side of the platform asking: send planned requests to connected loggers, record their answers.

Requests are planned into `logger_requests` (ingest/hj212/asking.py). A gateway sends those of
the loggers connected to it, one outstanding request per logger, in the logger's dialect (its
CRC routine, its own ST and protocol edition, its password), and records the answers: 9011
(QnRtn) and 9012 (ExeRtn) carry the request's QN. The data a logger sends back is an ordinary
upload, stored by the ingest. docs/data-loggers.md#the-platform-asks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg

from ingest.hj212.codec import frame_segment, qn_for
from ingest.hj212.packet import Packet, build_segment
from ingest.store import CONNECT_TIMEOUT
from schemas.stations import CrcVariant

logger = logging.getLogger(__name__)

# How often the gateway looks for requests to send: a gap is minutes old when planned, so a few
# seconds more do not matter, and the look is one indexed query.
ASK_POLL = 5.0
# A request the logger has not finished answering by then no longer holds its turn.
ANSWER_TIMEOUT = timedelta(minutes=10)
TIME_FORMAT = "%Y%m%d%H%M%S"

CLAIM = """
WITH next AS (
    SELECT DISTINCT ON (q.sid) q.id
    FROM logger_requests q JOIN stations s USING (sid)
    WHERE q.state = 'pending' AND s.mn = any($1::text[])
      AND NOT EXISTS (SELECT 1 FROM logger_requests o
                      WHERE o.sid = q.sid AND o.state IN ('sent', 'acknowledged') AND o.sent_at > now() - $2::interval)
    ORDER BY q.sid, q.id
)
UPDATE logger_requests q SET state = 'sent', sent_at = now()
FROM next, stations s
WHERE q.id = next.id AND s.sid = q.sid AND q.state = 'pending'
RETURNING q.id, q.kind, q.cn, q.begin_ts, q.end_ts, s.mn
"""
SET_QN = "UPDATE logger_requests SET qn = $2 WHERE id = $1"
UNSEND = "UPDATE logger_requests SET state = 'pending', sent_at = NULL, qn = NULL WHERE id = $1 AND state = 'sent'"
ANSWERED = """
UPDATE logger_requests SET state = $2, answered_at = now(), result = $3,
       finished_at = CASE WHEN $2 IN ('refused', 'failed') THEN now() END
WHERE qn = $1 AND state IN ('sent', 'acknowledged')
RETURNING id
"""


@dataclass
class Link:
    """A connected logger: where to write, and how it speaks."""

    writer: asyncio.StreamWriter
    st: str
    version_bits: int  # the Flag's version bits of its own packets (4: 2017, 8: 2025)
    pw: str  # the password it sends (used when the registry sets none)


@dataclass
class Profile:
    """What the registry says about a logger: its password, time zone and CRC routine."""

    pw: str
    tz: ZoneInfo
    crc: CrcVariant


class Asker:
    """Sends requests to the loggers connected to one gateway; records what they answer."""

    def __init__(self, database_url: str) -> None:
        self._url = database_url
        self.links: dict[str, Link] = {}
        self.profiles: dict[str, Profile] = {}
        self.sent = 0
        self.answers = 0
        self._last_qn = ""

    def seen(self, packet: Packet, writer: asyncio.StreamWriter) -> None:
        """A logger's packet arrived on this connection: requests for it go here."""
        mn = packet.mn
        if not mn or packet.cn in ("9011", "9012", "9013", "9014"):
            return
        self.links[mn] = Link(writer, packet.st or "32", (packet.flag or 4) & ~3, packet.pw or "")

    def forget(self, writer: asyncio.StreamWriter) -> None:
        """A connection closed."""
        for mn in [mn for mn, link in self.links.items() if link.writer is writer]:
            del self.links[mn]

    async def run(self) -> None:
        """Send pending requests to connected loggers until cancelled."""
        while True:
            await asyncio.sleep(ASK_POLL)
            if not self.links:
                continue
            try:
                await self.send_pending()
            except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
                logger.debug("gateway: requests not readable (%s); trying again", exc)

    async def send_pending(self) -> int:
        """Claim and send one request per connected logger that has none outstanding."""
        conn = await asyncpg.connect(self._url, timeout=CONNECT_TIMEOUT)
        sent = 0
        try:
            for row in await conn.fetch(CLAIM, sorted(self.links), ANSWER_TIMEOUT):
                mn = row["mn"]
                link, profile = self.links.get(mn), self.profiles.get(mn)
                if link is None or profile is None or link.writer.is_closing():
                    await conn.execute(UNSEND, row["id"])
                    continue
                qn = self._qn(profile.tz)
                await conn.execute(SET_QN, row["id"], qn)
                link.writer.write(self._command(row, mn, qn, link, profile))
                with contextlib.suppress(ConnectionError, OSError):
                    await link.writer.drain()
                logger.info("gateway: asked MN %s for %s (request %d, QN %s)", mn, row["kind"], row["id"], qn)
                sent += 1
        finally:
            await conn.close()
        self.sent += sent
        return sent

    async def answered(self, packet: Packet) -> None:
        """Record a logger's 9011 or 9012 to one of our requests (others are none of ours)."""
        # HJ/T 212-2005 loggers answer with the QN inside CP
        qn = packet.qn or packet.fields.get("QN")
        if packet.cn == "9011":
            code = packet.fields.get("QnRtn", "")
            state, result = ("acknowledged", "QnRtn=1") if code == "1" else ("refused", f"QnRtn={code}")
        elif packet.cn == "9012":
            code = packet.fields.get("ExeRtn", "")
            state, result = ("completed", "ExeRtn=1") if code == "1" else ("failed", f"ExeRtn={code}")
        else:
            return
        if not qn:
            return
        try:
            conn = await asyncpg.connect(self._url, timeout=CONNECT_TIMEOUT)
            try:
                if await conn.fetchval(ANSWERED, qn, state, result) is not None:
                    self.answers += 1
            finally:
                await conn.close()
        except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
            logger.warning("gateway: cannot record the answer to request QN %s (%s)", qn, exc)

    def _qn(self, tz: ZoneInfo) -> str:
        """A request id from the station's clock, unique within this gateway."""
        qn = qn_for(datetime.now(tz))
        if qn <= self._last_qn:
            qn = str(int(self._last_qn) + 1)
        self._last_qn = qn
        return qn

    @staticmethod
    def _command(row: asyncpg.Record, mn: str, qn: str, link: Link, profile: Profile) -> bytes:
        """The request as the logger expects it: its ST and edition, answer wanted (Flag A)."""
        if row["kind"] == "set_clock":
            cp = [[("SystemTime", datetime.now(UTC).astimezone(profile.tz).strftime(TIME_FORMAT))]]
        else:
            begin = row["begin_ts"].astimezone(profile.tz).strftime(TIME_FORMAT)
            end = row["end_ts"].astimezone(profile.tz).strftime(TIME_FORMAT)
            cp = [[("BeginTime", begin), ("EndTime", end)]]
        segment = build_segment(
            cn=row["cn"], mn=mn, st=link.st, pw=profile.pw or link.pw, qn=qn, flag=link.version_bits | 1, cp=cp
        )
        return frame_segment(segment, crc=profile.crc)
