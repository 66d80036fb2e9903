"""Each input kind is read, streamed shard by shard, into the same rows the model would classify in memory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from batch_helpers import Tiny, decoded, png_bytes, table, write_idx, write_parquet
from knnserve.batch.plan import Plan
from knnserve.batch.inputs import plan_inputs
from knnserve.batch.readers import SourceCache, read_shard
from knnserve.batch.readers.base import ReadOptions
from knnserve.batch.rows import RowSpec

SPEC = RowSpec((6, 6), "uint8")


def expected_predictions(tiny: Tiny, x: np.ndarray) -> list[int]:
    return tiny.model.classify(x).predictions.tolist()


def run_kind(cli, tiny: Tiny, out: Path, *inputs: str | Path, extra: tuple[str, ...] = ()) -> None:  # type: ignore[no-untyped-def]
    args: list[str | Path] = []
    for item in inputs:
        args += ["--input", item]
    status, stdout, stderr = cli(*args, "--out", out, "--model", tiny.bundle, "--shard-rows", "50", *extra)
    assert status == 0, stderr
    assert "0 errors" in stdout


@pytest.mark.parametrize("kind", ["npy", "npy-flat-float", "npz", "idx", "idx-gz", "parquet-list", "parquet-nested", "parquet-fixed"])
def test_each_array_kind_gives_the_in_memory_predictions(kind: str, tiny: Tiny, tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    import pyarrow as pa

    x = tiny.queries
    extra: tuple[str, ...] = ()
    if kind == "npy":
        path = tmp_path / "q.npy"
        np.save(path, x)
    elif kind == "npy-flat-float":
        path = tmp_path / "q.npy"
        np.save(path, x.reshape(len(x), -1).astype(np.float64))
    elif kind == "npz":
        path = tmp_path / "q.npz"
        np.savez_compressed(path, images=x, labels=np.zeros(len(x)))
        extra = ("--column", "images")
    elif kind in ("idx", "idx-gz"):
        path = write_idx(tmp_path / "t10k-images-idx3-ubyte", x, compress=kind == "idx-gz")
    elif kind == "parquet-list":
        path = write_parquet(tmp_path / "q.parquet", {"id": list(range(len(x))), "pixels": [r.reshape(-1).tolist() for r in x]},
                             row_group_size=64)
    elif kind == "parquet-nested":
        path = write_parquet(tmp_path / "q.parquet", {"pixels": [r.tolist() for r in x]}, row_group_size=100)
    else:
        flat = pa.array(x.reshape(-1).astype(np.float32))
        path = write_parquet(tmp_path / "q.parquet", {"x": pa.FixedSizeListArray.from_arrays(flat, 36)})
    run_kind(cli, tiny, tmp_path / "out", path, extra=extra)
    result = table(tmp_path / "out")
    assert result.column("prediction").to_pylist() == expected_predictions(tiny, x)
    assert result.column("index").to_pylist() == list(range(len(x)))
    assert result.column("row_id").to_pylist() == [f"{path}:{i}" for i in range(len(x))]


def test_image_folders_and_globs_png_and_jpeg(tiny: Tiny, tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    x = tiny.queries[:60]
    folder = tmp_path / "images"
    (folder / "b").mkdir(parents=True)
    (folder / "a").mkdir()
    sources, reference = [], []
    for i, image in enumerate(x):
        fmt = "JPEG" if i % 3 == 0 else "PNG"
        path = folder / ("a" if i < 30 else "b") / f"{i:03d}.{'jpg' if fmt == 'JPEG' else 'png'}"
        content = png_bytes(image, fmt)
        path.write_bytes(content)
        sources.append(str(path))
        reference.append(decoded(content))
    (folder / "notes.txt").write_text("not an image: skipped in folders")
    run_kind(cli, tiny, tmp_path / "folder", folder)
    result = table(tmp_path / "folder")
    assert result.column("source").to_pylist() == sources  # sorted walk: a/ before b/, names in order
    assert result.column("prediction").to_pylist() == expected_predictions(tiny, np.stack(reference))
    run_kind(cli, tiny, folder / "results", folder)  # an output folder inside the input folder is not an input
    assert table(folder / "results").column("source").to_pylist() == sources
    run_kind(cli, tiny, folder / "results", folder)  # nor when the job is run again
    run_kind(cli, tiny, tmp_path / "glob", str(folder / "b" / "*.png"))
    assert table(tmp_path / "glob").column("source").to_pylist() == sorted(s for s in sources[30:] if s.endswith(".png"))


def test_parquet_image_bytes_column_and_struct(tiny: Tiny, tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    x = tiny.queries[:40]
    encoded = [png_bytes(image) for image in x]
    plain = write_parquet(tmp_path / "bytes.parquet", {"image": encoded, "name": [f"n{i}" for i in range(40)]}, row_group_size=16)
    nested = write_parquet(tmp_path / "hf.parquet", {"image": [{"bytes": b, "path": f"{i}.png"} for i, b in enumerate(encoded)]})
    run_kind(cli, tiny, tmp_path / "out", plain, nested)
    result = table(tmp_path / "out")
    assert result.column("prediction").to_pylist() == expected_predictions(tiny, x) * 2
    assert result.column("source").to_pylist() == [str(plain)] * 40 + [str(nested)] * 40


def test_shards_read_across_files_and_backwards_give_the_same_rows(tiny: Tiny, tmp_path: Path) -> None:
    x = tiny.queries
    np.save(tmp_path / "a.npy", x[:70])
    write_idx(tmp_path / "b-idx3-ubyte.gz", x[70:150], compress=True)
    write_parquet(tmp_path / "c.parquet", {"pixels": [r.reshape(-1).tolist() for r in x[150:]]}, row_group_size=13)
    inputs = [str(tmp_path / name) for name in ("a.npy", "b-idx3-ubyte.gz", "c.parquet")]
    plan = plan_inputs(inputs, SPEC, ReadOptions(), 33)
    assert plan.rows == len(x) and plan.shards_total == -(-len(x) // 33)
    cache = SourceCache(SPEC, size=1)
    forward = [read_shard(s, plan.files, cache) for s in plan.shards()]
    backward = [read_shard(s, plan.files, cache) for s in reversed(list(plan.shards()))][::-1]
    for rows in (np.concatenate([b.x for b in forward]), np.concatenate([b.x for b in backward])):
        np.testing.assert_array_equal(rows, x.reshape(len(x), -1))
    assert [len(b) for b in forward] == [s.rows for s in plan.shards()]
    assert all((b.errors == "").all() for b in forward)
    cache.close()


def test_the_plan_cuts_shards_over_file_boundaries() -> None:
    from knnserve.batch.plan import InputFile

    files = tuple(InputFile(f"f{i}", f"/f{i}", "npy", rows, 1, 1) for i, rows in enumerate((5, 0, 7, 1)))
    shards = list(Plan(files, 4).shards())
    assert [s.rows for s in shards] == [4, 4, 4, 1]
    assert [[(g.file, g.start, g.stop) for g in s.segments] for s in shards] == [
        [(0, 0, 4)], [(0, 4, 5), (2, 0, 3)], [(2, 3, 7)], [(3, 0, 1)]]
    assert [s.number for s in Plan(files, 4).shards({1, 3})] == [1, 3]


@pytest.mark.parametrize(("setup", "message"), [
    ("missing", "no such file, folder or matching glob"),
    ("unknown", "unsupported input"),
    ("shape", "expected rows of shape (6, 6) or (36,) for this model, got rows of shape (5,)"),
    ("labels", "a 1-D IDX array (labels?)"),
    ("npz-many", "holds 2 arrays (a, b); choose one with --column"),
    ("parquet-none", "no column of encoded images or numeric lists; choose one with --column"),
    ("pickle", "object arrays are never unpickled"),
    ("twice", "given twice"),
])
def test_bad_inputs_stop_before_anything_is_written(setup: str, message: str, tiny: Tiny, tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    paths = [tmp_path / "input"]
    if setup == "unknown":
        paths[0] = tmp_path / "input.csv"
        paths[0].write_text("1,2,3\n")
    elif setup == "shape":
        paths[0] = tmp_path / "x.npy"
        np.save(paths[0], np.zeros((3, 5), np.float32))
    elif setup == "labels":
        paths[0] = write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(4, np.uint8))
    elif setup == "npz-many":
        paths[0] = tmp_path / "x.npz"
        np.savez(paths[0], a=np.zeros((2, 36)), b=np.zeros((2, 36)))
    elif setup == "parquet-none":
        paths[0] = write_parquet(tmp_path / "x.parquet", {"name": ["a"], "label": [1]})
    elif setup == "pickle":
        paths[0] = tmp_path / "x.npy"
        np.save(paths[0], np.array([{"a": 1}], dtype=object), allow_pickle=True)
    elif setup == "twice":
        paths = [tmp_path / "x.npy", tmp_path / "x.npy"]
        np.save(paths[0], tiny.queries[:3])
    args: list[str | Path] = []
    for path in paths:
        args += ["--input", path]
    status, _, stderr = cli(*args, "--out", tmp_path / "out", "--model", tiny.bundle)
    assert status == 2
    assert stderr.count("\n") == 1 and message in stderr, stderr
    assert not (tmp_path / "out").exists()
