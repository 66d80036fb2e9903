"""Finding the input files: paths, folders and globs expanded in a stable order, each file's kind recognised."""

from __future__ import annotations

import glob
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from knnserve.batch.readers import KINDS, describe, kind_of
from knnserve.batch.readers.base import ReadOptions
from knnserve.batch.plan import InputFile, Plan
from knnserve.batch.rows import RowSpec
from knnserve.errors import DatasetError

log = logging.getLogger(__name__)
GLOB_CHARACTERS = frozenset("*?[")


def _walk(folder: Path, skip: Path | None) -> list[Path]:
    """Every file under ``folder``, hidden ones and the folder ``skip`` left out, in sorted order (never the file system's)."""
    found: list[Path] = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and (skip is None or (Path(root) / d).resolve() != skip))
        found.extend(Path(root) / name for name in sorted(names) if not name.startswith("."))
    return found


def _inside(path: Path, folder: Path | None) -> bool:
    return folder is not None and folder in path.resolve().parents


def expand(argument: str, skip: Path | None = None) -> list[tuple[str, Path, str]]:
    """(source, path, kind) of the files one ``--input`` names: a file, a folder (recursively) or a glob.

    In folders and globs, files of unknown kinds are skipped (and counted in the log); a file named
    on its own must be of a known kind. Nothing under ``skip`` (the job's output folder) is an input.
    """
    if GLOB_CHARACTERS & set(argument):
        candidates = [Path(p) for p in sorted(glob.glob(argument, recursive=True)) if Path(p).is_file() and not _inside(Path(p), skip)]
        named = [(str(p), p) for p in candidates]
        explicit = False
    elif Path(argument).is_dir():
        folder = Path(argument)
        named = [(str(p), p) for p in _walk(folder, skip)]
        explicit = False
    elif Path(argument).is_file():
        named = [(argument, Path(argument))]
        explicit = True
    else:
        raise DatasetError(f"{argument}: no such file, folder or matching glob")
    files: list[tuple[str, Path, str]] = []
    skipped = 0
    for source, path in named:
        kind = kind_of(path)
        if kind is None:
            if explicit:
                raise DatasetError(
                    f"{source}: unsupported input; expected one of {', '.join(KINDS)} (.npy, .npz, IDX, .parquet, PNG/JPEG images)"
                )
            skipped += 1
            continue
        files.append((source, path, kind))
    if skipped:
        log.info("%s: skipped %d file(s) of unknown kinds", argument, skipped)
    if not files:
        raise DatasetError(f"{argument}: no input files found (.npy, .npz, IDX, .parquet or images)")
    return files


def plan_inputs(arguments: Sequence[str], spec: RowSpec, options: ReadOptions, shard_rows: int,
                out: Path | None = None) -> Plan:
    """The job's plan: every input file (headers read, shapes checked against the model) cut into shards.

    Files under ``out`` are never inputs, so an output folder inside an input folder does not feed
    the job its own results when it resumes.
    """
    files: list[InputFile] = []
    seen: dict[str, str] = {}
    skip = out.resolve() if out is not None else None
    for argument in arguments:
        for source, path, kind in expand(argument, skip):
            absolute = str(path.resolve())
            if absolute in seen:
                raise DatasetError(f"{source}: given twice (also as {seen[absolute]})")
            seen[absolute] = source
            stat = path.stat()
            facts = describe(kind, path, source, options, spec)
            files.append(InputFile(source, absolute, kind, facts.rows, stat.st_size, stat.st_mtime_ns, facts.member))
    return Plan(tuple(files), shard_rows)


__all__ = ["expand", "plan_inputs"]
