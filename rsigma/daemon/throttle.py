"""A warning that repeats while a condition lasts (a sink or the DLQ holding an event), at most once
per interval, so an outage of hours is visible in the log without flooding it."""

from __future__ import annotations

import time
from typing import Final

#: Seconds between two warnings about the same ongoing condition.
WARN_INTERVAL_S: Final = 5.0


class Throttle:
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
