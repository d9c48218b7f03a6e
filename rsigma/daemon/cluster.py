"""The daemon's side of `--cluster`: a batch's correlation hits are stored in the hits stream before
any of its events may be acked, and the owned partitions' hits come back, in exact order, as results
for the sinks (see `rsigma/cluster/` and docs/cluster.md).

Evaluation is unchanged but for correlation: the backend collects each event's level-1 hits instead
of applying them (`evaluate_batch(collect_hits=True)`). `store` publishes them, one message per
(event, partition), and returns only once JetStream stored them all, retrying while it cannot
(the events are held in progress meanwhile, so they are neither acked nor redelivered while this
daemon lives; if it dies they are redelivered). Only then does the evaluation loop hand the batch's
detections to the sinks, whose completion acks each event.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from nats.errors import Error as NatsError

from rsigma.cluster.applier import Applied, HitApplier
from rsigma.cluster.delivery import DeliveryRounds, Round
from rsigma.cluster.floors import FloorStore
from rsigma.cluster.hits import (
    encode_hit_message,
    ensure_hits_stream,
    hit_messages,
    hits_stream,
    hits_subject,
    message_id,
)
from rsigma.cluster.membership import Membership
from rsigma.cluster.ownership import Ownership
from rsigma.cluster.snapshots import PartitionSnapshot, SnapshotStore
from rsigma.correlation.engine import CorrelationEngine
from rsigma.daemon.ack import AckToken, Delivery, InFlight, RawEvent
from rsigma.daemon.config import DaemonConfig
from rsigma.daemon.metrics import Metrics
from rsigma.daemon.retrying import Throttle, backoff_s
from rsigma.daemon.sinks.worker import SinkWorker
from rsigma.daemon.sources.nats import NatsSource
from rsigma.errors import ConfigError
from rsigma.nats.connection import startup_request
from rsigma.nats.core import AsyncPublisher
from rsigma.payloads import BatchResult, result_lines

log = logging.getLogger("rsigma.daemon")

#: Seconds a hits publish may wait for its publish-acks before it counts as failed (and is retried).
HITS_PUBLISH_TIMEOUT_S = 5.0
#: Seconds a shutdown may spend writing the last delivered floors.
FLOOR_FLUSH_TIMEOUT_S = 3.0
#: Seconds a member stopping gives itself to write its partitions' snapshots.
SNAPSHOT_AT_STOP_TIMEOUT_S = 5.0


def refuse_chains(correlation: CorrelationEngine, cluster: str) -> None:
    """Chained correlations need a floor per level across nodes (not built yet): ConfigError (exit 3)
    naming the first correlation fed by another."""
    for corr, level in zip(correlation.correlations, correlation.levels, strict=True):
        if level > 1:
            raise ConfigError(
                f"--cluster {cluster}: correlation {corr.title!r} ({corr.key}) is fed by another"
                " correlation; chained correlations do not run across nodes yet"
            )


def refuse_long_windows(correlation: CorrelationEngine, cluster: str, max_age_s: float) -> None:
    """A partition that moves has its windows rebuilt from the hits stream, which keeps hits
    `max_age_s` (0: for ever): ConfigError (exit 3) naming a correlation whose timespan, or a
    --suppress, outlasts them (its windows could not be rebuilt whole)."""
    if not max_age_s:
        return
    where = f"the hits stream {hits_stream(cluster)!r} keeps hits {max_age_s:g} s"
    advice = "raise the stream's max age (e.g. `nats stream edit --max-age`) or shorten it"
    for corr in correlation.correlations:
        if corr.timespan > max_age_s:
            raise ConfigError(
                f"--cluster {cluster}: correlation {corr.title!r} ({corr.key}) spans {corr.timespan:g} s,"
                f" but {where}: a partition moving to another member could not rebuild its windows;"
                f" {advice}"
            )
    suppress = correlation.config.suppress
    if suppress is not None and suppress > max_age_s:
        raise ConfigError(
            f"--cluster {cluster}: --suppress {suppress:g} s is longer than {where}: a partition moving"
            f" to another member could not rebuild its suppressions; {advice}"
        )


def refuse_for_cluster(correlation: CorrelationEngine | None, cluster: str, node: ClusterNode | None) -> None:
    """ConfigError if `--cluster` cannot run these rules (`correlation`, the engine `load` built):
    chains, or (once the hits stream is known) windows longer than it keeps hits."""
    assert correlation is not None, "a reload checks the rules it loaded"
    refuse_chains(correlation, cluster)
    if node is not None:
        refuse_long_windows(correlation, node.cluster, node.hits_max_age_s)


async def join_cluster(
    config: DaemonConfig,
    source: NatsSource,
    sinks: list[SinkWorker],
    inflight: InFlight,
    metrics: Metrics,
    api_address: str | None,
    engine: Callable[[], CorrelationEngine],
) -> tuple[Membership, ClusterNode]:
    """Join `--cluster`'s membership, then start applying the partitions this member owns."""
    assert config.cluster is not None
    membership = Membership(
        source.nc.jetstream(),
        config.cluster,
        config.cluster_partitions,
        member_id=config.cluster_member_id,
        heartbeat_s=config.cluster_heartbeat_s,
        api=api_address,
        replicas=config.cluster_replicas,
    )
    membership.on_rebalance(
        lambda: metrics.cluster_rebalanced(
            len(membership.members), len(membership.owned()), membership.rebalances
        )
    )
    await membership.start()
    node = ClusterNode(config, source, sinks, inflight, metrics, membership, engine, membership.member_id)
    await node.start()
    return membership, node


