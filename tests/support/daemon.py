"""`rsigma engine daemon` / `rsigma serve` as a real subprocess: the one way tests, benchmarks and the
demo start the daemon.

    with DaemonProcess(["-r", rules, "--input", "http"], home=tmp_path) as d:
        d.start()                      # returns at the 'daemon started' log line; d.base is the API
        d.post_events({"CommandLine": "whoami"})
        d.wait_processed(1)
        assert d.terminate() == 0      # SIGTERM: drain, exit code
    # leaving the block kills the daemon and every process it started (close())

* The command is `python [python_args] -m rsigma <command> <args>`, with `--api-addr 127.0.0.1:0` and
  `--reload-poll 0` added unless the arguments hold them, and `--workers N` when `workers` is given and
  the arguments do not hold it.
* stdout and stderr go to files under `home` (`<name>-<generation>.stdout` / `.stderr`): no pipe to
  drain, nothing to deadlock. stdin is a pipe the caller writes to (`send`, `close_stdin`), a bytes
  payload written by a thread and then closed (EOF), a regular file, or /dev/null.
* Readiness is the `daemon started` JSON log line on stderr; the API address comes from it (or, before
  that, from the `API listening` line: `wait_api()`).
* `start()` again after the process ended is a restart with the same flags (a new generation of
  log files; `logs(all_generations=True)` reads them all).
* Teardown (`close()`, the context manager's exit, `Daemons.close()` in fixtures) SIGKILLs the daemon
  and every process that carries its marker variable (its matchers, multiprocessing's helpers, and
  orphans of an earlier generation that a test killed the supervisor of), closes the files and joins the
  stdin writer. `kill()` on the other hand is a crash: SIGKILL to the daemon process alone.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from tests.support import processes
from tests.support.metrics import Samples, parse_metrics, sample
from tests.support.waiting import WAIT_TIMEOUT, WaitTimeout, wait_until

#: Waiting for the 'daemon started' line: a pool under load on 2 cores can take a while.
STARTUP_TIMEOUT = 60.0

Arg = str | os.PathLike[str]
Event = Mapping[str, Any] | bytes


def ndjson(*events: Event) -> bytes:
    """One JSON object per line (bytes are taken as one line each, without their newline)."""
    return b"".join((e if isinstance(e, bytes) else json.dumps(e).encode()) + b"\n" for e in events)


def read_lines(path: Path) -> list[str]:
    """Complete lines of a file the daemon writes (a partial last line is left for later)."""
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8", errors="replace")
    return text.splitlines() if text.endswith("\n") else text.splitlines()[:-1]


def read_json_lines(path: Path) -> list[Any]:
    return [json.loads(line) for line in read_lines(path) if line.strip()]


@dataclass
class Response:
    status: int
    headers: Any
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def http(
    method: str,
    url: str,
    body: bytes | None = None,
    timeout: float = 10.0,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """One HTTP request; an error status is a Response too (only a failed connection raises). A body
    is sent as NDJSON unless `headers` give a Content-Type; an empty one is not sent at all."""
    request = urllib.request.Request(url, data=body or None, method=method, headers=dict(headers or {}))
    if body and not request.has_header("Content-type"):
        request.add_header("Content-Type", "application/x-ndjson")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            return Response(r.status, r.headers, r.read())
    except urllib.error.HTTPError as e:
        with e:
            return Response(e.code, e.headers, e.read())


class DaemonProcess:
    def __init__(
        self,
        args: Sequence[Arg],
        *,
        home: Path,
        command: str = "engine daemon",
        workers: int | None = None,
        stdin: bytes | Path | str = "pipe",
        stdout: str = "file",
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        python_args: Sequence[str] = (),
        api_addr: str | None = "127.0.0.1:0",
        reload_poll: str | None = "0",
        new_session: bool = True,
        name: str = "daemon",
    ) -> None:
        """`command`: "engine daemon" or "serve". `stdin`: "pipe" (kept open for `send`), "devnull", bytes
        (written, then EOF) or a Path (a regular file). `stdout`: "file", "devnull", or "pipe" (never read:
        only for a test of a stuck consumer). `env`: variables added to this process's environment at
        start. `python_args`: interpreter arguments before `-m rsigma` (`-m cProfile -o FILE`).
        `api_addr`/`reload_poll`: added unless the arguments give them (None: add nothing).
        `new_session`: the daemon leads its own session, so a Ctrl-C at the terminal reaches only the
        process that started it, which then stops the daemon in order."""
        assert command in ("engine daemon", "serve"), command
        assert stdout in ("file", "devnull", "pipe"), stdout
        assert isinstance(stdin, bytes | Path) or stdin in ("pipe", "devnull"), stdin
        self.home = home
        self.command = command
        self.args = [os.fspath(a) for a in args]
        self.workers = workers
        self.stdin_mode = stdin
        self.stdout_mode = stdout
        self.cwd = cwd or home
        self.env = dict(env or {})
        self.python_args = list(python_args)
        self.api_addr = api_addr
        self.reload_poll = reload_poll
        self.new_session = new_session
        self.name = name
        self.mark = f"{os.getpid()}-{uuid.uuid4().hex}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.generation = 0
        self.api = ""
        self.base = ""
        self._files: list[IO[bytes]] = []
        self._writers: list[threading.Thread] = []

    # ---- process -------------------------------------------------------------------------

    def argv(self) -> list[str]:
        argv = list(self.args)
        if self.workers is not None and "--workers" not in argv:
            argv += ["--workers", str(self.workers)]
        if self.api_addr is not None and "--api-addr" not in argv:
            argv += ["--api-addr", self.api_addr]
        if self.reload_poll is not None and "--reload-poll" not in argv:
            argv += ["--reload-poll", self.reload_poll]
        return [sys.executable, *self.python_args, "-m", "rsigma", *self.command.split(), *argv]

    def start(self, wait: bool = True, timeout: float = STARTUP_TIMEOUT) -> DaemonProcess:
        """Start the process (again, after it ended: a restart); with `wait`, return at 'daemon started'."""
        assert not self.alive(), "the daemon is still running"
        self._close_files()
        self.generation += 1
        self.api = self.base = ""
        self.home.mkdir(parents=True, exist_ok=True)
        err = self.stderr_path.open("wb")
        self._files.append(err)
        out: Any = subprocess.DEVNULL
        if self.stdout_mode == "file":
            out = self.stdout_path.open("wb")
            self._files.append(out)
        elif self.stdout_mode == "pipe":
            out = subprocess.PIPE
        stdin: Any = subprocess.PIPE
        if isinstance(self.stdin_mode, Path):
            stdin = self.stdin_mode.open("rb")
            self._files.append(stdin)
        elif self.stdin_mode == "devnull":
            stdin = subprocess.DEVNULL
        self.proc = subprocess.Popen(
            self.argv(),
            stdin=stdin,
            stdout=out,
            stderr=err,
            cwd=self.cwd,
            env={**os.environ, **self.env, "PYTHONUNBUFFERED": "1", processes.MARK_VARIABLE: self.mark},
            start_new_session=self.new_session,
        )
        if isinstance(self.stdin_mode, bytes):
            self._feed(self.stdin_mode)
        if wait:
            self.wait_started(timeout)
        return self

    def _feed(self, payload: bytes) -> None:
        proc = self.proc
        assert proc is not None and proc.stdin is not None

        def feed() -> None:
            with contextlib.suppress(BrokenPipeError, OSError, ValueError):
                assert proc.stdin is not None
                proc.stdin.write(payload)
                proc.stdin.close()

        writer = threading.Thread(target=feed, name=f"{self.name}-stdin", daemon=True)
        writer.start()
        self._writers.append(writer)

    def wait_started(self, timeout: float = STARTUP_TIMEOUT) -> dict[str, Any]:
        """The 'daemon started' record; fails at once if the process exits first."""

        def started() -> dict[str, Any] | None:
            record = self.find_log("daemon started")
            if record is None and not self.alive():
                raise AssertionError(
                    f"{self.name} exited with {self.returncode} before starting:\n{self.stderr()[-3000:]}"
                )
            return record

        try:
            record = wait_until(started, f"the 'daemon started' line of {self.name}", timeout)
        except WaitTimeout as e:
            raise WaitTimeout(f"{e}:\n{self.stderr()[-3000:]}") from None
        self.api = record["api"]
        self.base = f"http://{self.api}"
        return record

    def wait_api(self, timeout: float = STARTUP_TIMEOUT) -> str:
        """The API address, from the 'API listening' line (before the daemon has started: it may still
        be waiting for a NATS server); sets `base`."""

        def listening() -> dict[str, Any] | None:
            record = self.find_log("API listening")
            if record is None and not self.alive():
                raise AssertionError(f"{self.name} exited with {self.returncode}:\n{self.stderr()[-3000:]}")
            return record

        self.api = wait_until(listening, f"the 'API listening' line of {self.name}", timeout)["api"]
        self.base = f"http://{self.api}"
        return self.api

    @property
    def pid(self) -> int:
        assert self.proc is not None, "not started"
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_exit(self, timeout: float = WAIT_TIMEOUT) -> int:
        """The exit code; fails if the process is still running after `timeout` (a hang guard)."""
        assert self.proc is not None, "not started"
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise WaitTimeout(
                f"{self.name} still running after {timeout:g} s:\n{self.stderr()[-3000:]}"
            ) from None

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None, "not started"
        self.proc.send_signal(sig)

    def terminate(self, timeout: float = 60.0) -> int:
        """SIGTERM (drain, save state) and the exit code."""
        self.signal(signal.SIGTERM)
        try:
            return self.wait_exit(timeout)
        finally:
            self.close_stdin()

    def kill(self) -> None:
        """SIGKILL the daemon process alone, as a crash would, and reap it. Its matchers are left to
        notice by themselves; close() kills whatever is left."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(30)
        self.close_stdin()

    def close(self) -> None:
        """Teardown: kill the daemon and every process carrying its marker (matchers, orphans of earlier
        generations), close the files, join the stdin writers. Safe to call twice."""
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                if self.proc.poll() is None:
                    self.proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(30)
            self.close_stdin()
            if self.proc.stdout is not None:
                self.proc.stdout.close()
            left = processes.kill_marked(self.mark)
            assert not left, f"processes of {self.name} survive SIGKILL: {left}"
        for writer in self._writers:
            writer.join(5)
        self._writers.clear()
        self._close_files()

    def _close_files(self) -> None:
        for f in self._files:
            f.close()
        self._files.clear()

    def __enter__(self) -> DaemonProcess:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def send(self, data: bytes) -> None:
        assert self.proc is not None and self.proc.stdin is not None, "this daemon's stdin is not a pipe"
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def close_stdin(self) -> None:
        if self.proc is not None and self.proc.stdin is not None and not self.proc.stdin.closed:
            with contextlib.suppress(OSError, ValueError):
                self.proc.stdin.close()

    def matcher_pids(self) -> list[int]:
        """The pool's matcher processes, from /api/v1/status (none in process)."""
        return [int(w["pid"]) for w in self.status().get("workers", [])]

    def tree_pids(self) -> list[int]:
        """The daemon and every process below it."""
        return processes.descendants(self.pid)

    def memory_mb(self) -> dict[str, float]:
        """VmRSS, RssAnon and RssShmem in MB, summed over the daemon and its matchers."""
        return processes.memory_mb([self.pid, *self.matcher_pids()])

    # ---- output ---------------------------------------------------------------------------

    @property
    def stdout_path(self) -> Path:
        return self.home / f"{self.name}-{self.generation}.stdout"

    @property
    def stderr_path(self) -> Path:
        return self.home / f"{self.name}-{self.generation}.stderr"

    def stdout_lines(self) -> list[str]:
        return read_lines(self.stdout_path)

    def results(self) -> list[Any]:
        """The JSON lines on stdout (the results, with `--output stdout`)."""
        return read_json_lines(self.stdout_path)

    def stdout(self) -> str:
        return (
            self.stdout_path.read_text(encoding="utf-8", errors="replace")
            if self.stdout_path.exists()
            else ""
        )

    def stderr(self, generation: int | None = None) -> str:
        path = self.home / f"{self.name}-{generation or self.generation}.stderr"
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""

    def logs(self, all_generations: bool = False) -> list[dict[str, Any]]:
        """The JSON log records on stderr (of this run, or of every run since the first start)."""
        generations = range(1, self.generation + 1) if all_generations else [self.generation]
        records = []
        for g in generations:
            for line in self.stderr(g).splitlines():
                with contextlib.suppress(ValueError):
                    record = json.loads(line)
                    if isinstance(record, dict):
                        records.append(record)
        return records

    def find_log(self, message: str) -> dict[str, Any] | None:
        """The first record of this run with exactly this message."""
        return next((r for r in self.logs() if r.get("message") == message), None)

    def find_logs(self, prefix: str) -> list[dict[str, Any]]:
        """Every record of this run whose message starts with `prefix`."""
        return [r for r in self.logs() if str(r.get("message", "")).startswith(prefix)]

    # ---- HTTP -----------------------------------------------------------------------------

    def get(self, path: str, timeout: float = 10.0) -> Response:
        assert self.base, "the daemon has not started (no API address yet)"
        return http("GET", self.base + path, timeout=timeout)

    def post(
        self, path: str, body: bytes = b"", timeout: float = 10.0, headers: Mapping[str, str] | None = None
    ) -> Response:
        assert self.base, "the daemon has not started (no API address yet)"
        return http("POST", self.base + path, body, timeout=timeout, headers=headers)

    def post_events(self, *events: Event) -> Response:
        response = self.post("/api/v1/events", ndjson(*events))
        assert response.status == 200, (response.status, response.body)
        return response

    def status(self) -> dict[str, Any]:
        response = self.get("/api/v1/status")
        assert response.status == 200, (response.status, response.body)
        return dict(response.json())

    def metrics(self) -> Samples:
        response = self.get("/metrics")
        assert response.status == 200, response.status
        return parse_metrics(response.body.decode())

    def metric(self, name: str, default: float | None = None, **labels: str) -> float | None:
        return sample(self.metrics(), name, default, **labels)

    def wait_metric(self, name: str, value: float, timeout: float = WAIT_TIMEOUT, **labels: str) -> None:
        wait_until(
            lambda: self.metric(name, **labels) == value,
            f"{name}{labels or ''} == {value} (last: {self.metric(name, **labels)})",
            timeout,
        )

    def wait_processed(self, count: int, timeout: float = WAIT_TIMEOUT) -> None:
        """`count` events evaluated and every result delivered (sinks write on their own threads)."""
        self.wait_metric("rsigma_events_processed_total", count, timeout)
        wait_until(lambda: self.status()["events_in_flight"] == 0, "deliveries done", timeout)


