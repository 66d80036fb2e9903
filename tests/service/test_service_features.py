"""A CNN bundle through a real server: raw images in for Classify, ClassifyStream and Search, ModelInfo's
feature space, the shape error, and a server process that never imports torch."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import numpy as np
import pytest
from learned_bundles import CnnBundle

from knnserve.model import KNNModel
from knnserve.service.config import ServeConfig
from knnserve.service.server import KnnServer
from knnserve_client import Client
from knnserve_client.wire.status import InvalidArgumentError


@pytest.fixture(scope="module")
def cnn_server(cnn_bundle: CnnBundle) -> Iterator[str]:
    server = KnnServer(ServeConfig(models_dir=cnn_bundle.root, port=0, grace_s=1.0))
    port = server.start()
    server.load_models()
    yield f"127.0.0.1:{port}"
    server.stop(0)


def test_model_info_says_the_model_works_on_the_extractors_embedding(cnn_server: str) -> None:
    with Client(cnn_server, timeout=10) as client:
        info = client.model("shapes")
    assert info.input_shape == (16, 16) and info.input_dtype == "uint8" and info.dim == 256
    features = info.features
    assert (features.input, features.extractor, features.embedding_dim, features.dim) == ("extractor", "cnn:tiny", 16, 16)
    assert features.preprocessing in ("raw", "cosine")
    assert info.heads == ("knn", "linear")


def test_classify_and_search_take_raw_images(cnn_server: str, cnn_bundle: CnnBundle) -> None:
    model = KNNModel.load(cnn_bundle.path)
    images = cnn_bundle.dataset.x_test  # type: ignore[attr-defined]
    local = model.classify(images)
    linear, _ = model.predict_linear(model.prepare(images))
    with Client(cnn_server, timeout=10) as client:
        result = client.classify("shapes", images, return_neighbors=True)
        assert result.knn is not None and result.linear is not None and result.neighbors is not None
        np.testing.assert_array_equal(result.knn.predictions, local.predictions)
        np.testing.assert_array_equal(result.linear.predictions, linear)
        np.testing.assert_array_equal(result.neighbors.ids, local.ids)
        flat = client.classify("shapes", images.reshape(len(images), -1).astype(np.float32), heads=("linear",))
        np.testing.assert_array_equal(flat.linear.predictions, linear)  # type: ignore[union-attr]
        hits = client.search("shapes", images[:7], k=4)
        distances, ids = model.search(model.prepare(images[:7]), model.resolve(model.defaults.replace(k=4)))
        np.testing.assert_array_equal(hits.ids, ids)
        np.testing.assert_allclose(hits.distances, distances, rtol=1e-5)  # Euclidean, in the embedding space
        streamed = list(client.classify_batches("shapes", [images[:20], images[20:]]))
        np.testing.assert_array_equal(np.concatenate([p.knn.predictions for p in streamed]), local.predictions)  # type: ignore[union-attr]


def test_images_of_another_shape_are_invalid_argument_naming_the_expected_shape(cnn_server: str) -> None:
    with Client(cnn_server, timeout=10) as client:
        with pytest.raises(InvalidArgumentError, match=r"inputs.shape: expected \(n, 16, 16\) or \(n, 256\) \(images for "
                                                        r"the extractor cnn:tiny\), got \(3, 28, 28\)"):
            client.classify("shapes", np.zeros((3, 28, 28), np.uint8))
        with pytest.raises(InvalidArgumentError, match=r"inputs.shape: expected \(n, 16, 16\)"):
            client.search("shapes", np.zeros((2, 255), np.float32))


def test_a_server_serving_a_cnn_bundle_never_imports_torch(cnn_bundle: CnnBundle) -> None:
    script = textwrap.dedent(f"""
        import json, sys
        from pathlib import Path
        import numpy as np
        from knnserve.service.config import ServeConfig
        from knnserve.service.server import KnnServer
        from knnserve_client import Client

        server = KnnServer(ServeConfig(models_dir=Path({str(cnn_bundle.root)!r}), port=0, grace_s=1.0))
        port = server.start()
        server.load_models()
        with Client(f"127.0.0.1:{{port}}", timeout=10) as client:
            result = client.classify("shapes", np.zeros((4, 16, 16), np.uint8))
        server.stop(0)
        print(json.dumps({{"rows": len(result.knn.predictions), "heads": [h for h in ("knn", "linear") if getattr(result, h) is not None],
                          "torch": sorted(m for m in sys.modules if m == "torch" or m.startswith("torch.")),
                          "onnxruntime": "onnxruntime" in sys.modules}}))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {"rows": 4, "heads": ["knn", "linear"], "torch": [], "onnxruntime": True}