class ResultToken(AckToken):
    """A correlation result applied from the hits stream: no source to ack; its id names the firing,
    so a NATS output keeps each result once (`Nats-Msg-Id: <id>:0`). Every sink done with it counts
    it delivered in its apply round (the partition's delivered floor)."""

    __slots__ = ("_id", "_round")

    def __init__(self, tracker: InFlight, msg_id: str, round_: Round) -> None:
        super().__init__(tracker)
        self._id = msg_id
        self._round = round_

    @property
    def source_id(self) -> str:
        return self._id

    def _acked(self) -> None:
        self._round.delivered()


class ClusterNode:
    def __init__(
        self,
        config: DaemonConfig,
        source: NatsSource,
        sinks: list[SinkWorker],
        inflight: InFlight,
        metrics: Metrics,
        ownership: Ownership,
        engine: Callable[[], CorrelationEngine],
        member: str,
    ) -> None:
        assert config.cluster is not None
        self.config = config
        self.cluster = config.cluster
        self.partitions = config.cluster_partitions
        self.source = source
        self.sinks = sinks
        self.inflight = inflight
        self.metrics = metrics
        js = source.nc.jetstream()
        self.publisher = AsyncPublisher(source.nc, timeout_s=HITS_PUBLISH_TIMEOUT_S)
        source.watch.on_reconnect(self.publisher.reconnected)
        rounds = DeliveryRounds(lambda: self.floors.wake())
        self.floors = FloorStore(js, self.cluster, member, rounds)
        every = config.cluster_snapshot_interval_s
        self.snapshots = SnapshotStore(js, self.cluster, config.cluster_replicas) if every > 0 else None
        self._unsent: dict[int, PartitionSnapshot] = {}  # captured, waiting for their results' delivery
        self.applier = HitApplier(
            js,
            self.cluster,
            source.stream,
            source.consumer.consumer,
            ownership,
            engine,
            self._emit,
            self.floors,
            partitions=config.cluster_partitions,
            interval_s=config.cluster_apply_interval_s,
            snapshots=self.snapshots,
        )
        self._warn = Throttle()
        self._stepping = asyncio.Lock()  # the periodic steps and the one at shutdown take turns
        self._seen: dict[Any, int] = {}  # counter -> the running total it was last brought up to
        self.hits_max_age_s = 0.0  # how long the hits stream keeps hits (0: for ever)

    async def start(self) -> None:
        """Create or check the hits stream, then start consuming it (ConfigError: exit 3)."""
        cfg = self.config
        window = cfg.nats_ack_wait_s * cfg.nats_max_deliver
        js = self.source.nc.jetstream()
        stream = await startup_request(
            self.source.nc,
            "--cluster",
            self.cluster,
            ensure_hits_stream(js, self.cluster, window, self.config.cluster_replicas),
            "cannot set up the cluster's hits stream",
        )
        info = await startup_request(
            self.source.nc, "--cluster", self.cluster, js.stream_info(stream), "cannot read the hits stream"
        )
        self.hits_max_age_s = float(info.config.max_age or 0)
        refuse_long_windows(self.applier.engine(), self.cluster, self.hits_max_age_s)
        await startup_request(
            self.source.nc, "--cluster", self.cluster, self.applier.start(), "cannot read the hits stream"
        )
        log.info(
            "cluster joined",
            extra={
                "cluster": self.cluster,
                "partitions": self.partitions,
                "ack_floor": self.applier.ack_floor,
            },
        )

    async def run(self) -> None:
        """Apply owned hits every --cluster-apply-interval, and write the delivered floors the sinks
        confirm, until cancelled (`aclose` writes the last ones)."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self.floors.run(), name="cluster-delivered-floors")
            if self.snapshots is not None:
                group.create_task(self._snapshot_loop(self.snapshots), name="cluster-snapshots")
            while True:
                await asyncio.sleep(self.applier.interval_s)
                await self.step()

    async def step(self) -> int:
        try:
            async with self._stepping:
                applied = await self.applier.step()
        except Exception as e:  # a NATS error or timeout: the next step tries again
            if self._warn.ready():
                log.warning("cluster: applying hits delayed", extra={"error": str(e) or type(e).__name__})
            return 0
        self._update_metrics()
        return applied

    async def _snapshot_loop(self, store: SnapshotStore) -> None:
        """Every --cluster-snapshot-interval, `_snapshot`."""
        every = self.config.cluster_snapshot_interval_s
        while True:
            await asyncio.sleep(every)
            await self._snapshot(store)

    async def _snapshot(self, store: SnapshotStore) -> int:
        """Capture the partitions that changed (between two steps), and write each once the results of
        the hits it reflects are delivered (its delivered floor reached its applied floor): a snapshot
        never covers a result a successor would then not send. Returns how many were written."""
        async with self._stepping:
            for snapshot in self.applier.capture_snapshots():
                self._unsent[snapshot.partition] = snapshot
        confirmed = self.floors.rounds.confirmed
        owned = self.applier.ordering.buffers
        written = 0
        for p, snapshot in list(self._unsent.items()):
            if p not in owned:
                del self._unsent[p]  # moved: its new owner writes its own
            elif confirmed.get(p, 0) >= snapshot.applied:
                try:
                    await store.write(snapshot)
                    del self._unsent[p]
                    written += 1
                except (NatsError, TimeoutError) as e:  # kept: written at the next pass
                    store.write_failures += 1
                    if self._warn.ready():
                        log.warning(
                            "cluster: partition snapshot not written",
                            extra={"partition": p, "error": str(e) or type(e).__name__},
                        )
        return written

    async def finish(self, timeout_s: float) -> None:
        """At shutdown, once the last events were delivered: apply what their acks let through (they
        may take a moment to reach the server), for the sinks to drain too."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        await self.source.consumer.flush()
        while True:
            await self.step()
            # A replay still running (a partition gained a moment ago) is waited for within the
            # timeout; past it, the partition's next owner replays its hits.
            ordering = self.applier.ordering
            if (ordering.releasable == 0 and not ordering.replaying) or loop.time() >= deadline:
                return
            await asyncio.sleep(min(0.05, self.applier.interval_s))

    async def store(self, events: Sequence[RawEvent], result: BatchResult) -> None:
        """Store the batch's hits in the hits stream (publish-acked), retrying until it can."""
        if not result.hits:
            return
        items: dict[str, list[tuple[bytes, str | None]]] = {}
        held: list[AckToken] = []
        stream = self.source.stream
        for raw, hits in zip(events, result.hits, strict=True):
            if not hits:
                continue
            sequence = raw.token.source_sequence
            assert sequence is not None  # --cluster reads a NATS input
            held.append(raw.token)
            for message in hit_messages(stream, sequence, hits, result.keys, self.partitions):
                subject = hits_subject(self.cluster, message.partition)
                item = (encode_hit_message(message), message_id(stream, sequence, message.partition))
                items.setdefault(subject, []).append(item)
        if not items:
            return
        count = sum(len(v) for v in items.values())
        attempt = 0
        while True:
            outcomes = await asyncio.gather(
                *(self.publisher.publish_many(subject, batch) for subject, batch in items.items()),
                return_exceptions=True,
            )
            errors = [e for e in outcomes if isinstance(e, BaseException)]
            if not errors:
                self.metrics.cluster_hits_published.inc(count)
                return
            for e in errors:
                if not isinstance(e, OSError):
                    raise e
            attempt += 1
            self.metrics.cluster_hits_publish_failures.inc()
            if self._warn.ready():
                log.error(
                    "cluster: cannot store hits; their events wait (not acked) and it is retried",
                    extra={"error": str(errors[0]), "attempt": attempt, "events": len(held)},
                )
            for token in held:
                token.hold()
            await asyncio.sleep(
                backoff_s(attempt, self.config.sink_backoff_base_s, self.config.sink_backoff_max_s)
            )

    async def _emit(self, applied: list[Applied], round_: Round) -> None:
        """Results to every sink, each with its firing's id, counted in `round_` once delivered."""
        include = self.config.include_event
        for item in applied:
            try:
                lines, keys = result_lines([item.result], include)
            except RecursionError:
                log.error("cluster: correlation result nested too deeply to write", extra={"id": item.msg_id})
                round_.delivered()
                continue
            self.metrics.count_results(keys)
            delivery = Delivery(lines, ResultToken(self.inflight, item.msg_id, round_), len(self.sinks))
            for worker in self.sinks:
                await worker.queue.put(delivery)

    def _update_metrics(self) -> None:
        applier, metrics, seen = self.applier, self.metrics, self._seen
        ordering = applier.ordering
        totals = (
            (metrics.cluster_hits_applied, applier.applied),
            (metrics.cluster_hits_duplicates, ordering.duplicates),
            (metrics.cluster_hits_replayed, applier.replayed),
            (metrics.cluster_results_already_delivered, applier.already_delivered),
            (metrics.cluster_delivered_floor_write_failures, self.floors.write_failures),
        )
        if (store := self.snapshots) is not None:
            totals += (
                (metrics.cluster_snapshots_written, store.written),
                (metrics.cluster_snapshot_write_failures, store.write_failures),
                (metrics.cluster_snapshots_rejected, store.rejected),
            )
        for counter, total in totals:
            before = seen.get(counter, 0)
            if total > before:
                counter.inc(total - before)
                seen[counter] = total
        metrics.cluster_partitions_replaying.set(len(ordering.replaying))
        metrics.cluster_hits_waiting.set(ordering.waiting)
        metrics.cluster_ack_floor.set(applier.ack_floor)
        metrics.cluster_watermark_lag.set(applier.watermark_lag)

    def status(self) -> dict[str, Any]:
        applier, floors = self.applier, self.floors
        return {
            "name": self.cluster,
            "partitions": self.partitions,
            "ack_floor": applier.ack_floor,
            "watermark_lag": applier.watermark_lag,
            "partition_applied": {str(p): b.applied for p, b in sorted(applier.ordering.buffers.items())},
            "partition_waiting": {str(p): len(b) for p, b in sorted(applier.ordering.buffers.items())},
            "partitions_replaying": applier.ordering.replaying,
            "hits_replayed": applier.replayed,
            "windows_handed_over": applier.windows_dropped,
            "hits_received_seq": applier.received,
            "hits_waiting": applier.ordering.waiting,
            "hits_applied": applier.applied,
            "hits_duplicates": applier.ordering.duplicates,
            "hits_of_other_partitions": applier.ordering.unowned,
            "hits_unreadable": applier.undecodable,
            "hits_consumer_stalls": applier.stalls,
            "hits_of_unknown_correlations": applier.unknown,
            "delivered_floor": {str(p): floors.written.get(p, 0) for p in sorted(applier.ordering.buffers)},
            "delivered_floor_writes": floors.writes,
            "delivered_floor_write_failures": floors.write_failures,
            "results_already_delivered": applier.already_delivered,
            "snapshots": None
            if (store := self.snapshots) is None
            else {
                "interval_seconds": self.config.cluster_snapshot_interval_s,
                "written": store.written,
                "write_failures": store.write_failures,
                "waiting_for_delivery": sorted(self._unsent),
                "loaded": store.loaded,
                "rejected": store.rejected,
                "partitions": store.describe(applier.ordering.buffers, time.time()),
            },
        }

    async def aclose(self) -> None:
        """Stop, after writing the delivered floors the sinks confirmed (within a few seconds: the
        next owner of a partition whose floor was not written sends its last results again) and then
        the snapshots of the partitions that changed since the last, so that their next owners (a
        rolling restart moves them all) replay only what comes after."""
        try:
            await asyncio.wait_for(self.floors.flush(), FLOOR_FLUSH_TIMEOUT_S)
        except (NatsError, TimeoutError) as e:
            log.warning("cluster: delivered floors not written at shutdown", extra={"error": repr(e)})
        if self.snapshots is not None:
            try:
                written = await asyncio.wait_for(self._snapshot(self.snapshots), SNAPSHOT_AT_STOP_TIMEOUT_S)
                log.info(
                    "cluster: partition snapshots written at shutdown",
                    extra={"written": written, "not_written": len(self._unsent)},
                )
            except TimeoutError:
                log.warning(
                    "cluster: partition snapshots not all written at shutdown; their next owners replay"
                    " from the previous ones",
                    extra={"timeout_seconds": SNAPSHOT_AT_STOP_TIMEOUT_S},
                )
        await self.publisher.close()
        await self.applier.aclose()
