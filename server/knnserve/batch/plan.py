"""The job's plan: its input files with their row counts, cut into numbered shards of consecutive rows.

The plan is a pure function of the files (and the shard size), so a resumed job cuts exactly the
same shards; its sha256 is part of the job's identity.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field

from knnserve.errors import DatasetError


@dataclass(frozen=True)
class InputFile:
    """One input file: how rows name it, where it is, how it is read, and what it held when planned."""

    source: str  # as row ids name it: the path as given, or joined under the folder given
    path: str  # absolute, what readers open (on every node, for Ray)
    kind: str  # npy | npz | idx | parquet | image
    rows: int
    size: int
    mtime_ns: int
    member: str = ""  # .npz array or Parquet column


@dataclass(frozen=True)
class Segment:
    """Rows [start, stop) of input file number ``file``."""

    file: int
    start: int
    stop: int

    @property
    def rows(self) -> int:
        """Rows in the segment."""
        return self.stop - self.start


@dataclass(frozen=True)
class Shard:
    """Shard ``number``: consecutive rows of the input (possibly across files), written as one part file."""

    number: int
    segments: tuple[Segment, ...]
    rows: int


@dataclass(frozen=True)
class Plan:
    """The input files, in order, and the shard size; shards are cut from them on demand."""

    files: tuple[InputFile, ...]
    shard_rows: int
    shards_total: int = field(init=False)
    rows: int = field(init=False)

    def __post_init__(self) -> None:
        if not self.files:
            raise DatasetError("input: no files to classify")
        rows = sum(f.rows for f in self.files)
        object.__setattr__(self, "rows", rows)
        object.__setattr__(self, "shards_total", -(-rows // self.shard_rows) if rows else 0)

    def shards(self, wanted: set[int] | None = None) -> Iterator[Shard]:
        """Shards in order (only the numbers in ``wanted`` when given): every ``shard_rows`` rows start a new one."""
        number, segments, filled = 0, [], 0
        for file_number, file in enumerate(self.files):
            start = 0
            while start < file.rows:
                take = min(file.rows - start, self.shard_rows - filled)
                segments.append(Segment(file_number, start, start + take))
                filled += take
                start += take
                if filled == self.shard_rows:
                    if wanted is None or number in wanted:
                        yield Shard(number, tuple(segments), filled)
                    number, segments, filled = number + 1, [], 0
        if filled and (wanted is None or number in wanted):
            yield Shard(number, tuple(segments), filled)

    def fingerprint(self) -> str:
        """sha256 of what identifies the input: each file's source, kind, member, rows, size and mtime, and the shard size."""
        facts = [[f.source, f.kind, f.member, f.rows, f.size, f.mtime_ns] for f in self.files]
        payload = json.dumps({"files": facts, "shard_rows": self.shard_rows}, separators=(",", ":"))
        return hashlib.sha256(payload.encode()).hexdigest()

    def to_dict(self) -> dict[str, object]:
        """The plan as JSON-able data (stored beside the job manifest)."""
        return {"shard_rows": self.shard_rows, "rows": self.rows, "files": [asdict(f) for f in self.files]}

    def difference(self, stored: dict[str, object]) -> str:
        """How this plan differs from a stored one, in words ("" when it does not)."""
        before = [InputFile(**f) for f in stored.get("files", [])]  # type: ignore[union-attr]
        if len(before) != len(self.files):
            return f"{len(self.files)} input files now, {len(before)} when the job started"
        for old, new in zip(before, self.files):
            if old != new and old.source == new.source:
                changed = [name for name in ("kind", "member", "rows", "size", "mtime_ns") if getattr(old, name) != getattr(new, name)]
                return f"input file {new.source} changed since the job started ({', '.join(changed)})"
            if old.source != new.source:
                return f"input file {new.source} was not among the inputs when the job started (expected {old.source})"
        if stored.get("shard_rows") != self.shard_rows:
            return f"--shard-rows {self.shard_rows}, {stored.get('shard_rows')} when the job started"
        return ""


__all__ = ["InputFile", "Plan", "Segment", "Shard"]
