"""From raw runs to records: recall and accuracy against exact ground truth, memory, speedups, Pareto fronts."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from knnserve.evaluate.config import EvaluateConfig
from knnserve.evaluate.groundtruth import GroundTruth
from knnserve.evaluate.metrics import accuracy, exact_distances, id_overlap, pareto_front, recall_at_k
from knnserve.evaluate.runs import RunOutput
from knnserve.evaluate.schema import (
    BatchRecord, BuildRecord, ExtractionRecord, MemoryRecord, Reference, RunRecord, SingleRecord,
)
from knnserve.evaluate.space import RAW, FeatureSpace
from knnserve.evaluate.timing import latency_summary
from knnserve.evaluate.workload import Workload
from knnserve.vote import neighbor_labels, vote

TIMED_MODES = ("batch", "single")


@dataclass(frozen=True)
class SpaceTruth:
    """A feature space with its exact ground truth and the exact k-NN predictions and accuracy in it."""

    space: FeatureSpace
    gt: GroundTruth
    exact_accuracy: float
    exact_lowest: np.ndarray


def neighbor_predictions(
    ids: np.ndarray, distances: np.ndarray, workload: Workload, config: EvaluateConfig, *, tie_break: str | None = None
) -> np.ndarray:
    """k-NN vote over the first ``vote_k`` neighbours with the run's weights and tie rule (knnserve.vote)."""
    ids, distances = ids[:, : config.vote_k], distances[:, : config.vote_k]
    labels = neighbor_labels(workload.base_labels, ids)
    return vote(labels, distances.astype(np.float32), workload.n_classes, weights=config.weights,
                tie_break=tie_break or config.tie_break).predictions


def exact_predictions(gt: GroundTruth, workload: Workload, config: EvaluateConfig, *, tie_break: str | None = None) -> np.ndarray:
    """Predictions of exact k-NN: the vote over the ground-truth neighbours."""
    return neighbor_predictions(gt.ids, gt.distances, workload, config, tie_break=tie_break)


def space_truth(space: FeatureSpace, gt: GroundTruth, workload: Workload, config: EvaluateConfig) -> SpaceTruth:
    """Exact accuracy in ``space`` (and the tie-rule-'lowest' predictions scikit-learn is compared with)."""
    exact_acc = accuracy(exact_predictions(gt, workload, config), workload.query_labels)
    return SpaceTruth(space, gt, exact_acc, exact_predictions(gt, workload, config, tie_break="lowest"))


def _memory(run: RunOutput, space: FeatureSpace) -> MemoryRecord | None:
    if run.build is None or run.build.bytes <= 0:
        return None
    n, d = space.base.shape  # float32 vectors of the space the index holds
    return MemoryRecord(bytes=run.build.bytes, bytes_per_vector=run.build.bytes / n,
                        smaller_than_float32=n * d * 4 / run.build.bytes)


def _batch(run: RunOutput) -> BatchRecord | None:
    if run.batch is None:
        return None
    t = run.batch
    # Over gRPC or in a child process the work runs in another process: this process's CPU time says nothing of it.
    cores = t.cores_used if run.transport == "in-process" else None
    return BatchRecord(queries=t.queries, passes=len(t.seconds), seconds=list(t.seconds),
                       median_seconds=t.median_seconds, qps=t.qps, cores_used=cores)


def _single(run: RunOutput) -> SingleRecord | None:
    if run.single is None:
        return None
    return SingleRecord(queries=run.single.queries, passes=len(run.single.pass_seconds), **latency_summary(run.single))


