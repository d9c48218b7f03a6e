"""JetStream consuming and publishing on nats-py's core connection: the daemon's hot path.

Why this exists (the cost model). nats-py's JetStream helpers spend 16-23 µs of client CPU per
consumed and acked message: `fetch()` builds a task and a timer per message, `await msg.ack()` is a
coroutine per message and every `await js.publish()` is a round trip waiting for its publish-ack. At
50,000 events/s on two cores that alone would eat most of a core. The JetStream wire protocol is
plain NATS, so this module speaks it on the core connection (`nats.aio.client.Client`):

* Consuming: a pull request is a publish to `$JS.API.CONSUMER.MSG.NEXT.<stream>.<consumer>` with
  `{"batch": n, "expires": ns, "idle_heartbeat": ns}` and a reply subject; the server delivers up
  to n messages to that reply subject. `PullConsumer` keeps two such requests outstanding, all
  answered on one wildcard inbox subscription whose handler appends to a list; `batches()` hands
  over that list whole.
* Acking: an ack is a publish of `+ACK` (or `-NAK`, `+TERM`) to the message's reply subject. JetStream
  sends no answer, so `ack()` only appends the PUB command to nats-py's outgoing buffer and wakes its
  flusher: no coroutine, future or task per message.
* Publishing: `AsyncPublisher.publish_many` writes a whole batch of PUB/HPUB commands, each with its
  own reply subject under one wildcard inbox, and awaits one future that the inbox handler resolves
  when the batch's last publish-ack arrived (the stream has stored every message).

nats-py's JetStream context stays in charge of connecting and of stream and consumer management.

Measured (benchmarks/nats_bench.py, uvloop): consuming and acking costs about 4.5 µs of client CPU
per message, about 70% of it in nats-py's protocol parser and `Msg` construction.

nats-py internals relied on (pinned by `tests/nats/test_core.py`; checked with nats-py 2.15 and 2.16):
`Client._status` (compared with the public `Client.CONNECTED`, ... constants), `Client._pending`
(list of bytes waiting to be written), `Client._pending_data_size`, `Client._max_pending_size`
(the reconnect buffer limit), `Client._flush_queue` (asyncio.Queue of futures that wakes the
flusher task), `Client._flusher_task` and `Client._transport` (to write inline when the flusher is
gone, as `Client._flush_pending` does). While reconnecting, nats-py keeps commands in `_pending`
(up to `_max_pending_size` bytes) and writes them once reconnected; `_write` does the same. And
the way `subscribe(future=...)` delivers messages, see `internals.MessageSink`. `internals.py` checks
them on the first connected client and falls back to nats-py's public API when one is missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, NamedTuple

from nats.aio.client import Client
from nats.errors import ConnectionClosedError, ConnectionDrainingError, OutboundBufferLimitError

from rsigma.nats.internals import lean_path, public_sent, public_write, subscribe

log = logging.getLogger("rsigma.nats")

_CONNECTED = Client.CONNECTED
_DRAINING_SUBS = Client.DRAINING_SUBS


def _write(nc: Any, cmd: bytes) -> None:
    """Queue one protocol command on nc's outgoing buffer and wake its flusher; never awaits.

    The synchronous twin of `Client._send_command` + `Client._flush_pending`. While reconnecting the
    command stays buffered like nats-py's own publishes (`OutboundBufferLimitError` once the
    reconnect buffer is full); on a closed or draining connection it raises as `publish` would.
    Unlike `_send_command` it does not wait for the socket when the buffer exceeds
    `_max_pending_size` while connected: callers bound what they write (acks follow deliveries,
    the publisher bounds outstanding publish-acks). The flusher task writes the command on the
    next loop iteration (as it does for nats-py's own publishes). nats-py's `stats` counters do not
    count these commands.
    """
    status = nc._status
    if status != _CONNECTED and status != _DRAINING_SUBS:
        if status == Client.CLOSED:
            raise ConnectionClosedError
        if status == Client.DRAINING_PUBS:
            raise ConnectionDrainingError
        # Reconnecting (or not yet connected): buffer within the reconnect limit; written on reconnect.
        if nc._max_pending_size <= 0 or nc._pending_data_size + len(cmd) > nc._max_pending_size:
            raise OutboundBufferLimitError
        nc._pending.append(cmd)
        nc._pending_data_size += len(cmd)
        return
    nc._pending.append(cmd)
    nc._pending_data_size += len(cmd)
    queue = nc._flush_queue
    if queue.empty():  # an already queued wake-up will write this command too
        flusher = nc._flusher_task
        if flusher is None or flusher.done():
            nc._transport.writelines(nc._pending)
            nc._pending = []
            nc._pending_data_size = 0
        else:
            queue.put_nowait(asyncio.get_running_loop().create_future())


def _check_subject(subject: str) -> None:
    """Refuse what the server would answer with -ERR, which makes nats-py close the connection."""
    if any(c in subject for c in " \t\r\n") or any(t in ("", "*", ">") for t in subject.split(".")):
        raise ValueError(f"cannot publish to {subject!r}: not a concrete NATS subject")


# ---------------------------------------------------------------------------------------------------
# Consuming


class AckMetadata(NamedTuple):
    """What JetStream encodes in a delivered message's reply (ack) subject."""

    stream: str
    consumer: str
    delivered: int  # 1 on first delivery, 2 on the first redelivery, ...
    stream_seq: int
    consumer_seq: int
    timestamp_ns: int
    pending: int  # messages left in the stream for this consumer after this one
    domain: str = ""


def parse_ack_subject(reply: str) -> AckMetadata:
    """Parse a JetStream ack subject, in either of its two forms.

    Old (9 tokens):  `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts_ns>.<pending>`
    New (12 tokens): `$JS.ACK.<domain>.<account_hash>.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.
    <ts_ns>.<pending>.<random>` (the domain `_` means none; 11 tokens, without the random token, are
    accepted as nats.go does).
    """
    t = reply.split(".")
    if len(t) < 9 or t[0] != "$JS" or t[1] != "ACK" or len(t) == 10:
        raise ValueError(f"not a JetStream ack subject: {reply!r}")
    domain = ""
    if len(t) > 9:
        domain = "" if t[2] == "_" else t[2]
        t = t[2:]  # now aligned with the old form
    try:
        return AckMetadata(t[2], t[3], int(t[4]), int(t[5]), int(t[6]), int(t[7]), int(t[8]), domain)
    except ValueError:
        raise ValueError(f"not a JetStream ack subject: {reply!r}") from None


def delivery_position(reply: str) -> tuple[int, int, int]:
    """(stream sequence, times delivered, timestamp ns) from an ack subject: the per-message hot path
    of `parse_ack_subject`, converting only the three numbers the daemon needs."""
    t = reply.split(".")
    if len(t) == 9 and t[1] == "ACK":
        return int(t[5]), int(t[4]), int(t[7])
    meta = parse_ack_subject(reply)
    return meta.stream_seq, meta.delivered, meta.timestamp_ns


class JsMessage:
    """A delivered JetStream message: payload, ack subject and headers; metadata parsed on demand."""

    __slots__ = ("data", "reply", "headers", "_metadata")

    def __init__(self, data: bytes, reply: str, headers: dict[str, str] | None = None) -> None:
        self.data = data
        self.reply = reply
        self.headers = headers
        self._metadata: AckMetadata | None = None

    @property
    def metadata(self) -> AckMetadata:
        if self._metadata is None:
            self._metadata = parse_ack_subject(self.reply)
        return self._metadata

    def __repr__(self) -> str:
        return f"JsMessage(reply={self.reply!r}, data={self.data[:40]!r})"


_ACK_TAIL = b" 4\r\n+ACK\r\n"
_NAK = b"-NAK"
_TERM = b"+TERM"
_IN_PROGRESS = b"+WPI"


class PullConsumer:
    """Pulls from an existing durable pull consumer (explicit acks) with batched pull requests.

    Credit-based flow control. A pull request for `batch` messages is credit the server may use;
    `credit` is what the outstanding requests may still deliver, `buffered` what arrived and was not
    yet taken by `batches()`. A request goes out only while `buffered + credit <= batch`, so the
    server has a request to serve while the previous batch is processed, and at most `2 * batch`
    messages wait locally: a consumer that stops reading stops the pulling (back-pressure, bounded
    memory).

    All requests share one inbox subscription, which keeps the stream's order (the server serves
    waiting requests round-robin, and a delivery keeps the stream message's subject, so it cannot be
    told which request it answers; credit is counted in total). Requests end by delivering their
    batch (silently), by expiring (`408 Request Timeout` after `expires_s`, carrying the count it
    did not deliver in `Nats-Pending-Messages`; pulled again at once), or with an error status
    (`409` consumer deleted, max waiting exceeded, leadership change, ...; `503` no responders when
    the consumer or JetStream is gone; pulled again on the next tick, so a missing consumer is
    retried once per heartbeat interval, not in a loop). Status messages arrive on the request's
    own reply subject, `<inbox>.<n>`.

    Lost requests (dropped connection, restarted server) are found by a timer ticking every
    `heartbeat_s`: the server sends a `100` heartbeat every `heartbeat_s` while a request waits, so
    three silent intervals with credit outstanding mean the requests are gone; and a request older
    than `expires_s` plus a heartbeat has ended one way or another, so credit is capped at `batch`
    times the requests that may still be open. `on_reconnect()` forgets all requests at once; the
    owner calls it from nats-py's `reconnected_cb`.
    """

    def __init__(
        self,
        nc: Any,
        stream: str,
        consumer: str,
        *,
        batch: int = 512,
        expires_s: float = 5.0,
        heartbeat_s: float | None = None,
    ) -> None:
        if batch < 1:
            raise ValueError("batch must be >= 1")
        # The server refuses heartbeats longer than half the expiry.
        heartbeat_s = min(1.0, expires_s / 2) if heartbeat_s is None else heartbeat_s
        if not 0 < heartbeat_s <= expires_s / 2:
            raise ValueError("need 0 < heartbeat_s <= expires_s / 2")
        self._nc = nc
        self._lean = lean_path(nc)
        self._send = _write if self._lean else public_write
        self.stream = stream
        self.consumer = consumer
        self.batch = batch
        self._expires_s = expires_s
        self._heartbeat_s = heartbeat_s
        self._api_subject = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}".encode()
        body = {"batch": batch, "expires": int(expires_s * 1e9), "idle_heartbeat": int(heartbeat_s * 1e9)}
        self._request_body = json.dumps(body, separators=(",", ":")).encode()
        self._inbox = ""
        self._sub: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._stopped = False
        self._buffer: list[JsMessage] = []
        self._credit = 0
        self._open: dict[str, float] = {}  # reply subject -> issue time, of requests that may be open
        self._request_no = 0
        self._statuses = 0
        self._seen = (0, 0)  # (delivered, statuses) at the last tick
        self._last_active = 0.0
        self._num_pending: int | None = None
        self.delivered = 0
        # The last status that ended a request, e.g. "408 Request Timeout" (for diagnostics).
        self.last_status: str | None = None

    @property
    def num_pending(self) -> int | None:
        """Messages left in the stream for this consumer, from the last batch's ack subject."""
        return self._num_pending

    @property
    def buffered(self) -> int:
        """Delivered messages not yet taken by `batches()`."""
        return len(self._buffer)

    @property
    def credit(self) -> int:
        """Messages the outstanding pull requests may still deliver."""
        return self._credit

    async def start(self) -> None:
        """Subscribe the inbox and send the first requests; `batches()` calls it."""
        if self._sub is not None or self._stopped:
            return
        self._loop = asyncio.get_running_loop()
        self._inbox = self._nc.new_inbox()
        self._sub = await subscribe(self._nc, f"{self._inbox}.*", self._on_msg, self._lean)
        self._top_up()
        self._timer = self._loop.call_later(self._heartbeat_s, self._tick)

    async def batches(self) -> AsyncIterator[list[JsMessage]]:
        """Lists of delivered messages in delivery order as they arrive (at most `2 * batch` each)."""
        await self.start()
        loop = asyncio.get_running_loop()
        while not self._stopped:
            if not self._buffer:
                self._waiter = loop.create_future()
                try:
                    await self._waiter
                finally:
                    self._waiter = None
                continue
            msgs = self._buffer
            self._buffer = []
            with contextlib.suppress(ValueError):
                self._num_pending = parse_ack_subject(msgs[-1].reply).pending
            self._top_up()
            yield msgs

    def ack(self, reply: str) -> None:
        """Acknowledge a message by its reply subject; fire-and-forget, no coroutine per message."""
        self._send(self._nc, b"PUB " + reply.encode() + _ACK_TAIL)

    def ack_many(self, replies: Sequence[str]) -> None:
        """Acknowledge several messages with one buffer append."""
        if replies:
            self._send(self._nc, b"".join([b"PUB " + r.encode() + _ACK_TAIL for r in replies]))

    def nak(self, reply: str, delay_s: float | None = None) -> None:
        """Ask for redelivery: after `delay_s` if given, else per the consumer's backoff (at once)."""
        body = _NAK if delay_s is None else b'-NAK {"delay":%d}' % int(delay_s * 1e9)
        self._send(self._nc, b"PUB %s %d\r\n%s\r\n" % (reply.encode(), len(body), body))

    def in_progress(self, reply: str) -> None:
        """Still working on this message: JetStream restarts its ack wait instead of expiring it."""
        _write(self._nc, b"PUB %s %d\r\n%s\r\n" % (reply.encode(), len(_IN_PROGRESS), _IN_PROGRESS))

    def term(self, reply: str) -> None:
        """Never redeliver this message (the consumer drops it; the stream keeps it)."""
        self._send(self._nc, b"PUB %s %d\r\n%s\r\n" % (reply.encode(), len(_TERM), _TERM))

    async def flush(self) -> None:
        """Wait until the acks written so far reached the server (e.g. before closing).

        `nc.flush()` alone is not enough: it writes its PING straight to the socket, ahead of
        commands still queued for nats-py's flusher task, so let that task run first.
        """
        await asyncio.sleep(0)
        if not self._lean:
            await public_sent(self._nc)
        await self._nc.flush()

    def on_reconnect(self) -> None:
        """Forget the outstanding requests (the server may have lost them) and pull again."""
        self._forget_requests()
        self._top_up()

    async def stop(self) -> None:
        """Stop pulling and unsubscribe; `batches()` ends. Unacked messages get redelivered."""
        self._stopped = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
        self._forget_requests()
        sub, self._sub = self._sub, None
        if sub is not None and not self._nc.is_closed:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    # -- internals ---------------------------------------------------------------------------------

    def _on_msg(self, msg: Any) -> None:
        """A message on the inbox (via `MessageSink` on the lean path: must not raise)."""
        reply = msg.reply
        if reply:  # a delivery (status messages have no reply subject)
            self._buffer.append(JsMessage(msg.data, reply, msg.headers))
            self._credit -= 1
            self.delivered += 1
            waiter = self._waiter
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
            return
        try:
            self._on_status(msg.subject, msg.headers or {})
        except Exception:
            log.exception("pull consumer on %s: status message %r", self._api_subject.decode(), msg)

    def _on_status(self, subject: str, headers: dict[str, str]) -> None:
        self._statuses += 1
        status = headers.get("Status")
        if status == "100":  # idle heartbeat: a request is open, the stream has nothing new
            return
        self.last_status = f"{status} {headers.get('Description', '')}".strip()
        if self._open.pop(subject, None) is None:
            return  # the end of a request already forgotten
        with contextlib.suppress(KeyError, ValueError):
            self._credit -= int(headers["Nats-Pending-Messages"])
        self._cap_credit()
        if status == "408" or status == "404":  # expired, or nothing to deliver: ask again
            self._top_up()
        else:  # 409 (consumer deleted, leadership change, ...), 503 (no consumer), 400: retry on tick
            log.warning("pull request on %s ended: %s", self._api_subject.decode(), self.last_status)

    def _cap_credit(self) -> None:
        """Credit cannot exceed what the requests that may still be open asked for, nor go below 0."""
        self._credit = max(0, min(self._credit, self.batch * len(self._open)))

    def _forget_requests(self) -> None:
        self._open.clear()
        self._credit = 0

    def _top_up(self) -> None:
        nc = self._nc
        if self._stopped or self._sub is None or not nc.is_connected or nc.is_draining:
            return  # while reconnecting: the tick or on_reconnect() pulls once connected again
        if self._credit < 0:  # deliveries of forgotten requests
            self._credit = 0
        while len(self._buffer) + self._credit <= self.batch:
            assert self._loop is not None
            self._request_no += 1
            reply = f"{self._inbox}.{self._request_no}"
            self._last_active = self._open[reply] = self._loop.time()
            self._credit += self.batch
            body = self._request_body
            self._send(nc, b"PUB %s %s %d\r\n%s\r\n" % (self._api_subject, reply.encode(), len(body), body))

    def _tick(self) -> None:
        """Every heartbeat interval: forget requests that ended unseen or went silent, then top up."""
        assert self._loop is not None
        now = self._loop.time()
        seen = (self.delivered, self._statuses)
        if seen != self._seen:
            self._seen = seen
            self._last_active = now
        elif self._credit > 0 and now - self._last_active > 3 * self._heartbeat_s:
            log.warning(
                "pull requests on %s: no answer for %.1f s; pulling again",
                self._api_subject.decode(),
                now - self._last_active,
            )
            self._forget_requests()
        ended = now - self._expires_s - self._heartbeat_s
        for reply, issued in list(self._open.items()):
            if issued < ended:
                del self._open[reply]
        self._cap_credit()
        self._top_up()
        self._timer = self._loop.call_later(self._heartbeat_s, self._tick)


