"""PNG of a cross-validation curve: mean accuracy ± one standard deviation per k, per weighting."""

from __future__ import annotations

from pathlib import Path

from knnserve.plotting import pyplot, save_figure
from knnserve.selection.knn_cv import CVResult


def plot_cv_curve(result: CVResult, path: str | Path, *, title: str = "k-NN cross-validation") -> Path:
    """Draw accuracy against k with ±1 std bands, mark the chosen setting, save as PNG."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    series = sorted({(c.preprocess, c.weights) for c in result.candidates})
    for i, (preprocess, weights) in enumerate(series):
        points = sorted((c for c in result.candidates if (c.preprocess, c.weights) == (preprocess, weights)), key=lambda c: c.k)
        # a small horizontal offset per series keeps overlapping error bars readable
        ks = [c.k + (i - (len(series) - 1) / 2) * 0.12 for c in points]
        means = [c.mean * 100 for c in points]
        stds = [c.std * 100 for c in points]
        ax.errorbar(ks, means, yerr=stds, marker="o", capsize=3, label=f"{preprocess}, {weights}")
    best = result.best
    ax.scatter([best.k], [best.mean * 100], s=160, facecolors="none", edgecolors="red", zorder=5,
               label=f"chosen: k={best.k}, {best.preprocess}, {best.weights} ({best.mean:.2%} ± {best.std:.2%})")
    ax.set_xlabel("k (neighbours that vote)")
    ax.set_ylabel(f"{result.folds}-fold CV accuracy (%)")
    ax.set_title(f"{title} ({result.metric})")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)
