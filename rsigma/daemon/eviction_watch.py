"""Correlation windows dropped at `--max-state-entries`: counted, and said in the log.

An evicted window loses hits that were still inside its timespan, so a correlation close to firing
can miss (a flood of new groups pushing out an attacker's). The engine counts those drops
(`CorrelationEngine.evicted`, summed over the matchers of a pool); this turns the running total into
`rsigma_correlation_evictions_total` and a warning at most once a minute, with how many windows went
since the last one, so a flood of evictions is one line a minute, not one per event.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Final

from prometheus_client import Counter

log = logging.getLogger("rsigma.daemon")

#: At most one eviction warning per this many seconds.
WARN_EVERY_S: Final = 60.0


class EvictionWatch:
    def __init__(
        self,
        counter: Counter,
        limit: int,
        workers: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.counter = counter
        self.limit = limit
        self.scope = "per matcher" if workers else "in total"
        self.clock = clock
        self.total = 0  # as last seen
        self.unreported = 0  # evicted since the last warning
        self.warned_at: float | None = None

    def update(self, total: int) -> None:
        """Take the engine's running total (after each batch); warn if due."""
        if total > self.total:
            self.counter.inc(total - self.total)
            self.unreported += total - self.total
            self.total = total
        if self.unreported:
            now = self.clock()
            if self.warned_at is None or now - self.warned_at >= WARN_EVERY_S:
                self._warn(now)

    def flush(self) -> None:
        """Say what was evicted since the last warning (at shutdown: nothing goes unreported)."""
        if self.unreported:
            self._warn(self.clock())

    def _warn(self, now: float) -> None:
        log.warning(
            "correlation windows evicted at --max-state-entries: correlations may miss; raise the limit",
            extra={
                "evicted": self.unreported,
                "since_s": None if self.warned_at is None else round(now - self.warned_at, 1),
                "evicted_total": self.total,
                "max_state_entries": self.limit,
                "limit_applies": self.scope,
            },
        )
        self.unreported = 0
        self.warned_at = now
