"""Live members of a cluster in a JetStream KV bucket, and the partitions this member owns.

Each member writes its key `members.<id>` every heartbeat with a per-message TTL of about three
heartbeats (`records.ttl_of`), so the server removes the key of a member that stopped writing and
places a marker that every watcher sees. Every member watches `members.>`, keeps the set of live ids
and recomputes the owners by rendezvous hashing whenever that set changes: all members compute the
same owners from the same set, with no leader and no vote. docs/cluster.md has the design and bounds.

A NATS outage changes nothing here: the last ownership stays, heartbeats keep being tried, and the
watch is opened again when the server answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import socket
import time
from collections.abc import Callable
from typing import Any, Final

from nats.errors import Error as NatsError
from nats.js.api import Header
from nats.js.errors import APIError, BadRequestError, BucketNotFoundError, KeyWrongLastSequenceError
from nats.js.errors import NotFoundError as JsNotFoundError
from nats.js.kv import KV_DEL, KV_OP, KV_PURGE, MSG_ROLLUP_SUBJECT

from rsigma.cluster.hits import warn_fewer_replicas
from rsigma.cluster.ownership import OwnershipCallback
from rsigma.cluster.records import (
    CONFIG_KEY,
    MEMBERS_PREFIX,
    ClusterConfig,
    MemberRecord,
    MembershipError,
    bucket_name,
    check_cluster_name,
    check_member_id,
    decode_config,
    decode_member,
    member_key,
    ttl_of,
)
from rsigma.cluster.rendezvous import owned_by

__all__ = ["Membership", "default_member_id"]

log = logging.getLogger("rsigma.daemon")

#: How long the server keeps the marker it places when a member key expires (watchers see it at once;
#: this only bounds how long the tombstone lingers in the bucket).
MARKER_TTL_S: Final = 10.0
#: The server's error codes for "the subject's last sequence is not the one expected".
WRONG_LAST_SEQUENCE: Final = (10071, 10164)
#: The header nats-server 2.11+ puts on the marker of a message it removed (TTL, max age).
MARKER_REASON: Final = "Nats-Marker-Reason"
#: How long a start may wait for the bucket's answers before it fails (exit 3).
START_TIMEOUT_S: Final = 10.0


def default_member_id() -> str:
    """`<hostname>-<pid>`, with any character a KV key cannot hold replaced by '-'."""
    host = re.sub(r"[^A-Za-z0-9_=-]+", "-", socket.gethostname().split(".")[0]).strip("-") or "host"
    return f"{host}-{os.getpid()}"


class Membership:
    """This daemon's membership of cluster `cluster` (implements `Ownership`).

    `start()` joins (exit-3 `MembershipError` on a partition count other than the cluster's, or a
    member id another live daemon holds), `stop()` leaves at once so the others take over without
    waiting for the TTL. `failure` completes with an exception if membership cannot go on (another
    daemon took this id, an `on_change` callback failed): the daemon should stop then.
    """

    def __init__(
        self,
        js: Any,
        cluster: str,
        partitions: int,
        *,
        member_id: str | None = None,
        heartbeat_s: float = 1.0,
        api: str | None = None,
        replicas: int = 1,
    ) -> None:
        if partitions < 1:
            raise MembershipError(f"--cluster-partitions {partitions}: expected at least 1")
        self.cluster = check_cluster_name(cluster)
        self.partitions = partitions
        self.member_id = check_member_id(member_id or default_member_id())
        self.heartbeat_s = heartbeat_s
        self.replicas = replicas  # of the bucket, when this member creates it
        self.ttl_s = ttl_of(heartbeat_s)
        self.record = MemberRecord(
            self.member_id, socket.gethostname(), os.getpid(), time.time(), heartbeat_s, api
        )
        self.bucket = bucket_name(cluster)
        self.rebalances = 0  # owner recomputations after the first, each for a change of the live members
        self.outage_since: float | None = None  # Unix time the bucket stopped answering, None while it does
        self._js = js
        self._kv: Any = None
        self._subject = f"$KV.{self.bucket}.{member_key(self.member_id)}"
        self._stream = f"KV_{self.bucket}"
        self._revision = 0  # the stream sequence of our last write of our key
        self._live: dict[str, MemberRecord | None] = {}
        self._members: tuple[str, ...] | None = None
        self._owned: frozenset[int] = frozenset()
        self._callbacks: list[OwnershipCallback] = []
        self._hooks: list[Callable[[], None]] = []
        self._changes: asyncio.Queue[tuple[frozenset[int], frozenset[int]]] = asyncio.Queue()
        self._watcher: Any = None
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.failure: asyncio.Future[None] | None = None

    # ---- Ownership -------------------------------------------------------------------------------

    def owned(self) -> frozenset[int]:
        return self._owned

    def on_change(self, callback: OwnershipCallback) -> None:
        """callback(gained, lost) after each rebalance that changes this member's partitions, in order
        (one at a time, each awaited); `owned()` already gives the new set when it runs."""
        self._callbacks.append(callback)

    def on_rebalance(self, hook: Callable[[], None]) -> None:
        """hook() after every owner computation, the first included (for metrics)."""
        self._hooks.append(hook)

    @property
    def members(self) -> tuple[str, ...]:
        """The live member ids, sorted."""
        return self._members or ()

    def records(self) -> dict[str, MemberRecord | None]:
        """What each live member says about itself (None for a value that is not a member record)."""
        return dict(self._live)

    # ---- start and stop --------------------------------------------------------------------------

    async def start(self) -> None:
        """Join: bind the bucket, check the config, claim our key, read the members, start heartbeats.

        On failure nothing is left behind: a key this member wrote is removed again.
        """
        self.failure = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(START_TIMEOUT_S + self.ttl_s + self.heartbeat_s):
                self._kv = await self._bind()
                await self._check_config()
                await self._claim(wait_for_expiry=True)
                await self._open_watch()
        except BaseException as e:
            await self.stop()
            if isinstance(e, TimeoutError):
                raise MembershipError(
                    f"--cluster {self.cluster}: the KV bucket {self.bucket!r} did not answer"
                ) from e
            if isinstance(e, NatsError):
                raise MembershipError(
                    f"--cluster {self.cluster}: joining through the KV bucket {self.bucket!r} failed"
                    f" ({e!r}); clusters need nats-server 2.11 or later"
                ) from e
            raise
        self._tasks["heartbeat"] = asyncio.create_task(self._heartbeat())
        self._tasks["dispatch"] = asyncio.create_task(self._dispatch())
        log.info(
            "joined cluster",
            extra={
                "cluster": self.cluster,
                "member": self.member_id,
                "members": len(self.members),
                "owned_partitions": len(self._owned),
                "ttl_s": self.ttl_s,
            },
        )

    async def stop(self) -> None:
        """Leave: stop heartbeats and remove our key, so the others take our partitions at once.

        The key is removed only if our write is still its last one: never another daemon's.
        """
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        self._tasks.clear()
        await self._close_watch()
        revision, self._revision = self._revision, 0
        if not revision:
            return
        try:
            await self._js.publish(
                self._subject,
                timeout=max(self.heartbeat_s, 1.0),
                headers={
                    KV_OP: KV_PURGE,
                    Header.ROLLUP: MSG_ROLLUP_SUBJECT,
                    Header.EXPECTED_LAST_SUBJECT_SEQUENCE: str(revision),
                },
                msg_ttl=self.ttl_s,
            )
        except (NatsError, TimeoutError) as e:
            log.warning(
                "cluster member key not removed; the others take over when it expires",
                extra={
                    "cluster": self.cluster,
                    "member": self.member_id,
                    "ttl_s": self.ttl_s,
                    "error": repr(e),
                },
            )

    # ---- the bucket ------------------------------------------------------------------------------

    async def _bind(self) -> Any:
        try:
            kv = await self._js.key_value(self.bucket)
        except BucketNotFoundError:
            try:
                kv = await self._js.create_key_value(
                    bucket=self.bucket,
                    history=1,
                    limit_marker_ttl=MARKER_TTL_S,
                    replicas=self.replicas,
                    description=f"rsigma cluster {self.cluster}: config and live members",
                )
            except BadRequestError:  # another member created it meanwhile
                kv = await self._js.key_value(self.bucket)
        info = await self._js.stream_info(self._stream)
        if not info.config.allow_msg_ttl or not info.config.subject_delete_marker_ttl:
            raise MembershipError(
                f"--cluster {self.cluster}: the KV bucket {self.bucket!r} exists but was not made by rsigma"
                " (it needs per-message TTLs and delete markers); delete it to let rsigma create it"
            )
        has = info.config.num_replicas or 1
        fix = f"nats stream edit {self._stream}"
        warn_fewer_replicas(f"KV bucket {self.bucket!r}", has, self.replicas, fix)
        return kv

    async def _check_config(self) -> None:
        """The first member writes the partition count; every later one must give the same."""
        wanted = ClusterConfig(self.partitions)
        try:
            await self._kv.create(CONFIG_KEY, wanted.encode())
            return
        except KeyWrongLastSequenceError:
            pass
        entry = await self._kv.get(CONFIG_KEY)
        config = decode_config(entry.value or b"", f"--cluster {self.cluster}: KV bucket {self.bucket!r}")
        if config.partitions != self.partitions:
            raise MembershipError(
                f"--cluster-partitions {self.partitions}: cluster {self.cluster!r} was created with"
                f" {config.partitions} partitions (KV bucket {self.bucket!r}, key {CONFIG_KEY!r}); the"
                f" count is fixed when a cluster is created: give --cluster-partitions {config.partitions}"
                " or delete the bucket to start the cluster anew"
            )

    async def _read_own(self) -> tuple[int, bool, MemberRecord | None]:
        """(last sequence of our key's subject, whether a live value is there, that value)."""
        try:
            msg = await self._js.get_msg(self._stream, subject=self._subject)
        except JsNotFoundError:
            return 0, False, None
        headers = msg.headers or {}
        if headers.get(KV_OP) in (KV_DEL, KV_PURGE) or MARKER_REASON in headers:
            return msg.seq, False, None
        return msg.seq, True, decode_member(msg.data or b"")

    async def _claim(self, *, wait_for_expiry: bool) -> None:
        """Write our key over whatever is there, unless another live daemon holds it.

        At start, a key left by an earlier run with this id (killed, so it never removed it) is
        waited out: it expires within its TTL unless something keeps writing it, which proves a live
        duplicate. During heartbeats, any other writer is a duplicate at once.
        """
        loop = asyncio.get_running_loop()
        seen: int | None = None
        deadline = 0.0
        while True:
            last, alive, holder = await self._read_own()
            if alive and (holder is None or not holder.same_instance(self.record)):
                if (
                    not wait_for_expiry
                    or (seen is not None and last != seen)
                    or (seen is not None and loop.time() > deadline)
                ):
                    raise self._duplicate(holder)
                if seen is None:
                    seen = last
                    holder_ttl = ttl_of(holder.heartbeat_s) if holder is not None else self.ttl_s
                    deadline = loop.time() + holder_ttl + 1.0
                await asyncio.sleep(min(0.1, self.heartbeat_s / 4))
                continue
            try:
                self._revision = await self._write(expected=last)
                return
            except APIError as e:
                if e.err_code not in WRONG_LAST_SEQUENCE:
                    raise
                # Someone wrote the key between our read and our write: look again.

    def _duplicate(self, holder: MemberRecord | None) -> MembershipError:
        other = holder.describe() if holder is not None else "a value that is not a member record"
        return MembershipError(
            f"--cluster-member-id {self.member_id}: another live daemon uses this id in cluster"
            f" {self.cluster!r} ({other}; this one is {self.record.describe()}); give each daemon its own id"
        )

    async def _write(self, expected: int) -> int:
        ack = await self._js.publish(
            self._subject,
            self.record.encode(),
            timeout=max(self.heartbeat_s, 1.0),
            headers={Header.EXPECTED_LAST_SUBJECT_SEQUENCE: str(expected)},
            msg_ttl=self.ttl_s,
        )
        return int(ack.seq)

    # ---- heartbeats ------------------------------------------------------------------------------

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_s)
            try:
                await self._beat()
            except MembershipError as e:
                log.error("cluster membership lost", extra={"cluster": self.cluster, "error": str(e)})
                self._revision = 0  # the key is another daemon's now: stop() leaves it alone
                self._fail(e)
                return

    async def _beat(self) -> None:
        try:
            try:
                self._revision = await self._write(expected=self._revision)
            except APIError as e:
                if e.err_code not in WRONG_LAST_SEQUENCE:
                    raise
                # Our key expired (we were stalled or cut off past the TTL) or someone else wrote it.
                await self._claim(wait_for_expiry=False)
            watch = self._tasks.get("watch")
            if self.outage_since is not None or watch is None or watch.done():
                await self._open_watch()  # read the members afresh: the old watch may have missed changes
        except (NatsError, TimeoutError) as e:
            if self.outage_since is None:
                self.outage_since = time.time()
                log.warning(
                    "cluster KV bucket unreachable; keeping the current partitions and retrying",
                    extra={"cluster": self.cluster, "owned_partitions": len(self._owned), "error": repr(e)},
                )
            return
        if self.outage_since is not None:
            log.info(
                "cluster KV bucket reachable again",
                extra={"cluster": self.cluster, "outage_s": round(time.time() - self.outage_since, 3)},
            )
            self.outage_since = None

    # ---- the watch -------------------------------------------------------------------------------

    async def _open_watch(self) -> None:
        """Read every live member key, recompute, then follow changes until the watch is replaced."""
        await self._close_watch()
        watcher = await self._kv.watch(MEMBERS_PREFIX + ">")
        live: dict[str, MemberRecord | None] = {}
        try:
            while (entry := await watcher.updates(timeout=START_TIMEOUT_S)) is not None:
                self._apply(live, entry)
        except BaseException:
            with contextlib.suppress(NatsError, TimeoutError):
                await watcher.stop()
            raise
        self._watcher = watcher
        self._live = live
        self._recompute()
        self._tasks["watch"] = asyncio.create_task(self._follow(watcher))

    async def _close_watch(self) -> None:
        task = self._tasks.pop("watch", None)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            try:
                await watcher.stop()
            except (NatsError, TimeoutError) as e:  # the server forgets the consumer by itself
                log.debug("cluster watch not stopped cleanly", extra={"error": repr(e)})

    async def _follow(self, watcher: Any) -> None:
        async for entry in watcher:
            if entry is not None:
                self._apply(self._live, entry)
                self._recompute()

    def _apply(self, live: dict[str, MemberRecord | None], entry: Any) -> None:
        member = entry.key[len(MEMBERS_PREFIX) :]
        if entry.operation in (KV_DEL, KV_PURGE):
            live.pop(member, None)
            return
        record = decode_member(entry.value or b"")
        if record is None and member not in live:
            log.warning(
                "cluster member key holds no member record; counted as a member all the same",
                extra={"cluster": self.cluster, "member": member},
            )
        live[member] = record

    def _recompute(self) -> None:
        members = tuple(sorted(self._live))
        if members == self._members:
            return
        if self._members is not None:
            self.rebalances += 1
        self._members = members
        owned = owned_by(self.member_id, members, self.partitions)
        gained, lost = owned - self._owned, self._owned - owned
        self._owned = owned
        log.info(
            "cluster owners computed",
            extra={
                "cluster": self.cluster,
                "members": len(members),
                "owned_partitions": len(owned),
                "gained": len(gained),
                "lost": len(lost),
            },
        )
        for hook in self._hooks:
            hook()
        if gained or lost:
            self._changes.put_nowait((gained, lost))

    # ---- callbacks -------------------------------------------------------------------------------

    async def _dispatch(self) -> None:
        while True:
            gained, lost = await self._changes.get()
            for callback in self._callbacks:
                try:
                    await callback(gained, lost)
                except Exception as e:
                    log.exception("cluster ownership callback failed", extra={"cluster": self.cluster})
                    self._fail(e)
                    return

    def _fail(self, e: BaseException) -> None:
        if self.failure is not None and not self.failure.done():
            self.failure.set_exception(e)
