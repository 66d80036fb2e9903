"""The output folder: part files committed one shard at a time (write, rename, then record), resumed or refused.

A shard is committed when the manifest lists it; its part file (and errors piece) are written to a
temporary sibling and renamed into place before that. A run killed at any point leaves only
committed shards and files no manifest lists: the next run deletes the latter and redoes those
shards, so no row is lost and none is written twice.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import threading
from pathlib import Path
from typing import Any

from knnserve.atomic import atomic_file, atomic_write_text
from knnserve.batch.manifest import MANIFEST, PLAN, JobConflictError, JobManifest, ShardRecord, identity_changes
from knnserve.batch.plan import Plan
from knnserve.batch.results import ResultBatch
from knnserve.batch.schema import ERROR_COLUMNS, OutputMeta, csv_rows, error_rows, output_columns, to_arrow

log = logging.getLogger(__name__)

FORMATS = ("parquet", "csv")
ERRORS_FILE = "_errors.csv"
ERRORS_DIR = "_errors"


def part_name(number: int, total: int, fmt: str) -> str:
    """The part file of shard ``number`` (zero-padded so names sort in shard order)."""
    return f"part-{number:0{max(5, len(str(max(total - 1, 0))))}d}.{fmt}"


def encode_part(result: ResultBatch, meta: OutputMeta, fmt: str) -> bytes:
    """A shard's good rows as the bytes of its part file."""
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        sink = pa.BufferOutputStream()
        pq.write_table(to_arrow(result, meta), sink)
        return sink.getvalue().to_pybytes()
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(output_columns(meta))
    writer.writerows(csv_rows(result, meta))
    return text.getvalue().encode()


def encode_errors(rows: list[list[object]], *, header: bool) -> bytes:
    """Errors-file lines (row id, source, index, reason), with the header line or not."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    if header:
        writer.writerow(ERROR_COLUMNS)
    writer.writerows(rows)
    return text.getvalue().encode()


class JobOutput:
    """An output folder holding one job: opened fresh, resumed after a kill, or refused when it holds another job."""

    def __init__(self, folder: Path, manifest: JobManifest, fmt: str, meta: OutputMeta) -> None:
        self.folder = folder
        self.manifest = manifest
        self.fmt = fmt
        self.meta = meta
        self._lock = threading.Lock()

    @classmethod
    def open(cls, folder: Path, identity: dict[str, Any], plan: Plan, fmt: str, meta: OutputMeta) -> JobOutput:
        """Start or resume the job in ``folder``; JobConflictError when it holds committed results of another job."""
        if folder.exists() and not folder.is_dir():
            raise JobConflictError(f"{folder}: exists and is not a folder; --out names the output folder")
        stored = JobManifest.load(folder) if folder.is_dir() else None
        if stored is None and folder.is_dir() and any(folder.iterdir()):
            raise JobConflictError(f"{folder}: exists and is not a knnserve batch output (no {MANIFEST}); use an empty or new --out")
        if stored is not None and stored.identity != identity:
            if stored.committed:
                changes = identity_changes(stored.identity, identity)
                detail = _plan_difference(folder, plan) if any(c.startswith("input.") for c in changes) else ""
                raise JobConflictError(
                    f"{folder}: holds {len(stored.committed)} committed shard(s) of another job; "
                    f"refusing to mix outputs ({'; '.join(changes)}){'; ' + detail if detail else ''}. "
                    "Run the original command to finish it, or use another --out"
                )
            log.info("%s: replacing a job that committed nothing", folder)
            stored = None
        folder.mkdir(parents=True, exist_ok=True)
        if stored is None:
            stored = JobManifest(identity=identity, rows=plan.rows, shards_total=plan.shards_total)
            atomic_write_text(folder / PLAN, json.dumps(plan.to_dict(), indent=1) + "\n")
            stored.save(folder)
        output = cls(folder, stored, fmt, meta)
        output._tidy()
        return output

    def _tidy(self) -> None:
        """Forget committed shards whose part file is gone or changed; delete every file no manifest entry owns."""
        for number, record in list(self.manifest.committed.items()):
            part = self.folder / record.part
            if not part.is_file() or part.stat().st_size != record.part_bytes:
                log.warning("%s: missing or changed since it was committed; shard %d will be redone", part, number)
                del self.manifest.committed[number]
        owned = {record.part for record in self.manifest.committed.values()}
        owned |= {record.errors_piece for record in self.manifest.committed.values() if record.errors_piece}
        if self.manifest.status == "complete":
            owned.add(ERRORS_FILE)
        for path in [*self.folder.iterdir(), *(self.folder / ERRORS_DIR).glob("*")]:
            relative = path.relative_to(self.folder).as_posix()
            if path.is_file() and relative not in owned and relative not in (MANIFEST, PLAN):
                path.unlink()  # a part, piece or temporary file of an uncommitted shard: redone below

    @property
    def pending(self) -> set[int]:
        """Numbers of the shards still to do."""
        return set(range(self.manifest.shards_total)) - set(self.manifest.committed)

    @property
    def complete(self) -> bool:
        """True when a previous run finished the job."""
        return self.manifest.status == "complete"

    def commit(self, result: ResultBatch) -> ShardRecord:
        """Write a whole shard's part file and errors piece (each atomically), then record it in the manifest."""
        number = result.shard
        name = part_name(number, self.manifest.shards_total, self.fmt)
        payload = encode_part(result, self.meta, self.fmt)
        bad = error_rows(result)
        piece = f"{ERRORS_DIR}/{name.rsplit('.', 1)[0]}.csv" if bad else ""
        if bad:
            with atomic_file(self.folder / piece, "wb") as handle:
                handle.write(encode_errors(bad, header=False))
        with atomic_file(self.folder / name, "wb") as handle:
            handle.write(payload)
        record = ShardRecord(rows=len(result), errors=len(bad), part=name, part_bytes=len(payload),
                             part_sha256=hashlib.sha256(payload).hexdigest(), errors_piece=piece)
        with self._lock:
            self.manifest.committed[number] = record
            self.manifest.save(self.folder)
        return record

    def finish(self, summary: dict[str, Any]) -> Path:
        """Gather the errors pieces into the errors file (in shard order) and mark the job complete."""
        with atomic_file(self.folder / ERRORS_FILE, "wb") as handle:
            handle.write(encode_errors([], header=True))
            for number in sorted(self.manifest.committed):
                piece = self.manifest.committed[number].errors_piece
                if piece:
                    handle.write((self.folder / piece).read_bytes())
        with self._lock:
            self.manifest.status = "complete"
            self.manifest.summary = summary
            self.manifest.save(self.folder)
        return self.folder / ERRORS_FILE


def _plan_difference(folder: Path, plan: Plan) -> str:
    try:
        return plan.difference(json.loads((folder / PLAN).read_text()))
    except (OSError, ValueError, TypeError):
        return ""


__all__ = ["ERRORS_DIR", "ERRORS_FILE", "FORMATS", "JobConflictError", "JobOutput", "encode_part", "part_name"]
