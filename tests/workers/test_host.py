"""What the host allows a pool: the CPUs from the cgroup quota, /dev/shm room, the CPU architecture."""

from __future__ import annotations

from pathlib import Path

import pytest

from rsigma.errors import ConfigError
from workers.host import cgroup_cpus, check_architecture, check_shm


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_cgroup_v2_quota_is_read_from_the_process_cgroup_and_its_parents(tmp_path: Path) -> None:
    write(tmp_path / "cpu.max", "max 100000\n")
    assert cgroup_cpus(tmp_path, "0::/\n") is None
    write(tmp_path / "kubepods" / "cpu.max", "400000 100000\n")
    write(tmp_path / "kubepods" / "pod1" / "cpu.max", "150000 100000\n")
    assert cgroup_cpus(tmp_path, "0::/kubepods/pod1\n") == 1.5
    assert cgroup_cpus(tmp_path, "0::/kubepods\n") == 4.0


def test_cgroup_v1_cfs_quota(tmp_path: Path) -> None:
    proc = "4:memory:/x\n2:cpu,cpuacct:/docker/abc\n"
    write(tmp_path / "cpu,cpuacct" / "cpu.cfs_quota_us", "-1\n")
    write(tmp_path / "cpu,cpuacct" / "cpu.cfs_period_us", "100000\n")
    assert cgroup_cpus(tmp_path, proc) is None
    write(tmp_path / "cpu,cpuacct" / "docker" / "abc" / "cpu.cfs_quota_us", "200000\n")
    write(tmp_path / "cpu,cpuacct" / "docker" / "abc" / "cpu.cfs_period_us", "100000\n")
    assert cgroup_cpus(tmp_path, proc) == 2.0


def test_a_pool_is_refused_on_a_cpu_without_x86_64_ordering() -> None:
    check_architecture(2, "x86_64")
    with pytest.raises(ConfigError) as refused:
        check_architecture(2, "aarch64")
    assert "aarch64" in str(refused.value) and "--workers 0" in str(refused.value)


def test_a_dev_shm_too_small_is_refused_naming_shm_size(tmp_path: Path) -> None:
    check_shm(1, 1 << 20, tmp_path)
    with pytest.raises(ConfigError) as refused:
        check_shm(4, 1 << 50, tmp_path)
    assert "shm_size" in str(refused.value) and "--workers 4" in str(refused.value)
