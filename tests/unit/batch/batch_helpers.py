"""Helpers of the batch tests: tiny seeded bundles and inputs of every kind, reading outputs, processes and Ray heads."""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from knnserve.linear import LinearClassifier
from knnserve.model import KNNModel

SHAPE = (6, 6)
CLASSES = ("dark", "mid", "light")


@dataclass(frozen=True)
class Tiny:
    """A saved bundle (with a linear head), the model as loaded back, and query images."""

    bundle: Path
    model: KNNModel
    queries: np.ndarray


def make_tiny(root: Path, *, seed: int = 5, n_train: int = 300, n_queries: int = 240) -> Tiny:
    """uint8 6x6 'images' of three classes; a Flat bundle with a softmax head at root/pix/1."""
    rng = np.random.default_rng(seed)
    templates = rng.integers(0, 256, size=(3, *SHAPE))
    y = rng.integers(0, 3, n_train)
    x = np.clip(templates[y] + rng.integers(-60, 61, size=(n_train, *SHAPE)), 0, 255).astype(np.uint8)
    picks = rng.integers(0, 3, n_queries)
    queries = np.clip(templates[picks] + rng.integers(-70, 71, size=(n_queries, *SHAPE)), 0, 255).astype(np.uint8)
    head = LinearClassifier(epochs=5, seed=seed).fit(x, y)
    model = KNNModel.fit(x, y, class_names=CLASSES).with_linear(head)
    bundle = root / "pix" / "1"
    model.save(bundle, name="pix")
    return Tiny(bundle, KNNModel.load(bundle), queries)


# -- inputs of every kind --------------------------------------------------------------------------


def write_idx(path: Path, x: np.ndarray, *, compress: bool = False) -> Path:
    """An IDX ubyte file of ``x`` (gzip-compressed when asked)."""
    data = struct.pack(">BBBB", 0, 0, 0x08, x.ndim) + struct.pack(f">{x.ndim}I", *x.shape) + x.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def png_bytes(image: np.ndarray, fmt: str = "PNG") -> bytes:
    """One image encoded with Pillow."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def decoded(content: bytes) -> np.ndarray:
    """What Pillow decodes an encoded image to, in grey (the reference for lossy JPEG)."""
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(content)).convert("L"))


def write_parquet(path: Path, columns: dict[str, object], *, row_group_size: int | None = None) -> Path:
    """A Parquet file of the given columns (pyarrow arrays or Python lists)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table(columns), path, row_group_size=row_group_size)
    return path


# -- running the command ---------------------------------------------------------------------------


def command(*args: str) -> list[str]:
    """``knnserve batch ARGS`` as a subprocess command line (the venv's own interpreter)."""
    return [sys.executable, "-m", "knnserve.cli", "batch", "--no-progress", *args]


