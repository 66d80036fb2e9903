"""docs/service.md's curl lines, run as written against a real server.

The two shell blocks after the marker comment in the REST section are run line by line with bash, in a
folder holding ``images.npy`` (28x28 uint8 rows) and ``read.token``, against a server on 127.0.0.1:0 that
stands in for the block's ``knnserve serve`` line (a model named fashion-mnist; the token when that line
names --token-file). The lines say ``localhost:8000``; a ``.curlrc`` in ``CURL_HOME`` (``connect-to``) sends
those connections to the server's real port, so the command lines themselves run unchanged.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from knnserve.model import KNNModel
from knnserve.service.config import ServeConfig
from knnserve.service.server import KnnServer
from knnserve_client.wire.query import KnnQuery

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "service.md"
MARKER = "<!-- The curl lines of the two blocks below run as written"
SEPARATOR = "@@@ end of line @@@"
TOKEN = "docs-token"


def doc_blocks() -> list[list[str]]:
    """The two ``sh`` blocks after the marker, as their lines."""
    text = DOC.read_text()
    assert MARKER in text, "the REST section's marker comment is missing from docs/service.md"
    rest = text.split(MARKER, 1)[1]
    blocks = [part.split("\n```", 1)[0] for part in rest.split("```sh\n")[1:3]]
    return [[line for line in block.splitlines() if line.strip()] for block in blocks]


def run_lines(lines: list[str], folder: Path, port: int) -> list[str]:
    """Run ``lines`` with bash in ``folder`` (the venv's python first on PATH); each line's output."""
    curl_home = folder / "curl-home"
    curl_home.mkdir(exist_ok=True)
    (curl_home / ".curlrc").write_text(f'connect-to = "localhost:8000:127.0.0.1:{port}"\n')
    script = "".join(f"{line}\necho '{SEPARATOR}'\n" for line in lines)
    env = {**os.environ, "CURL_HOME": str(curl_home), "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(["bash", "-c", script], cwd=folder, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    outputs = done.stdout.split(SEPARATOR + "\n")
    assert len(outputs) == len(lines) + 1, (done.stdout, done.stderr)
    return outputs[:-1]


@pytest.fixture(scope="module")
def fashion(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, KNNModel, np.ndarray]:
    """A tiny 28x28 uint8 model named fashion-mnist (10 classes), and query images."""
    rng = np.random.default_rng(7)
    templates = rng.integers(0, 256, size=(10, 28, 28))
    y = rng.integers(0, 10, 400)
    x = np.clip(templates[y] + rng.integers(-50, 51, size=(400, 28, 28)), 0, 255).astype(np.uint8)
    queries = np.clip(templates[rng.integers(0, 10, 8)] + rng.integers(-50, 51, size=(8, 28, 28)), 0, 255).astype(np.uint8)
    root = tmp_path_factory.mktemp("docs-models")
    KNNModel.fit(x, y, class_names=tuple(f"c{i}" for i in range(10)), index="flat").save(root / "fashion-mnist" / "1",
                                                                                         name="fashion-mnist")
    return root, KNNModel.load(root / "fashion-mnist" / "1"), queries


def test_the_docs_curl_lines_run_as_written(fashion, tmp_path: Path, curl: str) -> None:  # type: ignore[no-untyped-def]
    root, model, images = fashion
    np.save(tmp_path / "images.npy", images)
    (tmp_path / "read.token").write_text(TOKEN + "\n")
    plain, guarded = doc_blocks()
    assert plain[0].startswith("knnserve serve ") and "--http-port 8000" in plain[0]
    assert guarded[0].startswith("knnserve serve ") and "--token-file read.token" in guarded[0]
    assert all(line.startswith(("curl ", "python ", "json=", "{ printf")) for line in plain[1:] + guarded[1:])
    answers: dict[str, str] = {}
    for lines, token in ((plain, None), (guarded, TOKEN)):
        server = KnnServer(ServeConfig(models_dir=root, port=0, http_port=0, token=token, grace_s=1.0))
        server.start()
        try:
            server.load_models()
            outputs = run_lines(lines[1:], tmp_path, server.http_port or 0)
        finally:
            server.stop(0)
        answers.update({f"{'token' if token else 'plain'}: {line}": out for line, out in zip(lines[1:], outputs)})

    def answer(block: str, fragment: str) -> str:
        (found,) = [out for line, out in answers.items() if line.startswith(block) and fragment in line]
        return found

    assert answer("plain", "health/ready") == "200\n"
    (metadata_line,) = [line for line in plain if line.startswith("curl ") and line.rstrip().endswith("/v2/models/fashion-mnist")]
    metadata = json.loads(answers[f"plain: {metadata_line}"])
    assert metadata["name"] == "fashion-mnist" and metadata["inputs"] == [{"name": "images", "datatype": "UINT8", "shape": [-1, 28, 28]}]
    inferred = json.loads(answer("plain", "Content-Type: application/json"))
    expected = model.classify(images[:2], KnnQuery(k=10))
    assert [o["name"] for o in inferred["outputs"]] == ["predictions", "scores"]
    assert inferred["outputs"][0]["data"] == expected.predictions.tolist()
    error, status = answer("plain", "versions/9").rsplit(" ", 1)
    assert status.strip() == "404" and "version 9" in json.loads(error)["error"]
    binary = json.loads(answer("plain", "Inference-Header-Content-Length"))
    assert binary["outputs"] == [{"name": "predictions", "datatype": "INT64", "shape": [1],
                                  "data": [int(model.classify(images[:1]).predictions[0])]}]
    refused, status = answer("token", "-w").rsplit(" ", 1)
    assert status.strip() == "401" and json.loads(refused) == {"error": "missing bearer token (header Authorization: Bearer <token>)"}
    allowed = json.loads(answer("token", "Authorization: Bearer"))
    assert allowed["outputs"][0]["data"] == expected.predictions.tolist()
