"""knnserve against the peer libraries, the ann-benchmarks way: per feature space and timing mode, the best
QPS each library reaches at recall@k >= 0.90 / 0.95 / 0.99, knnserve's best over the best peer's, and one
Pareto plot (recall vs QPS) with every library."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from knnserve.evaluate.metrics import pareto_front
from knnserve.evaluate.schema import Results, RunRecord
from knnserve.evaluate.systems.peer_catalog import PEERS

RECALL_LEVELS: tuple[float, ...] = (0.90, 0.95, 0.99)
MODES: tuple[str, ...] = ("batch", "single")
MODE_WORDS = {"batch": "batch (all queries per call, all threads)", "single": "single query per call, 1 thread"}


def has_peers(results: Results) -> bool:
    """True when any peer library ran."""
    return any(r.system in PEERS for r in results.runs)


def library_of(record: RunRecord) -> str | None:
    """The library a searching run belongs to (``knnserve``, ``faiss`` for bare FAISS, or a peer); None otherwise.

    Runs over gRPC are left out: the peers are compared in-process or in a child process.
    """
    if record.recall is None or record.transport == "grpc":
        return None
    return record.system if record.system in ("knnserve", "faiss", *PEERS) else None


def _by_library(results: Results, space: str, mode: str) -> dict[str, list[RunRecord]]:
    groups: dict[str, list[RunRecord]] = defaultdict(list)
    for record in results.runs:
        library = library_of(record)
        if library is not None and record.space == space and getattr(record, mode) is not None:
            groups[library].append(record)
    return groups


def best_at(records: list[RunRecord], mode: str, level: float) -> RunRecord | None:
    """The fastest run (in ``mode``) with recall >= ``level``, or None."""
    fit = [r for r in records if r.recall is not None and r.recall >= level]
    return max(fit, key=lambda r: getattr(r, mode).qps) if fit else None


def spaces_with_peers(results: Results) -> list[str]:
    """Feature spaces in which a peer library ran, raw first."""
    keys = dict.fromkeys(r.space for r in results.runs if r.system in PEERS)
    return sorted(keys, key=lambda key: (key != "raw", key))


def ratio(results: Results, space: str, mode: str, level: float) -> tuple[float | None, RunRecord | None, RunRecord | None]:
    """knnserve's best QPS over the best peer's at recall >= ``level`` (None when either never reaches it)."""
    groups = _by_library(results, space, mode)
    ours = best_at(groups.get("knnserve", []), mode, level)
    peers = [best for lib in PEERS if (best := best_at(groups.get(lib, []), mode, level)) is not None]
    theirs = max(peers, key=lambda r: getattr(r, mode).qps) if peers else None
    if ours is None or theirs is None:
        return None, ours, theirs
    return getattr(ours, mode).qps / getattr(theirs, mode).qps, ours, theirs


def _cell(record: RunRecord | None, mode: str) -> str:
    if record is None:
        return "not reached"
    params = " ".join(f"{k}={v}" for k, v in sorted(record.params.items()))
    index = record.index.get("factory", "") if record.index else ""
    where = f"{index} {params}".strip() if record.system == "knnserve" else params
    return f"{getattr(record, mode).qps:,.0f} ({where}; {record.run_id})"


def best_qps_tables(results: Results) -> list[str]:
    """Markdown: per space and mode, the best QPS of each library at each recall level, and knnserve / best peer."""
    lines: list[str] = []
    for space in spaces_with_peers(results):
        for mode in MODES:
            groups = _by_library(results, space, mode)
            if not groups:
                continue
            header = ["library"] + [f"best QPS at recall ≥ {level:.2f}" for level in RECALL_LEVELS] + ["highest recall"]
            rows = []
            for library in ("knnserve", "faiss", *PEERS):
                if library not in groups:
                    continue
                name = f"**{library}**" if library == "knnserve" else library
                top = max(r.recall or 0.0 for r in groups[library])
                rows.append([name] + [_cell(best_at(groups[library], mode, level), mode) for level in RECALL_LEVELS]
                            + [f"{top:.4f}"])
            ratios = []
            for level in RECALL_LEVELS:
                value, _, theirs = ratio(results, space, mode, level)
                ratios.append(f"**{value:.2f}x** (vs {theirs.system})" if value is not None and theirs is not None else "-")
            rows.append(["knnserve / best peer"] + ratios + [""])
            lines += ["", f"### `{space}` space, {MODE_WORDS[mode]}", ""]
            lines += ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
            lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def ratio_lines(results: Results) -> list[str]:
    """One line per space, mode and recall level: knnserve's best / the best peer's QPS (what the CLI prints)."""
    lines = []
    for space in spaces_with_peers(results):
        for mode in MODES:
            for level in RECALL_LEVELS:
                value, ours, theirs = ratio(results, space, mode, level)
                if ours is None and theirs is None:
                    continue
                if value is None:
                    who = "knnserve" if ours is None else "no peer"
                    lines.append(f"{space} {mode} recall>={level:.2f}: {who} never reaches it")
                    continue
                assert ours is not None and theirs is not None
                lines.append(f"{space} {mode} recall>={level:.2f}: knnserve {getattr(ours, mode).qps:,.0f} QPS ({ours.label}) / "
                             f"{theirs.system} {getattr(theirs, mode).qps:,.0f} QPS ({theirs.label}) = {value:.2f}x")
    return lines


def write_peer_plots(out: Path, results: Results) -> list[Path]:
    """One PNG per space and mode: recall (from 0.8) vs QPS, a line per library and build (its own Pareto front),
    knnserve's rows marked."""
    from knnserve.plotting import pyplot, save_figure

    written: list[Path] = []
    for space in spaces_with_peers(results):
        for mode in MODES:
            groups = _by_library(results, space, mode)
            if not groups:
                continue
            plt = pyplot()
            fig, ax = plt.subplots(figsize=(8, 6))
            every: list[RunRecord] = []
            for library in ("knnserve", "faiss", *PEERS):
                lines: dict[str, list[RunRecord]] = defaultdict(list)
                for record in groups.get(library, []):
                    facts = record.index or {}
                    name = str(facts.get("spec") or library) if library != "knnserve" else \
                        f"knnserve {facts.get('spec', '')} [{facts.get('kernel', 'faiss')}]"
                    lines[name].append(record)
                for name, records in lines.items():
                    # as ann-benchmarks draws them: each line is that index's own Pareto front, the
                    # settings behind it (a second knob, as ScaNN's reorder) as faint points
                    ours = library == "knnserve"
                    x, y = np.array([r.recall for r in records]), np.array([getattr(r, mode).qps for r in records])
                    own = pareto_front(y, x)
                    order = np.argsort(x[own])
                    drawn = ax.plot(x[own][order], y[own][order], marker="*" if ours else "o",
                                    markersize=10 if ours else 4, linewidth=2.2 if ours else 1.0,
                                    linestyle="-" if ours else "--", label=name)
                    ax.scatter(x[~own], y[~own], s=12, color=drawn[0].get_color(), alpha=0.35)
                    every += records
            qps = np.array([getattr(r, mode).qps for r in every])
            recall = np.array([r.recall for r in every])
            front = pareto_front(qps, recall)
            order = np.argsort(recall[front])
            ax.step(recall[front][order], qps[front][order], where="pre", color="black", linewidth=0.8, alpha=0.5,
                    label="Pareto front (all libraries)")
            for level in RECALL_LEVELS:
                ax.axvline(level, color="grey", linestyle=":", linewidth=0.8)
            ax.set_yscale("log")
            ax.set_xlim(max(0.8, float(recall.min()) - 0.02), 1.002)  # the targets are 0.90 and up
            ax.set_xlabel(f"recall@{results.settings['k']}")
            ax.set_ylabel("queries per second (log)")
            ax.set_title(f"{results.dataset['name']}, {space} space: {MODE_WORDS[mode]}\n"
                         "knnserve's rows: stars, solid lines; upper right is better", fontsize=10)
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=7, loc="lower left")
            fig.tight_layout()
            name = space.replace(":", "-").replace("/", "-").replace("#", "-")
            written.append(save_figure(fig, out / f"peers-{name}-{mode}.png", dpi=110))
    return written


__all__ = ["RECALL_LEVELS", "best_at", "best_qps_tables", "has_peers", "library_of", "ratio", "ratio_lines",
           "spaces_with_peers", "write_peer_plots"]
