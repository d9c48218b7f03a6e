"""The daemon's event loop: source -> input queue -> engine -> sink workers, with state, API and reload.

```
stdin / HTTP ──▶ input queue (bounded) ──▶ engine task ──▶ one queue + worker per sink ──▶ ack
                      │ full: back-pressure      │ unusable line             │ gave up
                      ▼                          ▼                           ▼
                 source waits              dead-letter queue ◀──────────────┘
```

All tasks run on one asyncio loop (uvloop when available). The engine is synchronous and runs a
batch at a time between awaits. Queues are bounded by `--buffer-size`, so a slow sink slows the
engine, which slows the source: memory stays bounded and nothing is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import signal
import stat
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from nats.errors import Error as NatsError

from rsigma.correlation.snapshot import SnapshotError, decode_snapshot
from rsigma.daemon.ack import AckToken, Delivery, InFlight, RawEvent
from rsigma.daemon.api import ApiServer
from rsigma.daemon.config import DaemonConfig
from rsigma.daemon.dlq import DeadLetterQueue
from rsigma.daemon.evaluate import TOO_DEEP_TO_WRITE, RuleKey, decode_event, result_lines
from rsigma.daemon.event_queue import EventQueue
from rsigma.daemon.metrics import Metrics
from rsigma.daemon.sinks import Publisher, SinkWorker, ThreadedWriter, open_sink
from rsigma.daemon.state import StateStore, decide_state_restore
from rsigma.evaluator import Evaluator
from rsigma.nats.auth import NatsAuth
from rsigma.nats.publisher import NatsPublisher
from rsigma.nats.source import NatsSource
from workers.metrics import PoolCollector
from workers.pool import WINDOW as POOL_WINDOW
from workers.pool import MatcherPool

log = logging.getLogger("rsigma.daemon")

READ_CHUNK_BYTES = 1 << 16
#: A second SIGINT this long after the first forces the exit (sooner, it is the same keypress seen twice).
FORCE_EXIT_AFTER_S = 0.5
#: How much of an oversized line the dead-letter entry keeps.
OVERSIZE_KEEP_BYTES = 4096
#: Events per batch handed to a matcher at most (fewer when fewer are waiting: latency stays low).
POOL_BATCH = 512
#: Seconds between polls of the NATS consumer's backlog.
CONSUMER_POLL_S = 2.0
#: The daemon stopped because it could not go on (a matcher pool that gave up, an engine error).
EXIT_FAILURE = 1


class Daemon:
    def __init__(self, config: DaemonConfig, evaluator: Evaluator, metrics: Metrics | None = None) -> None:
        self.config = config
        self.evaluator = evaluator
        self.metrics = metrics or Metrics()
        self.inflight = InFlight()
        self.input: EventQueue[RawEvent | None] = EventQueue(config.buffer_size)
        self.ready = False
        self.input_state = "starting"
        self.events_processed = 0
        self.detections = 0
        self.correlation_results = 0
        self.started = time.time()
        self._stop = asyncio.Event()
        self._stopping_since = 0.0
        self._source_done = asyncio.Event()
        self._failed = asyncio.Event()
        self.failure: BaseException | None = None  # why the daemon cannot go on (it exits 1)
        self._reload_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[Any]] = []
        self._by_rule: dict[tuple[str, str, str | None], Any] = {}  # bound label children, per rule
        self.store: StateStore | None = None
        self.sinks: list[SinkWorker] = []
        self.dlq: DeadLetterQueue | None = None
        self.api: ApiServer | None = None
        self.nats_source: NatsSource | None = None
        self.pool: MatcherPool | None = None

    # ---- startup ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Open everything that can fail at startup (ConfigError: exit 3) before any event is read."""
        cfg = self.config
        if cfg.state_db is not None:
            self.store = StateStore(cfg.state_db)
        dlq_sink = await open_publisher(cfg.dlq, "--dlq", cfg.nats_auth, self.metrics) if cfg.dlq else None
        self.dlq = DeadLetterQueue(dlq_sink, buffer_size=cfg.buffer_size, metrics=self.metrics)
        self.sinks = [
            SinkWorker(
                await open_publisher(url, "--output", cfg.nats_auth, self.metrics),
                buffer_size=cfg.buffer_size,
                retry_max=cfg.sink_retry_max,
                backoff_base_s=cfg.sink_backoff_base_s,
                backoff_max_s=cfg.sink_backoff_max_s,
                batch_max=cfg.sink_batch_max,
                dlq=self.dlq,
                metrics=self.metrics,
            )
            for url in cfg.outputs
        ]
        if cfg.input.startswith("nats://"):
            self.nats_source = await NatsSource.open(
                cfg.input,
                group=cfg.consumer_group,
                ack_wait_s=cfg.nats_ack_wait_s,
                max_deliver=cfg.nats_max_deliver,
                replay=cfg.replay,
                auth=cfg.nats_auth,
                metrics=self.metrics,
            )
        self.api = ApiServer(self)
        await self.api.start(cfg.api_addr)
        snapshot = self._saved_state()
        if cfg.workers > 0:
            self.pool = pool = MatcherPool(
                cfg.build_evaluator,
                cfg.workers,
                self.evaluator.correlation,
                fingerprint=self.evaluator.fingerprint(),
                max_event_bytes=cfg.max_event_bytes,
                include_event=cfg.include_event,
                log_format=cfg.log_format,
            )
            self.metrics.registry.register(PoolCollector(pool))
            self.metrics.regex_timeouts.read = lambda: pool.regex_timeouts
            pool.on_failure = self._fail
            await pool.start(snapshot)  # each matcher takes its shard, whatever N was before
            log.info("matcher pool started", extra={"workers": cfg.workers})
        elif snapshot is not None:
            kept = self.evaluator.correlation.import_state(snapshot)
            log.info("correlation state restored", extra={"windows": kept})
        self._rules_loaded(self.evaluator)
        self.ready = True

    def _saved_state(self) -> bytes | None:
        """The saved snapshot, if the restore decision says to use it (checked whole first)."""
        if self.store is None:
            return None
        saved = self.store.load()
        if saved is None:
            log.info("no saved correlation state")
            return None
        snapshot, position = saved
        if not decide_state_restore(self.config.restore_mode, self.config.replay, position):
            log.info("saved correlation state not restored", extra={"mode": self.config.restore_mode.value})
            return None
        try:
            decode_snapshot(snapshot)
        except SnapshotError as e:
            log.warning("saved correlation state ignored", extra={"error": str(e)})
            return None
        if self.config.workers > 0:
            log.info("correlation state restored", extra={"workers": self.config.workers})
        return snapshot

    def _rules_loaded(self, evaluator: Evaluator) -> None:
        self.metrics.detection_rules.set(len(evaluator.engine.rules))
        self.metrics.correlation_rules.set(len(evaluator.correlation.correlations))

    # ---- running ---------------------------------------------------------------------------

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._request_stop, sig)
        loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(self.reload("SIGHUP")))
        watching = bool(self.config.watch_paths) and self.config.reload_poll_s > 0
        baseline = self._file_stamps() if watching else {}  # before "daemon started" is announced
        await self.start()
        log.info(
            "daemon started",
            extra={
                "rules": len(self.evaluator.engine.rules),
                "correlations": len(self.evaluator.correlation.correlations),
                "input": self.config.input,
                "outputs": list(self.config.outputs),
                "api": self.api.address if self.api else None,
            },
        )
        loop = self._engine_loop() if self.pool is None else self._pool_loop(self.pool)
        engine = asyncio.create_task(loop, name="engine")
        engine.add_done_callback(self._engine_done)
        self._tasks += [asyncio.create_task(w.run(), name=f"sink-{w.sink.name}") for w in self.sinks]
        if self.dlq is not None and self.dlq.sink is not None:
            self._tasks.append(asyncio.create_task(self.dlq.run(), name="dlq"))
        if self.store is not None or self.pool is not None:  # a pool keeps one to restart matchers from
            self._tasks.append(asyncio.create_task(self._save_periodically(), name="state"))
        if self.nats_source is not None:
            self._tasks.append(asyncio.create_task(self._poll_consumer(self.nats_source), name="consumer"))
        if watching:
            self._tasks.append(asyncio.create_task(self._watch_files(baseline), name="watch"))
        source = asyncio.create_task(self._source(), name="source")
        stop = asyncio.create_task(self._stop.wait())
        done_reading = asyncio.create_task(self._source_done.wait())
        failed = asyncio.create_task(self._failed.wait())
        await asyncio.wait([stop, done_reading, failed], return_when=asyncio.FIRST_COMPLETED)
        source.cancel()
        await asyncio.gather(source, return_exceptions=True)
        if not self._failed.is_set():
            await self._drain(engine)
        stop.cancel()
        done_reading.cancel()
        failed.cancel()
        ok = not self._failed.is_set()  # it may also have failed while draining
        await self._close(engine, save=ok)
        return 0 if ok else EXIT_FAILURE

    def _engine_done(self, engine: asyncio.Task[None]) -> None:
        if not engine.cancelled() and (error := engine.exception()) is not None:
            log.critical("the engine stopped on an error", exc_info=error)
            self._fail(error)

    def _fail(self, error: BaseException) -> None:
        """The daemon cannot go on: stop reading and exit 1 without a drain or a state save.

        Unacknowledged JetStream events are redelivered to the next start, and the last state saved
        is what it restores: nothing acknowledged is lost."""
        if self.failure is None:
            self.failure = error
            self.ready = False
            self._failed.set()

    def _request_stop(self, sig: signal.Signals) -> None:
        """The first SIGTERM/SIGINT drains. A second SIGINT (Ctrl+C again, not a signal delivered
        twice to the process group at once) exits without waiting."""
        now = time.monotonic()
        if not self._stop.is_set():
            log.info("shutdown signal received, draining", extra={"signal": sig.name})
            self._stopping_since = now
            self._stop.set()
        elif sig == signal.SIGINT and now - self._stopping_since > FORCE_EXIT_AFTER_S:
            log.warning("second interrupt: exiting without waiting for the drain")
            os._exit(1)

    async def _source(self) -> None:
        if self.config.input == "stdin":
            await self._read_stdin()
            self._source_done.set()
        elif self.nats_source is not None:
            await self._read_nats(self.nats_source)
        else:  # http: events arrive through the API; run until stopped
            self.input_state = "listening"
            await self._stop.wait()

    async def _read_nats(self, source: NatsSource) -> None:
        """Each message's token acks it when done, or naks it while JetStream can still redeliver it
        (a sink gave up); the last delivery dead-letters instead (see `JetStreamToken`)."""
        async for events in source.events(self.inflight):
            await self._queue(events)

    async def submit(self, payload: bytes) -> None:
        """Queue one raw line for the engine; waits (back-pressure) while the queue is full."""
        await self._queue([RawEvent(payload, AckToken(self.inflight))])

    async def _queue(self, events: list[RawEvent | None]) -> None:
        """Hand events to the engine in order; waits (back-pressure) while the queue is full."""
        if await self.input.put(events):
            self.metrics.back_pressure.inc()

    async def _stdin_chunks(self) -> AsyncIterator[bytes]:
        """Chunks of stdin: through the event loop for pipes, sockets and terminals; in a worker
        thread for a regular file (event loops cannot poll files, and reading one never blocks long).
        """
        fd = sys.stdin.fileno()
        if stat.S_ISREG(os.fstat(fd).st_mode):
            while chunk := await asyncio.to_thread(os.read, fd, READ_CHUNK_BYTES):
                yield chunk
            return
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=READ_CHUNK_BYTES)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while chunk := await reader.read(READ_CHUNK_BYTES):
            yield chunk

    async def _read_stdin(self) -> None:
        """Split stdin into lines; a line over --max-event-bytes is cut short and dead-lettered."""
        self.input_state = "open"
        limit = self.config.max_event_bytes
        keep = min(OVERSIZE_KEEP_BYTES, limit)  # how much of an oversized line its DLQ entry shows
        carry = b""
        dropped = 0  # bytes of an oversized line not kept
        async for chunk in self._stdin_chunks():
            if dropped:
                end = chunk.find(b"\n")
                if end < 0:
                    dropped += len(chunk)
                    continue
                await self._oversized(carry, dropped + end)
                carry, dropped, chunk = b"", 0, chunk[end + 1 :]
            lines = (carry + chunk if carry else chunk).split(b"\n")
            carry = lines.pop()
            inflight = self.inflight
            events: list[RawEvent | None] = []
            for line in lines:
                if len(line) > limit:
                    await self._queue(events)
                    events = []
                    await self._oversized(line[:keep], len(line) - keep)
                else:
                    events.append(RawEvent(line, AckToken(inflight)))
            if events:
                await self._queue(events)
            if len(carry) > limit:
                dropped = len(carry) - keep
                carry = carry[:keep]
        if dropped:
            await self._oversized(carry, dropped)
        elif carry:
            await self.submit(carry)
        self.input_state = "closed"
        await self.input.put([None])  # end of input

    async def _oversized(self, kept: bytes, dropped: int) -> None:
        self.metrics.parse_errors.inc()
        await self._dead_letter(
            clipped_text(kept, dropped),
            f"line of {len(kept) + dropped} bytes exceeds --max-event-bytes {self.config.max_event_bytes}",
            AckToken(self.inflight),
        )

    def _original(self, payload: bytes) -> str:
        """The payload for its dead-letter entry; an oversized one (a message) is cut like a line is,
        so the entry stays small enough for any DLQ, a NATS one with its payload limit included."""
        limit = self.config.max_event_bytes
        if len(payload) <= limit:
            return payload_text(payload)
        keep = min(OVERSIZE_KEEP_BYTES, limit)
        return clipped_text(payload[:keep], len(payload) - keep)

    async def _dead_letter(self, original: str, error: str, token: AckToken) -> None:
        assert self.dlq is not None
        await self.dlq.put(original, error, token, token.ack)

    async def _engine_loop(self) -> None:
        batch_size = max(1, self.config.batch_size)
        metrics = self.metrics
        while True:
            batch = await self.input.get(batch_size)
            metrics.input_queue_depth.set(self.input.qsize())
            metrics.batch_size.observe(len(batch))
            before = self.events_processed
            started = time.perf_counter()
            for raw in batch:
                if raw is None:
                    return
                outcome = self._process(raw)
                if outcome is not None:
                    await self._dispatch(raw, outcome)
            evaluated = self.events_processed - before
            if evaluated:
                # One observation per step: the step's time per event (cheaper than one per event).
                metrics.processing_seconds.observe((time.perf_counter() - started) / evaluated)
                metrics.events_processed.inc(evaluated)
            metrics.state_entries.set(len(self.evaluator.correlation.state))

    async def _dispatch(self, raw: RawEvent, outcome: Delivery | str) -> None:
        """A delivery goes to every sink's queue (waiting while one is full); a reason to the DLQ."""
        if isinstance(outcome, Delivery):
            for worker in self.sinks:
                try:
                    worker.queue.put_nowait(outcome)
                except asyncio.QueueFull:
                    await worker.queue.put(outcome)
        else:
            await self._dead_letter(self._original(raw.payload), outcome, raw.token)

    async def _pool_loop(self, pool: MatcherPool) -> None:
        """Batches go to the matchers while earlier ones are still out; outcomes come back in order."""
        limit = max(self.config.batch_size, POOL_BATCH)
        submitted: asyncio.Queue[tuple[list[RawEvent], asyncio.Future[Any]] | None] = asyncio.Queue(
            maxsize=pool.n * POOL_WINDOW
        )
        completer = asyncio.create_task(self._complete(submitted), name="pool-results")
        try:
            while True:
                batch = await self.input.get(limit)
                events = list(itertools.takewhile(lambda raw: raw is not None, batch))
                if events:
                    self.metrics.batch_size.observe(len(events))
                    evaluation = asyncio.ensure_future(pool.evaluate([raw.payload for raw in events]))
                    await submitted.put((events, evaluation))  # type: ignore[arg-type]
                self.metrics.input_queue_depth.set(self.input.qsize())
                if len(events) < len(batch):  # the end-of-input marker
                    break
            await submitted.put(None)
            await completer
        finally:
            completer.cancel()

    async def _complete(self, submitted: asyncio.Queue[Any]) -> None:
        metrics = self.metrics
        while (item := await submitted.get()) is not None:
            events, evaluation = item
            outcomes, evaluated, busy_s = await evaluation
            self.events_processed += evaluated
            metrics.events_processed.inc(evaluated)
            if evaluated:
                metrics.processing_seconds.observe(busy_s / evaluated)
            metrics.state_entries.set(self.pool.windows if self.pool is not None else 0)
            for raw, outcome in zip(events, outcomes, strict=True):
                if outcome is None:
                    raw.token.ack()
                elif isinstance(outcome, str):
                    metrics.parse_errors.inc()
                    await self._dispatch(raw, outcome)
                else:
                    lines, keys = outcome
                    self.count_results([tuple(k) for k in keys])  # type: ignore[misc]
                    await self._dispatch(raw, Delivery(lines, raw.token, len(self.sinks)))

    def _process(self, raw: RawEvent) -> Delivery | str | None:
        """Evaluate one line: a Delivery of its results, a dead-letter reason, or None (nothing to send)."""
        event = decode_event(raw.payload, self.config.max_event_bytes)
        if isinstance(event, str):
            self.metrics.parse_errors.inc()
            return event
        try:
            results = self.evaluator.process(event)
        except RecursionError:
            self.metrics.parse_errors.inc()
            return "event nested too deeply to evaluate"
        self.events_processed += 1
        if not results:
            raw.token.ack()
            return None
        try:
            lines, keys = result_lines(results, self.config.include_event)
        except RecursionError:
            self.metrics.parse_errors.inc()
            return TOO_DEEP_TO_WRITE
        self.count_results(keys)
        return Delivery(lines=lines, token=raw.token, pending=len(self.sinks))

    def count_results(self, keys: list[RuleKey]) -> None:
        """Result metrics and status counters, by rule."""
        for key in keys:
            child = self._by_rule.get(key)
            if child is None:
                if key[2] is None:
                    child = self.metrics.detections_by_rule.labels(key[0], key[1])
                else:
                    child = self.metrics.correlations_by_rule.labels(*key)
                self._by_rule[key] = child
            child.inc()
            if key[2] is None:
                self.detections += 1
                self.metrics.detection_matches.inc()
            else:
                self.correlation_results += 1
                self.metrics.correlation_matches.inc()

    # ---- shutdown --------------------------------------------------------------------------

    async def _drain(self, engine: asyncio.Task[None]) -> None:
        """Finish queued events and deliveries within --drain-timeout."""
        self.ready = False  # intake stops: the ingest handler answers 503 from its next line on
        deadline = time.monotonic() + self.config.drain_timeout
        try:
            await asyncio.wait_for(self._wait_drained(engine), timeout=self.config.drain_timeout)
        except TimeoutError:
            log.warning("drain timeout exceeded", extra={"unacknowledged_events": self.inflight.count})
        remaining = max(0.0, deadline - time.monotonic())
        if self.inflight.count:
            log.warning(
                "events not acknowledged at shutdown",
                extra={
                    "unacknowledged_events": self.inflight.count,
                    "drain_seconds_left": round(remaining, 3),
                },
            )

    async def _close(self, engine: asyncio.Task[None], *, save: bool) -> None:
        """Stop every task, save state (after a drain), and close the pool, outputs, API and input."""
        engine.cancel()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(engine, *self._tasks, return_exceptions=True)
        if save:
            try:
                await self.save_state()
            except Exception:
                log.exception("saving correlation state at shutdown failed")
        if self.pool is not None:
            await self.pool.stop()
        for worker in self.sinks:
            await worker.sink.aclose()
        if self.dlq is not None and self.dlq.sink is not None:
            await self.dlq.sink.aclose()
        if self.api is not None:
            await self.api.stop()
        if self.nats_source is not None:
            await self.nats_source.aclose()
        if self.store is not None:
            self.store.close()
        if self.failure is None:
            log.info("daemon stopped", extra={"events_processed": self.events_processed})
        else:
            log.critical(
                "daemon stopped after a failure; unacknowledged events stay with their source",
                extra={
                    "error": str(self.failure),
                    "events_processed": self.events_processed,
                    "unacknowledged_events": self.inflight.count,
                },
            )

    async def _wait_drained(self, engine: asyncio.Task[None]) -> None:
        if not engine.done():
            await self.input.put([None])  # after everything already queued or waiting to be
        await engine
        for worker in self.sinks:
            await worker.queue.join()
        if self.dlq is not None and self.dlq.sink is not None:
            await self.dlq.queue.join()

    # ---- state and reload ------------------------------------------------------------------

    async def save_state(self) -> None:
        """Snapshot the correlation state: into the state database, and with a pool also in memory,
        where a restarted matcher gets its shard back from (with or without --state-db)."""
        if self.pool is not None:
            snapshot = await self.pool.export_state()
        elif self.store is not None:
            snapshot = self.evaluator.correlation.export_state()
        else:
            return
        if self.store is not None:
            position = self.nats_source.floor.floor if self.nats_source is not None else None
            self.store.save(snapshot, position)

    async def _poll_consumer(self, source: NatsSource) -> None:
        """The consumer's backlog for status and metrics; a failed poll (e.g. while disconnected) waits."""
        while True:
            try:
                info = await source.poll_info()
            except (TimeoutError, NatsError) as e:
                log.debug("consumer info unavailable", extra={"error": str(e) or type(e).__name__})
            else:
                self.metrics.nats_consumer_pending.set(info["pending"])
                self.metrics.nats_ack_pending.set(info["ack_pending"])
            await asyncio.sleep(CONSUMER_POLL_S)

    async def _save_periodically(self) -> None:
        while True:
            await asyncio.sleep(self.config.state_save_interval)
            try:
                await self.save_state()
            except Exception:
                log.exception("saving correlation state failed")

    async def reload(self, trigger: str) -> bool:
        """Compile the rules beside the running ones and swap them in; the old ones stay on failure."""
        async with self._reload_lock:
            self.metrics.reloads.inc()
            try:
                fresh = await asyncio.to_thread(self.config.build_evaluator)
            except Exception as e:
                self.metrics.reloads_failed.inc()
                log.error(
                    "reload failed; keeping the loaded rules", extra={"trigger": trigger, "error": str(e)}
                )
                return False
            if self.pool is not None:
                error = await self.pool.reload(fresh.correlation, fresh.fingerprint())
                if error is not None:
                    self.metrics.reloads_failed.inc()
                    log.error("reload failed in a matcher; keeping the loaded rules", extra={"error": error})
                    return False
            else:
                fresh.correlation.import_state(self.evaluator.correlation.export_state())
            self.evaluator = fresh
            self._rules_loaded(fresh)
            log.info(
                "rules reloaded",
                extra={
                    "trigger": trigger,
                    "rules": len(fresh.engine.rules),
                    "correlations": len(fresh.correlation.correlations),
                },
            )
            return True

    def _file_stamps(self) -> dict[Path, tuple[int, int]]:
        stamps: dict[Path, tuple[int, int]] = {}
        for root in self.config.watch_paths:
            paths = (
                [root] if root.is_file() else [p for p in root.rglob("*") if p.suffix in (".yml", ".yaml")]
            )
            for p in paths:
                with contextlib.suppress(OSError):
                    st = p.stat()
                    stamps[p] = (st.st_mtime_ns, st.st_size)
        return stamps

    async def _watch_files(self, seen: dict[Path, tuple[int, int]]) -> None:
        """Poll the rule and pipeline files; `seen` is their state when the daemon started."""
        while True:
            await asyncio.sleep(self.config.reload_poll_s)
            now = await asyncio.to_thread(self._file_stamps)
            if now != seen:
                seen = now
                await self.reload("file change")

    # ---- status ----------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        return {
            "status": "running" if self.ready else "loading",
            "detection_rules": len(self.evaluator.engine.rules),
            "correlation_rules": len(self.evaluator.correlation.correlations),
            "correlation_state_entries": self.pool.windows
            if self.pool is not None
            else len(self.evaluator.correlation.state),
            "events_processed": self.events_processed,
            "detection_matches": self.detections,
            "correlation_matches": self.correlation_results,
            "events_in_flight": self.inflight.count,
            "uptime_seconds": round(time.time() - self.started, 3),
            "inputs": {
                self.config.input: self.nats_source.watch.state if self.nats_source else self.input_state
            },
            **({"nats": self._nats_status()} if self._nats_watched() else {}),
            **({"workers": self.pool.status()} if self.pool is not None else {}),
        }

    def _nats_watched(self) -> bool:
        return self.nats_source is not None or any(isinstance(w.sink, NatsPublisher) for w in self.sinks)

    def _nats_status(self) -> dict[str, Any]:
        """Each NATS connection's state and reconnects; for the input also the consumer's backlog."""
        publishers = [w.sink for w in self.sinks if isinstance(w.sink, NatsPublisher)]
        if self.dlq is not None and isinstance(self.dlq.sink, NatsPublisher):
            publishers.append(self.dlq.sink)
        status: dict[str, Any] = {"outputs": {p.watch.role: p.watch.status() for p in publishers}}
        if self.nats_source is not None:
            status["input"] = self.nats_source.status()
        return status


async def open_publisher(url: str, flag: str, auth: NatsAuth, metrics: Metrics | None = None) -> Publisher:
    """A sink by URL scheme: `nats://` publishes to JetStream; stdout and files write lines."""
    if url.startswith("nats://"):
        return await NatsPublisher.open(url, flag, auth=auth, metrics=metrics)
    return ThreadedWriter(open_sink(url, flag))


def payload_text(payload: bytes) -> str:
    """The raw line as a string for a dead-letter entry (invalid UTF-8 replaced, never dropped)."""
    return payload.decode("utf-8", "replace")


def clipped_text(kept: bytes, dropped: int) -> str:
    """What a dead-letter entry keeps of an oversized event: its start, and how much was left out."""
    return payload_text(kept) + f"...[{dropped} more bytes]"


def run_daemon(config: DaemonConfig, evaluator: Evaluator) -> int:
    """Run on uvloop when it is installed; returns the exit code."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on POSIX
        return asyncio.run(Daemon(config, evaluator).run())
    return uvloop.run(Daemon(config, evaluator).run())
