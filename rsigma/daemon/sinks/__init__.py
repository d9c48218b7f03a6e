"""Where results and dead-letter entries go: one contract for stdout, files and NATS JetStream.

Every sink is opened at startup, so a destination that cannot be used is a startup error (exit 3),
not a stream of failed writes. A sink confirms delivery by returning: `deliver` and `write` return
once the destination has the data (written to the file or pipe; acknowledged by the JetStream
stream) and raise `OSError` otherwise, which the sink worker retries (see `worker.py`) and the ack
model turns into a redelivery or a dead letter (see `rsigma/daemon/ack.py`).
"""

from __future__ import annotations

from typing import Any, Protocol

from rsigma.daemon.ack import Delivery
from rsigma.daemon.metrics import Metrics
from rsigma.daemon.sinks.formats import split_sink_url
from rsigma.daemon.sinks.lines import LineSink, open_writer
from rsigma.daemon.sinks.nats import NatsSink
from rsigma.nats.auth import NatsAuth
from rsigma.nats.connection import ONE_ATTEMPT, ConnectWait
from rsigma.output_format import line_format


class Sink(Protocol):
    name: str  # "stdout", "file" or "nats": the `sink` label of the sink metrics

    async def deliver(self, batch: list[Delivery]) -> None:
        """Every result line of the batch, in order (a sink worker's batch of events)."""

    async def write(self, data: bytes, msg_id: str | None = None) -> None:
        """One line (a dead-letter entry); `msg_id` de-duplicates it where the sink can (NATS)."""

    def status(self) -> dict[str, Any] | None:
        """`{connection role: its state}` for `/api/v1/status`, for sinks that have one (NATS)."""

    async def aclose(self) -> None: ...


async def open_sink(
    url: str,
    flag: str,
    auth: NatsAuth,
    metrics: Metrics | None = None,
    wait: ConnectWait = ONE_ATTEMPT,
    pretty: bool = False,
) -> Sink:
    """A sink by URL: `nats://` publishes to JetStream (waiting for the server as `wait` says);
    `stdout` and `file://` write lines. `?format=ocsf` writes OCSF Detection Findings (outputs
    only), and `pretty` indents the results a stdout output writes. A bad URL or an unusable
    destination raises `ConfigError` naming the flag."""
    base, fmt = split_sink_url(url, flag)
    if base.startswith("nats://"):
        return await NatsSink.open(
            base, flag, auth=auth, wait=wait, metrics=metrics, encode=line_format(fmt, False)
        )
    writer = open_writer(base, flag)
    return LineSink(writer, line_format(fmt, pretty and writer.name == "stdout"))
