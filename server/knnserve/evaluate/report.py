"""Outputs of an evaluation: ``results.json`` (the schema in ``schema.py``) and ``report.md`` (tables and derived answers)."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

from knnserve.atomic import atomic_write_text
from knnserve.evaluate.frontier import best_qps_tables, has_peers, ratio_lines
from knnserve.evaluate.schema import Results, RunRecord

RESULTS_FILE = "results.json"
REPORT_FILE = "report.md"
RECALL_THRESHOLDS = (0.9, 0.95, 0.99)
# "Same accuracy" for the memory question: within this many points of exact k-NN accuracy.
ACCURACY_TOLERANCE_POINTS = 0.5


def machine_info() -> dict[str, Any]:
    """CPU model, cores, and the versions that shape the figures (FAISS build, numpy, Python)."""
    import numpy

    from knnserve.index.backend import build_info
    from knnserve.machine import cpu_model, usable_cores

    return {
        "cpu": cpu_model(),
        "cores": usable_cores(),
        "load_average_start": list(os.getloadavg()),
        "platform": platform.platform(),
        "python": platform.python_version(),
        **build_info(),
        "numpy": numpy.__version__,
    }


def write_results(out: Path, results: Results) -> Path:
    """Write ``results.json`` atomically."""
    path = out / RESULTS_FILE
    atomic_write_text(path, results.model_dump_json(indent=2) + "\n")
    return path


def read_results(path: Path) -> Results:
    """Read and validate a ``results.json``."""
    return Results.model_validate_json(Path(path).read_text())


# -- formatting --------------------------------------------------------------------------------


def _f(value: float | None, digits: int = 4) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _pct(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.2f}%"


def _pts(value: float | None) -> str:
    return "" if value is None else f"{100 * value:+.2f}"


def _x(value: float | None) -> str:
    if value is None:
        return ""
    if value >= 100:
        return f"{value:,.0f}x"
    return f"{value:.1f}x" if value >= 10 else f"{value:.2f}x" if value >= 0.01 else f"{value:.2g}x"


def _load(values: list[float] | None) -> str:
    return "n/a" if not values else "/".join(f"{v:.2f}" for v in values)


def _qps(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def _params(record: RunRecord) -> str:
    names = {"nprobe": "nprobe", "ef_search": "efSearch"}
    return " ".join(f"{names.get(k, k)}={v}" for k, v in sorted(record.params.items())) or "-"


def _system(record: RunRecord) -> str:
    where = record.transport if record.space == "raw" else f"{record.transport}, {record.space}"
    return f"{record.system} ({where})"


def _index(record: RunRecord) -> str:
    if record.index is None:
        return "-"
    return f"`{record.index.get('factory', '')}`"


def _kernel(record: RunRecord) -> str:
    # knnserve's runs say which search path answered large batches: faiss or a kernel (knnserve.kernels).
    return str(record.index.get("kernel", "")) if record.index else ""


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _qps_of(results: Results, system: str, mode: str) -> float | None:
    for record in results.runs:
        timing = getattr(record, mode)
        if record.system == system and timing is not None:
            return timing.qps
    return None


def _naive_qps(results: Results) -> float | None:
    for record in results.runs:
        if record.system == "naive" and record.single is not None:
            return record.single.qps
    return None


def batch_table(results: Results) -> list[str]:
    """Batch throughput rows, with speed ratios against the baselines that ran."""
    sk, naive = _qps_of(results, "sklearn", "batch"), _naive_qps(results)
    header = ["run", "system", "index", "kernel", "params", "recall@k", "accuracy", "Δ acc (pts)", "QPS", "speedup vs exact"]
    header += ["vs scikit-learn"] if sk else []
    header += ["vs naive loop"] if naive else []
    header += ["passes", "cores used", "Pareto"]
    rows = []
    for r in results.runs:
        if r.batch is None:
            continue
        row = [r.run_id, _system(r), _index(r), _kernel(r), _params(r), _f(r.recall), _pct(r.accuracy),
               _pts(r.accuracy_delta), _qps(r.batch.qps), _x(r.batch.speedup)]
        row += [_x(r.batch.qps / sk)] if sk else []
        row += [_x(r.batch.qps / naive)] if naive else []
        row += [str(r.batch.passes), _f(r.batch.cores_used, 2), "*" if r.pareto.get("batch") else ""]
        rows.append(row)
    return _table(header, rows)


def single_table(results: Results) -> list[str]:
    """Single-query latency rows."""
    header = ["run", "system", "index", "kernel", "params", "recall@k", "p50 ms", "p95 ms", "p99 ms", "QPS", "speedup vs exact",
              "queries x passes", "Pareto"]
    rows = []
    for r in results.runs:
        if r.single is None:
            continue
        s = r.single
        rows.append([r.run_id, _system(r), _index(r), _kernel(r), _params(r), _f(r.recall), _f(s.p50_ms, 3),
                     _f(s.p95_ms, 3), _f(s.p99_ms, 3), _qps(s.qps), _x(s.speedup), f"{s.queries} x {s.passes}",
                     "*" if r.pareto.get("single") else ""])
    return _table(header, rows)


def memory_table(results: Results) -> list[str]:
    """One row per built index: size, bytes per vector, compression against float32 vectors, build time."""
    seen: set[str] = set()
    rows = []
    for r in results.runs:
        if r.memory is None or r.index is None:
            continue
        key = f"{r.system}|{r.index.get('spec')}|{r.index.get('factory')}"
        if key in seen:
            continue
        seen.add(key)
        build = r.build
        rows.append([f"{r.system} `{r.index.get('spec')}`", _index(r), str(r.index.get("storage", "")),
                     f"{r.memory.bytes / 2**20:.2f} MiB", f"{r.memory.bytes_per_vector:.1f}", _x(r.memory.smaller_than_float32),
                     _f(build.train_seconds if build else None, 2), _f(build.add_seconds if build else None, 2)])
    return _table(["index", "factory", "storage", "serialized size", "bytes/vector", "smaller than float32 vectors",
                   "train s", "add s"], rows)


def bundles_table(results: Results) -> list[str]:
    """Trained bundles side by side (pixels, PCA/cosine, learned features), each in its own space."""
    rows = []
    for r in results.runs:
        if r.space == "raw" or r.transport != "in-process":
            continue
        index = r.index or {}
        memory = (r.memory.bytes if r.memory else 0) + int(index.get("extractor_bytes", 0))
        e = r.extraction
        rows.append([
            r.run_id, str(index.get("spec", r.label)), str(index.get("features", "pixels")), _params(r), _pct(r.accuracy),
            _f(r.recall), _qps(r.batch.qps) if r.batch else "", _f(r.single.p50_ms, 3) if r.single else "",
            _f(r.single.p99_ms, 3) if r.single else "",
            f"{memory / 2**20:.2f} MiB" + (f" (extractor {int(index['extractor_bytes']) / 2**10:.0f} KiB)" if "extractor_bytes" in index else ""),
            _pct(e.batch_share) if e and e.batch_share is not None else "",
            _f(e.single_p50_ms, 3) if e and e.single_p50_ms is not None else "",
        ])
    if not rows:
        return []
    return _table(["run", "bundle", "features", "params", "accuracy", "recall@k (own space)", "batch QPS", "p50 ms", "p99 ms",
                   "memory (index + extractor)", "extraction share of batch", "extraction p50 ms"], rows)


def extraction_table(results: Results) -> list[str]:
    """The feature extractor's part of each bundle run's timed calls."""
    rows = []
    for r in results.runs:
        e = r.extraction
        if e is None:
            continue
        rows.append([r.run_id, _index(r), _params(r), _f(e.batch_seconds, 3), _qps(e.batch_rows_per_s) if e.batch_rows_per_s else "",
                     _pct(e.batch_share) if e.batch_share is not None else "", _f(r.batch.median_seconds, 3) if r.batch else "",
                     _f(e.single_p50_ms, 3), _f(e.single_p99_ms, 3), _f(r.single.p50_ms, 3) if r.single else ""])
    if not rows:
        return []
    return _table(["run", "index", "params", "extraction s (batch pass)", "images/s", "share of the pass", "whole pass s",
                   "extraction p50 ms (1 row)", "extraction p99 ms", "whole call p50 ms"], rows)


def derived_answers(results: Results) -> list[str]:
    """Plain answers to the questions the run exists for, computed from the records."""
    lines: list[str] = []
    approx = [r for r in results.runs if r.transport == "in-process" and not r.exact and r.recall is not None]
    for mode in ("batch", "single"):
        ref = results.references.get(mode)
        if ref is None:
            continue
        for threshold in RECALL_THRESHOLDS:
            ok = [r for r in approx if r.recall >= threshold and getattr(r, mode) is not None]
            if not ok:
                lines.append(f"- {mode}: no approximate setting reached recall@k >= {threshold}.")
                continue
            best = max(ok, key=lambda r: getattr(r, mode).qps)
            t = getattr(best, mode)
            lines.append(
                f"- {mode}, recall@k >= {threshold}: fastest is {best.run_id} `{best.label}` at {_qps(t.qps)} QPS, "
                f"{_x(t.speedup)} the exact reference ({ref.label}, {_qps(ref.qps)} QPS); recall {best.recall:.4f}, "
                f"accuracy {_pct(best.accuracy)} ({_pts(best.accuracy_delta)} pts vs exact)."
            )
    sized = [r for r in results.runs if r.memory is not None and r.accuracy_delta is not None and r.transport == "in-process"
             and abs(r.accuracy_delta) * 100 <= ACCURACY_TOLERANCE_POINTS]
    if sized:
        small = min(sized, key=lambda r: r.memory.bytes)  # type: ignore[union-attr]
        lines.append(
            f"- Smallest index within {ACCURACY_TOLERANCE_POINTS} pts of exact accuracy: {small.run_id} `{small.label}`, "
            f"{small.memory.bytes / 2**20:.2f} MiB ({small.memory.bytes_per_vector:.1f} B/vector, "  # type: ignore[union-attr]
            f"{_x(small.memory.smaller_than_float32)} smaller than float32 vectors), accuracy {_pts(small.accuracy_delta)} pts."  # type: ignore[union-attr]
        )
    lines += overhead_lines(results)
    lines += kernel_lines(results)
    return lines


def kernel_lines(results: Results) -> list[str]:
    """Each search kernel's run against the same index searched by FAISS alone, same settings, same run."""
    faiss_runs = {(r.label.replace(" [faiss]", ""), r.space): r for r in results.runs
                  if r.system == "knnserve" and r.index is not None and r.index.get("kernel") == "faiss"}
    lines = []
    for r in results.runs:
        kernel = _kernel(r)
        if r.system != "knnserve" or kernel in ("", "faiss"):
            continue
        base = faiss_runs.get((r.label.replace(f" [{kernel}]", ""), r.space))
        if base is None or r.batch is None or base.batch is None:
            continue
        same = "identical recall" if r.recall == base.recall else f"recall {_f(r.recall)} vs {_f(base.recall)}"
        lines.append(f"- Kernel {kernel} (batch): {r.run_id} `{r.label}` at {_qps(r.batch.qps)} QPS, "
                     f"{r.batch.qps / base.batch.qps:.2f}x FAISS on the same index ({base.run_id}, {_qps(base.batch.qps)} QPS); {same}.")
    return lines


