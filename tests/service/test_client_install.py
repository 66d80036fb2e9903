"""`pip install ./client` in a fresh virtualenv gives a working client that needs only grpcio, protobuf and numpy."""

from __future__ import annotations

import json
import subprocess
import venv
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
ALLOWED = {"grpcio", "protobuf", "numpy", "knnserve-client", "pip", "setuptools", "wheel", "typing-extensions"}  # grpcio needs the last

CLIENT_SCRIPT = """
import importlib.util, json, os, sys
before = dict(os.environ)
import numpy as np
import knnserve_client
from knnserve_client import Client, KnnQuery
with Client(sys.argv[1], timeout=30) as client:
    result = client.classify("pixels", np.load(sys.argv[2]), k=3)
print(json.dumps({
    "predictions": result.knn.predictions.tolist(),
    "params": [result.params.k, result.params.weights],
    "environ_unchanged": dict(os.environ) == before,
    "importable": {name: importlib.util.find_spec(name) is not None for name in ("faiss", "sklearn", "scipy", "torch", "knnserve")},
}))
"""


@pytest.fixture(scope="module")
def client_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with nothing but `pip install ./client` (packages from the index or pip's cache)."""
    folder = tmp_path_factory.mktemp("client-venv")
    venv.create(folder, with_pip=True)
    python = folder / "bin" / "python"
    done = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(ROOT / "client")],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return python


def test_the_client_installs_alone(client_venv: Path) -> None:
    listed = subprocess.run([str(client_venv), "-m", "pip", "list", "--format", "json", "--disable-pip-version-check"],
                            capture_output=True, text=True, check=True).stdout
    installed = {entry["name"].lower().replace("_", "-") for entry in json.loads(listed)}  # PEP 503 names
    assert {"grpcio", "protobuf", "numpy", "knnserve-client"} <= installed
    assert installed <= ALLOWED, f"the client pulled in {sorted(installed - ALLOWED)}"


def test_the_installed_client_classifies_through_a_real_server(client_venv: Path, shared_server, models, tmp_path: Path) -> None:
    x = models.pix.x_query[:20]
    np.save(tmp_path / "x.npy", x)
    done = subprocess.run([str(client_venv), "-c", CLIENT_SCRIPT, shared_server[1], str(tmp_path / "x.npy")],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    answer = json.loads(done.stdout)
    from knnserve_client import KnnQuery

    assert answer["predictions"] == models.pixels.classify(x, KnnQuery(k=3)).predictions.tolist()
    assert answer["params"] == [3, models.pixels.defaults.weights]
    assert answer["environ_unchanged"]
    assert not any(answer["importable"].values()), answer["importable"]
