"""A stand-in for systemd's notification socket: a real unix datagram socket the test reads.

with NotifySocket() as notify:
    d = daemons.start(..., env=notify.env(watchdog_usec=400_000))
    notify.wait_for("READY=1")
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import tempfile
from pathlib import Path

from tests.support.waiting import WAIT_TIMEOUT, wait_until


class NotifySocket:
    def __init__(self) -> None:
        # A short path: a unix socket path must fit in 108 bytes, and pytest's tmp_path may not.
        self.dir = Path(tempfile.mkdtemp(prefix="rsigma-notify-", dir="/tmp"))
        self.path = self.dir / "notify"
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.socket.bind(str(self.path))
        self.socket.setblocking(False)
        self.messages: list[str] = []  # every datagram received so far, in order

    def env(self, watchdog_usec: int | None = None) -> dict[str, str]:
        """The variables systemd would set for a `Type=notify` service (with `WatchdogSec=`)."""
        env = {"NOTIFY_SOCKET": str(self.path)}
        if watchdog_usec is not None:
            env["WATCHDOG_USEC"] = str(watchdog_usec)
        return env

    def receive(self) -> list[str]:
        """Read what has arrived; every message so far."""
        with contextlib.suppress(BlockingIOError):
            while True:
                self.messages.append(self.socket.recv(4096).decode())
        return self.messages

    def lines(self) -> list[str]:
        """Every `KEY=value` line received so far, in order (a datagram may hold several)."""
        return [line for message in self.receive() for line in message.splitlines()]

    def wait_for(self, line: str, timeout: float = WAIT_TIMEOUT, count: int = 1) -> int:
        """Wait until `line` (e.g. `READY=1`) has arrived `count` times; its position in `lines()`."""
        wait_until(
            lambda: self.lines().count(line) >= count, f"{line!r} x{count} on the notify socket", timeout
        )
        return [i for i, got in enumerate(self.lines()) if got == line][count - 1]

    def close(self) -> None:
        self.socket.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> NotifySocket:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
