"""Engine choices: options of one engine refused with another, Ray sizing said and checked up front, light imports."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from batch_helpers import Tiny, table
from knnserve.batch.engines.ray_data import ACTOR_BASE_BYTES, RayEngine, runs
from knnserve.batch.rows import RowSpec
from knnserve.batch.spec import ModelFacts
from knnserve.errors import KnnServeError
from knnserve_client.wire.query import KnnQuery


@pytest.mark.parametrize(("args", "message"), [
    (("--engine", "ray", "--server", "h:1"), "argument --engine: ray and --server are two different engines"),
    (("--ray-address", "auto"), "argument --ray-address: only with --engine ray"),
    (("--actors", "3"), "argument --actors: only with --engine ray"),
    (("--in-flight", "3"), "argument --in-flight: only with --server"),
    (("--server", "h:1", "--threads", "2"), "argument --threads: not with --server"),
])
def test_options_of_another_engine_are_refused(args: tuple[str, ...], message: str, tiny: Tiny, tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    status, _, stderr = cli("--input", tmp_path, "--out", tmp_path / "out", "--model", tiny.bundle, *args)
    assert status == 2 and stderr.count("\n") == 1 and message in stderr, stderr


class FakeRay:
    """What RayEngine._size reads from Ray: cluster CPUs and the nodes' memory."""

    def __init__(self, cpus: float, node_memory: list[float]) -> None:
        self.cpus = cpus
        self.node_memory = node_memory

    def cluster_resources(self) -> dict[str, float]:
        return {"CPU": self.cpus}

    def nodes(self) -> list[dict[str, object]]:
        return [{"Alive": True, "Resources": {"memory": m}} for m in self.node_memory]


def sized(cpus: float, actors: int, *, actor_cpus: float | None = None, bundle: int = 100 << 20,
          nodes: tuple[float, ...] = (64e9,)) -> RayEngine:
    engine = RayEngine(Path("/nonexistent"), address="cluster:6379", actors=actors, actor_cpus=actor_cpus)
    engine.facts = ModelFacts(RowSpec((6, 6), "uint8"), "m", 1, ("a",), KnnQuery(k=1), {}, bundle_bytes=bundle)
    engine._size(FakeRay(cpus, list(nodes)))
    return engine


def test_actors_get_fractional_cpus_and_leave_some_to_the_read_tasks(capsys: pytest.CaptureFixture[str]) -> None:
    engine = sized(2, 2)
    assert engine.actor_cpus == 0.5 and engine._threads == 1 and engine._read_cpus == 1.0
    err = capsys.readouterr().err
    assert "ray: 2 actors x 0.5 CPU (1 search thread(s) each); 1 of 2 CPUs left for read tasks" in err
    assert f"2 x (100.0 MiB bundle + {ACTOR_BASE_BYTES >> 20} MiB worker)" in err
    engine = sized(64, 8)
    assert engine.actor_cpus == 7.0 and engine._threads == 7 and engine._read_cpus == 1.0


def test_actors_that_would_take_every_cpu_are_refused() -> None:
    with pytest.raises(KnnServeError, match=r"leave no CPU of 2 for Ray Data's read tasks.*ray-project/ray#44687"):
        sized(2, 2, actor_cpus=1.0)
    with pytest.raises(KnnServeError, match="leave no CPU of 1"):
        sized(1, 2, actor_cpus=0.5)
    engine = sized(1, 1)  # a lone CPU is shared: half to the actor, half to the read tasks
    assert engine.actor_cpus == 0.5 and engine._read_cpus == 0.5


def test_actors_whose_copies_of_the_index_do_not_fit_are_refused() -> None:
    with pytest.raises(KnnServeError, match=r"4 actors x .* more than the .* MiB available"):
        sized(16, 4, bundle=3 << 30, nodes=(8e9, 4e9))
    with pytest.raises(KnnServeError, match="largest node"):
        sized(16, 2, bundle=5 << 30, nodes=(4e9, 4e9, 4e9))


