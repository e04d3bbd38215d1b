"""Where a pattern occurs in the framer's growing buffer, by absolute offset, each byte scanned once."""

from __future__ import annotations

import re
from bisect import bisect_left


class Positions:
    """Where a pattern occurs in the framer's stream (absolute offsets), each byte scanned once.

    Every header searches the same bytes ahead of it for 'CP=&&' and for boundaries; with
    thousands of headers in a window, searching per header was quadratic in the input.
    """

    def __init__(self, pattern: re.Pattern[bytes], width: int) -> None:
        self._pattern = pattern
        self._width = width  # bytes a match spans, lookahead included
        self._at: list[int] = []
        self._head = 0  # entries before it lie before the buffer: dropped lazily
        self._to = 0  # match starts before this absolute offset are all found

    def between(self, buf: bytearray, offset: int, lo: int, hi: int) -> list[int]:
        """Absolute offsets of matches starting in [lo, hi), scanning new bytes first."""
        end = offset + len(buf)
        start = max(self._to, offset)
        if start < end:
            last = self._at[-1] if len(self._at) > self._head else -1
            for m in self._pattern.finditer(buf, start - offset):
                at = offset + m.start()
                if at > last:
                    self._at.append(at)
            # A match may still begin in the last width-1 bytes once more arrive.
            self._to = max(start, end - self._width + 1)
        if self._head > 1024 and self._head * 2 > len(self._at):
            del self._at[: self._head]
            self._head = 0
        self._head = bisect_left(self._at, offset, self._head)
        i = bisect_left(self._at, lo, self._head)
        j = bisect_left(self._at, hi, i)
        return self._at[i:j]
