"""Bundle writes leave nothing behind when killed, and an overwrite is one atomic swap."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np

from knnserve.bundle import remove_stale_staging
from knnserve.model import KNNModel

SAVE_AND_HANG = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from knnserve.index import backend
    from knnserve.model import KNNModel

    write = backend.write_index

    def slow_write(index, path):
        write(index, path)
        print("writing", flush=True)
        time.sleep(60)  # killed here: the staging folder is half written

    backend.write_index = slow_write
    rng = np.random.default_rng(0)
    KNNModel.fit(rng.normal(size=(200, 8)).astype(np.float32), rng.integers(0, 3, 200)).save(sys.argv[1], name="m", overwrite=True)
    """
)


def _model(seed: int = 0) -> KNNModel:
    rng = np.random.default_rng(seed)
    return KNNModel.fit(rng.normal(size=(200, 8)).astype(np.float32), rng.integers(0, 3, 200))


def test_a_save_killed_mid_write_leaves_a_folder_the_next_save_removes(tmp_path: Path) -> None:
    target = tmp_path / "models" / "m"
    _model().save(target, name="m")
    before = (target / "manifest.json").read_text()
    process = subprocess.Popen([sys.executable, "-c", SAVE_AND_HANG, str(target)], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdout.readline().strip() == "writing"
    process.send_signal(signal.SIGKILL)
    process.wait(10)
    leftovers = [p for p in target.parent.iterdir() if p.name.startswith(".m.tmp-")]
    assert len(leftovers) == 1 and (leftovers[0] / "index.faiss").is_file()
    assert (target / "manifest.json").read_text() == before  # the old bundle is intact
    _model(1).save(target, name="m", overwrite=True)
    assert [p.name for p in target.parent.iterdir()] == ["m"]  # the abandoned staging folder is gone
    KNNModel.load(target)


def test_a_staging_folder_of_a_live_process_is_kept(tmp_path: Path) -> None:
    mine = tmp_path / f".m.tmp-{os.getpid()}-abc"
    mine.mkdir()
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    gone = tmp_path / f".m.tmp-{int(finished.stdout)}-def"
    gone.mkdir()
    other = tmp_path / f".other.tmp-{int(finished.stdout)}-def"
    other.mkdir()
    assert remove_stale_staging(tmp_path, "m") == [gone]
    assert mine.is_dir() and other.is_dir()


def test_overwrite_never_leaves_the_target_missing(tmp_path: Path) -> None:
    target = tmp_path / "m"
    models = [_model(0), _model(1)]
    models[0].save(target, name="m")
    missing: list[int] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            if not (target / "manifest.json").is_file():
                missing.append(1)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for i in range(30):
            models[i % 2].save(target, name="m", overwrite=True)
    finally:
        done.set()
        reader.join()
    assert missing == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]
    KNNModel.load(target)


def test_killing_train_then_training_again_into_the_same_folder(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, size=(700, 6, 6), dtype=np.uint8)
    y = rng.integers(0, 3, 700)
    data = tmp_path / "data"
    data.mkdir()
    np.savez(data / "tiny.npz", x_train=x[:600], y_train=y[:600], x_test=x[600:], y_test=y[600:])
    out = tmp_path / "models" / "tiny"
    command = [sys.executable, "-m", "knnserve.cli", "train", "--data-dir", str(data), "--k", "3", "--preprocess", "raw",
               "--out", str(out), "--no-progress"]
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(float(np.random.default_rng().uniform(0.5, 3.0)))  # a random point: importing, training or writing
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    second = subprocess.run([*command, "--overwrite"], capture_output=True, text=True)
    assert second.returncode == 0, second.stderr
    assert [p.name for p in out.parent.iterdir()] == ["tiny"]
    KNNModel.load(out)
