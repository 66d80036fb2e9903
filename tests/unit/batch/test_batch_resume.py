"""Exactly once: kill -9 at a random point and rerun gives the uninterrupted output; other jobs are refused; bad rows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from batch_helpers import Tiny, errors, kill_at_random_point, make_tiny, png_bytes, run, same_output, start, table, write_parquet

SEED = 20261201


def bad_row_inputs(tiny: Tiny, folder: Path) -> list[Path]:
    """Inputs with good rows and bad ones of every sort: non-finite values, undecodable and wrong-size images, nulls."""
    folder.mkdir()
    floats = tiny.queries.reshape(len(tiny.queries), -1).astype(np.float32)
    floats[[3, 17]] = np.nan
    floats[40, 5] = np.inf
    np.save(folder / "a.npy", floats)
    images = folder / "images"
    images.mkdir()
    (images / "0-good.png").write_bytes(png_bytes(tiny.queries[0]))
    (images / "1-broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    (images / "2-big.png").write_bytes(png_bytes(np.zeros((8, 8), np.uint8)))
    lists = [r.reshape(-1).tolist() for r in tiny.queries[:5]]
    lists[1] = None
    lists[2] = lists[2][:10]
    write_parquet(folder / "c.parquet", {"pixels": lists})
    return [folder / "a.npy", images, folder / "c.parquet"]


def test_bad_rows_go_to_the_errors_file_and_the_job_goes_on(tiny: Tiny, tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    inputs = bad_row_inputs(tiny, tmp_path / "in")
    args = [a for path in inputs for a in ("--input", str(path))]
    status, stdout, _ = cli(*args, "--out", tmp_path / "out", "--model", tiny.bundle, "--shard-rows", "64")
    assert status == 1
    assert "7 errors" in stdout and "_errors.csv" in stdout
    bad = errors(tmp_path / "out")
    a, images, c = (str(p) for p in inputs)
    assert [(row["row_id"], row["source"], row["index"]) for row in bad] == [
        (f"{a}:3", a, "3"), (f"{a}:17", a, "17"), (f"{a}:40", a, "40"),
        (f"{images}/1-broken.png:0", f"{images}/1-broken.png", "0"), (f"{images}/2-big.png:0", f"{images}/2-big.png", "0"),
        (f"{c}:1", c, "1"), (f"{c}:2", c, "2"),
    ]
    reasons = [row["reason"] for row in bad]
    assert reasons[0] == reasons[2] == "input: expected finite values, got NaN or infinity"
    assert reasons[3] == "image: cannot decode (OSError: Truncated File Read)"
    assert reasons[4] == "image: expected (6, 6) or (36,) pixels for this model, got (8, 8)"
    assert reasons[5:] == ["input: null value", "input: expected rows of 36 values, got 10"]
    result = table(tmp_path / "out")
    n = len(tiny.queries)
    assert result.num_rows == n - 3 + 1 + 3
    good = np.setdiff1d(np.arange(n), [3, 17, 40])
    assert result.column("index").to_pylist()[: n - 3] == good.tolist()
    assert result.column("prediction").to_pylist()[: n - 3] == tiny.model.classify(tiny.queries[good]).predictions.tolist()


def test_kill_9_at_random_points_then_resume_equals_an_uninterrupted_run(tiny: Tiny, tmp_path: Path) -> None:
    rng = np.random.default_rng(SEED)
    inputs = bad_row_inputs(tiny, tmp_path / "in")
    big = tmp_path / "in" / "big.npy"
    np.save(big, np.repeat(tiny.queries, 25, axis=0))  # 6000 rows: 60 shards of 100, long enough to be killed mid-way
    args = [a for path in [big, *inputs] for a in ("--input", str(path))]
    common = [*args, "--model", str(tiny.bundle), "--shard-rows", "100", "--neighbors", "--method", "both"]
    whole = run(*common, "--out", str(tmp_path / "whole"))
    assert whole.returncode == 1, whole.stderr  # it has bad rows
    shards = json.loads((tmp_path / "whole" / "_job.json").read_text())["shards_total"]
    out = tmp_path / "killed"
    targets = []
    for attempt in range(2):
        process = start(*common, "--out", str(out), log=tmp_path / f"killed-{attempt}.log")
        targets.append(kill_at_random_point(process, out, rng, shards))
    finished = run(*common, "--out", str(out))
    assert finished.returncode == 1, finished.stderr
    assert "resumed from an earlier run" in finished.stdout or targets[-1] == 0, (targets, finished.stdout)
    same_output(tmp_path / "whole", out)
    again = run(*common, "--out", str(out))
    assert again.returncode == 1 and "already holds this job, complete" in again.stderr


def test_resume_with_other_options_or_bundle_is_refused(tiny: Tiny, tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    np.save(tmp_path / "q.npy", tiny.queries)
    common = ("--input", tmp_path / "q.npy", "--out", tmp_path / "out", "--shard-rows", "50")
    assert cli(*common, "--model", tiny.bundle)[0] == 0
    manifest = json.loads((tmp_path / "out" / "_job.json").read_text())
    manifest["committed"] = {"0": manifest["committed"]["0"]}  # as if killed after the first shard
    manifest["status"] = "running"
    (tmp_path / "out" / "_job.json").write_text(json.dumps(manifest))
    status, _, stderr = cli(*common, "--model", tiny.bundle, "--k", "7")
    assert status == 2 and stderr.count("\n") == 1
    assert "holds 1 committed shard(s) of another job; refusing to mix outputs (options.query.k: 5 -> 7)" in stderr
    other = make_tiny(tmp_path / "other", seed=6)
    status, _, stderr = cli(*common, "--model", other.bundle)
    assert status == 2 and "model.bundle_sha256" in stderr
    (tmp_path / "q.npy").touch()
    np.save(tmp_path / "q.npy", tiny.queries[:-1])
    status, _, stderr = cli(*common, "--model", tiny.bundle)
    assert status == 2 and "input file" in stderr and "changed since the job started (rows, size" in stderr
    np.save(tmp_path / "q.npy", tiny.queries)
    status, _, stderr = cli("--input", tmp_path / "q.npy", "--out", tmp_path, "--model", tiny.bundle)
    assert status == 2 and "is not a knnserve batch output" in stderr


def test_a_job_that_committed_nothing_can_be_restarted_with_other_options(tiny: Tiny, tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    np.save(tmp_path / "q.npy", tiny.queries)
    status, _, stderr = cli("--input", tmp_path / "q.npy", "--out", tmp_path / "out", "--model", tiny.bundle, "--k", "1000")
    assert status == 2 and "k: expected an integer between 1 and 300" in stderr
    assert cli("--input", tmp_path / "q.npy", "--out", tmp_path / "out", "--model", tiny.bundle, "--k", "3")[0] == 0
    stored = json.loads((tmp_path / "out" / "_job.json").read_text())
    assert stored["identity"]["options"]["query"]["k"] == 3 and stored["status"] == "complete"
