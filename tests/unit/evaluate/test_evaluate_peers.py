"""Each peer library's adapter, in its child process, on tiny seeded data: at its most exhaustive setting
it returns exact search's ids and distances; every documented setting runs; the child never imports faiss."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from knnserve.evaluate import EvaluateConfig
from knnserve.evaluate.runner import run_system
from knnserve.evaluate.space import FeatureSpace
from knnserve.evaluate.systems.base import Setting
from knnserve.evaluate.systems.peer_catalog import PEERS, PeerPlan, installed, peer_plan
from knnserve.evaluate.systems.peers import PEER_SCRIPT, PeerSystem
from knnserve.evaluate.workload import Workload

N, D, NQ, K = 300, 12, 25, 10

# pynndescent compiles its numba kernels on first use in a fresh environment (about 4 minutes on a
# busy 2-core machine; cached on disk afterwards, seconds): more than the suite's default 300 s.
pytestmark = pytest.mark.timeout(900)

# Settings that make each library search exhaustively on 300 rows (or, for the graphs, with a
# candidate list of every row): their answers must be exact search's.
EXHAUSTIVE: dict[str, tuple[dict[str, object], dict[str, object]]] = {
    "hnswlib": ({"M": 16, "ef_construction": 200}, {"ef": N}),
    "voyager": ({"M": 12, "ef_construction": 200}, {"ef": N}),
    "usearch": ({"connectivity": 16, "expansion_add": 128}, {"expansion_search": N}),
    "scann": ({"num_leaves": 4, "dims_per_block": 2, "reorder": N}, {"leaves_to_search": 4, "reorder": N}),
    "annoy": ({"n_trees": 10}, {"search_k": 100 * N}),
    "pynndescent": ({"n_neighbors": 30}, {"epsilon": 0.5}),
}
SINGLE_THREAD_BUILD = frozenset({"usearch"})


def _space() -> tuple[FeatureSpace, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(11)
    base = rng.normal(size=(N, D)).astype(np.float32)
    queries = rng.normal(size=(NQ, D)).astype(np.float32)
    squared = ((queries[:, None, :].astype(np.float64) - base[None, :, :]) ** 2).sum(-1)
    ids = np.argsort(squared, axis=1, kind="stable")[:, :K]
    return FeatureSpace("raw", "tiny", base, queries, "l2"), ids, np.sqrt(np.take_along_axis(squared, ids, 1))


def _workload(space: FeatureSpace) -> Workload:
    n, nq = space.base.shape[0], space.queries.shape[0]
    return Workload("tiny", space.base, np.arange(n) % 3, space.queries, np.arange(nq) % 3, np.arange(nq),
                    np.arange(nq), ("a", "b", "c"))


@pytest.mark.parametrize("library", PEERS)
def test_peer_at_its_most_exhaustive_setting_is_exact_search(library: str, fast_config: EvaluateConfig) -> None:
    if not installed(library):
        pytest.skip(f"{library} is not installed (pip install 'knnserve[peers]')")
    space, true_ids, true_distances = _space()
    build, setting = EXHAUSTIVE[library]
    plan = PeerPlan(library, dict(build), (dict(setting),), "test")
    # USearch's graph built on two threads is not the same from run to run, and one run in three left a
    # row's nearest neighbour unreachable even at expansion_search = N: its exhaustive check builds on one.
    threads = 1 if library in SINGLE_THREAD_BUILD else 2
    config = replace(fast_config, threads=threads, mode="both", single_queries=5)
    (run,) = run_system(PeerSystem(space, config, plan), _workload(space), config)
    assert run.system == library and run.transport == "child-process" and run.space == "raw"
    assert run.ids is not None and run.distances is not None and run.ids.shape == (NQ, K)
    np.testing.assert_array_equal(run.ids, true_ids)
    np.testing.assert_allclose(run.distances, true_distances, rtol=1e-4, atol=1e-4)
    assert run.batch is not None and run.single is not None and run.single.queries == 5
    assert run.build is not None and run.build.add_seconds > 0 and run.build.bytes > 0
    assert run.params == {key: value for key, value in setting.items()}


@pytest.mark.parametrize("library", PEERS)
def test_every_documented_setting_runs_and_single_mode_uses_one_thread(library: str, fast_config: EvaluateConfig) -> None:
    if not installed(library):
        pytest.skip(f"{library} is not installed (pip install 'knnserve[peers]')")
    space, true_ids, _ = _space()
    plan = peer_plan(library, N, D)
    system = PeerSystem(space, replace(fast_config, threads=2), plan)
    system.open()
    try:
        settings = system.settings()
        assert [dict(s.extra) for s in settings] == list(plan.settings)
        rows = np.arange(NQ)
        for setting in settings:
            answer = system.search(rows, setting)
            assert isinstance(answer, tuple)
            distances, ids = answer
            # nearest first; a library finding fewer than k (ScaNN's few leaves on tiny data) pads with -1 / inf
            found = np.isfinite(distances)
            assert ids.shape == (NQ, K) and np.array_equal(ids >= 0, found)
            assert np.all(np.diff(np.where(found, distances, 1e30), axis=1) >= -1e-5)
        # the most exhaustive setting of the sweep finds most of the true neighbours even on tiny data
        distances, ids = system.search(rows, settings[-1])  # type: ignore[misc]
        overlap = np.mean([len(set(a) & set(b)) / K for a, b in zip(ids, true_ids)])
        assert overlap > 0.8
        assert "never imports faiss" in system.describe().notes[0]
    finally:
        system.close()


def test_setting_params_carry_a_peers_own_knobs() -> None:
    setting = Setting(extra=(("leaves_to_search", 8), ("reorder", 40)))
    assert setting.params == {"leaves_to_search": 8, "reorder": 40}
    assert setting.label == "leaves_to_search=8 reorder=40"


def test_peer_worker_refuses_to_run_beside_faiss(tmp_path: Path) -> None:
    # The child asserts faiss is absent; run its module with faiss imported first to see the guard fire.
    code = f"import faiss, runpy, sys; sys.argv=['w', {str(tmp_path)!r}]; runpy.run_path({str(PEER_SCRIPT)!r}, run_name='__main__')"
    space, _, _ = _space()
    np.save(tmp_path / "base.npy", space.base)
    np.save(tmp_path / "queries.npy", space.queries)
    library = next((lib for lib in ("hnswlib", "annoy", "voyager") if installed(lib)), None)
    if library is None:
        pytest.skip("no peer library installed")
    build = EXHAUSTIVE[library][0]
    import json

    (tmp_path / "job.json").write_text(json.dumps({"library": library, "build": build, "settings": [], "k": K, "threads": 1}))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode != 0 and "must not import faiss" in done.stderr


def test_peer_plans_follow_the_documentation() -> None:
    assert peer_plan("hnswlib", 60000, 784).build == {"M": 16, "ef_construction": 200}
    scann = peer_plan("scann", 60000, 784)
    assert scann.build["num_leaves"] == 245  # sqrt(60000)
    assert {s["leaves_to_search"] for s in scann.settings} == {2, 4, 8, 16, 32, 64}
    assert all(0.0 <= s["epsilon"] <= 0.3 for s in peer_plan("pynndescent", 60000, 784).settings)
    with pytest.raises(Exception, match="peer library"):
        peer_plan("faiss", 10, 2)


def test_evaluate_runs_peers_in_every_space_beside_knnserve(fast_config: EvaluateConfig, tmp_path: Path) -> None:
    """--baseline hnswlib --baseline annoy with a PCA bundle: peers and knnserve's specs in both spaces, tables, plots."""
    libraries = [lib for lib in ("hnswlib", "annoy") if installed(lib)]
    if not libraries:
        pytest.skip("neither hnswlib nor annoy is installed")
    from knnserve.bundle import DatasetInfo
    from knnserve.data import load_dataset
    from knnserve.evaluate import IndexRequest, parse_sweep, run_evaluate
    from knnserve.evaluate.frontier import ratio_lines
    from knnserve.features.preprocess import PreprocessConfig
    from knnserve.model import KNNModel

    dataset = load_dataset(data_dir=fast_config.data_dir)
    model = KNNModel.fit(dataset.x_train, dataset.y_train, class_names=dataset.class_names, index="flat",
                         preprocess=PreprocessConfig(pca_dim=12))
    model.save(tmp_path / "pca", name="pca", dataset=DatasetInfo(name=dataset.name, checksum=dataset.checksum,
                                                                  n_train=dataset.x_train.shape[0]))
    config = replace(fast_config, indexes=(IndexRequest("hnsw"),), bundles=(tmp_path / "pca",), mode="both",
                     sweeps=(parse_sweep("efSearch=16,64"),), baselines=tuple(libraries), threads=2)
    results = run_evaluate(config)
    assert results.settings["peers_not_installed"] == []
    for library in libraries:
        runs = [r for r in results.runs if r.system == library]
        assert {r.space for r in runs} == {"raw", "bundle:pca"}
        assert all(r.recall is not None and r.accuracy is not None and r.batch and r.single for r in runs)
        assert all(r.memory is not None and r.build is not None for r in runs)
    # knnserve's hnsw spec also built over the bundle's 12-d vectors, and scored there
    ours = [r for r in results.runs if r.system == "knnserve" and r.space == "bundle:pca" and "[bundle:pca]" in r.label]
    assert ours and all(r.memory is not None and r.memory.bytes_per_vector < 784 for r in ours)  # 12-d, not pixels
    report = (config.out / "report.md").read_text()
    assert "ann-benchmarks protocol" in report and "best QPS at recall ≥ 0.95" in report
    for space in ("raw", "bundle-pca"):
        for mode in ("batch", "single"):
            assert (config.out / f"peers-{space}-{mode}.png").stat().st_size > 0
    assert any("knnserve" in line and "x" in line for line in ratio_lines(results))


