"""Connecting to a NATS server and getting the JetStream resources the daemon needs.

Everything that can fail at startup fails here with a `ConfigError` (exit 3) naming the flag and URL.
Authentication and TLS come from `NatsAuth`; no message or log line carries a secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from typing import Any, Final

from nats.aio.client import Client
from nats.errors import AuthorizationError
from nats.errors import Error as NatsError
from nats.js.errors import BadRequestError, NotFoundError

from rsigma.errors import ConfigError
from rsigma.nats.auth import NatsAuth
from rsigma.nats.names import NatsUrl, stream_name

log = logging.getLogger("rsigma.daemon")

CONNECT_TIMEOUT_S: Final = 5.0

#: What the server says when it refuses the credentials (nats-server's `-ERR` texts).
AUTH_FAILURES: Final = ("authorization violation", "authentication expired", "authentication revoked")

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
    hint = ""
    if isinstance(e, ConnectionResetError) and server_tls and auth.tls_cert is None:
        hint = "; a TLS server that drops the connection may want a client certificate (--nats-tls-cert)"
    return f"{where}: cannot connect to {target.server}: {_describe(e)}{hint}"


async def connect(target: NatsUrl, flag: str, url: str, *, auth: NatsAuth, **callbacks: Any) -> Any:
    """A client that reconnects by itself; refusing servers without JetStream (exit 3).

    The first connection must succeed within `CONNECT_TIMEOUT_S` (exit 3 otherwise); refused
    credentials, TLS failures and a missing TLS with `--nats-require-tls` fail at once, as retrying
    would not help. Later drops reconnect forever.

    `callbacks` (`disconnected_cb`, `reconnected_cb`, `closed_cb`, `error_cb`) go to nats-py; an
    `error_cb` hears only the errors after the first connection (without one they are logged).
    """
    options = auth.connect_options()
    nc = _Client(auth)
    connected = False
    last_error: BaseException | None = None
    fatal: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()
    later_error = callbacks.pop("error_cb", None)

    async def on_error(e: Exception) -> None:
        nonlocal last_error
        if not connected:
            last_error = e
            if _fatal(e) and not fatal.done():
                fatal.set_result(e)
            return
        if later_error is not None:
            await later_error(e)
        else:
            log.warning("NATS connection error", extra={"server": target.server, "error": _describe(e)})

    attempt = asyncio.ensure_future(
        nc.connect(
            target.server,
            connect_timeout=CONNECT_TIMEOUT_S,
            allow_reconnect=True,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,
            error_cb=on_error,
            **options,
            **callbacks,
        )
    )
    done, _ = await asyncio.wait(
        {attempt, fatal}, timeout=CONNECT_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED
    )
    if attempt not in done or attempt.exception() is not None:
        failure = fatal.result() if fatal.done() else attempt.exception() if attempt.done() else last_error
        attempt.cancel()
        await asyncio.wait({attempt})
        with contextlib.suppress(Exception):
            await asyncio.wait_for(nc.close(), 1.0)
        raise ConfigError(
            _failure_message(failure, target, flag, url, auth, nc.rsigma_server_tls)
        ) from failure
    fatal.cancel()
    connected = True
    if auth.require_tls and not uses_tls(nc):  # the INFO hook should have refused already
        await nc.close()
        raise ConfigError(
            f"{flag} {url}: --nats-require-tls, but the connection to {target.server} is not TLS"
        )
    try:
        await nc.jetstream().account_info()
    except (TimeoutError, NatsError) as e:
        await nc.close()
        raise ConfigError(
            f"{flag} {url}: {target.server} does not offer JetStream (start it with -js)"
        ) from e
    return nc


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