class Daemons:
    """Daemons started for one test (or one benchmark run), all closed together: a fixture yields one.

    `start(*args)` is `DaemonProcess(base_args + args, home=home, ...).start()` with this factory's
    defaults (`command`, `workers`, ...) and a name of its own per daemon (daemon0, daemon1, ...), so
    their files do not collide; `run(*args)` runs one to the end like subprocess.run.
    """

    def __init__(self, home: Path, *, base_args: Sequence[Arg] = (), **defaults: Any) -> None:
        self.home = home
        self.base_args = list(base_args)
        self.defaults = defaults
        self.started: list[DaemonProcess] = []

    def create(self, *args: Arg, **options: Any) -> DaemonProcess:
        """A DaemonProcess not started yet (closed with the others)."""
        d = DaemonProcess(
            [*self.base_args, *args],
            home=self.home,
            name=f"daemon{len(self.started)}",
            **{**self.defaults, **options},
        )
        self.started.append(d)
        return d

    def start(
        self, *args: Arg, stdin: bytes | Path | str | None = None, wait: bool = True, **options: Any
    ) -> DaemonProcess:
        """stdin None keeps a pipe open for `send`; wait=False returns before 'daemon started'."""
        return self.create(*args, stdin="pipe" if stdin is None else stdin, **options).start(wait)

    def run(self, *args: Arg, stdin: bytes = b"", timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """Run a daemon to its exit (startup failures, EOF runs): its exit code, stdout and stderr."""
        d = self.start(*args, stdin=stdin, wait=False)
        code = d.wait_exit(timeout)
        return subprocess.CompletedProcess(d.argv(), code, d.stdout(), d.stderr())

    def close(self) -> None:
        errors = []
        for d in self.started:
            try:
                d.close()
            except Exception as e:  # close every one before reporting
                errors.append(e)
        if errors:
            raise errors[0]

    def __enter__(self) -> Daemons:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