def test_cli_baseline_names_a_peer_and_prints_the_ratios(pixel_npz: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    if not installed("hnswlib"):
        pytest.skip("hnswlib is not installed")
    from knnserve.cli import main

    out = tmp_path / "cli-peers"
    assert main(["evaluate", "--data-dir", str(pixel_npz), "--index", "hnsw", "--sweep", "efSearch=16,64",
                 "--baseline", "hnswlib", "--mode", "batch", "--repeats", "1", "--threads", "1", "--no-cache",
                 "--no-progress", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "raw batch recall>=0.90: knnserve" in printed and "hnswlib" in printed
    assert (out / "peers-raw-batch.png").is_file()


def test_peers_are_compared_under_l2_only(fast_config: EvaluateConfig) -> None:
    from knnserve.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="l2 with peer baselines"):
        replace(fast_config, metric="l1", baselines=("hnswlib",))
    assert replace(fast_config, baselines=("faiss", "scann", "annoy")).peers == ("scann", "annoy")


def test_a_peer_that_is_not_installed_is_reported_not_dropped(fast_config: EvaluateConfig, monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    from knnserve.evaluate import pipeline, run_evaluate
    from knnserve.evaluate.report import summary_lines

    monkeypatch.setattr(pipeline, "installed", lambda library: False)  # as on a Python where scann has no wheel
    config = replace(fast_config, baselines=("scann",), mode="batch")
    results = run_evaluate(config)
    assert results.settings["peers_not_installed"] == ["scann"]
    assert not any(r.system == "scann" for r in results.runs)
    assert "not installed here" in (config.out / "report.md").read_text()
    assert "not installed, not run: scann" in summary_lines(results, config.out)