def overhead_lines(results: Results) -> list[str]:
    """The harness's own overhead: knnserve's float32 exact Flat against a bare faiss IndexFlat, same run."""
    bare = next((r for r in results.runs if r.system == "faiss"), None)
    flat = next((r for r in results.runs if r.system == "knnserve" and r.transport == "in-process" and r.exact
                 and r.index is not None and r.index.get("factory") == "Flat" and r.index.get("kernel", "faiss") == "faiss"), None)
    lines = []
    for mode in ("batch", "single"):
        if bare is None or flat is None or getattr(bare, mode) is None or getattr(flat, mode) is None:
            continue
        ratio = getattr(flat, mode).qps / getattr(bare, mode).qps
        lines.append(f"- Harness overhead ({mode}): knnserve Flat float32 runs at {ratio:.3f}x the QPS of bare faiss "
                     f"({_qps(getattr(flat, mode).qps)} vs {_qps(getattr(bare, mode).qps)}).")
    return lines


def wire_table(results: Results) -> list[str]:
    """In-process and gRPC figures side by side, for runs with the same factory and parameters."""
    local = {(r.index.get("factory"), r.space, tuple(sorted(r.params.items()))): r for r in results.runs
             if r.transport == "in-process" and r.system == "knnserve" and r.index}
    rows = []
    for r in results.runs:
        if r.transport != "grpc" or r.index is None:
            continue
        twin = local.get((r.index.get("factory"), r.space, tuple(sorted(r.params.items()))))
        rows.append([_index(r), _params(r), _f(r.recall), _qps(twin.batch.qps) if twin and twin.batch else "",
                     _qps(r.batch.qps) if r.batch else "", _f(twin.single.p50_ms, 3) if twin and twin.single else "",
                     _f(r.single.p50_ms, 3) if r.single else "", _qps(twin.single.qps) if twin and twin.single else "",
                     _qps(r.single.qps) if r.single else ""])
    return _table(["index", "params", "recall@k (gRPC)", "batch QPS in-process", "batch QPS gRPC", "p50 ms in-process",
                   "p50 ms gRPC", "single QPS in-process", "single QPS gRPC"], rows) if rows else []


