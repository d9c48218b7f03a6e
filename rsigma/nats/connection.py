"""Connecting to a NATS server and getting the JetStream resources the daemon needs.

Everything that can fail at startup fails here with a `ConfigError` (exit 3) naming the flag and URL.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Final

import nats
from nats.errors import Error as NatsError
from nats.js.errors import BadRequestError, NotFoundError

from rsigma.daemon.sinks import ConfigError
from rsigma.nats.names import NatsUrl, stream_name

log = logging.getLogger("rsigma.daemon")

CONNECT_TIMEOUT_S: Final = 5.0


async def connect(target: NatsUrl, flag: str, url: str) -> Any:
    """A client that reconnects by itself; refusing servers without JetStream (exit 3)."""
    try:
        # The first connection must succeed in time (exit 3 otherwise); later drops reconnect forever.
        nc = await asyncio.wait_for(
            nats.connect(
                target.server,
                connect_timeout=CONNECT_TIMEOUT_S,
                allow_reconnect=True,
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.5,
            ),
            timeout=CONNECT_TIMEOUT_S,
        )
    except (TimeoutError, OSError, NatsError) as e:
        raise ConfigError(f"{flag} {url}: cannot connect to {target.server}: {e or type(e).__name__}") from e
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
