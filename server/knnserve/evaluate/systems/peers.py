"""Peer nearest-neighbour libraries as systems under test, each in a child process of its own
(``peer_worker.py``): hnswlib, USearch, ScaNN, pynndescent, Annoy, Voyager."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from knnserve.errors import KnnServeError
from knnserve.evaluate.config import EvaluateConfig
from knnserve.evaluate.runs import BuildCost
from knnserve.evaluate.space import FeatureSpace
from knnserve.evaluate.systems.base import Answer, Description, Modes, Setting
from knnserve.evaluate.systems.peer_catalog import PeerPlan
from knnserve.index import omp_threads

PEER_SCRIPT = Path(__file__).with_name("peer_worker.py")
PINGS = 200  # round trips timed at open(): the pipe's share of every timed call, reported


class PeerSystem:
    """One peer library's index over a feature space's rows, built and searched in a child process.

    The child holds the base and query rows; a timed call sends it a row range, a setting number and
    a thread count (the harness's: all threads in batch mode, one in single-query mode) and reads
    back ids and distances, so what is timed is the library's search plus one pipe round trip.
    """

    modes = Modes()

    def __init__(self, space: FeatureSpace, config: EvaluateConfig, plan: PeerPlan) -> None:
        if space.metric != "l2":
            raise KnnServeError(f"peer {plan.library}: compared under L2 only; space {space.key} uses {space.metric}")
        self.space = space
        self.config = config
        self.plan = plan
        self._folder: tempfile.TemporaryDirectory[str] | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._ready: dict[str, object] = {}
        self._rtt_us: float | None = None

    def open(self) -> None:
        """Write the rows, start the child, wait for its build, time the pipe's round trip."""
        self._folder = tempfile.TemporaryDirectory(prefix=f"knnserve-peer-{self.plan.library}-")
        folder = Path(self._folder.name)
        np.save(folder / "base.npy", np.ascontiguousarray(self.space.base, dtype=np.float32), allow_pickle=False)
        np.save(folder / "queries.npy", np.ascontiguousarray(self.space.queries, dtype=np.float32), allow_pickle=False)
        threads = self.config.threads or os.cpu_count() or 1
        job = {"library": self.plan.library, "build": self.plan.build, "settings": list(self.plan.settings),
               "k": self.config.search_k, "threads": threads}
        (folder / "job.json").write_text(json.dumps(job))
        # stderr to a file: a chatty library must never block on a full pipe nobody reads.
        with (folder / "stderr.txt").open("wb") as stderr:
            self._process = subprocess.Popen([sys.executable, "-P", str(PEER_SCRIPT), str(folder)],
                                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr)
        try:
            assert self._process.stdout is not None
            line = self._process.stdout.readline()
            if not line:
                raise KnnServeError(f"peer {self.plan.library} failed to build: {self._stderr()}")
            self._ready = json.loads(line)
            pings = []
            for _ in range(PINGS):
                started = time.perf_counter()
                self._call(0, 0, 0, 1)
                pings.append(time.perf_counter() - started)
            self._rtt_us = float(np.median(pings) * 1e6)
        except BaseException:
            # the runner closes only what opened: an interrupted build must not leave the child running
            self._process.kill()
            self.close()
            raise

    def _stderr(self) -> str:
        assert self._process is not None and self._folder is not None
        self._process.wait(timeout=30)
        return (Path(self._folder.name) / "stderr.txt").read_text(errors="replace").strip()[-2000:]

    def _call(self, start: int, stop: int, setting: int, threads: int) -> tuple[np.ndarray, np.ndarray] | None:
        process = self._process
        assert process is not None and process.stdin is not None and process.stdout is not None
        process.stdin.write(np.array([start, stop, setting, threads], dtype="<i8").tobytes())
        process.stdin.flush()
        header = process.stdout.read(16)
        if len(header) < 16:
            raise KnnServeError(f"peer {self.plan.library} stopped: {self._stderr()}")
        rows, k = (int(v) for v in np.frombuffer(header, dtype="<i8"))
        if rows == 0:
            return None
        ids = np.frombuffer(process.stdout.read(8 * rows * k), dtype="<i8").reshape(rows, k)
        distances = np.frombuffer(process.stdout.read(4 * rows * k), dtype="<f4").reshape(rows, k)
        return distances.astype(np.float32), ids.astype(np.int64)

    def describe(self) -> Description:
        """The library, its build, and how its figures were taken."""
        library, ready = self.plan.library, self._ready
        space_note = "" if self.space.key == "raw" else f" [{self.space.key}]"
        return Description(
            label=f"{library} {self.plan.build_label}{space_note}",
            system=library,
            transport="child-process",
            index={"spec": f"{library} {self.plan.build_label}", "factory": library, "kind": "peer",
                   "library_version": ready.get("version"), "build_params": dict(self.plan.build),
                   "memory_how": ready.get("memory_how")},
            build=BuildCost(0.0, float(ready.get("build_seconds", 0.0)), int(ready.get("memory_bytes", 0))),  # type: ignore[arg-type]
            notes=(f"{library} {ready.get('version')} in its own child process (never imports faiss); settings: "
                   f"{self.plan.source}; every timed call includes a pipe round trip of about {self._rtt_us or 0:.0f} µs "
                   f"(median of {PINGS} empty calls); size: {ready.get('memory_how')}",),
            space=self.space.key,
        )

    def settings(self) -> list[Setting]:
        """The library's documented sweep, in order."""
        return [Setting(extra=tuple(sorted(values.items()))) for values in self.plan.settings]

    def prepare(self, queries: np.ndarray) -> np.ndarray:
        """Row numbers: the child holds the space's query rows."""
        return np.arange(queries.shape[0], dtype=np.int64)

    def search(self, rows: np.ndarray, setting: Setting) -> Answer:
        """Rows rows[0]..rows[-1] at ``setting``, with the thread count the harness set for this mode."""
        number = self.plan.settings.index(dict(setting.extra))
        return self._call(int(rows[0]), int(rows[-1]) + 1, number, omp_threads())

    def finish(self, answer: Answer) -> Answer:
        """Distances are already Euclidean."""
        return answer

    def close(self) -> None:
        """Stop the child and remove its files."""
        if self._process is not None:
            try:
                assert self._process.stdin is not None
                self._process.stdin.write(np.array([-1, -1, -1, -1], dtype="<i8").tobytes())
                self._process.stdin.close()
                self._process.wait(timeout=60)
            except (OSError, subprocess.TimeoutExpired):
                self._process.kill()
                self._process.wait()
            self._process = None
        if self._folder is not None:
            self._folder.cleanup()
            self._folder = None


__all__ = ["PEER_SCRIPT", "PeerSystem"]
