"""The daemon: a source, an evaluation backend and sinks, wired together, with acks, state, reload.

```
source ──emit──▶ input queue ──▶ submit ──▶ backend ──▶ complete ──▶ sink queues ──▶ sink workers
(stdin, HTTP,    (bounded:          (in process, or a pool      (in order)      (stdout, file,     │
 NATS)            back-pressure)     of matcher processes)          │            NATS)            │
                                                                    ▼                             ▼
                                               unusable event ──▶ dead-letter queue ◀── a sink gave up
```

Every event carries an ack token from its source; the token resolves when every sink has its
results, or the DLQ has the event (see `ack.py`). All of it runs on one asyncio loop (uvloop); the
queues are bounded by `--buffer-size`, so a slow sink slows the engine, which slows the source:
memory stays bounded and nothing is dropped. The backend is the only thing that differs between
`--workers 0` and a pool (see `backend.py`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sqlite3
import time
from collections.abc import Coroutine
from typing import Any, Final

from rsigma.cluster.membership import Membership
from rsigma.cluster.records import MembershipError
from rsigma.daemon.ack import InFlight, RawEvent
from rsigma.daemon.api import ApiServer
from rsigma.daemon.backend import Backend, InlineBackend, open_backend
from rsigma.daemon.cluster import ClusterNode, join_cluster, refuse_chains, refuse_for_cluster
from rsigma.daemon.config import DaemonConfig
from rsigma.daemon.dlq import DeadLetterQueue
from rsigma.daemon.evaluation_loop import EvaluationLoop
from rsigma.daemon.event_queue import EventQueue
from rsigma.daemon.memory import return_large_blocks
from rsigma.daemon.metrics import Metrics
from rsigma.daemon.sinks import Sink, open_sink
from rsigma.daemon.sinks.worker import SinkWorker
from rsigma.daemon.sources import NatsSource, Source, open_source
from rsigma.daemon.state import RestoreMode, StateStore, restorable_snapshot
from rsigma.daemon.systemd import Notifier
from rsigma.daemon.watch import FileWatcher
from rsigma.evaluator import Evaluator, RuleSummary
from rsigma.exit_codes import EXIT_CONFIG_ERROR, EXIT_FAILURE
from rsigma.nats.connection import ConnectWait
from workers.cluster_pool import ClusterPool

log = logging.getLogger("rsigma.daemon")

#: A second SIGINT this long after the first forces the exit (sooner, it is the same keypress seen twice).
FORCE_EXIT_AFTER_S: Final = 0.5
#: After the drain, collecting the correlation state to save may take this long; past it the state is
#: not saved (a hung matcher must not hold up the exit) and the last saved snapshot stays.
STATE_EXPORT_TIMEOUT_S: Final = 5.0
#: The phase of a daemon that takes events; any other phase says why it does not (`/readyz`).
RUNNING: Final = "running"


class Daemon:
    def __init__(
        self,
        config: DaemonConfig,
        rules: RuleSummary,
        evaluator: Evaluator | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        """`rules`: the running rules, as the API lists them; `evaluator`: their compiled form, for
        `--workers 0` only (a pool's matchers compile their own)."""
        self.config = config
        self.rules = rules
        self._evaluator = evaluator  # handed to the in-process backend at start
        self.metrics = metrics or Metrics()
        self.inflight = InFlight()
        self.input: EventQueue[RawEvent | None] = EventQueue(config.buffer_size)
        self.phase = "starting"  # RUNNING, or what the daemon is doing instead (see `_set_phase`)
        self.notifier = Notifier()
        self.started = time.time()
        self.failure: BaseException | None = None  # why the daemon cannot go on (it exits 1)
        self._stop = asyncio.Event()
        self._stopping_since = 0.0
        self._failed = asyncio.Event()
        self._reload_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[Any]] = []
        self.watcher = FileWatcher(config.watch_paths, config.reload_poll_s)
        self.store: StateStore | None = None
        self.sinks: list[SinkWorker] = []
        self.dlq = DeadLetterQueue(
            None,
            buffer_size=config.buffer_size,
            metrics=self.metrics,
            backoff_base_s=config.sink_backoff_base_s,
            backoff_max_s=config.sink_backoff_max_s,
        )
        self.source: Source | None = None
        self.backend: Backend | None = None
        self.cluster: ClusterNode | None = None  # --cluster: correlation shared with other daemons
        self.membership: Membership | None = None  # --cluster: who owns which partition
        self.api = ApiServer(self)

    async def start(self) -> bool:
        """Open everything that can fail at startup (ConfigError: exit 3) before any event is read.

        The API comes first, so that `/healthz` answers and `/readyz` says why the daemon is not ready
        while it waits for a NATS server. A stop asked for during that wait ends it: False."""
        cfg, metrics = self.config, self.metrics
        if cfg.cluster is not None:
            assert self._evaluator is not None  # built by the CLI for --cluster, pool or not
            refuse_chains(self._evaluator.correlation, cfg.cluster)
        if cfg.state_db is not None:
            self.store = StateStore(cfg.state_db, move_damaged=cfg.restore_mode is RestoreMode.CLEAR)
        await self.api.start(cfg.api_addr)
        log.info("API listening", extra={"api": self.api.address})
        if not await self._unless_stopped(self._open_io()):
            return False
        self._set_phase("starting the evaluation")
        snapshot = restorable_snapshot(self.store, cfg.restore_mode, cfg.replay) if self.store else None
        self.backend = backend = open_backend(cfg, self._evaluator, self.rules, metrics)
        self._evaluator = None  # the backend's from now on (it swaps it at a reload)
        backend.on_failure = self._fail
        metrics.regex_timeouts.read = lambda: backend.regex_timeouts
        await backend.start(snapshot)
        if cfg.cluster is not None:
            self._set_phase(f"joining --cluster {cfg.cluster}")
            assert isinstance(self.source, NatsSource)  # the CLI requires a nats:// input
            assert isinstance(backend, InlineBackend | ClusterPool)  # they return the hits
            self.membership, self.cluster = await join_cluster(
                cfg,
                self.source,
                self.sinks,
                self.inflight,
                metrics,
                self.api.address,
                lambda: backend.correlation,  # the running rules' (a reload keeps the windows)
            )
        self.metrics.rules_loaded(self.rules)
        self.phase = RUNNING
        return True

    async def _open_io(self) -> None:
        """The input, the DLQ and the outputs, in that order; NATS connections wait for their server
        as --nats-connect-timeout says."""
        cfg, metrics = self.config, self.metrics
        wait = ConnectWait(cfg.nats_connect_timeout_s, self._nats_retrying)
        self._set_phase(f"opening --input {cfg.input}")
        self.source = await open_source(cfg, metrics, wait)
        if cfg.dlq:
            self._set_phase(f"opening --dlq {cfg.dlq}")
            self.dlq.sink = await open_sink(cfg.dlq, "--dlq", cfg.nats_auth, metrics, wait)
        for url in cfg.outputs:
            self._set_phase(f"opening --output {url}")
            sink = await open_sink(url, "--output", cfg.nats_auth, metrics, wait, pretty=cfg.pretty)
            self.sinks.append(SinkWorker(sink, cfg, self.dlq, metrics))

    def _nats_retrying(self, attempt: int, error: str) -> None:
        self._set_phase(f"waiting for the NATS server (attempt {attempt} failed): {error}")

    def _set_phase(self, phase: str) -> None:
        """What the daemon is doing while not ready: `/readyz`'s reason and the systemd status."""
        self.phase = phase
        self.notifier.status(phase)

    @property
    def ready(self) -> bool:
        return self.phase == RUNNING

    @property
    def all_sinks(self) -> list[Sink]:
        """The outputs' sinks and the DLQ's, if there is one."""
        return [w.sink for w in self.sinks] + ([self.dlq.sink] if self.dlq.sink is not None else [])

    async def _unless_stopped(self, work: Coroutine[Any, Any, None]) -> bool:
        """Run `work` to its end (its errors propagate), or cancel it on a stop request: False."""
        task = asyncio.ensure_future(work)
        stop = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
        if task.done():
            task.result()
            return True
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return False

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._request_stop, sig)
        loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(self.reload("SIGHUP")))
        self._tasks.append(asyncio.create_task(self.notifier.watchdog(), name="systemd-watchdog"))
        try:
            started = await self.start()
        except BaseException:
            await self._cancel_tasks()
            await self._close_io()
            raise
        if not started:
            self.notifier.stopping()
            await self._cancel_tasks()
            await self._close_io()
            log.info("stopped before startup finished: no event was read")
            return 0
        assert self.source is not None and self.backend is not None
        log.info(
            "daemon started",
            extra={
                "rules": len(self.rules.rules),
                "correlations": self.rules.correlations,
                "input": self.config.input,
                "outputs": list(self.config.outputs),
                "api": self.api.address,
            },
        )
        self.notifier.ready()
        store_hits = self.cluster.store if self.cluster is not None else None
        evaluation = EvaluationLoop(
            self.input, self.backend, self.sinks, self.dlq, self.metrics, self.config, store_hits
        )
        engine = self._essential(evaluation.run(), "engine")
        if self.cluster is not None:
            self._tasks.append(self._essential(self.cluster.run(), "cluster"))
        if self.membership is not None:
            self._tasks.append(self._essential(self._membership_lost(), "cluster membership"))
        self._tasks += [asyncio.create_task(w.run(), name=f"sink-{w.sink.name}") for w in self.sinks]
        if self.dlq.sink is not None:
            self._tasks.append(asyncio.create_task(self.dlq.run(), name="dlq"))
        if self.store is not None or self.backend.keeps_snapshots:
            self._tasks.append(asyncio.create_task(self._save_periodically(), name="state"))
        if self.watcher.enabled:
            self._tasks.append(asyncio.create_task(self.watcher.run(self.reload), name="watch"))
        reading = self._essential(self._read(self.source), "source")
        stop = asyncio.create_task(self._stop.wait())
        failed = asyncio.create_task(self._failed.wait())
        await asyncio.wait([stop, reading, failed], return_when=asyncio.FIRST_COMPLETED)
        self.notifier.stopping()
        reading.cancel()
        await asyncio.gather(reading, return_exceptions=True)
        if not self._failed.is_set():
            await self._drain(engine)
        stop.cancel()
        failed.cancel()
        ok = not self._failed.is_set()  # it may also have failed while draining
        await self._close(engine, save=ok)
        if ok:
            return 0
        return EXIT_CONFIG_ERROR if isinstance(self.failure, MembershipError) else EXIT_FAILURE

    async def _membership_lost(self) -> None:
        """Raise what ended this daemon's membership (another live daemon took its member id): the
        daemon stops and exits 3, as it would have had that been found at startup."""
        assert self.membership is not None and self.membership.failure is not None
        await self.membership.failure

    def _essential(self, work: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        """A task the daemon cannot go on without: if it stops on an error, so does the daemon."""
        task = asyncio.create_task(work, name=name)

        def done(task: asyncio.Task[None]) -> None:
            if not task.cancelled() and (error := task.exception()) is not None:
                log.critical(f"the {name} stopped on an error", exc_info=error)
                self._fail(error)

        task.add_done_callback(done)
        return task

    def _fail(self, error: BaseException) -> None:
        """The daemon cannot go on: stop reading and exit 1 without a drain or a state save.

        Unacknowledged JetStream events are redelivered to the next start, and the last state saved
        is what it restores: nothing acknowledged is lost."""
        if self.failure is None:
            self.failure = error
            self.phase = f"failed: {error}"
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
            os._exit(EXIT_FAILURE)

    # ---- events ----------------------------------------------------------------------------

    async def _read(self, source: Source) -> None:
        await source.run(self._emit, self.inflight)
        await self.input.put([None])  # end of input: the engine stops after what is queued

    async def _emit(self, events: list[RawEvent]) -> None:
        """A source's batch into the input queue, in order (waiting while it is full); an event the
        source could not take whole goes to the DLQ instead."""
        if any(raw.error is not None for raw in events):
            for raw in events:
                if raw.error is not None:
                    self.metrics.parse_errors.inc()
                    await self.dlq.put(
                        raw.payload.decode("utf-8", "replace"), raw.error, raw.token, raw.token.ack
                    )
            events = [raw for raw in events if raw.error is None]
        if await self.input.put(events):  # type: ignore[arg-type]
            self.metrics.back_pressure.inc()

    # ---- shutdown --------------------------------------------------------------------------

    async def _drain(self, engine: asyncio.Task[None]) -> None:
        """Finish queued events and deliveries within --drain-timeout."""
        self.phase = "shutting down"  # intake stops: the ingest handler answers 503 from its next line on
        deadline = time.monotonic() + self.config.drain_timeout
        try:
            await asyncio.wait_for(self._wait_drained(engine), timeout=self.config.drain_timeout)
        except TimeoutError:
            log.warning("drain timeout exceeded", extra={"unacknowledged_events": self.inflight.count})
        if self.inflight.count:
            log.warning(
                "events not acknowledged at shutdown",
                extra={
                    "unacknowledged_events": self.inflight.count,
                    "drain_seconds_left": round(max(0.0, deadline - time.monotonic()), 3),
                },
            )

    async def _wait_drained(self, engine: asyncio.Task[None]) -> None:
        if not engine.done():
            await self.input.put([None])  # after everything already queued or waiting to be
        await engine
        for worker in self.sinks:
            await worker.queue.join()
        if self.cluster is not None:  # correlation results of the events just acked, then to the sinks
            await self.cluster.finish(self.config.drain_timeout / 2)
            for worker in self.sinks:
                await worker.queue.join()
        if self.dlq.sink is not None:
            await self.dlq.queue.join()

    async def _close(self, engine: asyncio.Task[None], *, save: bool) -> None:
        """Stop every task, save state (after a drain), and close the backend, outputs, API and input."""
        await self._cancel_tasks(engine)
        if save:
            await self._save_at_shutdown()
        if self.backend is not None:
            await self.backend.stop()
        await self._close_io()
        figures = {"events_processed": self.metrics.evaluated}
        if self.failure is None:
            log.info("daemon stopped", extra=figures)
        else:
            log.critical(
                "daemon stopped after a failure; unacknowledged events stay with their source",
                extra={"error": str(self.failure), **figures, "unacknowledged_events": self.inflight.count},
            )

    async def _cancel_tasks(self, *more: asyncio.Task[Any]) -> None:
        for task in (*more, *self._tasks):
            task.cancel()
        await asyncio.gather(*more, *self._tasks, return_exceptions=True)

    async def _close_io(self) -> None:
        """Close the outputs, the API, the input and the state database: whatever startup opened."""
        for sink in self.all_sinks:
            await sink.aclose()
        await self.api.stop()
        if self.cluster is not None:  # on the input's connection: closed before it
            await self.cluster.aclose()
        if self.membership is not None:  # its key removed: the others take its partitions at once
            await self.membership.stop()
        if self.source is not None:
            await self.source.aclose()
        if self.store is not None:
            self.store.close()
        self.notifier.close()

    # ---- state and reload ------------------------------------------------------------------

    async def save_state(self) -> None:
        """Snapshot the correlation state into the state database; a pool also keeps it in memory,
        where a restarted matcher gets its shard back from (with or without --state-db). The write runs
        in a thread: a large snapshot, or a database another process keeps busy, does not stall events."""
        assert self.backend is not None
        snapshot = await self.backend.export_state()
        if self.store is not None:
            position = self.source.position if self.source is not None else None
            await asyncio.to_thread(self.store.save, snapshot, position)

    async def _save_at_shutdown(self) -> None:
        """Save the state, within `STATE_EXPORT_TIMEOUT_S`: a backend that cannot export it all by then
        (a matcher that stopped answering) saves nothing, rather than a snapshot missing its shards."""
        try:
            await asyncio.wait_for(self._save_logged("shutdown"), STATE_EXPORT_TIMEOUT_S)
        except TimeoutError:
            assert self.backend is not None
            log.warning(
                "correlation state not saved at shutdown: the evaluation backend did not export it in"
                " time; the last saved snapshot is kept",
                extra={
                    "timeout_seconds": STATE_EXPORT_TIMEOUT_S,
                    "matchers_not_answering": [
                        w["index"] for w in self.backend.status() if w["in_flight"] > 0
                    ],
                },
            )

    async def _save_periodically(self) -> None:
        while True:
            await asyncio.sleep(self.config.state_save_interval)
            await self._save_logged("periodic")

    async def _save_logged(self, when: str) -> None:
        """A failed save is counted and logged, and the daemon goes on with its state in memory (the
        next save tries again): losing a save costs less than stopping detection."""
        try:
            await self.save_state()
        except sqlite3.Error as e:  # a damaged page, a full disk: the reason is the whole story
            self.metrics.state_save_failures.inc()
            state_db = str(self.store.path) if self.store is not None else None
            log.error(
                "saving correlation state failed", extra={"save": when, "state_db": state_db, "error": str(e)}
            )
        except Exception:
            self.metrics.state_save_failures.inc()
            log.exception("saving correlation state failed", extra={"save": when})

    async def reload(self, trigger: str) -> bool:
        """Compile the rules beside the running ones and swap them in; the old ones stay on failure."""
        async with self._reload_lock:
            self.metrics.reloads.inc()
            try:
                if self.backend is None:
                    error = "not started"
                else:
                    fresh = await self.backend.load(self.rules)
                    if self.config.cluster is not None:
                        loaded = self.backend
                        assert isinstance(loaded, InlineBackend | ClusterPool)
                        refuse_for_cluster(loaded.pending_correlation, self.config.cluster, self.cluster)
                    error = await self.backend.reload()
            except Exception as e:
                error = str(e)
            if error is not None:
                self.metrics.reloads_failed.inc()
                log.error(
                    "reload failed; keeping the loaded rules", extra={"trigger": trigger, "error": error}
                )
                return False
            self.rules = fresh
            self.metrics.rules_loaded(fresh)
            log.info(
                "rules reloaded",
                extra={"trigger": trigger, "rules": len(fresh.rules), "correlations": fresh.correlations},
            )
            return True


def run_daemon(config: DaemonConfig, rules: RuleSummary, evaluator: Evaluator | None) -> int:
    """Run on uvloop when it is installed; returns the exit code."""
    return_large_blocks()
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on POSIX
        return asyncio.run(Daemon(config, rules, evaluator).run())
    return uvloop.run(Daemon(config, rules, evaluator).run())
