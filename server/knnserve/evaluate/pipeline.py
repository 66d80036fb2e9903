"""``run_evaluate``: load data, ground truth, run every system, score, and write results.json, report.md and plots."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from knnserve import __version__
from knnserve.bundle import read_manifest
from knnserve.data import default_cache_dir, load_dataset
from knnserve.evaluate.baselines import bare_faiss, child_baselines, naive_loop
from knnserve.evaluate.config import EvaluateConfig, command_line
from knnserve.evaluate.groundtruth import ground_truth
from knnserve.evaluate.plots import write_plots
from knnserve.evaluate.remote import evaluate_server
from knnserve.evaluate.report import machine_info, write_report, write_results
from knnserve.evaluate.runner import evaluate_bundle, evaluate_indexes, faiss_twin_request
from knnserve.evaluate.runs import RunOutput
from knnserve.evaluate.schema import Results
from knnserve.evaluate.scoring import SpaceTruth, score_runs, space_truth
from knnserve.evaluate.space import RAW, FeatureSpace, check_bundle, model_space, raw_space, space_key
from knnserve.evaluate.tune import run_tuning
from knnserve.evaluate.workload import Workload, make_workload
from knnserve.model import KNNModel

RAW_FOLDER = "raw"


def groundtruth_cache(config: EvaluateConfig) -> Path | None:
    """Where ground truth is cached (None when caching is off)."""
    if not config.use_cache:
        return None
    return config.cache_dir if config.cache_dir is not None else default_cache_dir() / "groundtruth"


@dataclass(frozen=True)
class Bundles:
    """Bundles named on the command line (``--bundle``, ``--write-default``): path -> feature-space key."""

    keys: dict[Path, str]

    def served(self, spaces: dict[str, FeatureSpace], model: str | None) -> FeatureSpace:
        """The space of the bundle whose manifest name is the served model's, else the raw rows."""
        for path, key in self.keys.items():
            if read_manifest(path).name == model:
                return spaces[key]
        return spaces[RAW]


def load_spaces(workload: Workload, dataset_checksum: str, config: EvaluateConfig) -> tuple[dict[str, FeatureSpace], Bundles]:
    """The raw space and one per bundle named, each bundle checked to index this dataset's training rows."""
    spaces = {RAW: raw_space(workload, config.metric)}
    keys: dict[Path, str] = {}
    paths = list(dict.fromkeys([*config.bundles, *([config.write_default] if config.write_default else [])]))
    for path in paths:
        model = KNNModel.load(path)
        assert model.manifest is not None
        check_bundle(path, model.manifest, workload, dataset_checksum)
        key = space_key(model.manifest, set(spaces))
        keys[path] = key
        spaces[key] = model_space(model, workload, key)
    return spaces, Bundles(keys)


def collect_runs(workload: Workload, config: EvaluateConfig, spaces: dict[str, FeatureSpace], bundles: Bundles
                 ) -> list[RunOutput]:
    """Every run: in-process indexes (bare faiss beside float32 Flat, else first on its own), bundles, baselines, server."""
    runs: list[RunOutput] = []
    if "faiss" in config.baselines and faiss_twin_request(workload, config) is None:
        runs.append(bare_faiss(workload, config))  # no float32 Flat requested to time it beside
    runs.extend(evaluate_indexes(workload, config))
    for path in config.bundles:
        runs.extend(evaluate_bundle(path, bundles.keys[path], workload, config))
    runs.extend(child_baselines(workload, config, tuple(t for t in ("sklearn", "matmul") if t in config.baselines)))
    if "naive" in config.baselines:
        runs.append(naive_loop(workload, config))
    if config.server is not None:
        runs.extend(evaluate_server(workload, config, bundles.served(spaces, config.model)))
    return runs


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
    runs = collect_runs(workload, config, spaces, bundles)
    tuning = []
    if config.target_recall is not None:
        tuning = run_tuning(spaces, {key: path for path, key in bundles.keys.items()}, config, cache)
    records, refs = score_runs(runs, truths, workload, config)
    gt = truths[RAW].gt
    results = Results(
        created_at=datetime.now(timezone.utc),
        knnserve_version=__version__,
        command=list(config.command) or command_line(config),
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

