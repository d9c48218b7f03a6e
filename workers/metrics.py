"""Per-matcher metrics, read from the pool when Prometheus scrapes (nothing to update per batch)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from workers.pool import MatcherPool


class PoolCollector(Collector):
    def __init__(self, pool: MatcherPool) -> None:
        self.pool = pool

    def collect(self) -> Iterator[Metric]:
        events = CounterMetricFamily(
            "rsigma_worker_events", "Events evaluated by a matcher.", labels=["worker"]
        )
        busy = CounterMetricFamily(
            "rsigma_worker_busy_seconds", "Seconds a matcher spent evaluating batches.", labels=["worker"]
        )
        depth = GaugeMetricFamily(
            "rsigma_worker_queue_depth", "Requests sent to a matcher and not yet answered.", labels=["worker"]
        )
        restarts = CounterMetricFamily(
            "rsigma_worker_restarts", "Times a matcher died and was started again.", labels=["worker"]
        )
        poisoned = CounterMetricFamily(
            "rsigma_worker_poison_events",
            "Events dead-lettered because the matcher evaluating them died each time.",
            labels=["worker"],
        )
        timeouts = CounterMetricFamily(
            "rsigma_worker_timeouts",
            "Times a matcher holding work made no progress within --matcher-timeout and was killed.",
            labels=["worker"],
        )
        for worker in self.pool.status():
            label = [str(worker["index"])]
            events.add_metric(label, worker["events"])
            busy.add_metric(label, worker["busy_seconds"])
            depth.add_metric(label, worker["in_flight"])
            restarts.add_metric(label, worker["restarts"])
            poisoned.add_metric(label, worker["poisoned_events"])
            timeouts.add_metric(label, worker["timeouts"])
        yield from (events, busy, depth, restarts, poisoned, timeouts)
