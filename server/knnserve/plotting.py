"""matplotlib access for the commands that draw PNGs (an optional dependency: knnserve[plots])."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

from knnserve.errors import KnnServeError


def pyplot() -> ModuleType:
    """matplotlib.pyplot on the non-interactive Agg backend, or a clear error when it is not installed."""
    try:
        import matplotlib
    except ImportError as exc:
        raise KnnServeError("plotting needs matplotlib: pip install 'knnserve[plots]'") from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: str | Path, *, dpi: int | None = None) -> Path:
    """Save a figure as PNG (creating the folder), close it, and return the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target, dpi=dpi)
    pyplot().close(fig)
    return target
