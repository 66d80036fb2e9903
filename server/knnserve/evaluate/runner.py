"""The in-process sweep: build each requested index with KNNModel, then search it at every setting."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from knnserve.evaluate.config import EvaluateConfig, IndexRequest
from knnserve.evaluate.measure import Measurement, measure_searches
from knnserve.evaluate.runs import BuildCost, RunOutput, params_label
from knnserve.evaluate.workload import Workload
from knnserve.index import SearchParams, nlist, resolve_spec
from knnserve.model import KNNModel, true_distances


def search_settings(model: KNNModel, config: EvaluateConfig) -> tuple[list[SearchParams], list[str]]:
    """The settings to run on this model's index (its sweep, else its default), and notes on values skipped."""
    kind = model.index_info.kind
    sweep = config.sweep_for(kind)
    default = model.search_params()
    if kind not in ("ivf", "hnsw"):
        return [SearchParams()], []
    if sweep is None:
        return [default], []
    notes: list[str] = []
    values = list(sweep.values)
    if kind == "ivf":
        lists = nlist(model.index) or 1
        skipped = [v for v in values if v > lists]
        values = [v for v in values if v <= lists]
        if skipped:
            notes.append(f"nprobe {', '.join(map(str, skipped))} skipped: above nlist={lists}")
        return [SearchParams(nprobe=v) for v in values], notes
    return [SearchParams(ef_search=v) for v in values], notes


def params_dict(params: SearchParams) -> dict[str, int]:
    """Search parameters that are set, as a plain dict."""
    return {key: value for key, value in (("nprobe", params.nprobe), ("ef_search", params.ef_search)) if value is not None}


def is_exact(model: KNNModel) -> bool:
    """True when the index searches exhaustively over exact vectors (Flat, or raw bytes of uint8 inputs)."""
    info = model.index_info
    raw_bytes = model.input_dtype == np.uint8 and model.preprocessor is None
    return info.kind == "flat" and (info.factory == "Flat" or raw_bytes)


def index_facts(model: KNNModel, request: IndexRequest) -> dict[str, Any]:
    """The index as a run record shows it."""
    info = model.index_info
    facts: dict[str, Any] = {
        "spec": request.label,
        "factory": info.factory,
        "storage": info.storage,
        "kind": info.kind,
        "metric": info.metric,
        "build_params": dict(info.build_params),
    }
    if (lists := nlist(model.index)) is not None:
        facts["nlist"] = lists
    return facts


def build_model(workload: Workload, request: IndexRequest, config: EvaluateConfig) -> KNNModel:
    """Index the workload's base rows as ``request`` says (the same path ``knnserve train`` takes)."""
    return KNNModel.fit(
        workload.base,
        workload.base_labels,
        class_names=workload.class_names,
        index=request.spec,
        metric=config.metric,
        storage=request.storage,
        progress=config.progress,
    )


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


def _faiss_twin(config: EvaluateConfig, reference: RunOutput, measured: Measurement) -> RunOutput:
    return RunOutput(
        label="bare faiss IndexFlat.search (same index)",
        system="faiss",
        transport="in-process",
        index={**(reference.index or {}), "spec": "faiss index.search()"},
        exact=True,
        ids=measured.ids,
        distances=true_distances(measured.distances, config.metric),
        batch=measured.batch,
        single=measured.single,
        notes=("index.search() called directly on the FAISS index knnserve built (its size and build time are on that "
               "run), on the same float32 rows; "
               f"its passes and queries alternate with those of `{reference.label}`",),
    )


def evaluate_model(
    model: KNNModel,
    request: IndexRequest,
    workload: Workload,
    config: EvaluateConfig,
    *,
    bar: tqdm | None = None,
    faiss_twin: bool = False,
    space: str = "raw",
    label_suffix: str = "",
) -> Iterator[RunOutput]:
    """One run per search setting of an already built model (and its bare-faiss twin when asked)."""
    queries = model.prepare(workload.queries)
    exact = is_exact(model)
    info = model.index_info
    build = BuildCost(info.train_seconds, info.add_seconds, info.serialized_bytes)
    settings, notes = search_settings(model, config)
    single_rows = workload.single_rows(config.exact_single_queries if exact else config.single_queries)
    for params in settings:
        label = f"{info.factory} {params_label(params_dict(params))}".strip()
        if request.storage != "auto":
            label += f" ({request.storage})"
        label += label_suffix
        if bar is not None:
            bar.set_postfix_str(label)
        searches = [lambda rows, p=params: model.search(rows, config.search_k, p)]
        if faiss_twin:
            searches.append(lambda rows: model.index.search(rows, config.search_k))
        measured, *twin = measure_searches(
            searches,
            queries,
            modes=config.timed_modes,
            single_rows=single_rows,
            repeats=config.repeats,
            max_seconds=config.max_run_seconds,
            threads=config.threads,
            progress=config.progress,
            desc=label,
        )
        run = RunOutput(
            label=label,
            system="knnserve",
            transport="in-process",
            index=index_facts(model, request),
            params=params_dict(params),
            exact=exact,
            build=build,
            ids=measured.ids,
            distances=measured.distances,
            batch=measured.batch,
            single=measured.single,
            notes=tuple(notes),
            space=space,
        )
        if twin:
            yield _faiss_twin(config, run, twin[0])
        yield run
        if bar is not None:
            bar.update(1)


def evaluate_indexes(workload: Workload, config: EvaluateConfig) -> Iterator[RunOutput]:
    """Build every requested index in turn (one in memory at a time) and run all its settings."""
    twin = faiss_twin_request(workload, config)
    with tqdm(total=None, desc="in-process runs", unit="run", disable=not config.progress) as bar:
        for request in config.indexes:
            bar.set_postfix_str(f"building {request.label}")
            model = build_model(workload, request, config)
            yield from evaluate_model(model, request, workload, config, bar=bar, faiss_twin=request is twin)
            twin = None if request is twin else twin
            del model


def evaluate_bundle(path: Path, key: str, workload: Workload, config: EvaluateConfig) -> Iterator[RunOutput]:
    """Runs of a saved bundle as it is (its index, preprocessing and defaults), at the sweep of its index kind."""
    model = KNNModel.load(path)
    name = model.manifest.name if model.manifest is not None else path.name
    request = IndexRequest(spec=f"bundle {name} ({model.index_info.spec})")
    yield from evaluate_model(model, request, workload, config, space=key, label_suffix=f" [bundle {name}]")