def score_run(run_id: str, run: RunOutput, truths: dict[str, SpaceTruth], workload: Workload, config: EvaluateConfig
              ) -> RunRecord:
    """Metrics of one run in its own feature space; speedups and Pareto flags are filled in by :func:`score_runs`."""
    recall = recall_ids = acc = delta = None
    acc_rows: int | None = None
    notes = list(run.notes)
    truth = truths[run.space]
    if run.ids is not None and run.distances is not None:
        space, gt = truth.space, truth.gt
        found = run.ids[:, : config.k]
        true = exact_distances(space.base, space.queries, found, space.metric)
        recall = recall_at_k(found, true, gt.distances[:, config.k - 1], config.k, config.recall_epsilon)
        recall_ids = id_overlap(found, gt.ids, config.k)
        acc = accuracy(neighbor_predictions(run.ids, run.distances, workload, config), workload.query_labels)
        delta, acc_rows = acc - truth.exact_accuracy, int(workload.query_labels.size)
    elif run.predictions is not None and run.prediction_rows is not None:
        labels = workload.query_labels[run.prediction_rows]
        acc, acc_rows = accuracy(run.predictions, labels), int(run.prediction_rows.size)
        if run.system == "sklearn":
            delta = acc - truth.exact_accuracy
            agree = float(np.mean(run.predictions == truth.exact_lowest[run.prediction_rows]))
            notes.append(f"agrees with knnserve's exact vote (tie rule 'lowest', as scikit-learn) on {agree:.2%} of queries")
    build = None
    if run.build is not None:
        build = BuildRecord(train_seconds=run.build.train_seconds, add_seconds=run.build.add_seconds,
                            total_seconds=run.build.train_seconds + run.build.add_seconds)
    return RunRecord(
        run_id=run_id, label=run.label, system=run.system, transport=run.transport,  # type: ignore[arg-type]
        index=run.index, params=dict(run.params), exact=run.exact, build=build, memory=_memory(run, truth.space),
        recall=recall, recall_ids=recall_ids, accuracy=acc, accuracy_delta=delta, accuracy_queries=acc_rows,
        batch=_batch(run), single=_single(run), extrapolated_seconds=run.extrapolated_seconds, notes=notes, space=run.space,
        extraction=_extraction(run),
    )


def _extraction(run: RunOutput) -> ExtractionRecord | None:
    if run.extraction is None:
        return None
    record = dict(run.extraction)
    if record.get("batch_seconds") and run.batch is not None and run.batch.median_seconds > 0:
        record["batch_share"] = record["batch_seconds"] / run.batch.median_seconds
    return ExtractionRecord(**record)


def references(records: list[RunRecord]) -> dict[str, Reference | None]:
    """Per mode, the fastest exact in-process search of the raw rows (knnserve or bare faiss): what speedups divide by."""
    found: dict[str, Reference | None] = {}
    for mode in TIMED_MODES:
        best: Reference | None = None
        for record in records:
            timing = getattr(record, mode)
            if (record.exact and record.transport == "in-process" and record.system in ("knnserve", "faiss")
                    and record.space == RAW and timing):
                if best is None or timing.qps > best.qps:
                    best = Reference(run_id=record.run_id, label=record.label, qps=timing.qps)
        found[mode] = best
    return found


def with_speedups(records: list[RunRecord], refs: dict[str, Reference | None]) -> list[RunRecord]:
    """Records with ``speedup`` set in each mode that has a reference, and Pareto flags per transport."""
    updated: list[RunRecord] = []
    for record in records:
        changes: dict[str, object] = {}
        for mode in TIMED_MODES:
            timing, ref = getattr(record, mode), refs.get(mode)
            if timing is not None and ref is not None:
                changes[mode] = timing.model_copy(update={"speedup": timing.qps / ref.qps})
        updated.append(record.model_copy(update=changes))
    flags: dict[str, dict[str, bool]] = {r.run_id: {} for r in updated}
    for mode in TIMED_MODES:
        for transport in ("in-process", "grpc"):
            group = [r for r in updated if r.transport == transport and r.recall is not None and getattr(r, mode)]
            if group:
                front = pareto_front(np.array([getattr(r, mode).qps for r in group]), np.array([r.recall for r in group]))
                for r, on in zip(group, front):
                    flags[r.run_id][mode] = bool(on)
    return [r.model_copy(update={"pareto": flags[r.run_id]}) for r in updated]


def score_runs(runs: list[RunOutput], truths: dict[str, SpaceTruth], workload: Workload, config: EvaluateConfig
               ) -> tuple[list[RunRecord], dict[str, Reference | None]]:
    """Records for all runs (each scored in its own feature space) and the speed references."""
    records = [score_run(f"r{i:02d}", run, truths, workload, config) for i, run in enumerate(runs)]
    refs = references(records)
    return with_speedups(records, refs), refs
