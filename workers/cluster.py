"""The matcher pool in `--cluster` mode: matchers detect and extract level-1 correlation hits, and the
supervisor hands them back to the daemon instead of applying them in the matchers.

The cluster's exact order needs one applier per node: the daemon's `ClusterNode` applies the hits of
the partitions this node owns with the supervisor's own correlation engine (`self.evaluator`), as
with `--workers 0`. So the matchers keep no windows here: a matcher that dies mid-batch loses
nothing, its batch is evaluated again by its successor and its hits come back once, with the batch's
`Results` (and a hit message published twice carries the same `Nats-Msg-Id`, kept once by the hits
stream). The supervisor's evaluator is compiled from the same rules as the matchers (the
fingerprints must match, at start and at each reload), so correlation indexes agree.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from rsigma.correlation.sharding import decode_hits
from rsigma.evaluator import Evaluator, RuleSummary
from rsigma.loading import refuse_dropped_rules
from rsigma.payloads import BatchResult, Outcome, hits_per_payload
from workers.pool import MatcherPool
from workers.protocol import Results


class ClusterPool(MatcherPool):
    """`MatcherPool` whose batches come back with their hits (`BatchResult.hits`), not correlated."""

    keeps_snapshots = False  # matchers hold no windows: the cluster's owners do
    restart_loss = "its matchers hold no correlation windows in --cluster mode, so nothing was lost"

    def __init__(
        self, evaluator: Evaluator, build_evaluator: Callable[[], Evaluator], workers: int, **kw: Any
    ):
        """`evaluator`: the running rules compiled in the supervisor, whose correlation engine the
        cluster's applier runs."""
        super().__init__(build_evaluator, workers, evaluator.summary(), **kw)
        self.evaluator = evaluator
        self.loaded: Evaluator | None = None  # built by `load`, run from `reload` on

    async def _correlate(self, results: Results, outcomes: list[Outcome]) -> BatchResult:
        hits = decode_hits(results.hits) if results.hits else []
        origins = results.origins if self.options.extraction is not None else None
        per_payload = hits_per_payload(hits, origins, len(outcomes))
        keys = self.evaluator.correlation.keys  # no batch is out across a reload: they are the matchers'
        return BatchResult(outcomes, results.evaluated, results.busy_s, per_payload, keys)

    async def load(self, running: RuleSummary) -> RuleSummary:
        """The new rules compiled in the supervisor too (its correlation engine is the cluster's)."""
        self.loaded = self.pending = None
        fresh = await asyncio.to_thread(self.build_evaluator)
        summary = fresh.summary()
        refuse_dropped_rules(running, summary)  # type: ignore[arg-type]  # it reads `skipped` alone
        self.loaded, self.pending = fresh, summary
        return summary

    async def reload(self) -> str | None:
        try:
            return await super().reload()
        finally:
            self.loaded = None

    def _adopt(self, fresh: RuleSummary) -> None:
        """Every matcher runs the new rules: so does the supervisor's engine, windows carried over."""
        loaded = self.loaded
        assert loaded is not None and loaded.fingerprint() == fresh.fingerprint, "reload without a load"
        loaded.correlation.carry_over(self.evaluator.correlation)
        self.evaluator = loaded
        super()._adopt(fresh)

    async def export_state(self) -> bytes:
        return self.evaluator.correlation.export_state()

    @property
    def windows(self) -> int:
        return len(self.evaluator.correlation.state)

    @property
    def correlation_evictions(self) -> int:
        return self.evaluator.correlation.evicted

    @property
    def group_entries_dropped(self) -> int:
        return self.evaluator.correlation.trimmed
