"""The Ray engine: Ray Data reads shards in tasks and classifies them in a pool of actors, each loading the bundle once.

The driver (this process) plans the job, commits each shard when all its rows are back, and so
keeps the same exactly-once guarantee as the local engine: Ray Data's own checkpointing is not
used (the shard commit already holds under kill -9, and one mechanism is enough). Known pitfalls,
handled here rather than rediscovered:

* actors that reserve every CPU leave none for the read tasks and the job hangs without an error
  (ray-project/ray#44687): actors get fractional CPUs, at least one CPU stays free, and the log says so;
* a dataset with fewer blocks than actors leaves actors idle: the shard list is repartitioned to one
  block per shard, and there are never more actors than shards;
* every actor holds its own copy of the index: actors x bundle size is stated before starting, and
  the job is refused when it exceeds the memory available (each actor also reserves it from Ray);
* Ray's object store lives in /dev/shm: a small one (containers default to 64 MiB) is warned about;
* since Ray 2.59 a local ``ray.init()`` turns token authentication on; joining a cluster that uses it
  needs ``RAY_AUTH_MODE=token`` and the token, which is set up here when a token is found.
"""

from __future__ import annotations

import gc
import json
import logging
import math
import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from knnserve.batch.classify import ModelClassifier, bundle_facts
from knnserve.batch.engines import Commit
from knnserve.batch.engines.errors import ClusterError
from knnserve.batch.plan import InputFile, Plan, Segment, Shard
from knnserve.batch.progress import note
from knnserve.batch.readers import SourceCache, read_shard
from knnserve.batch.results import ResultBatch
from knnserve.batch.rows import RowBatch, RowSpec
from knnserve.batch.spec import JobSpec, ModelFacts
from knnserve.errors import KnnServeError
from knnserve.index import set_num_threads
from knnserve.machine import usable_cores
from knnserve.model import KNNModel
from knnserve_client.wire.query import KnnQuery

log = logging.getLogger(__name__)

DEFAULT_ACTORS = 2
# One CPU in eight, and at least one CPU (half of a lone one), is left to Ray Data's read tasks.
READ_CPU_FRACTION = 1 / 8
SMALL_SHM_BYTES = 1 << 30
# What a classifier actor holds besides the index: the Python worker with numpy, faiss and pyarrow (Ray
# measured 116 MiB here for an actor with a tiny bundle).
ACTOR_BASE_BYTES = 256 << 20
GIB = float(1 << 30)
MIB = float(1 << 20)


def import_ray() -> Any:
    """The ray module with Ray Data loaded, or a clear error naming the extra that installs it."""
    try:
        import ray
        import ray.data  # noqa: F401 - loads ray.data
    except ImportError:
        raise KnnServeError("--engine ray needs Ray Data: pip install 'knnserve[ray]'") from None
    return ray


def token_available() -> bool:
    """True when a Ray auth token can be found (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH, or ~/.ray/auth_token)."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return True
    path = os.environ.get("RAY_AUTH_TOKEN_PATH") or str(Path.home() / ".ray" / "auth_token")
    return Path(path).is_file()


def mem_available() -> float:
    """Bytes of memory available on this machine (MemAvailable), or infinity where /proc/meminfo is missing."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return float(line.split()[1]) * 1024
    except OSError:
        pass
    return math.inf


def shm_bytes() -> float:
    """Size of /dev/shm, where Ray keeps its object store (infinity when there is none to measure)."""
    try:
        stat = os.statvfs("/dev/shm")
    except OSError:
        return math.inf
    return float(stat.f_blocks * stat.f_frsize)


def shard_descriptor(shard: Shard, files: Sequence[InputFile]) -> str:
    """A shard with the input files it reads, self-contained (a read task needs nothing else)."""
    used = sorted({s.file for s in shard.segments})
    local = {number: i for i, number in enumerate(used)}
    segments = [[local[s.file], s.start, s.stop] for s in shard.segments]
    return json.dumps({"number": shard.number, "rows": shard.rows, "segments": segments, "files": [asdict(files[i]) for i in used]})


