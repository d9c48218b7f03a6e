"""The --state-db tests' shared steps: runs of the brute-force rules against one database, and damage."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

PAGE = 4096


def damage_pages(db: Path, *, keep_header: bool) -> bytes:
    """Overwrite the file with garbage, page 1 (the SQLite header and schema) kept or not; returns the
    damaged bytes, to check they are kept."""
    size = max(db.stat().st_size, 2 * PAGE)
    start = PAGE if keep_header else 0
    with open(db, "r+b") as f:
        f.seek(start)
        f.write(os.urandom(size - start))
    return db.read_bytes()


def brute_force(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in results if r["rule_title"] == "Brute force"]


def saved_rows(db: Path) -> int:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return int(conn.execute("SELECT count(*) FROM rsigma_correlation_state").fetchone()[0])


def stored_snapshot(db: Path) -> bytes:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return bytes(conn.execute("SELECT snapshot FROM rsigma_correlation_state").fetchone()[0])


def first_run(daemon: Callable[..., Any], rules_file: Path, ev: Any, db: Path, *flags: str) -> None:
    """Two failed logons for user u: below the threshold of 3, so no correlation result yet."""
    d = daemon(
        "-r", rules_file, "--state-db", db, *flags, stdin=ev.ndjson(ev.failed("u", 0), ev.failed("u", 1))
    )
    assert d.wait_exit() == 0, d.stderr()
    assert d.results() == []


def second_run(
    daemon: Callable[..., Any], rules_file: Path, ev: Any, db: Path, *flags: str
) -> list[dict[str, Any]]:
    """One more failed logon for u: the correlation fires if the first two were restored."""
    d = daemon("-r", rules_file, "--state-db", db, *flags, stdin=ev.ndjson(ev.failed("u", 2)))
    assert d.wait_exit() == 0, d.stderr()
    return brute_force(d.results())


def error_messages(stderr: str) -> list[str]:
    """The error and critical messages of a daemon's JSON log (info lines, the rule cache's, may
    precede them)."""
    records = [json.loads(line) for line in stderr.splitlines() if line.strip()]
    return [r["message"] for r in records if r["level"] in ("error", "critical")]
