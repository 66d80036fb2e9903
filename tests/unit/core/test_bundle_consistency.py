"""A bundle whose manifest disagrees with its parts is refused at load, naming the field, even when its
checksums match (the manifest is edited, and nothing it checksums): by KNNModel.load, `knnserve info`,
and the server, which keeps serving the version before it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from knnserve.cli import main
from knnserve.dataplane import ModelRegistry
from knnserve.errors import BundleError
from knnserve.linear import LinearClassifier
from knnserve.model import KNNModel


def _edit(bundle: Path, change: Callable[[dict], None]) -> None:
    manifest = json.loads((bundle / "manifest.json").read_text())
    change(manifest)
    (bundle / "manifest.json").write_text(json.dumps(manifest))


def _set(path: str, value: object) -> Callable[[dict], None]:
    def change(manifest: dict) -> None:
        *parents, leaf = path.split(".")
        node = manifest
        for part in parents:
            node = node[part]
        node[leaf] = value

    return change


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Consistent bundles of each kind the cases edit: Flat, IVF, HNSW (float32 blobs), and one with a linear head."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(600, 12)).astype(np.float32)
    y = rng.integers(0, 3, 600)
    root = tmp_path_factory.mktemp("consistency")
    paths = {}
    for kind, spec in (("flat", "flat"), ("ivf", "IVF8,Flat"), ("hnsw", "HNSW16")):
        KNNModel.fit(x, y, index=spec).save(root / kind, name=kind)
        paths[kind] = root / kind
    head = LinearClassifier(epochs=2, seed=0).fit(x, y)
    KNNModel.fit(x, y).with_linear(head).save(root / "linear", name="linear")
    paths["linear"] = root / "linear"
    return paths


CASES = [
    ("flat", _set("index.metric", "l1"), "index.metric: expected l2"),
    ("flat", _set("input_shape", [3, 3]), "input_shape: expected a shape of 12 features"),
    ("flat", _set("knn.k", 601), "knn.k: expected an integer between 1 and 600"),
    ("flat", _set("knn.k", 0), "knn.k"),
    ("flat", _set("knn.k", -2), "knn.k"),
    ("ivf", _set("knn.nprobe", 9), "knn.nprobe: expected an integer between 1 and nlist=8"),
    ("flat", _set("knn.nprobe", 4), "knn.nprobe: expected unset: this index has no inverted lists"),
    ("hnsw", _set("knn.ef_search", 0), "knn.ef_search"),
    ("hnsw", _set("knn.ef_search", 10**6), "knn.ef_search: expected an integer between 1 and 4096"),
    ("flat", _set("knn.ef_search", 64), "knn.ef_search: expected unset: this index is not HNSW"),
    ("flat", _set("knn.top_n", 7), "knn.top_n: expected an integer between 0 and 3"),
    ("linear", _set("linear.model.n_features", 11), "linear"),
    ("linear", _set("linear.model.n_classes", 4), "linear"),
]


@pytest.mark.parametrize(("kind", "change", "message"), CASES, ids=[c[2] for c in CASES])
def test_inconsistent_manifest_is_refused_naming_the_field(bundles: dict[str, Path], tmp_path: Path, kind: str,
                                                           change: Callable[[dict], None], message: str,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    bundle = tmp_path / kind
    shutil.copytree(bundles[kind], bundle)
    KNNModel.load(bundle)  # consistent as saved
    _edit(bundle, change)
    with pytest.raises(BundleError, match=message.replace("(", r"\(").replace(")", r"\)")):
        KNNModel.load(bundle)
    assert main(["info", "--model", str(bundle)]) == 2
    err = capsys.readouterr().err
    assert "knn" in err or "index" in err or "input_shape" in err or "linear" in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_the_server_refuses_the_version_and_keeps_serving_the_one_before(bundles: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    root = tmp_path / "models"
    shutil.copytree(bundles["flat"], root / "m" / "1")
    registry = ModelRegistry(models_dir=root)
    registry.reload()
    shutil.copytree(bundles["flat"], root / "m" / "2")
    _edit(root / "m" / "2", _set("index.metric", "l1"))
    report = registry.reload()
    assert [(n, v) for n, v, _ in report.failed] == [("m", 2)] and "index.metric" in report.failed[0][2]
    assert registry.get("m").version == 1  # version 2 is not served; version 1 keeps serving
    again = registry.reload()  # a broken version whose files did not change is not read again
    assert again.skipped == (("m", 2),) and again.failed == ()
    _edit(root / "m" / "2", _set("index.metric", "l2"))  # fixed: its files changed, so it is loaded
    assert registry.reload().loaded == (("m", 2),) and registry.get("m").version == 2
    registry.close()
