"""The knnserve CLI end to end on a tiny .npz dataset: train, info, predict, and its error path."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from knnserve.cli import main
from knnserve.kernels.runtime import int8_gemm_exact
from knnserve.model import KNNModel
from knnserve_client.wire.query import KnnQuery


@pytest.fixture
def npz_dir(tmp_path: Path, pixels) -> Path:
    x, y = pixels
    folder = tmp_path / "data"
    folder.mkdir()
    np.savez(folder / "tiny.npz", x_train=x[:600], y_train=y[:600], x_test=x[600:], y_test=y[600:])
    return folder


def test_train_info_predict(tmp_path: Path, npz_dir: Path, pixels, capsys: pytest.CaptureFixture[str]) -> None:
    bundle = tmp_path / "models" / "tiny"
    assert main(["train", "--data-dir", str(npz_dir), "--index", "ivf", "--k", "3", "--out", str(bundle), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "knn_test_accuracy" in printed and "SQ8_direct" in printed

    assert main(["info", "--model", str(bundle)]) == 0
    assert "search kernel: ivf-gemm-int8" in capsys.readouterr().out or not int8_gemm_exact()
    assert main(["info", "--model", str(bundle), "--json"]) == 0
    manifest = json.loads(capsys.readouterr().out)
    assert manifest["knn"]["k"] == 3 and manifest["index"]["kind"] == "ivf"

    x, y = pixels
    queries = tmp_path / "q.npy"
    np.save(queries, x[600:])
    out = tmp_path / "pred.csv"
    assert main(["predict", "--model", str(bundle), "--input", str(queries), "--nprobe", "2", "--out", str(out), "--no-progress"]) == 0
    with out.open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 200 and list(rows[0]) == ["row", "label", "class_name", "probability"]
    expected = KNNModel.load(bundle).classify(x[600:], KnnQuery(nprobe=2)).predictions
    assert [int(r["label"]) for r in rows] == expected.tolist()
    accuracy = np.mean([int(r["label"]) == t for r, t in zip(rows, y[600:])])
    assert accuracy == pytest.approx(manifest["metrics"]["knn_test_accuracy"], abs=0.05)


def test_errors_are_one_line_and_exit_2(tmp_path: Path, npz_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["train", "--data-dir", str(npz_dir), "--index", "ivfpq", "--metric", "l1", "--out", str(tmp_path / "m")])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("knnserve train: error: metric") and "Traceback" not in err and err.count("\n") == 1
    assert main(["info", "--model", str(tmp_path / "missing")]) == 2
    assert "not a folder" in capsys.readouterr().err


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    for command in ("train", "predict", "info", "data"):
        assert command in text


def test_k_auto_chooses_by_cross_validation(tmp_path: Path, npz_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bundle = tmp_path / "auto"
    plot = tmp_path / "cv.png"
    args = ["train", "--data-dir", str(npz_dir), "--k", "auto", "--cv-folds", "3", "--cv-plot", str(plot), "--out", str(bundle), "--no-progress"]
    assert main(args) == 0
    assert "cross-validation (3 folds" in capsys.readouterr().out
    manifest = KNNModel.load(bundle).manifest
    assert manifest is not None
    cv = manifest.metrics["knn_cv"]
    assert manifest.knn.k == cv["best"]["k"] and manifest.knn.weights == cv["best"]["weights"]
    assert {c["k"] for c in cv["candidates"]} >= {1, 3, 5} and len(cv["best"]["folds"]) == 3
    assert plot.read_bytes()[:4] == b"\x89PNG"