def tuning_table(results: Results) -> list[str]:
    """Target-recall tuning results."""
    rows = [[f"`{t.index.get('factory')}`", t.parameter, f"{t.target_recall}", "" if t.value is None else str(t.value),
             _f(t.recall), f"{t.held_out_queries} held out, index of {t.index_rows}",
             ", ".join(f"{int(e['value'])}:{e['recall']:.4f}" for e in t.evaluations), t.note]
            for t in results.tuning]
    return _table(["index", "parameter", "target recall@k", "smallest value", "recall there", "queries",
                   "evaluations (value:recall)", "note"], rows)


def render_report(results: Results, plots: list[str]) -> str:
    """The markdown report."""
    s, d, m, g = results.settings, results.dataset, results.machine, results.ground_truth
    lines = [
        f"# knnserve evaluate: {d['name']} ({results.created_at:%Y-%m-%d %H:%M} UTC)",
        "",
        f"- command: `{' '.join(results.command)}`",
        f"- machine: {m['cpu']}, {m['cores']} cores, {m['platform']}; Python {m['python']}, faiss {m['faiss']} "
        f"({m['faiss_compile_options']}), numpy {m['numpy']}",
        f"- load average (1/5/15 min) at start {_load(m.get('load_average_start'))}, at end {_load(m.get('load_average_end'))}; "
        "'cores used' in the batch table is CPU seconds per wall second: below the thread count, other processes "
        "took CPU from that setting",
        f"- data: {d['n_train']} base rows x {d['dim']} ({d['dtype']}), {d['n_queries']} queries from {d['n_test']} test rows; "
        f"checksum {d['checksum'][:16]}…",
        f"- search: k={s['k']}, metric {s['metric']}; vote for accuracy: k={s['vote_k']}, {s['weights']}, tie-break {s['tie_break']}",
        f"- ground truth: {g['method']}; {'read from cache' if g['cached'] else 'computed'} in {g['seconds']:.1f} s",
        f"- exact k-NN accuracy: **{_pct(results.exact_accuracy)}**",
        *[f"- feature space `{key}` (bundle runs are scored against exact search in it): {space['description']}; "
          f"exact k-NN accuracy there {_pct(space['exact_accuracy'])}"
          for key, space in results.spaces.items() if key != "raw"],
        f"- recall@k: {s['recall_rule']}",
        f"- batch mode: all queries in one call, {s['threads'] or 'all'} FAISS threads, up to {s['repeats']} passes after a "
        f"warm-up (no new pass once {s['max_run_seconds']:.0f} s are spent), median pass reported",
        f"- single-query mode: one query per call, 1 FAISS thread, {s['single_queries']} queries ({s['exact_single_queries']} "
        f"for exact indexes), up to {s['repeats']} passes; percentiles over all calls, QPS of the median pass",
    ]
    for mode, ref in results.references.items():
        if ref is not None:
            lines.append(f"- speedup reference ({mode}): {ref.run_id} {ref.label}, {_qps(ref.qps)} QPS (fastest exact in-process search)")
    if results.settings.get("peers_not_installed"):
        lines.append(f"- peer libraries asked for but not installed here (pip install 'knnserve[peers]'): "
                     f"{', '.join(results.settings['peers_not_installed'])}")
    lines += ["", "## Answers", ""] + derived_answers(results)
    if has_peers(results):
        lines += ["", "## Against the other nearest-neighbour libraries (ann-benchmarks protocol)", "",
                  "Best QPS each library reaches at recall@k ≥ 0.90 / 0.95 / 0.99 (its setting and run id in brackets), "
                  "per feature space and timing mode; the peers run in child processes, each with the build and sweep its "
                  "documentation recommends (their notes below). k-NN accuracy of every point is in the tables further "
                  "down."] + best_qps_tables(results)
    lines += ["", "## Batch throughput", ""] + batch_table(results)
    lines += ["", "## Single-query latency", ""] + single_table(results)
    lines += ["", "## Memory and build time", ""] + memory_table(results)
    if bundles := bundles_table(results):
        lines += ["", "## Bundles side by side (each scored in its own feature space)", ""] + bundles
    if extraction := extraction_table(results):
        lines += ["", "## Feature extraction (inside the timed search calls, as in the server)", ""] + extraction
    if wire := wire_table(results):
        lines += ["", "## In-process vs over the wire", ""] + wire
    if results.tuning:
        lines += ["", "## Target-recall tuning", ""] + tuning_table(results)
    notes = [f"- {r.run_id} {r.label}: {note}" for r in results.runs for note in r.notes]
    if notes:
        lines += ["", "## Notes", ""] + notes
    if plots:
        lines += ["", "## Plots", ""] + [f"![{Path(p).stem}]({Path(p).name})" for p in plots]
    return "\n".join(lines) + "\n"


def write_report(out: Path, results: Results, plots: list[str]) -> Path:
    """Write ``report.md`` atomically."""
    path = out / REPORT_FILE
    atomic_write_text(path, render_report(results, plots))
    return path


def summary_lines(results: Results, out: Path) -> list[str]:
    """What the CLI prints at the end: exact accuracy, the derived answers, and where the outputs are."""
    lines = [f"exact k-NN accuracy: {_pct(results.exact_accuracy)} on {results.dataset['n_queries']} queries"]
    lines += derived_answers(results)
    lines += ratio_lines(results)
    if results.settings.get("peers_not_installed"):
        lines.append(f"not installed, not run: {', '.join(results.settings['peers_not_installed'])}")
    lines.append(f"wrote {out / RESULTS_FILE} and {out / REPORT_FILE}")
    return lines
