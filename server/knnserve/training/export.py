"""The trained network as ONNX (opset 20), checked against torch before it is kept.

The check runs the validation rows through both: the largest absolute difference of the embeddings
must be at most ``PARITY_TOLERANCE`` and exact k-NN on the two sets of embeddings (against the same
index of training embeddings) must predict the same classes. Its figures go into the manifest.
"""

from __future__ import annotations

import io
import warnings

import numpy as np

from knnserve.errors import KnnServeError
from knnserve.features.extractor import Extractor, ExtractorRecord, ParityRecord
from knnserve.training.cnn import Embedder, EmbeddingNet, TrainedNetwork, embed, to_nchw, torch

OPSET = 20
PARITY_TOLERANCE = 1e-5
INPUT_NAME = "images"
OUTPUT_NAME = "embedding"


class ParityError(KnnServeError):
    """The exported graph does not compute what the torch network computes."""


def export_onnx(trained: TrainedNetwork) -> bytes:
    """The embedding part of the network as an ONNX graph (opset 20, dynamic batch), as bytes.

    torch's TorchScript-based exporter (``dynamo=False``): on this project's 2-core machine it
    exported the small network in 0.7 s against 10.7 s for the dynamo exporter (which also needs
    onnxscript), and its graph matched torch to 7e-8 (the parity check below decides either way).
    """
    embedder = Embedder(trained.net).eval()
    example = torch.zeros((2, *trained.image_chw), dtype=torch.float32)
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation notes are not the user's business
        torch.onnx.export(
            embedder, (example,), buffer, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], opset_version=OPSET,
            dynamo=False, dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
        )
    return buffer.getvalue()


def record_of(trained: TrainedNetwork, onnx: bytes, *, scale: float, source: str) -> ExtractorRecord:
    """The manifest record of an exported network (its parity filled in later by :func:`check_parity`)."""
    return ExtractorRecord(
        source=source,
        input_name=INPUT_NAME,
        output_name=OUTPUT_NAME,
        input_shape=trained.image_chw,
        layout="nchw",
        scale=scale,
        embedding_dim=trained.net.embedding_dim,
        parameters=trained.parameters,
        onnx_bytes=len(onnx),
        training=trained.record(),
    )


def check_parity(
    net: EmbeddingNet,
    extractor: Extractor,
    x_val: np.ndarray,
    fit_features: np.ndarray,
    fit_labels: np.ndarray,
    *,
    n_classes: int,
    k: int = 5,
    tolerance: float = PARITY_TOLERANCE,
) -> ParityRecord:
    """Compare the ONNX graph (onnxruntime) with the torch network on the validation images ``x_val``.

    Raises ParityError when the embeddings differ by more than ``tolerance`` or k-NN (exact, L2,
    ``k`` neighbours among ``fit_features``) predicts any row differently.
    """
    from knnserve.model import KNNModel

    image_shape = tuple(x_val.shape[1:])
    ours = embed(net, to_nchw(x_val, extractor.record.scale))
    theirs = extractor(np.ascontiguousarray(x_val.reshape(x_val.shape[0], -1), dtype=np.float32), image_shape)
    diff = float(np.max(np.abs(ours - theirs))) if ours.size else 0.0
    index = KNNModel.fit(fit_features, fit_labels, class_names=tuple(map(str, range(n_classes))), index="flat")
    k = min(k, index.ntotal)
    a = index.classify(ours, index.resolve(index.defaults.replace(k=k))).predictions
    b = index.classify(theirs, index.resolve(index.defaults.replace(k=k))).predictions
    disagreements = int(np.sum(a != b))
    passed = diff <= tolerance and disagreements == 0
    record = ParityRecord(rows=int(x_val.shape[0]), max_abs_diff=diff, tolerance=tolerance, knn_k=k,
                          knn_disagreements=disagreements, passed=passed)
    if not passed:
        raise ParityError(
            f"the exported ONNX extractor does not match torch on {record.rows} validation rows: max abs difference "
            f"{diff:.3g} (tolerance {tolerance:g}), {disagreements} different k-NN predictions; no bundle written"
        )
    return record


__all__ = ["OPSET", "PARITY_TOLERANCE", "ParityError", "check_parity", "export_onnx", "record_of"]
