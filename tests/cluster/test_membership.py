"""Cluster membership (rsigma.cluster.membership) on a real nats-server: members in one process, each
on its own connection as separate daemons would be."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import nats
import pytest

from rsigma.cluster.membership import Membership
from rsigma.cluster.records import MemberRecord, MembershipError
from rsigma.cluster.rendezvous import owners
from tests.support import NatsServer

P = 64
HEARTBEAT_S = 0.25  # a member key lives 1 s (the shortest TTL NATS has)
TTL_S = 1
# Ownership moves within 2 TTLs of a member's death; the slack is for a loaded test machine.
SLACK_S = 1.5


async def eventually(predicate: Callable[[], Any], what: str, timeout: float = 20.0) -> float:
    """Poll until `predicate()` is true; return the seconds it took."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)
    return time.monotonic() - start


class Node:
    """One member with its own NATS connection, recording its ownership changes."""

    def __init__(self, membership: Membership, nc: Any) -> None:
        self.membership = membership
        self.nc = nc
        self.changes: list[tuple[frozenset[int], frozenset[int]]] = []
        membership.on_change(self.record)

    async def record(self, gained: frozenset[int], lost: frozenset[int]) -> None:
        self.changes.append((gained, lost))

    def owned(self) -> frozenset[int]:
        return self.membership.owned()

    def reported(self) -> frozenset[int]:
        """What the on_change callbacks have said so far (the first gives the initial share)."""
        total: frozenset[int] = frozenset()
        for gained, lost in self.changes:
            total = (total | gained) - lost
        return total

    async def kill(self) -> None:
        """A crash: heartbeats stop and the connection goes, the key is left to expire."""
        for task in self.membership._tasks.values():
            task.cancel()
        await self.nc.close()

    async def stop(self) -> None:
        await self.membership.stop()
        await self.nc.close()


