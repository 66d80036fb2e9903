"""The recall–QPS plot of the latest evaluation (``knnserve evaluate --out DIR``) of a model's dataset, when there is one."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from knnserve.evaluate.plots import RECALL_PLOT
from knnserve.ui.images import data_url

RESULTS_FILE = "results.json"
# A plot larger than this is linked by path, not sent to the browser.
MAX_PLOT_BYTES = 2 * 1024 * 1024


@dataclass(frozen=True)
class Evaluation:
    """One evaluation run's folder, when it was made, and its recall-vs-QPS plot as a data URL."""

    folder: str
    created_at: str
    dataset: str
    plot: str | None

    def to_json(self) -> dict[str, str | None]:
        """As the page's JSON."""
        return {"folder": self.folder, "created_at": self.created_at, "dataset": self.dataset, "plot": self.plot}


def _read(results: Path) -> tuple[str, str] | None:
    """(created_at, dataset name) of a results.json, None when it is not one of ours."""
    try:
        raw = json.loads(results.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(raw, dict) or not isinstance(raw.get("dataset"), dict):
        return None
    return str(raw.get("created_at", "")), str(raw["dataset"].get("name", ""))


def latest_evaluation(roots: list[Path], dataset: str) -> Evaluation | None:
    """The newest evaluation under ``roots`` (searched recursively) of ``dataset`` that drew a recall plot."""
    found: list[tuple[str, Path, str]] = []
    for root in roots:
        candidates = [root / RESULTS_FILE] if (root / RESULTS_FILE).is_file() else sorted(root.rglob(RESULTS_FILE))
        for results in candidates:
            read = _read(results)
            if read is None or (dataset and read[1] != dataset) or not (results.parent / RECALL_PLOT).is_file():
                continue
            found.append((read[0], results.parent, read[1]))
    if not found:
        return None
    created_at, folder, name = max(found, key=lambda item: item[0])
    plot_path = folder / RECALL_PLOT
    plot = data_url(plot_path.read_bytes()) if plot_path.stat().st_size <= MAX_PLOT_BYTES else None
    return Evaluation(folder=str(folder), created_at=created_at, dataset=name, plot=plot)


__all__ = ["Evaluation", "latest_evaluation"]
