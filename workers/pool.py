"""The supervisor's side of the worker pool: N matcher processes behind one asyncio interface.

```
             Events batch (any matcher)           Results: detections + hits by owner
supervisor ───────────────────────────▶ matcher k ───────────────────────────────▶ supervisor
    │  in batch order, round by round:                                              │
    └──── Hits (only the owner of each (correlation, group)) ──▶ owner ── Applied ─┘
```

`evaluate(payloads)` sends a batch to the matcher with the fewest batches in flight (several
batches are in flight at once, so every matcher stays busy), then, strictly in the order batches
were submitted, runs the batch's correlation rounds: its hits go to their owners, which answer with
correlation results and the hits they make for parent correlations, until none are left. Results
come back per event, in the batch's order, for the daemon to deliver and acknowledge.

A matcher that dies is started again at once (same index, so it owns the same correlation shard):
what it held in flight is sent again, and its shard is reloaded from the last state snapshot the
supervisor collected; what it learned since then is lost, and the log says so.

A matcher that holds work and makes no progress on it for `matcher_timeout` seconds is killed by the
watchdog (`workers/watchdog.py`) and goes through the same restart.

An event that kills its matcher must not kill it forever. A matcher works through its frames in
order, so the oldest unanswered request is the one it died on. An event batch it died on is sent
again *carefully*: the matcher names each event before evaluating it. An event it dies on
`POISON_DEATHS` times is left out of the batch and dead-lettered, and the rest of the batch goes on.
An event a matcher hangs on is treated the same way: each timeout is a death.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import multiprocessing
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Final, TypeVar

from rsigma.correlation.sharding import (
    CorrelationRounds,
    decode_hits,
    encode_hits,
    merge_snapshots,
    split_snapshot,
)
from rsigma.evaluator import Evaluator, RuleSummary
from rsigma.loading import refuse_dropped_rules
from rsigma.payloads import BatchResult, Outcome, PayloadOptions
from workers import host, protocol
from workers.loader import load_summary
from workers.matcher import MatcherSpec, run
from workers.protocol import (
    Applied,
    Discard,
    Evaluating,
    Events,
    Export,
    FromMatcher,
    Hits,
    Import,
    Ready,
    Reload,
    Reloaded,
    Results,
    State,
    Stop,
    Swap,
    Swapped,
    ToMatcher,
)
from workers.ring import Channel
from workers.watchdog import DEFAULT_MATCHER_TIMEOUT_S, Watchdog
from workers.zygote import start_forkserver

log = logging.getLogger("rsigma.daemon")
#: What `_correlate` adds to a batch's BatchResult after its outcomes and figures (hits and keys, or nothing).
Extra = tuple[Any, ...]

#: Bytes of each ring (one per direction per matcher): room for several large batches.
RING_BYTES: Final = 32 << 20
#: Batches in flight per matcher (the daemon keeps at most this many per matcher submitted).
WINDOW: Final = 4
#: Events per batch at least, when that many wait: each batch crosses to a matcher as one frame.
MIN_BATCH: Final = 512
#: A matcher must compile its rules and say `Ready` within this many seconds.
START_TIMEOUT_S: Final = 120.0
STOP_TIMEOUT_S: Final = 5.0
#: Deaths of a matcher on one event (evaluated carefully) before that event is dead-lettered.
POISON_DEATHS: Final = 2
#: Deaths in a row before `Ready` (its rules no longer compile, say) before the pool gives up.
FAILED_STARTS: Final = 3

#: What multiprocessing's forkserver imports before it forks any matcher: the matcher's modules, and
#: (through `workers/zygote.py`) the rules compiled once, which the matchers forked from it share.
MATCHER_MODULES: Final = ["workers.matcher"]

#: The answer frame a request expects.
A = TypeVar("A", bound=FromMatcher)


class PoolError(RuntimeError):
    """The pool cannot run: a matcher failed to start, or to start again after it died."""


@dataclass(eq=False, slots=True)
class _Request:
    """A frame sent to a matcher and not answered yet (re-sent if the matcher dies)."""

    data: bytes
    future: asyncio.Future[FromMatcher]
    payloads: list[bytes] | None = None  # an event batch's, for re-sending it carefully
    skip: dict[int, str] | None = None  # careful once set: dead-lettered positions and why
    at: int | None = None  # careful: the position the matcher said it was evaluating
    deaths: dict[int, int] = field(default_factory=dict)  # careful: matcher deaths per position
    patience: float | None = None  # seconds without progress before the matcher is killed (None: its timeout)

    def suspect(self, request_id: int, code: int | None, hung_s: float | None = None) -> int | None:
        """The matcher died on this batch: re-send it carefully, without an event it died on
        `POISON_DEATHS` times (its position is returned: dead-lettered with the reason)."""
        assert self.payloads is not None
        poisoned = None
        if self.skip is None:
            self.skip = {}
        elif self.at is not None:
            position = self.at
            deaths = self.deaths[position] = self.deaths.get(position, 0) + 1
            if deaths >= POISON_DEATHS:
                how = f", killed after {hung_s:g} s without progress" if hung_s is not None else ""
                self.skip[position] = (
                    f"the matcher process died {deaths} times evaluating this event (last exit code"
                    f" {code}{how}); it was left out so the rest of its batch could be evaluated"
                )
                poisoned = position
        self.at = None
        self.data = protocol.encode(Events(request_id, self.payloads, skip=self.skip))
        return poisoned


@dataclass(eq=False)
class _Worker:
    """The supervisor's side of one matcher process: its rings, requests in flight and figures."""

    index: int
    process: Any = None
    inbox: Channel | None = None  # supervisor -> matcher
    outbox: Channel | None = None  # matcher -> supervisor
    ready: asyncio.Future[Ready] | None = None
    room: asyncio.Future[None] | None = None
    inflight: dict[int, _Request] = field(default_factory=dict)  # in the order the matcher answers
    batches: int = 0
    events: int = 0
    restarts: int = 0
    poisoned: int = 0  # events dead-lettered because this matcher kept dying on them
    busy_s: float = 0.0  # time spent evaluating batches, as the matcher measured it
    windows: int = 0  # its live correlation windows, as of its last answer
    regex_timeouts: int = 0  # its backtracking regex searches cut off, as of its last answer
    evictions: int = 0  # its live correlation windows dropped at the cap, as of its last answer
    trimmed: int = 0  # its window entries dropped at --max-group-entries, as of its last answer
    retired_regex_timeouts: int = 0  # those of its earlier processes (the counts are per process)
    retired_evictions: int = 0
    retired_trimmed: int = 0
    generation: int = 0  # bumped at each restart
    failed_starts: int = 0  # deaths before `Ready` since it was last ready
    resuming: asyncio.Future[None] | None = None  # set from a restart until its state and held frames are in
    answered_at: float | None = None  # monotonic time of its last frame
    progress_at: float = 0.0  # monotonic time it last made progress on the requests it holds
    pulses: int = 0  # its outbound ring's pulse counter, as last read
    timeouts: int = 0  # times it was killed for making no progress
    hung_s: float | None = None  # set when the watchdog killed this process: how long it had been stuck

    async def send(self, data: bytes, *, resuming: bool = False) -> None:
        """Write a frame, waiting for room. If the matcher dies meanwhile, the frame is dropped here:
        the restart re-sends everything that was in flight, this request included."""
        generation = self.generation
        while self.resuming is not None and not resuming:
            await self.resuming
            if self.generation != generation:
                return  # it died again while this frame waited: that restart re-sent it
        while True:
            inbox = self.inbox
            if inbox is not None and inbox.send([data]):
                return
            if self.room is None or self.room.done():  # shared by every sender waiting for room
                self.room = asyncio.get_running_loop().create_future()
            await self.room  # rung by the matcher's reads, or by a restart
            if self.generation != generation:
                return

    def hold(self, request_id: int, request: _Request) -> None:
        """A request is out: if it is the only one, the watchdog's clock starts now."""
        if not self.inflight:
            self.progress_at = time.monotonic()
        self.inflight[request_id] = request

    def blame_oldest(self, code: int | None) -> int | None:
        """It died (or was killed as hung): its oldest request, if a batch, is re-sent carefully; the
        batch position dead-lettered for killing it too often, if any (see `_Request.suspect`)."""
        hung_s, self.hung_s = self.hung_s, None
        if not self.inflight:
            return None
        request_id, oldest = next(iter(self.inflight.items()))
        if oldest.payloads is None:
            return None
        position = oldest.suspect(request_id, code, hung_s)
        if position is not None:
            self.poisoned += 1
        return position

    def launch(self, context: Any, spec: Callable[..., MatcherSpec]) -> None:
        """New rings, and a process started on them (the first one forked waits for the forkserver)."""
        self.inbox = Channel.create(RING_BYTES)
        self.outbox = Channel.create(RING_BYTES)
        matcher = spec(index=self.index, inbox=self.inbox.handle(), outbox=self.outbox.handle())
        self.process = context.Process(target=run, args=(matcher,), name=f"rsigma-matcher-{self.index}")
        self.process.start()

    def attach(
        self,
        loop: asyncio.AbstractEventLoop,
        on_data: Callable[[_Worker], None],
        on_exit: Callable[[_Worker], None],
    ) -> None:
        """Watch its rings and its exit (what it said before this waits in its ring)."""
        assert self.inbox is not None and self.outbox is not None
        self.ready = loop.create_future()
        loop.add_reader(self.outbox.data.fileno(), on_data, self)
        loop.add_reader(self.inbox.space.fileno(), self.on_space)
        loop.add_reader(self.process.sentinel, on_exit, self)

    def on_space(self) -> None:
        assert self.inbox is not None
        self.inbox.space.drain()
        if self.room is not None and not self.room.done():
            self.room.set_result(None)

    def retire_counters(self) -> None:
        """Its process died: keep what it counted, since the next one counts from 0."""
        self.retired_regex_timeouts += self.regex_timeouts
        self.retired_evictions += self.evictions
        self.retired_trimmed += self.trimmed
        self.regex_timeouts = self.evictions = self.trimmed = 0

    def detach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Stop watching its rings and process, and close the rings."""
        for channel in (self.inbox, self.outbox):
            if channel is None:
                continue
            fd = (channel.data if channel is self.outbox else channel.space).fileno()
            loop.remove_reader(fd)
            channel.close()
        if self.process is not None:
            loop.remove_reader(self.process.sentinel)
        self.inbox = self.outbox = None

    @property
    def working(self) -> bool:
        """Started (or restarted) with everything it held re-sent: the watchdog's to judge."""
        return (
            self.ready is not None
            and self.ready.done()
            and not self.ready.cancelled()
            and self.resuming is None
            and self.hung_s is None
            and self.outbox is not None
        )

    def stalled_s(self, now: float) -> float:
        """Seconds since it last made progress on the requests it holds (0 when it holds none)."""
        if not self.inflight or not self.working:
            return 0.0
        assert self.outbox is not None
        pulses = self.outbox.ring.pulses
        if pulses != self.pulses:
            self.pulses, self.progress_at = pulses, now
        return now - self.progress_at

    def status(self) -> dict[str, Any]:
        now = time.monotonic()
        since = round(now - self.answered_at, 3) if self.answered_at is not None else None
        return {
            "index": self.index,
            "pid": self.process.pid if self.process is not None else None,
            "alive": bool(self.process is not None and self.process.is_alive()),
            "batches": self.batches,
            "events": self.events,
            "in_flight": len(self.inflight),
            "busy_seconds": round(self.busy_s, 3),
            "restarts": self.restarts,
            "poisoned_events": self.poisoned,
            "seconds_since_answer": since,
            "stalled_seconds": round(self.stalled_s(now), 3),
            "timeouts": self.timeouts,
        }


