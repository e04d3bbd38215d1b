"""The one retry delay: full-jitter exponential backoff, for every reconnect and redelivery."""

from __future__ import annotations

import random

# Defaults for a service that went away: start fast (a restart takes a second), and cap so that
# its return is noticed within about half a minute. Read at call time (tests shorten them).
RETRY_BASE = 0.5
RETRY_CAP = 30.0


def backoff(attempt: int, *, base: float | None = None, cap: float | None = None) -> float:
    """Uniform in [0, min(cap, base * 2**attempt)]: retries of many clients spread out instead of colliding."""
    base = RETRY_BASE if base is None else base
    cap = RETRY_CAP if cap is None else cap
    return random.uniform(0, min(cap, base * 2 ** min(attempt, 16)))  # noqa: S311 - jitter, not crypto
