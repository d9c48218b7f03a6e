"""Correlation state in SQLite, and the decision whether to restore it at startup.

One row holds the latest correlation snapshot (see `correlation/snapshot.py`) and the source
position it reflects. The database runs in WAL mode, so a save never blocks a reader.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path

from rsigma.correlation.snapshot import SnapshotError, decode_snapshot
from rsigma.errors import ConfigError

log = logging.getLogger("rsigma.daemon")

SCHEMA = """
CREATE TABLE IF NOT EXISTS rsigma_correlation_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    snapshot BLOB NOT NULL,
    updated_at INTEGER NOT NULL,
    source_sequence INTEGER,
    source_timestamp_ns INTEGER
)
"""


UPSERT = (
    "INSERT INTO rsigma_correlation_state"
    " (id, snapshot, updated_at, source_sequence, source_timestamp_ns) VALUES (1, ?, ?, ?, ?)"
    " ON CONFLICT(id) DO UPDATE SET snapshot = excluded.snapshot, updated_at = excluded.updated_at,"
    " source_sequence = excluded.source_sequence, source_timestamp_ns = excluded.source_timestamp_ns"
)


class RestoreMode(Enum):
    AUTO = "auto"
    KEEP = "keep"  # --keep-state
    CLEAR = "clear"  # --clear-state


@dataclass(frozen=True, slots=True)
class Replay:
    """Where a replaying source starts (NATS replay flags); all unset means "resume"."""

    from_latest: bool = False
    from_sequence: int | None = None
    from_time_ns: int | None = None  # unix nanoseconds, the resolution of JetStream timestamps

    @property
    def requested(self) -> bool:
        return self.from_latest or self.from_sequence is not None or self.from_time_ns is not None

    def describe(self) -> str:
        if self.from_latest:
            return "the latest message"
        if self.from_sequence is not None:
            return f"stream sequence {self.from_sequence}"
        if self.from_time_ns is not None:
            return f"time {format_ns(self.from_time_ns)}"
        return "the consumer's ack floor"


@dataclass(frozen=True, slots=True)
class Position:
    """The source position a snapshot reflects: every message at or below it is fully done."""

    sequence: int | None
    timestamp_ns: int | None


def decide_state_restore(mode: RestoreMode, replay: Replay, stored: Position | None) -> bool:
    """Restore the saved correlation state? Pure, so every case of the decision table is testable.

    Forced modes win. Otherwise resuming restores; replaying restores only when the replay starts
    after the stored position (state from events that will be read again would count them twice).
    """
    if mode is RestoreMode.CLEAR:
        return False
    if mode is RestoreMode.KEEP:
        return True
    if replay.from_latest:
        return False
    if replay.from_sequence is not None:
        return stored is not None and stored.sequence is not None and replay.from_sequence > stored.sequence
    if replay.from_time_ns is not None:
        return (
            stored is not None
            and stored.timestamp_ns is not None
            and replay.from_time_ns > stored.timestamp_ns
        )
    return True


class StateStore:
    def __init__(self, path: Path) -> None:
        if not path.parent.is_dir():
            raise ConfigError(f"--state-db {path}: directory {path.parent} does not exist")
        try:
            self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute(SCHEMA)
        except sqlite3.Error as e:
            raise ConfigError(f"--state-db {path}: cannot open the database: {e}") from e
        self.path = path

    def load(self) -> tuple[bytes, Position] | None:
        row = self.db.execute(
            "SELECT snapshot, source_sequence, source_timestamp_ns FROM rsigma_correlation_state WHERE id = 1"
        ).fetchone()
        if row is None:
            return None
        return bytes(row[0]), Position(row[1], row[2])

    def save(self, snapshot: bytes, position: Position | None = None) -> None:
        position = position or Position(None, None)
        self.db.execute(
            UPSERT,
            (snapshot, int(time.time()), position.sequence, position.timestamp_ns),
        )

    def close(self) -> None:
        self.db.close()


def restorable_snapshot(store: StateStore, mode: RestoreMode, replay: Replay) -> bytes | None:
    """The saved snapshot, if the restore decision says to use it (checked whole first: a damaged
    one is logged and ignored)."""
    saved = store.load()
    if saved is None:
        log.info("no saved correlation state")
        return None
    snapshot, position = saved
    if not decide_state_restore(mode, replay, position):
        log.info("saved correlation state not restored", extra={"mode": mode.value})
        return None
    try:
        decode_snapshot(snapshot)
    except SnapshotError as e:
        log.warning("saved correlation state ignored", extra={"error": str(e)})
        return None
    return snapshot


def format_ns(timestamp_ns: int) -> str:
    """RFC 3339 in UTC, to the microsecond."""
    moment = datetime.fromtimestamp(timestamp_ns / 1e9, UTC)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")
