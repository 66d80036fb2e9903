"""Learned features: training, the ONNX export and its parity check, the bundle's checks of the extractor,
validation of raw images, a user's ONNX model and its mismatch error, the missing extra, colour images."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from learned_bundles import CnnBundle, template_images, tiny_onnx

from knnserve.cli import main
from knnserve.errors import BundleError, InvalidInputError
from knnserve.features.extractor import EXTRACTOR_FILE, inspect_onnx, network_input
from knnserve.model import KNNModel


def test_training_records_the_network_and_its_parity(cnn_bundle: CnnBundle) -> None:
    manifest = KNNModel.load(cnn_bundle.path).manifest
    assert manifest is not None and manifest.extractor is not None
    record = manifest.extractor
    assert record.source == "cnn:tiny" and record.input_shape == (1, 16, 16) and record.layout == "nchw"
    assert record.embedding_dim == 16 and record.scale == 255.0
    assert EXTRACTOR_FILE in manifest.files and manifest.files[EXTRACTOR_FILE].bytes == record.onnx_bytes
    training = record.training
    assert 1 <= training["epochs_run"] <= 3 and len(training["history"]) == training["epochs_run"]
    assert {"train_loss", "val_loss", "val_accuracy"} <= set(training["history"][0])
    parity = record.parity
    assert parity is not None and parity.passed and parity.max_abs_diff <= 1e-5 and parity.knn_disagreements == 0
    metrics = manifest.metrics
    assert metrics["features"] == "cnn:tiny" and 0 <= metrics["cnn_test_accuracy"] <= 1
    assert metrics["knn_validation"]["folds"] == 1  # chosen on the validation rows' embeddings
    assert metrics["knn_test_accuracy"] > 0.6 and metrics["linear_test_accuracy"] > 0.6
    assert manifest.index.dim == 16 and manifest.input_shape == (16, 16) and manifest.input_dtype == "uint8"


def test_the_loaded_bundle_classifies_raw_images_as_trained(cnn_bundle: CnnBundle) -> None:
    model = KNNModel.load(cnn_bundle.path)
    x_test = cnn_bundle.dataset.x_test  # type: ignore[attr-defined]
    knn = model.classify(x_test).predictions
    rows = model.prepare(x_test)
    linear, _ = model.predict_linear(rows)
    metrics = cnn_bundle.result.metrics  # type: ignore[attr-defined]
    assert np.mean(knn == cnn_bundle.dataset.y_test) == pytest.approx(metrics["knn_test_accuracy"])  # type: ignore[attr-defined]
    assert np.mean(linear == cnn_bundle.dataset.y_test) == pytest.approx(metrics["linear_test_accuracy"])  # type: ignore[attr-defined]
    flat = model.classify(x_test.reshape(len(x_test), -1).astype(np.float32)).predictions
    np.testing.assert_array_equal(flat, knn)  # flattened float32 pixels are the same images
    distances, ids, features = model.search_features(rows, model.resolve())
    assert features is not None and features.shape == (len(x_test), 16)
    np.testing.assert_array_equal(model.predict_linear(rows, features)[0], linear)


def test_images_of_another_shape_or_dtype_are_refused_naming_the_expected_shape(cnn_bundle: CnnBundle) -> None:
    model = KNNModel.load(cnn_bundle.path)
    with pytest.raises(InvalidInputError, match=r"inputs.shape: expected \(n, 16, 16\) or \(n, 256\) \(images for the "
                                                r"extractor cnn:tiny\), got \(2, 28, 28\)"):
        model.prepare(np.zeros((2, 28, 28), np.uint8), field="inputs")
    with pytest.raises(InvalidInputError, match=r"inputs.dtype: expected uint8 or float32 images of shape \(n, 16, 16\)"):
        model.prepare(np.zeros((2, 16, 16), np.int64), field="inputs")


def test_a_changed_onnx_file_fails_its_checksum(cnn_bundle: CnnBundle, tmp_path: Path) -> None:
    bundle = tmp_path / "b"
    shutil.copytree(cnn_bundle.path, bundle)
    data = bytearray((bundle / EXTRACTOR_FILE).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (bundle / EXTRACTOR_FILE).write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"extractor.onnx: sha256 does not match the manifest"):
        KNNModel.load(bundle)


@pytest.mark.parametrize(("change", "message"), [
    (lambda m: m["extractor"].update(embedding_dim=17), "extractor.embedding_dim: expected 16 features"),
    (lambda m: m["extractor"].update(input_shape=[3, 16, 16]), "extractor.input_shape"),
    (lambda m: m.update(input_shape=[8, 32]), "extractor.input_shape"),
    (lambda m: m["extractor"]["parity"].update(passed=False), "extractor.parity.passed"),
    (lambda m: m["extractor"].update(file="other.onnx"), "extractor.file 'other.onnx' is not among the files"),
])
def test_a_manifest_that_lies_about_the_extractor_is_refused(cnn_bundle: CnnBundle, tmp_path: Path, change, message: str) -> None:
    bundle = tmp_path / "b"
    shutil.copytree(cnn_bundle.path, bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    change(manifest)
    (bundle / "manifest.json").write_text(json.dumps(manifest))  # the manifest lists the others' checksums, not its own
    with pytest.raises(BundleError, match=message.replace("(", r"\(").replace(")", r"\)")):
        KNNModel.load(bundle)


def test_training_is_reproducible() -> None:
    from knnserve.training.cnn import train_network
    from knnserve.training.config import CnnConfig

    x, y = template_images(5, 120, (8, 8))
    config = CnnConfig(arch="tiny", epochs=1, threads=1, batch_size=32)
    a = train_network(x[:100], y[:100], x[100:], y[100:], 3, config)
    b = train_network(x[:100], y[:100], x[100:], y[100:], 3, config)
    for (name, left), right in zip(a.net.state_dict().items(), b.net.state_dict().values()):
        assert torch_equal(left, right), name


def test_a_parity_failure_stops_the_export(cnn_bundle: CnnBundle) -> None:
    from knnserve.training.export import ParityError, check_parity

    model = KNNModel.load(cnn_bundle.path)
    data = cnn_bundle.dataset
    features = model.embed(model.prepare(data.x_train))
    assert model.extractor is not None
    record = check_parity(cnn_bundle.result.network, model.extractor, data.x_test, features, data.y_train, n_classes=3)
    assert record.passed and record.rows == 60 and record.max_abs_diff <= 1e-5  # the bundle's graph is the network's
    with pytest.raises(ParityError, match="does not match torch on 60 validation rows"):
        check_parity(cnn_bundle.result.network, model.extractor, data.x_test, features, data.y_train, n_classes=3,
                     tolerance=-1.0)


def torch_equal(left, right) -> bool:  # type: ignore[no-untyped-def]
    import torch

    return bool(torch.equal(left, right))


def test_without_the_extra_train_fails_at_once_in_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    class NoTorch:  # a finder that says torch is not installed
        def find_spec(self, name, path=None, target=None):  # type: ignore[no-untyped-def]
            if name == "torch" or name.startswith("torch."):
                raise ModuleNotFoundError(f"No module named {name!r}")
            return None

    for name in [m for m in sys.modules if m == "torch" or m.startswith("torch.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(sys, "meta_path", [NoTorch(), *sys.meta_path])
    status = main(["train", "--features", "cnn", "--data-dir", str(tmp_path / "absent"), "--out", str(tmp_path / "b")])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1, err
    assert 'knnserve train: error: --features cnn:small7 trains a network with PyTorch, which is not installed; ' \
           'install the extra: pip install "knnserve[cnn]"' in err
    assert not (tmp_path / "b").exists()


def _npz(path: Path, shape: tuple[int, ...]) -> Path:
    x, y = template_images(3, 200, shape)
    xt, yt = template_images(4, 40, shape)
    np.savez(path, x_train=x, y_train=y, x_test=xt, y_test=yt)
    return path


@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
def test_a_users_onnx_model_is_read_from_its_graph_and_serves(tmp_path: Path, layout: str,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    shape: list[int | str] = ["batch", 1, 12, 12] if layout == "nchw" else ["N", 12, 12, 1]
    model_file = tiny_onnx(tmp_path / "mine.onnx", shape)
    record = inspect_onnx(model_file)
    assert (record.layout, record.embedding_dim, record.source) == (layout, 8, "onnx:mine.onnx")
    data = _npz(tmp_path / "grey.npz", (12, 12))
    out = tmp_path / "bundle"
    status = main(["train", "--data-dir", str(data), "--features", f"onnx:{model_file}", "--k", "3", "--preprocess", "raw",
                   "--out", str(out), "--no-progress"])
    assert status == 0, capsys.readouterr().err
    model = KNNModel.load(out)
    assert model.extractor is not None and model.extractor.record.source == "onnx:mine.onnx"
    assert model.index_info.dim == 8
    images = np.load(data)["x_test"]
    expected = np.maximum(images.reshape(len(images), -1).astype(np.float32) / 255 @ _weights(model_file), 0)
    np.testing.assert_allclose(model.embed(model.prepare(images)), expected, rtol=1e-5, atol=1e-5)


def _weights(path: Path) -> np.ndarray:
    import onnx
    from onnx import numpy_helper

    return numpy_helper.to_array(onnx.load(path).graph.initializer[0])


def test_a_users_onnx_model_that_does_not_fit_the_images_fails_at_train_time(tmp_path: Path,
                                                                              capsys: pytest.CaptureFixture[str]) -> None:
    model_file = tiny_onnx(tmp_path / "rgb.onnx", ["batch", 3, 32, 32])
    data = _npz(tmp_path / "grey.npz", (12, 12))
    status = main(["train", "--data-dir", str(data), "--features", f"onnx:{model_file}", "--out", str(tmp_path / "b")])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1, err
    assert ("features: expected a network taking [batch, 1, 12, 12] (NCHW) or [batch, 12, 12, 1] (NHWC) float32 for "
            "these 12x12 images, got input 'x' of shape [batch, 3, 32, 32]") in err
    status = main(["train", "--data-dir", str(data), "--features", f"onnx:{tmp_path / 'none.onnx'}", "--out", str(tmp_path / "b")])
    assert status == 2 and "no such file" in capsys.readouterr().err


def test_network_input_lays_out_grey_and_colour_images() -> None:
    from knnserve.features.extractor import ExtractorRecord

    hwc = np.arange(2 * 4 * 4 * 3, dtype=np.float32).reshape(2, 4, 4, 3)
    nchw = ExtractorRecord(source="t", input_name="x", output_name="y", input_shape=(3, 4, 4), layout="nchw", embedding_dim=1)
    out = network_input(hwc.reshape(2, -1), (4, 4, 3), nchw)
    np.testing.assert_array_equal(out, hwc.transpose(0, 3, 1, 2) / 255)
    nhwc = nchw.model_copy(update={"input_shape": (4, 4, 3), "layout": "nhwc", "scale": 1.0})
    np.testing.assert_array_equal(network_input(hwc.reshape(2, -1), (4, 4, 3), nhwc), hwc)


def cifar_bytes(images: np.ndarray, labels: np.ndarray) -> bytes:
    """CIFAR-10 binary records: a label byte, then the R, G and B planes (1024 bytes each)."""
    planes = images.transpose(0, 3, 1, 2).reshape(len(images), -1)
    return np.concatenate([labels.astype(np.uint8)[:, None], planes], axis=1).tobytes()


def test_colour_images_in_cifar_binary_files_train_and_serve(tmp_path: Path) -> None:
    from knnserve.data import load_folder
    from knnserve.train import FeaturesConfig, KnnConfig, LinearConfig, train_model
    from knnserve.training.config import CnnConfig

    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    for batch in range(1, 6):
        x, y = template_images(10 + batch, 40, (32, 32, 3), classes=10)
        (folder / f"data_batch_{batch}.bin").write_bytes(cifar_bytes(x, y))
    x_test, y_test = template_images(20, 30, (32, 32, 3), classes=10)
    (folder / "test_batch.bin").write_bytes(cifar_bytes(x_test, y_test))
    (folder / "batches.meta.txt").write_text("\n".join(f"class{i}" for i in range(10)) + "\n")
    dataset = load_folder(folder)
    assert dataset.image_shape == (32, 32, 3)
    result = train_model(dataset, KnnConfig(index="flat", defaults=_q(3)),
                         LinearConfig("none"), features=FeaturesConfig("cnn:tiny", CnnConfig(epochs=2, threads=1)))
    result.model.save(tmp_path / "colour", name="colour")
    model = KNNModel.load(tmp_path / "colour")
    assert model.extractor is not None and model.extractor.record.input_shape == (3, 32, 32)
    predictions = model.classify(x_test).predictions  # raw HWC colour images, as CIFAR readers give them
    assert np.mean(predictions == y_test) == pytest.approx(result.metrics["knn_test_accuracy"])
    assert result.metrics["knn_test_accuracy"] > 0.3  # 10 classes: chance is 0.1


def _q(k: int):  # type: ignore[no-untyped-def]
    from knnserve_client.wire.query import KnnQuery

    return KnnQuery(k=k)


def test_a_loaded_cnn_bundle_saves_again_and_tunes_into_a_new_version(cnn_bundle: CnnBundle, tmp_path: Path) -> None:
    """knnserve tune writes a loaded bundle back (extractor, linear head and all) with a new default."""
    from knnserve.evaluate.tune import TuneSettings, tune_bundle, write_tuned_version

    record = tune_bundle(cnn_bundle.path, cnn_bundle.dataset, TuneSettings(target_recall=0.9, k=5, tune_queries=40))
    assert record.reached and record.parameter == "ef_search"
    written = write_tuned_version(cnn_bundle.path, record, out=tmp_path / "2", k=5, recall_epsilon=1e-3)
    tuned = KNNModel.load(written)
    assert tuned.extractor is not None and tuned.linear is not None and tuned.defaults.ef_search == record.value
    assert tuned.manifest is not None and tuned.manifest.extractor == KNNModel.load(cnn_bundle.path).manifest.extractor


def test_a_users_onnx_model_with_a_fixed_batch_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"features: expected a dynamic batch dimension in fixed.onnx"):
        inspect_onnx(tiny_onnx(tmp_path / "fixed.onnx", [1, 1, 12, 12]))


def test_a_cnn_bundle_plans_no_search_kernel(cnn_bundle: CnnBundle) -> None:
    """The integer kernels rank raw uint8 rows; an extractor's embeddings are float features."""
    from knnserve.index import backend

    model = KNNModel.load(cnn_bundle.path)
    assert model.kernel_plan.name == "faiss"  # HNSW: no kernel anyway
    # The same extractor over an exact L2 Flat of its embeddings: the index a kernel would otherwise take.
    embeddings = model.embed(model.prepare(cnn_bundle.dataset.x_train))  # type: ignore[attr-defined]
    flat = model._copy(index=backend.flat_index(embeddings, "l2"), _dispatch=None, preprocessor=None,
                       index_info=model.index_info.model_copy(update={"factory": "Flat", "metric": "l2"}))
    assert (flat.kernel_plan.name, flat.kernel_plan.reason) == ("faiss", "vectors are not raw uint8")


