"""One inspected query: a Classify call through the public client, and the votes and tie rule behind its answer.

The server answers (prediction of each head, top classes, neighbours with ids, labels and true-scale
distances); this module only explains that answer: it recomputes each class's vote from the
neighbours with the server's own voting rules (``knnserve.vote``) and says whether a tie was broken
and how. Nothing here changes what the server decided; when the explanation and the server's k-NN
prediction disagree, the page says so.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from knnserve.vote import neighbor_weights, vote
from knnserve_client import Client
from knnserve_client.wire.model_info import ModelInfo
from knnserve_client.wire.results import ClassifyResult, HeadResult
from knnserve_client.wire.query import KnnQuery

# Relative tolerance under which two distance-weighted class votes count as equal (float32 distances).
TIE_TOLERANCE = 1e-6


@dataclass(frozen=True)
class Inspected:
    """A Classify call's answer for one row, how long it took, and the query it ran with."""

    result: ClassifyResult
    latency_ms: float
    query: KnnQuery


def classify_one(client: Client, info: ModelInfo, row: np.ndarray, query: KnnQuery) -> Inspected:
    """Classify one row with every head the model has, neighbours returned, timing the call."""
    started = time.perf_counter()
    result = client.classify(
        info.name, row[None], version=info.version, heads=list(info.heads), k=query.k, weights=query.weights,
        tie_break=query.tie_break, nprobe=query.nprobe, ef_search=query.ef_search, top_n=len(info.class_names),
        return_neighbors=True,
    )
    return Inspected(result=result, latency_ms=(time.perf_counter() - started) * 1000.0, query=query)


def head_json(head: HeadResult | None, class_names: tuple[str, ...], shown: int = 5) -> dict[str, Any] | None:
    """A head's prediction and its best ``shown`` classes with scores."""
    if head is None:
        return None
    prediction = int(head.predictions[0])
    top = [{"class": int(c), "name": class_names[int(c)], "score": float(s)}
           for c, s in zip(head.top_classes[0][:shown], head.top_scores[0][:shown]) if int(c) >= 0]
    return {"prediction": prediction, "name": class_names[prediction] if prediction >= 0 else "(none)", "top": top}


def votes_json(labels: np.ndarray, distances: np.ndarray, class_names: tuple[str, ...], *, weights: str,
               tie_break: str) -> dict[str, Any]:
    """Each class's vote from one row's neighbours, the winner, and the tie rule as applied.

    ``labels`` and ``distances`` are the row's (k,) neighbour labels (-1: none) and true-scale distances.
    """
    labels2 = labels[None].astype(np.int64)
    valid = labels2 >= 0
    w = neighbor_weights(distances[None].astype(np.float64), valid, weights)[0]
    per_class = np.zeros(len(class_names), dtype=np.float64)
    np.add.at(per_class, np.maximum(labels2[0], 0), np.where(valid[0], w, 0.0))
    winner = int(vote(labels2, distances[None], len(class_names), weights=weights, tie_break=tie_break).predictions[0])
    top = per_class.max() if per_class.size else 0.0
    tied = [int(c) for c in np.flatnonzero(np.isclose(per_class, top, rtol=TIE_TOLERANCE, atol=0.0))] if top > 0 else []
    if len(tied) > 1:
        names = ", ".join(class_names[c] for c in tied)
        how = ("the tied class of the nearest neighbour wins" if tie_break == "nearest"
               else "the lowest class index wins (scikit-learn's rule)")
        rule = f"tie between {names} at {top:.4g} each; rule '{tie_break}': {how} -> {class_names[winner]}"
    elif winner >= 0:
        rule = f"no tie: {class_names[winner]} has the most votes (rule '{tie_break}' not needed)"
    else:
        rule = "no neighbour found: no prediction"
    return {
        "weights": weights,
        "tie_break": tie_break,
        "per_class": [{"class": int(c), "name": class_names[c], "vote": float(per_class[c])}
                      for c in np.argsort(-per_class, kind="stable") if per_class[c] > 0],
        "neighbor_weights": [float(x) for x in w],
        "tied": tied,
        "winner": winner,
        "rule": rule,
    }


__all__ = ["Inspected", "classify_one", "head_json", "votes_json"]
