"""The job manifest (``_job.json``): what the job is (its identity), how far it got (committed shards), and its result."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from knnserve import __version__
from knnserve.atomic import atomic_write_text
from knnserve.errors import KnnServeError

MANIFEST = "_job.json"
PLAN = "_plan.json"
MANIFEST_SCHEMA_VERSION = 1


class JobConflictError(KnnServeError):
    """The output folder holds another job (other input, model or options), or is not a batch output at all."""


class ShardRecord(BaseModel):
    """One committed shard: its rows, how many were bad, and the part file that holds the rest."""

    model_config = ConfigDict(extra="forbid")

    rows: int
    errors: int
    part: str
    part_bytes: int
    part_sha256: str
    errors_piece: str = ""  # the shard's bad rows (a file under _errors/), "" when it had none


class JobManifest(BaseModel):
    """Everything a later run needs to resume the job, or to refuse to mix another job into its output."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = MANIFEST_SCHEMA_VERSION
    knnserve_version: str = __version__
    identity: dict[str, Any]
    rows: int
    shards_total: int
    committed: dict[int, ShardRecord] = Field(default_factory=dict)
    status: Literal["running", "complete"] = "running"
    summary: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))
    updated_at: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))

    def save(self, folder: Path) -> None:
        """Write the manifest atomically (a reader, or a kill, never sees half of it)."""
        self.updated_at = datetime.now(timezone.utc)
        atomic_write_text(folder / MANIFEST, self.model_dump_json(indent=2) + "\n")

    @classmethod
    def load(cls, folder: Path) -> JobManifest | None:
        """The manifest in ``folder``, or None when there is none; JobConflictError when it cannot be read."""
        path = folder / MANIFEST
        if not path.is_file():
            return None
        try:
            raw = json.loads(path.read_text())
            if not isinstance(raw, dict) or raw.get("schema_version") != MANIFEST_SCHEMA_VERSION:
                raise JobConflictError(
                    f"{path}: job manifest schema_version {raw.get('schema_version') if isinstance(raw, dict) else None!r} "
                    f"is not {MANIFEST_SCHEMA_VERSION}; use another --out"
                )
            return cls.model_validate(raw)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, ValidationError) as error:
            raise JobConflictError(f"{path}: unreadable job manifest ({error}); use another --out") from error

    @property
    def committed_rows(self) -> int:
        """Input rows in committed shards."""
        return sum(record.rows for record in self.committed.values())

    @property
    def committed_errors(self) -> int:
        """Bad rows in committed shards."""
        return sum(record.errors for record in self.committed.values())


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def identity_changes(stored: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """What differs between two job identities, one "key: before -> now" per difference."""
    before, now = _flatten(stored), _flatten(wanted)
    return [f"{key}: {before.get(key)!r} -> {now.get(key)!r}" for key in sorted(before.keys() | now.keys()) if before.get(key) != now.get(key)]


__all__ = ["MANIFEST", "PLAN", "JobConflictError", "JobManifest", "ShardRecord", "identity_changes"]
