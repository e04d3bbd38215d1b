"""A simulated HJ 212 data logger on the gateway, answering the platform's requests.

It has its own clock, a memory of what it measured, and answers to the platform's requests (set
the clock, 1012; send a span again, 2051/2061/2031).
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from ingest.hj212.codec import decode, encode_data, encode_reply
from ingest.hj212.packet import Packet, parse_time

Factors = dict[str, dict[str, float | str]]
HISTORY_CNS = {"2051": timedelta(minutes=1), "2061": timedelta(hours=1), "2031": timedelta(days=1)}


class SimulatedLogger:
    """One logger connection.

    Its clock is the host's plus `offset`; `record()` measures a period and keeps it (sending it
    or not, as a lossy link would); `serve()` answers requests.
    """

    def __init__(
        self, host: str, port: int, mn: str, *, pw: str = "123456", st: str = "32", tz: str = "Asia/Shanghai"
    ) -> None:
        self.host, self.port, self.mn, self.pw, self.st = host, port, mn, pw, st
        self.tz = ZoneInfo(tz)
        self.offset = timedelta(0)
        self.kept: dict[tuple[str, datetime], bytes] = {}  # (CN, local DataTime) -> the packet
        self.requests: list[Packet] = []
        self.acks = 0
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    def now(self) -> datetime:
        """What the logger's clock says (local time, no zone, as HJ 212 writes it)."""
        return (datetime.now(self.tz) + self.offset).replace(tzinfo=None)

    async def connect(self) -> None:
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await self._writer.wait_closed()

    async def record(
        self, cn: str, data_time: datetime, factors: dict[str, dict[str, float | str]], *, send: bool = True
    ) -> None:
        """Measure one record and keep it; send it too unless the link 'loses' it."""
        packet = encode_data(cn=cn, mn=self.mn, st=self.st, pw=self.pw, data_time=data_time, factors=factors, flag=5)
        self.kept[(cn, data_time)] = packet
        if send:
            await self._send(packet)

    async def realtime(self, factors: dict[str, dict[str, float | str]]) -> None:
        """A real-time upload (2011) stamped with the logger's own clock."""
        await self._send(
            encode_data(cn="2011", mn=self.mn, st=self.st, pw=self.pw, data_time=self.now(), factors=factors, flag=4)
        )

    async def serve(self) -> None:
        """Read what the platform sends until the connection ends: count 9014s, answer requests."""
        assert self._reader is not None  # noqa: S101 - connect() first
        buffer = b""
        while chunk := await self._reader.read(65536):
            buffer += chunk
            lines = buffer.split(b"\r\n")
            buffer = lines.pop()
            for line in lines:
                for decoded in decode(line + b"\r\n"):
                    await self._answer(decoded.packet)

    async def _answer(self, packet: Packet) -> None:
        cn = packet.cn or ""
        if cn == "9014":
            self.acks += 1
            return
        if cn in ("1012", *HISTORY_CNS):
            self.requests.append(packet)
            await self._send(encode_reply(packet, cn="9011", cp=[[("QnRtn", "1")]]))
            if cn == "1012":
                told = parse_time(packet.fields.get("SystemTime", ""))
                if told is not None:
                    self.offset += told - self.now()
            else:
                begin = parse_time(packet.fields.get("BeginTime", ""))
                end = parse_time(packet.fields.get("EndTime", ""))
                for (kept_cn, ts), frame in sorted(self.kept.items()):
                    if kept_cn == cn and begin is not None and end is not None and begin <= ts <= end:
                        await self._send(frame)
            await self._send(encode_reply(packet, cn="9012", cp=[[("ExeRtn", "1")]]))

    async def _send(self, frame: bytes) -> None:
        assert self._writer is not None  # noqa: S101 - connect() first
        self._writer.write(frame)
        await self._writer.drain()
