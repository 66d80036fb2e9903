"""The server image users deploy (knnserve:dev, built by `make image` from deploy/Dockerfile), run as
deploy/compose.yaml runs it: read-only root, tmpfs, no capabilities, uid 10001, no new privileges, a
read-only bundle folder and a token file. Its answers on 1,000 Fashion-MNIST rows equal the same
bundle served outside the container, over both protocols (and the Open Inference Protocol over REST);
reload, drain and a CNN bundle work in it.

Needs docker and the built image: skipped without them, failed under KNNSERVE_REQUIRE_TOOLS=1
(`make test` starts dockerd and builds the image first). Run alone with `pytest -m image`.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import yaml
from grpc_health.v1 import health_pb2
from image_containers import (
    HARDENING,
    IMAGE,
    STOP_GRACE_S,
    Container,
    docker,
    health,
    readable_by_anyone,
    remove,
    run_container,
    token_file,
    wait_serving,
)

from knnserve.model import KNNModel
from knnserve.service.config import ServeConfig
from knnserve.service.server import KnnServer
from knnserve_client import Client, UnauthenticatedError

pytestmark = pytest.mark.image
ROOT = Path(__file__).resolve().parents[2]
PROBE = ROOT / "tests" / "service" / "tritonclient_probe.py"
ROWS = 1000
MAX_IMAGE_BYTES = 600 * 10**6
MAX_START_TO_SERVING_S = 10.0
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@dataclass(frozen=True)
class Served:
    """The Fashion-MNIST Flat bundle in a container, its cold start, and the rows it is asked about."""

    container: Container
    start_to_serving_s: float
    rows: np.ndarray
    labels: np.ndarray
    folder: Path


@pytest.fixture(scope="module")
def served(fashion_mnist: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A Flat bundle over the whole training split (60,000 images) served from the image."""
    folder = tmp_path_factory.mktemp("image-fm")
    models = folder / "models"
    ds = fashion_mnist
    KNNModel.fit(ds.x_train, ds.y_train, class_names=ds.class_names, index="flat").save(models / "fm" / "1", name="fm")
    readable_by_anyone(models)
    _, token_path = token_file(folder)
    container = run_container(models, token_path)
    try:
        seconds = wait_serving(container)
        yield Served(container, seconds, ds.x_test[:ROWS], ds.y_test[:ROWS], folder)
    finally:
        remove(container)


@pytest.fixture
def small_models(fashion_mnist: Any, tmp_path: Path) -> tuple[Path, Path]:
    """A models folder with a 2,000-row Flat bundle fm/1 (quick to load), and a token file."""
    ds = fashion_mnist
    models = tmp_path / "models"
    KNNModel.fit(ds.x_train[:2000], ds.y_train[:2000], class_names=ds.class_names, index="flat").save(models / "fm" / "1", name="fm")
    _, token_path = token_file(tmp_path)
    return readable_by_anyone(models), token_path


@pytest.fixture
def container_of(request: pytest.FixtureRequest) -> Iterator[Any]:
    """Start containers over a models folder; each is removed when the test ends."""
    started: list[Container] = []

    def start(models: Path, token_path: Path) -> Container:
        started.append(run_container(models, token_path))
        return started[-1]

    yield start
    for container in started:
        remove(container)


