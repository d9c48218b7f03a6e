"""Correlation state in SQLite, and the decision whether to restore it at startup.

One row holds the latest correlation snapshot (see `correlation/snapshot.py`) and the source
position it reflects. The database runs in WAL mode, so a save never blocks a reader.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Final

from rsigma.correlation.snapshot import SnapshotError, decode_snapshot
from rsigma.daemon.state_lock import StateLock
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

SELECT = "SELECT snapshot, source_sequence, source_timestamp_ns FROM rsigma_correlation_state WHERE id = 1"


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


#: SQLite's result codes for a file that is damaged or is not a database at all.
_DAMAGED_CODES: Final = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})


class DamagedDatabase(Exception):
    """The state database fails SQLite's checks (a damaged page, or not a database at all)."""


class StateStore:
    """The state database, locked against a second daemon for as long as it is open.

    A damaged file is refused (exit 3), or with `move_damaged` (`--clear-state`) moved aside as
    `<file>.damaged-<time>` and replaced by an empty one: its state cannot be read anyway, and the
    copy is kept for whoever wants to look at it.
    """

    def __init__(self, path: Path, *, move_damaged: bool = False) -> None:
        if not path.parent.is_dir():
            raise ConfigError(f"--state-db {path}: directory {path.parent} does not exist")
        self.lock = StateLock.acquire(path)
        self.path = path
        self._busy = threading.Lock()  # saves run in a worker thread (see `Daemon.save_state`)
        try:
            self.db = self._open_or_replace(move_damaged)
        except BaseException:
            self.lock.release()
            raise

    def _open_or_replace(self, move_damaged: bool) -> sqlite3.Connection:
        path = self.path
        try:
            return _open(path)
        except DamagedDatabase as e:
            if not move_damaged:
                raise ConfigError(
                    f"--state-db {path}: the database is damaged ({e}); start once with"
                    " --clear-state to move it aside and begin with empty state"
                ) from None
            damage = str(e)
        except sqlite3.Error as e:
            raise ConfigError(f"--state-db {path}: cannot open the database: {e}") from None
        try:
            aside = _move_aside(path)
            db = _open(path)
        except OSError as e:
            raise ConfigError(f"--state-db {path}: cannot move the damaged database aside: {e}") from None
        except (DamagedDatabase, sqlite3.Error) as e:
            raise ConfigError(f"--state-db {path}: cannot create a new database: {e}") from None
        log.warning(
            "state database damaged: moved aside, starting with empty correlation state",
            extra={"state_db": str(path), "moved_to": str(aside), "error": damage},
        )
        return db

    def load(self) -> tuple[bytes, Position] | None:
        """The saved snapshot and its position; a read failure is a `ConfigError` (at startup: exit 3)."""
        try:
            row = self.db.execute(SELECT).fetchone()
        except sqlite3.Error as e:
            raise ConfigError(
                f"--state-db {self.path}: cannot read the saved state ({e}); start once with"
                " --clear-state to begin with empty state"
            ) from None
        if row is None:
            return None
        return bytes(row[0]), Position(row[1], row[2])

    def save(self, snapshot: bytes, position: Position | None = None) -> None:
        """Raises `sqlite3.Error` when the write fails (a damaged page, a full disk): the caller logs it
        and keeps running on the state in memory."""
        position = position or Position(None, None)
        with self._busy:
            self.db.execute(UPSERT, (snapshot, int(time.time()), position.sequence, position.timestamp_ns))

    def close(self) -> None:
        with self._busy:  # after a save still running in its thread
            self.db.close()
        self.lock.release()


def _open(path: Path) -> sqlite3.Connection:
    """Open (or create) the database and check every page of it (`quick_check`: milliseconds for a
    snapshot of tens of MB), so damage shows at startup, not at the first save or restore."""
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(SCHEMA)
        verdict = db.execute("PRAGMA quick_check(1)").fetchone()[0]
    except sqlite3.DatabaseError as e:
        db.close()
        if getattr(e, "sqlite_errorcode", None) in _DAMAGED_CODES:
            raise DamagedDatabase(str(e)) from None
        raise
    except BaseException:
        db.close()
        raise
    if verdict != "ok":
        db.close()
        raise DamagedDatabase(" ".join(verdict.replace("*** in database main ***", "").split()))
    return db


def _move_aside(path: Path) -> Path:
    """Rename the database (and its WAL and shared-memory files, which belong to it) to
    `<file>.damaged-<UTC time>`; nothing is deleted."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    aside = path.with_name(f"{path.name}.damaged-{stamp}")
    for suffix in ("", "-wal", "-shm"):
        part = path.with_name(path.name + suffix)
        if part.exists():
            part.rename(aside.with_name(aside.name + suffix))
    return aside


def restorable_snapshot(store: StateStore, mode: RestoreMode, replay: Replay) -> bytes | None:
    """The saved snapshot, if the restore decision says to use it (checked whole first: a damaged
    one is logged and ignored). With --clear-state nothing is read: a damaged row cannot stop it."""
    if mode is RestoreMode.CLEAR:
        log.info("saved correlation state not restored", extra={"mode": mode.value})
        return None
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
