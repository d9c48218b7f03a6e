"""Partition snapshots (rsigma/cluster/snapshots.py): a member gaining a partition loads its windows
from the snapshot and replays only the hits after it, with results equal to one plain daemon's; a
snapshot that cannot be used is ignored (warned) and the partition replayed from the start."""

from __future__ import annotations

import asyncio
import time

import nats
import pytest

from rsigma.cluster.snapshots import PartitionSnapshot, decode_snapshot, encode_snapshot, restorable
from tests.support import wait_until
from tests.support.cluster import (
    RULES,
    all_acked,
    correlation_kinds,
    event,
    member,
    one_daemon_results,
    output_stream,
    random_stream,
    split,
    wait_output,
)
from tests.support.nats_client import publish, stored

SNAPSHOTS = ("--cluster-snapshot-interval", "0.3")


def test_a_snapshot_round_trips_and_a_damaged_or_foreign_one_is_refused():
    snapshot = PartitionSnapshot(7, applied=120, after=340, windows=b"\x01\x02", taken=1.5)
    data = encode_snapshot(snapshot)
    assert decode_snapshot(data, 7) == snapshot
    with pytest.raises(ValueError, match="checksum"):
        decode_snapshot(data[:-1] + bytes([data[-1] ^ 1]), 7)
    with pytest.raises(ValueError, match="holds partition 7, not 8"):
        decode_snapshot(data, 8)


def test_only_windows_of_correlations_loaded_under_the_same_definition_are_restorable():
    snapshot = PartitionSnapshot(0, 1, 1, b"", 0.0, {"same": "d1", "changed": "d1", "gone": "d1"})
    keep = restorable(snapshot, {"same": "d1", "changed": "d2", "new": "d1"}, lambda key, group: True)
    assert [key for key in ("same", "changed", "gone", "new") if keep(key, [])] == ["same"]
    assert not restorable(snapshot, {"same": "d1"}, lambda key, group: False)("same", [])


def member_alone(daemons, server, events: list[bytes], *flags: str):
    """Member a, alone in the cluster, once `events` are published and acknowledged."""
    a = member(daemons, server, "--cluster-member-id", "a", *flags)
    wait_until(lambda: split([a]), "a owns every partition")
    publish(server.url, "events", events)
    all_acked(server.url, len(events))
    return a


def snapshotted(d, events: int) -> bool:
    """Every partition applied up to `events`, its snapshot written, and nothing left to write."""
    state = d.status()["cluster"]
    if min(state["partition_applied"].values()) < events or state["snapshots"]["waiting_for_delivery"]:
        return False
    written = state["snapshots"]["written"]
    time.sleep(1.0)  # more than an interval: a capture after the last applied round was written
    after = d.status()["cluster"]["snapshots"]
    return written > 0 and after["written"] == written and not after["waiting_for_delivery"]


def damage_every_snapshot(url: str) -> int:
    async def go() -> int:
        nc = await nats.connect(url)
        try:
            store = await nc.jetstream().object_store("rsigma-snapshots-c1")
            names = [info.name for info in await store.list()]
            for name in names:
                await store.put(name, b"not a snapshot")
            return len(names)
        finally:
            await nc.close()

    return asyncio.run(go())


@pytest.mark.parametrize("damaged", [False, True], ids=["snapshot", "damaged-snapshot"])
def test_a_joining_member_rebuilds_its_partitions_from_their_snapshots(daemons, server, damaged):
    started = time.monotonic()
    stream = random_stream(53, 400)
    a = member_alone(daemons, server, stream[:200], *SNAPSHOTS)
    wait_until(lambda: snapshotted(a, 200), "a wrote the snapshots of its partitions")
    if damaged:
        assert damage_every_snapshot(server.url) > 0
    b = member(daemons, server, "--cluster-member-id", "b", *SNAPSHOTS)  # takes about half
    wait_until(lambda: split([a, b]), "a and b split the partitions")
    state = b.status()["cluster"]
    if damaged:
        assert state["snapshots"]["rejected"] > 0 and state["hits_replayed"] > 0
        assert b.find_log("cluster: partition snapshot ignored; replaying the partition from the start")
    else:
        assert state["snapshots"]["loaded"] > 0 and state["snapshots"]["rejected"] == 0
        assert state["hits_replayed"] == 0  # everything it gained was in the snapshots
    publish(server.url, "events", stream[200:])  # windows span the join: brute force over 10 minutes
    all_acked(server.url, 400)
    expected = one_daemon_results(daemons, server, 400)
    assert correlation_kinds(expected)["event_count"] > 5
    wait_output(server.url, expected, started)


#: The brute-force correlation with another timespan: the same key, another definition.
CHANGED_RULES = RULES.replace("    timespan: 10m\n", "    timespan: 11m\n")


