"""The feature extractor at inference: an ONNX image network run by onnxruntime (never torch).

Raw images go in as the rows ``KNNModel.prepare`` validated (float32 pixel values, one flattened
image a row, in the dataset's layout: (H, W) or (H, W, C)); they are laid out as the network takes
them (NCHW or NHWC), divided by ``scale`` (255: pixels in [0, 1]) and run through the graph; its
first output, flattened to (n, embedding_dim), is the embedding the index and the linear head work on.

The record of what the network takes (:class:`ExtractorRecord`) is stored in the bundle manifest;
:func:`inspect_onnx` reads it from a graph, :func:`match_images` checks it against a dataset's
image shape (at train time, so a mismatch never waits for the first request).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from knnserve.errors import BundleError, InvalidInputError
from knnserve.images import require_image_layout

EXTRACTOR_FILE = "extractor.onnx"
# Rows per onnxruntime call: bounds the activations' memory (a 28x28 image's are ~200 kB) without
# costing speed (above ~256 rows a call the throughput is flat).
EXTRACT_CHUNK_ROWS = 1024
# Batches up to this many rows run on a second, single-threaded session: a few images are not worth
# waking onnxruntime's pool (in a busy server the wake-ups cost more than the convolutions).
SMALL_BATCH_ROWS = 4
Layout = Literal["nchw", "nhwc"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ParityRecord(_Frozen):
    """The check of the exported ONNX graph against the torch network it came from (at train time)."""

    rows: int
    max_abs_diff: float
    tolerance: float
    knn_k: int
    knn_disagreements: int
    passed: bool


class ExtractorRecord(_Frozen):
    """What the extractor takes and gives, as the manifest stores it (``Manifest.extractor``)."""

    file: str = EXTRACTOR_FILE
    # "cnn:small", "cnn:wide" (trained here) or "onnx:NAME" (brought by the user).
    source: str
    input_name: str
    output_name: str
    # One image as the network takes it, without the batch: (C, H, W) for nchw, (H, W, C) for nhwc.
    input_shape: tuple[int, ...]
    layout: Layout
    # Pixels are divided by this before the network sees them (255: values in [0, 1]).
    scale: float = 255.0
    dtype: Literal["float32"] = "float32"
    embedding_dim: int
    parameters: int | None = None
    onnx_bytes: int = 0
    parity: ParityRecord | None = None
    training: dict[str, Any] = Field(default_factory=dict)

    @property
    def channels(self) -> int:
        """Colour channels the network takes."""
        return self.input_shape[0] if self.layout == "nchw" else self.input_shape[-1]

    @property
    def hw(self) -> tuple[int, int]:
        """Height and width of one image."""
        return (self.input_shape[1], self.input_shape[2]) if self.layout == "nchw" else (self.input_shape[0], self.input_shape[1])

    def describe(self) -> str:
        """E.g. ``cnn:small, float32 (1, 28, 28) nchw in [0, 1] -> 128-d embedding``."""
        shape = ", ".join(map(str, self.input_shape))
        return f"{self.source}, float32 ({shape}) {self.layout} pixels/{self.scale:g} -> {self.embedding_dim}-d embedding"


def expected_network_shapes(image_shape: tuple[int, ...]) -> str:
    """The network input shapes that fit images of ``image_shape``, in words."""
    c, h, w = require_image_layout(image_shape).chw
    return f"[batch, {c}, {h}, {w}] (NCHW) or [batch, {h}, {w}, {c}] (NHWC)"


def match_images(record: ExtractorRecord, image_shape: tuple[int, ...], *, what: str = "features") -> None:
    """InvalidInputError unless the network takes images of ``image_shape`` (channels, height, width)."""
    c, h, w = require_image_layout(image_shape).chw
    if (record.channels, *record.hw) != (c, h, w):
        raise InvalidInputError(
            what,
            f"a network taking {expected_network_shapes(image_shape)} float32 for these "
            f"{'x'.join(map(str, image_shape))} images",
            f"input '{record.input_name}' of shape [batch, {', '.join(map(str, record.input_shape))}]",
        )


def network_input(rows: np.ndarray, image_shape: tuple[int, ...], record: ExtractorRecord) -> np.ndarray:
    """Prepared float32 rows (n, prod(image_shape)) as the network takes them: laid out and scaled."""
    n = rows.shape[0]
    images = rows.reshape(n, *image_shape)
    if len(image_shape) == 2:
        images = images[:, None, :, :] if record.layout == "nchw" else images[:, :, :, None]
    elif image_shape[-1] <= 4:  # HWC images
        if record.layout == "nchw":
            images = images.transpose(0, 3, 1, 2)
    elif record.layout == "nhwc":  # CHW images
        images = images.transpose(0, 2, 3, 1)
    # Divided, not multiplied by 1/scale: the same float32 values the network was trained on.
    return np.divide(images, np.float32(record.scale), dtype=np.float32)


def _session(model: bytes | str | Path, threads: int | None) -> Any:
    import onnxruntime as ort  # the server's one inference runtime; torch is never imported here

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.inter_op_num_threads = 1
    if threads is not None:
        options.intra_op_num_threads = int(threads)
    # Idle pool threads spinning for work burn the cores FAISS and other requests need.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def _static(dim: Any) -> int | None:
    return dim if isinstance(dim, int) and dim > 0 else None


def inspect_onnx(path: str | Path, *, source: str | None = None) -> ExtractorRecord:
    """Read an ONNX image model's input spec and embedding size from its graph.

    The graph must take one float32 tensor of rank 4 (a dynamic batch first; NCHW when the
    second axis has 1, 3 or 4 channels, else NHWC) and give, as its first output, (batch, D) or
    (batch, D, 1, 1). Errors are InvalidInputError naming what was found.
    """
    path = Path(path)
    try:
        session = _session(path, 1)
    except Exception as exc:  # onnxruntime raises its own exception types for unreadable graphs
        raise InvalidInputError("features", "a readable ONNX model file", f"{path} ({str(exc).splitlines()[0][:200]})") from None
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise InvalidInputError("features", "an ONNX model with one input (the images)", f"{len(inputs)} inputs in {path}")
    spec = inputs[0]
    if spec.type != "tensor(float)":
        raise InvalidInputError("features", f"a float32 input tensor in {path.name}", f"input '{spec.name}' of {spec.type}")
    shape = list(spec.shape)
    if len(shape) != 4 or any(_static(d) is None for d in shape[1:]):
        raise InvalidInputError(
            "features", f"an input of shape [batch, C, H, W] or [batch, H, W, C] with fixed C, H, W in {path.name}",
            f"input '{spec.name}' of shape {shape}",
        )
    if _static(shape[0]) is not None:  # the server runs whole batches through it
        raise InvalidInputError("features", f"a dynamic batch dimension in {path.name}", f"input '{spec.name}' of shape {shape}")
    dims = tuple(int(d) for d in shape[1:])
    layout: Layout = "nchw" if dims[0] in (1, 3, 4) else "nhwc"
    output = session.get_outputs()[0]
    embedding = _output_dim(output.shape)
    if embedding is None:  # a symbolic output size: ask the graph
        probe = np.zeros((1, *dims), dtype=np.float32)
        embedding = int(np.prod(session.run([output.name], {spec.name: probe})[0].shape[1:]))
    return ExtractorRecord(
        source=source or f"onnx:{path.name}",
        input_name=spec.name,
        output_name=output.name,
        input_shape=dims,
        layout=layout,
        embedding_dim=embedding,
        onnx_bytes=path.stat().st_size,
    )


def _output_dim(shape: list[Any]) -> int | None:
    rest = shape[1:]
    if not rest or any(_static(d) is None for d in rest):
        return None
    return math.prod(int(d) for d in rest)


class Extractor:
    """An ONNX network and its record; ``extractor(rows, image_shape)`` gives the embeddings.

    onnxruntime's ``InferenceSession.run`` is thread-safe, so one extractor serves every request of
    a model; ``threads`` is onnxruntime's intra-op pool (None: one per core). Batches of at most
    ``small_batch_rows`` rows go to a second session with one thread (0: never).
    """

    def __init__(self, model: bytes | str | Path, record: ExtractorRecord, *, threads: int | None = None,
                 small_batch_rows: int = SMALL_BATCH_ROWS) -> None:
        self.record = record
        self.onnx = model if isinstance(model, bytes) else Path(model).read_bytes()
        try:
            self._session = _session(self.onnx, threads)
            self._small = _session(self.onnx, 1) if small_batch_rows > 0 and threads != 1 else self._session
        except Exception as exc:
            raise BundleError(f"{record.file}: onnxruntime cannot load it ({str(exc).splitlines()[0][:200]})") from None
        self._small_rows = small_batch_rows
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        names = ([i.name for i in inputs], [o.name for o in outputs])
        if names[0] != [record.input_name] or record.output_name not in names[1]:
            raise BundleError(
                f"manifest extractor: expected input {record.input_name!r} and output {record.output_name!r}, "
                f"the ONNX graph has inputs {names[0]} and outputs {names[1]}"
            )
        declared = [d if isinstance(d, int) else None for d in inputs[0].shape[1:]]
        if declared != list(record.input_shape):
            raise BundleError(
                f"manifest extractor.input_shape: expected {declared} (the ONNX graph's input), got {list(record.input_shape)}"
            )

    @property
    def embedding_dim(self) -> int:
        """Size of one embedding."""
        return self.record.embedding_dim

    def __call__(self, rows: np.ndarray, image_shape: tuple[int, ...]) -> np.ndarray:
        """Embeddings (n, D) float32 of prepared rows (n, prod(image_shape)) of pixel values."""
        parts = []
        session = self._small if rows.shape[0] <= self._small_rows else self._session
        for start in range(0, rows.shape[0], EXTRACT_CHUNK_ROWS):
            batch = network_input(rows[start : start + EXTRACT_CHUNK_ROWS], image_shape, self.record)
            out = session.run([self.record.output_name], {self.record.input_name: batch})[0]
            parts.append(out.reshape(out.shape[0], -1))
        features = parts[0] if len(parts) == 1 else np.concatenate(parts)
        features = np.ascontiguousarray(features, dtype=np.float32)
        if features.shape[1] != self.record.embedding_dim:
            raise BundleError(
                f"extractor: gave {features.shape[1]} features a row, the manifest says embedding_dim {self.record.embedding_dim}"
            )
        return features


__all__ = [
    "EXTRACTOR_FILE",
    "Extractor",
    "ExtractorRecord",
    "ParityRecord",
    "expected_network_shapes",
    "inspect_onnx",
    "match_images",
    "network_input",
]
