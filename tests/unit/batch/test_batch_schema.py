"""The output schema is what docs/batch.md documents, in Parquet and in CSV, for one head and for both."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from batch_helpers import CLASSES, Tiny, table
from knnserve.answers import head_result
from knnserve.batch.results import ERROR, INDEX, SOURCE, ResultBatch
from knnserve.batch.schema import OutputMeta, to_arrow


def test_parquet_schema_one_head(tiny: Tiny, tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    import pyarrow as pa

    np.save(tmp_path / "q.npy", tiny.queries)
    status, _, stderr = cli("--input", tmp_path / "q.npy", "--out", tmp_path / "out", "--model", tiny.bundle)
    assert status == 0, stderr
    result = table(tmp_path / "out")
    assert result.schema.metadata == {b"knnserve.batch.schema_version": b"1"}
    assert [(f.name, str(f.type), f.nullable) for f in result.schema] == [
        ("row_id", "string", False), ("source", "string", False), ("index", "int64", False),
        ("prediction", "int64", False), ("class_name", "string", True),
        ("top_classes", "list<element: int32>", False), ("top_scores", "list<element: float>", False),
        ("model", "string", False), ("model_version", "int64", False),
    ]
    assert result.schema.field("top_classes").type == pa.list_(pa.int32())
    voted = tiny.model.classify(tiny.queries)
    expected = head_result(voted.predictions, voted.probabilities, 3)  # top_n defaults to min(5, classes)
    assert result.column("top_classes").to_pylist() == expected.top_classes.tolist()
    np.testing.assert_array_equal(np.array(result.column("top_scores").to_pylist(), np.float32), expected.top_scores)
    assert result.column("class_name").to_pylist() == [CLASSES[p] for p in voted.predictions]
    assert set(result.column("model").to_pylist()) == {"pix"} and set(result.column("model_version").to_pylist()) == {1}


def test_both_heads_neighbors_and_csv_agree_with_parquet(tiny: Tiny, tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    np.save(tmp_path / "q.npy", tiny.queries)
    common = ("--input", tmp_path / "q.npy", "--model", tiny.bundle, "--method", "both", "--neighbors", "--k", "4",
              "--weights", "distance", "--top-n", "2", "--shard-rows", "100")
    assert cli(*common, "--out", tmp_path / "pq")[0] == 0
    assert cli(*common, "--out", tmp_path / "csv", "--format", "csv")[0] == 0
    result = table(tmp_path / "pq")
    assert result.column_names == [
        "row_id", "source", "index",
        "knn_prediction", "knn_class_name", "knn_top_classes", "knn_top_scores",
        "linear_prediction", "linear_class_name", "linear_top_classes", "linear_top_scores",
        "neighbor_ids", "neighbor_distances", "neighbor_labels", "model", "model_version",
    ]
    query = tiny.model.resolve(tiny.model.defaults.replace(k=4, weights="distance"))
    voted = tiny.model.classify(tiny.queries, query)
    assert result.column("knn_prediction").to_pylist() == voted.predictions.tolist()
    assert result.column("linear_prediction").to_pylist() == tiny.model.predict_linear(tiny.model.prepare(tiny.queries))[0].tolist()
    assert result.column("neighbor_ids").to_pylist() == voted.ids.tolist()
    assert result.column("neighbor_labels").to_pylist() == voted.neighbor_labels.tolist()
    np.testing.assert_array_equal(np.array(result.column("neighbor_distances").to_pylist(), np.float32), voted.distances)
    parts = sorted((tmp_path / "csv").glob("part-*.csv"))
    assert [p.name for p in parts] == ["part-00000.csv", "part-00001.csv", "part-00002.csv"]
    rows = [row for part in parts for row in csv.DictReader(part.open(newline=""))]
    assert list(rows[0]) == result.column_names
    for row, expected in zip(rows, result.to_pylist()):
        for name, value in expected.items():
            text = row[name]
            if isinstance(value, list):
                got = json.loads(text)  # floats are written as the shortest text that reads back to the same float32
                assert np.array_equal(np.array(got, np.float32), np.array(value, np.float32)) if value and isinstance(value[0], float) \
                    else got == value, name
            elif isinstance(value, int):
                assert int(text) == value, name
            else:
                assert text == (value or ""), name


def _result() -> ResultBatch:
    """Three rows of one shard: a good one, a bad one, and a good one whose search found no neighbour (-1)."""
    return ResultBatch(0, 0, {
        SOURCE: np.array(["in/é.npy", "in/é.npy", "b.npy"], dtype=object),
        INDEX: np.array([0, 1, 12], dtype=np.int64),
        ERROR: np.array(["", "input: bad", ""], dtype=object),
        "knn_prediction": np.array([2, -1, -1], dtype=np.int64),
        "knn_top_classes": np.array([[2, 0], [-1, -1], [-1, -1]], dtype=np.int32),
        "knn_top_scores": np.array([[0.75, 0.25], [0, 0], [0, 0]], dtype=np.float32),
    })


def test_arrow_columns_hold_the_good_rows_with_null_class_names_for_no_neighbour() -> None:
    meta = OutputMeta("fm", 3, ("a", "b", "çé"), ("knn",), False)
    rows = to_arrow(_result(), meta).to_pylist()
    assert rows == [
        {"row_id": "in/é.npy:0", "source": "in/é.npy", "index": 0, "prediction": 2, "class_name": "çé",
         "top_classes": [2, 0], "top_scores": [0.75, 0.25], "model": "fm", "model_version": 3},
        {"row_id": "b.npy:12", "source": "b.npy", "index": 12, "prediction": -1, "class_name": None,
         "top_classes": [-1, -1], "top_scores": [0.0, 0.0], "model": "fm", "model_version": 3},
    ]
    assert to_arrow(_result(), meta).column("class_name").null_count == 1
    empty = _result()
    empty.columns[ERROR][:] = "input: bad"
    assert to_arrow(empty, meta).num_rows == 0


def test_writing_a_part_imports_neither_pandas_nor_pyarrow_compute() -> None:
    # pyarrow's pa.array imports pandas (0.4-0.75 s here) to check for pandas objects; the writer avoids it.
    code = (
        "import sys, numpy as np\n"
        "from knnserve.batch.output import encode_part\n"
        "from knnserve.batch.results import ResultBatch\n"
        "from knnserve.batch.schema import OutputMeta\n"
        "r = ResultBatch(0, 0, {'source': np.array(['a'], dtype=object), 'index': np.array([0]), 'error': np.array([''], dtype=object),"
        " 'knn_prediction': np.array([1]), 'knn_top_classes': np.array([[1]], np.int32), 'knn_top_scores': np.array([[1.0]], np.float32)})\n"
        "assert encode_part(r, OutputMeta('m', 1, ('a', 'b'), ('knn',), False), 'parquet')[:4] == b'PAR1'\n"
        "print(sorted(m for m in ('pandas', 'pyarrow.compute') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
