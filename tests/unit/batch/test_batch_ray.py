"""The Ray engine on a real local Ray: the same output as the local engine, and exactly once under kill -9.

Each test starts the Ray it uses and stops only that one, by its session (never ``ray stop``,
which ends every Ray instance of the machine's user).
"""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from batch_helpers import (
    RayHead,
    Tiny,
    kill_at_random_point,
    ray_env,
    run,
    same_output,
    session_processes,
    short_tempdir,
    start,
    stop_session,
)

pytest.importorskip("ray.data")
SEED = 20261202


@pytest.fixture
def ray_base():  # type: ignore[no-untyped-def]
    base = short_tempdir("kr")
    yield base
    shutil.rmtree(base, ignore_errors=True)


def inputs(tiny: Tiny, folder: Path) -> list[str]:
    folder.mkdir(exist_ok=True)
    np.save(folder / "a.npy", np.repeat(tiny.queries, 10, axis=0))  # 2400 rows
    floats = tiny.queries[:50].reshape(50, -1).astype(np.float32)
    floats[7] = np.nan
    np.save(folder / "b.npy", floats)
    return ["--input", str(folder / "a.npy"), "--input", str(folder / "b.npy")]


def test_a_local_ray_started_by_the_job_gives_the_local_engine_output(tiny: Tiny, tmp_path: Path, ray_base: Path) -> None:
    args = [*inputs(tiny, tmp_path / "in"), "--model", str(tiny.bundle), "--shard-rows", "400", "--neighbors"]
    local = run(*args, "--out", str(tmp_path / "local"))
    assert local.returncode == 1, local.stderr
    process = start(*args, "--out", str(tmp_path / "ray"), "--engine", "ray", "--actors", "2", env=ray_env(ray_base),
                    log=tmp_path / "ray.log")
    try:
        status = process.wait(timeout=240)
        deadline = time.monotonic() + 15  # Ray's helpers finish exiting shortly after ray.shutdown() returns
        while session_processes(process.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        lingering = {pid: _command(pid) for pid in session_processes(process.pid)}
    finally:
        stop_session(process.pid)  # the job ran in a session of its own: whatever is left there, it left
    log = (tmp_path / "ray.log").read_text()
    assert status == 1, log
    assert not lingering, f"processes outlived the job by 15 s: {lingering}"
    assert re.search(r"ray: 2 actors x [0-9.]+ CPU \(\d+ search thread\(s\) each\); [0-9.]+ of \d+ CPUs left for read tasks", log), log
    assert "every actor loads its own copy of the bundle: 2 x" in log
    same_output(tmp_path / "local", tmp_path / "ray")


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:120]
    except OSError:
        return "?"


def test_kill_9_then_resume_on_a_ray_cluster_equals_an_uninterrupted_run(tiny: Tiny, tmp_path: Path, ray_base: Path) -> None:
    rng = np.random.default_rng(SEED)
    args = [*inputs(tiny, tmp_path / "in"), "--model", str(tiny.bundle), "--shard-rows", "100", "--method", "both"]
    local = run(*args, "--out", str(tmp_path / "local"))
    assert local.returncode == 1, local.stderr
    shards = json.loads((tmp_path / "local" / "_job.json").read_text())["shards_total"]
    env = ray_env(ray_base)
    head = RayHead(env, ray_base)
    try:
        out = tmp_path / "ray"
        ray_args = [*args, "--out", str(out), "--engine", "ray", "--ray-address", head.address, "--actors", "2"]
        process = start(*ray_args, env=env, log=tmp_path / "killed.log")
        target = kill_at_random_point(process, out, rng, shards, at_least=1)
        stop_session(process.pid)  # the killed driver's own leftovers, if any (its workers live in the head's session)
        finished = run(*ray_args, env=env, timeout=240)
        assert finished.returncode == 1, finished.stderr + (tmp_path / "killed.log").read_text()
        assert "RAY_AUTH_MODE=token" in finished.stderr  # the head has a token: the job found it and joined with it
        assert target >= 1 and "resumed from an earlier run" in finished.stdout, finished.stdout
        same_output(tmp_path / "local", out)
    finally:
        head.stop()
    assert not session_processes(head.process.pid)