def triton(target: str, steps: list[dict[str, Any]], folder: Path, *, http: bool = False) -> list[dict[str, Any]]:
    """tritonclient's answers to ``steps`` (a subprocess: its protobuf modules clash with the server's)."""
    script = folder / "steps.json"
    script.write_text(json.dumps(steps))
    command = [sys.executable, str(PROBE), *(["--http"] if http else []), target, str(script)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return list(json.loads(done.stdout))


# -- the image ----------------------------------------------------------------------------------


def test_the_image_holds_the_server_without_torch() -> None:
    size = int(docker("image", "inspect", "--format", "{{.Size}}", IMAGE).stdout)
    assert size <= MAX_IMAGE_BYTES, f"{IMAGE} is {size / 1e6:.0f} MB, over {MAX_IMAGE_BYTES / 1e6:.0f} MB"
    check = ("import importlib.util as u; import onnxruntime, faiss, knnserve.cli, knnserve_client; "
             "print(u.find_spec('torch') is None, u.find_spec('ray') is None)")
    done = docker("run", "--rm", "--network", "none", *HARDENING, "--entrypoint", "python", IMAGE, "-c", check)
    assert done.stdout.split() == ["True", "True"], done.stdout + done.stderr
    torch = docker("run", "--rm", "--network", "none", "--entrypoint", "python", IMAGE, "-c", "import torch", check=False)
    assert torch.returncode != 0 and "No module named 'torch'" in torch.stderr


def test_the_tests_run_the_container_as_compose_does() -> None:
    service = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())["services"]["knnserve"]
    assert service["read_only"] is True and "--read-only" in HARDENING
    for path in service["tmpfs"]:
        assert HARDENING[HARDENING.index(path) - 1] == "--tmpfs"
    assert service["cap_drop"] == ["ALL"] and "ALL" in HARDENING
    assert service["security_opt"] == ["no-new-privileges:true"] and "no-new-privileges:true" in HARDENING
    assert str(service["cpus"]) in HARDENING and service["mem_limit"] in HARDENING
    assert service["stop_grace_period"] == f"{STOP_GRACE_S}s"


# -- one container over the Fashion-MNIST Flat bundle --------------------------------------------


def test_it_starts_to_serving_within_the_target(served: Served) -> None:
    assert served.start_to_serving_s <= MAX_START_TO_SERVING_S, f"{served.start_to_serving_s:.1f} s to SERVING"


def test_it_runs_hardened(served: Served) -> None:
    container = served.container
    host = container.inspect()["HostConfig"]
    assert host["ReadonlyRootfs"] is True and host["CapDrop"] == ["ALL"] and host["NetworkMode"] == "host"
    assert host["SecurityOpt"] == ["no-new-privileges:true"]
    status = container.exec("cat", "/proc/1/status").stdout
    fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
    assert fields["Uid"].split()[:2] == ["10001", "10001"] and fields["Gid"].split()[0] == "10001"
    assert fields["NoNewPrivs"].strip() == "1" and int(fields["CapEff"], 16) == 0 and int(fields["CapBnd"], 16) == 0
    assert container.exec("touch", "/usr/local/x").returncode != 0  # read-only root
    assert container.exec("touch", "/models/x").returncode != 0  # read-only bundles
    assert container.exec("touch", "/tmp/x", "/home/knnserve/.cache/x").returncode == 0  # the tmpfs


def test_its_healthcheck_turns_healthy_and_the_probes_answer(served: Served) -> None:
    container = served.container
    deadline = time.perf_counter() + 60  # the image's HEALTHCHECK runs every 10 s
    while (state := container.inspect()["State"]["Health"]["Status"]) != "healthy" and time.perf_counter() < deadline:
        time.sleep(0.5)
    assert state == "healthy", container.inspect()["State"]["Health"]
    assert container.http("/readyz") == 200 and container.http("/livez") == 200
    assert health(container.target) == SERVING


def test_predictions_equal_the_same_bundle_outside_over_every_binding(served: Served) -> None:
    container, rows = served.container, served.rows
    np.save(served.folder / "rows.npy", rows)
    infer = [{"call": "infer", "model": "fm", "input": str(served.folder / "rows.npy"), "outputs": ["predictions"],
              "headers": {"authorization": f"Bearer {container.token}"}}]
    outside = KnnServer(ServeConfig(models_dir=served.folder / "models", port=0, grace_s=1.0, drain_s=0.0))
    port = outside.start()
    try:
        outside.load_models()
        with Client(f"127.0.0.1:{port}", timeout=60) as client:
            expected = client.classify("fm", rows, return_neighbors=True)
        expected_infer = triton(f"127.0.0.1:{port}", infer, served.folder)[0]["ok"]["outputs"]["predictions"]
    finally:
        outside.stop(0)
    with Client(container.target, timeout=60, token=container.token) as client:
        inside = client.classify("fm", rows, return_neighbors=True)
    inside_infer = triton(container.target, infer, served.folder)[0]
    assert "ok" in inside_infer, inside_infer
    inside_rest = triton(f"127.0.0.1:{container.http_port}", infer, served.folder, http=True)[0]  # the REST port
    assert "ok" in inside_rest, inside_rest
    np.testing.assert_array_equal(inside_rest["ok"]["outputs"]["predictions"], expected_infer)
    assert inside.knn is not None and expected.knn is not None and inside.neighbors is not None and expected.neighbors is not None
    np.testing.assert_array_equal(inside.knn.predictions, expected.knn.predictions)
    np.testing.assert_array_equal(inside.neighbors.ids, expected.neighbors.ids)
    np.testing.assert_array_equal(inside_infer["ok"]["outputs"]["predictions"], expected_infer)
    np.testing.assert_array_equal(expected_infer, expected.knn.predictions)
    assert len(expected_infer) == ROWS and np.mean(inside.knn.predictions == served.labels) > 0.8


