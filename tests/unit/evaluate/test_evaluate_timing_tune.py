"""Timing passes and percentiles; target-recall search finds the smallest setting."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from knnserve.evaluate import EvaluateConfig, exact_distances, ground_truth, recall_at_k, smallest_reaching
from knnserve.evaluate.timing import LatencyTiming, latency_summary, time_batch_interleaved, time_single
from knnserve.evaluate.tune import TuneSettings, TuneTarget, tune_index
from knnserve.evaluate.workload import holdout_split
from knnserve.index import build_index, resolve_spec, search


def test_time_batch_runs_repeats_and_returns_the_first_result() -> None:
    calls: list[int] = []
    ((timing, first),) = time_batch_interleaved([lambda: calls.append(len(calls)) or len(calls)], 50, repeats=3, max_seconds=60.0)
    assert len(timing.seconds) == 3 and len(calls) == 3 and first == 1
    assert timing.qps == pytest.approx(50 / timing.median_seconds)


def test_time_batch_stops_starting_passes_after_the_budget() -> None:
    calls: list[int] = []
    ((timing, _),) = time_batch_interleaved([lambda: calls.append(1)], 10, repeats=5, max_seconds=1e-12)
    assert len(timing.seconds) == 1 and len(calls) == 1


def test_interleaved_passes_alternate_between_systems() -> None:
    order: list[str] = []
    time_batch_interleaved([lambda: order.append("a"), lambda: order.append("b")], 1, repeats=3, max_seconds=60.0,
                           warmups=[lambda: order.append("wa"), lambda: order.append("wb")])
    assert order == ["wa", "wb", "a", "b", "a", "b", "a", "b"]


def test_time_single_warms_up_then_times_every_row() -> None:
    seen: list[int] = []
    timing = time_single(seen.append, [4, 2, 9], repeats=2, max_seconds=60.0, warmup_rows=1)
    assert seen == [4, 4, 2, 9, 4, 2, 9] and timing.latencies.size == 6 and len(timing.pass_seconds) == 2


def test_latency_percentiles_by_hand() -> None:
    # 1..100 ms: the median is 50.5 ms; numpy's linear interpolation puts p95 at 95.05 and p99 at 99.01.
    timing = LatencyTiming(queries=100, pass_seconds=(5.05,), latencies=np.arange(1, 101) / 1e3)
    summary = latency_summary(timing)
    assert summary["p50_ms"] == pytest.approx(50.5)
    assert summary["p95_ms"] == pytest.approx(95.05)
    assert summary["p99_ms"] == pytest.approx(99.01)
    assert summary["qps"] == pytest.approx(100 / 5.05)


@pytest.mark.parametrize("seed", range(20))
def test_smallest_reaching_agrees_with_a_linear_scan(seed: int) -> None:
    rng = np.random.default_rng(seed)
    curve = np.sort(rng.uniform(size=int(rng.integers(1, 300))))  # any non-decreasing recall curve on 1..n
    target = float(rng.uniform(0.2, 1.05))
    calls: list[int] = []

    def recall_of(v: int) -> float:
        calls.append(v)
        return float(curve[v - 1])

    value, seen = smallest_reaching(recall_of, target, 1, curve.size)
    reaching = np.flatnonzero(curve >= target)
    assert value == (int(reaching[0]) + 1 if reaching.size else None)
    assert len(calls) == len(set(calls)) and len(calls) <= 2 * int(np.log2(curve.size) + 2)
    assert seen == {v: float(curve[v - 1]) for v in calls}


def test_tuning_finds_the_smallest_nprobe_on_held_out_rows(fast_config: EvaluateConfig, rng: np.random.Generator) -> None:
    base = rng.normal(size=(1200, 8)).astype(np.float32)
    config = replace(fast_config, target_recall=0.9, tune_queries=100, k=5)
    spec = resolve_spec("IVF16,Flat", n=base.shape[0], d=8)
    record = tune_index(TuneTarget(spec, {"factory": spec.factory}), base, TuneSettings.of(config), cache_dir=None)

    # Independently: the same held-out split, the same index, every nprobe scanned.
    kept, held = holdout_split(base.shape[0], 100, config.seed)
    assert record.held_out_queries == 100 and record.index_rows == kept.size
    index, _ = build_index(base[kept], spec)
    truth = ground_truth(base[kept], base[held], 5, "l2", cache_dir=None)
    recalls = []
    for nprobe in range(1, 17):
        _, ids = search(index, base[held], 5, nprobe=nprobe)
        recalls.append(recall_at_k(ids, exact_distances(base[kept], base[held], ids, "l2"), truth.kth, 5))
    assert recalls[-1] == 1.0  # nprobe = nlist searches every list: exact
    smallest = next(n for n, r in enumerate(recalls, start=1) if r >= 0.9)
    assert record.reached and record.value == smallest
    assert record.recall == pytest.approx(recalls[smallest - 1])
    assert smallest == 1 or recalls[smallest - 2] < 0.9
