"""The delivered floors in the cluster's KV bucket (`delivered.<partition>`, no TTL): read by a member
that gains a partition, written by its owner as the sinks confirm results (`delivery.py`).

Writes are coalesced: one writer task writes every floor confirmed since its last pass, one KV
update per changed partition, so there is never more than one write per partition in flight. A
write is a compare-and-set that keeps the higher floor: an old owner finishing its last round after
a move never lowers the floor the new owner raised. A write that fails (KV unreachable) is kept and
tried again at the next pass: the daemon goes on, and a move meanwhile re-sends the results
delivered since the last floor written.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any, Final

from nats.errors import Error as NatsError
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError

from rsigma.cluster.delivery import DeliveryRounds
from rsigma.cluster.records import bucket_name, decode_delivered, delivered_key, encode_delivered

__all__ = ["FloorStore"]

log = logging.getLogger("rsigma.cluster")

#: Between two passes of the writer after a failed write.
RETRY_S: Final = 1.0


class FloorStore:
    """Reads and writes the delivered floors of cluster `cluster`'s partitions."""

    def __init__(self, js: Any, cluster: str, member: str, rounds: DeliveryRounds) -> None:
        self.js = js
        self.bucket = bucket_name(cluster)
        self.member = member
        self.rounds = rounds
        self.written: dict[int, int] = {}  # partition -> floor in the bucket, as last read or written
        self.writes = 0
        self.write_failures = 0
        self._revisions: dict[int, int] = {}
        self._kv: Any = None
        self._wake = asyncio.Event()
        self._failing = False  # logged once per outage

    def wake(self) -> None:
        """New floors were confirmed: the writer's next pass writes them."""
        self._wake.set()

    async def read(self, partitions: Iterable[int]) -> dict[int, int]:
        """The partitions' delivered floors (0 for one never written); NatsError or TimeoutError if
        the bucket cannot be read (the caller retries: guessing 0 would re-send every result)."""
        wanted = sorted(set(partitions))
        floors = await asyncio.gather(*(self._read(p) for p in wanted))
        return dict(zip(wanted, floors, strict=True))

    async def run(self) -> None:
        """Write confirmed floors as they come, until cancelled."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not await self.flush():
                await asyncio.sleep(RETRY_S)
                self._wake.set()

    async def flush(self) -> bool:
        """Write every floor confirmed and not yet written; False if some could not be (kept)."""
        floors = self.rounds.take_unwritten()
        if not floors:
            return True
        try:
            outcomes = await asyncio.gather(
                *(self._write(p, f) for p, f in floors.items()), return_exceptions=True
            )
        except asyncio.CancelledError:  # at shutdown: the last flush writes them
            self.rounds.not_written(floors)
            raise
        failed: dict[int, int] = {}
        error: BaseException | None = None
        for (p, floor), outcome in zip(floors.items(), outcomes, strict=True):
            if isinstance(outcome, BaseException):
                if not isinstance(outcome, NatsError | TimeoutError):
                    raise outcome
                failed[p] = floor
                error = outcome
        if not failed:
            if self._failing:
                self._failing = False
                log.info("cluster: delivered floors written again", extra={"partitions": sorted(floors)})
            return True
        self.write_failures += 1
        self.rounds.not_written(failed)
        if not self._failing:
            self._failing = True
            log.warning(
                "cluster: delivered floors not written; kept and retried (a partition moving meanwhile"
                " re-sends the results delivered since its last floor written)",
                extra={"partitions": sorted(failed), "error": repr(error)},
            )
        return False

    async def _bucket(self) -> Any:
        if self._kv is None:
            self._kv = await self.js.key_value(self.bucket)
        return self._kv

    async def _read(self, partition: int) -> int:
        kv = await self._bucket()
        try:
            entry = await kv.get(delivered_key(partition))
        except KeyNotFoundError:
            self._revisions[partition] = 0
            self.written[partition] = 0
            return 0
        self._revisions[partition] = entry.revision
        try:
            floor = decode_delivered(entry.value or b"")
        except ValueError as e:
            log.error(
                "cluster: delivered floor unreadable; the partition's results are sent again",
                extra={"bucket": self.bucket, "key": delivered_key(partition), "error": str(e)},
            )
            floor = 0
        self.written[partition] = floor
        return floor

    async def _write(self, partition: int, floor: int) -> None:
        """Compare-and-set, keeping the higher of ours and the bucket's."""
        kv = await self._bucket()
        key = delivered_key(partition)
        while True:
            if partition not in self._revisions:
                current = await self._read(partition)
                if current >= floor:
                    return
            try:
                self._revisions[partition] = await kv.update(
                    key, encode_delivered(floor, self.member), last=self._revisions[partition]
                )
            except KeyWrongLastSequenceError:
                del self._revisions[partition]  # another member wrote it: read it again
                continue
            self.written[partition] = floor
            self.writes += 1
            return
