"""The hits stream: how one source event's correlation hits travel to the owner of their partition.

A hit message holds one source event's level-1 hits for one partition, MessagePack (msgspec), with
the source stream and sequence it came from. It is published to `rsigma.hits.<cluster>.<partition>`
with `Nats-Msg-Id: <source stream>:<sequence>:<partition>`, so a redelivered source event stores its
hits once (within the stream's duplicate window; past it, the owner drops the copy, see
`ordering.py`). Hits name their correlation by its stable key, not by index: members may have loaded
their rules in another order.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Final

import msgspec
from nats.js.api import StorageType, StreamConfig
from nats.js.errors import NotFoundError

from rsigma.correlation.engine import Hit
from rsigma.correlation.sharding import shard_of
from rsigma.errors import ConfigError

__all__ = [
    "FORMAT",
    "HitMessage",
    "WireHit",
    "decode_hit_message",
    "encode_hit_message",
    "ensure_hits_stream",
    "hit_messages",
    "hits_stream",
    "hits_subject",
    "hits_subjects",
    "message_id",
]

log = logging.getLogger("rsigma.cluster")

#: The hit message format this daemon writes and reads.
FORMAT: Final = 1
#: Hits are kept this long at least (a member that falls further behind loses them).
MIN_MAX_AGE_S: Final = 24 * 3600.0


class WireHit(msgspec.Struct, array_like=True, frozen=True):
    """One hit (`rsigma.correlation.engine.Hit`) with its correlation's key instead of its index, and
    `event` (the event's place among those extracted from its payload, 0 without --jq/--jsonpath)
    instead of the batch position."""

    correlation: str
    group: tuple[Any, ...]
    value: None | int | float | str | tuple[str, ...]
    ts: float
    event: int
    order: tuple[int, ...]
    context: dict[str, Any] | None
    evidence: tuple[str | None, bytes | None] | None


class HitMessage(msgspec.Struct, array_like=True, frozen=True):
    """One source event's hits for one partition."""

    format: int
    stream: str  # the source stream
    sequence: int  # the source event's stream sequence
    partition: int
    hits: list[WireHit]


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(HitMessage)


def hits_stream(cluster: str) -> str:
    return f"rsigma-hits-{cluster}"


def hits_subjects(cluster: str) -> str:
    """The wildcard subject of every partition."""
    return f"rsigma.hits.{cluster}.*"


def hits_subject(cluster: str, partition: int) -> str:
    return f"rsigma.hits.{cluster}.{partition}"


def message_id(stream: str, sequence: int, partition: int) -> str:
    return f"{stream}:{sequence}:{partition}"


def encode_hit_message(message: HitMessage) -> bytes:
    return _encoder.encode(message)


def decode_hit_message(data: bytes) -> HitMessage:
    """A hit message; ValueError naming what is wrong with one this daemon cannot read."""
    try:
        message = _decoder.decode(data)
    except msgspec.DecodeError as e:
        raise ValueError(f"not a hit message of format {FORMAT}: {e}") from e
    if message.format != FORMAT:
        raise ValueError(f"hit message of format {message.format}; this daemon reads format {FORMAT}")
    return message


def hit_messages(
    stream: str, sequence: int, hits: Sequence[Hit], keys: Sequence[str], partitions: int
) -> list[HitMessage]:
    """One source event's hits (position = the event's place in its payload), one message per
    partition they fall in, hits in their given order within each."""
    grouped: dict[int, list[WireHit]] = {}
    for ci, group, value, ts, event, order, context, evidence in hits:
        key = keys[ci]
        wire = WireHit(key, group, value, ts, event, order, context, evidence)
        grouped.setdefault(shard_of(key, group, partitions), []).append(wire)
    return [HitMessage(FORMAT, stream, sequence, p, grouped[p]) for p in sorted(grouped)]


def stream_config(cluster: str, duplicate_window_s: float, replicas: int = 1) -> StreamConfig:
    """File storage; the duplicate window covers every redelivery of a source event."""
    return StreamConfig(
        name=hits_stream(cluster),
        subjects=[hits_subjects(cluster)],
        storage=StorageType.FILE,
        duplicate_window=duplicate_window_s,
        max_age=max(MIN_MAX_AGE_S, duplicate_window_s),
        num_replicas=replicas,
    )


async def ensure_hits_stream(js: Any, cluster: str, duplicate_window_s: float, replicas: int = 1) -> str:
    """Create the hits stream if missing; check one that exists (ConfigError when it cannot serve),
    widening a duplicate window narrower than `duplicate_window_s`. The replicas of a stream that
    exists are the operator's (a replica change moves data between servers): fewer than asked warns."""
    wanted = stream_config(cluster, duplicate_window_s, replicas)
    name = wanted.name
    try:
        info = await js.stream_info(name)
    except NotFoundError:
        await js.add_stream(wanted)
        log.info(
            "cluster hits stream created",
            extra={"stream": name, "duplicate_window_seconds": duplicate_window_s, "replicas": replicas},
        )
        return name
    current = info.config
    warn_fewer_replicas(f"stream {name!r}", current.num_replicas or 1, replicas, f"nats stream edit {name}")
    if list(current.subjects or ()) != wanted.subjects:
        raise ConfigError(
            f"--cluster {cluster}: stream {name!r} has subjects {current.subjects}, expected"
            f" {wanted.subjects}"
        )
    if (current.duplicate_window or 0) < duplicate_window_s:
        current.duplicate_window = duplicate_window_s
        current.max_age = max(current.max_age or 0, duplicate_window_s) if current.max_age else 0
        await js.update_stream(current)
        log.info(
            "cluster hits stream: duplicate window widened",
            extra={"stream": name, "duplicate_window_seconds": duplicate_window_s},
        )
    return name


def warn_fewer_replicas(what: str, has: int, wanted: int, fix: str) -> None:
    """A cluster stream that exists with fewer replicas than --cluster-replicas: said, not changed."""
    if has < wanted:
        log.warning(
            f"--cluster-replicas {wanted}: {what} has {has}; raise it with `{fix} --replicas {wanted}`",
            extra={"replicas": has, "wanted": wanted},
        )