def test_pieces_are_cut_at_the_same_shard_positions_whatever_batch_they_come_in() -> None:
    from knnserve.batch.rows import RowBatch

    def batch(start: int, n: int) -> RowBatch:
        return RowBatch(0, start, np.full(n, "s", object), np.arange(start, start + n), np.zeros((n, 2), np.uint8),
                        np.full(n, "", object))

    cuts = [(p.start, p.start + len(p)) for p in batch(0, 2500).pieces(1024)]
    assert cuts == [(0, 1024), (1024, 2048), (2048, 2500)]
    assert [(p.start, p.start + len(p)) for p in batch(1000, 1100).pieces(1024)] == [(1000, 1024), (1024, 2048), (2048, 2100)]
    assert [(p.start, p.start + len(p)) for p in batch(2048, 10).pieces(1024)] == [(2048, 2058)]


def test_runs_split_batches_into_consecutive_rows_of_one_shard() -> None:
    shards = np.array([3, 3, 3, 5, 5, 3, 3])
    positions = np.array([0, 1, 2, 0, 1, 3, 4])
    assert [(s.start, s.stop) for s in runs(shards, positions)] == [(0, 3), (3, 5), (5, 7)]


def test_serve_predict_and_the_client_import_neither_ray_nor_pyarrow_nor_pillow(tiny: Tiny, tmp_path: Path) -> None:
    """knnserve's own imports only: a bundle with a linear head loads scikit-learn, which imports pandas when it is
    installed (ray[data] installs it), and pandas 3 imports pyarrow; so this bundle is k-NN only."""
    bundle = tmp_path / "knn" / "1"
    tiny.model.with_linear(None).save(bundle, name="knn")
    np.save(tmp_path / "q.npy", tiny.queries)
    code = (
        "import sys\n"
        "from knnserve.cli import main\n"
        f"status = main(['predict', '--no-progress', '--model', {str(bundle)!r}, '--input', {str(tmp_path / 'q.npy')!r},"
        f" '--out', {str(tmp_path / 'p.csv')!r}])\n"
        "import knnserve.service.server, knnserve.cli.serve, knnserve_client\n"
        "from knnserve_client import Client\n"
        "print(status, sorted(m for m in ('ray', 'pyarrow', 'PIL') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "0 []"


def test_the_kernel_built_beside_the_job_answers_as_one_built_before_it(tiny: Tiny, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    # The local engine builds the search kernel on a helper thread while the job plans and reads; every
    # search waits for it. The job's neighbours must be those of a model whose kernel was built first.
    from knnserve.batch import JobSpec, run_job
    from knnserve.batch.engines.local import LocalEngine
    from knnserve.kernels import EXACT_INT8
    from knnserve.kernels.runtime import int8_gemm_exact
    from knnserve.model import KNNModel

    if not int8_gemm_exact():
        pytest.skip("onnxruntime's u8 x s8 GEMM saturates on this CPU: no kernel to build")
    built: list[tuple[KNNModel, str]] = []
    warm = KNNModel.warm_kernel

    def recorded(model: KNNModel) -> None:
        warm(model)
        built.append((model, threading.current_thread().name))

    monkeypatch.setattr(KNNModel, "warm_kernel", recorded)
    np.save(tmp_path / "q.npy", tiny.queries)
    spec = JobSpec(inputs=(str(tmp_path / "q.npy"),), out=tmp_path / "out", progress=False, shard_rows=100, neighbors=True,
                   query=KnnQuery(k=4))
    summary = run_job(spec, LocalEngine(tiny.bundle, threads=2))
    assert summary.errors == 0 and summary.rows == len(tiny.queries)
    [(model, thread)] = built
    assert thread.startswith("batch-kernel") and model.kernel_plan.name == EXACT_INT8
    eager = KNNModel.load(tiny.bundle)
    eager.warm_kernel()
    expected = eager.classify(tiny.queries, eager.resolve(KnnQuery(k=4)))
    result = table(tmp_path / "out")
    assert result.column("prediction").to_pylist() == expected.predictions.tolist()
    assert result.column("neighbor_ids").to_pylist() == expected.ids.tolist()
    np.testing.assert_array_equal(np.array(result.column("neighbor_distances").to_pylist(), np.float32), expected.distances)
