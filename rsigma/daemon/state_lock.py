"""One daemon per state database: an exclusive `flock` on `<state-db>.lock`, held for the daemon's life.

Two daemons saving to one file would overwrite each other's windows. The lock file names its holder
(pid, host, start time) so the refused daemon can say who has it. The kernel drops a `flock` when its
holder's last descriptor closes, a SIGKILL included, so a crash never leaves a stale lock behind; the
file itself stays (removing it would let a third daemon lock a fresh inode while a second still waits
on the old one).
"""

from __future__ import annotations

import fcntl
import os
import socket
from datetime import UTC, datetime
from pathlib import Path

from rsigma.errors import ConfigError


class StateLock:
    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd = fd

    @classmethod
    def acquire(cls, db: Path) -> StateLock:
        """Lock `<db>.lock`, or raise `ConfigError` naming the daemon that holds it."""
        path = db.with_name(db.name + ".lock")
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as e:
            raise ConfigError(f"--state-db {db}: cannot open the lock file {path}: {e.strerror or e}") from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 512, 0).decode("utf-8", "replace").strip() or "a process"
            os.close(fd)
            raise ConfigError(
                f"--state-db {db}: in use by another daemon ({holder}; lock file {path});"
                " each daemon needs its own --state-db"
            ) from None
        except OSError as e:
            os.close(fd)
            raise ConfigError(f"--state-db {db}: cannot lock {path}: {e.strerror or e}") from e
        started = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        holder = f"pid {os.getpid()} on host {socket.gethostname()}, since {started}\n".encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, holder, 0)
        return cls(path, fd)

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # closing the only descriptor drops the flock
            self._fd = -1
