"""The Open Inference Protocol on the real Fashion-MNIST: tritonclient's predictions over gRPC and over REST
(binary data and JSON) equal Classify's on the same test rows, for a Flat and an HNSW bundle served side by side."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from knnserve.model import KNNModel
from knnserve.service.config import ServeConfig
from knnserve.service.server import KnnServer
from knnserve_client import Client

pytestmark = pytest.mark.e2e
PROBE = Path(__file__).resolve().parents[1] / "service" / "tritonclient_probe.py"
TRAIN_ROWS = 12000  # a slice of the training split keeps the HNSW build to seconds


def test_tritonclient_predictions_equal_classify(fashion_mnist, tmp_path: Path) -> None:
    ds = fashion_mnist
    for name, index in (("fm-flat", "flat"), ("fm-hnsw", "hnsw")):
        model = KNNModel.fit(ds.x_train[:TRAIN_ROWS], ds.y_train[:TRAIN_ROWS], class_names=ds.class_names, index=index)
        model.save(tmp_path / "models" / name / "1", name=name)
    server = KnnServer(ServeConfig(models_dir=tmp_path / "models", port=0, http_port=0, grace_s=1.0, drain_s=0.0))
    port = server.start()
    try:
        server.load_models()
        target = f"127.0.0.1:{port}"
        rows = ds.x_test[:300]
        np.save(tmp_path / "x.npy", rows)
        steps = [{"call": "infer", "model": name, "input": str(tmp_path / "x.npy"), "outputs": ["predictions"], "binary": binary}
                 for name in ("fm-flat", "fm-hnsw") for binary in (True, False)]
        (tmp_path / "steps.json").write_text(json.dumps(steps))
        answers = {}
        for binding, address, flags in (("grpc", target, []), ("rest", f"127.0.0.1:{server.http_port}", ["--http"])):
            done = subprocess.run([sys.executable, str(PROBE), *flags, address, str(tmp_path / "steps.json")],
                                  capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, done.stderr[-3000:]
            answers[binding] = json.loads(done.stdout)
        with Client(target, timeout=30) as client:
            for index, step in enumerate(steps):
                expected = client.classify(step["model"], rows).knn.predictions
                for binding in ("grpc", "rest"):
                    np.testing.assert_array_equal(answers[binding][index]["ok"]["outputs"]["predictions"], expected,
                                                  err_msg=f"{binding} {step}")
                assert np.mean(expected == ds.y_test[:300]) > 0.75
    finally:
        server.stop(0)
