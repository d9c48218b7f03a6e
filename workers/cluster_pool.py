"""`--cluster` with a matcher pool: the matchers detect and extract each event's level-1 correlation
hits, as they always do, but the hits go back to the daemon instead of to a matcher owning their
windows. The daemon's cluster node publishes them to the hits stream and applies its partitions' hits
with `correlation`, an engine of the supervisor's own: a node applies in one place, in source order,
which is what keeps a cluster exact (docs/cluster.md). No matcher keeps windows.

A reload builds the new correlation engine beside the running one and swaps it, windows carried over,
only once every matcher swapped its rules.
"""

from __future__ import annotations

import asyncio
from typing import Any

from rsigma.correlation.engine import CorrelationEngine
from rsigma.correlation.sharding import decode_hits
from rsigma.evaluator import RuleSummary
from rsigma.payloads import Outcome, hits_per_payload
from workers.pool import Extra, MatcherPool


class ClusterPool(MatcherPool):
    """A matcher pool whose batches return their hits (`BatchResult.hits`, `.keys`), not results."""

    def __init__(self, *args: Any, correlation: CorrelationEngine, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.correlation = correlation  # the running rules': the cluster node applies with it
        self.pending_correlation: CorrelationEngine | None = None  # built by `load`

    async def _correlate(self, encoded: bytes, outcomes: list[Outcome], origins: list[int]) -> Extra:
        hits = decode_hits(encoded) if encoded else []
        extracted = origins if self.options.extraction is not None else None
        return hits_per_payload(hits, extracted, len(outcomes)), self.rules.keys

    async def load(self, running: RuleSummary) -> RuleSummary:
        fresh = await super().load(running)
        self.pending_correlation = (await asyncio.to_thread(self.build_evaluator)).correlation
        return fresh

    async def reload(self) -> str | None:
        error = await super().reload()
        pending, self.pending_correlation = self.pending_correlation, None
        if error is None and pending is not None:
            pending.carry_over(self.correlation)
            self.correlation = pending
        return error
