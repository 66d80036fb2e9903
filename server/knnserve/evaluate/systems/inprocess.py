"""Systems searched in this process: an index built with ``KNNModel.fit`` (the path ``knnserve train``
takes), a saved bundle as it is, the same model with its search kernel turned off (FAISS only), and
bare FAISS ``IndexFlat`` (standalone, or called on the same index as knnserve's exact Flat to
measure knnserve's own overhead)."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from knnserve.evaluate.config import EvaluateConfig, IndexRequest
from knnserve.evaluate.runs import BuildCost
from knnserve.evaluate.space import FeatureSpace
from knnserve.evaluate.systems.base import Answer, Description, Modes, Setting, StageClock, is_exact
from knnserve.evaluate.workload import Workload
from knnserve.index import flat_index, serialized_size
from knnserve.model import KNNModel, true_distances
from knnserve_client.wire.query import KnnQuery


def sweep_queries(kind: str, nlist: int | None, config: EvaluateConfig) -> tuple[list[KnnQuery], list[str]]:
    """The search settings of an index of this kind: its sweep (nprobe capped at nlist), else one unset query.

    Returns the settings and notes on values skipped.
    """
    sweep = config.sweep_for(kind) if kind in ("ivf", "hnsw") else None
    if sweep is None:
        return [KnnQuery()], []
    values = list(sweep.values)
    notes: list[str] = []
    if kind == "ivf":
        lists = nlist or 1
        skipped = [v for v in values if v > lists]
        values = [v for v in values if v <= lists]
        if skipped:
            notes.append(f"nprobe {', '.join(map(str, skipped))} skipped: above nlist={lists}")
    return [KnnQuery(**{sweep.parameter: v}) for v in values], notes


class IndexSystem:
    """knnserve's engine in this process: an index built from a spec, or a bundle loaded as it is.

    Parameters
    ----------
    workload, config : the data and the evaluation settings.
    request : build this index spec over the raw training rows; or
    bundle, space : evaluate this saved bundle, in its own feature space (its k-NN preprocessing).
    """

    modes = Modes()

    def __init__(
        self, workload: Workload, config: EvaluateConfig, *, request: IndexRequest | None = None,
        bundle: Path | None = None, space: str = "raw",
    ) -> None:
        if (request is None) == (bundle is None):
            raise ValueError("exactly one of request and bundle")
        self.workload = workload
        self.config = config
        self.request = request
        self.bundle = bundle
        self.space = space
        self.model: KNNModel | None = None
        self._notes: list[str] = []
        # Feature extraction inside each timed search (bundles with an extractor), reported apart.
        self.stages = StageClock()

    def open(self) -> None:
        """Build the index (or load the bundle), and its search kernel if it plans one (not timed)."""
        if self.bundle is not None:
            self.model = KNNModel.load(self.bundle)
        else:
            assert self.request is not None
            self.model = KNNModel.fit(
                self.workload.base,
                self.workload.base_labels,
                class_names=self.workload.class_names,
                index=self.request.spec,
                metric=self.config.metric,
                storage=self.request.storage,
                progress=self.config.progress,
            )
        self.model.warm_kernel()

    def _model(self) -> KNNModel:
        assert self.model is not None, "open() first"
        return self.model

    def describe(self) -> Description:
        """The index as the report shows it."""
        model = self._model()
        info = model.index_info
        facts: dict[str, Any] = {"factory": info.factory, "storage": info.storage, "kind": info.kind,
                                 "metric": info.metric, "build_params": dict(info.build_params)}
        if self.request is not None:
            label = info.factory + (f" ({self.request.storage})" if self.request.storage != "auto" else "")
            facts["spec"] = self.request.label
        else:
            name = model.manifest.name if model.manifest is not None else Path(str(self.bundle)).name
            label = f"{info.factory} [bundle {name}]"
            facts["spec"] = f"bundle {name} ({info.spec})"
        if model.nlist is not None:
            facts["nlist"] = model.nlist
        if model.extractor is not None:
            facts["features"] = model.extractor.record.source
            facts["extractor_bytes"] = len(model.extractor.onnx)
        plan = model.kernel_plan
        facts["kernel"] = plan.name
        notes = tuple(self._notes)
        if plan.active:
            label += f" [{plan.name}]"
            notes += (f"search kernel {plan.describe()}",)
        return Description(
            label=label,
            system="knnserve",
            transport="in-process",
            index=facts,
            exact=is_exact(info.factory, str(model.input_dtype), model.preprocessor is not None or model.extractor is not None),
            build=BuildCost(info.train_seconds, info.add_seconds, info.serialized_bytes),
            notes=notes,
            space=self.space,
        )

    def settings(self) -> list[Setting]:
        """The sweep of the index's kind, or its default search effort; resolved once here, not per call."""
        model = self._model()
        queries, self._notes = sweep_queries(model.index_info.kind, model.nlist, self.config)
        return [Setting(model.resolve(query.replace(k=self.config.search_k))) for query in queries]

    def prepare(self, queries: np.ndarray) -> np.ndarray:
        """Validated float32 rows (the model's ``prepare``)."""
        return self._model().prepare(queries)

    def search(self, rows: np.ndarray, setting: Setting) -> Answer:
        """``KNNModel.search`` at the setting's (resolved) query; with an extractor, its part is clocked apart.

        The steps are those of ``KNNModel.search`` (extract, preprocess, FAISS), called one by one so
        the extraction's share of each call can be recorded.
        """
        model = self._model()
        if model.extractor is None:
            return model.search(rows, setting.query)
        started = time.perf_counter()
        features = model.embed(rows)
        self.stages.timed(rows.shape[0], started)
        vectors = features if model.preprocessor is None else model.preprocessor.transform(features)
        return model.search_vectors(vectors, setting.query)

    def finish(self, answer: Answer) -> Answer:
        """Distances are already on the true scale."""
        return answer

    def close(self) -> None:
        """Drop the index."""
        self.model = None


