"""The service's CLI commands: serve (a real process), models, classify."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from knnserve.cli import main
from knnserve_client.wire.query import KnnQuery


def test_models_command_prints_one_model_a_line_name_first(shared_server, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "--server", shared_server[1]]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["blobs", "hnsw", "pixels"]
    assert "version=2 versions=1,2" in lines[0] and "input=float32[16]" in lines[0]
    assert "index=HNSW32" in lines[1]


def test_models_command_reports_a_client_error(start_server, capsys: pytest.CaptureFixture[str]) -> None:
    _, target = start_server(token="t0ken")
    assert main(["models", "--server", target]) == 3  # a failed server call: its own exit status
    err = capsys.readouterr().err
    assert "UNAUTHENTICATED" in err and err.count("\n") == 1 and "Traceback" not in err
    os.environ["KNNSERVE_TEST_CLI_TOKEN"] = "t0ken"
    try:
        assert main(["models", "--server", target, "--token-env", "KNNSERVE_TEST_CLI_TOKEN"]) == 0
    finally:
        del os.environ["KNNSERVE_TEST_CLI_TOKEN"]


def test_classify_command_writes_predictions(shared_server, models, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    x = models.pix.x_query
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "pred.csv"
    code = main(["classify", "--server", shared_server[1], "--model", "pixels", "--input", str(tmp_path / "x.npy"),
                 "--out", str(out), "--k", "3"])
    assert code == 0, capsys.readouterr().err
    expected = models.pixels.classify(x, KnnQuery(k=3))
    with out.open() as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["label"]) for r in rows] == expected.predictions.tolist()
    np.testing.assert_allclose(
        [float(r["probability"]) for r in rows],
        expected.probabilities[np.arange(len(x)), expected.predictions],
        atol=1e-6,
    )
    assert rows[0]["class_name"] == models.pixels.class_names[expected.predictions[0]]


def test_serve_command_runs_until_sigterm(models) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "knnserve.cli", "serve", "--model", str(models.root / "pixels" / "1"), "--port", "0",
         "--grace", "1"],
        stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    try:
        port = None
        deadline = time.monotonic() + 30
        assert process.stderr is not None
        while port is None and time.monotonic() < deadline:
            line = process.stderr.readline()
            assert line, "server exited before listening"
            entry = json.loads(line)
            if entry["msg"] == "listening":
                port = entry["address"].rsplit(":", 1)[1]
        from knnserve_client import Client

        with Client(f"127.0.0.1:{port}", timeout=10) as client:
            deadline = time.monotonic() + 30
            while True:  # UNAVAILABLE while loading is retried by the client; poll until loaded
                try:
                    assert client.model("pixels").version == 1
                    break
                except Exception:
                    assert time.monotonic() < deadline
                    time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
