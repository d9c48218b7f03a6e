"""A damaged --state-db, two daemons on one file, saves that fail while the daemon runs."""

from __future__ import annotations

import os
import signal
import sqlite3
import time

import pytest

from tests.support.state_db import (
    brute_force,
    damage_pages,
    error_messages,
    first_run,
    saved_rows,
    second_run,
    stored_snapshot,
)

# The database is opened (and locked) before any evaluation backend exists: one run, in process.
BEFORE_BACKEND = pytest.mark.single_backend


def saved_db(daemon, rules_file, ev, tmp_path):
    """A real state database holding two failed logons of user u (the correlation needs three)."""
    db = tmp_path / "rsigma.db"
    first_run(daemon, rules_file, ev, db)
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("SELECT count(*) FROM rsigma_correlation_state").fetchone()[0] == 1
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # every page in the main file, to damage there
    finally:
        conn.close()
    return db


@BEFORE_BACKEND
@pytest.mark.parametrize(
    ("keep_header", "reason"),
    [(True, "Page 2"), (False, "file is not a database")],
    ids=["damaged-page", "not-a-database"],
)
def test_damaged_state_db_exits_3_with_one_line(
    daemon, run_daemon, rules_file, ev, tmp_path, keep_header, reason
):
    db = saved_db(daemon, rules_file, ev, tmp_path)
    damaged = damage_pages(db, keep_header=keep_header)
    done = run_daemon("-r", rules_file, "--state-db", db, stdin=ev.ndjson(ev.failed("u", 2)))
    assert done.returncode == 3, done.stderr
    assert "Traceback" not in done.stderr
    errors = error_messages(done.stderr)
    assert len(errors) == 1, done.stderr  # one line says why
    assert str(db) in errors[0] and reason in errors[0] and "--clear-state" in errors[0]
    assert db.read_bytes() == damaged, "a refused file is left as it was"


@BEFORE_BACKEND
def test_clear_state_moves_a_damaged_db_aside_and_starts_empty(daemon, rules_file, ev, tmp_path):
    db = saved_db(daemon, rules_file, ev, tmp_path)
    damaged = damage_pages(db, keep_header=True)
    d = daemon("-r", rules_file, "--state-db", db, "--clear-state", stdin=ev.ndjson(ev.failed("u", 0)))
    assert d.wait_exit() == 0, d.stderr()
    warning = d.find_log("state database damaged: moved aside, starting with empty correlation state")
    assert warning is not None and warning["level"] == "warning", d.stderr()
    aside = tmp_path / os.path.basename(warning["moved_to"])
    assert aside.name.startswith("rsigma.db.damaged-")
    assert aside.read_bytes() == damaged, "the damaged file is kept, byte for byte"
    assert "Traceback" not in d.stderr()
    # The new database works: one failed logon saved here, two more in the next run make three.
    d2 = daemon("-r", rules_file, "--state-db", db, stdin=ev.ndjson(ev.failed("u", 1), ev.failed("u", 2)))
    assert d2.wait_exit() == 0, d2.stderr()
    assert [r["aggregated_value"] for r in brute_force(d2.results())] == [3]


def test_second_daemon_on_one_state_db_exits_3_naming_the_holder(
    daemon, run_daemon, rules_file, ev, tmp_path
):
    db = tmp_path / "rsigma.db"
    first = daemon("-r", rules_file, "--input", "http", "--state-db", db)
    done = run_daemon("-r", rules_file, "--input", "http", "--state-db", db)
    assert done.returncode == 3, done.stderr
    errors = error_messages(done.stderr)
    assert len(errors) == 1 and "Traceback" not in done.stderr, done.stderr
    assert f"in use by another daemon (pid {first.pid} on host" in errors[0]
    assert str(db) in errors[0]
    # The first one was not disturbed; killed, it leaves no stale lock (flock dies with the process).
    first.post_events(ev.failed("u", 0), ev.failed("u", 1))
    first.wait_processed(2)
    first.signal(signal.SIGKILL)
    first.wait_exit()
    assert len(second_run(daemon, rules_file, ev, db)) == 0  # the kill came before any periodic save
    assert len(second_run(daemon, rules_file, ev, db)) == 0  # and that run saved one logon: 1 + 1 < 3


@BEFORE_BACKEND
def test_failed_saves_are_counted_and_logged_and_the_daemon_goes_on(
    daemon, rules_file, ev, tmp_path, wait_until
):
    """Another process holds the database's write lock: each save fails after SQLite's busy timeout
    (5 s), without stalling events; once the lock is gone, the next save works."""
    db = tmp_path / "rsigma.db"
    d = daemon("-r", rules_file, "--input", "http", "--state-db", db, "--state-save-interval", "0.2")
    wait_until(lambda: db.exists() and saved_rows(db) == 1, "a first periodic save")
    before = stored_snapshot(db)
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        d.post_events(ev.failed("u", 0), ev.failed("u", 1))
        d.wait_processed(2, timeout=3)  # while a save waits on the lock
        wait_until(lambda: d.metric("rsigma_state_save_failures_total") >= 1, "a failed save", timeout=30)
        error = d.find_log("saving correlation state failed")
        assert error is not None and error["level"] == "error", d.stderr()
        assert error["error"] == "database is locked" and error["state_db"] == str(db)
        assert "Traceback" not in d.stderr()
    finally:
        holder.rollback()
        holder.close()
    # The windows of the two events evaluated meanwhile reach the database: saves work again.
    wait_until(lambda: stored_snapshot(db) != before, "a save after the lock is gone", timeout=10)
    failures = d.metric("rsigma_state_save_failures_total")
    time.sleep(1)  # five more periodic saves
    assert d.metric("rsigma_state_save_failures_total") == failures, "saves keep working"
    assert d.terminate() == 0
    assert len(second_run(daemon, rules_file, ev, db)) == 1, "the state saved after the failures is whole"


@BEFORE_BACKEND
def test_a_page_damaged_while_running_fails_saves_not_the_daemon(
    daemon, run_daemon, rules_file, ev, tmp_path, wait_until
):
    """The file is damaged under a running daemon (pages overwritten, then another connection writes,
    so the daemon's page cache is dropped and the next save reads the damaged page from disk)."""
    db = tmp_path / "rsigma.db"
    d = daemon("-r", rules_file, "--input", "http", "--state-db", db, "--state-save-interval", "0.2")
    d.post_events(ev.failed("u", 0))
    d.wait_processed(1)
    wait_until(lambda: db.exists() and saved_rows(db) == 1, "a periodic save")
    other = sqlite3.connect(db, isolation_level=None)
    try:
        other.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        damage_pages(db, keep_header=True)
        other.execute("CREATE TABLE unrelated (x)")
    finally:
        other.close()
    wait_until(lambda: d.metric("rsigma_state_save_failures_total") >= 1, "a failed save", timeout=30)
    error = d.find_log("saving correlation state failed")
    assert error is not None and error["error"] == "database disk image is malformed", d.stderr()
    # Detection goes on.
    d.post_events(ev.failed("u", 1), ev.failed("u", 2))
    d.wait_processed(3)
    assert d.terminate() == 0
    assert [r["aggregated_value"] for r in brute_force(d.results())] == [3]
    assert "Traceback" not in d.stderr()
    # The next start refuses the file until --clear-state moves it aside.
    assert run_daemon("-r", rules_file, "--state-db", db).returncode == 3
    d2 = daemon("-r", rules_file, "--state-db", db, "--clear-state", stdin=b"")
    assert d2.wait_exit() == 0, d2.stderr()
    assert len(list(tmp_path.glob("rsigma.db.damaged-*"))) == 1
