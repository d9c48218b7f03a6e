"""Fault injection for `rsigma engine daemon` / `rsigma serve`: publish numbered events whose detections
are known, inject one fault, and count what came out.

Shared by the short scenarios in `tests/faults/` (part of `make test`) and the long ones in
`benchmarks/faults.py`. Every scenario is a function `scenario(work_dir, **sizes) -> Result`: it starts
its own nats-server(s) and daemon(s) under `work_dir`, stops them all before returning, and reports

* lost: expected detections neither delivered to the output nor in the dead-letter queue,
* duplicated: detections delivered more than once at the output (a NATS stream, or a file),
* recovery: seconds from the fault (or its end) to the next new detection,

plus named checks (each one can fail) and details for the report. A check on a duration or a rate
(`timed=True`: "resumes within 5 s", "< 1 s per pattern") is the benchmark's verdict: the tests report
it and do not fail on it (`Result.failures(timed=False)`), as wall-clock limits are flaky on a shared
2-core machine; they assert that recovery happened and that nothing was lost.

The workload: event `n` is `{"n": n, "CommandLine": ...}`. Even `n` run whoami, which the rule
"Fault Whoami" detects; every tenth also carries `"Tag": "double"`, which "Fault Double" detects as
well (two results for one event, so `Nats-Msg-Id` result indexes are exercised). Odd `n` match
nothing. Outputs carry the event (`--include-event`), so each result is identified by
`(n, rule title)`.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import itertools
import json
import os
import random
import re
import resource
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats
import orjson
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from rsigma.engine.regex import BACKTRACKING_BUDGET_S, backtracking_timeouts
from rsigma.payloads import PayloadOptions, evaluate_payloads
from tests.support import processes
from tests.support.daemon import DaemonProcess
from tests.support.nats_server import NatsServer
from tests.support.waiting import WaitTimeout, wait_until

#: What a scenario's waits retry on instead of failing: a NATS server that is restarting, a stream
#: not there yet.
TRANSIENT: tuple[type[BaseException], ...] = (Exception,)

INPUT_SUBJECT = "events.win"
INPUT_FILTER = "events.>"
INPUT_STREAM = "rsigma-events"
CONSUMER = "rsigma-daemon-events"
OUTPUT_SUBJECT = "detections"
OUTPUT_STREAM = "rsigma-detections"
DLQ_SUBJECT = "dlq"
DLQ_STREAM = "rsigma-dlq"

WHOAMI = "Fault Whoami"
DOUBLE = "Fault Double"
RULES = """\
title: Fault Whoami
id: 5f0f6c1e-0000-4000-8000-000000000001
level: high
logsource: {product: test}
detection:
    selection:
        CommandLine|contains: whoami
    condition: selection
---
title: Fault Double
id: 5f0f6c1e-0000-4000-8000-000000000002
level: low
logsource: {product: test}
detection:
    selection:
        Tag: double
    condition: selection
