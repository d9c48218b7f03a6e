"""The owner's side of the hits stream: apply the owned partitions' hits in source order, up to the
input consumer's ack floor, and hand the correlation results on.

One ordered consumer (no acks, nothing on the server to clean up) reads the owned partitions'
subjects, `rsigma.hits.<cluster>.<p>`, live; it is made again, filtered on the new set, after each
rebalance. A member thus reads only its share of the hits stream (reading all of it cost every member
the whole stream's traffic: docs/cluster.md, "Throughput and sizing").

Each step (every `interval_s`): read the input consumer's ack floor F, then the hits stream's last
sequence L, wait until every owned hit message up to L has arrived, apply every waiting hit with source
sequence <= F in order, and emit the results. "Arrived up to L" is known either from a delivered
message at or past L (the consumer delivers in stream order), or, when the owned subjects have had
nothing since, from the consumer's own count of messages still pending: none, with every delivered one
processed (`received` then stands for L: every owned message at or below it has been processed).

A partition this node gains (its first share at start included) starts without windows: its past is
replayed from the start of the hits stream by a consumer filtered on its subjects, up to `received`
when it was gained (the live consumer, made again from `received + 1`, brings the rest), and its hits
wait until the replay is done; then they are applied in source order like any others. Before
replaying, the partition's delivered floor is read from the KV bucket (`floors.py`): the results of
hits at or below it were delivered by an earlier owner, so those hits rebuild the windows silently,
and only the results above it are sent (docs/cluster.md, "Partition moves"). Each round's results
count towards the floors it raises only once every sink confirmed them (`delivery.py`). A partition
this node loses has its windows and waiting hits dropped at once: its new owner rebuilds them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import msgspec
from nats.errors import Error as NatsError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from rsigma.cluster.delivery import Round
from rsigma.cluster.floors import FloorStore
from rsigma.cluster.hits import HitMessage, decode_hit_message, hits_stream, hits_subject, hits_subjects
from rsigma.cluster.ordering import HitOrdering, PartitionBuffer
from rsigma.cluster.ownership import Ownership
from rsigma.cluster.snapshots import PartitionSnapshot, SnapshotStore, restorable
from rsigma.correlation.engine import CorrelationEngine, CorrelationResult, Hit
from rsigma.correlation.sharding import shard_of

__all__ = ["Applied", "HitApplier", "apply_in_order", "result_id"]

log = logging.getLogger("rsigma.cluster")

#: How long a step waits for the hits consumer to deliver up to the stream's last sequence, and how
#: often it asks the consumer meanwhile whether anything owned is still pending.
CATCH_UP_TIMEOUT_S: Final = 5.0
DRAIN_POLL_S: Final = 0.05
#: Hit messages a replay asks for at a time, and how long it waits for them.
REPLAY_BATCH: Final = 512
REPLAY_FETCH_TIMEOUT_S: Final = 2.0
#: A replay consumer left behind (the node died) is removed by the server after this long idle.
REPLAY_INACTIVE_S: Final = 60.0

_encoder = msgspec.msgpack.Encoder()


@dataclass(frozen=True, slots=True)
class Applied:
    """A correlation result and its id: the same firing gets the same id on any node, any time; the
    source sequence of the event that fired it and the partition of its window."""

    result: CorrelationResult
    msg_id: str
    sequence: int
    partition: int


def result_id(stream: str, sequence: int, event: int, key: str, group: Sequence[Any]) -> str:
    """`<source stream>:<sequence>:<event>:<hash of (correlation key, group)>`: a window fires at most
    once per event, so the firing event and the window name a result."""
    window = hashlib.blake2b(_encoder.encode((key, list(group))), digest_size=8).hexdigest()
    return f"{stream}:{sequence}:{event}:{window}"


class HitApplier:
    """Applies hits of the owned partitions in exact order, a `step()` at a time (every `interval_s`)."""

    def __init__(
        self,
        js: Any,
        cluster: str,
        input_stream: str,
        input_consumer: str,
        ownership: Ownership,
        engine: Callable[[], CorrelationEngine],
        emit: Callable[[list[Applied], Round], Awaitable[None]],
        floors: FloorStore,
        *,
        partitions: int,
        interval_s: float,
        snapshots: SnapshotStore | None = None,
    ) -> None:
        self.js = js
        self.cluster = cluster
        self.partitions = partitions
        self.stream = hits_stream(cluster)
        self.input_stream = input_stream
        self.input_consumer = input_consumer
        self.ownership = ownership
        self.engine = engine
        self.emit = emit
        self.floors = floors
        self.interval_s = interval_s
        self.ordering = HitOrdering(())
        self.ack_floor = 0  # the input consumer's, as last read
        self.watermark_lag = 0  # input messages above it, as last read
        self.received = 0  # every owned hit message at or below this hits-stream sequence has arrived
        self.applied = 0  # hit messages applied
        self.replayed = 0  # hit messages read again by replays of gained partitions
        self.windows_dropped = 0  # windows of partitions lost to another node
        self.already_delivered = 0  # results of replayed hits at or below their delivered floor, not sent
        self.unknown = 0  # hits of correlations the running rules do not have
        self.undecodable = 0
        self.stalls = 0  # rounds the live consumer had not delivered up to the stream's last sequence
        self._progress = asyncio.Event()
        self._sub: Any = None
        self._following = asyncio.Lock()  # the live consumer is being made again (a rebalance)
        self._replays: set[asyncio.Task[None]] = set()
        self.snapshots = snapshots
        self._changed: set[int] = set()  # partitions that applied hits since the last snapshot capture

    async def start(self) -> None:
        """Subscribe live to the owned partitions from the hits stream's last sequence, and replay them
        up to it."""
        self.ack_floor = await self._input_floor()
        self.received = (await self.js.stream_info(self.stream)).state.last_seq
        self.ownership.on_change(self._rebalanced)
        await self._follow(self.ownership.owned(), frozenset())

    async def step(self) -> int:
        """One round of the exact order; the number of hit messages applied."""
        floor = await self._input_floor()
        state = (await self.js.stream_info(self.stream)).state
        last = state.last_seq if state.messages else 0  # aged out: nothing left to wait for
        if not await self._caught_up(last):
            log.warning(
                "cluster: hits consumer behind the stream; not applying this round",
                extra={"received": self.received, "stream_last_seq": last},
            )
            self.stalls += 1
            await self._resubscribe()
            return 0
        self.ack_floor = max(self.ack_floor, floor)
        ready = self.ordering.ready(self.ack_floor)
        if ready:
            applied, unknown = apply_in_order(self.engine(), ready, self.input_stream)
            if unknown:
                self.unknown += unknown
                log.warning(
                    "cluster: hits of correlations the running rules do not have were skipped",
                    extra={"hits": unknown, "ack_floor": self.ack_floor},
                )
            self.applied += len(ready)
            delivered = {p: b.delivered for p, b in self.ordering.buffers.items() if b.delivered}
            loud = [a for a in applied if a.sequence > delivered.get(a.partition, 0)]
            self.already_delivered += len(applied) - len(loud)
            released = {message.partition: self.ack_floor for message in ready}
            self._changed.update(released)
            applied = loud
            await self.emit(applied, self.floors.rounds.open(released, len(applied)))
        return len(ready)

    async def aclose(self) -> None:
        for task in self._replays:
            task.cancel()
        await asyncio.gather(*self._replays, return_exceptions=True)
        await self._unsubscribe()

    # -- internals ---------------------------------------------------------------------------------

    async def _input_floor(self) -> int:
        """The input consumer's ack floor; also how many input messages lie above it (the lag)."""
        info = await self.js.consumer_info(self.input_stream, self.input_consumer)
        floor = int(info.ack_floor.stream_seq or 0) if info.ack_floor else 0
        last = (info.delivered.stream_seq or 0) if info.delivered else 0
        self.watermark_lag = max(0, last + (info.num_pending or 0) - floor)
        return floor

    async def _caught_up(self, last: int) -> bool:
        """Whether every owned hit message up to `last` has been processed (waiting for it a while)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CATCH_UP_TIMEOUT_S
        while self.received < last:
            self._progress.clear()
            if await self._drained():
                self.received = last
                return True
            left = deadline - loop.time()
            if left <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._progress.wait(), min(left, DRAIN_POLL_S))
        return True

    async def _drained(self) -> bool:
        """Nothing owned is pending at the live consumer and every message it delivered was processed;
        with no owned partition there is nothing to wait for."""
        async with self._following:
            if self._sub is None:
                return not self.ordering.buffers
            try:
                info = await self._sub.consumer_info()
            except (NatsError, TimeoutError) as e:  # an ordered consumer being made again after a gap
                log.debug("cluster: hits consumer info not read", extra={"error": repr(e)})
                return False
            return info.num_pending == 0 and self.received >= (info.delivered.stream_seq or 0)

    async def _on_message(self, msg: Any) -> None:
        self.received = max(self.received, msg.metadata.sequence.stream)
        self._progress.set()
        try:
            message = decode_hit_message(msg.data)
        except ValueError as e:
            self.undecodable += 1
            log.error(
                "cluster: hits message skipped",
                extra={"subject": msg.subject, "sequence": self.received, "error": str(e)},
            )
            return
        self.ordering.add(message, msg.metadata.sequence.stream)

    async def _rebalanced(self, gained: frozenset[int], lost: frozenset[int]) -> None:
        await self._follow(gained, lost)

    async def _follow(self, gained: frozenset[int], lost: frozenset[int]) -> None:
        """Stop the live consumer, drop what is lost, replay what is gained up to `received`, and
        subscribe again to the owned subjects from `received + 1`: no owned message is missed (those
        after `received` come again) and none is read twice but by the replay of a gained partition."""
        async with self._following:
            await self._unsubscribe()
            if lost:
                self.ordering.own((), lost)
                dropped = self.engine().discard(self._in(lost))
                self.windows_dropped += dropped
                log.info(
                    "cluster: partitions handed over; their windows dropped",
                    extra={"partitions": sorted(lost), "windows": dropped},
                )
            if gained:
                self._gain(gained)
            await self._subscribe_or_retry()

    async def _subscribe(self) -> bool:
        """The live consumer of the owned subjects from `received + 1` (none when nothing is owned);
        False when NATS refused it: until it exists no round applies anything (`_drained`)."""
        owned = sorted(self.ordering.buffers)
        if not owned:
            return True
        try:
            self._sub = await self.js.subscribe(
                hits_subjects(self.cluster),
                stream=self.stream,
                cb=self._on_message,
                ordered_consumer=True,
                config=ConsumerConfig(
                    filter_subjects=self._subjects(owned),
                    deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                    opt_start_seq=self.received + 1,
                ),
            )
        except (NatsError, TimeoutError) as e:
            log.warning("cluster: hits consumer not made; trying again", extra={"error": repr(e)})
            return False
        return True

    async def _resubscribe(self) -> None:
        """Make the live consumer again from `received + 1`: an ordered consumer that stopped
        delivering (seen under load: flow control never answered, no reset) would hold every round.
        Nothing is lost or applied twice: what comes again is dropped as already waiting."""
        async with self._following:
            await self._unsubscribe()
            await self._subscribe_or_retry()

    async def _subscribe_or_retry(self) -> None:
        """Subscribe, or keep trying every `interval_s` in the background (under the lock)."""
        if not await self._subscribe():
            task = asyncio.create_task(self._subscribe_later(), name="cluster-hits-consumer")
            self._replays.add(task)  # cancelled with the replays at close
            task.add_done_callback(self._replays.discard)

    async def _subscribe_later(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            async with self._following:
                if self._sub is not None or await self._subscribe():
                    return

    async def _unsubscribe(self) -> None:
        sub, self._sub = self._sub, None
        if sub is not None:
            try:
                await sub.unsubscribe()
            except NatsError as e:
                log.debug("cluster: hits consumer not unsubscribed", extra={"error": str(e)})

    def _in(self, partitions: frozenset[int]) -> Callable[[str, list[Any]], bool]:
        n = self.partitions
        return lambda key, group: shard_of(key, group, n) in partitions

    def _gain(self, partitions: frozenset[int]) -> None:
        """New buffers for the partitions, and a replay of their past up to what the live consumer
        has delivered (it brings the rest). Windows they may still have here are stale: dropped."""
        fresh = self.ordering.own(partitions, ())
        if not fresh:
            return
        self.windows_dropped += self.engine().discard(self._in(frozenset(fresh)))
        task = asyncio.create_task(self._replay(fresh, self.received), name="cluster-replay")
        self._replays.add(task)
        task.add_done_callback(self._replays.discard)

    async def _replay(self, buffers: dict[int, PartitionBuffer], upto: int) -> None:
        """Restore the partitions' snapshots (if any), read their hit messages after them (from the
        start of the stream for the others) up to `upto` into their buffers, then let them release.

        A NATS error retries from the next message not read, every `interval_s`."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        delivered: dict[int, int] | None = None
        replays: list[_Replay] | None = None
        while True:
            try:
                if delivered is None:
                    delivered = await self.floors.read(buffers)
                    for p, floor in delivered.items():
                        buffers[p].delivered = floor
                        self.floors.rounds.known(p, floor)
                if replays is None:
                    replays = await self._restore(buffers, upto)
                for replay in replays:
                    await self._replay_pass(replay)
                break
            except (NatsError, TimeoutError) as e:
                log.warning(
                    "cluster: replay of gained partitions interrupted; retrying",
                    extra={
                        "partitions": sorted(buffers),
                        "next_hits_seq": [r.next for r in replays or ()],
                        "error": repr(e),
                    },
                )
                await asyncio.sleep(self.interval_s)
        for buffer in buffers.values():
            buffer.replaying = False
        log.info(
            "cluster: gained partitions replayed",
            extra={
                "partitions": sorted(buffers),
                "hit_messages": sum(r.read for r in replays or ()),
                "from_hits_seq": [r.first for r in replays or ()],
                "up_to_hits_seq": upto,
                "delivered_floors": {str(p): floor for p, floor in (delivered or {}).items()},
                "seconds": round(loop.time() - started, 3),
            },
        )

    async def _restore(self, buffers: dict[int, PartitionBuffer], upto: int) -> list[_Replay]:
        """Load each partition's snapshot into the engine (those still owned) and group the partitions
        by the hits-stream sequence their replay starts from: after the snapshot, or 1."""
        starts = dict.fromkeys(buffers, 1)
        if self.snapshots is not None:
            read = await asyncio.gather(*(self.snapshots.read(p) for p in buffers))
            engine = self.engine()
            current = {c.key: c.digest for c in engine.correlations}
            for (p, buffer), snapshot in zip(buffers.items(), read, strict=True):
                if snapshot is None or self.ordering.buffers.get(p) is not buffer:
                    continue  # none, or the partition moved on meanwhile
                engine.import_state(snapshot.windows, restorable(snapshot, current, self._in(frozenset({p}))))
                buffer.restore(snapshot.applied)
                starts[p] = snapshot.after + 1
        groups: dict[int, dict[int, PartitionBuffer]] = {}
        for p, start in starts.items():
            groups.setdefault(start, {})[p] = buffers[p]
        return [_Replay(group, upto, next=start, first=start) for start, group in sorted(groups.items())]

    def capture_snapshots(self) -> list[PartitionSnapshot]:
        """Snapshots of the owned partitions that applied hits since the last capture (taken between
        two steps, so each is its windows at its applied floor)."""
        changed, self._changed = self._changed, set()
        buffers = {
            p: buffer
            for p in sorted(changed)
            if (buffer := self.ordering.buffers.get(p)) is not None and not buffer.replaying
        }
        engine = self.engine()
        definitions = {c.key: c.digest for c in engine.correlations}
        n = self.partitions
        windows = engine.export_parts(lambda key, group: shard_of(key, group, n), buffers)
        out = []
        for p, buffer in buffers.items():
            first = buffer.first_stored_at()
            after = self.received if first is None else max(0, first - 1)
            out.append(PartitionSnapshot(p, buffer.applied, after, windows[p], time.time(), definitions))
        return out

    async def _replay_pass(self, replay: _Replay) -> None:
        """Read from `replay.next` with a consumer of the partitions' subjects, until past `upto` or
        nothing is left; removed afterwards (or by the server once idle, if this node dies)."""
        if replay.next > replay.upto:
            return
        name = f"rsigma-replay-{uuid.uuid4().hex}"
        config = ConsumerConfig(
            name=name,
            filter_subjects=self._subjects(replay.buffers),
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=replay.next,
            ack_policy=AckPolicy.NONE,
            inactive_threshold=REPLAY_INACTIVE_S,
        )
        await self.js.add_consumer(self.stream, config=config)
        try:
            sub = await self.js.pull_subscribe_bind(name, stream=self.stream)
            if (await sub.consumer_info()).num_pending == 0:
                return
            while True:
                try:
                    msgs = await sub.fetch(REPLAY_BATCH, timeout=REPLAY_FETCH_TIMEOUT_S)
                except TimeoutError:
                    if (await sub.consumer_info()).num_pending == 0:
                        return
                    continue
                for msg in msgs:
                    sequence = msg.metadata.sequence.stream
                    if sequence > replay.upto:  # the live consumer brings it
                        return
                    replay.next = sequence + 1
                    replay.read += 1
                    self.replayed += 1
                    self._replayed_message(replay, msg)
                    if msg.metadata.num_pending == 0:
                        return
        finally:
            try:
                await self.js.delete_consumer(self.stream, name)
            except (NatsError, TimeoutError) as e:  # the server removes it once idle
                log.debug("cluster: replay consumer not removed", extra={"consumer": name, "error": repr(e)})

    def _subjects(self, partitions: Iterable[int]) -> list[str]:
        """The partitions' subjects; the wildcard when they are all of them (one member alone)."""
        subjects = sorted(set(partitions))
        if len(subjects) == self.partitions:
            return [hits_subjects(self.cluster)]
        return [hits_subject(self.cluster, p) for p in subjects]

    def _replayed_message(self, replay: _Replay, msg: Any) -> None:
        try:
            message = decode_hit_message(msg.data)
        except ValueError as e:
            log.error(
                "cluster: hits message skipped in a replay",
                extra={"subject": msg.subject, "sequence": msg.metadata.sequence.stream, "error": str(e)},
            )
            return
        buffer = replay.buffers.get(message.partition)
        if buffer is not None:
            buffer.add(message, msg.metadata.sequence.stream)


