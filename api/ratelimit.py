"""Requests per minute per principal: a token bucket in each API process (docs/access.md#rate-limits)."""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from dataclasses import dataclass

# Buckets kept at most; the least recently used goes first (a full bucket loses nothing by it).
MAX_BUCKETS = 10_000


@dataclass(slots=True)
class Quota:
    """What the headers say after a request: the limit, what is left, seconds until full."""

    limit: int
    remaining: int
    reset_s: int
    allowed: bool
    retry_after_s: int = 0


class RateLimiter:
    """A bucket of `per_minute` tokens per principal, refilled continuously."""

    def __init__(self, per_minute: int) -> None:
        self.limit = per_minute
        self._rate = per_minute / 60.0
        self._buckets: OrderedDict[object, tuple[float, float]] = OrderedDict()
        self._now = time.monotonic

    def take(self, who: object) -> Quota:
        """Spend one token of `who`'s bucket, if there is one."""
        now = self._now()
        tokens, at = self._buckets.pop(who, (float(self.limit), now))
        tokens = min(float(self.limit), tokens + (now - at) * self._rate)
        allowed = tokens >= 1.0
        if allowed:
            tokens -= 1.0
        self._buckets[who] = (tokens, now)
        if len(self._buckets) > MAX_BUCKETS:
            self._buckets.popitem(last=False)
        reset_s = math.ceil((self.limit - tokens) / self._rate)
        retry = 0 if allowed else math.ceil((1.0 - tokens) / self._rate)
        return Quota(self.limit, int(tokens), reset_s, allowed, retry)

    def exhausted(self, who: object) -> Quota | None:
        """The quota of `who` if its bucket is empty now (nothing spent); None while it has a token."""
        tokens, at = self._buckets.get(who, (float(self.limit), self._now()))
        tokens = min(float(self.limit), tokens + (self._now() - at) * self._rate)
        if tokens >= 1.0:
            return None
        return Quota(self.limit, 0, math.ceil((self.limit - tokens) / self._rate), False,
                     math.ceil((1.0 - tokens) / self._rate))  # fmt: skip

    def headers(self, quota: Quota) -> dict[str, str]:
        """The usual headers (as GitHub and OpenAQ send them), and Retry-After when refused."""
        out = {
            "X-RateLimit-Limit": str(quota.limit),
            "X-RateLimit-Remaining": str(quota.remaining),
            "X-RateLimit-Reset": str(quota.reset_s),
        }
        if not quota.allowed:
            out["Retry-After"] = str(quota.retry_after_s)
        return out
