"""Target-recall tuning: the smallest nprobe / efSearch whose recall@k on held-out training rows reaches a target.

Held-out rows are carved from the training set (never the test queries, which the report scores)
and are *not* in the index tuned: it is rebuilt on the remaining rows with the same factory string
(so the same nlist) and build parameters. Querying an index with its own stored vectors and
dropping the self-match would be optimistic: an HNSW node's graph links are already its nearest
neighbours, and an IVF vector sits in the list probed first.

The search assumes recall grows with the parameter (true for IVF over exact vectors, close to it
for HNSW and PQ): doubling from the smallest value until the target is met, then bisecting.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from knnserve.bundle import KnnDefaults, Manifest, load_bundle, read_manifest, save_bundle
from knnserve.errors import BundleError
from knnserve.evaluate.config import EvaluateConfig, IndexRequest
from knnserve.evaluate.groundtruth import ground_truth
from knnserve.evaluate.measure import faiss_threads
from knnserve.evaluate.metrics import exact_distances, recall_at_k
from knnserve.evaluate.schema import TuningRecord
from knnserve.evaluate.space import RAW, FeatureSpace
from knnserve.evaluate.workload import holdout_split
from knnserve.index import ResolvedSpec, SearchParams, build_index, nlist, resolve_spec, search

EF_SEARCH_MAX = 4096


def smallest_reaching(recall_of: Callable[[int], float], target: float, lo: int, hi: int
                      ) -> tuple[int | None, dict[int, float]]:
    """Smallest integer v in [lo, hi] with ``recall_of(v) >= target`` (recall assumed non-decreasing in v).

    Returns the value (None when even ``hi`` misses the target) and every evaluation made.
    """
    seen: dict[int, float] = {}

    def reaches(v: int) -> bool:
        if v not in seen:
            seen[v] = recall_of(v)
        return seen[v] >= target

    below, v = lo - 1, lo
    while not reaches(v):
        if v >= hi:
            return None, seen
        below, v = v, min(hi, 2 * v)
    while v - below > 1:  # invariant: below misses (or is lo - 1), v reaches
        middle = (below + v) // 2
        if reaches(middle):
            v = middle
        else:
            below = middle
    return v, seen


@dataclasses.dataclass(frozen=True)
class TuneTarget:
    """One index to tune: its resolved spec (factory as built on all training rows), the feature space
    it searches (``raw`` or a bundle's), and how to show it."""

    spec: ResolvedSpec
    facts: dict[str, object]
    space: str = RAW
    bundle: Path | None = None

    def same_index(self, other: TuneTarget) -> bool:
        """True when both build the same index over the same rows."""
        return self.space == other.space and same_build(self.spec, other.spec)


def tune_index(target: TuneTarget, base: np.ndarray, config: EvaluateConfig, cache_dir: Path | None = None) -> TuningRecord:
    """Build ``target`` without the held-out rows and search the smallest setting reaching ``config.target_recall``."""
    assert config.target_recall is not None
    parameter = "nprobe" if target.spec.kind == "ivf" else "ef_search"
    kept, held = holdout_split(base.shape[0], config.tune_queries, config.seed)
    kept_rows, queries = base[kept], base[held]
    started = time.perf_counter()
    index, _ = build_index(kept_rows, target.spec, progress=config.progress)
    build_seconds = time.perf_counter() - started
    gt = ground_truth(kept_rows, queries, config.k, target.spec.metric, cache_dir=cache_dir, progress=config.progress)
    prepared = np.ascontiguousarray(queries, dtype=np.float32)

    def recall_of(value: int) -> float:
        params = SearchParams(**{parameter: value})
        _, ids = search(index, prepared, config.k, params)
        true = exact_distances(kept_rows, queries, ids, target.spec.metric)
        return recall_at_k(ids, true, gt.kth, config.k, config.recall_epsilon)

    lo, hi = (1, nlist(index) or 1) if parameter == "nprobe" else (config.k, EF_SEARCH_MAX)
    with faiss_threads(config.threads):
        value, seen = smallest_reaching(recall_of, config.target_recall, lo, hi)
    note = "" if value is not None else f"not reached at {parameter}={hi} (the largest value tried)"
    if parameter == "ef_search":
        note = (note + "; " if note else "") + f"efSearch below k={config.k} behaves as k, so the search starts at k"
    return TuningRecord(
        index=dict(target.facts),
        parameter=parameter,  # type: ignore[arg-type]
        target_recall=config.target_recall,
        value=value,
        recall=seen[value] if value is not None else max(seen.values()),
        reached=value is not None,
        held_out_queries=int(held.size),
        index_rows=int(kept.size),
        build_seconds=build_seconds,
        evaluations=[{"value": float(v), "recall": r} for v, r in sorted(seen.items())],
        note=note,
    )


def targets_from_requests(requests: tuple[IndexRequest, ...], n: int, d: int, dtype: np.dtype, metric: str) -> list[TuneTarget]:
    """Tunable (IVF / HNSW) requested indexes, resolved for all ``n`` training rows."""
    targets = []
    for request in requests:
        spec = resolve_spec(request.spec, n=n, d=d, metric=metric, dtype=dtype, storage=request.storage)
        if spec.kind in ("ivf", "hnsw"):
            targets.append(TuneTarget(spec, {"spec": request.label, "factory": spec.factory, "storage": spec.storage}))
    return targets


def target_from_bundle(path: Path, space: FeatureSpace) -> TuneTarget | None:
    """The bundle's own index as a tuning target over its feature space (None when it has nothing to tune)."""
    manifest = read_manifest(path)
    info = manifest.index
    if info.kind not in ("ivf", "hnsw"):
        return None
    if info.dim != space.dim or info.metric != space.metric:
        raise BundleError(f"{path}: its index is {info.dim}-dimensional {info.metric}, its feature space {space.dim}-dimensional {space.metric}")
    spec = resolve_spec(info.factory, n=space.base.shape[0], d=space.dim, metric=info.metric, storage="float32")
    spec = dataclasses.replace(spec, build_params=dict(info.build_params))
    facts = {"spec": info.spec, "factory": info.factory, "storage": info.storage, "bundle": str(path), "space": space.key}
    return TuneTarget(spec, facts, space=space.key, bundle=path)


def same_build(a: ResolvedSpec, b: ResolvedSpec) -> bool:
    """True when two specs build the same index (factory, metric and build parameters)."""
    return (a.factory, a.metric, json.dumps(a.build_params, sort_keys=True)) == (b.factory, b.metric, json.dumps(b.build_params, sort_keys=True))


def write_default(path: Path, record: TuningRecord, config: EvaluateConfig) -> Manifest:
    """Rewrite the bundle with the tuned value as its default (a new verified manifest, files and arrays kept)."""
    if record.value is None:
        raise BundleError(f"{path}: recall@k {record.target_recall} was not reached, so no default was written")
    loaded = load_bundle(path)
    manifest = loaded.manifest
    knn = KnnDefaults.model_validate({**manifest.knn.model_dump(), record.parameter: record.value})
    tuning = {
        "parameter": record.parameter, "value": record.value, "target_recall": record.target_recall,
        "recall": record.recall, "k": config.k, "held_out_queries": record.held_out_queries,
        "recall_epsilon": config.recall_epsilon, "written_at": datetime.now(timezone.utc).isoformat(),
    }
    updated = Manifest.model_validate({**manifest.model_dump(), "knn": knn.model_dump(),
                                       "extra": {**manifest.extra, "evaluate_tuning": tuning}})
    return save_bundle(path, updated, loaded.index, loaded.labels, arrays=loaded.arrays, overwrite=True)


def run_tuning(spaces: dict[str, FeatureSpace], bundles: dict[str, Path], config: EvaluateConfig,
               cache_dir: Path | None = None) -> list[TuningRecord]:
    """Tune every IVF/HNSW index requested and every bundle's (``bundles``: space key -> path), each on
    held-out rows of its own feature space; write the ``--write-default`` bundle's tuned value into it."""
    raw = spaces[RAW]
    n, d = raw.base.shape
    targets = targets_from_requests(config.indexes, n, d, raw.base.dtype, config.metric)
    written: TuneTarget | None = None
    for key, path in bundles.items():
        target = target_from_bundle(path, spaces[key])
        if target is None:
            if config.write_default is not None and path == config.write_default:
                raise BundleError(f"{path}: its index has no nprobe or efSearch to tune")
            continue
        if not any(target.same_index(t) for t in targets):
            targets.append(target)
        if config.write_default is not None and path == config.write_default:
            written = target
    records = [tune_index(t, spaces[t.space].base, config, cache_dir) for t in targets]
    if written is not None:
        position = next(i for i, t in enumerate(targets) if t.same_index(written))
        write_default(written.bundle, records[position], config)  # type: ignore[arg-type]
        records[position] = records[position].model_copy(update={"written_to": str(written.bundle)})
    return records