class SpaceIndexSystem(IndexSystem):
    """knnserve's engine over a feature space's vectors (a bundle's embeddings), built from an index spec.

    The peers search those vectors as they are; so does this system: the embeddings are computed once,
    untimed, for both, and what is timed is the search alone (a bundle's own rows time the extractor too).
    """

    def __init__(self, workload: Workload, config: EvaluateConfig, request: IndexRequest, space: FeatureSpace) -> None:
        super().__init__(workload, config, request=request, space=space.key)
        self.feature_space = space

    def open(self) -> None:
        """Build the index over the space's base vectors, with the space's metric (not timed)."""
        assert self.request is not None
        self.model = KNNModel.fit(
            self.feature_space.base, self.workload.base_labels, class_names=self.workload.class_names,
            index=self.request.spec, metric=self.feature_space.metric, storage=self.request.storage,
            progress=self.config.progress,
        )
        self.model.warm_kernel()

    def describe(self) -> Description:
        """The index, labelled with its space."""
        described = super().describe()
        return replace(described, label=f"{described.label} [{self.space}]",
                       notes=described.notes + (f"built over {self.feature_space.description} (vectors computed once, "
                                                "untimed, as the peers get them)",))

    def prepare(self, queries: np.ndarray) -> np.ndarray:
        """The space's query rows (row i is query i), validated by the model."""
        assert queries.shape[0] == self.feature_space.queries.shape[0]
        return self._model().prepare(self.feature_space.queries)


