"""What a cluster keeps in its JetStream KV bucket: names, the cluster's config, one record per member.

Pure (no I/O): `membership` reads and writes these. The bucket `rsigma-cluster-<NAME>` holds the key
`config` (`{"partitions": P, "format": 1}`, written once by the first member) and one key
`members.<member id>` per live daemon (a JSON `MemberRecord`, rewritten at every heartbeat), and per
partition `delivered.<partition>`: the partition's delivered floor (`{"source_seq": S, "member": id}`,
no TTL), every result of its hits at or below source sequence S having been delivered.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass
from typing import Any, Final

from rsigma.errors import ConfigError

__all__ = [
    "CONFIG_KEY",
    "DELIVERED_PREFIX",
    "FORMAT",
    "MEMBERS_PREFIX",
    "ClusterConfig",
    "MemberRecord",
    "MembershipError",
    "bucket_name",
    "check_cluster_name",
    "check_member_id",
    "decode_config",
    "decode_delivered",
    "decode_member",
    "delivered_key",
    "encode_delivered",
    "member_key",
    "ttl_of",
]

#: The version of the bucket's layout; a member refuses a bucket of another format.
FORMAT: Final = 1
CONFIG_KEY: Final = "config"
MEMBERS_PREFIX: Final = "members."
DELIVERED_PREFIX: Final = "delivered."
BUCKET_PREFIX: Final = "rsigma-cluster-"
#: A member key lives this many heartbeats after its last write (then the server removes it).
HEARTBEATS_PER_TTL: Final = 3

# A cluster name goes into a bucket name, a stream name and a subject token: no dot, no wildcard.
_CLUSTER_NAME: Final = re.compile(r"[A-Za-z0-9_-]+")
# A member id goes into a KV key (`members.<id>`): NATS key characters, no empty dot-separated token.
_MEMBER_ID: Final = re.compile(r"[A-Za-z0-9_=-]+(\.[A-Za-z0-9_=-]+)*")


class MembershipError(ConfigError):
    """The cluster cannot be joined as configured (exit 3): another partition count, a member id in
    use by another live daemon, a bucket that is not the cluster's."""


def check_cluster_name(name: str) -> str:
    if not _CLUSTER_NAME.fullmatch(name):
        raise MembershipError(
            f"--cluster {name!r}: use letters, digits, '-' and '_' only (the name becomes part of a"
            " NATS bucket, stream and subject name)"
        )
    return name


def check_member_id(member_id: str) -> str:
    if not _MEMBER_ID.fullmatch(member_id):
        raise MembershipError(
            f"--cluster-member-id {member_id!r}: use letters, digits, '-', '_', '=' and inner dots"
            " only (the id becomes a NATS KV key)"
        )
    return member_id


def bucket_name(cluster: str) -> str:
    return BUCKET_PREFIX + cluster


def member_key(member_id: str) -> str:
    return MEMBERS_PREFIX + member_id


def delivered_key(partition: int) -> str:
    return f"{DELIVERED_PREFIX}{partition}"


def encode_delivered(source_seq: int, member: str) -> bytes:
    return json.dumps({"source_seq": source_seq, "member": member}, separators=(",", ":")).encode()


def decode_delivered(data: bytes) -> int:
    """A delivered floor's source sequence; ValueError saying what was expected."""
    try:
        value = json.loads(data)["source_seq"]
    except (ValueError, TypeError, KeyError) as e:
        raise ValueError(f'expected {{"source_seq": S, "member": ID}}, got {data[:200]!r}') from e
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"source_seq {value!r}: expected a sequence >= 0")
    return value


def ttl_of(heartbeat_s: float) -> int:
    """Whole seconds a member key lives: at least `HEARTBEATS_PER_TTL` heartbeats, and at least 1 s
    (NATS counts a message TTL in whole seconds, 1 s the shortest)."""
    if not heartbeat_s > 0 or math.isinf(heartbeat_s):
        raise MembershipError(f"--cluster-heartbeat {heartbeat_s}: expected a number of seconds above 0")
    return max(1, math.ceil(HEARTBEATS_PER_TTL * heartbeat_s - 1e-9))


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    partitions: int
    format: int = FORMAT

    def encode(self) -> bytes:
        return json.dumps({"partitions": self.partitions, "format": self.format}).encode()


def decode_config(data: bytes, where: str) -> ClusterConfig:
    """The `config` key's value; `where` names the bucket in the error."""
    try:
        value = json.loads(data)
        config = ClusterConfig(partitions=value["partitions"], format=value["format"])
    except (ValueError, TypeError, KeyError) as e:
        raise MembershipError(
            f"{where}: key {CONFIG_KEY!r} is not a cluster config"
            f' (expected {{"partitions": P, "format": {FORMAT}}}, got {data[:200]!r})'
        ) from e
    if config.format != FORMAT:
        raise MembershipError(
            f"{where}: the cluster's format is {config.format!r}, this rsigma reads format {FORMAT}"
        )
    if not isinstance(config.partitions, int) or isinstance(config.partitions, bool) or config.partitions < 1:
        raise MembershipError(f"{where}: key {CONFIG_KEY!r} has partitions {config.partitions!r}")
    return config


@dataclass(frozen=True, slots=True)
class MemberRecord:
    """What a member says about itself; (host, pid, started) tells two daemons with one id apart."""

    member: str
    host: str
    pid: int
    started: float  # Unix time the member joined
    heartbeat_s: float
    api: str | None = None

    def encode(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":")).encode()

    def same_instance(self, other: MemberRecord) -> bool:
        return (self.host, self.pid, self.started) == (other.host, other.pid, other.started)

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host}, started at {self.started:.3f}"


def decode_member(data: bytes) -> MemberRecord | None:
    """A member key's value, or None when it is not one (ownership goes by the key, not the value)."""
    try:
        value: Any = json.loads(data)
        record = MemberRecord(
            member=str(value["member"]),
            host=str(value["host"]),
            pid=int(value["pid"]),
            started=float(value["started"]),
            heartbeat_s=float(value["heartbeat_s"]),
            api=None if value.get("api") is None else str(value["api"]),
        )
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
    if not 0 < record.heartbeat_s < math.inf:
        return None
    return record
