"""``knnserve evaluate --online``: how fast a served model learns a class it has never seen.

One class is held out of training; its training rows are then added online in steps (1, 5, 20,
100 and all of them, cumulative), through ``LiveModel`` — the write path of a server that takes
writes, logged and applied as there — and after each step the test split is classified: the held-out
class's accuracy (recall on its test rows) and the overall accuracy, against a model trained with
every row from the start. Writes ``online.json``, ``online.md`` and ``online.png`` into the output folder.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from knnserve.data import load_dataset
from knnserve.errors import InvalidInputError
from knnserve.model import KNNModel
from knnserve.online.live import LiveModel
from knnserve_client.wire.query import KnnQuery

DEFAULT_STEPS = (1, 5, 20, 100)


@dataclass(frozen=True)
class OnlineStep:
    """Accuracy after ``added`` rows of the held-out class were added online."""

    added: int
    class_accuracy: float
    overall_accuracy: float
    add_seconds: float


@dataclass
class OnlineReport:
    """The whole run: the setting, the curve and the reference trained with every row."""

    dataset: str
    index: str
    k: int
    held_out: str
    held_out_train_rows: int
    held_out_test_rows: int
    reference_class_accuracy: float
    reference_overall_accuracy: float
    steps: list[OnlineStep] = field(default_factory=list)


def _class_of(names: tuple[str, ...], held_out: str) -> int:
    if held_out.isdigit() and int(held_out) < len(names):
        return int(held_out)
    if held_out in names:
        return names.index(held_out)
    raise InvalidInputError("--holdout", f"a class name or index of {', '.join(names)}", held_out)


def _accuracies(predicted: np.ndarray, truth: np.ndarray, held: str) -> tuple[float, float]:
    mask = truth == held
    return float((predicted[mask] == held).mean()), float((predicted == truth).mean())


def run_online(*, out: Path, dataset: str | None = None, data_dir: Path | None = None, download: bool = True,
               index: str = "flat", k: int = 5, held_out: str = "0", steps: tuple[int, ...] = DEFAULT_STEPS,
               seed: int = 0, plot: bool = True) -> OnlineReport:
    """Hold one class out, add its training rows online step by step, and measure accuracy after each step."""
    data = load_dataset(dataset, data_dir=data_dir, download=download)
    names = tuple(data.class_names)
    held_class = _class_of(names, held_out)
    held = names[held_class]
    keep = data.y_train != held_class
    others = tuple(name for number, name in enumerate(names) if number != held_class)
    remap = np.full(len(names), -1, dtype=np.int64)
    remap[[number for number in range(len(names)) if number != held_class]] = np.arange(len(others))
    query = KnnQuery(k=k)
    truth = np.asarray(names)[data.y_test]

    reference = KNNModel.fit(data.x_train, data.y_train, class_names=names, index=index)
    reference_names = np.asarray(names)[reference.classify(data.x_test, query).predictions]
    model = KNNModel.fit(data.x_train[keep], remap[data.y_train[keep]], class_names=others, index=index)
    report = OnlineReport(data.name, index, k, held, int((~keep).sum()), int((data.y_test == held_class).sum()),
                          *_accuracies(reference_names, truth, held))
    rows = data.x_train[~keep][np.random.default_rng(seed).permutation(int((~keep).sum()))]
    targets = sorted({0, *(s for s in steps if s < len(rows)), len(rows)})
    with tempfile.TemporaryDirectory(prefix="knnserve-online-") as folder:
        live = LiveModel(model, Path(folder) / "log.wal")
        added = 0
        for target in targets:
            started = time.perf_counter()
            while added < target:
                chunk = rows[added : min(target, added + live.limits.max_rows_per_add)]
                live.add(model.prepare(chunk), [held] * len(chunk))
                added += len(chunk)
            seconds = time.perf_counter() - started
            predicted = np.asarray(model.class_names)[model.classify(data.x_test, query).predictions]
            report.steps.append(OnlineStep(added, *_accuracies(predicted, truth, held), seconds))
        live.close()
    out.mkdir(parents=True, exist_ok=True)
    (out / "online.json").write_text(json.dumps(asdict(report), indent=2) + "\n")
    (out / "online.md").write_text(markdown(report))
    if plot:
        draw(report, out / "online.png")
    return report


def markdown(report: OnlineReport) -> str:
    """The curve as a Markdown table, with the reference."""
    lines = [f"# Online learning: {report.dataset}, class {report.held_out!r} held out",
             "",
             f"Index `{report.index}`, k={report.k}; {report.held_out_train_rows} training rows of the class added online "
             f"in steps; {report.held_out_test_rows} of its test rows. Reference: a model trained with every row.",
             "",
             "| rows added | class accuracy | overall accuracy | add seconds |",
             "|---:|---:|---:|---:|"]
    lines += [f"| {s.added} | {s.class_accuracy:.4f} | {s.overall_accuracy:.4f} | {s.add_seconds:.3f} |" for s in report.steps]
    lines += [f"| reference | {report.reference_class_accuracy:.4f} | {report.reference_overall_accuracy:.4f} | |", ""]
    return "\n".join(lines)


def draw(report: OnlineReport, path: Path) -> Path:
    """Accuracy (class and overall) against rows added, log scale, with the reference as dashed lines."""
    from knnserve.plotting import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    xs = [max(s.added, 0.5) for s in report.steps]  # 0 rows drawn at 0.5 on the log axis
    ax.plot(xs, [s.class_accuracy for s in report.steps], "o-", label=f"class {report.held_out!r}")
    ax.plot(xs, [s.overall_accuracy for s in report.steps], "s-", label="all classes")
    ax.axhline(report.reference_class_accuracy, linestyle="--", color="C0", alpha=0.6, label="class, trained with it")
    ax.axhline(report.reference_overall_accuracy, linestyle="--", color="C1", alpha=0.6, label="all, trained with it")
    ax.set_xscale("log")
    ax.set_xlabel("rows of the held-out class added online (0 drawn at 0.5)")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"{report.dataset}: learning a new class while serving ({report.index}, k={report.k})")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def as_dict(report: OnlineReport) -> dict[str, Any]:
    """The report as JSON-ready data."""
    return asdict(report)


__all__ = ["DEFAULT_STEPS", "OnlineReport", "OnlineStep", "draw", "markdown", "run_online"]
