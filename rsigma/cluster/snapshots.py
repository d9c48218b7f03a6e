"""Partition snapshots: a partition's windows with the point of the hits stream they reflect, so that
a member gaining the partition replays only the hits after it (docs/cluster.md, "Snapshots").

A snapshot of partition p holds, taken in one synchronous moment on its owner:

- `applied`: the partition's applied floor F. The windows reflect every hit of p with source
  sequence <= F, and none above (hits are applied in source order, up to the ack floor).
- `after`: a hits-stream sequence H such that every hit message of p with source sequence > F is
  stored after H: the stream sequence just before the first such message waiting on the owner, or
  the last one it had received when none waits (later messages get later sequences).
- the windows, as `CorrelationEngine.export_state` writes them (keyed by the correlation's stable
  key: a snapshot taken under other rules restores only the windows of correlations still loaded).
- `definitions`: each correlation's definition digest when it was taken, so that the windows of a
  correlation whose definition changed since are not restored (`restorable`).

A member gaining p loads its windows, drops hits with source sequence <= F (the applied floor does)
and replays the stream from H + 1. The result is the windows one daemon holds after the same hits.

They live in a JetStream Object Store, `rsigma-snapshots-<cluster>`, one object per partition
(`p<N>`), because windows outgrow a KV value (1 MiB by default). A record that cannot be read (another
format, a checksum that does not match, a partition number that is not its name's) is ignored with a
warning: that partition is replayed from the start of the hits stream, as without snapshots.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec
from nats.js.api import ObjectStoreConfig, StorageType
from nats.js.errors import BucketNotFoundError, NotFoundError

__all__ = ["FORMAT", "PartitionSnapshot", "SnapshotStore", "decode_snapshot", "encode_snapshot", "restorable"]

log = logging.getLogger("rsigma.cluster")

FORMAT: Final = 2  # 1: before the definition digests
_DIGEST_BYTES: Final = 16


@dataclass(frozen=True, slots=True)
class PartitionSnapshot:
    partition: int
    applied: int  # source sequence: every hit of the partition at or below it is in `windows`
    after: int  # hits-stream sequence: every hit message above `applied` is stored after it
    windows: bytes  # `CorrelationEngine.export_state` of the partition's windows
    taken: float  # Unix time
    definitions: dict[str, str] = field(default_factory=dict)  # correlation key -> definition digest


def restorable(
    snapshot: PartitionSnapshot, current: dict[str, str], owned: Callable[[str, list[Any]], bool]
) -> Callable[[str, list[Any]], bool]:
    """Which of the snapshot's windows (correlation key, group) to restore: those `owned` accepts,
    of correlations loaded (`current`: key -> definition digest) under the definition they were
    taken with; a changed correlation starts empty rather than from windows of another definition."""
    return lambda key, group: (
        key in current and snapshot.definitions.get(key) == current[key] and owned(key, group)
    )


def encode_snapshot(snapshot: PartitionSnapshot) -> bytes:
    body = msgspec.msgpack.encode(
        [
            FORMAT,
            snapshot.partition,
            snapshot.applied,
            snapshot.after,
            snapshot.taken,
            snapshot.windows,
            snapshot.definitions,
        ]
    )
    return hashlib.blake2b(body, digest_size=_DIGEST_BYTES).digest() + body


def decode_snapshot(data: bytes, partition: int) -> PartitionSnapshot:
    """The snapshot of `partition` in `data`; ValueError saying why it cannot be used."""
    digest, body = data[:_DIGEST_BYTES], data[_DIGEST_BYTES:]
    if hashlib.blake2b(body, digest_size=_DIGEST_BYTES).digest() != digest:
        raise ValueError("checksum mismatch (damaged or not written by rsigma)")
    try:
        fields = msgspec.msgpack.decode(body)
        fmt = fields[0]
    except (msgspec.DecodeError, ValueError, TypeError, IndexError, KeyError) as e:
        raise ValueError(f"unreadable ({e})") from None
    if fmt != FORMAT:
        raise ValueError(f"format {fmt!r}, this rsigma reads {FORMAT}")
    try:
        _, number, applied, after, taken, windows, definitions = fields
    except (ValueError, TypeError) as e:
        raise ValueError(f"unreadable ({e})") from None
    if not isinstance(definitions, dict):
        raise ValueError("unreadable (no definition digests)")
    if number != partition:
        raise ValueError(f"holds partition {number!r}, not {partition}")
    return PartitionSnapshot(
        partition,
        int(applied),
        int(after),
        bytes(windows),
        float(taken),
        {str(k): str(v) for k, v in definitions.items()},
    )


def bucket_name(cluster: str) -> str:
    return f"rsigma-snapshots-{cluster}"


class SnapshotStore:
    """The cluster's snapshot bucket: written by owners, read by members gaining partitions."""

    def __init__(self, js: Any, cluster: str, replicas: int = 1) -> None:
        self.js = js
        self.cluster = cluster
        self.bucket = bucket_name(cluster)
        self.replicas = replicas
        self._store: Any = None
        self._opening = asyncio.Lock()
        self.written = 0
        self.write_failures = 0
        self.loaded = 0
        self.rejected = 0
        #: Per partition, the newest snapshot written or loaded here (its windows dropped): for status.
        self.last: dict[int, PartitionSnapshot] = {}

    def _remember(self, snapshot: PartitionSnapshot) -> None:
        self.last[snapshot.partition] = PartitionSnapshot(
            snapshot.partition, snapshot.applied, snapshot.after, b"", snapshot.taken
        )

    def describe(self, partitions: Iterable[int], now: float) -> dict[str, dict[str, float]]:
        """Per partition (of those given), its newest snapshot known here: the applied floor it
        reflects, the hits-stream sequence its replay starts after, and its age in seconds."""
        return {
            str(p): {"applied": s.applied, "hits_seq": s.after, "age_seconds": round(now - s.taken, 3)}
            for p in sorted(partitions)
            if (s := self.last.get(p)) is not None
        }

    async def _bucket(self) -> Any:
        async with self._opening:  # concurrent reads open it once
            return await self._open()

    async def _open(self) -> Any:
        if self._store is None:
            try:
                self._store = await self.js.object_store(self.bucket)
            except BucketNotFoundError:
                config = ObjectStoreConfig(
                    description=f"rsigma cluster {self.cluster}: partition snapshots",
                    storage=StorageType.FILE,
                    replicas=self.replicas,
                )
                self._store = await self.js.create_object_store(self.bucket, config=config)
        return self._store

    async def write(self, snapshot: PartitionSnapshot) -> None:
        store = await self._bucket()
        await store.put(f"p{snapshot.partition}", encode_snapshot(snapshot))
        self.written += 1
        self._remember(snapshot)

    async def read(self, partition: int) -> PartitionSnapshot | None:
        """The partition's snapshot, or None (none written, or one that cannot be used: warned)."""
        store = await self._bucket()
        try:
            result = await store.get(f"p{partition}")
        except NotFoundError:
            return None
        try:
            snapshot = decode_snapshot(result.data or b"", partition)
        except ValueError as e:
            self.rejected += 1
            log.warning(
                "cluster: partition snapshot ignored; replaying the partition from the start",
                extra={"bucket": self.bucket, "partition": partition, "reason": str(e)},
            )
            return None
        self.loaded += 1
        self._remember(snapshot)
        return snapshot
