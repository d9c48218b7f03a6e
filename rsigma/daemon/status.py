"""`GET /api/v1/status`: the daemon's figures, its input and every NATS connection, as one object."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from rsigma.cluster.status import cluster_status

if TYPE_CHECKING:
    from rsigma.daemon.runtime import Daemon


def daemon_status(daemon: Daemon) -> dict[str, Any]:
    metrics, source, backend = daemon.metrics, daemon.source, daemon.backend
    status: dict[str, Any] = {
        "status": "running" if daemon.ready else "loading",
        "detection_rules": len(daemon.rules.rules),
        "correlation_rules": daemon.rules.correlations,
        "correlation_state_entries": backend.windows if backend is not None else 0,
        "events_processed": metrics.evaluated,
        "detection_matches": metrics.detections,
        "correlation_matches": metrics.correlations,
        "events_in_flight": daemon.inflight.count,
        "uptime_seconds": round(time.time() - daemon.started, 3),
        "inputs": {daemon.config.input: source.state if source is not None else "starting"},
    }
    nats = _nats_status(daemon)
    if nats is not None:
        status["nats"] = nats
    if daemon.cluster is not None:
        status["cluster"] = daemon.cluster.status()
        if daemon.membership is not None:
            status["cluster"].update(cluster_status(daemon.membership))
    workers = backend.status() if backend is not None else []
    if workers:
        status["workers"] = workers
    return status


def _nats_status(daemon: Daemon) -> dict[str, Any] | None:
    """Each NATS connection's state and reconnects; for the input also the consumer's backlog. None
    when the daemon has no NATS connection."""
    outputs: dict[str, Any] = {}
    for sink in daemon.all_sinks:
        outputs |= sink.status() or {}
    source = daemon.source.status() if daemon.source is not None else None
    if not outputs and source is None:
        return None
    return {"outputs": outputs, **({"input": source} if source is not None else {})}
