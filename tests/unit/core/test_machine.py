"""Usable cores honour the container's CPU limit (cgroup v2 cpu.max, v1 cfs quota), not just the affinity mask."""

from __future__ import annotations

from pathlib import Path

import pytest

from knnserve import machine


def test_cgroup_v2_limit_in_cores(tmp_path: Path) -> None:
    cpu_max = tmp_path / "cpu.max"
    missing = tmp_path / "missing"
    cpu_max.write_text("200000 100000\n")
    assert machine.cgroup_cpu_limit(cpu_max, missing, missing) == 2.0
    cpu_max.write_text("150000 100000\n")
    assert machine.cgroup_cpu_limit(cpu_max, missing, missing) == 1.5
    cpu_max.write_text("max 100000\n")
    assert machine.cgroup_cpu_limit(cpu_max, missing, missing) is None


def test_cgroup_v1_limit_and_no_cgroup(tmp_path: Path) -> None:
    missing, quota, period = tmp_path / "missing", tmp_path / "quota", tmp_path / "period"
    quota.write_text("50000\n")
    period.write_text("100000\n")
    assert machine.cgroup_cpu_limit(missing, quota, period) == 0.5
    quota.write_text("-1\n")
    assert machine.cgroup_cpu_limit(missing, quota, period) is None
    assert machine.cgroup_cpu_limit(missing, missing, missing) is None


@pytest.mark.parametrize(("limit", "expected"), [(None, 8), (2.0, 2), (1.5, 2), (0.25, 1), (64.0, 8)])
def test_usable_cores_is_the_affinity_capped_by_the_limit(monkeypatch: pytest.MonkeyPatch, limit: float | None,
                                                          expected: int) -> None:
    monkeypatch.setattr(machine.os, "sched_getaffinity", lambda pid: set(range(8)))
    monkeypatch.setattr(machine, "cgroup_cpu_limit", lambda: limit)
    assert machine.usable_cores() == expected