async def join(url: str, member_id: str, partitions: int = P, heartbeat_s: float = HEARTBEAT_S) -> Node:
    nc = await nats.connect(url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    membership = Membership(nc.jetstream(), "c1", partitions, member_id=member_id, heartbeat_s=heartbeat_s)
    try:
        await membership.start()
    except BaseException:
        await nc.close()
        raise
    return Node(membership, nc)


def settled(nodes: list[Node]) -> bool:
    """Every node sees exactly these members, owns what rendezvous hashing gives it and was told."""
    ids = sorted(n.membership.member_id for n in nodes)
    expected = owners(ids, P)
    return all(
        list(n.membership.members) == ids
        and n.owned() == {p for p, owner in expected.items() if owner == n.membership.member_id}
        and n.reported() == n.owned()
        for n in nodes
    )


def assert_partitioned(nodes: list[Node]) -> None:
    shares = [n.owned() for n in nodes]
    assert sum(len(s) for s in shares) == P and frozenset().union(*shares) == frozenset(range(P))


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(scenario())


async def start_three(url: str, heartbeat_s: float = HEARTBEAT_S) -> list[Node]:
    nodes = [await join(url, f"node-{i}", heartbeat_s=heartbeat_s) for i in range(3)]
    await eventually(lambda: settled(nodes), "three members to agree")
    return nodes


async def stop_all(nodes: list[Node]) -> None:
    for node in nodes:
        if not node.nc.is_closed:
            await node.stop()


def test_three_members_own_disjoint_shares_of_every_partition(nats_server: NatsServer):
    async def scenario() -> None:
        nodes = await start_three(nats_server.url)
        try:
            assert_partitioned(nodes)
            assert all(0 < len(n.owned()) < P for n in nodes)
        finally:
            await stop_all(nodes)

    run(scenario)


def test_a_stopped_member_hands_its_partitions_to_the_others_at_once(nats_server: NatsServer):
    async def scenario() -> None:
        # Heartbeats of 1 s: the leaver's key would live 3 s, 2 s at least after its last write.
        nodes = await start_three(nats_server.url, heartbeat_s=1.0)
        leaving, staying = nodes[0], nodes[1:]
        theirs = leaving.owned()
        before = {n.membership.member_id: n.owned() for n in staying}
        try:
            marks = [len(n.changes) for n in staying]
            await leaving.stop()
            took = await eventually(lambda: settled(staying), "the others to take over")
            assert took < 1.0, f"a stop should not wait for the TTL ({took:.2f} s)"
            assert_partitioned(staying)
            for n, mark in zip(staying, marks, strict=True):  # each only gained the leaver's partitions
                gained = n.owned() - before[n.membership.member_id]
                assert before[n.membership.member_id] <= n.owned() and gained <= theirs
                assert n.changes[mark:] == [(gained, frozenset())] and n.membership.rebalances >= 1
        finally:
            await stop_all(staying)

    run(scenario)


def test_a_joining_member_takes_about_a_quarter_only_from_the_others(nats_server: NatsServer):
    async def scenario() -> None:
        nodes = await start_three(nats_server.url)
        before = {n.membership.member_id: n.owned() for n in nodes}
        marks = [len(n.changes) for n in nodes]
        newcomer = await join(nats_server.url, "node-new")
        everyone = [*nodes, newcomer]
        try:
            await eventually(lambda: settled(everyone), "four members to agree")
            assert_partitioned(everyone)
            taken = newcomer.owned()
            assert P / 8 <= len(taken) <= P / 2
            lost = frozenset().union(*(before[n.membership.member_id] - n.owned() for n in nodes))
            assert lost == taken
            for n, mark in zip(nodes, marks, strict=True):  # nobody gained, each lost only to the newcomer
                assert n.owned() <= before[n.membership.member_id]
                assert all(not gained for gained, _ in n.changes[mark:])
        finally:
            await stop_all(everyone)

    run(scenario)


def test_a_killed_member_loses_its_partitions_after_the_ttl(nats_server: NatsServer):
    async def scenario() -> None:
        nodes = await start_three(nats_server.url)
        victim, survivors = nodes[2], nodes[:2]
        try:
            await victim.kill()
            took = await eventually(lambda: settled(survivors), "the survivors to take over")
            # The key was written at most a heartbeat before the kill, so it lives at least TTL - 1 beat.
            assert TTL_S - HEARTBEAT_S - 0.1 <= took <= 2 * TTL_S + SLACK_S, took
            assert_partitioned(survivors)
        finally:
            await stop_all(survivors)

    run(scenario)


def test_another_partition_count_is_refused_naming_both(nats_server: NatsServer):
    async def scenario() -> None:
        first = await join(nats_server.url, "node-a", partitions=64)
        try:
            with pytest.raises(MembershipError) as e:
                await join(nats_server.url, "node-b", partitions=32)
            message = str(e.value)
            assert "--cluster-partitions 32" in message and "created with 64 partitions" in message
            assert first.membership.members == ("node-a",)
        finally:
            await first.stop()

    run(scenario)


def test_a_second_live_daemon_with_the_same_id_is_refused(nats_server: NatsServer):
    async def scenario() -> None:
        first = await join(nats_server.url, "twin")
        nc = await nats.connect(nats_server.url)
        twin = Membership(nc.jetstream(), "c1", P, member_id="twin", heartbeat_s=HEARTBEAT_S)
        try:
            started = time.monotonic()
            with pytest.raises(MembershipError, match="another live daemon uses this id") as e:
                await twin.start()
            assert f"pid {first.membership.record.pid}" in str(e.value)
            assert time.monotonic() - started < TTL_S + SLACK_S
            await twin.stop()  # as a daemon does on its way out: must not remove the first one's key
            await asyncio.sleep(4 * HEARTBEAT_S)  # the first one goes on, untouched
            assert first.membership.failure is not None and not first.membership.failure.done()
            assert first.membership.members == ("twin",) and first.membership.rebalances == 0
            assert first.owned() == frozenset(range(P))
        finally:
            await nc.close()
            await first.stop()

    run(scenario)


def test_a_restart_with_the_id_of_a_killed_member_waits_its_key_out(nats_server: NatsServer):
    async def scenario() -> None:
        crashed = await join(nats_server.url, "same")
        await crashed.kill()
        started = time.monotonic()
        again = await join(nats_server.url, "same")
        try:
            assert time.monotonic() - started <= TTL_S + SLACK_S
            assert again.membership.members == ("same",) and again.owned() == frozenset(range(P))
        finally:
            await again.stop()

    run(scenario)


def test_a_nats_outage_keeps_the_last_ownership_then_recovers(nats_server: NatsServer):
    async def scenario() -> None:
        nodes = [await join(nats_server.url, f"node-{i}") for i in range(2)]
        await eventually(lambda: settled(nodes), "two members to agree")
        before = [n.owned() for n in nodes]
        try:
            await asyncio.to_thread(nats_server.stop)
            await eventually(lambda: all(n.membership.outage_since for n in nodes), "the outage noticed")
            await asyncio.sleep(2 * TTL_S)  # past the TTL: nothing expires on our side meanwhile
            assert [n.owned() for n in nodes] == before
            await asyncio.to_thread(nats_server.start)
            await eventually(
                lambda: all(n.membership.outage_since is None for n in nodes) and settled(nodes),
                "the members to recover",
            )
            assert [n.owned() for n in nodes] == before
        finally:
            await stop_all(nodes)

    run(scenario)


def test_a_member_whose_key_another_daemon_overwrites_reports_the_failure(nats_server: NatsServer):
    async def scenario() -> None:
        node = await join(nats_server.url, "taken")
        try:
            other = MemberRecord("taken", "elsewhere", 1, 1.0, HEARTBEAT_S)
            await node.nc.jetstream().publish("$KV.rsigma-cluster-c1.members.taken", other.encode())
            failure = node.membership.failure
            assert failure is not None
            with pytest.raises(
                MembershipError, match=r"another live daemon uses this id .*pid 1 on elsewhere"
            ):
                await asyncio.wait_for(failure, 10 * HEARTBEAT_S)
        finally:
            await node.stop()

    run(scenario)


def test_a_bucket_not_made_by_rsigma_is_refused(nats_server: NatsServer):
    async def scenario() -> None:
        nc = await nats.connect(nats_server.url)
        try:
            await nc.jetstream().add_stream(
                name="KV_rsigma-cluster-c1", subjects=["$KV.rsigma-cluster-c1.>"], max_msgs_per_subject=1
            )
            with pytest.raises(
                MembershipError, match="'rsigma-cluster-c1' exists but was not made by rsigma"
            ):
                await Membership(nc.jetstream(), "c1", P, member_id="a").start()
        finally:
            await nc.close()

    run(scenario)