async def await_ready(workers: list[_Worker]) -> None:
    """Every matcher's `Ready`; a matcher that died first and was started again is waited for anew."""
    try:
        async with asyncio.timeout(START_TIMEOUT_S):
            for worker in workers:
                while True:
                    ready = worker.ready
                    assert ready is not None
                    try:
                        await ready
                        break
                    except asyncio.CancelledError:
                        if worker.ready is ready:
                            raise
                        # it died before `Ready` and was started again: wait for that one
    except TimeoutError:
        raise PoolError(f"a matcher did not start within {START_TIMEOUT_S:g} s") from None


def restart_note(snapshot_taken: bool) -> str:
    """What a restarted matcher lost, for the log."""
    if snapshot_taken:
        return (
            "its correlation groups were restored from the last snapshot, and what they learned from"
            " events acknowledged after it is lost"
        )
    return "no state snapshot was taken yet, so its correlation groups start empty"


class MatcherPool:
    """The evaluation backend of `--workers N` (see `rsigma/daemon/backend.py` for the contract)."""

    min_batch = MIN_BATCH
    keeps_snapshots = True  # a restarted matcher gets its windows back from the last one
    restart_loss: str | None = None  # what a restarted matcher lost, if not its windows (the log says)

    def __init__(
        self,
        build_evaluator: Callable[[], Evaluator],
        workers: int,
        rules: RuleSummary,
        *,
        options: PayloadOptions,
        log_format: str = "json",
        log_level: str = "info",
        matcher_timeout: float = DEFAULT_MATCHER_TIMEOUT_S,
    ) -> None:
        self.build_evaluator = build_evaluator
        self.n = workers
        self.window = workers * WINDOW
        self.rules = rules  # the running rules: correlation levels and keys for routing, the fingerprint
        self.pending: RuleSummary | None = None  # loaded by `load`, swapped in by `reload`
        self.options = options
        self.log_format = log_format
        self.log_level = log_level
        self.workers = [_Worker(i) for i in range(workers)]
        self.last_snapshot: bytes | None = None  # merged state, for restoring a restarted matcher
        self.snapshot_at: float | None = None
        self._ids = itertools.count(1)
        self._stage_tail: asyncio.Future[None] | None = None
        self._gate: asyncio.Future[None] | None = None  # set while a reload waits for batches to finish
        self._stopping = False
        # never fork a process with threads: the forkserver is a fresh single-threaded interpreter
        self._context = multiprocessing.get_context("forkserver")
        self._loop: asyncio.AbstractEventLoop | None = None
        self.failure: PoolError | None = None  # set once the pool gave up
        self.on_failure: Callable[[BaseException], None] | None = None  # the daemon's: it then stops
        self.watchdog = Watchdog(self.workers, matcher_timeout)
        self._watching: asyncio.Task[None] | None = None

    # ---- lifecycle -------------------------------------------------------------------------

    async def start(self, snapshot: bytes | None = None) -> None:
        """Start every matcher, wait until each compiled its rules, and hand out its state shard
        (ConfigError first if the host cannot carry the pool, see `host.prepare`)."""
        self._loop = asyncio.get_running_loop()
        host.prepare(self.n, RING_BYTES)
        recipe = (self.build_evaluator, MATCHER_MODULES, self.log_format, self.log_level)
        await asyncio.to_thread(start_forkserver, *recipe)
        for worker in self.workers:  # the first waits while the forkserver compiles the rules
            await asyncio.to_thread(worker.launch, self._context, self._matcher_spec())
            worker.attach(self._loop, self._on_data, self._on_exit)
        await await_ready(self.workers)
        if snapshot is not None:
            self.last_snapshot = snapshot
            self.snapshot_at = time.time()
            for worker, shard in zip(self.workers, split_snapshot(snapshot, self.n), strict=True):
                await worker.send(protocol.encode(Import(shard)))
            log.info("correlation state restored", extra={"workers": self.n})
        self._watching = asyncio.create_task(self.watchdog.run(), name="matcher-watchdog")
        log.info("matcher pool started", extra={"workers": self.n})

    def _spawn(self, worker: _Worker) -> None:
        worker.launch(self._context, self._matcher_spec())
        worker.attach(self._loop, self._on_data, self._on_exit)

    def _matcher_spec(self) -> Callable[..., MatcherSpec]:
        """A matcher's spec, but for its index and rings."""
        return partial(
            MatcherSpec,
            build_evaluator=self.build_evaluator,
            options=self.options,
            log_format=self.log_format,
            log_level=self.log_level,
            fingerprint=self.rules.fingerprint,
        )

    async def stop(self) -> None:
        """Stop every matcher: a stalled one is killed at once, the others after `STOP_TIMEOUT_S`."""
        self._stopping = True
        if self._watching is not None:
            self._watching.cancel()
        self.watchdog.kill_stalled()
        for worker in self.workers:
            if worker.process is not None and worker.process.is_alive():
                with contextlib.suppress(OSError):
                    await asyncio.wait_for(worker.send(protocol.encode(Stop())), 1.0)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for worker in self.workers:
            if worker.process is None:
                continue
            await asyncio.to_thread(worker.process.join, max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                worker.process.kill()
                await asyncio.to_thread(worker.process.join, 1.0)
            worker.detach(self._loop)

    def _on_exit(self, worker: _Worker) -> None:
        """A matcher died: start it again and re-send what it held (it was never acknowledged)."""
        if self._stopping or self.failure is not None:
            return
        worker.process.join(1.0)  # its sentinel closed as it exited: reap it, so exitcode is set
        code = worker.process.exitcode
        self._on_data(worker)  # answers and progress it wrote before dying
        if worker.ready is not None and not worker.ready.done():
            worker.failed_starts += 1
            if worker.failed_starts >= FAILED_STARTS:
                worker.detach(self._loop)
                error = PoolError(
                    f"matcher {worker.index} died {worker.failed_starts} times in a row before it was"
                    f" ready (last exit code {code}); its own error is logged above"
                )
                worker.ready.set_exception(error)
                self._fail(error)
                return
        if (position := worker.blame_oldest(code)) is not None:
            log.error(
                "event dead-lettered: it kills the matcher that evaluates it",
                extra={"matcher": worker.index, "exit_code": code, "batch_position": position},
            )
        held = list(worker.inflight.items())
        worker.detach(self._loop)
        worker.retire_counters()
        worker.generation += 1
        if worker.room is not None and not worker.room.done():
            worker.room.set_result(None)  # a sender waiting for room in the dead ring gives up
        if worker.ready is not None and not worker.ready.done():
            worker.ready.cancel()  # it died again before `Ready`: this restart takes over from the last
        assert self._loop is not None
        if worker.resuming is None:  # new frames wait until state and held ones are in
            worker.resuming = self._loop.create_future()
        worker.restarts += 1
        log.error(
            "matcher died; restarting it",
            extra={"matcher": worker.index, "exit_code": code, "batches_in_flight": len(held)},
        )
        self._spawn(worker)
        resume = asyncio.ensure_future(self._resume(worker, held, time.monotonic()))
        resume.add_done_callback(self._resumed)

    async def _resume(self, worker: _Worker, held: list[tuple[int, _Request]], died: float) -> None:
        """Give the restarted matcher its state shard, then what it held, before anything new.

        If it dies again meanwhile, the next restart (which holds all of this again) takes over."""
        generation = worker.generation
        try:
            await await_ready([worker])
        except asyncio.CancelledError:
            if worker.generation != generation:
                return
            raise
        frames = [request.data for _, request in held]
        if self.last_snapshot is not None:
            shard = split_snapshot(self.last_snapshot, self.n)[worker.index]
            frames.insert(0, protocol.encode(Import(shard)))
        for data in frames:
            await worker.send(data, resuming=True)
            if worker.generation != generation:
                return
        resumed, worker.resuming = worker.resuming, None
        worker.progress_at = time.monotonic()  # the watchdog's clock starts once it has its work back
        if resumed is not None and not resumed.done():
            resumed.set_result(None)
        log.warning(
            f"matcher restarted; {self.restart_loss or restart_note(self.last_snapshot is not None)}",
            extra={
                "matcher": worker.index,
                "restart_seconds": round(time.monotonic() - died, 3),
                "snapshot_age_seconds": round(time.time() - self.snapshot_at, 3)
                if self.snapshot_at
                else None,
                "resent_requests": len(held),
            },
        )

    @property
    def available(self) -> int:  # see Watchdog.available
        return self.watchdog.available()

    def _resumed(self, task: asyncio.Future[None]) -> None:
        if task.cancelled() or (error := task.exception()) is None:
            return
        self._fail(error if isinstance(error, PoolError) else PoolError(f"restarting a matcher: {error!r}"))

    def _fail(self, error: PoolError) -> None:
        """The pool cannot go on: say so once, and let the daemon stop (unacknowledged events stay
        with their source)."""
        if self.failure is not None:
            return
        self.failure = error
        log.critical("the matcher pool gave up", extra={"error": str(error)})
        if self.on_failure is not None:
            self.on_failure(error)

    # ---- requests --------------------------------------------------------------------------

    async def evaluate(self, payloads: list[bytes]) -> BatchResult:
        """Per-event outcomes of a batch, in order, with how many events were evaluated and how long."""
        while self._gate is not None:  # a reload is under way
            await self._gate
        loop = asyncio.get_running_loop()
        previous, mine = self._stage_tail, loop.create_future()
        self._stage_tail = mine  # the correlation stage runs in submission order
        try:
            worker = min(self.workers, key=lambda w: len(w.inflight))
            batch_id = next(self._ids)
            results = await self._request(worker, batch_id, Events(batch_id, payloads), Results, payloads)
            worker.windows, worker.regex_timeouts = results.windows, results.regex_timeouts
            worker.batches += 1
            worker.events += results.evaluated  # as rsigma_events_processed: not the dead-lettered
            worker.busy_s += results.busy_s
            outcomes: list[Outcome] = [None] * len(payloads)
            for answer in results.answers:
                reason = answer.reason
                outcomes[answer.position] = reason if reason is not None else (answer.lines, answer.keys)
            if previous is not None:
                await previous
            hits = await self._correlate(results.hits, outcomes, results.origins)
            return BatchResult(outcomes, results.evaluated, results.busy_s, *hits)
        finally:
            mine.set_result(None)

    async def _correlate(self, encoded: bytes, outcomes: list[Outcome], origins: list[int]) -> Extra:
        """The batch's hits, round by round, at their owners (`sharding.py`), each result joining its
        payload's outcome (`origins`: extracted events' payloads); returns `Extra` (none here)."""
        rules = self.rules
        rounds = CorrelationRounds(decode_hits(encoded) if encoded else [], rules.levels, rules.keys, self.n)
        for shares in rounds:
            applied = await asyncio.gather(
                *(
                    self._request(
                        self.workers[owner], rid := next(self._ids), Hits(rid, encode_hits(hits)), Applied
                    )
                    for owner, hits in shares
                )
            )
            for (owner, _), frame in zip(shares, applied, strict=True):
                worker = self.workers[owner]
                worker.windows, worker.evictions = frame.windows, frame.evictions
                worker.trimmed = frame.trimmed
                for answer in frame.answers:
                    position = origins[answer.position] if origins else answer.position
                    current = outcomes[position]
                    if current is None or isinstance(current, str):
                        outcomes[position] = (list(answer.lines), list(answer.keys))
                    else:
                        current[0].extend(answer.lines)
                        current[1].extend(answer.keys)
                if frame.parent_hits:
                    rounds.add(decode_hits(frame.parent_hits))
        return ()

    def submit(self, payloads: list[bytes]) -> asyncio.Future[BatchResult]:
        """`evaluate` as a task: batches are out at once, and complete in submission order."""
        return asyncio.ensure_future(self.evaluate(payloads))

    async def export_state(self) -> bytes:
        """Every matcher's correlation shard, merged into one snapshot (kept for restarts)."""
        states = await asyncio.gather(
            *(self._request(w, rid := next(self._ids), Export(rid), State) for w in self.workers)
        )
        self.last_snapshot = merge_snapshots([state.snapshot for state in states])
        self.snapshot_at = time.time()
        return self.last_snapshot

    async def load(self, running: RuleSummary) -> RuleSummary:
        """The new rules' summary, loaded outside the supervisor (`workers/loader.py`); `reload` runs them."""
        fresh = await asyncio.to_thread(load_summary, self.build_evaluator, self.log_format, self.log_level)
        refuse_dropped_rules(running, fresh)
        self.pending = fresh
        return fresh

    async def reload(self) -> str | None:
        """Recompile in every matcher between batches; the first error (None when all succeeded).

        Hits name correlations by index, so no batch may be out while the rules change: new batches
        wait, the ones out finish. Then in two phases: every matcher builds the new rules beside the
        running ones; only if all succeeded, with the supervisor's fingerprint, do they all swap
        (keeping their windows) and the supervisor take the new correlation levels and keys.
        Otherwise every matcher drops what it built and the old rules stay, everywhere.
        """
        assert self._loop is not None
        fresh, self.pending = self.pending, None
        assert fresh is not None, "reload without a load"
        fingerprint = fresh.fingerprint
        gate = self._gate = self._loop.create_future()
        try:
            if self._stage_tail is not None:
                await self._stage_tail
            patience = START_TIMEOUT_S  # compiling takes as long as a start
            built = await asyncio.gather(
                *(self._request(w, i := next(self._ids), Reload(i), Reloaded, patience) for w in self.workers)
            )
            error = next((frame.error for frame in built if frame.error is not None), None)
            if error is None and any(frame.fingerprint != fingerprint for frame in built):
                error = "a matcher compiled other rules than the supervisor (the files changed meanwhile)"
            if error is not None:
                for worker in self.workers:
                    await worker.send(protocol.encode(Discard()))
                return error
            await asyncio.gather(
                *(self._request(w, rid := next(self._ids), Swap(rid), Swapped) for w in self.workers)
            )
            self.rules = fresh
            return None
        finally:
            self._gate = None
            gate.set_result(None)

    @property
    def windows(self) -> int:
        """Live correlation windows across the matchers (as of their last answers)."""
        return sum(w.windows for w in self.workers)

    @property
    def regex_timeouts(self) -> int:
        """Backtracking regex searches cut off in any matcher process, dead ones included."""
        return sum(w.retired_regex_timeouts + w.regex_timeouts for w in self.workers)

    @property
    def correlation_evictions(self) -> int:
        """Live correlation windows dropped at --max-state-entries by any matcher, dead ones included."""
        return sum(w.retired_evictions + w.evictions for w in self.workers)

    @property
    def group_entries_dropped(self) -> int:
        """Window entries dropped at --max-group-entries by any matcher, dead ones included."""
        return sum(w.retired_trimmed + w.trimmed for w in self.workers)

    def status(self) -> list[dict[str, Any]]:
        return [w.status() for w in self.workers]

    # ---- transport -------------------------------------------------------------------------

    async def _request(
        self,
        worker: _Worker,
        request_id: int,
        frame: ToMatcher,
        answer: type[A],
        payloads: list[bytes] | None = None,
        patience: float | None = None,
    ) -> A:
        """Send `frame` and wait for its answer, a frame of type `answer`."""
        assert self._loop is not None
        request = _Request(protocol.encode(frame), self._loop.create_future(), payloads, patience=patience)
        worker.hold(request_id, request)
        await worker.send(request.data)
        received = await request.future
        if not isinstance(received, answer):
            raise protocol.FrameError(
                f"matcher {worker.index} answered {type(frame).__name__} with {type(received).__name__}"
            )
        return received

    def _on_data(self, worker: _Worker) -> None:
        outbox = worker.outbox
        assert outbox is not None
        outbox.data.drain()
        while (data := outbox.recv()) is not None:
            worker.answered_at = worker.progress_at = time.monotonic()
            frame = protocol.decode_from_matcher(data)
            match frame:
                case Ready():
                    assert worker.ready is not None
                    if frame.fingerprint != self.rules.fingerprint:
                        log.error(
                            "matcher compiled other rules than the running ones (the rule files changed"
                            " since they were loaded); stopping it",
                            extra={
                                "matcher": worker.index,
                                "rules": frame.rules,
                                "correlations": frame.correlations,
                            },
                        )
                        worker.process.kill()  # a failed start: see _on_exit
                        continue
                    if not worker.ready.done():
                        worker.ready.set_result(frame)
                    worker.failed_starts = 0
                case Evaluating():
                    careful = worker.inflight.get(frame.batch_id)
                    if careful is not None:
                        careful.at = frame.position
                case (
                    Results(batch_id=request_id)
                    | Applied(round_id=request_id)
                    | State(request_id=request_id)
                    | Reloaded(request_id=request_id)
                    | Swapped(request_id=request_id)
                ):
                    request = worker.inflight.pop(request_id, None)
                    if request is not None and not request.future.done():
                        request.future.set_result(frame)
