"""Facts about the host, read from /proc/cpuinfo: CPU model and flags, usable cores (for reports and BLAS)."""

from __future__ import annotations

import os
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")


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


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask), falling back to the machine's count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
