"""The HTTP API: health, readiness, metrics, status, rules, reload and (with --input http) ingest.

Ingest streams: the body is read a chunk at a time and its lines are queued as they arrive, so memory
stays bounded whatever the size of a POST. The mutating endpoints (ingest, reload) refuse browser
requests from other origins, and take a bearer token when one is set (see `api_guard.py`). A client
that sends its headers or its body too slowly is cut off after --api-read-timeout, and shutdown waits
at most `STOP_GRACE_S` for requests still running.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from typing import TYPE_CHECKING, Any, Final

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from rsigma.daemon import api_guard
from rsigma.daemon.api_guard import INGEST_TYPES, RELOAD_TYPES, Refusal
from rsigma.daemon.sources import HttpSource
from rsigma.daemon.status import daemon_status
from rsigma.errors import ConfigError

if TYPE_CHECKING:
    from rsigma.daemon.runtime import Daemon

log = logging.getLogger("rsigma.daemon")

#: Bytes of an ingest body read at a time: the lines they complete are queued before the next read.
READ_CHUNK_BYTES: Final = 1 << 16
#: Slowest body accepted, in bytes per second of waiting for the client (see `BodyReader`).
MIN_BODY_RATE: Final = 1024
#: At shutdown (after the drain), how long requests still running get to finish before they are cut.
STOP_GRACE_S: Final = 1.0


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
        app = web.Application()
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        app.router.add_get("/metrics", self.metrics)
        app.router.add_get("/api/v1/status", self.status)
        app.router.add_get("/api/v1/rules", self.rules)
        app.router.add_post("/api/v1/reload", self.reload)
        app.router.add_post("/api/v1/events", self.events)
        timeout = self.daemon.config.api_read_timeout
        self.runner = web.AppRunner(
            app,
            access_log=None,
            handle_signals=False,
            shutdown_timeout=STOP_GRACE_S,
            # A connection is closed when no complete request head arrives this long after it opened or
            # after its last answer (aiohttp's keep-alive timer, armed at connect since aiohttp 3.14).
            keepalive_timeout=timeout,
            lingering_time=timeout,  # reading the unread rest of a refused body, to answer cleanly
        )
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
        ready = d.ready and bool(d.rules.rules) and available > 0
        body: dict[str, Any] = {
            "status": "ready" if ready else "not_ready",
            "rules_loaded": bool(d.rules.rules),
        }
        if not d.ready:
            body["reason"] = d.phase
        elif not available:
            body["matchers_available"] = 0  # every matcher is restarting, or stalled (see workers.md)
            body["reason"] = "no matcher can take work: each is restarting or stalled"
        elif not ready:
            body["reason"] = "no detection rules loaded"
        return web.json_response(body, status=200 if ready else 503)

    async def metrics(self, _: web.Request) -> web.Response:
        return web.Response(body=self.daemon.metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def status(self, _: web.Request) -> web.Response:
        return web.json_response(daemon_status(self.daemon))

    async def rules(self, _: web.Request) -> web.Response:
        d = self.daemon
        return web.json_response(
            {
                "detection_rules": len(d.rules.rules),
                "correlation_rules": d.rules.correlations,
                "rules_path": [str(p) for p in d.config.rules],
                "rules": [{"title": title, "id": id_, "level": level} for title, id_, level in d.rules.rules],
            }
        )

    async def reload(self, request: web.Request) -> web.Response:
        if (refused := self._refuse(request, RELOAD_TYPES, body_optional=True)) is not None:
            return refused
        ok = await self.daemon.reload("api")
        if ok:
            return web.json_response({"status": "reloaded", "detection_rules": len(self.daemon.rules.rules)})
        return web.json_response({"status": "reload_failed"}, status=500)

    async def events(self, request: web.Request) -> web.Response:
        if (refused := self._refuse(request, INGEST_TYPES, body_optional=False)) is not None:
            return refused
        source = self.daemon.source
        if not isinstance(source, HttpSource):
            return web.json_response(
                {"error": "event ingestion not enabled (start with --input http)"}, status=404
            )
        cap = self.daemon.config.api_max_body_bytes
        if request.content_length is not None and request.content_length > cap:
            return self._too_large(cap, accepted=0)
        return await self._ingest(request, source, cap)

    async def _ingest(self, request: web.Request, source: HttpSource, cap: int) -> web.Response:
        """Queue the body's lines as they arrive; the answer says how many were taken."""
        lines = await source.lines()
        body = BodyReader(request, self.daemon.config.api_read_timeout)
        accepted = 0
        while True:
            try:
                chunk = await body.read()
            except BodyTooSlow as e:
                self.daemon.metrics.api_refused.labels("read_timeout").inc()
                return _closing({"error": str(e), "accepted": accepted}, 408)
            except ConnectionError:  # the answer cannot reach the client: the log says what was taken
                log.warning(
                    "ingest request cut short: the client closed the connection before the end of its body",
                    extra={"accepted": accepted},
                )
                return _closing({"error": "connection lost", "accepted": accepted}, 400)
            if not self.daemon.ready:  # starting or shutting down: the rest of the body is not taken
                refusal = {"error": f"not accepting events ({self.daemon.phase})", "accepted": accepted}
                return _closing(refusal, 503)
            before = body.received - len(chunk)
            events = lines.feed(chunk[: cap - before]) if chunk else lines.end()
            if events:
                await source.submit(events)
                accepted += len(events)
            if body.received > cap:  # the line the cap cut through is not taken
                return self._too_large(cap, accepted)
            if not chunk:
                return web.json_response({"accepted": accepted})

    def _too_large(self, cap: int, accepted: int) -> web.Response:
        self.daemon.metrics.api_refused.labels("body_too_large").inc()
        return _closing(
            {
                "error": f"request body exceeds --api-max-body-bytes {cap}",
                "max_bytes": cap,
                "accepted": accepted,
            },
            413,
        )

    def _refuse(
        self, request: web.Request, types: frozenset[str], *, body_optional: bool
    ) -> web.Response | None:
        """The answer to a request a mutating endpoint refuses: from another origin (403), without the
        token (401), or with a content type not among `types` (415)."""
        headers = request.headers
        refusal = (
            api_guard.cross_origin(headers)
            or api_guard.unauthorized(headers, self.daemon.config.api_token)
            or api_guard.unsupported_type(headers, types, body_optional=body_optional)
        )
        if refusal is None:
            return None
        if refusal.reason == "unauthorized":
            self.daemon.metrics.api_auth_failures.labels(refusal.reason).inc()
        else:
            self.daemon.metrics.api_refused.labels(refusal.reason).inc()
        return _refused(refusal)


