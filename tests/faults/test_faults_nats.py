"""The nats-server restarts mid-stream (same port, same store): the daemon resumes by itself. The
nats-server is not up yet when the daemon starts: the daemon waits for it and loses nothing."""

from __future__ import annotations

import pytest

from tests.support.faults import nats_down_at_boot, nats_restart


@pytest.mark.parametrize(
    ("workers", "down_s"),
    [(0, 0.0), (2, 2.0)],
    ids=["single-process-quick-restart", "serve-workers-2-down-2s"],
)
def test_the_daemon_resumes_after_the_server_returns(tmp_path, assert_passed, workers, down_s):
    result = nats_restart(tmp_path, events=20_000, workers=workers, down_s=down_s, seed=13)
    assert result.lost == 0
    assert result.duplicated == 0
    # Acks and detections resumed after the server's return (how soon: benchmarks/faults.py, which
    # holds it to 5 s, the publish timeout a publish in flight must not wait out).
    assert result.recovery_s is not None
    assert_passed(result)


@pytest.mark.parametrize("workers", [0, 2], ids=["single-process", "serve-workers-2"])
def test_the_daemon_waits_for_a_server_down_at_boot(tmp_path, assert_passed, workers):
    result = nats_down_at_boot(tmp_path, events=5_000, workers=workers)
    assert result.lost == 0
    assert result.duplicated == 0
    assert_passed(result)
