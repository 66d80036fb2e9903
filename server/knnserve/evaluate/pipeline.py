"""``run_evaluate``: load data, ground truth, run every system under test, score, and write results.json, report.md and plots."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from knnserve import __version__
from knnserve.bundle import read_manifest
from knnserve.data import default_cache_dir, load_dataset
from knnserve.evaluate.config import EvaluateConfig, IndexRequest
from knnserve.evaluate.groundtruth import ground_truth
from knnserve.evaluate.plots import write_plots
from knnserve.evaluate.report import machine_info, write_report, write_results
from knnserve.evaluate.runner import run_systems
from knnserve.evaluate.runs import RunOutput
from knnserve.evaluate.schema import Results
from knnserve.evaluate.scoring import SpaceTruth, score_runs, space_truth
from knnserve.evaluate.space import RAW, FeatureSpace, check_bundle, model_space, raw_space, space_key
from knnserve.evaluate.systems.base import System
from knnserve.evaluate.systems.baselines import ChildBaseline, NaiveLoop
from knnserve.evaluate.systems.inprocess import FaissFlat, FaissPath, IndexSystem, SpaceIndexSystem
from knnserve.evaluate.systems.peer_catalog import installed, peer_plan
from knnserve.evaluate.systems.peers import PeerSystem
from knnserve.evaluate.systems.remote import RemoteServer
from knnserve.evaluate.tune import run_tuning
from knnserve.evaluate.workload import Workload, make_workload
from knnserve.index import resolve_spec
from knnserve.kernels import plan_kernel
from knnserve.model import KNNModel

RAW_FOLDER = "raw"


def groundtruth_cache(config: EvaluateConfig) -> Path | None:
    """Where ground truth is cached (None when caching is off)."""
    if not config.use_cache:
        return None
    return config.cache_dir if config.cache_dir is not None else default_cache_dir() / "groundtruth"


def load_spaces(workload: Workload, dataset_checksum: str, config: EvaluateConfig) -> tuple[dict[str, FeatureSpace], dict[Path, str]]:
    """The raw space and one per ``--bundle``, each bundle checked to index this dataset's training rows.

    Returns the spaces by key and each bundle's space key.
    """
    spaces = {RAW: raw_space(workload, config.metric)}
    keys: dict[Path, str] = {}
    for path in dict.fromkeys(config.bundles):
        model = KNNModel.load(path)
        assert model.manifest is not None
        check_bundle(path, model.manifest, workload, dataset_checksum)
        key = space_key(model.manifest, set(spaces))
        keys[path] = key
        spaces[key] = model_space(model, workload, key)
    return spaces, keys


def served_space(spaces: dict[str, FeatureSpace], bundles: dict[Path, str], model: str | None) -> FeatureSpace:
    """The space of the ``--bundle`` whose manifest name is the served model's, else the raw rows."""
    for path, key in bundles.items():
        if read_manifest(path).name == model:
            return spaces[key]
    return spaces[RAW]


def faiss_twin_request(workload: Workload, config: EvaluateConfig) -> IndexRequest | None:
    """The first requested index that is a float32 ``Flat``, when the bare-faiss baseline is asked for.

    That index's runs are timed interleaved with ``index.search`` called directly on the same FAISS
    index, so the comparison measures knnserve's overhead and not the machine's load of the moment.
    """
    if "faiss" not in config.baselines:
        return None
    n, d = workload.base.shape
    for request in config.indexes:
        spec = resolve_spec(request.spec, n=n, d=d, metric=config.metric, dtype=workload.base.dtype, storage=request.storage)
        if spec.factory == "Flat":
            return request
    return None


def request_plans_kernel(workload: Workload, config: EvaluateConfig, request: IndexRequest) -> bool:
    """True when the index this request builds over the raw rows gets a search kernel (``knnserve.kernels``)."""
    n, d = workload.base.shape
    spec = resolve_spec(request.spec, n=n, d=d, metric=config.metric, dtype=workload.base.dtype, storage=request.storage)
    return plan_kernel(factory=spec.factory, metric=spec.metric, input_dtype=str(workload.base.dtype), preprocessed=False,
                       dim=d).active


def bundle_plans_kernel(path: Path) -> bool:
    """True when a bundle's index gets a search kernel, judged from its manifest."""
    manifest = read_manifest(path)
    return plan_kernel(factory=manifest.index.factory, metric=manifest.index.metric, input_dtype=manifest.input_dtype,
                       preprocessed=bool(manifest.preprocessing), dim=manifest.index.dim).active


def systems_under_test(workload: Workload, config: EvaluateConfig, spaces: dict[str, FeatureSpace],
                       bundles: dict[Path, str]) -> list[tuple[System, tuple[System, ...]]]:
    """Every system, in the order the report lists them, each with its twins.

    Bare faiss goes beside the first float32 Flat index (or first, on its own, when none is asked
    for); an index or bundle with a search kernel gets its FAISS-only twin (own rows, same index,
    passes interleaved); then scikit-learn and the GEMM bound, the naive loop, the server.
    """
    twin_request = faiss_twin_request(workload, config)
    systems: list[tuple[System, tuple[System, ...]]] = []
    if "faiss" in config.baselines and twin_request is None:
        systems.append((FaissFlat(workload, config), ()))
    for request in config.indexes:
        system = IndexSystem(workload, config, request=request)
        twins: tuple[System, ...] = (FaissFlat(workload, config, twin=system),) if request is twin_request else ()
        if request_plans_kernel(workload, config, request):
            twins += (FaissPath(system),)
        systems.append((system, twins))
    for path in config.bundles:
        system = IndexSystem(workload, config, bundle=path, space=bundles[path])
        systems.append((system, (FaissPath(system),) if bundle_plans_kernel(path) else ()))
    systems += [(ChildBaseline(workload, config, task), ()) for task in ("sklearn", "matmul") if task in config.baselines]
    if "naive" in config.baselines:
        systems.append((NaiveLoop(workload, config), ()))
    if config.server is not None:
        systems.append((RemoteServer(workload, config, served_space(spaces, bundles, config.model)), ()))
    return systems + peer_systems(workload, config, spaces)


