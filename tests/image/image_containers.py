"""The server image under test, and its containers started the way deploy/compose.yaml starts them."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

IMAGE = os.environ.get("KNNSERVE_IMAGE", "knnserve:dev")
# Every container a test starts is named so, and removed when the test ends.
NAME_PREFIX = "knnserve-test-"
TOKEN_IN_CONTAINER = "/run/secrets/knnserve-token"
# deploy/compose.yaml's hardening and limits (a test keeps the two in step).
HARDENING = (
    "--read-only", "--tmpfs", "/tmp", "--tmpfs", "/home/knnserve/.cache:uid=10001,gid=10001", "--cap-drop", "ALL",
    "--security-opt", "no-new-privileges:true", "--cpus", "2", "--memory", "2g",
)
STOP_GRACE_S = 30  # compose's stop_grace_period


def docker(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the docker CLI; with ``check``, a failure raises with its output."""
    done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise AssertionError(f"docker {' '.join(args[:3])} ... exited {done.returncode}: {done.stderr.strip()[-2000:]}")
    return done


def require_image() -> None:
    """Skip (fail under KNNSERVE_REQUIRE_TOOLS) unless docker answers and the image is built."""
    problem = None
    if shutil.which("docker") is None:
        problem = "docker is not installed (make test installs docker.io)"
    elif docker("info", timeout=30, check=False).returncode != 0:
        problem = "no docker daemon answers (make test starts one: scripts/with_dockerd.sh)"
    elif docker("image", "inspect", IMAGE, timeout=30, check=False).returncode != 0:
        problem = f"{IMAGE} is not built (make image)"
    if problem is not None:
        if os.environ.get("KNNSERVE_REQUIRE_TOOLS"):
            pytest.fail(problem)
        pytest.skip(problem)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the container binds it on the host network)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def readable_by_anyone(root: Path) -> Path:
    """Open ``root`` for reading to the container's uid 10001 (pytest's temporary folders are 0700)."""
    root.chmod(0o755)
    for folder, dirs, files in os.walk(root):
        for name in dirs:
            (Path(folder) / name).chmod(0o755)
        for name in files:
            (Path(folder) / name).chmod(0o644)
    return root


def token_file(folder: Path) -> tuple[str, Path]:
    """A random bearer token and a file holding it, readable by the container's user."""
    token = secrets.token_hex(32)
    path = folder / "token"
    path.write_text(token + "\n")
    path.chmod(0o644)
    return token, path


@dataclass
class Container:
    """One running server container: its name, its gRPC and metrics ports on 127.0.0.1, its token, its REST port."""

    name: str
    port: int
    metrics_port: int
    token: str
    started_at: float  # time.perf_counter() just before `docker run`
    http_port: int = 0

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def inspect(self) -> dict[str, Any]:
        return json.loads(docker("inspect", self.name).stdout)[0]

    def logs(self) -> str:
        done = docker("logs", self.name, check=False)
        return done.stdout + done.stderr

    def exec(self, *command: str) -> subprocess.CompletedProcess[str]:
        return docker("exec", self.name, *command, check=False)

    def http(self, path: str) -> int:
        """The HTTP status of GET ``path`` on the metrics port."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}{path}", timeout=5) as response:
                return int(response.status)
        except urllib.error.HTTPError as error:
            return int(error.code)


def run_container(models: Path, token_path: Path, *, extra_args: tuple[str, ...] = ()) -> Container:
    """Start IMAGE hardened as in compose, host network on free 127.0.0.1 ports, ``models`` mounted read-only."""
    port, metrics_port, http_port = free_port(), free_port(), free_port()
    name = NAME_PREFIX + uuid.uuid4().hex[:12]
    command = [
        "run", "--detach", "--name", name, "--network", "host", *HARDENING, *extra_args,
        "--volume", f"{models}:/models:ro", "--volume", f"{token_path}:{TOKEN_IN_CONTAINER}:ro",
        "--env", "KNNSERVE_HOST=127.0.0.1", "--env", f"KNNSERVE_PORT={port}",
        "--env", "KNNSERVE_METRICS_HOST=127.0.0.1", "--env", f"KNNSERVE_METRICS_PORT={metrics_port}",
        # The image serves REST on 8000 by default: on the host network each container needs a port of its own.
        "--env", f"KNNSERVE_HTTP_PORT={http_port}",
        IMAGE, "--models", "/models", "--grace", "20", "--faiss-threads", "2", "--token-file", TOKEN_IN_CONTAINER,
    ]
    started_at = time.perf_counter()
    docker(*command)
    return Container(name, port, metrics_port, token_path.read_text().strip(), started_at, http_port)


def remove(container: Container) -> None:
    """Remove the container, running or not."""
    docker("rm", "--force", "--volumes", container.name, check=False)


def health(target: str, timeout: float = 2.0) -> int | None:
    """grpc.health.v1 status of the server as a whole, or None when it does not answer."""
    with grpc.insecure_channel(target) as channel:
        try:
            response = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout)
        except grpc.RpcError:
            return None
    return int(response.status)


def wait_serving(container: Container, timeout: float = 60.0) -> float:
    """Seconds from `docker run` to gRPC health SERVING; fails with the container's log after ``timeout``."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if health(container.target, timeout=1.0) == health_pb2.HealthCheckResponse.SERVING:
            return time.perf_counter() - container.started_at
        state = container.inspect()["State"]
        if not state["Running"]:
            raise AssertionError(f"{container.name} exited {state['ExitCode']}:\n{container.logs()[-3000:]}")
        time.sleep(0.05)
    raise AssertionError(f"{container.name} not SERVING after {timeout} s:\n{container.logs()[-3000:]}")
