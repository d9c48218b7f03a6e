"""The owner's side of the hits stream: apply the owned partitions' hits in source order, up to the
input consumer's ack floor, and hand the correlation results on.

One ordered consumer (no acks, nothing on the server to clean up) reads every partition's subject,
`rsigma.hits.<cluster>.*`, from the start of the stream; messages of partitions owned elsewhere are
skipped on arrival. Reading everything costs each member the whole stream's traffic, but it makes
"received everything up to the stream's last sequence L" a plain comparison with the last sequence
delivered, which the exact order rests on (`ordering.py`).

Each step (every `interval_s`): read the input consumer's ack floor F, then L, wait until the
consumer delivered up to L, apply every waiting hit with source sequence <= F in order, and emit the
results. Hits of source events acked before this node started (<= the floor at start) were applied
by whoever ran then: they are skipped (moving windows with their state comes with snapshots).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import msgspec
from nats.errors import Error as NatsError
from nats.js.api import DeliverPolicy

from rsigma.cluster.hits import HitMessage, decode_hit_message, hits_stream, hits_subjects
from rsigma.cluster.ordering import HitOrdering
from rsigma.cluster.ownership import Ownership
from rsigma.correlation.engine import CorrelationEngine, CorrelationResult, Hit

__all__ = ["Applied", "HitApplier", "apply_in_order", "result_id"]

log = logging.getLogger("rsigma.cluster")

#: How long a step waits for the hits consumer to deliver up to the stream's last sequence.
CATCH_UP_TIMEOUT_S: Final = 5.0

_encoder = msgspec.msgpack.Encoder()


@dataclass(frozen=True, slots=True)
class Applied:
    """A correlation result and its id: the same firing gets the same id on any node, any time."""

    result: CorrelationResult
    msg_id: str


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
        emit: Callable[[list[Applied]], Awaitable[None]],
        *,
        interval_s: float,
    ) -> None:
        self.js = js
        self.cluster = cluster
        self.stream = hits_stream(cluster)
        self.input_stream = input_stream
        self.input_consumer = input_consumer
        self.ownership = ownership
        self.engine = engine
        self.emit = emit
        self.interval_s = interval_s
        self.ordering = HitOrdering(())
        self.ack_floor = 0  # the input consumer's, as last read
        self.start_floor = 0  # the ack floor when this node started: hits at or below it were applied
        self.skipped = 0  # hit messages at or below the start floor
        self.received = 0  # the last hits-stream sequence delivered to this node
        self.applied = 0  # hit messages applied
        self.unknown = 0  # hits of correlations the running rules do not have
        self.undecodable = 0
        self._progress = asyncio.Event()
        self._sub: Any = None

    async def start(self) -> None:
        """Read the floor hits below which are already applied, then subscribe."""
        self.ack_floor = self.start_floor = await self._input_floor()
        self.ordering = HitOrdering(self.ownership.owned(), self.ack_floor)
        self.ownership.on_change(self._rebalanced)
        self._sub = await self.js.subscribe(
            hits_subjects(self.cluster),
            cb=self._on_message,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.ALL,
        )

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
            if applied:
                await self.emit(applied)
        return len(ready)

    async def aclose(self) -> None:
        sub, self._sub = self._sub, None
        if sub is not None:
            try:
                await sub.unsubscribe()
            except NatsError as e:
                log.debug("cluster: hits consumer not unsubscribed", extra={"error": str(e)})

    # -- internals ---------------------------------------------------------------------------------

    async def _input_floor(self) -> int:
        info = await self.js.consumer_info(self.input_stream, self.input_consumer)
        return int(info.ack_floor.stream_seq or 0) if info.ack_floor else 0

    async def _caught_up(self, last: int) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CATCH_UP_TIMEOUT_S
        while self.received < last:
            self._progress.clear()
            left = deadline - loop.time()
            if left <= 0:
                return False
            try:
                await asyncio.wait_for(self._progress.wait(), left)
            except TimeoutError:
                return False
        return True

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
        if message.sequence <= self.start_floor:
            self.skipped += 1
            return
        self.ordering.add(message)

    async def _rebalanced(self, gained: frozenset[int], lost: frozenset[int]) -> None:
        self.ordering.own(gained, lost, self.ack_floor)


def apply_in_order(
    engine: CorrelationEngine, messages: Sequence[HitMessage], input_stream: str
) -> tuple[list[Applied], int]:
    """Apply released messages (in source order) in one `CorrelationEngine.apply`, each (source
    event, event in its payload) one position, so each window gets one update per event as one
    daemon makes. Returns the results, each with its id, and how many hits named a correlation the
    engine does not have (skipped)."""
    index = {key: i for i, key in enumerate(engine.keys)}
    # Positions in (source sequence, event) order: one event's hits may be spread over several
    # messages (partitions), so the order they are met in is not the events' order.
    origins = sorted({(message.sequence, h.event) for message in messages for h in message.hits})
    positions = {origin: position for position, origin in enumerate(origins)}
    hits: list[Hit] = []
    unknown = 0
    for message in messages:
        for h in message.hits:
            ci = index.get(h.correlation)
            if ci is None:
                unknown += 1
                continue
            position = positions[message.sequence, h.event]
            hits.append((ci, h.group, h.value, h.ts, position, h.order, h.context, h.evidence))
    results, _ = engine.apply(hits)  # no parent hits: --cluster refuses chained correlations
    results.sort(key=_process_order)
    out = []
    for result in results:
        sequence, event = origins[result.position]
        key = engine.keys[result.order[0]]
        group = [value for _, value in result.group_key]
        out.append(Applied(result, result_id(input_stream, sequence, event, key, group)))
    return out, unknown


def _process_order(result: CorrelationResult) -> tuple[Any, ...]:
    return result.position, result.order
