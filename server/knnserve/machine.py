"""Facts about the host: CPU model and flags (/proc/cpuinfo), usable cores (affinity and the cgroup CPU quota)."""

from __future__ import annotations

import math
import os
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")
# cgroup v2's CPU limit ("QUOTA PERIOD" or "max PERIOD"); v1 splits it over two files.
CGROUP_V2_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")
CGROUP_V1_QUOTA = Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us")
CGROUP_V1_PERIOD = Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us")


def cpuinfo_field(name: str, cpuinfo: Path = CPUINFO) -> str | None:
    """The value of the first ``name`` line of /proc/cpuinfo (the first CPU), or None where there is none."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == name:
            return value.strip()
    return None


def cpu_model(cpuinfo: Path = CPUINFO) -> str:
    """The CPU's model name, e.g. 'Intel(R) Xeon(R) Processor'."""
    return cpuinfo_field("model name", cpuinfo) or "unknown CPU"


def cpu_flags(cpuinfo: Path = CPUINFO) -> frozenset[str]:
    """The instruction-set flags of the first CPU (empty where /proc/cpuinfo is missing)."""
    return frozenset((cpuinfo_field("flags", cpuinfo) or "").split())


def cgroup_cpu_limit(cpu_max: Path = CGROUP_V2_CPU_MAX, v1_quota: Path = CGROUP_V1_QUOTA,
                     v1_period: Path = CGROUP_V1_PERIOD) -> float | None:
    """The CPU limit of this process's cgroup in cores (docker --cpus, a Kubernetes limit), or None where unlimited.

    A container's affinity mask still lists every core of the host, so without this a 2-CPU container on a
    64-core node would start 64 FAISS threads and be throttled.
    """
    try:
        quota_text, _, period_text = cpu_max.read_text().strip().partition(" ")
    except OSError:
        try:
            quota_text, period_text = v1_quota.read_text().strip(), v1_period.read_text().strip()
        except OSError:
            return None
    try:
        quota, period = int(quota_text), int(period_text)
    except ValueError:  # "max": no limit
        return None
    return quota / period if quota > 0 and period > 0 else None


def usable_cores() -> int:
    """Cores this process may use: its affinity mask, capped by the cgroup CPU limit (rounded up)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    limit = cgroup_cpu_limit()
    return max(1, min(cores, math.ceil(limit))) if limit is not None else cores