def run(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``knnserve batch`` to the end in a subprocess of its own session."""
    return subprocess.run(command(*args), capture_output=True, text=True, timeout=timeout, env=env, start_new_session=True)


def start(*args: str, env: dict[str, str] | None = None, log: Path) -> subprocess.Popen[bytes]:
    """Start ``knnserve batch`` in a session of its own (so everything it starts can be found and stopped)."""
    handle = log.open("wb")
    return subprocess.Popen(command(*args), stdout=handle, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def committed(out: Path) -> int:
    """Shards the job manifest lists as committed (0 while there is none, or while it is being replaced)."""
    try:
        return len(json.loads((out / "_job.json").read_text())["committed"])
    except (OSError, ValueError, KeyError):
        return 0


def kill_at_random_point(process: subprocess.Popen[bytes], out: Path, rng: np.random.Generator, shards: int, *,
                         at_least: int = 0) -> int:
    """kill -9 the job once a random number of shards is committed, plus a random few milliseconds; returns that number.

    The number is drawn from [at_least, shards // 2], so the kill lands before the job ends; 0 kills during start-up.
    """
    target = int(rng.integers(at_least, shards // 2 + 1))
    deadline = time.monotonic() + 120
    while committed(out) < target and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    time.sleep(float(rng.uniform(0, 0.03)))
    assert process.poll() is None, f"the job ended before the kill (target {target} shards): make it longer"
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    return target


# -- processes of a session ------------------------------------------------------------------------


def session_processes(sid: int) -> list[int]:
    """Live processes (not zombies) of session ``sid``, read from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[3]) == sid and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def stop_session(sid: int, *, grace: float = 5.0) -> list[int]:
    """SIGTERM, then SIGKILL, every process of one session (only what the test started); returns those it found."""
    found = session_processes(sid)
    for pid in found:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while session_processes(sid) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in session_processes(sid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while session_processes(sid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return found


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def ray_env(base: Path) -> dict[str, str]:
    """Environment for Ray in tests: its own temp folder and auth token (nothing written to ~/.ray), no usage stats."""
    token = base / "token"
    if not token.exists():
        token.write_text(os.urandom(16).hex())
    env = dict(os.environ, RAY_TMPDIR=str(base), RAY_AUTH_TOKEN_PATH=str(token), RAY_USAGE_STATS_ENABLED="0")
    env.pop("RAY_AUTH_MODE", None)
    env.pop("RAY_ADDRESS", None)
    return env


class RayHead:
    """A real local Ray head (``ray start --head --block``) in a session of its own, stopped by that session alone."""

    def __init__(self, env: dict[str, str], base: Path, *, cpus: int = 2) -> None:
        self.port = free_port()
        ray = Path(sys.executable).with_name("ray")
        self.process = subprocess.Popen(
            [str(ray), "start", "--head", "--block", f"--port={self.port}", f"--num-cpus={cpus}", "--include-dashboard=false",
             f"--temp-dir={base}", "--object-store-memory=150000000", f"--ray-client-server-port={free_port()}",
             f"--dashboard-agent-listen-port={free_port()}", "--disable-usage-stats"],
            stdout=(base / "head.log").open("wb"), stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )
        self.address = f"127.0.0.1:{self.port}"
        self._wait(base)

    def _wait(self, base: Path) -> None:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"ray start failed:\n{(base / 'head.log').read_text()[-3000:]}")
            if "Ray runtime started" in (base / "head.log").read_text(errors="replace"):
                return
            time.sleep(0.2)
        raise RuntimeError("ray start did not come up in 90 s")

    def stop(self) -> None:
        """Stop every process of this head's session (never `ray stop`, which would end other people's Ray too)."""
        stop_session(self.process.pid)
        self.process.wait(timeout=10)


def short_tempdir(prefix: str) -> Path:
    """A short folder under /tmp (Ray's socket paths must stay under 108 characters)."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


# -- reading outputs -------------------------------------------------------------------------------


def table(out: Path):  # type: ignore[no-untyped-def]
    """Every part file of an output folder as one Arrow table, in shard order."""
    import pyarrow.parquet as pq

    return pq.read_table(sorted(str(p) for p in out.glob("part-*.parquet")))


def errors(out: Path) -> list[dict[str, str]]:
    """The errors file's rows."""
    with (out / "_errors.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def part_hashes(out: Path) -> dict[str, str]:
    """Shard number -> sha256 of its part file, as the job manifest recorded them."""
    manifest = json.loads((out / "_job.json").read_text())
    return {number: record["part_sha256"] for number, record in manifest["committed"].items()}


def same_output(a: Path, b: Path, *, keys: Sequence[str] = ()) -> None:
    """Assert two outputs hold the same rows, row for row, the same part files and the same errors file."""
    left, right = table(a), table(b)
    assert left.num_rows == right.num_rows
    assert left.to_pylist() == right.to_pylist()
    assert part_hashes(a) == part_hashes(b)
    assert (a / "_errors.csv").read_bytes() == (b / "_errors.csv").read_bytes()
    assert sorted(p.name for p in a.iterdir()) == sorted(p.name for p in b.iterdir())
