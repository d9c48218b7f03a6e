"""Delivered floors count a round only once it and every earlier round are delivered whole."""

from __future__ import annotations

from rsigma.cluster.delivery import DeliveryRounds


def test_a_round_counts_only_once_every_earlier_round_is_delivered():
    woken = []
    rounds = DeliveryRounds(lambda: woken.append(1))
    first = rounds.open({1: 10, 2: 10}, results=2)
    second = rounds.open({1: 20}, results=1)
    second.delivered()
    assert rounds.confirmed == {} and rounds.in_flight == 2  # the first round is still on its way
    first.delivered()
    assert rounds.confirmed == {}
    first.delivered()
    assert rounds.confirmed == {1: 20, 2: 10} and rounds.take_unwritten() == {1: 20, 2: 10}
    assert rounds.in_flight == 0 and woken == [1]


def test_a_round_without_results_counts_at_once_and_failed_writes_are_kept_at_their_highest():
    rounds = DeliveryRounds()
    rounds.open({3: 5}, results=0)
    assert rounds.take_unwritten() == {3: 5}
    rounds.not_written({3: 5})
    rounds.open({3: 8}, results=0)
    rounds.not_written({3: 5})
    assert rounds.take_unwritten() == {3: 8}


def test_a_floor_read_from_the_bucket_is_only_raised():
    rounds = DeliveryRounds()
    rounds.known(4, 50)
    rounds.open({4: 40}, results=0)
    assert rounds.confirmed == {4: 50} and rounds.take_unwritten() == {}
