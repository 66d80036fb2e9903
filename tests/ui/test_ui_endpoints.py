"""The page's JSON endpoints against a real server: answers, and every error path as a status code and a readable message."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from knnserve.ui.images import png_bytes
from knnserve_client import Client, KnnQuery
from ui_fixtures import TOKEN, UiFactory, UiModels, call, png_url, start_grpc, tiny_images


@pytest.fixture(scope="module")
def page(start_ui: UiFactory, grpc_target: str) -> str:
    return start_ui(grpc_target)


def test_models_and_card(page: str) -> None:
    status, answer = call(page, "/api/models")
    assert status == 200
    assert [m["name"] for m in answer["models"]] == ["tiny", "tiny-ivf"]
    status, card = call(page, "/api/card?model=tiny")
    assert status == 200
    assert card["index"]["ntotal"] == 240 and card["index"]["metric"] == "l2"
    assert card["dataset_match"]["ok"] and "checksum" in card["dataset_match"]["reason"]
    bundle = card["bundle"]
    assert set(bundle["accuracies"]) == {"knn_test_accuracy", "linear_test_accuracy"}
    assert bundle["cv_plot"].startswith("data:image/png;base64,") and bundle["cv_best"].startswith("k=")
    assert [t["class"] for t in bundle["templates"]] == ["ring", "bar", "cross"]
    status, ivf = call(page, "/api/card?model=tiny-ivf&version=1")
    assert ivf["limits"]["max_nprobe"] == 4 and ivf["bundle"]["templates_note"] == "no linear head in this bundle"


def test_inspect_matches_a_search_call(page: str, grpc_target: str, ui_models: UiModels) -> None:
    status, answer = call(page, "/api/inspect", {"model": "tiny", "source": "test", "row": 7, "k": 6, "weights": "distance"})
    assert status == 200
    row = ui_models.dataset.x_test[7:8]
    with Client(grpc_target, timeout=10) as client:
        searched = client.search("tiny", row, k=6)
        classified = client.classify("tiny", row, k=6, weights="distance", heads=["knn", "linear"])
    assert [n["id"] for n in answer["neighbors"]] == searched.ids[0].tolist()
    assert np.allclose([n["distance"] for n in answer["neighbors"]], searched.distances[0])
    assert [n["label"] for n in answer["neighbors"]] == ui_models.dataset.y_train[searched.ids[0]].tolist()
    assert all(n["thumbnail"].startswith("data:image/png") for n in answer["neighbors"])
    assert answer["heads"]["knn"]["prediction"] == int(classified.knn.predictions[0])
    assert answer["heads"]["linear"]["prediction"] == int(classified.linear.predictions[0])
    assert answer["input"]["truth"] == int(ui_models.dataset.y_test[7])
    assert answer["params"]["k"] == 6 and answer["params"]["weights"] == "distance"
    assert answer["votes_agree"] and answer["latency_ms"] > 0
    votes = {v["class"]: v["vote"] for v in answer["votes"]["per_class"]}
    weights = 1.0 / searched.distances[0]
    for c, vote in votes.items():
        assert vote == pytest.approx(weights[searched.labels[0] == c].sum(), rel=1e-5)


def test_upload_is_classified_like_the_row(page: str, grpc_target: str, ui_models: UiModels) -> None:
    row = ui_models.dataset.x_test[11]
    status, answer = call(page, "/api/inspect", {"model": "tiny", "source": "image", "image": png_url(row)})
    assert status == 200
    with Client(grpc_target, timeout=10) as client:
        expected = client.classify("tiny", row[None]).knn.predictions[0]
    assert answer["heads"]["knn"]["prediction"] == int(expected)
    assert answer["input"]["source"] == "image" and answer["input"]["truth"] is None


def test_ties_are_explained(page: str) -> None:
    for row in range(60):  # k=2 ties whenever the two nearest disagree
        status, answer = call(page, "/api/inspect", {"model": "tiny", "source": "test", "row": row, "k": 2, "tie_break": "lowest"})
        assert status == 200
        if len(answer["votes"]["tied"]) > 1:
            assert "rule 'lowest'" in answer["votes"]["rule"]
            assert answer["votes"]["winner"] == min(answer["votes"]["tied"]) == answer["heads"]["knn"]["prediction"]
            return
    pytest.fail("no tie at k=2 in the tiny test split")


@pytest.mark.parametrize(("body", "status", "message"), [
    ({"model": "tiny", "source": "image", "image": "data:image/png;base64," + base64.b64encode(b"not a png").decode()},
     400, "image: expected a PNG or JPEG file"),
    ({"model": "tiny", "source": "image", "image": png_url(np.zeros((28, 28), dtype=np.uint8))},
     400, "12x12 grey images (or tick 'resize' to scale it), got a 28x28 image"),
    ({"model": "tiny", "source": "image"}, 400, "image: expected a PNG or JPEG file, got no file"),
    ({"model": "unknown", "source": "test", "row": 0}, 404, "the server said: model 'unknown' is not served"),
    ({"model": "tiny", "version": 9, "source": "test", "row": 0}, 404, "the server said:"),
    ({"model": "tiny", "source": "test", "row": 60}, 400, "row: expected a test row between 0 and 59, got 60"),
    ({"model": "tiny", "source": "test", "row": "three"}, 400, "row: expected an integer >= 0"),
    ({"model": "tiny", "source": "nowhere"}, 400, "source: expected 'test' or 'image'"),
    ({"model": "tiny", "source": "test", "row": 0, "k": 0}, 400, "k: expected an integer >= 1"),
    ({"model": "tiny", "source": "test", "row": 0, "k": 5000}, 400, "the server said: k:"),
    ({"model": "tiny", "source": "test", "row": 0, "nprobe": 2}, 400, "the server said: nprobe"),
    ({"model": "tiny", "source": "test", "row": 0, "weights": "loud"}, 400, "weights: expected one of uniform, distance"),
    ({"model": "tiny-ivf", "source": "test", "row": 0, "nprobe": 99}, 400, "nlist=4"),
    ({"source": "test", "row": 0}, 400, "model: expected a model name"),
])
def test_inspect_errors_are_readable(page: str, body: dict[str, Any], status: int, message: str) -> None:
    got, answer = call(page, "/api/inspect", body)
    assert (got, answer["status"]) == (status, status)
    assert message in answer["error"]


def test_request_errors(page: str) -> None:
    assert call(page, "/api/inspect", raw=b"{not json")[0] == 400
    assert call(page, "/api/inspect", raw=b"[1, 2]")[1]["error"] == "expected a JSON object"
    status, answer = call(page, "/api/inspect", raw=b"{}", headers={"Content-Type": "text/plain"})
    assert status == 415 and "JSON" in answer["error"]
    status, answer = call(page, "/api/inspect", raw=b"x" * (8 * 1024 * 1024))
    assert status == 413 and "too large" in answer["error"]
    assert call(page, "/api/nothing")[0] == 404
    assert call(page, "/api/other", {})[0] == 404
    assert call(page, "/static/secret.py")[0] == 404
    assert call(page, "/api/test?model=tiny&offset=-1")[0] == 400
    assert call(page, "/api/test?model=tiny&label=7")[1]["error"] == "label: expected a class index below 3, got 7"
    assert call(page, "/api/test?model=tiny&version=x")[1]["error"].startswith("version: expected an integer >= 1")
    assert call(page, "/api/card?model=../etc")[0] == 404
    assert call(page, "/api/examples?model=tiny&true=5&predicted=0")[0] == 400


def test_test_pages_and_confusion(page: str, ui_models: UiModels) -> None:
    status, answer = call(page, "/api/test?model=tiny&offset=10&limit=5&label=1")
    rows = np.flatnonzero(ui_models.dataset.y_test == 1)[10:15].tolist()
    assert status == 200 and [i["row"] for i in answer["images"]] == rows and answer["total"] == int((ui_models.dataset.y_test == 1).sum())
    status, confusion = call(page, "/api/confusion?model=tiny")
    counts = np.array(confusion["counts"])
    assert status == 200 and counts.sum() == 60
    assert confusion["accuracy"] == pytest.approx(np.trace(counts) / 60)
    worst = confusion["worst"][0]
    assert worst["count"] == counts[worst["true"], worst["predicted"]] == max(counts[t, p] for t in range(3) for p in range(3) if t != p)
    status, examples = call(page, f"/api/examples?model=tiny&true={worst['true']}&predicted={worst['predicted']}")
    assert status == 200 and len(examples["images"]) == worst["count"]
    assert all(ui_models.dataset.y_test[i["row"]] == worst["true"] for i in examples["images"])


def test_other_hosts_are_refused(page: str) -> None:
    status, answer = call(page, "/api/models", headers={"Host": "attacker.example:80"})
    assert status == 403 and "127.0.0.1" in answer["error"]


def test_an_unexpected_failure_is_a_generic_500(page: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from knnserve.ui import app

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(app.UiApp, "models", broken)
    status, answer = call(page, "/api/models")
    assert status == 500 and "secret" not in answer["error"] and "log" in answer["error"]


def test_the_token_is_the_servers_to_check(start_ui: UiFactory, grpc_auth_target: str) -> None:
    page = start_ui(grpc_auth_target)
    status, answer = call(page, "/api/models")
    assert status == 401 and "missing bearer token" in answer["error"]
    assert call(page, "/api/card?model=tiny", headers={"Authorization": "Bearer wrong"})[0] == 401
    assert call(page, "/api/test?model=tiny", headers={"Authorization": "Bearer wrong"})[0] == 401
    assert call(page, "/api/inspect", {"model": "tiny", "source": "test", "row": 0}, headers={"Authorization": "Basic abc"})[0] == 401
    status, answer = call(page, "/api/inspect", {"model": "tiny", "source": "test", "row": 0}, headers={"Authorization": f"Bearer {TOKEN}"})
    assert status == 200 and answer["neighbors"]


def test_a_dataset_that_is_not_the_models(start_ui: UiFactory, grpc_target: str, tmp_path: Path) -> None:
    other = tmp_path / "other.npz"
    np.savez(other, **tiny_images(seed=99))
    page = start_ui(grpc_target, data_dir=other)
    status, card = call(page, "/api/card?model=tiny")
    assert status == 200 and not card["dataset_match"]["ok"] and card["test_rows"] == 0
    status, answer = call(page, "/api/test?model=tiny")
    assert status == 400 and "another checksum" in answer["error"]
    row = tiny_images(seed=99)["x_test"][0]
    status, answer = call(page, "/api/inspect", {"model": "tiny", "source": "image", "image": png_url(row)})
    assert status == 200 and all(n["thumbnail"] is None for n in answer["neighbors"])


def test_the_latest_evaluation_gives_the_recall_plot(start_ui: UiFactory, grpc_target: str, tmp_path: Path) -> None:
    for name, created, dataset in (("old", "2026-01-01T00:00:00Z", "tiny"), ("new", "2026-06-01T00:00:00Z", "tiny"),
                                   ("other", "2026-12-01T00:00:00Z", "fashion-mnist")):
        folder = tmp_path / "runs" / name
        folder.mkdir(parents=True)
        (folder / "results.json").write_text(json.dumps({"created_at": created, "dataset": {"name": dataset}}))
        (folder / "recall_vs_qps.png").write_bytes(png_bytes(np.zeros((4, 4), dtype=np.uint8)))
    page = start_ui(grpc_target, evaluations=(tmp_path / "runs",))
    status, card = call(page, "/api/card?model=tiny")
    assert status == 200 and card["evaluation"]["folder"].endswith("new")
    assert card["evaluation"]["plot"].startswith("data:image/png")


def test_a_damaged_bundle_leaves_the_rest_of_the_card(start_ui: UiFactory, grpc_target: str, ui_models: UiModels,
                                                      tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "models"
    shutil.copytree(ui_models.models, copy)
    (copy / "tiny" / "1" / "linear.npz").write_bytes(b"damaged")
    page = start_ui(grpc_target, models_dir=copy)
    status, card = call(page, "/api/card?model=tiny")
    assert status == 200 and card["bundle"] is None
    assert "could not be read" in card["bundle_note"] and "sha256" in card["bundle_note"]
    assert card["index"]["ntotal"] == 240 and card["test_rows"] == 60  # the dataset still matches by name and size


def test_the_command_serves_until_sigterm(grpc_target: str, ui_models: UiModels) -> None:
    import signal
    import subprocess
    import sys

    command = [sys.executable, "-m", "knnserve.cli", "ui", "--server", grpc_target, "--port", "0",
               "--data-dir", str(ui_models.data_file), "--models", str(ui_models.models)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline() if process.stdout else ""
        assert line.startswith("inspection page on http://127.0.0.1:"), line
        url = line.split()[3].rstrip("/")
        status, answer = call(url, "/api/models")
        assert status == 200 and answer["models"]
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_busy_port_is_one_line(grpc_target: str) -> None:
    import socket
    import subprocess
    import sys

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "knnserve.cli", "ui", "--server", grpc_target, "--port", str(port)],
                                capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().startswith(f"knnserve ui: error: cannot listen on 127.0.0.1:{port}")
    assert "Traceback" not in result.stderr


def test_a_vector_model_has_no_pictures_but_works(start_ui: UiFactory, tmp_path: Path) -> None:
    from knnserve.data import load_dataset
    from knnserve.train import KnnConfig, LinearConfig, save_trained, train_model

    rng = np.random.default_rng(3)
    centres = rng.normal(scale=3.0, size=(2, 16))
    y_train, y_test = rng.integers(0, 2, 100), rng.integers(0, 2, 20)
    data = tmp_path / "vectors.npz"
    np.savez(data, x_train=(centres[y_train] + rng.normal(size=(100, 16))).astype(np.float32), y_train=y_train,
             x_test=(centres[y_test] + rng.normal(size=(20, 16))).astype(np.float32), y_test=y_test)
    dataset = load_dataset(data_dir=data)
    save_trained(train_model(dataset, KnnConfig(defaults=KnnQuery(k=3)), LinearConfig(loss="none")),
                 dataset, tmp_path / "models" / "vectors" / "1", name="vectors")
    server, target = start_grpc(tmp_path / "models")
    try:
        page = start_ui(target, models_dir=tmp_path / "models", data_dir=data)
        status, card = call(page, "/api/card?model=vectors")
        assert status == 200 and not card["image"] and card["input"] == "vectors of shape (16,)"
        status, tests = call(page, "/api/test?model=vectors&limit=2")
        assert status == 200 and [i["thumbnail"] for i in tests["images"]] == [None, None]
        status, answer = call(page, "/api/inspect", {"model": "vectors", "source": "test", "row": 0})
        assert status == 200 and len(answer["neighbors"]) == 3 and answer["input"]["thumbnail"] is None
        status, answer = call(page, "/api/inspect", {"model": "vectors", "source": "image", "image": png_url(np.zeros((4, 4), dtype=np.uint8))})
        assert status == 400 and "this one takes vectors of shape (16,)" in answer["error"]
    finally:
        server.stop(0)


def test_without_a_dataset_the_models_own_is_looked_up_by_name(start_ui: UiFactory, grpc_target: str) -> None:
    page = start_ui(grpc_target, data_dir=None)  # "tiny" is no registered dataset
    status, card = call(page, "/api/card?model=tiny")
    assert status == 200 and not card["dataset_match"]["ok"] and "tiny" in card["dataset_match"]["reason"]
    status, answer = call(page, "/api/test?model=tiny")
    assert status == 400 and "the dataset this model was trained on" in answer["error"]
    status, answer = call(page, "/api/inspect", {"model": "tiny", "source": "test", "row": 0})
    assert status == 400 and "an uploaded image" in answer["error"]
