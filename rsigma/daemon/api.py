"""The HTTP API: health, readiness, metrics, status, rules, reload and (with --input http) ingest."""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from rsigma.daemon.sources import HttpSource
from rsigma.daemon.status import daemon_status
from rsigma.errors import ConfigError

if TYPE_CHECKING:
    from rsigma.daemon.runtime import Daemon

#: aiohttp's request body limit for event ingest (NDJSON batches).
MAX_INGEST_BODY_BYTES = 64 << 20


def parse_addr(addr: str) -> tuple[str, int]:
    """`host:port` with an IP address (IPv6 in brackets); a bad value is a startup error."""
    host, sep, port = addr.rpartition(":")
    host = host.strip("[]")
    try:
        ipaddress.ip_address(host)
        number = int(port)
        if not sep or not 0 <= number <= 65535:
            raise ValueError
    except ValueError:
        raise ConfigError(f"--api-addr {addr!r}: expected IP:port, e.g. 127.0.0.1:9090") from None
    return host, number


class ApiServer:
    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.runner: web.AppRunner | None = None
        self.address = ""

    async def start(self, addr: str) -> None:
        host, port = parse_addr(addr)
        app = web.Application(client_max_size=MAX_INGEST_BODY_BYTES)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        app.router.add_get("/metrics", self.metrics)
        app.router.add_get("/api/v1/status", self.status)
        app.router.add_get("/api/v1/rules", self.rules)
        app.router.add_post("/api/v1/reload", self.reload)
        app.router.add_post("/api/v1/events", self.events)
        self.runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self.runner.setup()
        site = web.TCPSite(self.runner, host, port)
        try:
            await site.start()
        except OSError as e:
            await self.runner.cleanup()
            raise ConfigError(f"--api-addr {addr}: cannot listen: {e.strerror or e}") from e
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        bound = sockets[0].getsockname() if sockets else (host, port)
        self.address = f"{bound[0]}:{bound[1]}" if ":" not in str(bound[0]) else f"[{bound[0]}]:{bound[1]}"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    async def healthz(self, _: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(self, _: web.Request) -> web.Response:
        d = self.daemon
        available = d.backend.available if d.backend is not None else 0
        ready = d.ready and bool(d.evaluator.engine.rules) and available > 0
        body: dict[str, Any] = {
            "status": "ready" if ready else "not_ready",
            "rules_loaded": bool(d.evaluator.engine.rules),
        }
        if d.ready and not available:
            body["matchers_available"] = 0  # every matcher is restarting, or stalled (see workers.md)
        return web.json_response(body, status=200 if ready else 503)

    async def metrics(self, _: web.Request) -> web.Response:
        return web.Response(body=self.daemon.metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def status(self, _: web.Request) -> web.Response:
        return web.json_response(daemon_status(self.daemon))

    async def rules(self, _: web.Request) -> web.Response:
        d = self.daemon
        return web.json_response(
            {
                "detection_rules": len(d.evaluator.engine.rules),
                "correlation_rules": len(d.evaluator.correlation.correlations),
                "rules_path": [str(p) for p in d.config.rules],
                "rules": [
                    {"title": r.rule.title, "id": r.rule.id, "level": r.rule.level}
                    for r in d.evaluator.engine.rules
                ],
            }
        )

    async def reload(self, _: web.Request) -> web.Response:
        ok = await self.daemon.reload("api")
        if ok:
            return web.json_response(
                {"status": "reloaded", "detection_rules": len(self.daemon.evaluator.engine.rules)}
            )
        return web.json_response({"status": "reload_failed"}, status=500)

    async def events(self, request: web.Request) -> web.Response:
        source = self.daemon.source
        if not isinstance(source, HttpSource):
            return web.json_response(
                {"error": "event ingestion not enabled (start with --input http)"}, status=404
            )
        lines = (await request.read()).split(b"\n")
        if lines and not lines[-1]:
            lines.pop()  # the newline that ends the body
        accepted = 0
        for line in lines:
            if not self.daemon.ready:  # shutting down: the rest of the body is not taken
                return web.json_response(
                    {"error": "not accepting events (shutting down)", "accepted": accepted}, status=503
                )
            await source.submit(line)
            accepted += 1
        return web.json_response({"accepted": accepted})