_CACHES: dict[RowSpec, SourceCache] = {}


def read_task(batch: dict[str, np.ndarray], input_shape: tuple[int, ...], input_dtype: str) -> dict[str, np.ndarray]:
    """Ray Data task: read the shards a batch of descriptors names (each worker keeps its recent files open)."""
    spec = RowSpec(tuple(input_shape), input_dtype)
    cache = _CACHES.setdefault(spec, SourceCache(spec))
    parts = []
    for text in batch["shard"]:
        data = json.loads(str(text))
        shard = Shard(data["number"], tuple(Segment(*s) for s in data["segments"]), data["rows"])
        parts.append(read_shard(shard, [InputFile(**f) for f in data["files"]], cache))
    columns: dict[str, list[np.ndarray]] = {"_shard": [], "_position": [], "source": [], "index": [], "error": [], "x": []}
    for rows in parts:
        n = len(rows)
        columns["_shard"].append(np.full(n, rows.shard, dtype=np.int64))
        columns["_position"].append(np.arange(n, dtype=np.int64))
        columns["source"].append(rows.sources.astype(str))
        columns["index"].append(rows.indices)
        columns["error"].append(rows.errors.astype(str))
        columns["x"].append(rows.x)
    return {name: np.concatenate(values) for name, values in columns.items()}


def runs(shards: np.ndarray, positions: np.ndarray) -> list[slice]:
    """Stretches of a batch holding consecutive rows of one shard (Ray may hand over rows of several)."""
    breaks = np.flatnonzero((np.diff(shards) != 0) | (np.diff(positions) != 1)) + 1
    edges = [0, *breaks.tolist(), len(shards)]
    return [slice(a, b) for a, b in zip(edges[:-1], edges[1:]) if b > a]


