"""Retrying a write that keeps failing (a sink, the DLQ): the wait before each retry, and a warning
that repeats while the failure lasts, at most once per interval, so an outage of hours is visible in
the log without flooding it."""

from __future__ import annotations

import time
from typing import Final

#: Seconds between two warnings about the same ongoing failure.
WARN_INTERVAL_S: Final = 5.0


def backoff_s(attempt: int, base_s: float, max_s: float) -> float:
    """The wait before retry number `attempt` (1, 2, ...): doubling from `base_s`, at most `max_s`,
    however long the retries go on."""
    return min(base_s * 2 ** min(attempt - 1, 62), max_s)


class Throttle:
    """Says when a warning about an ongoing condition is due: the first time, then once per interval."""

    def __init__(self, interval_s: float = WARN_INTERVAL_S) -> None:
        self.interval_s = interval_s
        self._last = float("-inf")

    def ready(self) -> bool:
        """Whether to warn now: the first time, then once the interval has passed since the last."""
        now = time.monotonic()
        if now - self._last < self.interval_s:
            return False
        self._last = now
        return True
