"""Connecting to a NATS server and getting the JetStream resources the daemon needs.

Everything that can fail at startup fails here with a `ConfigError` (exit 3) naming the flag and URL.
Authentication and TLS come from `NatsAuth`; no message or log line carries a secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from nats.aio.client import Client
from nats.errors import AuthorizationError
from nats.errors import Error as NatsError
from nats.js.errors import BadRequestError, NotFoundError

from rsigma.errors import ConfigError
from rsigma.nats.auth import NatsAuth
from rsigma.nats.names import NatsUrl, stream_name

log = logging.getLogger("rsigma.daemon")

#: One connection attempt: a server that accepts TCP but says nothing in this time counts as unreachable.
CONNECT_TIMEOUT_S: Final = 5.0
#: The pause after the first failed attempt at startup; it doubles after each further one, up to the max.
RETRY_FIRST_S: Final = 0.5
RETRY_MAX_S: Final = 10.0

#: What the server says when it refuses the credentials (nats-server's `-ERR` texts).
AUTH_FAILURES: Final = ("authorization violation", "authentication expired", "authentication revoked")

#: How nats-server's -ERR says a subject is not allowed to the user (it keeps the connection open).
PERMISSION_DENIED: Final = "permissions violation"

T = TypeVar("T")

#: TLS alerts by which a server refuses the client certificate.
CERT_REJECTED: Final = frozenset(
    {
        "TLSV1_ALERT_UNKNOWN_CA",
        "SSLV3_ALERT_BAD_CERTIFICATE",
        "SSLV3_ALERT_CERTIFICATE_UNKNOWN",
        "SSLV3_ALERT_CERTIFICATE_REVOKED",
        "SSLV3_ALERT_CERTIFICATE_EXPIRED",
        "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE",
        "TLSV13_ALERT_CERTIFICATE_REQUIRED",
        "TLSV1_ALERT_ACCESS_DENIED",
    }
)


class TlsNotOffered(NatsError):
    """`--nats-require-tls`, and the server offers no TLS: refused before any credential is sent."""

    def __str__(self) -> str:
        return "the server does not offer TLS"


class _Client(Client):
    """nats-py's client, upgrading to TLS whenever the server offers it and TLS settings are given.

    nats-py upgrades only when the server *requires* TLS; a server with `allow_non_tls` merely offers
    it (`tls_available`). The INFO hook below runs before nats-py decides, and before CONNECT (with
    the credentials) is written, at the first connection and at every reconnection.
    """

    def __init__(self, auth: NatsAuth) -> None:
        super().__init__()
        self.rsigma_auth = auth
        self.rsigma_server_tls = False  # whether the last server seen required or offered TLS
        self.rsigma_denied: asyncio.Future[str] | None = None  # see `startup_request`

    async def _process_info(self, info: dict[str, Any], initial_connection: bool = False) -> None:
        if initial_connection:
            offered = bool(info.get("tls_required") or info.get("tls_available"))
            self.rsigma_server_tls = offered
            if self.rsigma_auth.require_tls and not offered:
                raise TlsNotOffered
            if self.rsigma_auth.wants_tls and offered:
                info["tls_required"] = True  # the same dict nats-py reads next to decide on the upgrade
        await super()._process_info(info, initial_connection)


def uses_tls(nc: Any) -> bool:
    """Whether the client's current connection runs over TLS."""
    writer = getattr(getattr(nc, "_transport", None), "_io_writer", None)
    return writer is not None and writer.get_extra_info("ssl_object") is not None


def _auth_failure(e: BaseException) -> str | None:
    """Why the server refused our credentials, or None when `e` is something else."""
    if isinstance(e, AuthorizationError):
        return "authorization violation"
    if isinstance(e, ssl.SSLError) and e.reason in CERT_REJECTED:
        return f"the server rejected the client certificate ({e.reason})"
    text = str(e).lower()
    return next((failure for failure in AUTH_FAILURES if failure in text), None)


def _fatal(e: BaseException) -> bool:
    """Errors that trying again within the connect timeout would not cure."""
    return isinstance(e, TlsNotOffered | ssl.SSLError) or _auth_failure(e) is not None


def _describe(e: BaseException | None) -> str:
    if e is None:
        return f"no answer within {CONNECT_TIMEOUT_S:g} s"
    if isinstance(e, TimeoutError | asyncio.TimeoutError):
        return f"timed out after {CONNECT_TIMEOUT_S:g} s"
    return str(e) or type(e).__name__