@dataclass(slots=True)
class _Replay:
    """A replay's partitions, its last hits-stream sequence, and how far it got."""

    buffers: dict[int, PartitionBuffer]
    upto: int
    next: int = 1
    read: int = 0
    first: int = 1  # where it started: after the partitions' snapshot, or the stream's start


def apply_in_order(
    engine: CorrelationEngine, messages: Sequence[HitMessage], input_stream: str
) -> tuple[list[Applied], int]:
    """Apply released messages (in source order) in one `CorrelationEngine.apply`, each (source
    event, event in its payload) one position, so each window gets one update per event as one
    daemon makes. Returns the results, each with its id, firing sequence and partition, and how many
    hits named a correlation the engine does not have (skipped)."""
    index = {key: i for i, key in enumerate(engine.keys)}
    # Positions in (source sequence, event) order: one event's hits may be spread over several
    # messages (partitions), so the order they are met in is not the events' order.
    origins = sorted({(message.sequence, h.event) for message in messages for h in message.hits})
    positions = {origin: position for position, origin in enumerate(origins)}
    hits: list[Hit] = []
    where: dict[tuple[int, int, tuple[Any, ...]], int] = {}  # (position, correlation, group) -> partition
    unknown = 0
    for message in messages:
        for h in message.hits:
            ci = index.get(h.correlation)
            if ci is None:
                unknown += 1
                continue
            position = positions[message.sequence, h.event]
            where[position, ci, h.group] = message.partition
            hits.append((ci, h.group, h.value, h.ts, position, h.order, h.context, h.evidence))
    results, _ = engine.apply(hits)  # no parent hits: --cluster refuses chained correlations
    results.sort(key=_process_order)
    out = []
    for result in results:
        sequence, event = origins[result.position]
        key = engine.keys[result.order[0]]
        group = [value for _, value in result.group_key]
        partition = where[result.position, result.order[0], tuple(group)]
        out.append(Applied(result, result_id(input_stream, sequence, event, key, group), sequence, partition))
    return out, unknown


def _process_order(result: CorrelationResult) -> tuple[Any, ...]:
    return result.position, result.order
