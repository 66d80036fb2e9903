"""PNG plots of an evaluation (matplotlib, Agg): recall vs QPS with the Pareto front, accuracy vs QPS."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from knnserve.evaluate.metrics import pareto_front
from knnserve.evaluate.schema import Results, RunRecord
from knnserve.plotting import pyplot, save_figure

if TYPE_CHECKING:
    from matplotlib.axes import Axes

RECALL_PLOT = "recall_vs_qps.png"
ACCURACY_PLOT = "accuracy_vs_qps.png"
MODE_TITLES = {"batch": "batch (all queries per call, all threads)", "single": "single query per call, 1 thread"}


def _series(results: Results, mode: str) -> dict[str, list[RunRecord]]:
    """Searching runs with a timing in ``mode``, grouped by index and transport (one line each)."""
    groups: dict[str, list[RunRecord]] = defaultdict(list)
    for record in results.runs:
        if getattr(record, mode) is None or record.recall is None or record.index is None:
            continue
        name = f"{record.index.get('factory')}" + (f" ({record.index['spec']})" if "@" in str(record.index.get("spec")) else "")
        if record.system == "faiss":
            name = "bare faiss IndexFlat"
        if record.space != "raw":
            name += f" [{record.space}]"
        if record.transport == "grpc":
            name += " [gRPC]"
        groups[name].append(record)
    return groups


def _modes(results: Results) -> list[str]:
    return [m for m in ("batch", "single") if any(getattr(r, m) is not None and r.recall is not None for r in results.runs)]


def _panel(ax: Axes, results: Results, mode: str, quality: str) -> None:
    groups = _series(results, mode)
    everything: list[RunRecord] = []
    for name, records in groups.items():
        records = sorted(records, key=lambda r: getattr(r, quality))
        x = [getattr(r, quality) for r in records]
        y = [getattr(r, mode).qps for r in records]
        grpc = records[0].transport == "grpc"
        exact = all(r.exact for r in records)
        ax.plot(x, y, marker="*" if exact else "o", markersize=11 if exact else 5, linestyle="--" if grpc else "-",
                label=name)
        everything += [r for r in records if r.transport == "in-process"]
    if everything:
        qps = np.array([getattr(r, mode).qps for r in everything])
        value = np.array([getattr(r, quality) for r in everything])
        front = pareto_front(qps, value)
        order = np.argsort(value[front])
        ax.step(value[front][order], qps[front][order], where="pre", color="black", linewidth=1, alpha=0.6,
                label="Pareto front (in-process)")
        ax.scatter(value[front], qps[front], s=90, facecolors="none", edgecolors="black", zorder=5)
    ref = results.references.get(mode)
    if ref is not None:
        ax.axhline(ref.qps, color="grey", linestyle=":", linewidth=1, label=f"exact reference ({ref.qps:,.0f} QPS)")
    if quality == "accuracy":
        ax.axvline(results.exact_accuracy, color="grey", linestyle="-.", linewidth=1, label="exact k-NN accuracy")
    ax.set_yscale("log")
    ax.set_xlabel(f"recall@{results.settings['k']}" if quality == "recall" else f"k-NN accuracy (k={results.settings['vote_k']})")
    ax.set_ylabel("queries per second (log)")
    ax.set_title(MODE_TITLES[mode], fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="best")


def _figure(results: Results, quality: str, path: Path) -> Path | None:
    modes = _modes(results)
    if not modes:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(1, len(modes), figsize=(6.5 * len(modes), 5), squeeze=False)
    for ax, mode in zip(axes[0], modes):
        _panel(ax, results, mode, quality)
    what = "recall" if quality == "recall" else "accuracy"
    fig.suptitle(f"{results.dataset['name']}: {what} vs speed (upper right is better)")
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)


def write_plots(out: Path, results: Results) -> list[str]:
    """Write the recall-vs-QPS and accuracy-vs-QPS PNGs, and with peer libraries one Pareto plot per space and
    mode (``frontier.py``); returns their paths (none when nothing was timed)."""
    from knnserve.evaluate.frontier import has_peers, write_peer_plots

    out.mkdir(parents=True, exist_ok=True)
    written = [_figure(results, "recall", out / RECALL_PLOT), _figure(results, "accuracy", out / ACCURACY_PLOT)]
    if has_peers(results):
        written += write_peer_plots(out, results)
    return [str(p) for p in written if p is not None]
