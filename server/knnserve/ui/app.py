"""What each JSON endpoint of the page answers, free of HTTP: the models, a model's card, test images, an inspection.

Every answer starts with a server call carrying the browser's token (``Gateway``), so the server's
auth decides who sees anything; the dataset and the bundles on disk only add pictures and records.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from knnserve.errors import InvalidInputError, KnnServeError
from knnserve.ui.bundle_card import BundleCard, read_card
from knnserve.ui.confusion import Confusion, classify_test_split
from knnserve.ui.dataset_view import DatasetView, Match
from knnserve.ui.evaluation_plot import latest_evaluation
from knnserve.ui.gateway import Gateway
from knnserve.images import image_layout
from knnserve.ui.images import decode_data_url, decode_image, describe_shape, thumbnail
from knnserve.ui.inspect import classify_one, head_json, votes_json
from knnserve_client.wire.model_info import ModelInfo
from knnserve_client.wire.query import NAMED_OPTIONS, KnnQuery, query_fields

log = logging.getLogger(__name__)

MAX_PAGE = 200


@dataclass(frozen=True)
class UiConfig:
    """Where the page's answers come from: the server, and optionally a dataset, bundles and evaluations."""

    server: str
    models_dir: Path | None = None
    dataset: str | None = None
    data_dir: Path | None = None
    evaluations: tuple[Path, ...] = ()
    confusion_rows: int | None = None
    tls: bool | Path = False
    tls_server_name: str | None = None
    timeout: float = 60.0


def _int(value: Any, field: str, *, minimum: int | None = 0, optional: bool = False) -> int | None:
    """A JSON value (number or numeric string) as an integer; ``minimum`` None leaves the range to the caller."""
    expected = "an integer" if minimum is None else f"an integer >= {minimum}"
    if value is None or value == "":
        if optional:
            return None
        raise InvalidInputError(field, expected, "nothing")
    if isinstance(value, bool):
        raise InvalidInputError(field, expected, repr(value))
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise InvalidInputError(field, expected, repr(value)) from None
    if (minimum is not None and number < minimum) or (isinstance(value, float) and number != value):
        raise InvalidInputError(field, expected, repr(value))
    return number


def query_from_json(body: dict[str, Any]) -> KnnQuery:
    """The k-NN options of an inspection request (absent or empty: the model's default); KnnQuery checks each."""
    values = {field: body.get(field) or None if field in NAMED_OPTIONS else _int(body.get(field), field, minimum=None, optional=True)
              for field in query_fields() if field != "top_n"}  # the page shows every class's score
    return KnnQuery(**values)


def _input_row(body: dict[str, Any], info: ModelInfo, dataset: DatasetView | None,
               match: Match) -> tuple[np.ndarray, int | None, int | None]:
    """The row an inspection request names: (row, test row number or None, true class or None)."""
    source = body.get("source")
    if source == "test":
        if dataset is None:
            raise InvalidInputError("source", "an uploaded image: no test split for this model", match.reason)
        number = _int(body.get("row"), "row") or 0
        row, truth = dataset.test_row(number)
        return row, number, truth
    if source == "image":
        image = body.get("image")
        if not isinstance(image, str):
            raise InvalidInputError("image", "a PNG or JPEG file", "no file")
        row = decode_image(decode_data_url(image), tuple(info.input_shape), resize=bool(body.get("resize")))
        return (row.astype(np.float32) if info.input_dtype == "float32" else row), None, None
    raise InvalidInputError("source", "'test' or 'image'", repr(source))


@dataclass
class _Caches:
    cards: dict[tuple[str, int], BundleCard | None] = field(default_factory=dict)
    card_errors: dict[tuple[str, int], str] = field(default_factory=dict)
    confusions: dict[tuple[str, int], Confusion] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


