"""Online-learning settings (light: no numpy or faiss, so ``knnserve serve --workers`` can carry them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from knnserve.errors import InvalidInputError

DEFAULT_MAX_ROWS_PER_ADD = 1024
DEFAULT_MAX_LOG_BYTES = 1 << 30


@dataclass(frozen=True)
class OnlineLimits:
    """What one write may carry, and how large the log may grow before writes ask for a snapshot."""

    max_rows_per_add: int = DEFAULT_MAX_ROWS_PER_ADD
    max_log_bytes: int = DEFAULT_MAX_LOG_BYTES

    def __post_init__(self) -> None:
        for name in ("max_rows_per_add", "max_log_bytes"):
            if getattr(self, name) < 1:
                raise InvalidInputError(name, "an integer >= 1", getattr(self, name))


@dataclass(frozen=True)
class OnlineConfig:
    """Where the write-ahead logs live (``DIR/NAME/VERSION-FINGERPRINT.wal``), the limits, and whether to fsync."""

    log_dir: Path
    limits: OnlineLimits = field(default_factory=OnlineLimits)
    sync: bool = True

    def log_path(self, name: str, version: int, fingerprint: str) -> Path:
        """The log of one bundle version (the fingerprint ties it to the bundle's exact files)."""
        return self.log_dir / name / f"{version}-{fingerprint[:16]}.wal"


__all__ = ["DEFAULT_MAX_LOG_BYTES", "DEFAULT_MAX_ROWS_PER_ADD", "OnlineConfig", "OnlineLimits"]
