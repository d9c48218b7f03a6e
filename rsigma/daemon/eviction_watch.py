"""Correlation windows dropped at `--max-state-entries`: counted, and said in the log.

An evicted window loses hits that were still inside its timespan, so a correlation close to firing
can miss (a flood of new groups pushing out an attacker's). The engine counts those drops
(`CorrelationEngine.evicted`, summed over the matchers of a pool); this turns the running total into
`rsigma_correlation_evictions_total` and a warning at most once a minute, with how many windows went
since the last one, so a flood of evictions is one line a minute, not one per event.
"""

from __future__ import annotations

import logging
from typing import Final

from prometheus_client import Counter

from rsigma.daemon.retrying import Throttle

log = logging.getLogger("rsigma.daemon")

#: At most one eviction warning per this many seconds.
WARN_EVERY_S: Final = 60.0


class EvictionWatch:
    def __init__(self, counter: Counter, limit: int, workers: int) -> None:
        self.counter = counter
        self.limit = limit
        self.scope = "per matcher" if workers else "in total"
        self.total = 0  # as last seen
        self.unreported = 0  # evicted since the last warning
        self._warnings = Throttle(WARN_EVERY_S)

    def update(self, total: int) -> None:
        """Take the engine's running total (after each batch); warn if due."""
        if total > self.total:
            self.counter.inc(total - self.total)
            self.unreported += total - self.total
            self.total = total
        if self.unreported and self._warnings.ready():
            self._warn()

    def flush(self) -> None:
        """Say what was evicted since the last warning (at shutdown: nothing goes unreported)."""
        if self.unreported:
            self._warn()

    def _warn(self) -> None:
        log.warning(
            "correlation windows evicted at --max-state-entries: correlations may miss; raise the limit",
            extra={
                "evicted": self.unreported,
                "evicted_total": self.total,
                "max_state_entries": self.limit,
                "limit_applies": self.scope,
            },
        )
        self.unreported = 0
