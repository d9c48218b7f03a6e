"""Exact order (rsigma.cluster.ordering): whatever the arrival order, copies and floor reads, the hits
released are those of every source event once, in source order."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from rsigma.cluster.hits import FORMAT, HitMessage, WireHit
from rsigma.cluster.ordering import HitOrdering, PartitionBuffer

PARTITIONS = 4


def message(sequence: int, partition: int, n_hits: int = 1) -> HitMessage:
    hits = [
        WireHit("c", (f"u{sequence}",), None, float(sequence), 0, (0, i), None, None) for i in range(n_hits)
    ]
    return HitMessage(FORMAT, "rsigma-events", sequence, partition, hits)


def released_order(messages: list[HitMessage]) -> list[tuple[int, int, tuple[int, ...]]]:
    """(source sequence, partition, hit order) of every hit released, in release order."""
    return [(m.sequence, m.partition, h.order) for m in messages for h in m.hits]


@st.composite
def arrivals(draw: st.DrawFn) -> tuple[list[HitMessage], list[int | None], int]:
    """Source events (sequences with gaps, one or two partitions each), delivered in any order with
    copies anywhere, and after each delivery maybe a floor read: any floor at or below the highest
    one every event at or below which has arrived (what the ack floor guarantees)."""
    sequences = sorted(draw(st.sets(st.integers(1, 200), min_size=1, max_size=40)))
    originals = []
    for s in sequences:
        for p in draw(st.sets(st.integers(0, PARTITIONS - 1), min_size=1, max_size=2)):
            originals.append(message(s, p, draw(st.integers(1, 3))))
    copies = draw(st.lists(st.sampled_from(originals), max_size=10))
    order = draw(st.permutations(originals + copies))
    floors: list[int | None] = []
    arrived: set[tuple[int, int]] = set()
    for m in order:
        arrived.add((m.sequence, m.partition))
        missing = [o.sequence for o in originals if (o.sequence, o.partition) not in arrived]
        safe = min(missing) - 1 if missing else sequences[-1]
        floors.append(draw(st.one_of(st.none(), st.integers(0, safe))))
    return order, floors, len(copies)


@settings(max_examples=150, deadline=None)
@given(arrivals())
def test_any_interleaving_releases_the_sorted_sequence_once(case):
    order, floors, copies = case
    ordering = HitOrdering(range(PARTITIONS))
    released: list[HitMessage] = []
    for m, floor in zip(order, floors, strict=True):
        ordering.add(m)
        if floor is not None:
            released += ordering.ready(floor)
    released += ordering.ready(max(m.sequence for m in order))
    unique = sorted(
        {(m.sequence, m.partition): m for m in order}.values(), key=lambda m: (m.sequence, m.partition)
    )
    assert released_order(released) == released_order(unique)
    assert ordering.duplicates == copies
    assert ordering.waiting == 0


def test_a_copy_at_or_below_the_applied_floor_is_dropped_and_counted():
    buffer = PartitionBuffer()
    assert buffer.add(message(5, 0))
    assert not buffer.add(message(5, 0))  # the same sequence while it waits
    assert [m.sequence for m in buffer.ready(7)] == [5]
    assert buffer.applied == 7
    assert not buffer.add(message(6, 0))  # below the floor: its original was already there, or never
    assert buffer.add(message(8, 0))
    assert buffer.ready(3) == []  # a lower floor read later does not lower the applied floor
    assert buffer.applied == 7
    assert buffer.duplicates == 2


def test_messages_above_the_floor_wait():
    ordering = HitOrdering([0, 1])
    for s, p in [(9, 0), (3, 1), (4, 0)]:
        ordering.add(message(s, p))
    assert [(m.sequence, m.partition) for m in ordering.ready(4)] == [(3, 1), (4, 0)]
    assert ordering.waiting == 1
    assert [(m.sequence, m.partition) for m in ordering.ready(9)] == [(9, 0)]


def test_unowned_partitions_are_skipped_and_a_gained_one_starts_at_the_floor():
    ordering = HitOrdering([0], applied=10)
    assert not ordering.add(message(11, 1))
    assert ordering.unowned == 1
    assert not ordering.add(message(10, 0))  # at the floor the node started from: applied before
    ordering.own(gained=[1], lost=[0], applied=12)
    assert ordering.add(message(13, 1))
    assert not ordering.add(message(12, 1))
    assert not ordering.add(message(14, 0))  # lost
    assert [m.sequence for m in ordering.ready(20)] == [13]
