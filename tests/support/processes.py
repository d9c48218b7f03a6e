"""Processes seen through /proc: trees, liveness, CPU, memory, and the ones carrying a marker.

Every process the daemon helper starts carries an environment variable with a value of its own
(`MARK_VARIABLE`); its children (the pool's matchers, multiprocessing's resource tracker) inherit it,
so teardown finds them all, even those whose parent was killed and that were re-parented.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

MARK_VARIABLE = "RSIGMA_TEST_PROCESS"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str]:
    """/proc/<pid>/stat after the command name (field 3, the state, is index 0)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def pid_alive(pid: int) -> bool:
    """Running (a zombie waiting to be reaped counts as gone)."""
    try:
        return _stat_fields(pid)[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it, by parent pid (re-parented orphans are not found this way)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                children.setdefault(int(_stat_fields(int(entry.name))[1]), []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of one process."""
    fields = _stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of a process and its descendants (those that ended meanwhile are left out)."""
    total = 0.0
    for p in descendants(pid):
        with contextlib.suppress(OSError, IndexError, ValueError):
            total += cpu_seconds(p)
    return total


def memory_kb(pid: int) -> dict[str, int]:
    """VmRSS and its parts from /proc/<pid>/status: RssAnon (private), RssFile, RssShmem (the pool's
    shared-memory rings, which count in both processes that map them)."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile", "RssShmem"):
            found[key] = int(value.split()[0])
    return found


def memory_mb(pids: Iterable[int]) -> dict[str, float]:
    """VmRSS, RssAnon and RssShmem in MB, summed over the processes."""
    total: Counter[str] = Counter()
    for pid in pids:
        total.update(memory_kb(pid))
    return {k: total[k] / 1024 for k in ("VmRSS", "RssAnon", "RssShmem")}


def smaps_kb(pid: int) -> dict[str, int]:
    """Rss, Pss and Uss (Private_Clean + Private_Dirty) from /proc/<pid>/smaps_rollup, in kB. PSS
    splits each shared page among the processes that map it, so the PSS of a pool's processes add up
    to what the pool costs the machine; Pss_Shmem is the part in shared memory (the pool's rings)."""
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, _, value = line.partition(":")
        fields[key] = int(value.split()[0])
    return {
        "Rss": fields["Rss"],
        "Pss": fields["Pss"],
        "Uss": fields["Private_Clean"] + fields["Private_Dirty"],
        "Pss_Shmem": fields.get("Pss_Shmem", 0),
    }


def shm_segments(pids: Iterable[int]) -> set[str]:
    """The worker pool's shared-memory rings mapped by these processes."""
    found: set[str] = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
                if "/dev/shm/rsring_" in line:
                    found.add(line.rsplit("/", 1)[1].split()[0])
    return found


def marked_processes(value: str, variable: str = MARK_VARIABLE) -> list[int]:
    """Live processes whose environment holds `variable=value` (processes of other users are skipped)."""
    needle = f"{variable}={value}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if needle in environ.split(b"\0") and pid_alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def kill_marked(value: str, variable: str = MARK_VARIABLE, timeout: float = 10.0) -> list[int]:
    """SIGKILL every process carrying the marker until none is left; returns any still there at the
    deadline (a process in uninterruptible sleep)."""
    deadline = time.monotonic() + timeout
    while True:
        left = marked_processes(value, variable)
        if not left or time.monotonic() > deadline:
            return left
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.02)