"""

Key = tuple[int, str]  # (event number, rule title): one expected detection


# ---------------------------------------------------------------------------------------------------
# The workload


def event(n: int, every: int = 2) -> dict[str, Any]:
    """Every `every`-th event runs whoami, every `5 * every`-th is also tagged "double"."""
    if n % every:
        return {"n": n, "CommandLine": "notepad.exe report.txt"}
    e: dict[str, Any] = {"n": n, "CommandLine": f"cmd /c whoami /all #{n}"}
    if n % (5 * every) == 0:
        e["Tag"] = "double"
    return e


def payload(n: int, every: int = 2) -> bytes:
    return orjson.dumps(event(n, every))


def titles_for(e: dict[str, Any]) -> list[str]:
    """The rules an event fires (the oracle: the two rules above, written out)."""
    fired = []
    if "whoami" in str(e.get("CommandLine", "")):
        fired.append(WHOAMI)
    if e.get("Tag") == "double":
        fired.append(DOUBLE)
    return fired


def expected_keys(numbers: Iterable[int], every: int = 2) -> set[Key]:
    return {(n, title) for n in numbers for title in titles_for(event(n, every))}


def result_key(line: bytes | str) -> Key:
    d = json.loads(line)
    return d["event"]["n"], d["rule_title"]


def dead_keys(entry: dict[str, Any]) -> list[Key]:
    """The results a sink gave up on, from a DLQ entry (`original_event` is their JSON array)."""
    return [(r["event"]["n"], r["rule_title"]) for r in json.loads(entry["original_event"])]


def write_rules(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "rules.yml"
    path.write_text(RULES)
    return path


# ---------------------------------------------------------------------------------------------------
# Results


@dataclass
class Result:
    scenario: str
    events: int
    lost: int = 0
    duplicated: int = 0
    recovery_s: float | None = None
    notes: list[str] = field(default_factory=list)
    checks: dict[str, tuple[bool, str]] = field(default_factory=dict)
    timed: set[str] = field(default_factory=set)  # the checks on a duration or a rate
    details: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def check(self, name: str, ok: bool, detail: Any = "", *, timed: bool = False) -> bool:
        """Record a named check; `timed`: it compares a duration or a rate with a limit (the
        benchmark's verdict only, see the module docstring)."""
        self.checks[name] = (bool(ok), str(detail))
        if timed:
            self.timed.add(name)
        return bool(ok)

    @property
    def ok(self) -> bool:
        """Every check passed, the timed ones included (the benchmark's verdict)."""
        return all(ok for ok, _ in self.checks.values())

    @property
    def verdict(self) -> str:
        return "PASS" if self.ok else "FAIL"

    def failures(self, timed: bool = True) -> list[str]:
        """The failed checks; without the timed ones if `timed` is False (what a test asserts)."""
        return [
            f"{name}: {detail}" + (" (timed)" if name in self.timed else "")
            for name, (ok, detail) in self.checks.items()
            if not ok and (timed or name not in self.timed)
        ]

    def __str__(self) -> str:
        recovery = "-" if self.recovery_s is None else f"{self.recovery_s:.2f}"
        text = (
            f"{self.scenario}: events={self.events} lost={self.lost} duplicated={self.duplicated}"
            f" recovery_s={recovery} {self.verdict} ({self.seconds:.1f} s)"
        )
        return "\n  ".join([text, *self.notes, *self.failures()])


@dataclass
class Tally:
    """What an output (and the DLQ) received against what the rules should have produced."""

    expected: set[Key]
    delivered: Counter[Key]
    dead: Counter[Key] = field(default_factory=Counter)

    @property
    def lost(self) -> set[Key]:
        return self.expected - self.delivered.keys() - self.dead.keys()

    @property
    def duplicated(self) -> int:
        return sum(c - 1 for c in self.delivered.values() if c > 1)

    @property
    def unexpected(self) -> set[Key]:
        return (self.delivered.keys() | self.dead.keys()) - self.expected

    @property
    def dead_and_delivered(self) -> set[Key]:
        return self.dead.keys() & self.delivered.keys()

    def record(self, result: Result, what: str = "output") -> None:
        """lost, duplicated and unexpected as checks (and lost/duplicated as the result's figures)."""
        result.lost = len(self.lost)
        result.duplicated = self.duplicated
        result.check(f"{what}: 0 lost", not self.lost, f"{len(self.lost)} lost, e.g. {sorted(self.lost)[:5]}")
        result.check(f"{what}: 0 duplicated", self.duplicated == 0, f"{self.duplicated} duplicated")
        result.check(
            f"{what}: nothing unexpected",
            not self.unexpected,
            f"{len(self.unexpected)} unexpected, e.g. {sorted(self.unexpected)[:5]}",
        )


# ---------------------------------------------------------------------------------------------------
# Small helpers


def file_lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines() if path.exists() else []


def parse_lines(lines: Iterable[bytes]) -> tuple[Counter[Key], list[bytes]]:
    """Keys of the result lines of a file output, and the lines that are not valid results (torn)."""
    keys: Counter[Key] = Counter()
    torn = []
    for line in lines:
        try:
            keys[result_key(line)] += 1
        except (ValueError, KeyError, TypeError):
            torn.append(line)
    return keys, torn


# ---------------------------------------------------------------------------------------------------
# A NATS client for synchronous test code


class NatsClient:
    """A nats-py connection on its own event loop thread; reconnects quickly after a server restart."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="faults-nats", daemon=True)
        self.thread.start()
        self.arrivals: list[float] = []  # monotonic arrival times on subscribed subjects

        async def quiet(_: Exception) -> None:
            pass

        try:
            self.nc = self.run(
                nats.connect(
                    url,
                    allow_reconnect=True,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=0.05,
                    connect_timeout=2,
                    error_cb=quiet,
                )
            )
        except BaseException:
            self._stop_loop()
            raise
        self.js = self.nc.jetstream()

    def run(self, coro: Any, timeout: float = 60.0) -> Any:
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except BaseException:
            future.cancel()
            raise

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.run(self.nc.close(), 10)
        self._stop_loop()

    def _stop_loop(self) -> None:
        async def cancel_rest() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        with contextlib.suppress(Exception):
            self.run(cancel_rest(), 10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    def __enter__(self) -> NatsClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- streams ------------------------------------------------------------------------------------

    def add_stream(self, name: str, subjects: list[str]) -> None:
        self.run(self.js.add_stream(name=name, subjects=subjects))

    def delete_stream(self, name: str) -> None:
        self.run(self.js.delete_stream(name))

    def count(self, stream: str) -> int:
        return int(self.run(self.js.stream_info(stream), 5).state.messages)

    def consumer(self, stream: str = INPUT_STREAM, consumer: str = CONSUMER) -> tuple[int, int]:
        """(messages not yet delivered, delivered and not acknowledged)."""
        info = self.run(self.js.consumer_info(stream, consumer), 5)
        return int(info.num_pending or 0), int(info.num_ack_pending or 0)

    def all_acked(self) -> bool:
        return self.consumer() == (0, 0)

    def ack_floor(self, stream: str = INPUT_STREAM, consumer: str = CONSUMER) -> int:
        """The stream sequence at and below which every message is acknowledged."""
        info = self.run(self.js.consumer_info(stream, consumer), 5)
        return int(info.ack_floor.stream_seq or 0) if info.ack_floor else 0

    def read(self, stream: str) -> list[bytes]:
        """Every message stored in a stream, in order, through one read-only ephemeral consumer."""

        async def go() -> list[bytes]:
            info = await self.js.stream_info(stream)
            total = info.state.messages
            if not total:
                return []
            config = ConsumerConfig(ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL)
            sub = await self.js.pull_subscribe(info.config.subjects[0], stream=stream, config=config)
            data: list[bytes] = []
            try:
                while len(data) < total:
                    for msg in await sub.fetch(min(2000, total - len(data)), timeout=10):
                        data.append(msg.data)
            finally:
                with contextlib.suppress(Exception):
                    await sub.unsubscribe()
            return data

        return self.run(go(), 300)

    # -- publishing ---------------------------------------------------------------------------------

    def publish(
        self, payloads: list[bytes], subject: str = INPUT_SUBJECT, stream: str = INPUT_STREAM
    ) -> None:
        """Core publishes (no ack round trip each), then wait until the stream holds them all."""

        async def go() -> None:
            before = (await self.js.stream_info(stream)).state.messages
            for i, p in enumerate(payloads, 1):
                await self.nc.publish(subject, p)
                if i % 2000 == 0:
                    await self.nc.flush()
            await self.nc.flush()
            while (await self.js.stream_info(stream)).state.messages < before + len(payloads):
                await asyncio.sleep(0.02)

        self.run(go(), 300)

    def publish_paced(
        self,
        numbers: range,
        rate: float,
        tick: float = 0.005,
        every: int = 2,
        until: threading.Event | None = None,
    ) -> Any:
        """Publish events `numbers` at `rate` per second in the background (core publishes, a burst every
        `tick` seconds); returns a future that resolves once the stream holds them all. `self.published`
        counts. With `until`, the stream goes on past `numbers` (the numbers after them, at the same
        pace) until `until` is set: faults timed inside the stream land in it however long each takes."""
        self.published = 0

        async def go() -> None:
            loop = asyncio.get_running_loop()
            before = (await self.js.stream_info(INPUT_STREAM)).state.messages
            begin = loop.time()

            def more() -> bool:
                return self.published < len(numbers) or (until is not None and not until.is_set())

            while more():
                due = int((loop.time() - begin) * rate) + 1
                if until is None or until.is_set():
                    due = min(due, len(numbers))
                while self.published < due:
                    await self.nc.publish(INPUT_SUBJECT, payload(numbers.start + self.published, every))
                    self.published += 1
                await asyncio.sleep(tick)
            await self.nc.flush()
            while (await self.js.stream_info(INPUT_STREAM)).state.messages < before + self.published:
                await asyncio.sleep(0.02)

        return asyncio.run_coroutine_threadsafe(go(), self.loop)

    def watch(self, subject: str) -> None:
        """Record the arrival time of every message published on `subject` (a core subscription)."""

        async def on_msg(_: Any) -> None:
            self.arrivals.append(time.monotonic())

        self.run(self.nc.subscribe(subject, cb=on_msg))

    def first_arrival_after(self, moment: float) -> float | None:
        i = bisect.bisect_right(self.arrivals, moment)
        return self.arrivals[i] if i < len(self.arrivals) else None


# ---------------------------------------------------------------------------------------------------
# The daemon as a subprocess


class Daemon(DaemonProcess):
    """The shared DaemonProcess as the scenarios start it: `rsigma engine daemon` (workers=0) or
    `rsigma serve --workers N` on `rules`, restartable with the same flags (`start()` again), stdout
    discarded, stdin a pipe only when asked; a metric the daemon does not expose reads 0."""

    def __init__(
        self, home: Path, rules: Path, args: list[str], *, workers: int = 0, stdin_pipe: bool = False
    ) -> None:
        super().__init__(
            ["-r", rules, *args],
            home=home,
            command="serve" if workers else "engine daemon",
            workers=workers or None,
            stdin="pipe" if stdin_pipe else "devnull",
            stdout="devnull",
        )

    def metric(self, name: str, default: float | None = 0.0, **labels: str) -> float:
        return float(super().metric(name, default, **labels) or 0.0)


def record_both_outputs(result: Result, client: NatsClient, out: Path, expected: set[Key]) -> None:
    """The NATS output's tally, and the file output's, which does no de-duplication: every result
    exactly once there means nothing was redelivered."""
    output_tally(client, expected).record(result, "NATS output")
    in_file, torn = parse_lines(file_lines(out))
    file_tally = Tally(expected, in_file)
    result.check("file output: 0 lost", not file_tally.lost, f"{len(file_tally.lost)} lost")
    result.check(
        "file output: no result twice (nothing redelivered)",
        file_tally.duplicated == 0,
        f"{file_tally.duplicated} twice",
    )
    result.check("file output: no torn line", not torn, f"{len(torn)} torn")


def nats_daemon_args(url: str, *extra: str, output: str | None = None) -> list[str]:
    """A NATS input; the NATS output unless `output` names another; results carry their event."""
    return [
        "--input", f"{url}/{INPUT_FILTER}",
        "--output", output or f"{url}/{OUTPUT_SUBJECT}",
        "--include-event", *extra,
    ]  # fmt: skip


def output_tally(client: NatsClient, expected: set[Key], stream: str = OUTPUT_STREAM) -> Tally:
    return Tally(expected, Counter(result_key(m) for m in client.read(stream)))


def dlq_entries(client: NatsClient) -> list[dict[str, Any]]:
    try:
        return [json.loads(m) for m in client.read(DLQ_STREAM)]
    except Exception:  # noqa: BLE001 - no DLQ stream: nothing was dead-lettered
        return []


def prefill(client: NatsClient, events: int, every: int = 2) -> set[Key]:
    """The input stream, filled with events 1..N (the daemon finds a backlog); their expected keys."""
    client.add_stream(INPUT_STREAM, [INPUT_FILTER])
    client.publish([payload(n, every) for n in range(1, events + 1)])
    return expected_keys(range(1, events + 1), every)


# ---------------------------------------------------------------------------------------------------
# 1. SIGKILL the daemon


def kill_daemon(
    work: Path, *, events: int = 20_000, workers: int = 0, kills: int = 3, seed: int = 1
) -> Result:
    """SIGKILL the daemon (or the pool's supervisor) at random points of the stream and restart it.

    JetStream redelivers what was not acked (after --nats-ack-wait); the output stream drops the copies
    the restarted daemon publishes again, by `Nats-Msg-Id`. With a pool, the orphaned matchers must
    exit by themselves and their shared-memory rings must be removed.
    """
    name = "kill daemon" + (f" (serve --workers {workers})" if workers else " (single process)")
    result = Result(name, events)
    started = time.monotonic()
    rng = random.Random(seed)
    points = sorted(rng.uniform(0.05, 0.85) for _ in range(kills))
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(NatsServer(work / "nats"))
        client = stack.enter_context(NatsClient(server.url))
        expected = prefill(client, events)
        args = nats_daemon_args(
            server.url, "--nats-ack-wait", "3", "--buffer-size", "2000", "--batch-size", "64"
        )
        daemon = stack.enter_context(Daemon(work / "daemon", write_rules(work), args, workers=workers))
        daemon.start()
        recoveries, orphans, segments = [], [], set()
        for i, point in enumerate(points):
            target = int(point * len(expected))
            wait_until(
                lambda t=target: client.count(OUTPUT_STREAM) >= t, f"kill point {i}", 120, retry_on=TRANSIENT
            )
            pids = daemon.matcher_pids() if workers else []
            segments |= processes.shm_segments(pids)
            killed_at = time.monotonic()
            daemon.kill()
            time.sleep(0.2)  # publishes already on the wire land
            settled = client.count(OUTPUT_STREAM)
            result.check(
                f"kill {i + 1} came mid-stream", settled < len(expected), f"{settled}/{len(expected)}"
            )
            if workers:
                with contextlib.suppress(TimeoutError):
                    wait_until(
                        lambda p=pids: not any(processes.pid_alive(x) for x in p),
                        "orphaned matchers to exit",
                        10,
                        retry_on=TRANSIENT,
                    )
                orphans += [p for p in pids if processes.pid_alive(p)]
            daemon.start()
            if settled < len(expected):  # else no new detection can come (a stream too short: failed above)
                wait_until(
                    lambda s=settled: client.count(OUTPUT_STREAM) > s,
                    "a new detection after the restart",
                    60,
                    retry_on=TRANSIENT,
                )
                recoveries.append(time.monotonic() - killed_at)
        wait_until(client.all_acked, "every input message acked", 180, interval=0.2, retry_on=TRANSIENT)
        tally = output_tally(client, expected)
        tally.record(result)
        result.recovery_s = max(recoveries) if len(recoveries) == kills else None
        code = daemon.terminate()
        result.check("drains and exits 0 at the end", code == 0, f"exit {code}")
        if workers:
            result.check("orphaned matchers exit by themselves", not orphans, f"still running: {orphans}")
            with contextlib.suppress(TimeoutError):
                wait_until(
                    lambda: not any(Path("/dev/shm", s).exists() for s in segments),
                    "rings removed",
                    15,
                    retry_on=TRANSIENT,
                )
            leaked = [s for s in segments if Path("/dev/shm", s).exists()]
            result.check("no shared-memory ring leaked", not leaked, f"leaked: {leaked}")
            result.details["rings"] = len(segments)
        result.check(
            "restart resumes within 30 s",
            result.recovery_s is not None and result.recovery_s < 30,
            f"{result.recovery_s or 0:.2f} s",
            timed=True,
        )
    result.details.update(kills=kills, points=[round(p, 3) for p in points], recoveries=recoveries, seed=seed)
    result.notes.append(
        f"{kills} kills at {', '.join(f'{p:.0%}' for p in points)} of the output;"
        + (f" kill to next detection {min(recoveries):.2f}-{max(recoveries):.2f} s" if recoveries else "")
    )
    result.seconds = time.monotonic() - started
    return result


# ---------------------------------------------------------------------------------------------------
# 2. SIGKILL one matcher


def kill_matcher(
    work: Path, *, events: int = 20_000, kills: int = 2, rate: float = 8_000, seed: int = 2
) -> Result:
    """SIGKILL a matcher of `serve --workers 2` while events stream in (`rate` per second), alternating
    0 and 1. The victim is stopped first until it holds a batch, so the kill always loses work in
    flight; the supervisor restarts it and re-sends what it held, so nothing is lost and nothing is
    even redelivered (the file output, which has no de-duplication, gets every result exactly once).
    The stream goes on past `events` until the last restart is done (on a loaded machine a restart can
    outlast the rest of the stream), so every kill comes mid-stream."""
    result = Result("kill matcher (serve --workers 2)", events)
    started = time.monotonic()
    rng = random.Random(seed)
    duration = events / rate
    moments = sorted(rng.uniform(0.15, 0.75) * duration for _ in range(kills))
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(NatsServer(work / "nats"))
        client = stack.enter_context(NatsClient(server.url))
        client.add_stream(INPUT_STREAM, [INPUT_FILTER])
        out = work / "out.ndjson"
        args = nats_daemon_args(server.url, "--output", f"file://{out}", "--buffer-size", "2000")
        daemon = stack.enter_context(Daemon(work / "daemon", write_rules(work), args, workers=2))
        daemon.start()
        restarts: list[float] = []
        held: list[int] = []
        begun = time.monotonic()
        kills_done = threading.Event()
        publishing = client.publish_paced(range(1, events + 1), rate, until=kills_done)
        for i, moment in enumerate(moments):
            index = i % 2
            time.sleep(max(0.0, begun + moment - time.monotonic()))
            victim = daemon.status()["workers"][index]["pid"]
            before = len(daemon.find_logs("matcher restarted"))
            os.kill(victim, signal.SIGSTOP)
            try:
                wait_until(
                    lambda x=index: daemon.status()["workers"][x]["in_flight"] > 0,
                    "a held batch",
                    10,
                    retry_on=TRANSIENT,
                )
            finally:
                at_kill = client.published
                os.kill(victim, signal.SIGKILL)  # never leave a stopped process behind
            record = wait_until(
                lambda b=before: (r := daemon.find_logs("matcher restarted")) and len(r) > b and r[-1],
                "the 'matcher restarted' record",
                30,
                retry_on=TRANSIENT,
            )
            restarts.append(float(record["restart_seconds"]))
            died = daemon.find_logs("matcher died")[-1]
            held.append(int(died.get("batches_in_flight", 0)))
            result.check(f"kill {i + 1}: matcher {index} restarted", record.get("matcher") == index, record)
            result.check(f"kill {i + 1}: the dead matcher held work", held[-1] > 0, held[-1])

            def back(victim: int = victim, index: int = index) -> bool:
                workers = daemon.status()["workers"]
                return all(w["alive"] for w in workers) and workers[index]["pid"] != victim

            wait_until(back, "both matchers alive again", 30, retry_on=TRANSIENT)
            result.check(
                f"kill {i + 1}: events kept arriving during the restart",
                client.published > at_kill,
                f"{at_kill} published at the kill, {client.published} once both were back",
            )
        kills_done.set()
        publishing.result(120)
        result.events = client.published
        expected = expected_keys(range(1, client.published + 1))
        wait_until(client.all_acked, "every input message acked", 180, interval=0.2, retry_on=TRANSIENT)
        record_both_outputs(result, client, out, expected)
        redelivered = daemon.status()["nats"]["input"]["redelivered_received"]
        result.check("JetStream redelivered nothing", redelivered == 0, f"{redelivered} redelivered")
        total_restarts = sum(daemon.metric("rsigma_worker_restarts_total", worker=str(w)) for w in (0, 1))
        result.check(
            "rsigma_worker_restarts_total counts every kill", total_restarts == kills, total_restarts
        )
        samples = daemon.metrics()
        poison = "rsigma_worker_poison_events_total"
        poisoned = [samples.get((poison, frozenset({("worker", w)}))) for w in "01"]
        result.check("a kill from outside dead-letters no event as poison", poisoned == [0, 0], poisoned)
        result.recovery_s = max(restarts)
        result.check("each restart under 2 s", max(restarts) < 2, f"restart_seconds {restarts}", timed=True)
        code = daemon.terminate()
        result.check("drains and exits 0 at the end", code == 0, f"exit {code}")
    result.details.update(restart_seconds=restarts, batches_in_flight=held, seed=seed)
    result.notes.append(
        f"{kills} matcher kills; restart_seconds {', '.join(f'{r:.2f}' for r in restarts)};"
        f" batches held by the dead matcher {held}"
    )
    result.seconds = time.monotonic() - started
    return result


def hang_matcher(
    work: Path, *, events: int = 20_000, rate: float = 8_000, timeout: float | None = 2.0, seed: int = 2
) -> Result:
    """SIGSTOP a matcher of `serve --workers 2` while events stream in, and leave it stopped: alive,
    silent, holding a batch that every later result waits behind. The watchdog must kill it after
    `--matcher-timeout` (None: the default), the restart re-send its work, and the output resume, with
    nothing lost, nothing twice in the file output and nothing redelivered by JetStream (the timeout
    is below the 30 s ack wait). The stall is the longest gap between output messages from the stop
    until the end of the recovery."""
    result = Result(f"hang matcher (serve --workers 2, --matcher-timeout {timeout or 'default'})", events)
    started = time.monotonic()
    moment = random.Random(seed).uniform(0.2, 0.5) * events / rate
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(NatsServer(work / "nats"))
        client = stack.enter_context(NatsClient(server.url))
        client.add_stream(INPUT_STREAM, [INPUT_FILTER])
        client.watch(OUTPUT_SUBJECT)
        out = work / "out.ndjson"
        extra = ["--matcher-timeout", str(timeout)] if timeout is not None else []
        args = nats_daemon_args(server.url, "--output", f"file://{out}", "--buffer-size", "2000", *extra)
        daemon = stack.enter_context(Daemon(work / "daemon", write_rules(work), args, workers=2))
        daemon.start()
        begun = time.monotonic()
        stopped = threading.Event()
        publishing = client.publish_paced(range(1, events + 1), rate, until=stopped)
        time.sleep(max(0.0, begun + moment - time.monotonic()))
        victim = daemon.status()["workers"][0]["pid"]
        stopped_at = time.monotonic()
        os.kill(victim, signal.SIGSTOP)
        try:
            wait_until(
                lambda: daemon.status()["workers"][0]["in_flight"] > 0, "a held batch", 10, retry_on=TRANSIENT
            )
            killed = wait_until(
                lambda: daemon.find_log("matcher made no progress within its timeout; killing it"),
                "the watchdog's kill",
                (timeout or 30) * 3 + 30,
                retry_on=TRANSIENT,
            )
            wait_until(
                lambda: (
                    daemon.status()["workers"][0]["pid"] != victim
                    and all(w["alive"] for w in daemon.status()["workers"])
                ),
                "matcher 0 restarted",
                30,
                retry_on=TRANSIENT,
            )
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(victim, signal.SIGKILL)  # never leave a stopped process behind
        stopped.set()
        publishing.result(120)
        result.events = client.published
        expected = expected_keys(range(1, client.published + 1))
        wait_until(client.all_acked, "every input message acked", 180, interval=0.2, retry_on=TRANSIENT)
        recovered_at = time.monotonic()
        record_both_outputs(result, client, out, expected)
        result.check(
            "the kill names matcher 0 and its pid", (killed["matcher"], killed["pid"]) == (0, victim)
        )
        redelivered = daemon.status()["nats"]["input"]["redelivered_received"]
        result.check("JetStream redelivered nothing", redelivered == 0, f"{redelivered} redelivered")
        timeouts = [daemon.metric("rsigma_worker_timeouts_total", worker=w) for w in "01"]
        result.check("rsigma_worker_timeouts_total counts the kill", timeouts == [1, 0], timeouts)
        poisoned = [daemon.metric("rsigma_worker_poison_events_total", worker=w) for w in "01"]
        result.check("a hang from outside dead-letters no event", poisoned == [0, 0], poisoned)
        arrivals = [stopped_at] + [t for t in client.arrivals if stopped_at <= t <= recovered_at]
        stall = max((b - a for a, b in itertools.pairwise(arrivals)), default=0.0)
        result.recovery_s = stall
        limit = (timeout or 15) + 5
        result.check(f"output resumes within {limit:g} s", stall < limit, f"{stall:.2f} s", timed=True)
        code = daemon.terminate()
        result.check("drains and exits 0 at the end", code == 0, f"exit {code}")
    result.details.update(stall_seconds=round(stall, 3), stalled_for=killed["stalled_seconds"], seed=seed)
    result.notes.append(
        f"matcher 0 stopped {moment:.2f} s into the stream; killed after {killed['stalled_seconds']} s"
        f" without progress; longest gap in the output {stall:.2f} s"
    )
    result.seconds = time.monotonic() - started
    return result


# ---------------------------------------------------------------------------------------------------
# 3. Restart the NATS server


def nats_restart(
    work: Path, *, events: int = 20_000, workers: int = 0, down_s: float = 1.0, seed: int = 3
) -> Result:
    """Stop the nats-server mid-stream and start it again (same port, same store). The daemon must
    resume by itself within 5 s of the server's return: measured from "Server is ready" to the next
    detection that reaches the server and to the next acknowledgement (the consumer's outstanding
    count going down)."""
    name = "NATS server restart" + (f" (serve --workers {workers})" if workers else "")
    result = Result(name, events)
    started = time.monotonic()
    point = random.Random(seed).uniform(0.2, 0.6)
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(NatsServer(work / "nats"))
        client = stack.enter_context(NatsClient(server.url))
        expected = prefill(client, events)
        client.watch(OUTPUT_SUBJECT)
        args = nats_daemon_args(
            server.url, "--nats-ack-wait", "3", "--buffer-size", "2000", "--batch-size", "64"
        )
        daemon = stack.enter_context(Daemon(work / "daemon", write_rules(work), args, workers=workers))
        daemon.start()
        wait_until(
            lambda: client.count(OUTPUT_STREAM) >= point * len(expected),
            "the restart point",
            120,
            retry_on=TRANSIENT,
        )
        outstanding_before = sum(client.consumer())
        server.restart(down_s=down_s)
        ready = time.monotonic()
        result.check("restart came mid-stream", outstanding_before > 0, f"{outstanding_before} outstanding")
        # Acks resume once the daemon is back: the consumer's outstanding count drops below its first
        # reading after the restart (this client reconnects within 50 ms, the daemon within 500 ms).
        outstanding = wait_until(
            lambda: sum(client.consumer()) or -1, "the consumer after the restart", 30, retry_on=TRANSIENT
        )
        ack_at = wait_until(
            lambda: sum(client.consumer()) < outstanding and time.monotonic(),
            "ack progress after the restart",
            60,
            retry_on=TRANSIENT,
        )
        detect_at = wait_until(
            lambda: client.first_arrival_after(ready), "a detection after the restart", 60, retry_on=TRANSIENT
        )
        try:
            wait_until(client.all_acked, "every input message acked", 180, interval=0.2, retry_on=TRANSIENT)
        except WaitTimeout as e:
            raise WaitTimeout(f"{e}; {stuck_report(client, daemon)}") from None
        tally = output_tally(client, expected)
        tally.record(result)
        result.recovery_s = max(ack_at, detect_at) - ready
        result.check(
            "resumes within 5 s of the server's return",
            result.recovery_s < 5,
            f"{result.recovery_s:.2f} s",
            timed=True,
        )
        reconnected = daemon.find_logs("NATS reconnected")
        result.check(
            "every connection reconnected", len(reconnected) >= 2, [r.get("role") for r in reconnected]
        )
        code = daemon.terminate()
        result.check("drains and exits 0 at the end", code == 0, f"exit {code}")
        result.details.update(
            detection_s=round(detect_at - ready, 3),
            ack_s=round(ack_at - ready, 3),
            down_s=down_s,
            point=point,
        )
    result.notes.append(
        f"server down {down_s:g} s at {point:.0%}; after it was ready: next detection"
        f" {result.details['detection_s']:.2f} s, next ack {result.details['ack_s']:.2f} s"
    )
    result.seconds = time.monotonic() - started
    return result


def nats_down_at_boot(work: Path, *, events: int = 5_000, workers: int = 0, attempts: int = 3) -> Result:
    """The daemon starts before its nats-server (a host booting, a broker restarted with it): it must
    wait, answer /healthz 200 and /readyz 503 meanwhile, and once the server is up (with the events
    already in the stream) become ready and deliver every detection, each once."""
    name = "NATS down at boot" + (f" (serve --workers {workers})" if workers else "")
    result = Result(name, events)
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        server = NatsServer(work / "nats")  # its port is fixed now, nothing listens on it yet
        daemon = stack.enter_context(
            Daemon(work / "daemon", write_rules(work), nats_daemon_args(server.url), workers=workers)
        )
        daemon.start(wait=False)
        daemon.wait_api()
        wait_until(
            lambda: len(daemon.find_logs("NATS server not reachable")) >= attempts, "failed attempts", 60
        )
        readyz = daemon.get("/readyz")
        result.check("/healthz 200 while waiting", daemon.get("/healthz").status == 200)
        result.check(
            "/readyz 503 with the reason while waiting",
            readyz.status == 503 and "waiting for the NATS server" in readyz.json().get("reason", ""),
            readyz.body[:200],
        )
        result.check(
            "a warning per attempt, naming the URL",
            all(server.url in w["error"] for w in daemon.find_logs("NATS server not reachable")),
        )
        stack.enter_context(server.start())
        up = time.monotonic()
        client = stack.enter_context(NatsClient(server.url))
        expected = prefill(client, events)
        ready_at = wait_until(
            lambda: daemon.get("/readyz").status == 200 and time.monotonic(), "/readyz 200", 60
        )
        result.recovery_s = ready_at - up
        result.check(
            "ready within 15 s of the server",
            result.recovery_s < 15,
            f"{result.recovery_s:.2f} s",
            timed=True,
        )
        try:
            wait_until(client.all_acked, "every input message acked", 180, interval=0.2, retry_on=TRANSIENT)
        except WaitTimeout as e:
            raise WaitTimeout(f"{e}; {stuck_report(client, daemon)}") from None
        output_tally(client, expected).record(result)
        code = daemon.terminate()
        result.check("drains and exits 0 at the end", code == 0, f"exit {code}")
    waits = len(daemon.find_logs("NATS server not reachable"))
    result.notes.append(
        f"{waits} failed attempts before the server; ready {result.recovery_s:.2f} s after it"
    )
    result.seconds = time.monotonic() - started
    return result


def stuck_report(client: NatsClient, daemon: DaemonProcess) -> str:
    """What a wait for acks that never came leaves to go on: the consumer's counters, whether the
    daemon still runs, and its warnings."""
    info = client.run(client.js.consumer_info(INPUT_STREAM, CONSUMER), 5)
    counters = {
        "pending": info.num_pending,
        "ack_pending": info.num_ack_pending,
        "redelivered": info.num_redelivered,
        "ack_floor": info.ack_floor.stream_seq if info.ack_floor else None,
        "daemon_exit": daemon.returncode,
    }
    warnings = [line for line in daemon.stderr().splitlines() if '"level":"info"' not in line]
    return f"consumer {counters}; daemon warnings (last 20): " + "\n".join(warnings[-20:])


# ---------------------------------------------------------------------------------------------------
# 4. Output sink failures


def _sink_checks(
    result: Result,
    expected: set[Key],
    delivered: Counter[Key],
    entries: list[dict[str, Any]],
    *,
    sink: str,
    max_deliver: int,
) -> Tally:
    """The shared accounting of the sink scenarios: every result delivered or dead-lettered, the DLQ
    holding exactly the results that were not delivered, each after the last delivery."""
    dead: Counter[Key] = Counter()
    bad_entries = []
    for entry in entries:
        ok = entry.get("error", "").startswith(f"sink delivery failure: {sink}:")
        ok = ok and entry.get("delivery_count") == max_deliver
        if not ok:
            bad_entries.append({k: entry.get(k) for k in ("error", "delivery_count")})
        dead.update(dead_keys(entry))
    tally = Tally(expected, delivered, dead)
    tally.record(result)
    result.check(
        f"every DLQ entry is a '{sink}' sink failure on delivery {max_deliver}",
        not bad_entries,
        f"{len(bad_entries)} others, e.g. {bad_entries[:2]}",
    )
    result.check(
        "the DLQ holds exactly what was not delivered",
        dead.keys() == expected - delivered.keys(),
        f"{len(tally.dead_and_delivered)} dead-lettered yet delivered;"
        f" {len(expected - delivered.keys() - dead.keys())} neither",
    )
    result.check("no DLQ entry twice", all(c == 1 for c in dead.values()), "")
    result.details["dead_lettered"] = len(dead)
    result.details["dlq_entries"] = len(entries)
    return tally


SINK_FLAGS = (
    "--nats-max-deliver", "3", "--sink-retry-max", "0", "--buffer-size", "2000", "--batch-size", "64",
)  # fmt: skip


class Stream:
    """Events 1..N published at `rate` per second into the input stream, for a fault in the middle:
    events keep arriving before, during and after it (a backlog would all fail at once)."""

    def __init__(self, client: NatsClient, events: int, rate: float, tick: float = 0.1) -> None:
        client.add_stream(INPUT_STREAM, [INPUT_FILTER])
        self.client = client
        self.expected = expected_keys(range(1, events + 1))
        self.duration = events / rate
        self.events = events
        self.begun = time.monotonic()
        self.future = client.publish_paced(range(1, events + 1), rate, tick)

    def sleep_until(self, fraction: float) -> None:
        time.sleep(max(0.0, self.begun + fraction * self.duration - time.monotonic()))

    def finish(self) -> None:
        self.future.result(self.duration + 120)


def sink_file(
    work: Path, *, events: int = 16_000, rate: float = 2_000, outage_s: float = 4.0, seed: int = 4
) -> Result:
    """A file output that stops taking writes mid-stream, as a full disk would, then takes them again.

    The tests run as root, so permissions cannot stop a write, and replacing the file or its directory
    does not touch the descriptor the sink already holds. The daemon's RLIMIT_FSIZE can (prlimit from
    outside): a write past the limit fails with EFBIG after writing what fits, exactly like ENOSPC on a
    full disk, and lifting the limit is the disk getting space again. The sink reopens the same path.
    """
    result = Result("file sink fails (EFBIG, as ENOSPC)", events)
    started = time.monotonic()
    rng = random.Random(seed)
    point = rng.uniform(0.2, 0.3)
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(NatsServer(work / "nats"))
        client = stack.enter_context(NatsClient(server.url))
        out = work / "out" / "detections.ndjson"
        out.parent.mkdir(parents=True)
        dlq = f"{server.url}/{DLQ_SUBJECT}"
        args = nats_daemon_args(server.url, "--dlq", dlq, *SINK_FLAGS, output=f"file://{out}")
        daemon = stack.enter_context(Daemon(work / "daemon", write_rules(work), args))
        daemon.start()
        stream = Stream(client, events, rate)
        stream.sleep_until(point)
        limit = out.stat().st_size + rng.randint(1, 4000)  # lands inside a write
        resource.prlimit(daemon.pid, resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
        wait_until(
            lambda: daemon.metric("rsigma_nats_naks_total") > 0,
            "the first failed write",
            30,
            retry_on=TRANSIENT,
        )
        time.sleep(outage_s)
        resource.prlimit(daemon.pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        lifted = time.monotonic()
        size_at_lift = out.stat().st_size
        grown = wait_until(
            lambda: out.stat().st_size > size_at_lift and time.monotonic(),
            "a write after",
            60,
            retry_on=TRANSIENT,
        )
        result.recovery_s = grown - lifted
        result.check("the fault ended mid-stream", client.published < events, f"{client.published}")
        stream.finish()
        wait_until(client.all_acked, "every input message acked", 180, interval=0.2, retry_on=TRANSIENT)
        delivered, torn = parse_lines(file_lines(out))
        result.check(
            "no torn line in the file", not torn, f"{len(torn)} torn, e.g. {[t[:60] for t in torn[:2]]}"
        )
        _sink_checks(result, stream.expected, delivered, dlq_entries(client), sink="file", max_deliver=3)
        result.check("the outage dead-lettered some results", result.details["dead_lettered"] > 0, "none")
        naks = daemon.metric("rsigma_nats_naks_total")
        result.check("failed deliveries were handed back (nak)", naks > 0, naks)
        result.check("the daemon stayed up", daemon.alive(), "")
        code = daemon.terminate()
        result.check("drains and exits 0 at the end", code == 0, f"exit {code}")
        result.details.update(limit=limit, naks=naks, outage_s=outage_s, point=point, torn=len(torn))
    result.notes.append(
        f"writes failed for {outage_s:g} s from {point:.0%} of a {rate:g}/s stream;"
        f" {int(result.details['naks'])} naks, {result.details['dead_lettered']} results dead-lettered"
    )
    result.seconds = time.monotonic() - started
    return result


def sink_stream_deleted(
    work: Path, *, events: int = 16_000, rate: float = 2_000, outage_s: float = 4.0, seed: int = 5
) -> Result:
    """The output stream is deleted mid-stream and created again `outage_s` later.

    What the stream held when it was deleted is gone, so the test reads it first: the daemon is paused
    (SIGSTOP) while the stream is read and deleted, and resumed (SIGCONT) at once; the pause only makes
    the count exact. Publishes then fail (no stream stores the subject), are handed back, and the last
    delivery dead-letters.
    """
    result = Result("output stream deleted", events)
    started = time.monotonic()
    point = random.Random(seed).uniform(0.2, 0.3)
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(NatsServer(work / "nats"))
        client = stack.enter_context(NatsClient(server.url))
        args = nats_daemon_args(server.url, "--dlq", f"{server.url}/{DLQ_SUBJECT}", *SINK_FLAGS)
        daemon = stack.enter_context(Daemon(work / "daemon", write_rules(work), args))
        daemon.start()
        stream = Stream(client, events, rate)
        stream.sleep_until(point)
        os.kill(daemon.pid, signal.SIGSTOP)
        try:
            last = -1
            while (now := client.count(OUTPUT_STREAM)) != last:  # publishes on the wire land
                last = now
                time.sleep(0.3)
            before = client.read(OUTPUT_STREAM)
            client.delete_stream(OUTPUT_STREAM)
        finally:
            os.kill(daemon.pid, signal.SIGCONT)
        wait_until(
            lambda: daemon.metric("rsigma_nats_naks_total") > 0,
            "the first failed publish",
            30,
            retry_on=TRANSIENT,
        )
        time.sleep(outage_s)
        client.add_stream(OUTPUT_STREAM, [OUTPUT_SUBJECT])
        recreated = time.monotonic()
        back = wait_until(
            lambda: client.count(OUTPUT_STREAM) > 0 and time.monotonic(),
            "a detection after",
            60,
            retry_on=TRANSIENT,
        )
        result.recovery_s = back - recreated
        result.check("the fault ended mid-stream", client.published < events, f"{client.published}")
        stream.finish()
        wait_until(client.all_acked, "every input message acked", 180, interval=0.2, retry_on=TRANSIENT)
        after = client.read(OUTPUT_STREAM)
        delivered = Counter(result_key(m) for m in before + after)
        _sink_checks(result, stream.expected, delivered, dlq_entries(client), sink="nats", max_deliver=3)
        result.check("the outage dead-lettered some results", result.details["dead_lettered"] > 0, "none")
        result.check("the daemon stayed up", daemon.alive(), "")
        code = daemon.terminate()
        result.check("drains and exits 0 at the end", code == 0, f"exit {code}")
        result.details.update(before_delete=len(before), after_recreate=len(after), outage_s=outage_s)
    result.notes.append(
        f"stream deleted at {point:.0%} for {outage_s:g} s; {result.details['before_delete']} results before,"
        f" {result.details['after_recreate']} after, {result.details['dead_lettered']} dead-lettered"
    )
    result.seconds = time.monotonic() - started
    return result


def sink_nats_down(
    work: Path, *, events: int = 16_000, rate: float = 2_000, outage_s: float = 4.0, seed: int = 6
) -> Result:
    """The NATS server of the output (another server than the input's and the DLQ's) goes away
    mid-stream and comes back `outage_s` later (same port and store)."""
    result = Result("NATS output unreachable", events)
    started = time.monotonic()
    point = random.Random(seed).uniform(0.2, 0.3)
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(NatsServer(work / "nats"))
        out_server = stack.enter_context(NatsServer(work / "nats-out"))
        client = stack.enter_context(NatsClient(server.url))
        out_client = stack.enter_context(NatsClient(out_server.url))
        out_client.watch(OUTPUT_SUBJECT)
        output = f"{out_server.url}/{OUTPUT_SUBJECT}"
        args = nats_daemon_args(
            server.url, "--dlq", f"{server.url}/{DLQ_SUBJECT}", *SINK_FLAGS, output=output
        )
        daemon = stack.enter_context(Daemon(work / "daemon", write_rules(work), args))
        daemon.start()
        stream = Stream(client, events, rate)
        stream.sleep_until(point)
        out_server.stop()
        time.sleep(outage_s)
        outstanding = sum(client.consumer())
        result.check("nothing acked while the output was away", outstanding > 0, f"{outstanding} outstanding")
        out_server.start()
        ready = time.monotonic()
        back = wait_until(
            lambda: out_client.first_arrival_after(ready), "a detection after", 60, retry_on=TRANSIENT
        )
        result.recovery_s = back - ready
        result.check("the fault ended mid-stream", client.published < events, f"{client.published}")
        stream.finish()
        wait_until(client.all_acked, "every input message acked", 240, interval=0.2, retry_on=TRANSIENT)
        delivered = Counter(result_key(m) for m in out_client.read(OUTPUT_STREAM))
        tally = _sink_checks(
            result, stream.expected, delivered, dlq_entries(client), sink="nats", max_deliver=3
        )
        result.check("the daemon stayed up", daemon.alive(), "")
        result.details.update(outage_s=outage_s, naks=daemon.metric("rsigma_nats_naks_total"))
        result.details["dead_and_delivered"] = len(tally.dead_and_delivered)
        code = daemon.terminate()
        result.check("drains and exits 0 at the end", code == 0, f"exit {code}")
    result.notes.append(
        f"output server down {outage_s:g} s at {point:.0%}; {int(result.details['naks'])} naks,"
        f" {result.details['dead_lettered']} dead-lettered"
    )
    result.seconds = time.monotonic() - started
    return result


# ---------------------------------------------------------------------------------------------------
# 5. Malformed input

RING_MB = 32  # workers/pool.py RING_BYTES, in MB
DEEP = 100_000


def _nested(depth: int, inner: bytes = b"1") -> bytes:
    return b'{"x": ' * depth + inner + b"}" * depth


# Hostile payloads cycled through (marker -> payload) with the start of the error each must get in the DLQ.
# A payload that can carry its marker `#H<i>#` is told apart by it; the others are counted by error.
CHEAP: list[tuple[str, Callable[[bytes], bytes], str]] = [
    ("truncated JSON", lambda m: b'{"m": "' + m + b'", "CommandLine": "whoami', "invalid JSON: "),
    (
        "invalid UTF-8",
        lambda m: b'{"m": "' + m + b'", "CommandLine": "\xff\xfe whoami"}',
        "invalid JSON: str is not valid UTF-8",
    ),
    ("empty", lambda m: b"", "empty line"),
    ("whitespace only", lambda m: b" \t  \t ", "empty line"),
    (
        "raw NUL in a string",
        lambda m: b'{"m": "' + m + b'", "CommandLine": "who\x00ami"}',
        "invalid JSON: unexpected control character",
    ),
    ("NUL bytes only", lambda m: b"\x00" * 64, "invalid JSON: "),
    (
        "number out of range (1e999999)",
        lambda m: b'{"m": "' + m + b'", "x": 1e999999}',
        "invalid JSON: number is infinity",
    ),
    (
        "number out of range (401 digits)",
        lambda m: b'{"m": "' + m + b'", "x": 1' + b"0" * 400 + b"}",
        "invalid JSON: number is infinity",
    ),
    ("NaN", lambda m: b'{"m": "' + m + b'", "x": NaN}', "invalid JSON: "),
    (
        "trailing garbage",
        lambda m: b'{"m": "' + m + b'", "CommandLine": "whoami"} {"n": 1}',
        "invalid JSON: unexpected content after document",
    ),
    (
        "byte order mark",
        lambda m: b'\xef\xbb\xbf{"m": "' + m + b'", "CommandLine": "whoami"}',
        "invalid JSON: UTF-8 byte order mark",
    ),
    (
        "lone surrogate",
        lambda m: b'{"m": "' + m + b'", "CommandLine": "whoami \\ud800"}',
        "invalid JSON: no low surrogate",
    ),
    ("JSON array", lambda m: b'["' + m + b'", "whoami"]', "expected a JSON object, got list"),
    ("JSON string", lambda m: b'"' + m + b' whoami"', "expected a JSON object, got str"),
    ("JSON integer", lambda m: b"42", "expected a JSON object, got int"),
    ("JSON float", lambda m: b"4.2e1", "expected a JSON object, got float"),
    ("JSON null", lambda m: b"null", "expected a JSON object, got NoneType"),
    ("JSON true", lambda m: b"true", "expected a JSON object, got bool"),
]
RARE: dict[str, tuple[int, int, Callable[[bytes], bytes], str]] = {
    # name: (every, offset, payload, error), the first that applies wins
    "10 MB event": (
        500,
        250,
        lambda m: b'{"m": "' + m + b'", "CommandLine": "whoami", "pad": "' + b"x" * 10_000_000 + b'"}',
        "{unit} of 100000",
    ),
    "whoami nested 1,020 deep": (
        100,
        75,
        lambda m: b'{"m": "' + m + b'", "CommandLine": "whoami", "d": ' + _nested(1020) + b"}",
        "event nested too deeply to write its results",
    ),
    "array nested 100,000 deep": (
        50,
        25,
        lambda m: b'{"m": "' + m + b'", "d": ' + b"[" * DEEP + b"]" * DEEP + b"}",
        "invalid JSON: depth limit exceeded",
    ),
    "object nested 100,000 deep": (
        50,
        0,
        lambda m: b'{"m": "' + m + b'", "d": ' + _nested(DEEP) + b"}",
        "invalid JSON: depth limit exceeded",
    ),
}


def hostile_payload(i: int) -> tuple[str, bytes, str]:
    """(kind, payload, expected error) of hostile payload number i."""
    marker = b"#H%d#" % i
    for name, (every, offset, build, error) in RARE.items():
        if i % every == offset:
            return name, build(marker), error
    name, build, error = CHEAP[i % len(CHEAP)]
    return name, build(marker), error


def weird_good(n: int) -> tuple[bytes, list[str]]:
    """A valid event that looks odd but must be detected like any other: (payload, rules it fires)."""
    kind = n // 7 % 5
    if kind == 0:
        return b'{"n": %d, "CommandLine": "whoami", "big": 123456789012345678901234567890}' % n, [WHOAMI]
    if kind == 1:
        return b'{"n": %d, "CommandLine": "whoami\\u0000", "k\\u0000": "x\\u0000y"}' % n, [WHOAMI]
    if kind == 2:  # deeper than orjson writes (254): the stdlib fallback writes it
        return b'{"n": %d, "CommandLine": "whoami", "d": ' % n + _nested(300) + b"}", [WHOAMI]
    if kind == 3:
        return f'{{"n": {n}, "CommandLine": "whoami \u2603 \U0001f600 \u202e"}}'.encode(), [WHOAMI]
    pad = b"y" * 100_000
    return b'{"n": %d, "CommandLine": "whoami", "Tag": "double", "pad": "%s"}' % (n, pad), [WHOAMI, DOUBLE]


def malformed_stream(hostile: int) -> tuple[list[bytes], set[Key], list[tuple[str, bytes, str]]]:
    """Good and hostile payloads interleaved: the payloads, the good ones' expected detections and the
    hostile ones' (kind, marker or b"", expected error)."""
    payloads: list[bytes] = []
    expected: set[Key] = set()
    bad: list[tuple[str, bytes, str]] = []
    for i in range(hostile):
        n = i + 1
        if n % 7 == 3:
            data, fired = weird_good(n)
            payloads.append(data)
            expected |= {(n, t) for t in fired}
        else:
            payloads.append(payload(n))
            expected |= {(n, t) for t in titles_for(event(n))}
        kind, data, error = hostile_payload(i)
        payloads.append(data)
        bad.append((kind, b"#H%d#" % i if b"#H%d#" % i in data[:4096] else b"", error))
    return payloads, expected, bad


def settled_memory(daemon: Daemon, samples: int = 3, interval: float = 0.3) -> dict[str, float]:
    """The lowest of a few readings: what the process holds, not what a payload in passing takes."""
    readings = []
    for i in range(samples):
        if i:
            time.sleep(interval)
        readings.append(daemon.memory_mb())
    return min(readings, key=lambda r: r["RssAnon"])


def malformed(work: Path, *, hostile: int = 2_000, via: str = "nats", workers: int = 0) -> Result:
    """`hostile` bad payloads interleaved with good events, after a warm-up of good events.

    Every good event's detections must be delivered, every bad payload dead-lettered with the error
    its kind calls for, the process must stay up, and its memory flat (VmRSS after the warm-up and
    after the hostile stream). `via` is `nats` (one message per payload; the test server's
    max_payload is raised to 12 MB for the 10 MB ones) or `stdin` (one line per payload).
    """
    name = f"malformed input via {via}" + (f" (serve --workers {workers})" if workers else "")
    result = Result(name, hostile)
    started = time.monotonic()
    payloads, expected, bad = malformed_stream(hostile)
    assert not any(b"\n" in p for p in payloads), "a payload would split into lines on stdin"
    warm = [payload(n) for n in range(1_000_001, 1_002_001)]
    expected_warm = expected_keys(range(1_000_001, 1_002_001))
    unit = "event" if via == "nats" else "line"
    with contextlib.ExitStack() as stack:
        out, dlq = work / "out.ndjson", work / "dlq.ndjson"
        # --input-format json: these are the json format's hostile kinds (under auto, the default, bare
        # values and NUL bytes are plain-text events)
        sinks = [
            "--output",
            f"file://{out}",
            "--include-event",
            "--dlq",
            f"file://{dlq}",
            "--input-format",
            "json",
        ]
        if via == "nats":
            server = stack.enter_context(NatsServer(work / "nats", config="max_payload: 12582912\n"))
            client = stack.enter_context(NatsClient(server.url))
            client.add_stream(INPUT_STREAM, [INPUT_FILTER])
            args = ["--input", f"{server.url}/{INPUT_FILTER}", *sinks]
        else:
            args = ["--input", "stdin", *sinks]
        daemon = stack.enter_context(
            Daemon(work / "daemon", write_rules(work), args, workers=workers, stdin_pipe=via == "stdin")
        )
        daemon.start()

        def feed(items: list[bytes]) -> None:
            if via == "nats":
                client.publish(items)
            else:
                daemon.send(b"".join(p + b"\n" for p in items))

        def done(total: int) -> bool:
            m = daemon.metrics()
            seen = m.get(("rsigma_events_processed_total", frozenset()), 0)
            seen += m.get(("rsigma_events_parse_errors_total", frozenset()), 0)
            return seen >= total and daemon.status()["events_in_flight"] == 0

        feed(warm)
        wait_until(lambda: done(len(warm)), "the warm-up", 120, interval=0.1, retry_on=TRANSIENT)
        rss_before = settled_memory(daemon)
        t0 = time.monotonic()
        half = len(payloads) // 2
        feed(payloads[:half])
        wait_until(
            lambda: done(len(warm) + half),
            "the first half of the hostile stream",
            300,
            interval=0.1,
            retry_on=TRANSIENT,
        )
        rss_half = settled_memory(daemon)
        feed(payloads[half:])
        wait_until(
            lambda: done(len(warm) + len(payloads)),
            "the hostile stream",
            300,
            interval=0.1,
            retry_on=TRANSIENT,
        )
        elapsed = time.monotonic() - t0
        rss_after = settled_memory(daemon)
        result.check("the daemon stayed up", daemon.alive(), "")
        result.check("/healthz answers 200", daemon.get("/healthz").status == 200, "")
        processed = daemon.metric("rsigma_events_processed_total")
        errors = daemon.metric("rsigma_events_parse_errors_total")
        dead = [json.loads(line) for line in file_lines(dlq)]
        delivered, torn = parse_lines(file_lines(out))
        if via == "nats":
            result.check("every message acked", client.all_acked(), client.consumer())
        else:
            daemon.close_stdin()
            code = daemon.wait_exit(60)
            result.check("exits 0 at the end of input", code == 0, f"exit {code}")
    # Accounting: good detections, then every DLQ entry against the hostile payload it belongs to.
    Tally(expected | expected_warm, delivered).record(result, "good events")
    result.check("no torn output line", not torn, len(torn))
    by_marker = {m: (kind, error) for kind, m, error in bad if m}
    unmarked = Counter(error for _, m, error in bad if not m)
    wrong, seen_markers, seen_unmarked = [], Counter(), Counter()
    for entry in dead:
        found = re.search(r"#H\d+#", entry["original_event"][:4096])
        if found and found.group().encode() in by_marker:
            kind, error = by_marker[found.group().encode()]
            seen_markers[found.group()] += 1
            error = error.format(unit=unit)
            if not entry["error"].startswith(error) or (
                kind == "10 MB event"
                and (len(entry["original_event"]) > 4200 or "more bytes]" not in entry["original_event"])
            ):
                wrong.append((kind, entry["error"][:80]))
        else:
            seen_unmarked[entry["error"]] += 1
    missing = [k for k, m, _ in bad if m and seen_markers[m.decode()] != 1]
    result.check("every marked bad payload dead-lettered once", not missing, f"{len(missing)}: {missing[:5]}")
    result.check("each with the error its kind calls for", not wrong, f"{len(wrong)}: {wrong[:3]}")
    matched = all(
        sum(c for e, c in seen_unmarked.items() if e.startswith(prefix)) == want
        for prefix, want in unmarked.items()
    )
    result.check(
        "the unmarked bad payloads (empty, NUL, bare values) counted by error",
        matched and sum(seen_unmarked.values()) == sum(unmarked.values()),
        f"expected {dict(unmarked)}, got {dict(seen_unmarked)}",
    )
    result.check("rsigma_events_parse_errors_total counts every bad payload", errors == len(bad), errors)
    result.check(
        "rsigma_events_processed_total counts every good event",
        processed >= len(warm) + len(payloads) - len(bad) and processed <= len(warm) + len(payloads),
        processed,
    )  # the whoami nested 1,020 deep is evaluated, then dead-lettered
    # The first half sets the high-water mark (allocator arenas, the biggest payloads); a leak would
    # keep growing through the second half, which holds as many payloads of every kind. Private memory
    # (RssAnon) is what can leak; the pool's rings are shared memory whose touched pages count in VmRSS
    # (RssShmem) up to their fixed size, in the supervisor and in the matcher alike.
    growth = rss_after["RssAnon"] - rss_half["RssAnon"]
    result.check(
        "private memory flat over the second half (RssAnon grew < 24 MB)", growth < 24, f"{growth:+.1f} MB"
    )
    ring_bound = workers * 2 * 2 * RING_MB  # two rings per matcher, mapped by both sides
    result.check("shared memory within the rings' size", rss_after["RssShmem"] <= ring_bound + 8, rss_after)
    result.details.update(
        memory_before_mb=rss_before,
        memory_half_mb=rss_half,
        memory_after_mb=rss_after,
        dlq_entries=len(dead),
        seconds_for_stream=round(elapsed, 2),
        kinds=len(CHEAP) + len(RARE),
        oversized=sum(1 for k, _, _ in bad if k == "10 MB event"),
    )
    where = " (daemon + matchers)" if workers else ""
    result.notes.append(
        f"{hostile:,} bad payloads of {len(CHEAP) + len(RARE)} kinds ({result.details['oversized']} of 10 MB)"
        f" between {hostile:,} good events; {len(dead):,} DLQ entries; {elapsed:.1f} s"
    )
    result.notes.append(
        f"VmRSS{where} {rss_before['VmRSS']:.0f} -> {rss_half['VmRSS']:.0f} (half)"
        f" -> {rss_after['VmRSS']:.0f} MB;"
        f" RssAnon {rss_before['RssAnon']:.0f} -> {rss_half['RssAnon']:.0f} -> {rss_after['RssAnon']:.0f} MB"
    )
    result.seconds = time.monotonic() - started
    return result


# ---------------------------------------------------------------------------------------------------
# 6. Hostile rules

CATASTROPHIC = [r"(a+)+$", r"(a|aa)+$", r"(a|a?)+$", r"^(\w+\s?)*$", r"(.*a){12}$"]
#: Lookaround and a backreference: RE2 cannot run these, so they fall back to the backtracking `regex`.
BACKTRACKING = [r"^(a+)+(?!b)$", r"(a|aa)+(?<=a)$", r"^(a|a?)+\1$"]

GOOD_RULES = {
    "good_whoami.yml": RULES.split("---\n")[0],
    "nested/good_double.yml": RULES.split("---\n")[1],
}
BROKEN_RULES = {
    "broken_yaml.yml": "title: x\ndetection: [unclosed\n",
    "no_detection.yml": "title: no detection\nlogsource: {product: test}\n",
    "undefined_identifier.yml": "title: bad condition\nlogsource: {product: test}\n"
    "detection:\n  sel: {a: 1}\n  condition: sel and missing\n",
    "unknown_modifier.yml": "title: bad modifier\nlogsource: {product: test}\n"
    "detection:\n  sel: {a|frobnicate: 1}\n  condition: sel\n",
    "invalid_regex.yml": "title: bad regex\nlogsource: {product: test}\n"
    "detection:\n  sel: {a|re: '(unclosed'}\n  condition: sel\n",
    "binary.yml": b"\xff\xfe\x00\x01garbage\x02",
    "a_list.yml": "- just\n- a list\n",
    "unknown_correlation_rule.yml": "title: corr\ncorrelation:\n  type: event_count\n  rules: [nonexistent]\n"
    "  group-by: [User]\n  timespan: 1h\n  condition: {gte: 3}\n",
}


def regex_rules(patterns: list[str]) -> str:
    docs = []
    for i, pattern in enumerate(patterns):
        rule = {
            "title": f"Hostile regex {i}",
            "logsource": {"product": "test"},
            "detection": {"selection": {"Payload|re": pattern}, "condition": "selection"},
        }
        docs.append(json.dumps(rule))  # JSON is YAML
    return "\n---\n".join(docs) + "\n"


def hostile_rules(work: Path, *, field_bytes: int = 1_000_000, runs: int = 3) -> Result:
    """(a) Catastrophic-backtracking regexes on a field of `field_bytes`: evaluation time must stay
    bounded and grow linearly (RE2). Measured in-process at three sizes, and end to end through the
    daemon. A pattern RE2 cannot run falls back to the backtracking `regex` module with a warning;
    an event whose backtracking searches run past the budget (0.5 s in all) is dead-lettered and
    counted, in process and through a matcher pool. (b) A rule directory with broken files: the
    good rules load and every broken file is named, by `rule validate` (exit 1), `engine eval` and
    the daemon (exit 0)."""

    result = Result("hostile rules", len(CATASTROPHIC))
    started = time.monotonic()
    rules = work / "regex.yml"
    rules.write_text(regex_rules(CATASTROPHIC))
    evaluator = compile_rules(rules)
    result.check(
        "every catastrophic pattern loads on RE2", len(evaluator.engine.rules) == len(CATASTROPHIC), ""
    )
    timings: dict[int, float] = {}
    for size in (field_bytes // 100, field_bytes // 10, field_bytes):
        for text in ("a" * size + "!", "a" * size):  # no match (the worst case for backtracking), a match
            best = min(_timed(lambda t=text: evaluator.process({"Payload": t})) for _ in range(runs))
            timings[size] = max(timings.get(size, 0.0), best)
    fired = {d.rule_title for d in evaluator.process({"Payload": "a" * 1000})}
    result.check("the patterns still match", len(fired) == len(CATASTROPHIC), sorted(fired))
    worst = timings[field_bytes]
    ratio = timings[field_bytes] / max(timings[field_bytes // 10], 1e-6)
    per_pattern = worst / len(CATASTROPHIC)
    result.check(
        f"< 1 s per pattern on {field_bytes:,} bytes", per_pattern < 1, f"{per_pattern:.3f} s", timed=True
    )
    result.check(
        "time grows linearly (10x the field: < 30x the time)", ratio < 30, f"{ratio:.1f}x", timed=True
    )

    # The same through the daemon: three such events and a good one, then it must still answer.
    work_d = work / "daemon"
    rules_d = work / "daemon-rules"
    rules_d.mkdir()
    (rules_d / "regex.yml").write_text(regex_rules(CATASTROPHIC))
    (rules_d / "whoami.yml").write_text(GOOD_RULES["good_whoami.yml"])
    out = work / "out.ndjson"
    args = ["--input", "stdin", "--output", f"file://{out}", "--max-event-bytes", str(2 * field_bytes + 1000)]
    with Daemon(work_d, rules_d, args, stdin_pipe=True) as daemon:
        daemon.start()
        t0 = time.monotonic()
        big = orjson.dumps({"Payload": "a" * field_bytes + "!"}) + b"\n"
        daemon.send(big * 3 + orjson.dumps({"CommandLine": "whoami"}) + b"\n")
        wait_until(
            lambda: daemon.metric("rsigma_events_processed_total") >= 4,
            "the events",
            60,
            interval=0.05,
            retry_on=TRANSIENT,
        )
        end_to_end = time.monotonic() - t0
        result.check(
            "the daemon evaluates 3 such events in < 10 s", end_to_end < 10, f"{end_to_end:.2f} s", timed=True
        )
        result.check("and still answers", daemon.get("/healthz").status == 200, "")
        daemon.close_stdin()
        code = daemon.wait_exit(30)
    titles = Counter(json.loads(line)["rule_title"] for line in file_lines(out))
    result.check("the good rule fired alongside", titles[WHOAMI] == 1, titles)
    result.check("the daemon exits 0", code == 0, f"exit {code}")

    # Patterns RE2 cannot run: backtracking, within one budget per event.
    with _capture_warnings() as warnings:
        slow = compile_rules(_write(work / "fallback.yml", regex_rules(BACKTRACKING)))
    result.check(
        "each non-RE2 pattern is named in a warning",
        sum("needs a backtracking engine" in w for w in warnings) == len(BACKTRACKING),
        warnings,
    )
    fired = {d.rule_title for d in slow.process({"Payload": "aaaa"})}
    result.check("the non-RE2 patterns still match", len(fired) == len(BACKTRACKING), sorted(fired))
    cut_before = backtracking_timeouts()
    big_payload = orjson.dumps({"Payload": "a" * field_bytes + "!"})
    options = PayloadOptions(2 * field_bytes + 1000)
    answers: list[Any] = []
    fallback = _timed(lambda: answers.extend(evaluate_payloads(slow, [big_payload], options)[0]))
    cut = backtracking_timeouts() - cut_before
    reason = answers[0][1] if answers else None
    result.check(
        f"an event of {field_bytes:,} bytes is dead-lettered, the rule named",
        isinstance(reason, str) and "rule 'Hostile regex 0'" in reason,
        reason,
    )
    result.check("and counted once", cut == 1, cut)
    result.check(
        f"< 1 s for the event (budget {BACKTRACKING_BUDGET_S:g} s)",
        fallback < 1,
        f"{fallback:.3f} s",
        timed=True,
    )
    rules_f = work / "fallback-rules"
    rules_f.mkdir()
    (rules_f / "fallback.yml").write_text(regex_rules(BACKTRACKING))
    (rules_f / "whoami.yml").write_text(GOOD_RULES["good_whoami.yml"])
    out_f = work / "fallback-out.ndjson"
    args = [
        "--input",
        "stdin",
        "--output",
        f"file://{out_f}",
        "--max-event-bytes",
        str(2 * field_bytes + 1000),
    ]
    with Daemon(work / "daemon-fallback", rules_f, args, stdin_pipe=True, workers=1) as daemon:
        daemon.start()
        t0 = time.monotonic()
        daemon.send(big * 3 + orjson.dumps({"CommandLine": "whoami"}) + b"\n")
        wait_until(
            lambda: (
                daemon.metric("rsigma_events_processed_total") >= 1
                and daemon.metric("rsigma_dlq_events_total") >= 3
            ),
            "the events",
            60,
            interval=0.05,
            retry_on=TRANSIENT,
        )
        pool_s = time.monotonic() - t0
        pool_cut = daemon.metric("rsigma_regex_timeouts_total")
        gave_up = [r for r in daemon.logs() if "backtracking regex budget" in str(r.get("error"))]
        daemon.close_stdin()
        code = daemon.wait_exit(30)
    expected_cut = 3
    result.check(
        "serve --workers 1: rsigma_regex_timeouts_total counts every event over the budget",
        pool_cut == expected_cut,
        f"{pool_cut:g} of {expected_cut}",
    )
    result.check("and the log names the rule each time", len(gave_up) == expected_cut, len(gave_up))
    result.check("serve --workers 1: 3 such events in < 10 s", pool_s < 10, f"{pool_s:.2f} s", timed=True)
    titles = Counter(json.loads(line)["rule_title"] for line in file_lines(out_f))
    result.check("serve --workers 1: the good rule fired alongside", titles == {WHOAMI: 1}, titles)
    result.check("serve --workers 1 exits 0", code == 0, f"exit {code}")

    # (b) A directory of good and broken rules.
    rule_dir = work / "rules"
    for name, text in {**GOOD_RULES, **BROKEN_RULES}.items():
        path = rule_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text)
    rsigma = [sys.executable, "-m", "rsigma"]
    validate = subprocess.run(
        [*rsigma, "rule", "validate", str(rule_dir)], capture_output=True, text=True, timeout=60
    )
    named = [n for n in BROKEN_RULES if f"error: {rule_dir / n}" in validate.stdout]
    result.check("rule validate exits 1", validate.returncode == 1, validate.returncode)
    result.check(
        "rule validate names every broken file",
        len(named) == len(BROKEN_RULES),
        sorted(set(BROKEN_RULES) - set(named)),
    )
    files = len(GOOD_RULES) + len(BROKEN_RULES)
    summary = f"{len(GOOD_RULES)} rules, 0 filters, 0 correlations loaded from {files} files"
    result.check(
        "and counts the good ones",
        f"{summary}; {len(BROKEN_RULES)} failed" in validate.stdout,
        validate.stdout[-200:],
    )
    events = b'{"CommandLine": "whoami", "Tag": "double"}\n{"CommandLine": "notepad"}\n'
    evaluate = subprocess.run(
        [*rsigma, "engine", "eval", "-r", str(rule_dir)], input=events, capture_output=True, timeout=60
    )
    stderr = evaluate.stderr.decode()
    result.check("engine eval on the directory exits 0", evaluate.returncode == 0, evaluate.returncode)
    result.check(
        "engine eval names every broken file",
        all(f"warning: skipped {rule_dir / n}" in stderr for n in BROKEN_RULES),
        stderr[-300:],
    )
    fired = sorted(json.loads(line)["rule_title"] for line in evaluate.stdout.splitlines())
    result.check("engine eval: the good rules fire", fired == [DOUBLE, WHOAMI], fired)
    out2 = work / "dir-out.ndjson"
    with Daemon(
        work / "daemon-dir", rule_dir, ["--input", "stdin", "--output", f"file://{out2}"], stdin_pipe=True
    ) as d:
        d.start()
        d.send(events)
        d.close_stdin()
        code = d.wait_exit(30)
        log = d.stderr()
    result.check("the daemon starts on the directory and exits 0", code == 0, f"exit {code}")
    result.check(
        "the daemon names every broken file",
        all(f"skipped {rule_dir / n}" in log for n in BROKEN_RULES),
        log[-300:],
    )
    fired = sorted(json.loads(line)["rule_title"] for line in file_lines(out2))
    result.check("the daemon: the good rules fire", fired == [DOUBLE, WHOAMI], fired)

    result.details.update(
        seconds_by_field_bytes={k: round(v, 4) for k, v in timings.items()},
        end_to_end_s=round(end_to_end, 2),
        fallback_seconds=round(fallback, 3),
        fallback_pool_seconds=round(pool_s, 2),
        broken_files=len(BROKEN_RULES),
    )
    result.notes.append(
        f"{len(CATASTROPHIC)} catastrophic patterns together:"
        f" {', '.join(f'{k // 1000:,} KB {v * 1000:.0f} ms' for k, v in timings.items())}"
        f" ({ratio:.1f}x for 10x); daemon {end_to_end:.2f} s for 3 events of 1 MB"
    )
    result.notes.append(
        f"{len(BACKTRACKING)} non-RE2 patterns ({', '.join(BACKTRACKING)}), one budget of"
        f" {BACKTRACKING_BUDGET_S:g} s per event: {fallback:.2f} s on {field_bytes // 1000:,} KB;"
        f" serve --workers 1 {pool_s:.2f} s for 3 events of 1 MB, {pool_cut:g} dead-lettered"
    )
    result.notes.append(
        f"{len(BROKEN_RULES)} broken rule files among {len(GOOD_RULES)} good: each named, good ones loaded"
    )
    result.seconds = time.monotonic() - started
    return result


def compile_rules(path: Path) -> Any:
    """The rules of a file, compiled as the daemon does (without `load_evaluator`'s gc.freeze())."""
    from rsigma.evaluator import Evaluator
    from rsigma.rules import RuleSet, load_rules

    ruleset = RuleSet()
    ruleset.extend(load_rules(path))
    return Evaluator(ruleset)


def _timed(fn: Callable[[], Any]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@contextlib.contextmanager
def _capture_warnings() -> Iterator[list[str]]:
    """Log records of the rsigma loggers while loading (the regex fallback warns through logging)."""
    import logging

    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    handler = Keep(logging.WARNING)
    logger = logging.getLogger("rsigma")
    logger.addHandler(handler)
    try:
        yield seen
    finally:
        logger.removeHandler(handler)


# ---------------------------------------------------------------------------------------------------
# 7. Soak


def soak(
    work: Path,
    *,
    seconds: float = 60.0,
    workers: int = 0,
    load: float = 0.7,
    capacity_events: int = 20_000,
    sample_s: float = 2.0,
    every: int = 20,
) -> Result:
    """Measure capacity, then publish at `load` of it for `seconds`: 0 lost, and memory and queue
    depths flat (sampled every `sample_s`). One event in `every` is detected (6% by default, closer to
    a real stream than the other scenarios' 60%, and the output stays quick to read).

    Capacity is measured twice. On a backlog first, which warms the daemon up but leaves out the
    publisher, which shares the machine during the soak (on 2 cores that made the figure up to 40%
    too high). Then with the publisher trying for 1.5 times that rate for 4 s: the rate at which
    events are acknowledged between 1 s and 3 s into it is the capacity the soak's load is taken of
    (or the publisher's own limit, if that is lower: the soak needs both)."""
    name = f"soak {seconds / 60:g} min at {load:.0%}" + (f" (serve --workers {workers})" if workers else "")
    result = Result(name, 0)
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(NatsServer(work / "nats"))
        client = stack.enter_context(NatsClient(server.url))
        prefill(client, capacity_events, every)
        args = nats_daemon_args(server.url)
        daemon = stack.enter_context(Daemon(work / "daemon", write_rules(work), args, workers=workers))
        daemon.start()
        t0 = time.monotonic()
        wait_until(client.all_acked, "the capacity backlog", 300, interval=0.05, retry_on=TRANSIENT)
        backlog_capacity = capacity_events / (time.monotonic() - t0)
        trial = int(backlog_capacity * 1.5 * 4)
        trial_numbers = range(capacity_events + 1, capacity_events + trial + 1)
        t0 = time.monotonic()
        trying = client.publish_paced(trial_numbers, 1.5 * backlog_capacity, tick=0.01, every=every)
        time.sleep(max(0.0, t0 + 1 - time.monotonic()))
        floor_1, t1 = client.ack_floor(), time.monotonic()
        time.sleep(max(0.0, t0 + 3 - time.monotonic()))
        capacity = (client.ack_floor() - floor_1) / (time.monotonic() - t1)
        trying.result(120)
        wait_until(client.all_acked, "the capacity trial", 300, interval=0.05, retry_on=TRANSIENT)
        measured = capacity_events + trial
        rate = load * capacity
        total = int(rate * seconds)
        numbers = range(measured + 1, measured + total + 1)
        result.events = measured + total
        samples: list[dict[str, float]] = []
        begun = time.monotonic()
        publishing = client.publish_paced(numbers, rate, tick=0.01, every=every)
        while not publishing.done():
            time.sleep(max(0.0, begun + len(samples) * sample_s - time.monotonic()))
            m = daemon.metrics()
            pending, ack_pending = client.consumer()
            sample = {
                "t": time.monotonic() - begun,
                "published": client.published,
                "backlog": pending + ack_pending,
                "input_queue": m.get(("rsigma_input_queue_depth", frozenset()), 0.0),
                "worker_queue": sum(v for (k, _), v in m.items() if k == "rsigma_worker_queue_depth"),
                **daemon.memory_mb(),
            }
            samples.append(sample)
        publishing.result(60)
        drained_at = time.monotonic()
        wait_until(client.all_acked, "the backlog after the soak", 120, interval=0.1, retry_on=TRANSIENT)
        drain_s = time.monotonic() - drained_at
        expected = expected_keys(range(1, measured + total + 1), every)
        output_tally(client, expected).record(result)
        code = daemon.terminate()
        result.check("drains and exits 0 at the end", code == 0, f"exit {code}")
    steady = samples[len(samples) // 5 :] or samples  # after a warm-up fifth
    third = max(1, len(steady) // 3)
    first, last = steady[:third], steady[-third:]

    def mean(rows: list[dict[str, float]], key: str) -> float:
        return sum(r[key] for r in rows) / len(rows)

    anon_growth = mean(last, "RssAnon") - mean(first, "RssAnon")
    result.check(
        "private memory flat (RssAnon, last third - first third < 16 MB)",
        anon_growth < 16,
        f"{anon_growth:+.1f} MB",
    )
    keep_up = max(2_000, rate * 2)  # at most ~2 s of events outstanding
    worst = max(r["backlog"] for r in steady)
    result.check(
        f"keeps up: backlog never above {keep_up:,.0f} (2 s of input)",
        worst <= keep_up,
        f"max {worst:,.0f}",
        timed=True,
    )
    result.check(
        "backlog not growing (last third <= first third + 1,000)",
        mean(last, "backlog") <= mean(first, "backlog") + 1_000,
        f"{mean(first, 'backlog'):.0f} -> {mean(last, 'backlog'):.0f}",
        timed=True,
    )
    result.check("drained within 10 s of the last event", drain_s < 10, f"{drain_s:.1f} s", timed=True)
    result.details.update(
        capacity=round(capacity),
        backlog_capacity=round(backlog_capacity),
        rate=round(rate),
        samples=samples,
        drain_s=round(drain_s, 2),
    )
    result.notes.append(
        f"capacity {capacity:,.0f} events/s with the publisher running ({backlog_capacity:,.0f} on a"
        f" backlog), soak at {rate:,.0f}/s for {seconds:g} s ({total:,} events)"
    )
    result.notes.append(
        f"VmRSS {mean(first, 'VmRSS'):.0f} -> {mean(last, 'VmRSS'):.0f} MB,"
        f" RssAnon {mean(first, 'RssAnon'):.0f} -> {mean(last, 'RssAnon'):.0f} MB;"
        f" backlog mean {mean(first, 'backlog'):.0f} -> {mean(last, 'backlog'):.0f},"
        f" max {worst:,.0f}; input queue max {max(r['input_queue'] for r in steady):.0f}"
    )
    result.seconds = time.monotonic() - started
    return result