@pytest.mark.parametrize("changed", [False, True], ids=["same-rules", "changed-correlation"])
def test_a_changed_correlation_does_not_get_the_snapshots_windows(daemons, server, tmp_path, changed):
    """Two failed logons are in the snapshot's brute-force window; the member taking over adds a
    third: with the same rules the window holds three and fires, with the correlation changed its
    window starts empty (one logon, nothing fires) rather than from another definition's windows."""
    assert CHANGED_RULES != RULES
    a = member_alone(daemons, server, [event(4625, "mallory", 0.0), event(4625, "mallory", 1.0)], *SNAPSHOTS)
    wait_until(lambda: snapshotted(a, 2), "a wrote the snapshot of mallory's partition")
    assert a.terminate() == 0
    if changed:
        (tmp_path / "rules.yml").write_text(CHANGED_RULES)
    b = member(daemons, server, "--cluster-member-id", "b", *SNAPSHOTS)
    wait_until(lambda: split([b]), "b owns every partition")
    state = b.status()["cluster"]
    assert state["snapshots"]["loaded"] > 0 and state["hits_replayed"] == 0
    age = [p["age_seconds"] for p in state["snapshots"]["partitions"].values()]
    assert age and all(0 <= seconds < 120 for seconds in age)
    publish(server.url, "events", [event(4625, "mallory", 2.0)])
    all_acked(server.url, 3)
    fired = lambda: correlation_kinds(output_stream(server.url))["event_count"]  # noqa: E731
    if changed:
        wait_until(lambda: min(b.status()["cluster"]["partition_applied"].values()) >= 3, "b applied it")
        time.sleep(1.0)  # a result would be out by now
        assert fired() == 0
    else:
        wait_until(lambda: fired() == 1, "the brute force over the snapshot's window fired")


def test_a_partition_moved_back_replays_only_the_hits_after_its_snapshot(daemons, server):
    """a snapshots every partition after 300 events; x (no snapshots) takes half of them and applies
    60 more events' hits, then dies. a gets them back from its old snapshots plus the hits stored
    after them: it replays at most the hits of those 60 events, far fewer than a full replay would
    (x's partitions' share of all 360), and the results equal one daemon's."""
    started = time.monotonic()
    stream = random_stream(71, 360)
    a = member_alone(daemons, server, stream[:300], *SNAPSHOTS)
    wait_until(lambda: snapshotted(a, 300), "a wrote the snapshots of its partitions")
    x = member(daemons, server, "--cluster-member-id", "x", "--cluster-snapshot-interval", "0")
    wait_until(lambda: split([a, x]), "a and x split the partitions")
    before = len(stored(server.url, "rsigma-hits-c1"))
    publish(server.url, "events", stream[300:])
    all_acked(server.url, 360)
    later = len(stored(server.url, "rsigma-hits-c1")) - before
    replayed = a.status()["cluster"]["hits_replayed"]
    x.kill()
    wait_until(lambda: split([a]), "a owns every partition again", timeout=60)
    replayed = a.status()["cluster"]["hits_replayed"] - replayed
    assert 0 < replayed <= later < before / 3
    expected = one_daemon_results(daemons, server, 360)
    assert correlation_kinds(expected)["event_count"] > 5
    wait_output(server.url, expected, started)


def test_a_member_stopping_cleanly_leaves_snapshots_for_its_successor(daemons, server):
    """No interval passes (an hour): the snapshots b loads are the ones a wrote as it stopped, after
    its last results were delivered, so b replays nothing and the output is one plain daemon's."""
    started = time.monotonic()
    hourly = ("--cluster-snapshot-interval", "3600")
    stream = random_stream(61, 300)
    a = member_alone(daemons, server, stream[:150], *hourly)
    wait_until(lambda: min(a.status()["cluster"]["partition_applied"].values()) >= 150, "a applied them")
    assert a.status()["cluster"]["snapshots"]["written"] == 0, "no interval has passed"
    assert a.terminate() == 0
    at_stop = a.find_log("cluster: partition snapshots written at shutdown")
    assert at_stop is not None and at_stop["written"] > 0 and at_stop["not_written"] == 0
    b = member(daemons, server, "--cluster-member-id", "b", *hourly)
    wait_until(lambda: split([b]), "b owns every partition")
    state = b.status()["cluster"]
    assert state["snapshots"]["loaded"] == at_stop["written"] and state["hits_replayed"] == 0
    publish(server.url, "events", stream[150:])
    all_acked(server.url, 300)
    expected = one_daemon_results(daemons, server, 300)
    assert correlation_kinds(expected)["event_count"] > 3
    wait_output(server.url, expected, started)
