"""systemd's notification protocol (`Type=notify`), written by hand: a datagram per message.

systemd passes a unix datagram socket in `NOTIFY_SOCKET` (a path, or `@name` in the abstract
namespace) and, with `WatchdogSec=`, the interval in `WATCHDOG_USEC`. The daemon sends `READY=1` once
it is ready, `STATUS=...` while it waits (for a NATS server), `STOPPING=1` when it begins to shut
down, and `WATCHDOG=1` from its event loop every half interval, so a loop that stops turning gets
the service restarted. Without `NOTIFY_SOCKET` every call does nothing.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger("rsigma.daemon")


class Notifier:
    def __init__(self, environ: Mapping[str, str] = os.environ) -> None:
        address = environ.get("NOTIFY_SOCKET", "")
        self.address = "\0" + address[1:] if address.startswith("@") else address
        self.watchdog_s = _watchdog_interval(environ)
        self._socket: socket.socket | None = None
        self._failed = False

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    def ready(self, status: str = "running") -> None:
        self.send(f"READY=1\nSTATUS={status}")

    def stopping(self) -> None:
        self.send("STOPPING=1\nSTATUS=shutting down")

    def status(self, text: str) -> None:
        self.send(f"STATUS={text}")

    async def watchdog(self) -> None:
        """`WATCHDOG=1` every half interval, for as long as the event loop runs it (cancel to stop)."""
        if self.watchdog_s is None:
            return
        while True:
            self.send("WATCHDOG=1")
            await asyncio.sleep(self.watchdog_s / 2)

    def send(self, message: str) -> None:
        """One datagram; a failure is logged once (systemd going away must not stop the daemon)."""
        if not self.address:
            return
        try:
            if self._socket is None:
                self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._socket.setblocking(False)  # never stall the event loop on a full queue
            self._socket.sendto(message.encode(), self.address)
        except OSError as e:
            if not self._failed:
                self._failed = True
                log.warning(
                    "systemd notification failed; later failures are not logged",
                    extra={"notify_socket": self.address.replace("\0", "@"), "error": str(e)},
                )

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def _watchdog_interval(environ: Mapping[str, str]) -> float | None:
    """The watchdog interval in seconds, when it is meant for this process (`WATCHDOG_PID`, if set)."""
    usec = environ.get("WATCHDOG_USEC", "")
    pid = environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0 or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 1e6
