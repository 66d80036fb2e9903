"""knnserve evaluate --online on digits: the held-out class is unknown at first and learned as rows are added."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from knnserve.cli import main


def test_online_evaluation_learns_the_held_out_class(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", "--online", "--dataset", "digits", "--holdout", "3", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "online.json").read_text())
    steps = report["steps"]
    assert [s["added"] for s in steps] == [0, 1, 5, 20, 100, report["held_out_train_rows"]]
    assert steps[0]["class_accuracy"] == 0.0  # never seen: the k-NN head cannot name it
    assert steps[-1]["class_accuracy"] > 0.8 > steps[1]["class_accuracy"]
    # every row added online: the same rows as the model trained with them, so the same accuracy
    assert steps[-1]["overall_accuracy"] == pytest.approx(report["reference_overall_accuracy"], abs=0.01)
    assert (tmp_path / "online.png").stat().st_size > 0
    assert "reference" in capsys.readouterr().out
