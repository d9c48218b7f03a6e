"""One NATS connection's life, as operators see it: log lines, metrics and the status section.

nats-py reconnects by itself (with backoff, forever); these callbacks only report. Nothing here
changes readiness: a daemon whose broker is away is alive and ready, and catches up once the server
returns, so `/healthz` and `/readyz` stay 200 while `/api/v1/status` says `disconnected`. (Before the
first connection the daemon has not started: `/readyz` is 503 while `connect` waits for the server.)
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from rsigma.daemon.metrics import Metrics

log = logging.getLogger("rsigma.daemon")


class ConnectionWatch:
    def __init__(self, role: str, server: str, metrics: Metrics | None = None) -> None:
        self.role = role  # "input", "output <subject>" or "dlq"
        self.server = server
        self.state = "connecting"
        self.reconnects = 0
        self._reconnect_hooks: list[Callable[[], None]] = []
        self._connected = metrics.nats_connected.labels(role=role) if metrics else None
        self._reconnected = metrics.nats_reconnects.labels(role=role) if metrics else None

    def callbacks(self) -> dict[str, Callable[..., Awaitable[None]]]:
        """Keyword arguments for `nats.connect`."""
        return {
            "disconnected_cb": self._on_disconnect,
            "reconnected_cb": self._on_reconnect,
            "closed_cb": self._on_close,
            "error_cb": self._on_error,
        }

    def on_reconnect(self, hook: Callable[[], None]) -> None:
        """Run `hook` after each reconnection (e.g. to renew pull requests the server forgot)."""
        self._reconnect_hooks.append(hook)

    def connected(self) -> None:
        self._set("connected")
        log.info("NATS connected", extra={"role": self.role, "server": self.server})

    async def _on_disconnect(self) -> None:
        if self.state == "connected":
            self._set("disconnected")
            log.info("NATS disconnected; reconnecting", extra={"role": self.role, "server": self.server})

    async def _on_reconnect(self) -> None:
        self.reconnects += 1
        if self._reconnected is not None:
            self._reconnected.inc()
        self._set("connected")
        for hook in self._reconnect_hooks:
            hook()
        log.info(
            "NATS reconnected",
            extra={"role": self.role, "server": self.server, "reconnects": self.reconnects},
        )

    async def _on_close(self) -> None:
        self._set("closed")
        log.info("NATS connection closed", extra={"role": self.role, "server": self.server})

    async def _on_error(self, error: Exception) -> None:
        # Connection errors while reconnecting arrive here; they are expected until the server is back.
        log.info(
            "NATS connection error", extra={"role": self.role, "error": str(error) or type(error).__name__}
        )

    def _set(self, state: str) -> None:
        self.state = state
        if self._connected is not None:
            self._connected.set(1 if state == "connected" else 0)

    def status(self) -> dict[str, Any]:
        return {"server": self.server, "state": self.state, "reconnects": self.reconnects}
