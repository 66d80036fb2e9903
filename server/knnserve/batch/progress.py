"""The progress bar (rows/s and ETA) and the closing summary of a batch job."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Any

from tqdm.auto import tqdm


def note(message: str) -> None:
    """A line for the person running the job (on stderr, whatever the log level)."""
    print(f"knnserve batch: {message}", file=sys.stderr, flush=True)


class Progress:
    """Rows committed so far out of the job's total, with rate and ETA; rows resumed from a previous run count as done."""

    def __init__(self, total: int, done: int, *, enabled: bool) -> None:
        self.started = time.perf_counter()
        self.resumed = done
        self.rows = 0
        self.errors = 0
        self.first_commit_s: float | None = None
        self._bar = tqdm(total=total, initial=done, unit="row", unit_scale=True, desc="batch", disable=not enabled,
                         dynamic_ncols=True, smoothing=0.1)

    def advance(self, rows: int, errors: int) -> None:
        """A shard of ``rows`` rows (``errors`` of them bad) was committed."""
        if self.first_commit_s is None:
            self.first_commit_s = time.perf_counter() - self.started
        self.rows += rows
        self.errors += errors
        self._bar.update(rows)
        if errors:
            self._bar.set_postfix(errors=self.errors, refresh=False)

    def close(self) -> None:
        """Remove the bar."""
        self._bar.close()


@dataclass(frozen=True)
class Summary:
    """How the job ended: rows (all, and in this run), bad rows, time and rate of this run."""

    rows: int
    errors: int
    run_rows: int
    seconds: float
    shards: int
    engine: str
    out: str
    fmt: str
    extra: dict[str, Any]

    @property
    def rows_per_second(self) -> float:
        """Rows classified per second in this run."""
        return self.run_rows / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        """The closing line printed after the job."""
        resumed = f" ({self.rows - self.run_rows} resumed from an earlier run)" if self.run_rows < self.rows else ""
        return (
            f"{self.rows} rows{resumed}, {self.errors} errors, {self.seconds:.1f} s, {self.rows_per_second:.0f} rows/s "
            f"({self.engine}) -> {self.out} ({self.shards} {self.fmt} part{'' if self.shards == 1 else 's'})"
        )

    def to_dict(self) -> dict[str, Any]:
        """The summary as stored in the job manifest."""
        return {"rows": self.rows, "errors": self.errors, "run_rows": self.run_rows, "seconds": round(self.seconds, 3),
                "rows_per_second": round(self.rows_per_second, 1), "engine": self.engine, **self.extra}


__all__ = ["Progress", "Summary", "note"]