def missing_peers(config: EvaluateConfig) -> list[str]:
    """The peer libraries asked for that are not installed here (reported, never silently dropped)."""
    return [library for library in config.peers if not installed(library)]


def peer_systems(workload: Workload, config: EvaluateConfig, spaces: dict[str, FeatureSpace]
                 ) -> list[tuple[System, tuple[System, ...]]]:
    """With peer baselines: knnserve's ``--index`` specs over each bundle's vectors, then every installed peer in
    every space (raw first), each in its own child process."""
    if not config.peers:
        return []
    systems: list[tuple[System, tuple[System, ...]]] = []
    for key, space in spaces.items():
        if key != RAW:
            systems += [(SpaceIndexSystem(workload, config, request, space), ()) for request in config.indexes]
    missing = set(missing_peers(config))
    for space in spaces.values():
        n, dim = space.base.shape
        systems += [(PeerSystem(space, config, peer_plan(library, n, dim)), ())
                    for library in config.peers if library not in missing]
    return systems


def save_raw(out: Path, runs: list[RunOutput]) -> None:
    """Write each run's neighbours as ``raw/rNN.npz`` (ids, distances), so metrics can be recomputed later."""
    folder = out / RAW_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    for i, run in enumerate(runs):
        if run.ids is not None and run.distances is not None:
            np.savez_compressed(folder / f"r{i:02d}.npz", ids=run.ids, distances=run.distances)


def settings_record(config: EvaluateConfig) -> dict[str, Any]:
    """The evaluation settings as results.json records them."""
    scale = "Euclidean (square root of FAISS's squared L2)" if config.metric == "l2" else "L1"
    return {
        "k": config.k, "vote_k": config.vote_k, "weights": config.weights, "tie_break": config.tie_break,
        "metric": config.metric, "mode": config.mode, "repeats": config.repeats, "max_run_seconds": config.max_run_seconds,
        "single_queries": config.single_queries, "exact_single_queries": config.exact_single_queries,
        "threads": config.threads, "recall_epsilon": config.recall_epsilon, "seed": config.seed,
        "indexes": [r.label for r in config.indexes],
        "sweeps": {s.parameter: list(s.values) for s in config.sweeps},
        "baselines": list(config.baselines), "server": config.server, "model": config.model,
        "peers_not_installed": missing_peers(config),
        "recall_rule": (f"a returned id counts if its exact distance (recomputed in float64, {scale} scale) is <= the true "
                        f"k-th distance + {config.recall_epsilon:g} (ann-benchmarks knn_threshold; ties count; -1 never counts)"),
    }


def space_record(truth: SpaceTruth, cache: Path | None) -> dict[str, Any]:
    """A feature space as results.json records it."""
    gt = truth.gt
    return {"description": truth.space.description, "dim": truth.space.dim, "metric": truth.space.metric,
            "exact_accuracy": truth.exact_accuracy,
            "ground_truth": {"cache_key": gt.key, "cached": gt.cached, "seconds": gt.seconds,
                             "cache_dir": str(cache) if cache else None}}


def run_evaluate(config: EvaluateConfig) -> Results:
    """Run the whole evaluation the config describes and write its outputs to ``config.out``."""
    machine = machine_info()
    dataset = load_dataset(config.dataset, data_dir=config.data_dir, download=config.download)
    workload = make_workload(dataset, queries=config.queries, seed=config.seed)
    cache = groundtruth_cache(config)
    spaces, bundles = load_spaces(workload, dataset.checksum, config)
    truths = {
        key: space_truth(space, ground_truth(space.base, space.queries, config.search_k, space.metric, cache_dir=cache,
                                             progress=config.progress), workload, config)
        for key, space in spaces.items()
    }
    runs = run_systems(systems_under_test(workload, config, spaces, bundles), workload, config)
    tuning = []
    if config.target_recall is not None:
        tuning = run_tuning(spaces, {key: path for path, key in bundles.items()}, config, cache)
    records, refs = score_runs(runs, truths, workload, config)
    gt = truths[RAW].gt
    results = Results(
        created_at=datetime.now(timezone.utc),
        knnserve_version=__version__,
        command=list(config.command) or [f"run_evaluate({config!r})"],
        machine={**machine, "load_average_end": list(os.getloadavg())},
        dataset={"name": dataset.name, "checksum": dataset.checksum, "source": dataset.source,
                 "n_train": int(workload.base.shape[0]), "n_test": int(dataset.x_test.shape[0]),
                 "n_queries": int(workload.queries.shape[0]), "dim": workload.dim, "dtype": str(workload.base.dtype),
                 "classes": workload.n_classes},
        settings=settings_record(config),
        ground_truth={"method": f"faiss IndexFlat ({config.metric}, float32) at k+margin candidates, re-ranked by exact "
                                f"float64 distance", "k": config.search_k, "cache_key": gt.key, "cached": gt.cached,
                      "cache_dir": str(cache) if cache else None, "seconds": gt.seconds},
        exact_accuracy=truths[RAW].exact_accuracy,
        spaces={key: space_record(truth, cache) for key, truth in truths.items()},
        references=refs,
        runs=records,
        tuning=tuning,
    )
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    if config.save_raw:
        save_raw(out, runs)
    plots = write_plots(out, results)
    write_results(out, results)
    write_report(out, results, plots)
    return results

