"""Whether the installed nats-py still has the private parts `core.py`'s lean path writes into, and the
slower path through nats-py's public API when it does not.

The lean path (see `core.py`) appends protocol commands straight to the client's outgoing buffer and
receives messages through `subscribe(future=...)`. Those are nats-py internals, checked against the
versions in pyproject.toml's range. A nats-py that changed them must not corrupt the connection: the
first connected client is checked, and if anything is missing the daemon warns once (naming it and the
nats-py version) and sends every command through `Client.publish` and receives through callback
subscriptions instead: the same messages, at a higher CPU cost per message.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from typing import Any, Final
from weakref import WeakKeyDictionary

from nats.aio.client import __version__ as NATS_PY_VERSION
from nats.errors import ConnectionClosedError, ConnectionDrainingError

log = logging.getLogger("rsigma.nats")

#: The attributes of a connected `nats.aio.client.Client` the lean path reads or writes, with their type.
CLIENT_INTERNALS: Final[dict[str, type | None]] = {
    "_status": None,
    "_pending": list,
    "_pending_data_size": int,
    "_max_pending_size": int,
    "_flush_queue": asyncio.Queue,
    "_flusher_task": None,
    "_transport": None,
}
#: The connection states `_status` is compared with.
CLIENT_STATES: Final = ("CONNECTED", "CLOSED", "DRAINING_PUBS", "DRAINING_SUBS")

_checked: dict[type, bool] = {}  # client class -> whether the lean path works with it


def missing_internal(nc: Any) -> str | None:
    """The first private part the lean path needs that the connected client `nc` lacks (or holds with
    another type than expected), or None when all are there."""
    for name, kind in CLIENT_INTERNALS.items():
        if not hasattr(nc, name):
            return f"Client.{name}"
        if kind is not None and not isinstance(getattr(nc, name), kind):
            return f"Client.{name} (a {kind.__name__})"
    for name in CLIENT_STATES:
        if not hasattr(type(nc), name):
            return f"Client.{name}"
    try:
        parameters = inspect.signature(nc.subscribe).parameters
    except (TypeError, ValueError):
        return "Client.subscribe(future=...)"
    if "future" not in parameters:
        return "Client.subscribe(future=...)"
    return None


def lean_path(nc: Any) -> bool:
    """Whether `nc` (connected) supports the lean path; the first client of a class without it logs
    the fallback once."""
    ok = _checked.get(type(nc))
    if ok is None:
        missing = missing_internal(nc)
        ok = _checked[type(nc)] = missing is None
        if missing is not None:
            log.warning(
                "nats-py lacks what the lean JetStream path uses; using its public API (more CPU per event)",
                extra={"missing": missing, "nats_py_version": NATS_PY_VERSION},
            )
    return ok


class MessageSink:
    """Receives a subscription's messages synchronously, from nats-py's reading task.

    A callback subscription (`subscribe(cb=...)`) puts every message on an asyncio.Queue, and a
    per-subscription task awaits the callback coroutine for each: about 1.8 µs per message, a third
    of the consuming cost. `subscribe(future=...)` instead hands each message to
    `future.set_result(msg)` right where the protocol parser produced it (after checking
    `future.cancelled()`), and nats-py never drops the subscription for it. This duck-typed
    "future" uses that: `set_result` is the handler itself, so it must not raise (an exception
    would reach nats-py's read loop).
    """

    __slots__ = ("set_result",)

    def __init__(self, handler: Callable[[Any], None]) -> None:
        self.set_result = handler

    def cancelled(self) -> bool:
        return False


# ---------------------------------------------------------------------------------------------------
# The public-API path


class _PublicWriter:
    """Sends the lean path's protocol commands through `Client.publish`, in order, from one task."""

    def __init__(self, nc: Any) -> None:
        self._nc = nc
        self._queue: asyncio.Queue[bytes] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def write(self, cmd: bytes) -> None:
        nc = self._nc
        if nc.is_closed:
            raise ConnectionClosedError
        if nc.is_draining_pubs:
            raise ConnectionDrainingError
        self._queue.put_nowait(cmd)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="nats-public-writer")

    async def _run(self) -> None:
        while not self._queue.empty():
            for subject, reply, headers, payload in parse_commands(self._queue.get_nowait()):
                try:
                    await self._nc.publish(subject, payload, reply=reply, headers=headers)
                except Exception as e:  # an ack is redelivered, a publish-ack times out and is retried
                    log.warning(
                        "NATS publish failed", extra={"subject": subject, "error": str(e) or type(e).__name__}
                    )


_writers: WeakKeyDictionary[Any, _PublicWriter] = WeakKeyDictionary()


def public_write(nc: Any, cmd: bytes) -> None:
    """The public-API twin of `core._write`: the same commands, sent in order by `Client.publish`."""
    writer = _writers.get(nc)
    if writer is None:
        writer = _writers[nc] = _PublicWriter(nc)
    writer.write(cmd)


async def public_sent(nc: Any) -> None:
    """Wait until `public_write` handed every command so far to nats-py (then `nc.flush()` sends them)."""
    writer = _writers.get(nc)
    if writer is not None and writer._task is not None:
        await asyncio.wait({writer._task})


def parse_commands(data: bytes) -> list[tuple[str, str, dict[str, str] | None, bytes]]:
    """(subject, reply, headers, payload) of each `PUB`/`HPUB` command the lean path wrote into `data`."""
    commands = []
    at = 0
    while at < len(data):
        end = data.index(b"\r\n", at)
        op, *args = data[at:end].decode().split(" ")
        at = end + 2
        headers: dict[str, str] | None = None
        if op == "PUB":
            subject, reply, size = (args[0], "", args[1]) if len(args) == 2 else args
            payload = data[at : at + int(size)]
        elif op == "HPUB":
            subject, reply, header_size, size = args
            block = data[at : at + int(header_size)].decode()
            headers = dict(line.split(": ", 1) for line in block.split("\r\n")[1:] if line)
            payload = data[at + int(header_size) : at + int(size)]
        else:
            raise ValueError(f"not a PUB or HPUB command: {op!r}")
        commands.append((subject, reply, headers, payload))
        at += int(size) + 2
    return commands


async def subscribe(nc: Any, subject: str, handler: Callable[[Any], None], lean: bool) -> Any:
    """A subscription whose messages go to `handler`: synchronously from nats-py's reader on the lean
    path (see `MessageSink`), through a callback task otherwise."""
    if lean:
        return await nc.subscribe(subject, future=MessageSink(handler))

    async def callback(msg: Any) -> None:
        handler(msg)

    return await nc.subscribe(subject, cb=callback)
