"""matplotlib access for the commands that draw PNGs (an optional dependency: knnserve[plots])."""

from __future__ import annotations

from types import ModuleType

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
