"""Where events are evaluated: in the daemon's own process, or in a pool of matcher processes.

Both backends take the same batches of raw payloads and answer with the same per-event outcomes
(`rsigma.payloads.BatchResult`), computed by the same function (`rsigma.payloads.evaluate_payloads`),
so the daemon around them has no mode of its own: `open_backend` is the one place that picks. The
daemon itself holds only the `RuleSummary` of the running rules; the compiled rules are the backend's
(in the daemon's process, or in each matcher).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from rsigma.correlation.engine import CorrelationEngine
from rsigma.daemon.config import DaemonConfig
from rsigma.daemon.metrics import Metrics
from rsigma.engine.regex import backtracking_timeouts
from rsigma.evaluator import Evaluator, RuleSummary
from rsigma.loading import build_beside
from rsigma.payloads import BatchResult, PayloadOptions, evaluate_batch
from workers.cluster_pool import ClusterPool
from workers.metrics import PoolCollector
from workers.pool import MatcherPool

log = logging.getLogger("rsigma.daemon")


class Backend(Protocol):
    #: Events per batch it is given at least, when that many are waiting (a pool pays per frame).
    min_batch: int
    #: Batches the daemon may have submitted and not yet completed.
    window: int
    #: Whether it wants state snapshots even without --state-db (a pool restores restarted matchers).
    keeps_snapshots: bool
    #: Called once if the backend can no longer evaluate (the daemon then stops with exit code 1).
    on_failure: Callable[[BaseException], None] | None

    async def start(self, snapshot: bytes | None) -> None:
        """Get ready to evaluate, with the correlation windows of `snapshot` if there is one."""

    def submit(self, payloads: list[bytes]) -> Awaitable[BatchResult]:
        """Start evaluating a batch; batches complete in submission order."""

    async def export_state(self) -> bytes:
        """Every correlation window, as one snapshot."""

    async def load(self, running: RuleSummary) -> RuleSummary:
        """Load and compile the rules afresh, beside the running ones; RuleLoadFailed if they cannot be
        used, or if they leave out rules the running ones did not (`refuse_dropped_rules`)."""

    async def reload(self) -> str | None:
        """Run the rules `load` built from the next batch on, windows kept; the error if it cannot."""

    @property
    def windows(self) -> int:
        """Live correlation windows."""

    @property
    def regex_timeouts(self) -> int:
        """Backtracking regex searches cut off so far."""

    @property
    def correlation_evictions(self) -> int:
        """Live correlation windows dropped at --max-state-entries so far (every matcher's, summed)."""

    @property
    def group_entries_dropped(self) -> int:
        """Correlation window entries dropped at --max-group-entries so far (every matcher's, summed)."""

    @property
    def available(self) -> int:
        """Evaluators that can take a batch now (0: the daemon is not ready, `/readyz` says 503)."""

    def status(self) -> list[dict[str, Any]]:
        """One entry per matcher process (none in process)."""

    async def stop(self) -> None: ...


class InlineBackend:
    """Evaluates in the daemon's event loop, a batch at a time between awaits (`--workers 0`)."""

    min_batch = 1
    window = 1
    keeps_snapshots = False
    available = 1  # the daemon's own loop

    def __init__(
        self,
        evaluator: Evaluator,
        build: Callable[[], Evaluator],
        options: PayloadOptions,
        *,
        collect_hits: bool = False,
    ) -> None:
        self.evaluator = evaluator
        self.build = build
        self.pending: Evaluator | None = None  # built by `load`, run from `reload` on
        self.options = options
        self.collect_hits = collect_hits  # --cluster: hits are returned, applied by their owners
        self.on_failure: Callable[[BaseException], None] | None = None

    async def start(self, snapshot: bytes | None) -> None:
        if snapshot is not None:
            kept = self.evaluator.correlation.import_state(snapshot)
            log.info("correlation state restored", extra={"windows": kept})

    def submit(self, payloads: list[bytes]) -> asyncio.Future[BatchResult]:
        """Evaluates at once: the future is already done."""
        done = asyncio.get_running_loop().create_future()
        done.set_result(
            evaluate_batch(self.evaluator, payloads, self.options, collect_hits=self.collect_hits)
        )
        return done

    async def export_state(self) -> bytes:
        return self.evaluator.correlation.export_state()

    @property
    def correlation(self) -> CorrelationEngine:
        """The running rules' correlation engine (`--cluster` applies the owned partitions with it)."""
        return self.evaluator.correlation

    @property
    def pending_correlation(self) -> CorrelationEngine | None:
        """The correlation engine of the rules `load` built, until `reload` runs them."""
        return None if self.pending is None else self.pending.correlation

    async def load(self, running: RuleSummary) -> RuleSummary:
        self.pending = None
        self.pending, summary = await asyncio.to_thread(build_beside, self.build, running)
        return summary

    async def reload(self) -> str | None:
        fresh, self.pending = self.pending, None
        assert fresh is not None, "reload without a load"
        fresh.correlation.carry_over(self.evaluator.correlation)
        self.evaluator = fresh
        return None

    @property
    def windows(self) -> int:
        return len(self.evaluator.correlation.state)

    @property
    def regex_timeouts(self) -> int:
        return backtracking_timeouts()

    @property
    def correlation_evictions(self) -> int:
        return self.evaluator.correlation.evicted

    @property
    def group_entries_dropped(self) -> int:
        return self.evaluator.correlation.trimmed

    def status(self) -> list[dict[str, Any]]:
        return []

    async def stop(self) -> None:
        pass


def open_backend(
    config: DaemonConfig, evaluator: Evaluator | None, rules: RuleSummary, metrics: Metrics
) -> Backend:
    """`--workers 0` evaluates in process with `evaluator`; N > 0 starts a pool of N matcher processes
    (each compiles the rules itself with `config.build_evaluator`, and `rules` says what they must
    have), whose figures join the daemon's metrics. With `--cluster` a pool's hits come back, and
    `evaluator` (the supervisor's) gives the correlation engine its partitions are applied with."""
    options = PayloadOptions(
        config.max_event_bytes, config.include_event, config.input_format, config.extraction
    )
    if config.workers == 0:
        assert evaluator is not None, "--workers 0 evaluates in the daemon's process"
        return InlineBackend(
            evaluator, config.build_evaluator, options, collect_hits=config.cluster is not None
        )
    if config.input.startswith("nats://") and config.matcher_timeout_s >= config.nats_ack_wait_s:
        log.warning(
            "--matcher-timeout is not below --nats-ack-wait: the events a hung matcher holds will be"
            " redelivered before it is replaced",
            extra={"matcher_timeout": config.matcher_timeout_s, "nats_ack_wait": config.nats_ack_wait_s},
        )
    settings: dict[str, Any] = {
        "options": options,
        "log_format": config.log_format,
        "log_level": config.log_level,
        "matcher_timeout": config.matcher_timeout_s,
    }
    if config.cluster is not None:  # the hits come back; the cluster node applies them here
        assert evaluator is not None, "a --cluster pool applies with the supervisor's correlation engine"
        pool: MatcherPool = ClusterPool(
            config.build_evaluator, config.workers, rules, correlation=evaluator.correlation, **settings
        )
    else:
        pool = MatcherPool(config.build_evaluator, config.workers, rules, **settings)
    metrics.registry.register(PoolCollector(pool))
    return pool