class BodyTooSlow(Exception):
    pass


class BodyReader:
    """A request body a chunk at a time, from a client that keeps sending: one that sends nothing for
    `timeout` s, or, once `timeout` s were spent waiting for it, less than `MIN_BODY_RATE` bytes per
    second of that wait (a byte a second), is refused. Time the handler spends queueing lines (a full
    input queue) is not waiting for the client and does not count."""

    def __init__(self, request: web.Request, timeout: float) -> None:
        self.request = request
        self.timeout = timeout
        self.received = 0
        self.waited = 0.0

    async def read(self) -> bytes:
        """The next chunk; b"" at the end of the body."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        try:
            async with asyncio.timeout(self.timeout):
                chunk = await self.request.content.read(READ_CHUNK_BYTES)
        except TimeoutError:
            raise BodyTooSlow(f"request body stalled: nothing received for {self.timeout:g} s") from None
        self.waited += loop.time() - start
        self.received += len(chunk)
        if chunk and self.waited >= self.timeout and self.received < MIN_BODY_RATE * self.waited:
            raise BodyTooSlow(
                f"request body too slow: {self.received} bytes in {self.waited:.1f} s"
                f" (at least {MIN_BODY_RATE} bytes/s expected)"
            )
        return chunk


def _refused(refusal: Refusal) -> web.Response:
    return web.json_response({"error": refusal.error}, status=refusal.status, headers=refusal.headers)


def _closing(body: dict[str, Any], status: int) -> web.Response:
    """An answer before the body was read to its end: the connection closes after it."""
    response = web.json_response(body, status=status)
    response.force_close()
    return response