def _failure_message(
    e: BaseException | None, target: NatsUrl, flag: str, url: str, auth: NatsAuth, server_tls: bool
) -> str:
    where = f"{flag} {url}"
    if isinstance(e, TlsNotOffered):
        return f"{where}: --nats-require-tls, but {target.server} does not offer TLS"
    if e is not None and (reason := _auth_failure(e)) is not None:
        if isinstance(e, ssl.SSLError) and auth.tls_cert is None:
            return (
                f"{where}: authentication failed at {target.server}: it wants a client certificate"
                f" (--nats-tls-cert, --nats-tls-key) ({e.reason})"
            )
        if isinstance(e, ssl.SSLError):
            how = "--nats-tls-cert"
        else:
            how = "no credentials" if auth.method in ("none", "tls-cert") else auth.method_flag
        return f"{where}: authentication failed at {target.server} ({how}): {reason}"
    if isinstance(e, ssl.SSLCertVerificationError):
        hint = "" if auth.tls_ca else "; give its CA with --nats-tls-ca"
        return (
            f"{where}: TLS with {target.server} failed: the server certificate does not verify"
            f" ({e.verify_message or e.reason}){hint}"
        )
    if isinstance(e, ssl.SSLError):
        return f"{where}: TLS with {target.server} failed: {e.reason or e}"
    if _dropped_after_handshake(e, server_tls):
        if auth.tls_cert is None:
            return (
                f"{where}: authentication failed at {target.server}: it wants a client certificate"
                f" (--nats-tls-cert, --nats-tls-key) (it closed the connection after the TLS handshake)"
            )
        return (
            f"{where}: authentication failed at {target.server} (--nats-tls-cert): the server rejected"
            " the client certificate (it closed the connection after the TLS handshake)"
        )
    return f"{where}: cannot connect to {target.server}: {_describe(e)}"


def _dropped_after_handshake(e: BaseException | None, server_tls: bool) -> bool:
    """A TLS server that drops the client during the connect refused its certificate, or the lack of
    one: TLS 1.3 verifies the client's after the handshake, so the alert saying why may or may not
    arrive before the connection closes (it did not under load)."""
    return isinstance(e, ConnectionResetError) and server_tls


@dataclass(frozen=True, slots=True)
class ConnectWait:
    """How long startup waits for an unreachable server, and who hears about each failed attempt.

    `timeout_s`: 0 makes one attempt (exit 3 if it fails); None waits for ever (the daemon's default).
    `on_retry(attempt, message)` runs after each failed attempt that will be retried (the daemon's
    readiness reason and systemd status).
    """

    timeout_s: float | None = 0
    on_retry: Callable[[int, str], None] | None = None


#: The default outside the daemon: one attempt, a `ConfigError` if it fails.
ONE_ATTEMPT: Final = ConnectWait()


class _Unreachable(Exception):
    """One attempt failed in a way a later one may not: refused, timed out, reset, unresolvable."""

    def __init__(self, message: str, cause: BaseException | None) -> None:
        super().__init__(message)
        self.cause = cause


async def connect(
    target: NatsUrl,
    flag: str,
    url: str,
    *,
    auth: NatsAuth,
    wait: ConnectWait = ONE_ATTEMPT,
    **callbacks: Any,
) -> Any:
    """A client that reconnects by itself; refusing servers without JetStream (exit 3).

    A server that cannot be reached is tried again, the pause doubling from `RETRY_FIRST_S` to
    `RETRY_MAX_S`, with a warning per attempt, until `wait.timeout_s` has passed (exit 3 naming the
    URL). Refused credentials, TLS failures and a missing TLS with `--nats-require-tls` fail at once,
    as retrying would not help. After the first connection, drops reconnect forever.

    `callbacks` (`disconnected_cb`, `reconnected_cb`, `closed_cb`, `error_cb`) go to nats-py; an
    `error_cb` hears only the errors after the first connection (without one they are logged).
    """
    loop = asyncio.get_running_loop()
    deadline = None if wait.timeout_s is None else loop.time() + wait.timeout_s
    pause = RETRY_FIRST_S
    attempt = 0
    while True:
        attempt += 1
        try:
            nc = await _connect_once(target, flag, url, auth, callbacks)
            break
        except _Unreachable as e:
            left = math.inf if deadline is None else deadline - loop.time()
            if left <= 0:
                waited = "" if not wait.timeout_s else f" within --nats-connect-timeout {wait.timeout_s:g} s"
                tries = "1 attempt" if attempt == 1 else f"{attempt} attempts"
                raise ConfigError(f"{e}{waited} ({tries})") from e.cause
            delay = min(pause, left)
            log.warning(
                "NATS server not reachable; trying again",
                extra={
                    "url": url,
                    "flag": flag,
                    "attempt": attempt,
                    "error": str(e),
                    "retry_in_s": round(delay, 3),
                },
            )
            if wait.on_retry is not None:
                wait.on_retry(attempt, str(e))
            await asyncio.sleep(delay)
            pause = min(pause * 2, RETRY_MAX_S)
    if attempt > 1:
        log.info("NATS server reached", extra={"url": url, "flag": flag, "attempts": attempt})
    try:
        if auth.require_tls and not uses_tls(nc):  # the INFO hook should have refused already
            raise ConfigError(
                f"{flag} {url}: --nats-require-tls, but the connection to {target.server} is not TLS"
            )
        failed = f"{target.server} does not offer JetStream (start it with -js)"
        await startup_request(nc, flag, url, nc.jetstream().account_info(), failed)
    except BaseException:
        await nc.close()
        raise
    return nc


