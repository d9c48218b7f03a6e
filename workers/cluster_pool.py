"""`--cluster` with a matcher pool: the matchers detect and extract each event's level-1 correlation
hits, as they always do, but the hits go back to the daemon instead of to a matcher owning their
windows. The daemon's cluster node publishes them to the hits stream and applies its partitions' hits
with `correlation`, an engine of the supervisor's own: a node applies in one place, in source order,
which is what keeps a cluster exact (docs/cluster.md). No matcher keeps windows, so a matcher that
dies loses nothing (its batches are evaluated again, their hits come back once) and there is no
snapshot to take or restore.

The supervisor's engine and the matchers' rules must be the same rule set (hits name correlations
by index within a batch, by key in the hits stream): `load` compiles the new rules once in the
supervisor, and its fingerprint is what every matcher's must match before any of them swaps; the
engine is swapped, windows carried over, only once every matcher swapped its rules.
"""

from __future__ import annotations

import asyncio
from typing import Any

from rsigma.correlation.engine import CorrelationEngine
from rsigma.correlation.sharding import decode_hits
from rsigma.evaluator import RuleSummary
from rsigma.loading import build_beside
from rsigma.payloads import Outcome, hits_per_payload
from workers.pool import Extra, MatcherPool


class ClusterPool(MatcherPool):
    """A matcher pool whose batches return their hits (`BatchResult.hits`, `.keys`), not results.

    `rules` must be the summary of the rules `correlation` was built from (the CLI builds both from
    one evaluator), so the matchers are checked against the supervisor's own rules."""

    keeps_snapshots = False  # the matchers hold no windows: the cluster's partition owners do
    restart_loss = "with --cluster no matcher holds correlation windows, so it lost nothing"

    def __init__(self, *args: Any, correlation: CorrelationEngine, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.correlation = correlation  # the running rules': the cluster node applies with it
        self.pending_correlation: CorrelationEngine | None = None  # built by `load`

    async def _correlate(self, encoded: bytes, outcomes: list[Outcome], origins: list[int]) -> Extra:
        hits = decode_hits(encoded) if encoded else []
        extracted = origins if self.options.extraction is not None else None
        return hits_per_payload(hits, extracted, len(outcomes)), self.rules.keys

    async def load(self, running: RuleSummary) -> RuleSummary:
        """The new rules compiled in the supervisor (not in a throwaway process): their summary, whose
        fingerprint the matchers must reach, and their correlation engine come from one build."""
        self.pending = self.pending_correlation = None
        fresh, summary = await asyncio.to_thread(build_beside, self.build_evaluator, running)
        self.pending, self.pending_correlation = summary, fresh.correlation
        return summary

    async def reload(self) -> str | None:
        error = await super().reload()  # returns with no batch out: none sees the engine swap
        pending, self.pending_correlation = self.pending_correlation, None
        if error is None and pending is not None:
            pending.carry_over(self.correlation)
            self.correlation = pending
        return error

    async def export_state(self) -> bytes:
        return self.correlation.export_state()

    @property
    def windows(self) -> int:
        """The supervisor's windows (the owned partitions'): the matchers have none."""
        return len(self.correlation.state)

    @property
    def correlation_evictions(self) -> int:
        return self.correlation.evicted

    @property
    def group_entries_dropped(self) -> int:
        return self.correlation.trimmed
