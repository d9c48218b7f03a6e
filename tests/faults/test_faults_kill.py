"""SIGKILL the daemon, the pool's supervisor, or one matcher, or SIGSTOP one, mid-stream: nothing is
lost."""

from __future__ import annotations

import pytest

from tests.support.faults import hang_matcher, kill_daemon, kill_matcher


@pytest.mark.parametrize("workers", [0, 2], ids=["single-process", "serve-workers-2"])
def test_a_killed_daemon_restarts_and_loses_nothing(tmp_path, assert_passed, workers):
    result = kill_daemon(tmp_path, events=20_000, workers=workers, kills=3, seed=11 + workers)
    assert result.lost == 0
    assert result.duplicated == 0  # the output stream dropped the republished copies by Nats-Msg-Id
    assert result.recovery_s is not None  # each restart produced a new detection
    assert len(result.details["recoveries"]) == 3
    assert_passed(result)


def test_a_killed_matcher_restarts_and_loses_nothing(tmp_path, assert_passed):
    result = kill_matcher(tmp_path, events=20_000, kills=2, seed=12)
    assert result.lost == 0
    assert result.duplicated == 0
    assert result.recovery_s is not None  # the log's restart_seconds: every kill was restarted
    assert all(held > 0 for held in result.details["batches_in_flight"])  # work in flight was re-sent
    assert_passed(result)


def test_a_hung_matcher_is_replaced_and_loses_nothing(tmp_path, assert_passed):
    result = hang_matcher(tmp_path, events=20_000, timeout=2.0, seed=13)
    assert result.lost == 0
    assert result.duplicated == 0
    assert result.recovery_s is not None and result.details["stalled_for"] >= 2
    assert_passed(result)
