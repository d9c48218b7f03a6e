"""The daemon's settings: one frozen object built by the CLI from its flags."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from rsigma.correlation.engine import CorrelationConfig
from rsigma.daemon.state import Replay, RestoreMode
from rsigma.evaluator import Evaluator
from rsigma.formats import InputFormat
from rsigma.formats.extract import Extraction
from rsigma.nats.auth import NatsAuth
from workers.watchdog import DEFAULT_MATCHER_TIMEOUT_S

DEFAULT_BUFFER_SIZE: Final = 10_000
#: Events per engine step at most: what is waiting is taken, a batch is never waited for.
DEFAULT_BATCH_SIZE: Final = 128
#: Deliveries a sink worker takes from its queue per write at most.
DEFAULT_SINK_BATCH_MAX: Final = 64
DEFAULT_MAX_EVENT_BYTES: Final = 1 << 20
DEFAULT_API_ADDR: Final = "127.0.0.1:9090"
DEFAULT_API_MAX_BODY_BYTES: Final = 64 << 20
DEFAULT_API_READ_TIMEOUT: Final = 10.0
DEFAULT_CLUSTER_PARTITIONS: Final = 64
#: Seconds between two reads of the input's ack floor, each applying the owned hits below it.
DEFAULT_CLUSTER_APPLY_INTERVAL_S: Final = 0.2
#: Seconds between two writes of a member's key in the cluster's KV bucket (it lives 3 of them).
DEFAULT_CLUSTER_HEARTBEAT_S: Final = 1.0
#: Replicas of the hits stream and the KV bucket a member creates (1: a single NATS server).
DEFAULT_CLUSTER_REPLICAS: Final = 1
#: Seconds between two snapshots of the owned partitions' windows (0: none; moves replay from the start).
DEFAULT_CLUSTER_SNAPSHOT_INTERVAL_S: Final = 30.0


@dataclass(frozen=True, slots=True)
class DaemonConfig:
    rules: tuple[Path, ...]
    build_evaluator: Callable[[], Evaluator] = field(compare=False)  # loads rules and pipelines afresh
    watch_paths: tuple[Path, ...] = ()  # rule and pipeline files whose changes trigger a reload
    input: str = "stdin"
    outputs: tuple[str, ...] = ("stdout",)
    dlq: str | None = None
    include_event: bool = False
    input_format: InputFormat = InputFormat()  # --input-format and its syslog settings
    extraction: Extraction | None = None  # --jq or --jsonpath
    pretty: bool = False  # indent the results stdout outputs write
    buffer_size: int = DEFAULT_BUFFER_SIZE
    batch_size: int = DEFAULT_BATCH_SIZE
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES
    sink_retry_max: int = 3
    sink_backoff_base_s: float = 0.1
    sink_backoff_max_s: float = 5.0
    sink_batch_max: int = DEFAULT_SINK_BATCH_MAX
    sink_batch_flush_s: float = 0.0  # how long a sink may wait for a fuller batch; 0: never waits
    state_db: Path | None = None
    state_save_interval: float = 30.0
    restore_mode: RestoreMode = RestoreMode.AUTO
    replay: Replay = Replay()
    drain_timeout: float = 5.0
    api_addr: str = DEFAULT_API_ADDR
    api_max_body_bytes: int = DEFAULT_API_MAX_BODY_BYTES  # per POST /api/v1/events request
    api_read_timeout: float = DEFAULT_API_READ_TIMEOUT  # for a request's headers, and each body read
    api_token: str | None = field(default=None, repr=False)  # bearer token for ingest and reload
    reload_poll_s: float = 2.0
    correlation: CorrelationConfig = CorrelationConfig()
    consumer_group: str | None = None  # NATS: a durable consumer shared by several daemons
    cluster: str | None = None  # daemons of one cluster share correlation (docs/cluster.md)
    cluster_partitions: int = DEFAULT_CLUSTER_PARTITIONS
    cluster_apply_interval_s: float = DEFAULT_CLUSTER_APPLY_INTERVAL_S
    cluster_heartbeat_s: float = DEFAULT_CLUSTER_HEARTBEAT_S
    cluster_replicas: int = DEFAULT_CLUSTER_REPLICAS
    cluster_snapshot_interval_s: float = DEFAULT_CLUSTER_SNAPSHOT_INTERVAL_S
    cluster_member_id: str | None = None  # None: <hostname>-<pid>
    nats_ack_wait_s: float = 30.0
    nats_max_deliver: int = 5
    workers: int = 0  # matcher processes; 0 evaluates in the supervisor's event loop
    # a matcher holding work and making no progress on it this long is killed and restarted
    matcher_timeout_s: float = DEFAULT_MATCHER_TIMEOUT_S
    log_format: str = "json"  # also for the matcher processes
    log_level: str = "info"  # also for the matcher processes
    nats_auth: NatsAuth = NatsAuth()  # authentication and TLS for every NATS connection
    nats_connect_timeout_s: float | None = None  # startup wait for an unreachable server; None: for ever