async def _connect_once(
    target: NatsUrl, flag: str, url: str, auth: NatsAuth, callbacks: dict[str, Any]
) -> Any:
    """One attempt, ended by its first error: `_Unreachable` for what may pass, `ConfigError` otherwise.

    nats-py would keep trying by itself; a fresh client per attempt keeps the pace and the log ours.
    """
    options = auth.connect_options()
    nc = _Client(auth)
    connected = False
    failed: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()
    later_error = callbacks.get("error_cb")

    async def on_error(e: Exception) -> None:
        if not connected:
            if not failed.done():
                failed.set_result(e)
            return
        denied = nc.rsigma_denied
        if denied is not None and not denied.done() and PERMISSION_DENIED in str(e).lower():
            denied.set_result(str(e))
        if later_error is not None:
            await later_error(e)
        else:
            log.warning("NATS connection error", extra={"server": target.server, "error": _describe(e)})

    def once_connected(callback: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
        async def forward() -> None:  # a failed attempt is not a connection that closed
            if connected:
                await callback()

        return forward

    lifecycle = {name: once_connected(cb) for name, cb in callbacks.items() if name != "error_cb"}
    attempt = asyncio.ensure_future(
        nc.connect(
            target.server,
            connect_timeout=CONNECT_TIMEOUT_S,
            allow_reconnect=True,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,
            error_cb=on_error,
            **options,
            **lifecycle,
        )
    )
    try:
        await asyncio.wait({attempt, failed}, timeout=CONNECT_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:  # a stop while waiting for the server
        await _abandon(attempt, nc)
        raise
    if attempt.done() and attempt.exception() is None:
        failed.cancel()
        connected = True
        return nc
    failure = failed.result() if failed.done() else attempt.exception() if attempt.done() else None
    await _abandon(attempt, nc)
    message = _failure_message(failure, target, flag, url, auth, nc.rsigma_server_tls)
    if failure is None or not (_fatal(failure) or _dropped_after_handshake(failure, nc.rsigma_server_tls)):
        raise _Unreachable(message, failure)
    raise ConfigError(message) from failure


async def _abandon(attempt: asyncio.Future[Any], nc: Any) -> None:
    """Stop a connection attempt and release whatever it opened."""
    attempt.cancel()
    await asyncio.wait({attempt})
    with contextlib.suppress(Exception):
        await asyncio.wait_for(nc.close(), 1.0)


async def startup_request(nc: Any, flag: str, url: str, request: Awaitable[T], failed: str) -> T:
    """A JetStream API request made at startup (account, stream, consumer), as a `ConfigError` (exit 3)
    when it fails: at once when the server denies the permission (nats-py only reports that to the
    error callback, and the request would wait for its timeout), else when it times out or errs."""
    denied: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    nc.rsigma_denied = denied
    task = asyncio.ensure_future(request)
    try:
        await asyncio.wait({task, denied}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        nc.rsigma_denied = None
        if not task.done():
            task.cancel()
            await asyncio.wait({task})
    if denied.done():
        raise ConfigError(
            f"{flag} {url}: the server denied a JetStream request ({denied.result()}); the NATS user"
            " needs publish permission on $JS.API.> and subscribe permission on _INBOX.>"
        )
    denied.cancel()
    try:
        return task.result()
    except (TimeoutError, NatsError) as e:
        raise ConfigError(f"{flag} {url}: {failed} ({_describe(e)})") from e


async def ensure_stream(js: Any, subject: str, flag: str, url: str) -> str:
    """Get or create `rsigma-<subject>`; another stream covering the subject is a startup error."""
    name = stream_name(subject)
    try:
        await js.stream_info(name)
        return name
    except NotFoundError:
        pass
    try:
        await js.add_stream(name=name, subjects=[subject])
    except BadRequestError as e:
        try:
            other = await js.find_stream_name_by_subject(subject)
        except NatsError:
            other = "another stream"
        raise ConfigError(
            f"{flag} {url}: stream {other!r} already covers subject {subject!r}; rsigma would create {name!r}"
        ) from e
    return name
