"""The server image's cold start: `docker run` of knnserve:dev (hardened as deploy/compose.yaml runs it,
host network) to grpc.health.v1 SERVING, against `knnserve serve` of the same bundle outside a
container measured in the same run; plus the image's size.

    flock /tmp/knnserve-bench.lock .venv/bin/python benchmarks/bench_image.py [--repeats 5] [--out FILE.json]

The bundle is Fashion-MNIST's whole training split (60,000 raw images) in a Flat index, as in
docs/deploy.md. Needs a docker daemon and the built image (`make image`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from servers import free_port, stop, wait_until_serving  # noqa: E402

# deploy/compose.yaml's hardening and limits (tests/image checks the same list against the file).
HARDENING = ("--read-only", "--tmpfs", "/tmp", "--tmpfs", "/home/knnserve/.cache:uid=10001,gid=10001",
             "--cap-drop", "ALL", "--security-opt", "no-new-privileges:true", "--cpus", "2", "--memory", "2g")


def make_bundle(folder: Path) -> Path:
    """The Fashion-MNIST Flat bundle in folder/models/fm/1, readable by the image's uid 10001."""
    from knnserve.data import load_dataset
    from knnserve.model import KNNModel

    ds = load_dataset("fashion-mnist", download=False)
    models = folder / "models"
    KNNModel.fit(ds.x_train, ds.y_train, class_names=ds.class_names, index="flat").save(models / "fm" / "1", name="fm")
    for root, dirs, files in os.walk(folder):
        os.chmod(root, 0o755)
        for name in files:
            os.chmod(Path(root) / name, 0o644)
    return models


def container_start(image: str, models: Path) -> float:
    """Seconds from `docker run` to SERVING, the container then stopped and removed."""
    port, metrics_port = free_port(), free_port()
    name = f"knnserve-test-bench-{uuid.uuid4().hex[:8]}"
    command = ["docker", "run", "--rm", "--name", name, "--network", "host", *HARDENING,
               "--volume", f"{models}:/models:ro", "--env", "KNNSERVE_HOST=127.0.0.1", "--env", f"KNNSERVE_PORT={port}",
               "--env", "KNNSERVE_METRICS_HOST=127.0.0.1", "--env", f"KNNSERVE_METRICS_PORT={metrics_port}",
               image, "--models", "/models", "--grace", "20", "--faiss-threads", "2", "--log-level", "WARNING"]
    began = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_serving(f"127.0.0.1:{port}", process, "the container", timeout_s=120)
        return time.perf_counter() - began
    finally:
        subprocess.run(["docker", "stop", name], capture_output=True, timeout=60)
        process.wait(60)


def outside_start(models: Path) -> float:
    """Seconds from starting `knnserve serve` (this virtualenv) to SERVING, the same bundle and options."""
    port = free_port()
    began = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "knnserve.cli", "serve", "--models", str(models), "--port", str(port),
                                "--faiss-threads", "2", "--log-level", "WARNING"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_serving(f"127.0.0.1:{port}", process, "knnserve serve", timeout_s=120)
        return time.perf_counter() - began
    finally:
        stop(process)


def main() -> None:
    """Measure, print and optionally write the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image", default="knnserve:dev")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    size = int(subprocess.run(["docker", "image", "inspect", "--format", "{{.Size}}", args.image],
                              capture_output=True, text=True, check=True).stdout)
    with tempfile.TemporaryDirectory() as folder:
        models = make_bundle(Path(folder))
        container, outside = [], []
        for _ in range(args.repeats):  # alternated, so drifting load falls on both
            container.append(container_start(args.image, models))
            outside.append(outside_start(models))
    result = {
        "image": args.image, "image_mb": round(size / 1e6, 1), "repeats": args.repeats,
        "container_start_to_serving_s": [round(s, 3) for s in container],
        "outside_start_to_serving_s": [round(s, 3) for s in outside],
        "container_median_s": round(statistics.median(container), 3),
        "outside_median_s": round(statistics.median(outside), 3),
        "ratio_container_to_outside": round(statistics.median(container) / statistics.median(outside), 2),
        "load_average": os.getloadavg(),
    }
    print(json.dumps(result, indent=2))
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
