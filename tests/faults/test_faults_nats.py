"""The nats-server restarts mid-stream (same port, same store): the daemon resumes by itself."""

from __future__ import annotations

import pytest
from harness import nats_restart


@pytest.mark.parametrize(
    ("workers", "down_s"),
    [(0, 0.0), (2, 2.0)],
    ids=["single-process-quick-restart", "serve-workers-2-down-2s"],
)
def test_the_daemon_resumes_within_5_s_of_the_server_return(tmp_path, assert_passed, workers, down_s):
    result = nats_restart(tmp_path, events=20_000, workers=workers, down_s=down_s, seed=13)
    assert result.lost == 0
    assert result.duplicated == 0
    # A publish in flight when the connection dropped must not hold the output for the 5 s publish
    # timeout once the server is back.
    assert result.recovery_s is not None and result.recovery_s < 5
    assert_passed(result)
