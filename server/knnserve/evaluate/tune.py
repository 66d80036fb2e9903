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

from knnserve.bundle import read_manifest
from knnserve.data.dataset import Dataset
from knnserve.errors import BundleError, InvalidInputError
from knnserve.evaluate.config import EvaluateConfig, IndexRequest
from knnserve.evaluate.groundtruth import ground_truth
from knnserve.evaluate.metrics import DEFAULT_EPSILON, exact_distances, recall_at_k
from knnserve.evaluate.schema import TuningRecord
from knnserve.evaluate.space import RAW, FeatureSpace, check_bundle, model_space
from knnserve.evaluate.workload import holdout_split, make_workload
from knnserve.index import ResolvedSpec, build_index, nlist, num_threads, resolve_spec, search
from knnserve.model import KNNModel
from knnserve.versions import next_version, version_number
from knnserve_client.wire.query import KnnQuery

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


@dataclasses.dataclass(frozen=True)
class TuneSettings:
    """What a tuning run aims at: recall@``k`` >= ``target_recall`` on ``tune_queries`` held-out training rows."""

    target_recall: float
    k: int = 10
    tune_queries: int = 1000
    recall_epsilon: float = DEFAULT_EPSILON
    seed: int = 0
    threads: int | None = None
    progress: bool = False

    def __post_init__(self) -> None:
        if not 0.0 < self.target_recall <= 1.0:
            raise InvalidInputError("target_recall", "a fraction in (0, 1]", self.target_recall)

    @classmethod
    def of(cls, config: EvaluateConfig) -> TuneSettings:
        """The tuning an evaluation asks for (``--target-recall``)."""
        assert config.target_recall is not None
        return cls(config.target_recall, config.k, config.tune_queries, config.recall_epsilon, config.seed,
                   config.threads, config.progress)


def tune_index(target: TuneTarget, base: np.ndarray, settings: TuneSettings, cache_dir: Path | None = None) -> TuningRecord:
    """Build ``target`` without the held-out rows and search the smallest setting reaching the target recall."""
    parameter = "nprobe" if target.spec.kind == "ivf" else "ef_search"
    kept, held = holdout_split(base.shape[0], settings.tune_queries, settings.seed)
    kept_rows, queries = base[kept], base[held]
    started = time.perf_counter()
    index, _ = build_index(kept_rows, target.spec, progress=settings.progress)
    build_seconds = time.perf_counter() - started
    gt = ground_truth(kept_rows, queries, settings.k, target.spec.metric, cache_dir=cache_dir, progress=settings.progress)
    prepared = np.ascontiguousarray(queries, dtype=np.float32)

    def recall_of(value: int) -> float:
        _, ids = search(index, prepared, settings.k, **{parameter: value})
        true = exact_distances(kept_rows, queries, ids, target.spec.metric)
        return recall_at_k(ids, true, gt.kth, settings.k, settings.recall_epsilon)

    lo, hi = (1, nlist(index) or 1) if parameter == "nprobe" else (settings.k, EF_SEARCH_MAX)
    with num_threads(settings.threads):
        value, seen = smallest_reaching(recall_of, settings.target_recall, lo, hi)
    note = "" if value is not None else f"not reached at {parameter}={hi} (the largest value tried)"
    if parameter == "ef_search":
        note = (note + "; " if note else "") + f"efSearch below k={settings.k} behaves as k, so the search starts at k"
    return TuningRecord(
        index=dict(target.facts),
        parameter=parameter,  # type: ignore[arg-type]
        target_recall=settings.target_recall,
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


def tune_bundle(path: Path, dataset: Dataset, settings: TuneSettings, cache_dir: Path | None = None) -> TuningRecord:
    """Tune a bundle's nprobe / efSearch in its own feature space on held-out rows of ``dataset``'s training split.

    The bundle must index that training split (same rows, same order); it is not changed.
    """
    model = KNNModel.load(path)
    assert model.manifest is not None
    workload = make_workload(dataset, seed=settings.seed)
    check_bundle(path, model.manifest, workload, dataset.checksum)
    space = model_space(model, workload, f"bundle:{model.manifest.name}")
    target = target_from_bundle(path, space)
    if target is None:
        raise InvalidInputError("bundle", "an IVF or HNSW index (one with nprobe or efSearch to tune)", model.index_info.factory)
    return tune_index(target, space.base, settings, cache_dir)


def tuned_version(path: Path) -> Path:
    """Where a tuned copy of the bundle at ``path`` goes: the next version beside it (NAME/VERSION/ layout)."""
    if version_number(path) is None:
        raise InvalidInputError("out", f"a folder for the tuned bundle ({path} is not laid out NAME/VERSION/)", "none")
    return next_version(path.parent)


def write_tuned_version(path: Path, record: TuningRecord, *, k: int, recall_epsilon: float, out: Path | None = None) -> Path:
    """Save the bundle with the tuned value as its default, as a new bundle (by default its next version).

    The original bundle is not touched; the new one records the tuning in ``manifest.extra["tuning"]``.
    """
    if record.value is None:
        raise BundleError(f"{path}: recall@k {record.target_recall} was not reached, so no bundle was written")
    target = out if out is not None else tuned_version(path)
    model = KNNModel.load(path)
    assert model.manifest is not None
    tuned = model.with_defaults(KnnQuery(**{record.parameter: record.value}))
    tuning = {
        "parameter": record.parameter, "value": record.value, "target_recall": record.target_recall,
        "recall": record.recall, "k": k, "held_out_queries": record.held_out_queries,
        "recall_epsilon": recall_epsilon, "tuned_from": str(path), "written_at": datetime.now(timezone.utc).isoformat(),
    }
    manifest = model.manifest
    tuned.save(target, name=manifest.name, dataset=manifest.dataset, metrics=manifest.metrics,
               extra={**manifest.extra, "tuning": tuning})
    return target


def run_tuning(spaces: dict[str, FeatureSpace], bundles: dict[str, Path], config: EvaluateConfig,
               cache_dir: Path | None = None) -> list[TuningRecord]:
    """Tune every IVF/HNSW index requested and every bundle's (``bundles``: space key -> path), each on
    held-out rows of its own feature space. Reports only: nothing is written."""
    settings = TuneSettings.of(config)
    raw = spaces[RAW]
    n, d = raw.base.shape
    targets = targets_from_requests(config.indexes, n, d, raw.base.dtype, config.metric)
    for key, path in bundles.items():
        target = target_from_bundle(path, spaces[key])
        if target is not None and not any(target.same_index(t) for t in targets):
            targets.append(target)
    return [tune_index(t, spaces[t.space].base, settings, cache_dir) for t in targets]
