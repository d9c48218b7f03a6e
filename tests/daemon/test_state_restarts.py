"""--state-db: correlation state survives a restart; --keep-state / --clear-state; startup failures."""

from __future__ import annotations

import signal
import sqlite3

import pytest

from tests.support.state_db import first_run, saved_rows, second_run

# Startup failures happen before any evaluation backend exists (the options, the rules, then the
# sinks, NATS and the API all fail before a matcher pool would start): one run, in process.
STARTUP_FAILURE = pytest.mark.single_backend


def test_state_survives_restart(daemon, rules_file, ev, tmp_path):
    db = tmp_path / "state" / "rsigma.db"
    db.parent.mkdir()
    first_run(daemon, rules_file, ev, db, "--state-save-interval", "3600")
    assert db.exists()
    assert saved_rows(db) == 1, "the state is saved at shutdown (EOF)"
    fired = second_run(daemon, rules_file, ev, db)
    assert len(fired) == 1
    assert fired[0]["group_key"] == [["User", "u"]]
    assert fired[0]["aggregated_value"] == 3


def test_without_state_db_nothing_carries_over(daemon, rules_file, ev, tmp_path):
    """The control for the test above: the third event alone does not fire."""
    d1 = daemon("-r", rules_file, stdin=ev.ndjson(ev.failed("u", 0), ev.failed("u", 1)))
    assert d1.wait_exit() == 0
    d2 = daemon("-r", rules_file, stdin=ev.ndjson(ev.failed("u", 2)))
    assert d2.wait_exit() == 0
    assert d2.results() == []


def test_clear_state_skips_restore(daemon, rules_file, ev, tmp_path):
    db = tmp_path / "rsigma.db"
    first_run(daemon, rules_file, ev, db)
    assert second_run(daemon, rules_file, ev, db, "--clear-state") == []


def test_keep_state_restores(daemon, rules_file, ev, tmp_path):
    db = tmp_path / "rsigma.db"
    first_run(daemon, rules_file, ev, db, "--keep-state")
    assert len(second_run(daemon, rules_file, ev, db, "--keep-state")) == 1


def test_state_accumulates_over_three_runs(daemon, rules_file, ev, tmp_path):
    db = tmp_path / "rsigma.db"
    for minute in (0, 1):
        d = daemon("-r", rules_file, "--state-db", db, stdin=ev.ndjson(ev.failed("u", minute)))
        assert d.wait_exit() == 0, d.stderr()
        assert d.results() == []
    assert len(second_run(daemon, rules_file, ev, db)) == 1


def test_state_saved_periodically_survives_kill(daemon, rules_file, ev, tmp_path, wait_until):
    """SIGKILL allows no shutdown save: what run 2 restores comes from the periodic save."""
    db = tmp_path / "rsigma.db"
    d = daemon("-r", rules_file, "--input", "http", "--state-db", db, "--state-save-interval", "0.1")
    d.post_events(ev.failed("u", 0), ev.failed("u", 1))
    d.wait_metric("rsigma_correlation_state_entries", 1)
    wait_until(lambda: db.exists() and saved_rows(db) == 1, "a periodic state save")
    d.signal(signal.SIGKILL)
    d.wait_exit()
    assert len(second_run(daemon, rules_file, ev, db)) == 1


def test_state_db_is_sqlite_in_wal_mode(daemon, rules_file, ev, tmp_path):
    db = tmp_path / "fresh.db"
    assert not db.exists()
    first_run(daemon, rules_file, ev, db)
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@STARTUP_FAILURE
def test_missing_state_db_directory_exits_3(run_daemon, rules_file, tmp_path):
    db = tmp_path / "no-such-dir" / "rsigma.db"
    done = run_daemon("-r", rules_file, "--state-db", db)
    assert done.returncode == 3, done.stderr
    assert str(db.parent) in done.stderr
    assert "daemon started" not in done.stderr
    assert not db.parent.exists()


@STARTUP_FAILURE
@pytest.mark.parametrize("order", [("--keep-state", "--clear-state"), ("--clear-state", "--keep-state")])
def test_keep_and_clear_state_together_exit_2(run_daemon, rules_file, tmp_path, order):
    done = run_daemon("-r", rules_file, "--state-db", tmp_path / "rsigma.db", *order)
    assert done.returncode == 2, done.stderr
    assert "--keep-state" in done.stderr and "--clear-state" in done.stderr
    assert not (tmp_path / "rsigma.db").exists()
