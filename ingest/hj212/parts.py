"""The times of split packets' first parts, for later parts that carry no DataTime (bounded).

HJ 212 splits a long upload into parts (Flag bit D, PNUM/PNO). Real loggers send DataTime only
in the first part and repeat its QN in the others (docs/data-loggers.md#split-packets); a later
part is read at the first part's time. The ingest remembers recent first parts here; a replay
primes it from the packet log.
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime

from ingest.hj212.packet import Packet

# First parts remembered: the parts of one packet follow each other within seconds, so this
# covers every logger of a province sending at once, with room to spare; the oldest goes first.
FIRST_PARTS_LIMIT = 20_000

Key = tuple[str, str, str]  # MN, CN, QN


def part_key(packet: Packet) -> Key | None:
    """What links the parts of one split packet: the logger, the command and the shared QN."""
    if not packet.mn or not packet.qn or packet.pnum is None or packet.pno is None:
        return None
    return packet.mn, packet.cn or "", packet.qn


class FirstParts:
    """Data times of recent first parts by (MN, CN, QN)."""

    def __init__(self, limit: int = FIRST_PARTS_LIMIT) -> None:
        self._limit = limit
        self._times: OrderedDict[Key, datetime] = OrderedDict()

    def remember(self, key: Key, ts: datetime) -> None:
        """A part that carried its data time (in practice, the first)."""
        self._times[key] = ts
        self._times.move_to_end(key)
        while len(self._times) > self._limit:
            self._times.popitem(last=False)

    def data_time(self, key: Key) -> datetime | None:
        """The data time of the part this key names, if it was seen."""
        return self._times.get(key)

    def __len__(self) -> int:
        return len(self._times)