class UiApp:
    """The page's answers; one per ``knnserve ui`` process."""

    def __init__(self, config: UiConfig, gateway: Gateway | None = None, dataset: DatasetView | None = None) -> None:
        self.config = config
        self.gateway = gateway or Gateway(config.server, tls=config.tls, tls_server_name=config.tls_server_name,
                                          timeout=config.timeout)
        self.dataset = dataset
        self._caches = _Caches()
        self._by_name: dict[str, DatasetView | str] = {}  # datasets loaded by a model's name for them
        self._load_lock = threading.Lock()
        if dataset is None and (config.dataset is not None or config.data_dir is not None):
            self.dataset = DatasetView.load(config.dataset, config.data_dir)

    # -- helpers -------------------------------------------------------------------------------

    def _info(self, token: str | None, model: Any, version: Any) -> ModelInfo:
        if not isinstance(model, str) or not model:
            raise InvalidInputError("model", "a model name", repr(model))
        return self.gateway.client(token).model(model, _int(version, "version", minimum=1, optional=True))

    def _card(self, info: ModelInfo) -> BundleCard | None:
        if self.config.models_dir is None:
            return None
        key = (info.name, info.version)
        with self._caches.lock:
            if key in self._caches.cards:
                return self._caches.cards[key]
        try:
            card = read_card(self.config.models_dir, info.name, info.version)
        except KnnServeError as exc:  # a damaged bundle on disk: the card says why, the rest of the page works
            log.warning("model card of %s v%s: %s", info.name, info.version, exc)
            with self._caches.lock:
                self._caches.card_errors[key] = str(exc)
            return None
        with self._caches.lock:
            self._caches.cards[key] = card
        return card

    def _named_dataset(self, name: str) -> DatasetView | str:
        """A registered dataset by name, loaded once (never downloaded), or why it could not be."""
        with self._load_lock:
            if name not in self._by_name:
                try:
                    self._by_name[name] = DatasetView.load(name, None)
                except KnnServeError as exc:
                    self._by_name[name] = str(exc)
            return self._by_name[name]

    def _dataset_for(self, info: ModelInfo) -> tuple[DatasetView | None, Match]:
        """The dataset when it is the model's (ids are its training rows), and why or why not.

        The dataset the page was started with, else the one the model was trained on, by name.
        """
        view: DatasetView | str | None = self.dataset
        if view is None:
            if not info.dataset:
                return None, Match(False, "no dataset given (knnserve ui --dataset or --data-dir) and the model names none")
            view = self._named_dataset(info.dataset)
        if isinstance(view, str):
            return None, Match(False, view)
        card = self._card(info)
        match = view.matches(info, card.dataset_checksum if card is not None else None)
        return (view if match.ok else None), match

    # -- endpoints ---------------------------------------------------------------------------

    def models(self, token: str | None) -> dict[str, Any]:
        """The served models with their versions."""
        infos = self.gateway.client(token).models()
        return {"server": self.config.server, "models": [
            {"name": i.name, "version": i.version, "versions": sorted(i.versions), "dataset": i.dataset,
             "input": describe_shape(i.input_shape), "heads": list(i.heads)} for i in infos]}

    def card(self, token: str | None, model: Any, version: Any) -> dict[str, Any]:
        """The model card: what the server says of the model, plus the bundle's records and the latest evaluation."""
        info = self._info(token, model, version)
        dataset, match = self._dataset_for(info)
        card = self._card(info)
        evaluation = latest_evaluation(list(self.config.evaluations), info.dataset) if self.config.evaluations else None
        limits = info.limits
        return {
            "name": info.name, "version": info.version, "versions": sorted(info.versions), "dataset": info.dataset,
            "created_at": info.created_at, "input": describe_shape(info.input_shape),
            "input_shape": list(info.input_shape), "image": image_layout(info.input_shape) is not None,
            "class_names": list(info.class_names), "heads": list(info.heads),
            "index": {"spec": info.index.spec, "factory": info.index.factory, "metric": info.index.metric,
                      "kind": info.index.kind, "ntotal": info.index.ntotal, "dim": info.index.dim, "nlist": info.index.nlist},
            "features": {"input": info.features.input, "extractor": info.features.extractor,
                         "embedding_dim": info.features.embedding_dim, "preprocessing": info.features.preprocessing,
                         "dim": info.features.dim},
            "defaults": info.defaults.set_fields(),
            "limits": {"max_k": limits.max_k, "max_nprobe": limits.max_nprobe, "max_ef_search": limits.max_ef_search},
            "dataset_match": {"ok": match.ok, "reason": match.reason},
            "test_rows": dataset.n_test if dataset is not None else 0,
            "bundle": card.to_json() if card is not None else None,
            "bundle_note": "" if card is not None else self._card_note(info),
            "evaluation": evaluation.to_json() if evaluation is not None else None,
        }

    def _card_note(self, info: ModelInfo) -> str:
        """Why the card has no bundle records."""
        if self.config.models_dir is None:
            return "no --models folder given"
        with self._caches.lock:
            error = self._caches.card_errors.get((info.name, info.version))
        if error is not None:
            return f"the bundle could not be read: {error}"
        return f"no bundle {info.name}/{info.version} under {self.config.models_dir} (a remote server's model?)"

    def test_images(self, token: str | None, model: Any, version: Any, offset: Any, limit: Any,
                    label: Any = None) -> dict[str, Any]:
        """One page of the test split: rows, thumbnails and true labels (optionally of one class)."""
        info = self._info(token, model, version)
        dataset, match = self._dataset_for(info)
        if dataset is None:
            raise InvalidInputError("dataset", "the dataset this model was trained on", match.reason)
        start = _int(offset, "offset")
        count = min(_int(limit, "limit", minimum=1) or 1, MAX_PAGE)
        wanted = _int(label, "label", optional=True)
        if wanted is not None and wanted >= len(info.class_names):
            raise InvalidInputError("label", f"a class index below {len(info.class_names)}", wanted)
        rows, total = dataset.test_page(start or 0, count, wanted)
        return {"total": total, "offset": start, "images": [
            {"row": r, "label": int(dataset.y_test[r]), "name": info.class_names[int(dataset.y_test[r])],
             "thumbnail": dataset.test_thumbnail(r)} for r in rows]}

    def inspect(self, token: str | None, body: dict[str, Any]) -> dict[str, Any]:
        """Classify one test row or uploaded image; heads, neighbours with thumbnails, votes and tie rule, latency."""
        info = self._info(token, body.get("model"), body.get("version"))
        dataset, match = self._dataset_for(info)
        source = body.get("source")
        row, row_number, truth = _input_row(body, info, dataset, match)
        query = query_from_json(body)
        inspected = classify_one(self.gateway.client(token), info, row, query)
        result = inspected.result
        names = info.class_names
        answer: dict[str, Any] = {
            "model": result.model, "version": result.version, "latency_ms": round(inspected.latency_ms, 3),
            "params": result.params.set_fields() if result.params is not None else {},
            "input": {"source": source, "row": row_number, "truth": truth,
                      "truth_name": names[truth] if truth is not None else None,
                      "thumbnail": thumbnail(row, tuple(info.input_shape))},
            "heads": {"knn": head_json(result.knn, names), "linear": head_json(result.linear, names)},
            "dataset_note": match.reason,
        }
        if result.neighbors is not None and result.params is not None:
            ids = result.neighbors.ids[0]
            labels = result.neighbors.labels[0]
            distances = result.neighbors.distances[0]
            votes = votes_json(labels, distances, names, weights=result.params.weights or "uniform",
                               tie_break=result.params.tie_break or "nearest")
            same_rows = dataset is not None and bool(np.array_equal(dataset.train_labels(ids), labels))
            if dataset is not None and not same_rows:
                answer["dataset_note"] = "the neighbours' labels differ from the dataset's: thumbnails not shown"
            answer["neighbors"] = [
                {"rank": i + 1, "id": int(ids[i]), "label": int(labels[i]),
                 "name": names[int(labels[i])] if labels[i] >= 0 else "(none)", "distance": float(distances[i]),
                 "weight": votes["neighbor_weights"][i],
                 "thumbnail": dataset.train_thumbnail(int(ids[i])) if same_rows and dataset is not None else None}
                for i in range(ids.size)]
            answer["votes"] = votes
            knn_prediction = int(result.knn.predictions[0]) if result.knn is not None else votes["winner"]
            answer["votes_agree"] = votes["winner"] == knn_prediction
        return answer

    def confusion(self, token: str | None, model: Any, version: Any) -> dict[str, Any]:
        """The k-NN head's confusion matrix on the test split (computed once per model version)."""
        info = self._info(token, model, version)
        dataset, match = self._dataset_for(info)
        if dataset is None:
            raise InvalidInputError("dataset", "the dataset this model was trained on", match.reason)
        return self._confusion(token, info, dataset).to_json(info.class_names)

    def _confusion(self, token: str | None, info: ModelInfo, dataset: DatasetView) -> Confusion:
        key = (info.name, info.version)
        with self._caches.lock:
            cached = self._caches.confusions.get(key)
        if cached is None:
            cached = classify_test_split(self.gateway.client(token), info, dataset.dataset.x_test, dataset.y_test,
                                         max_rows=self.config.confusion_rows)
            with self._caches.lock:
                self._caches.confusions[key] = cached
        return cached

    def examples(self, token: str | None, model: Any, version: Any, true: Any, predicted: Any) -> dict[str, Any]:
        """Test rows of class ``true`` predicted as ``predicted``, with thumbnails (after the confusion matrix)."""
        info = self._info(token, model, version)
        dataset, match = self._dataset_for(info)
        if dataset is None:
            raise InvalidInputError("dataset", "the dataset this model was trained on", match.reason)
        n = len(info.class_names)
        t = _int(true, "true")
        p = _int(predicted, "predicted")
        assert t is not None and p is not None
        if t >= n or p >= n:
            raise InvalidInputError("true", f"class indices below {n}", f"{t}, {p}")
        rows = self._confusion(token, info, dataset).examples(t, p)
        return {"true": t, "predicted": p, "true_name": info.class_names[t], "predicted_name": info.class_names[p],
                "images": [{"row": r, "label": t, "name": info.class_names[t], "thumbnail": dataset.test_thumbnail(r)}
                           for r in rows]}

    def close(self) -> None:
        """Close the clients."""
        self.gateway.close()


__all__ = ["MAX_PAGE", "UiApp", "UiConfig"]
