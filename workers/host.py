"""What the host allows a matcher pool, checked before any matcher starts.

- How many matchers by default: the CPUs this process may run on (its affinity mask) capped by its
  cgroup's CPU quota (v2 `cpu.max`, v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`), minus one for the
  supervisor. `os.cpu_count()` sees every CPU of the machine, so a container limited to 2 CPUs on a
  64-core node would start 64 matchers that fight over 2 CPUs.
- Whether `/dev/shm` can hold the rings (Docker gives a container 64 MiB unless told otherwise): a
  pool that starts and then dies with SIGBUS on its first large batch is worse than a refusal.
- Whether the CPU keeps the memory ordering the rings rely on (x86-64 TSO, see `workers/ring.py`).

Each refusal is a `ConfigError` (exit code 3) that says what to change.
"""

from __future__ import annotations

import logging
import math
import os
import platform
from pathlib import Path
from typing import Final

from rsigma.errors import ConfigError
from workers.ring import reclaim_orphans

log = logging.getLogger("rsigma.daemon")

CGROUP_ROOT: Final = Path("/sys/fs/cgroup")
#: The CPU architectures whose memory ordering the rings rely on (`platform.machine()` spellings).
TSO_MACHINES: Final = frozenset({"x86_64", "amd64", "AMD64", "x64"})
_MIB = 1 << 20


def _quota(directory: Path) -> float | None:
    """The CPU quota set in one cgroup directory, in CPUs (None: no limit there)."""
    try:
        quota, _, period = (directory / "cpu.max").read_text().strip().partition(" ")
        return None if quota == "max" else int(quota) / int(period or 100_000)
    except (OSError, ValueError):
        pass
    try:
        quota_us = int((directory / "cpu.cfs_quota_us").read_text())
        period_us = int((directory / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota_us / period_us if quota_us > 0 and period_us > 0 else None


def _cgroup_dirs(root: Path, proc_cgroup: str) -> list[Path]:
    """The directories that may hold this process's CPU quota: its cgroup and every parent, in the v2
    hierarchy and in the v1 `cpu` one (a container sees its own cgroup as the root)."""
    dirs: list[Path] = []
    for line in proc_cgroup.splitlines():
        _, controllers, path = line.split(":", 2) if line.count(":") >= 2 else ("", "", "")
        if controllers == "":
            mounts = [root]
        elif "cpu" in controllers.split(","):
            mounts = [root / name for name in ("cpu", "cpu,cpuacct", "cpuacct,cpu")]
        else:
            continue
        for mount in mounts:
            here = mount / path.strip("/")
            while True:
                dirs.append(here)
                if here == mount:
                    break
                here = here.parent
    return dirs


def cgroup_cpus(root: Path = CGROUP_ROOT, proc_cgroup: str | None = None) -> float | None:
    """The tightest CPU quota on this process's cgroups, in CPUs (None: no quota)."""
    if proc_cgroup is None:
        try:
            proc_cgroup = Path("/proc/self/cgroup").read_text()
        except OSError:
            return None
    quotas = [q for d in _cgroup_dirs(root, proc_cgroup) if (q := _quota(d)) is not None]
    return min(quotas) if quotas else None


def usable_cpus() -> int:
    """CPUs this process may use: its affinity mask, capped by its cgroup quota (rounded up)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cpus = os.cpu_count() or 1
    quota = cgroup_cpus()
    if quota is not None:
        cpus = min(cpus, max(1, math.ceil(quota)))
    return cpus


def default_workers() -> int:
    """Matchers for `serve` without `--workers`: one per usable CPU but the supervisor's, at least 1."""
    return max(1, usable_cpus() - 1)


def prepare(workers: int, ring_bytes: int) -> None:
    """Before a pool starts: refuse a CPU it cannot run on, remove the rings left in /dev/shm by
    pools that are gone (they count against its room), then refuse a /dev/shm too small."""
    check_architecture(workers)
    if reclaimed := reclaim_orphans():
        log.warning(
            "removed shared-memory rings left by matcher pools that are gone",
            extra={"rings": len(reclaimed), "examples": reclaimed[:4]},
        )
    check_shm(workers, ring_bytes)


def check_architecture(workers: int, machine: str | None = None) -> None:
    """Refuse a pool on a CPU whose memory ordering is weaker than the rings assume."""
    machine = machine if machine is not None else platform.machine()
    if machine not in TSO_MACHINES:
        raise ConfigError(
            f"--workers {workers}: the matcher pool's shared-memory rings rely on the memory ordering of"
            f" x86-64 CPUs, and this CPU is {machine or 'unknown'}; run with --workers 0 (events are then"
            " evaluated in the daemon's process)"
        )


def check_shm(workers: int, ring_bytes: int, directory: Path = Path("/dev/shm")) -> None:
    """Refuse a pool whose rings would not fit in `/dev/shm` (two rings per matcher)."""
    need = workers * 2 * (ring_bytes + 4096)  # each ring's header takes a page of its own
    try:
        stat = os.statvfs(directory)
    except OSError as e:
        raise ConfigError(
            f"--workers {workers}: {directory} is not usable ({e.strerror or e}); the matcher pool keeps"
            f" its shared-memory rings there"
        ) from e
    free = stat.f_bavail * stat.f_frsize
    if free < need:
        raise ConfigError(
            f"--workers {workers}: {directory} has {free // _MIB} MiB free and the matchers' shared-memory"
            f" rings need {need // _MIB} MiB ({2 * ring_bytes // _MIB} MiB per matcher); give the container"
            f" more (Docker: shm_size in compose, --shm-size for docker run; Kubernetes: an emptyDir with"
            f" medium: Memory mounted on /dev/shm) or run fewer --workers"
        )