def test_predict_and_templates_on_a_cnn_bundle_without_torch(cnn_bundle: CnnBundle, tmp_path: Path) -> None:
    """knnserve predict runs a CNN bundle where torch cannot be imported; templates says why it has none to draw."""
    import subprocess
    import textwrap

    x = cnn_bundle.dataset.x_test[:12]  # type: ignore[attr-defined]
    np.save(tmp_path / "x.npy", x)
    script = textwrap.dedent(f"""
        import sys

        class NoTorch:  # any import of torch now fails, as where it is not installed
            def find_spec(self, name, path=None, target=None):
                if name == "torch" or name.startswith("torch."):
                    raise ImportError("torch is not installed here")

        sys.meta_path.insert(0, NoTorch())
        from knnserve.cli import main
        code = main(["predict", "--model", {str(cnn_bundle.path)!r}, "--input", {str(tmp_path / "x.npy")!r},
                     "--method", "both", "--out", {str(tmp_path / "p.csv")!r}])
        templates = main(["templates", "--model", {str(cnn_bundle.path)!r}, "--out", {str(tmp_path / "t.png")!r}])
        print("codes", code, templates)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert "codes 0 2" in done.stdout, done.stdout + done.stderr
    rows = (tmp_path / "p.csv").read_text().splitlines()
    assert len(rows) == 1 + len(x)
    expected = KNNModel.load(cnn_bundle.path).classify(x).predictions
    column = rows[0].split(",").index("knn_label")
    assert [int(row.split(",")[column]) for row in rows[1:]] == expected.tolist()
    assert "embedding of the extractor" in done.stderr and not (tmp_path / "t.png").exists()