class FaissPath:
    """The model an :class:`IndexSystem` built, searched by FAISS alone (``kernel="faiss"``): the kernel's yardstick.

    A twin of that system: opened after it, it shares its index, runs each of its settings, and
    the runner interleaves their passes, so the kernel and FAISS rows come from the same moments.
    """

    modes = Modes()
    follows_settings = True

    def __init__(self, twin: IndexSystem) -> None:
        self.twin = twin
        self.model: KNNModel | None = None

    def open(self) -> None:
        """Take the twin's model with its kernel turned off."""
        assert self.twin.model is not None, "open the twin first"
        self.model = self.twin.model.with_kernel("faiss")

    def describe(self) -> Description:
        """The twin's description, relabelled as the FAISS search path."""
        twin = self.twin.describe()
        label = twin.label.rsplit(" [", 1)[0] + " [faiss]"
        return replace(twin, label=label, index={**(twin.index or {}), "kernel": "faiss"},
                       notes=(f"the same index as `{twin.label}`, searched by FAISS only (kernel turned off); "
                              "passes alternate with it",))

    def settings(self) -> list[Setting]:
        """The twin's settings (the runner passes them)."""
        return self.twin.settings()

    def prepare(self, queries: np.ndarray) -> np.ndarray:
        """The model's prepared rows, as the twin's."""
        assert self.model is not None
        return self.model.prepare(queries)

    def search(self, rows: np.ndarray, setting: Setting) -> Answer:
        """``KNNModel.search`` with the kernel off."""
        assert self.model is not None
        return self.model.search(rows, setting.query)

    def finish(self, answer: Answer) -> Answer:
        """Distances are already on the true scale."""
        return answer

    def close(self) -> None:
        """Drop the reference (the twin owns the index)."""
        self.model = None


class FaissFlat:
    """Bare ``faiss.IndexFlat`` search: no validation, no knnserve code; the yardstick of knnserve's overhead.

    With ``twin``, it searches the very FAISS index a knnserve float32 Flat system built, on the same
    prepared rows, and the runner interleaves their passes and queries; without, it builds its own.
    """

    modes = Modes()

    def __init__(self, workload: Workload, config: EvaluateConfig, *, twin: IndexSystem | None = None) -> None:
        self.workload = workload
        self.config = config
        self.twin = twin
        self.index: Any = None
        self._build: BuildCost | None = None

    def open(self) -> None:
        """Build the IndexFlat (standalone) or take the twin's index."""
        if self.twin is not None:
            assert self.twin.model is not None, "open the twin first"
            self.index = self.twin.model.index
            return
        import time

        started = time.perf_counter()
        self.index = flat_index(self.workload.base, self.config.metric)
        self._build = BuildCost(0.0, time.perf_counter() - started, serialized_size(self.index))

    def describe(self) -> Description:
        """Bare faiss, standalone or on the twin's index."""
        metric = self.config.metric
        if self.twin is not None:
            twin = self.twin.describe()
            return Description(
                label="bare faiss IndexFlat.search (same index)",
                system="faiss",
                transport="in-process",
                index={**(twin.index or {}), "spec": "faiss index.search()", "kernel": "faiss"},
                exact=True,
                notes=("index.search() called directly on the FAISS index knnserve built (its size and build time are "
                       f"on that run), on the same float32 rows; its passes and queries alternate with `{twin.label}`",),
            )
        return Description(
            label=f"bare faiss IndexFlat{'L2' if metric == 'l2' else ''} (float32)",
            system="faiss",
            transport="in-process",
            index={"spec": "faiss.IndexFlat", "factory": "Flat", "storage": "float32", "kind": "flat", "metric": metric,
                   "kernel": "faiss"},
            exact=True,
            build=self._build,
            notes=("index.search() called directly on float32 rows: no validation, no knnserve code",),
        )

    def settings(self) -> list[Setting]:
        """One setting: exhaustive search."""
        return [Setting()]

    def prepare(self, queries: np.ndarray) -> np.ndarray:
        """float32 rows, as FAISS takes them (the twin's prepared rows are the same)."""
        return np.ascontiguousarray(queries, dtype=np.float32)

    def search(self, rows: np.ndarray, setting: Setting) -> Answer:
        """``index.search`` and nothing else."""
        return self.index.search(rows, self.config.search_k)

    def finish(self, answer: Answer) -> Answer:
        """FAISS's squared L2 to Euclidean, after timing."""
        assert isinstance(answer, tuple)
        distances, ids = answer
        return true_distances(distances, self.config.metric), ids

    def close(self) -> None:
        """Drop the index (the twin's stays with the twin)."""
        self.index = None


__all__ = ["FaissFlat", "FaissPath", "IndexSystem", "SpaceIndexSystem", "sweep_queries"]