# ---------------------------------------------------------------------------------------------------
# Publishing


class _Call:
    """One `publish_many` call: its future, its reply tokens and how many acks it still waits for."""

    __slots__ = ("future", "subject", "total", "written", "remaining", "ranges", "last_progress", "timer")

    def __init__(self, future: asyncio.Future[None], subject: str, total: int, now: float) -> None:
        self.future = future
        self.subject = subject
        self.total = total
        self.written = 0
        self.remaining = 0  # written, not yet acked
        self.ranges: list[range] = []  # its reply tokens (consecutive integers per written chunk)
        self.last_progress = now
        self.timer: asyncio.TimerHandle | None = None


class AsyncPublisher:
    """Publishes to JetStream streams, matching publish-acks in one inbox callback.

    Each message goes out with reply subject `<inbox>.<n>`; the stream answers there with
    `{"stream": ..., "seq": ...}` (plus `"duplicate": true` when the `Nats-Msg-Id` was seen within
    the stream's duplicate window, still a success), `{"error": {...}}`, or a `503` status when no
    stream stores the subject. A `publish_many` call fails with `OSError` on the first error, or
    when `timeout_s` passes without any of its acks arriving (one timer per call, re-armed while
    acks keep coming). At most `max_pending` acks are outstanding across calls; further writes wait
    until half of them arrived, which bounds memory and applies back-pressure.
    """

    def __init__(self, nc: Any, *, timeout_s: float = 5.0, max_pending: int = 4096) -> None:
        if max_pending < 1:
            raise ValueError("max_pending must be >= 1")
        self._nc = nc
        self._lean = lean_path(nc)
        self._send = _write if self._lean else public_write
        self._timeout_s = timeout_s
        self._max_pending = max_pending
        self._inbox = b""
        self._sub: Any = None
        self._prefix_len = 0
        self._counter = 0
        self._waiting: dict[str, _Call] = {}  # reply token -> its call
        self._outstanding = 0
        self._room: asyncio.Future[None] | None = None
        self._loop_time: Callable[[], float] = lambda: 0.0
        self._calls: set[_Call] = set()  # publish_many calls in progress
        self._closed = False

    @property
    def outstanding(self) -> int:
        """Publishes whose ack has not arrived yet."""
        return self._outstanding

    async def publish(self, subject: str, payload: bytes, msg_id: str | None = None) -> None:
        """Publish one message and wait for its publish-ack."""
        await self.publish_many(subject, [(payload, msg_id)])

    async def publish_many(self, subject: str, items: Sequence[tuple[bytes, str | None]]) -> None:
        """Publish every (payload, msg_id or None) to subject; return when the stream stored them all.

        Raises `OSError` if any publish-ack is an error, no stream stores the subject, no ack comes
        within `timeout_s`, or the connection refuses the writes (closed, reconnect buffer full).
        """
        if self._closed:
            raise OSError("publisher is closed")
        if not items:
            return
        _check_subject(subject)
        if self._sub is None:
            inbox = self._nc.new_inbox()
            self._inbox = inbox.encode()
            self._prefix_len = len(inbox) + 1
            self._sub = await subscribe(self._nc, f"{inbox}.*", self._on_ack, self._lean)
        loop = asyncio.get_running_loop()
        self._loop_time = loop.time
        call = _Call(loop.create_future(), subject, len(items), loop.time())
        call.timer = loop.call_later(self._timeout_s, self._check_timeout, call)
        self._calls.add(call)
        try:
            while call.written < call.total and not call.future.done():
                room = self._max_pending - self._outstanding
                if room > 0:
                    self._write_chunk(call, items[call.written : call.written + room], loop.time())
                    continue
                if self._room is None or self._room.done():
                    self._room = loop.create_future()
                await self._room
            await call.future
        finally:
            self._calls.discard(call)
            self._discard(call)

    async def close(self) -> None:
        """Unsubscribe; publishes still waiting for acks fail with OSError."""
        self._closed = True
        for call in list(self._calls):
            self._fail(call, OSError(f"publish to {call.subject!r}: publisher closed before the acks came"))
        sub, self._sub = self._sub, None
        if sub is not None and not self._nc.is_closed:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    def reconnected(self) -> None:
        """The connection came back: fail the calls in progress now rather than `timeout_s` after their
        last ack. The publish-acks of what went out before the drop were answered to a connection that
        is gone, so they never come; a retry publishes again (a `Nats-Msg-Id` makes the copies of what
        the server did store count as duplicates, a success)."""
        for call in list(self._calls):
            self._fail(call, OSError(f"publish to {call.subject!r}: connection lost before the acks came"))

    # -- internals ---------------------------------------------------------------------------------

    def _write_chunk(self, call: _Call, chunk: Sequence[tuple[bytes, str | None]], now: float) -> None:
        max_payload = self._nc.max_payload
        head = b"PUB " + call.subject.encode() + b" " + self._inbox + b"."
        hhead = b"H" + head
        parts = []
        first = n = self._counter + 1
        for payload, msg_id in chunk:
            size = len(payload)
            if size > max_payload:
                raise OSError(f"publish to {call.subject!r}: payload of {size} bytes > max {max_payload}")
            if msg_id is None:
                parts.append(b"%s%d %d\r\n" % (head, n, size))
            else:
                if "\r" in msg_id or "\n" in msg_id:
                    raise ValueError(f"msg_id must not contain line breaks: {msg_id!r}")
                hdr = b"NATS/1.0\r\nNats-Msg-Id: " + msg_id.encode() + b"\r\n\r\n"
                parts.append(b"%s%d %d %d\r\n%s" % (hhead, n, len(hdr), len(hdr) + size, hdr))
            parts.append(payload)
            parts.append(b"\r\n")
            n += 1
        try:
            self._send(self._nc, b"".join(parts))
        except (ConnectionClosedError, ConnectionDrainingError, OutboundBufferLimitError) as e:
            raise OSError(f"publish to {call.subject!r}: {type(e).__name__}: {e}") from e
        tokens = range(first, n)
        waiting = self._waiting
        for token in tokens:
            waiting[str(token)] = call
        call.ranges.append(tokens)
        self._counter = n - 1
        self._outstanding += len(tokens)
        call.written += len(tokens)
        call.remaining += len(tokens)
        call.last_progress = now

    def _on_ack(self, msg: Any) -> None:
        """A publish-ack on the inbox (via `MessageSink` on the lean path: must not raise)."""
        call = self._waiting.pop(msg.subject[self._prefix_len :], None)
        if call is None:  # its call already failed, timed out or was cancelled
            return
        try:
            self._outstanding -= 1
            call.remaining -= 1
            data = msg.data
            if not data or b'"error"' in data:  # a successful PubAck never contains "error"
                error = _ack_error(call.subject, data, msg.headers)
                if error is not None:
                    self._fail(call, error)
                    return
            if call.remaining == 0 and call.written == call.total:
                self._finish(call)
            else:
                call.last_progress = self._loop_time()
            room = self._room
            if room is not None and not room.done() and self._outstanding <= self._max_pending // 2:
                room.set_result(None)
        except Exception as e:
            log.exception("publisher: publish-ack %r", msg)
            self._fail(call, OSError(f"publish to {call.subject!r}: bad publish-ack: {e}"))

    def _finish(self, call: _Call) -> None:
        if call.timer is not None:
            call.timer.cancel()
            call.timer = None
        if not call.future.done():
            call.future.set_result(None)

    def _fail(self, call: _Call, error: OSError) -> None:
        self._discard(call)
        if not call.future.done():
            call.future.set_exception(error)

    def _discard(self, call: _Call) -> None:
        """Forget the call's outstanding tokens (late acks are then ignored) and its timer."""
        if call.timer is not None:
            call.timer.cancel()
            call.timer = None
        if call.remaining:
            waiting = self._waiting
            for tokens in call.ranges:
                for token in tokens:
                    if waiting.pop(str(token), None) is not None:
                        self._outstanding -= 1
            call.remaining = 0
        call.ranges = []
        room = self._room
        if room is not None and not room.done():
            room.set_result(None)

    def _check_timeout(self, call: _Call) -> None:
        call.timer = None
        if call.future.done():
            return
        loop = asyncio.get_running_loop()
        idle = loop.time() - call.last_progress
        if idle < self._timeout_s:
            call.timer = loop.call_later(self._timeout_s - idle, self._check_timeout, call)
            return
        self._fail(
            call,
            OSError(
                f"publish to {call.subject!r}: no publish-ack from JetStream within {self._timeout_s:g} s "
                f"({call.remaining} of {call.written} written still unacknowledged)"
            ),
        )


def _ack_error(subject: str, data: bytes, headers: dict[str, str] | None) -> OSError | None:
    """The error a publish-ack reports, or None for a success (a duplicate is a success)."""
    if not data:
        status = (headers or {}).get("Status")
        if status == "503":
            return OSError(f"publish to {subject!r}: no JetStream stream stores this subject (no responders)")
        return OSError(f"publish to {subject!r}: unexpected empty publish-ack (status {status})")
    try:
        ack = json.loads(data)
    except ValueError:
        return OSError(f"publish to {subject!r}: malformed publish-ack {data[:200]!r}")
    error = ack.get("error") if isinstance(ack, dict) else None
    if not error:
        return None
    if not isinstance(error, dict):
        error = {"description": str(error)}
    return OSError(
        f"publish to {subject!r} refused by JetStream: {error.get('description', error)}"
        f" (code {error.get('code')}, err_code {error.get('err_code')})"
    )
