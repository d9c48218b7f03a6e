"""The state-restore decision table (pure function), one case per row."""

from __future__ import annotations

import pytest

from rsigma.daemon.state import Position, Replay, RestoreMode, StateStore, decide_state_restore

STORED = Position(sequence=100, timestamp_ns=1_000_000_000_000)


@pytest.mark.parametrize(
    ("mode", "replay", "stored", "restore"),
    [
        pytest.param(RestoreMode.CLEAR, Replay(), STORED, False, id="clear-always-skips"),
        pytest.param(RestoreMode.KEEP, Replay(from_latest=True), None, True, id="keep-always-restores"),
        pytest.param(
            RestoreMode.KEEP, Replay(from_sequence=50), STORED, True, id="keep-overrides-backward-replay"
        ),
        pytest.param(
            RestoreMode.CLEAR, Replay(from_sequence=500), STORED, False, id="clear-overrides-forward"
        ),
        pytest.param(RestoreMode.AUTO, Replay(), None, True, id="resume-restores-without-position"),
        pytest.param(RestoreMode.AUTO, Replay(), STORED, True, id="resume-restores"),
        pytest.param(RestoreMode.AUTO, Replay(from_latest=True), STORED, False, id="latest-skips"),
        pytest.param(
            RestoreMode.AUTO, Replay(from_sequence=101), STORED, True, id="forward-sequence-restores"
        ),
        pytest.param(RestoreMode.AUTO, Replay(from_sequence=100), STORED, False, id="equal-sequence-skips"),
        pytest.param(RestoreMode.AUTO, Replay(from_sequence=50), STORED, False, id="backward-sequence-skips"),
        pytest.param(
            RestoreMode.AUTO, Replay(from_time_ns=1_000_000_000_001), STORED, True, id="forward-time-restores"
        ),
        pytest.param(
            RestoreMode.AUTO, Replay(from_time_ns=1_000_000_000_000), STORED, False, id="equal-time-skips"
        ),
        pytest.param(
            RestoreMode.AUTO, Replay(from_time_ns=500_000_000_000), STORED, False, id="backward-time-skips"
        ),
        pytest.param(
            RestoreMode.AUTO, Replay(from_sequence=5), None, False, id="no-position-skips-on-replay"
        ),
        pytest.param(
            RestoreMode.AUTO, Replay(from_sequence=5), Position(None, None), False, id="null-position-skips"
        ),
    ],
)
def test_decide_state_restore(mode, replay, stored, restore):
    assert decide_state_restore(mode, replay, stored) is restore


def test_state_store_round_trip(tmp_path):
    store = StateStore(tmp_path / "state.db")
    assert store.load() is None
    store.save(b"snapshot-1", Position(7, 1700000000))
    store.save(b"snapshot-2", Position(9, 1700000100))
    store.close()
    again = StateStore(tmp_path / "state.db")
    assert again.load() == (b"snapshot-2", Position(9, 1700000100))
    journal = again.db.execute("PRAGMA journal_mode").fetchone()[0]
    assert journal == "wal"
