"""The one runner loop: open a system, time each of its settings through ``measure.py``, record what it
answered (``RunOutput``), close it. A system may bring twins that are timed interleaved with it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from knnserve.evaluate.config import EvaluateConfig
from knnserve.evaluate.measure import Measurement, measure_calls
from knnserve.evaluate.runs import RunOutput
from knnserve.evaluate.systems.base import Answer, Description, Setting, System
from knnserve.evaluate.workload import Workload


def _output(described: Description, setting: Setting, measured: Measurement, answer: Answer, rows: np.ndarray,
            n_queries: int, extraction: dict[str, Any] | None = None) -> RunOutput:
    ids = distances = predictions = prediction_rows = None
    if isinstance(answer, tuple):
        distances, ids = (np.asarray(part) for part in answer)
    elif answer is not None:
        predictions, prediction_rows = np.asarray(answer, dtype=np.int64), rows
    extrapolated = None
    if prediction_rows is not None and prediction_rows.size < n_queries and measured.single is not None:
        extrapolated = float(measured.single.latencies.mean() * n_queries)
    return RunOutput(
        label=f"{described.label} {setting.label}".strip(),
        system=described.system,
        transport=described.transport,
        index=described.index,
        params=setting.params,
        exact=described.exact,
        build=described.build,
        ids=ids,
        distances=distances,
        predictions=predictions,
        prediction_rows=prediction_rows,
        batch=measured.batch,
        single=measured.single,
        extrapolated_seconds=extrapolated,
        notes=described.notes,
        space=described.space,
        extraction=extraction,
    )


def _twin_setting(twin: System, setting: Setting) -> Setting:
    # A twin that follows its system's settings (the same model on another search path) runs each
    # of them; any other twin (bare faiss) has one setting, exhaustive search.
    return setting if getattr(twin, "follows_settings", False) else Setting()


def run_system(system: System, workload: Workload, config: EvaluateConfig, *, twins: tuple[System, ...] = (),
               bar: tqdm | None = None) -> Iterator[RunOutput]:
    """Every setting of ``system`` (and, interleaved with each, its twins' setting), as run records.

    Twins are opened after ``system`` (they may share its index) and closed before it.
    """
    opened: list[System] = []
    try:
        for member in (system, *twins):
            member.open()
            opened.append(member)
        settings = system.settings()
        described = system.describe()
        members = [(system, described)] + [(twin, twin.describe()) for twin in twins]
        n = workload.queries.shape[0]
        prepared = [member.prepare(workload.queries) for member, _ in members]
        subsampled = system.modes.subsampled
        # A subsampled system (the naive loop) is only ever timed one query a call, whatever the mode.
        modes = ("single",) if subsampled else tuple(m for m in config.timed_modes if getattr(system.modes, m))
        single_n = system.modes.single_queries or (config.exact_single_queries if described.exact else config.single_queries)
        single_rows = workload.single_rows(single_n)
        for setting in settings:
            label = f"{described.label} {setting.label}".strip()
            if bar is not None:
                bar.set_postfix_str(label)
            member_settings = [setting] + [_twin_setting(twin, setting) for twin in twins]
            clocks = [getattr(member, "stages", None) for member, _ in members]  # StageClock: extraction, apart
            for clock in clocks:
                if clock is not None:
                    clock.reset()
            calls = [
                lambda part, member=member, rows=rows, s=s: member.search(rows[part], s)
                for (member, _), rows, s in zip(members, prepared, member_settings)
            ]
            measured = measure_calls(
                calls, n, modes=modes, single_rows=single_rows, repeats=config.repeats, max_seconds=config.max_run_seconds,
                threads=config.threads, progress=config.progress, desc=label, answer_all=not subsampled,
            )
            stages = [clock.summary(n) if clock is not None else None for clock in clocks]
            outputs = []
            for (member, member_described), rows_of, measurement, member_setting, extraction in zip(
                members, prepared, measured, member_settings, stages
            ):
                if subsampled:  # answered (untimed) on the rows it was timed on, not on every query
                    answer, rows = member.search(rows_of[single_rows], member_setting), single_rows
                else:
                    answer, rows = measurement.answer, np.arange(n)
                outputs.append(_output(member_described, member_setting, measurement, member.finish(answer), rows, n,
                                       extraction))
            yield from reversed(outputs)  # the twins (the yardsticks) first, as the report reads
            if bar is not None:
                bar.update(1)
    finally:
        for member in reversed(opened):
            member.close()


def run_systems(systems: list[tuple[System, tuple[System, ...]]], workload: Workload, config: EvaluateConfig) -> list[RunOutput]:
    """Run every system with its twins in turn, one system in memory at a time."""
    runs: list[RunOutput] = []
    with tqdm(total=None, desc="runs", unit="run", disable=not config.progress) as bar:
        for system, twins in systems:
            runs.extend(run_system(system, workload, config, twins=twins, bar=bar))
    return runs


__all__ = ["run_system", "run_systems"]
