"""Event sources: stdin, HTTP ingest and NATS JetStream behind one contract (see `base.py`)."""

from __future__ import annotations

from rsigma.daemon.config import DaemonConfig
from rsigma.daemon.metrics import Metrics
from rsigma.daemon.sources.base import Emit, Source
from rsigma.daemon.sources.http import HttpSource
from rsigma.daemon.sources.nats import NatsSource
from rsigma.daemon.sources.stdin import StdinSource
from rsigma.nats.connection import ONE_ATTEMPT, ConnectWait

__all__ = ["Emit", "HttpSource", "NatsSource", "Source", "StdinSource", "open_source"]


async def open_source(config: DaemonConfig, metrics: Metrics, wait: ConnectWait = ONE_ATTEMPT) -> Source:
    """The source `--input` names; a NATS source connects (waiting for the server as `wait` says)
    and sets up its consumer here, so an unusable one is a startup error."""
    if config.input in ("stdin", "stdin://"):
        return StdinSource(config.max_event_bytes)
    if config.input == "http":
        return HttpSource(config.max_event_bytes, config.buffer_size)
    return await NatsSource.open(
        config.input,
        group=config.consumer_group,
        ack_wait_s=config.nats_ack_wait_s,
        max_deliver=config.nats_max_deliver,
        replay=config.replay,
        auth=config.nats_auth,
        wait=wait,
        metrics=metrics,
    )