def test_a_wrong_token_is_refused(served: Served) -> None:
    container = served.container
    with Client(container.target, timeout=10, token="not-" + container.token) as client:
        with pytest.raises(UnauthenticatedError) as failure:
            client.classify("fm", served.rows[:2])
    assert failure.value.code == grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
    with Client(container.target, timeout=10) as client, pytest.raises(UnauthenticatedError):
        client.models()
    np.save(served.folder / "two.npy", served.rows[:2])
    answer = triton(container.target, [{"call": "infer", "model": "fm", "input": str(served.folder / "two.npy"),
                                        "headers": {"authorization": "Bearer wrong"}}], served.folder)[0]
    assert answer.get("error") == "StatusCode.UNAUTHENTICATED", answer


# -- containers of their own: reload, stop, a CNN bundle ----------------------------------------


def test_sighup_loads_a_new_version_inside_the_container(small_models: tuple[Path, Path], container_of: Any,
                                                         fashion_mnist: Any) -> None:
    models, token_path = small_models
    container = container_of(models, token_path)
    wait_serving(container)
    with Client(container.target, timeout=10, token=container.token) as client:
        assert client.model("fm").versions == (1,)
        ds = fashion_mnist
        KNNModel.fit(ds.x_train[2000:3000], ds.y_train[2000:3000], class_names=ds.class_names, index="flat").save(
            models / "fm" / "2", name="fm")
        readable_by_anyone(models)
        docker("kill", "--signal", "HUP", container.name)
        deadline = time.perf_counter() + 30
        while client.model("fm").version != 2 and time.perf_counter() < deadline:
            time.sleep(0.1)
        assert client.model("fm").versions == (1, 2), container.logs()[-3000:]
        assert client.classify("fm", ds.x_test[:5], version=2).version == 2
    assert container.inspect()["State"]["Running"]


def test_docker_stop_drains_then_exits_zero_within_the_grace_period(small_models: tuple[Path, Path],
                                                                   container_of: Any) -> None:
    container = container_of(*small_models)
    wait_serving(container)
    seen: list[int | None] = []
    stopped = threading.Event()

    def watch() -> None:
        while not stopped.is_set():
            seen.append(health(container.target, timeout=0.5))
            time.sleep(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    began = time.perf_counter()
    try:
        docker("stop", "--time", str(STOP_GRACE_S), container.name, timeout=STOP_GRACE_S + 30)
    finally:
        stopped.set()
        watcher.join()
    took = time.perf_counter() - began
    state = container.inspect()["State"]
    assert state["ExitCode"] == 0 and not state["OOMKilled"], container.logs()[-3000:]
    assert took < STOP_GRACE_S, f"docker stop took {took:.1f} s: the server did not exit before SIGKILL"
    assert NOT_SERVING in seen, f"health during the stop: {seen}"
    assert seen.index(NOT_SERVING) > seen.index(SERVING)


def test_a_cnn_bundle_serves_from_the_image_without_torch(cnn_bundle: Any, tmp_path: Path, container_of: Any) -> None:
    models = tmp_path / "models"
    shutil.copytree(cnn_bundle.root, models)
    _, token_path = token_file(tmp_path)
    container = container_of(readable_by_anyone(models), token_path)
    wait_serving(container)
    model = KNNModel.load(cnn_bundle.path)
    x = cnn_bundle.dataset.x_test
    with Client(container.target, timeout=30, token=container.token) as client:
        result = client.classify("shapes", x, heads=["knn", "linear"])
    assert result.knn is not None and result.linear is not None
    np.testing.assert_array_equal(result.knn.predictions, model.classify(x).predictions)
    np.testing.assert_array_equal(result.linear.predictions, model.predict_linear(model.prepare(x))[0])