class RayClassifier:
    """Ray Data actor: loads the bundle once, then classifies whatever batches of shard rows it is given."""

    def __init__(self, bundle: str, query: dict[str, Any], heads: tuple[str, ...], neighbors: bool, threads: int) -> None:
        self.classifier = ModelClassifier(KNNModel.load(bundle), KnnQuery(**query), tuple(heads), neighbors=neighbors)
        # As in the local engine: pieces searched by `threads` single-threaded FAISS searches at once.
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="batch-search", initializer=set_num_threads, initargs=(1,))

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Classify every run of consecutive shard rows in the batch; return the results as plain columns."""
        out: list[dict[str, np.ndarray]] = []
        for part in runs(batch["_shard"], batch["_position"]):
            rows = RowBatch(int(batch["_shard"][part][0]), int(batch["_position"][part][0]), batch["source"][part].astype(object),
                            batch["index"][part], np.asarray(batch["x"][part]), batch["error"][part].astype(object))
            columns = self.classifier.classify(rows, self.pool).to_columns()
            columns["source"] = columns["source"].astype(str)
            columns["error"] = columns["error"].astype(str)
            out.append(columns)
        return {name: np.concatenate([c[name] for c in out]) for name in out[0]}


class RayEngine:
    """Classify on Ray Data: read tasks and a pool of classifier actors on a local Ray or an existing cluster."""

    name = "ray"

    def __init__(
        self,
        bundle: Path,
        *,
        address: str | None = None,
        actors: int | None = None,
        actor_cpus: float | None = None,
        init_options: dict[str, Any] | None = None,
    ) -> None:
        self.bundle = Path(bundle).resolve()
        self.address = address
        self.actors = actors or DEFAULT_ACTORS
        self.actor_cpus = actor_cpus
        self.init_options = init_options or {}
        self.facts: ModelFacts | None = None
        self._spec: JobSpec | None = None
        self._started_ray = False
        self._startup_s = 0.0
        self._threads = 1
        self._read_cpus = 1.0

    # -- start-up -------------------------------------------------------------------------------

    def open(self, spec: JobSpec) -> ModelFacts:
        """Check the bundle and the query here (one load, dropped again), then start or join Ray and size the actors."""
        if self.address is not None and "RAY_AUTH_MODE" not in os.environ and token_available():
            # Ray >= 2.59 clusters started with a token require it, and a client sends it only with RAY_AUTH_MODE=token,
            # which Ray reads when it is imported: set it first.
            os.environ["RAY_AUTH_MODE"] = "token"
            note("ray: a Ray auth token was found; joining with RAY_AUTH_MODE=token")
        ray = import_ray()
        model = KNNModel.load(self.bundle)
        classifier = ModelClassifier(model, spec.query, spec.heads, neighbors=spec.neighbors)
        self.facts = bundle_facts(self.bundle, model, classifier.query)
        self._spec = spec
        del classifier, model
        gc.collect()  # the driver keeps no copy of the index: the actors load their own
        self._start(ray)
        return self.facts

    def _start(self, ray: Any) -> None:
        started = time.perf_counter()
        if ray.is_initialized():
            note("ray: using the Ray instance this process already started")
        elif self.address is not None:
            try:
                ray.init(address=self.address, log_to_driver=False, logging_level=logging.WARNING, **self.init_options)
            except ConnectionError as error:
                raise ClusterError(
                    f"could not join the Ray cluster at {self.address} ({error}). If it uses token authentication "
                    "(Ray >= 2.59 logs 'Unauthenticated ... InvalidAuthToken'), set RAY_AUTH_MODE=token and RAY_AUTH_TOKEN "
                    "or RAY_AUTH_TOKEN_PATH (or put the token in ~/.ray/auth_token)"
                ) from error
        else:
            if shm_bytes() < SMALL_SHM_BYTES:
                note(f"ray: warning: /dev/shm holds only {shm_bytes() / MIB:.0f} MiB; Ray's object store falls back to "
                     "slow disk (in a container, start it with --shm-size=2g or more)")
            ray.init(num_cpus=usable_cores(), include_dashboard=False, log_to_driver=False,
                     logging_level=logging.WARNING, **self.init_options)
            self._started_ray = True
        self._startup_s = time.perf_counter() - started
        where = "started a local Ray instance" if self._started_ray else f"joined the Ray cluster at {self.address or 'this process'}"
        note(f"ray: {where} in {self._startup_s:.1f} s ({ray.cluster_resources().get('CPU', 0):g} CPUs)")
        self._size(ray)

    def _size(self, ray: Any) -> None:
        """CPUs and search threads per actor, and the memory check; all said before any actor starts."""
        assert self.facts is not None
        total = float(ray.cluster_resources().get("CPU", 0))
        reserve = max(min(1.0, total / 2), total * READ_CPU_FRACTION)  # one CPU (half of a single one) at least
        per_actor = self.actor_cpus or math.floor((total - reserve) / self.actors * 20) / 20
        if per_actor <= 0 or self.actors * per_actor > total - min(1.0, reserve) + 1e-9:
            raise KnnServeError(
                f"ray: {self.actors} actors x {per_actor:g} CPUs leave no CPU of {total:g} for Ray Data's read tasks, "
                "and the job would hang without an error (ray-project/ray#44687); use fewer --actors or a smaller --actor-cpus"
            )
        self.actor_cpus = per_actor
        self._threads = max(1, int(per_actor))
        self._read_cpus = min(1.0, total - self.actors * per_actor)
        note(f"ray: {self.actors} actors x {per_actor:g} CPU ({self._threads} search thread(s) each); "
             f"{total - self.actors * per_actor:g} of {total:g} CPUs left for read tasks ({self._read_cpus:g} CPU each)")
        per_actor_bytes = self.facts.bundle_bytes + ACTOR_BASE_BYTES
        need = self.actors * per_actor_bytes
        if self._started_ray:
            available, largest = mem_available(), mem_available()
        else:
            memories = [float(node["Resources"].get("memory", 0)) for node in ray.nodes() if node.get("Alive")]
            available, largest = sum(memories), max(memories, default=0.0)
        note(f"ray: every actor loads its own copy of the bundle: {self.actors} x ({self.facts.bundle_bytes / MIB:.1f} MiB bundle "
             f"+ {ACTOR_BASE_BYTES / MIB:.0f} MiB worker) = {need / MIB:.1f} MiB, of {available / GIB:.1f} GiB available")
        if need > available or per_actor_bytes > largest:
            raise KnnServeError(
                f"ray: {self.actors} actors x {per_actor_bytes / MIB:.1f} MiB (bundle and worker) = {need / MIB:.1f} MiB, more than "
                f"the {available / MIB:.1f} MiB available (largest node {largest / MIB:.1f} MiB); use fewer --actors or a smaller index"
            )
        if need > 0.8 * available:
            note("ray: warning: the actors' copies of the bundle take more than 80% of the available memory")

    # -- the job --------------------------------------------------------------------------------

    def run(self, plan: Plan, shards: Sequence[Shard], commit: Commit) -> None:
        """Shard list -> read tasks -> classifier actors -> this process, which commits each shard once it is whole."""
        if not shards:
            return
        ray = import_ray()
        assert self.facts is not None and self._spec is not None
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # the job's own bar counts committed rows
        # Ray Data logs every execution at INFO; show that only when knnserve's own log level asks for it.
        logging.getLogger("ray.data").setLevel(max(logging.getLogger().getEffectiveLevel(), logging.INFO))
        logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)  # "progress bars disabled": on purpose
        actors = min(self.actors, len(shards))
        if actors < self.actors:
            note(f"ray: {len(shards)} shard(s) to do: using {actors} actor(s)")
        items = [{"shard": shard_descriptor(shard, plan.files)} for shard in shards]
        # One block per shard: never fewer blocks than actors, or some actors would sit idle.
        dataset = ray.data.from_items(items).repartition(len(items))
        dataset = dataset.map_batches(
            read_task, batch_size=1, num_cpus=self._read_cpus,
            fn_kwargs={"input_shape": self.facts.row_spec.input_shape, "input_dtype": self.facts.row_spec.input_dtype},
        )
        dataset = dataset.map_batches(
            RayClassifier, batch_size=None, compute=ray.data.ActorPoolStrategy(size=actors),
            num_cpus=self.actor_cpus, memory=self.facts.bundle_bytes + ACTOR_BASE_BYTES,
            fn_constructor_kwargs={"bundle": str(self.bundle), "query": self.facts.query.set_fields(),
                                   "heads": self._spec.heads, "neighbors": self._spec.neighbors, "threads": self._threads},
        )
        expected = {shard.number: shard.rows for shard in shards}
        waiting: dict[int, list[ResultBatch]] = {}
        for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
            for part in runs(batch["_shard"], batch["_position"]):
                piece = ResultBatch.from_columns({name: values[part] for name, values in batch.items()})
                pieces = waiting.setdefault(piece.shard, [])
                pieces.append(piece)
                if sum(len(p) for p in pieces) == expected[piece.shard]:
                    commit(ResultBatch.join(waiting.pop(piece.shard)))
        if waiting:
            raise KnnServeError(f"ray: shards {sorted(waiting)} came back incomplete")

    def close(self) -> None:
        """Shut down the Ray instance this engine started (never one it joined)."""
        if self._started_ray:
            import_ray().shutdown()
            self._started_ray = False

    def report(self) -> dict[str, float | int | str]:
        """Ray's start-up time and the actor sizing."""
        return {"ray_startup_s": round(self._startup_s, 3), "actors": self.actors, "actor_cpus": self.actor_cpus or 0.0}


__all__ = ["RayClassifier", "RayEngine", "import_ray", "read_task", "runs", "shard_descriptor"]
