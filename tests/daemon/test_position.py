"""The contiguous ack floor that a saved state snapshot claims as its source position."""

from __future__ import annotations

import random

from rsigma.daemon.position import AckFloor
from rsigma.daemon.state import Position


def test_floor_waits_for_the_lowest_open_message():
    floor = AckFloor()
    for seq in (1, 2, 3, 4):
        floor.received(seq, seq * 10)
    floor.finished(2)
    floor.finished(3)
    assert floor.floor is None  # 1 is still open
    floor.finished(1)
    assert floor.floor == Position(3, 30)
    floor.finished(4)
    assert floor.floor == Position(4, 40)
    assert floor.open_count == 0


def test_gaps_in_the_stream_do_not_hold_the_floor_back():
    floor = AckFloor()
    for seq in (5, 9, 20):  # a subject filter or a consumer group skips the others
        floor.received(seq, seq)
        floor.finished(seq)
    assert floor.floor == Position(20, 20)


def test_a_nakked_message_holds_the_floor_until_its_redelivery_finishes():
    floor = AckFloor()
    floor.received(1, 1)
    floor.received(2, 2)
    # 1 is nakked: JetStream redelivers it, and it stays open meanwhile
    floor.finished(2)
    assert floor.floor is None
    floor.received(1, 1)  # the redelivered copy
    floor.finished(1)
    assert floor.floor == Position(2, 2)


def test_a_late_duplicate_never_moves_the_floor_back():
    floor = AckFloor()
    for seq in (1, 2, 3):
        floor.received(seq, seq)
        floor.finished(seq)
    floor.received(2, 2)  # its ack was lost and JetStream redelivered it
    floor.finished(2)
    assert floor.floor == Position(3, 3)


def test_random_completion_order_matches_a_brute_force_floor():
    rng = random.Random(7)
    floor = AckFloor()
    seqs = list(range(1, 2001))
    for seq in seqs:
        floor.received(seq, seq * 3)
    finished: set[int] = set()
    rng.shuffle(seqs)
    for seq in seqs:
        floor.finished(seq)
        finished.add(seq)
        expected = 0
        while expected + 1 in finished:
            expected += 1
        assert (floor.floor.sequence if floor.floor else 0) == expected
