"""Prometheus metrics of the daemon, on their own registry (names as RSigma exports them)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from rsigma.engine.regex import backtracking_timeouts
from rsigma.evaluator import RuleSummary
from rsigma.payloads import RuleKey


class _RegexTimeouts(Collector):
    """Read at each scrape: the count lives in the engine (or in the matcher processes)."""

    def __init__(self) -> None:
        self.read: Callable[[], int] = backtracking_timeouts

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily(
            "rsigma_regex_timeouts",
            "Events dead-lettered: their backtracking (non-RE2) regex searches ran past the budget.",
            value=self.read(),
        )


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry()
        self.started = time.monotonic()
        self.events_processed = Counter(
            "rsigma_events_processed", "Events decoded and evaluated.", registry=r
        )
        self.parse_errors = Counter(
            "rsigma_events_parse_errors", "Input lines that could not be used.", registry=r
        )
        self.detection_matches = Counter("rsigma_detection_matches", "Detection results.", registry=r)
        self.correlation_matches = Counter("rsigma_correlation_matches", "Correlation results.", registry=r)
        self.detections_by_rule = Counter(
            "rsigma_detection_matches_by_rule",
            "Detection results per rule.",
            ["rule_title", "level"],
            registry=r,
        )
        self.correlations_by_rule = Counter(
            "rsigma_correlation_matches_by_rule",
            "Correlation results per rule.",
            ["rule_title", "level", "correlation_type"],
            registry=r,
        )
        self.detection_rules = Gauge("rsigma_detection_rules_loaded", "Detection rules loaded.", registry=r)
        self.correlation_rules = Gauge(
            "rsigma_correlation_rules_loaded", "Correlation rules loaded.", registry=r
        )
        self.state_entries = Gauge(
            "rsigma_correlation_state_entries", "Live correlation windows.", registry=r
        )
        self.correlation_evictions = Counter(
            "rsigma_correlation_evictions",
            "Correlation windows dropped at --max-state-entries while still holding hits in their timespan.",
            registry=r,
        )
        self.group_entries_dropped = Counter(
            "rsigma_correlation_group_entries_dropped",
            "Correlation window entries dropped at --max-group-entries (or rsigma.max_group_entries).",
            registry=r,
        )
        self.state_save_failures = Counter(
            "rsigma_state_save_failures", "Correlation state saves to --state-db that failed.", registry=r
        )
        self.reloads = Counter("rsigma_reloads", "Rule reloads attempted.", registry=r)
        self.reloads_failed = Counter("rsigma_reloads_failed", "Rule reloads that failed.", registry=r)
        self.processing_seconds = Histogram(
            "rsigma_event_processing_seconds",
            "Evaluation time per event.",
            buckets=(1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 1e-2, 0.1),
            registry=r,
        )
        self.batch_size = Histogram(
            "rsigma_batch_size",
            "Events per engine step.",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
            registry=r,
        )
        self.input_queue_depth = Gauge(
            "rsigma_input_queue_depth", "Events waiting for the engine.", registry=r
        )
        self.back_pressure = Counter(
            "rsigma_back_pressure_events", "Times a source found the input queue full.", registry=r
        )
        self.dlq_events = Counter("rsigma_dlq_events", "Entries handed to the dead-letter queue.", registry=r)
        self.dlq_write_failures = Counter(
            "rsigma_dlq_write_failures",
            "Dead-letter entries still failing after their retries (handed back, or held until written).",
            registry=r,
        )
        self.sink_retries = Counter("rsigma_sink_retries", "Sink write retries.", ["sink"], registry=r)
        self.sink_failures = Counter(
            "rsigma_sink_delivery_failures",
            "Deliveries still failing after a sink's retries (handed back, dead-lettered or held).",
            ["sink"],
            registry=r,
        )
        self.api_auth_failures = Counter(
            "rsigma_api_auth_failures",
            "API requests refused for a missing or wrong bearer token.",
            ["reason"],
            registry=r,
        )
        self.api_refused = Counter(
            "rsigma_api_requests_refused",
            "API requests refused: cross_origin, unsupported_media_type, body_too_large, read_timeout.",
            ["reason"],
            registry=r,
        )
        self.uptime = Gauge("rsigma_uptime_seconds", "Seconds since the daemon started.", registry=r)
        self.nats_connected = Gauge(
            "rsigma_nats_connected", "1 while the NATS connection is up.", ["role"], registry=r
        )
        self.nats_reconnects = Counter(
            "rsigma_nats_reconnects", "Times a NATS connection came back.", ["role"], registry=r
        )
        self.nats_consumer_pending = Gauge(
            "rsigma_nats_consumer_pending",
            "Messages in the stream not yet delivered to the consumer.",
            registry=r,
        )
        self.nats_ack_pending = Gauge(
            "rsigma_nats_consumer_ack_pending",
            "Messages delivered to the consumer and not yet acked.",
            registry=r,
        )
        self.nats_redelivered = Counter(
            "rsigma_nats_redelivered_messages",
            "Messages received that JetStream had delivered before.",
            registry=r,
        )
        self.nats_naks = Counter(
            "rsigma_nats_naks", "Messages handed back for redelivery after a sink gave up.", registry=r
        )
        self.cluster_hits_published = Counter(
            "rsigma_cluster_hits_published",
            "Hit messages (one source event's hits for one partition) stored in the cluster's hits stream.",
            registry=r,
        )
        self.cluster_hits_publish_failures = Counter(
            "rsigma_cluster_hits_publish_failures",
            "Attempts to store a batch's hit messages that failed (retried; the source events wait).",
            registry=r,
        )
        self.cluster_hits_applied = Counter(
            "rsigma_cluster_hits_applied", "Hit messages of owned partitions applied in order.", registry=r
        )
        self.cluster_hits_duplicates = Counter(
            "rsigma_cluster_hits_duplicates",
            "Hit messages dropped as copies (a source event seen again, or at or below the applied floor).",
            registry=r,
        )
        self.cluster_hits_waiting = Gauge(
            "rsigma_cluster_hits_waiting",
            "Hit messages of owned partitions received and waiting for the input's ack floor.",
            registry=r,
        )
        self.cluster_hits_replayed = Counter(
            "rsigma_cluster_hits_replayed",
            "Hit messages read again from the hits stream to rebuild the windows of gained partitions.",
            registry=r,
        )
        self.cluster_results_already_delivered = Counter(
            "rsigma_cluster_results_already_delivered",
            "Results of replayed hits at or below their partition's delivered floor: not sent again.",
            registry=r,
        )
        self.cluster_delivered_floor_write_failures = Counter(
            "rsigma_cluster_delivered_floor_write_failures",
            "Passes of the delivered-floor writer that could not write every floor (kept, retried).",
            registry=r,
        )
        self.cluster_snapshots_written = Counter(
            "rsigma_cluster_snapshots_written",
            "Partition snapshots written to the cluster's snapshot Object Store.",
            registry=r,
        )
        self.cluster_snapshot_write_failures = Counter(
            "rsigma_cluster_snapshot_write_failures",
            "Partition snapshots that could not be written (the next interval writes a newer one).",
            registry=r,
        )
        self.cluster_snapshots_rejected = Counter(
            "rsigma_cluster_snapshots_rejected",
            "Snapshots of gained partitions that could not be used: those partitions replayed in full.",
            registry=r,
        )
        self.cluster_partitions_replaying = Gauge(
            "rsigma_cluster_partitions_replaying",
            "Gained partitions whose windows are still being rebuilt from the hits stream.",
            registry=r,
        )
        self.cluster_ack_floor = Gauge(
            "rsigma_cluster_ack_floor",
            "The input consumer's ack floor the owned partitions are applied up to.",
            registry=r,
        )
        self.cluster_watermark_lag = Gauge(
            "rsigma_cluster_watermark_lag",
            "Input messages above the ack floor: their hits wait (or may still come) before correlation.",
            registry=r,
        )
        self.cluster_members = Gauge(
            "rsigma_cluster_members",
            "Live members of the cluster, as this daemon sees them (--cluster).",
            registry=r,
        )
        self.cluster_owned_partitions = Gauge(
            "rsigma_cluster_owned_partitions", "Partitions this daemon owns (--cluster).", registry=r
        )
        self.cluster_rebalances = Counter(
            "rsigma_cluster_rebalances",
            "Owner recomputations after the cluster's live members changed (--cluster).",
            registry=r,
        )
        self._rebalances_seen = 0
        self.regex_timeouts = _RegexTimeouts()  # its `read` becomes the evaluation backend's
        r.register(self.regex_timeouts)
        # The totals `/api/v1/status` shows, and the by-rule label children, bound once per rule.
        self.evaluated = 0
        self.detections = 0
        self.correlations = 0
        self._by_rule: dict[RuleKey, Any] = {}

    def rules_loaded(self, rules: RuleSummary) -> None:
        self.detection_rules.set(len(rules.rules))
        self.correlation_rules.set(rules.correlations)

    def cluster_rebalanced(self, members: int, owned: int, rebalances: int) -> None:
        """After each owner computation (`Membership.on_rebalance`): `rebalances` is the running total."""
        self.cluster_members.set(members)
        self.cluster_owned_partitions.set(owned)
        self.cluster_rebalances.inc(rebalances - self._rebalances_seen)
        self._rebalances_seen = rebalances

    def batch_evaluated(self, evaluated: int, busy_s: float) -> None:
        """One observation per batch: its time per event (cheaper than one per event)."""
        self.evaluated += evaluated
        if evaluated:
            self.events_processed.inc(evaluated)
            self.processing_seconds.observe(busy_s / evaluated)

    def count_results(self, keys: list[RuleKey]) -> None:
        for key in keys:
            child = self._by_rule.get(key)
            if child is None:
                if key[2] is None:
                    child = self.detections_by_rule.labels(key[0], key[1])
                else:
                    child = self.correlations_by_rule.labels(*key)
                self._by_rule[key] = child
            child.inc()
            if key[2] is None:
                self.detections += 1
                self.detection_matches.inc()
            else:
                self.correlations += 1
                self.correlation_matches.inc()

    def render(self) -> bytes:
        self.uptime.set(time.monotonic() - self.started)
        return generate_latest(self.registry)
