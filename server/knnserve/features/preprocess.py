"""Input preprocessing fitted on training data only: scale, mean-centre, standardise, PCA (faiss), L2-normalise.

The fitted :class:`Preprocessor` applies the very same transform at inference and stores itself as
arrays (``to_arrays``) plus a JSON-able dict (``metadata``), so a bundle needs no pickle.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from knnserve.errors import BundleError, InvalidInputError

PREPROCESS_SCHEMA = 1
_ARRAY_NAMES = ("mean", "std", "pca_matrix", "pca_bias", "pca_variance")


@dataclass(frozen=True)
class PreprocessConfig:
    """Which steps to apply, in this order: flatten, scale, centre, standardise, PCA, L2-normalise.

    Parameters
    ----------
    scale : ``"auto"`` divides uint8 input by 255 and leaves other dtypes alone; ``"none"`` never
        scales; a number divides by that number. The divisor is fixed at fit time.
    center : subtract the per-feature training mean.
    standardize : divide by the per-feature training standard deviation (features whose standard
        deviation is below ``std_floor``, e.g. always-black border pixels, are left unscaled).
    pca_dim : project onto the top ``pca_dim`` principal components of the training set
        (``faiss.PCAMatrix``, which centres by itself); None keeps all features.
    l2_normalize : scale each output row to unit L2 norm (cosine similarity as inner product);
        all-zero rows stay zero.
    """

    scale: str | float = "auto"
    center: bool = True
    standardize: bool = False
    pca_dim: int | None = None
    l2_normalize: bool = False
    std_floor: float = 1e-6

    def __post_init__(self) -> None:
        if isinstance(self.scale, str):
            if self.scale not in ("auto", "none"):
                raise InvalidInputError("scale", '"auto", "none" or a number > 0', repr(self.scale))
        elif isinstance(self.scale, bool) or not float(self.scale) > 0:
            raise InvalidInputError("scale", '"auto", "none" or a number > 0', repr(self.scale))
        if self.pca_dim is not None and (isinstance(self.pca_dim, bool) or int(self.pca_dim) < 1):
            raise InvalidInputError("pca_dim", "None or an integer >= 1", self.pca_dim)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict of the fields."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "PreprocessConfig":
        """Inverse of :meth:`to_dict`."""
        return cls(**data)


def _as_rows(x: np.ndarray, field: str) -> np.ndarray:
    """Return (N, ...) numeric input as (N, D) without copying when possible."""
    x = np.asarray(x)
    if x.ndim < 2:
        raise InvalidInputError(field, "an array of shape (N, ...) with at least 2 dimensions", f"shape {x.shape}")
    if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating) or x.dtype == np.bool_):
        raise InvalidInputError(field, "an integer, float or bool array", f"dtype {x.dtype}")
    return x.reshape(x.shape[0], -1)


def _scaled(rows: np.ndarray, divisor: float) -> np.ndarray:
    """A fresh float32 copy of rows divided by ``divisor`` (later steps work in place)."""
    # One fused pass: multiplying straight into float32 was ~4x faster than astype() then *= here.
    return np.multiply(rows, np.float32(1.0 / divisor), dtype=np.float32, casting="unsafe")


@dataclass(frozen=True, eq=False)
class Preprocessor:
    """A fitted preprocessing transform; build it with :func:`fit_preprocessor` or :meth:`from_arrays`."""

    config: PreprocessConfig
    input_shape: tuple[int, ...]
    divisor: float
    mean: np.ndarray | None = None
    std: np.ndarray | None = None
    pca_matrix: np.ndarray | None = None
    pca_bias: np.ndarray | None = None
    pca_variance: np.ndarray | None = None

    @property
    def input_dim(self) -> int:
        """Number of input features per sample (product of ``input_shape``)."""
        return int(np.prod(self.input_shape))

    @property
    def output_dim(self) -> int:
        """Number of output features D."""
        return self.input_dim if self.pca_matrix is None else int(self.pca_matrix.shape[0])

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Apply the fitted transform to (N, *input_shape) or (N, input_dim) input; returns float32 (N, D).

        The input must be finite: it is validated where it enters (``KNNModel.prepare`` for served
        rows, the linear head's ``check_features``), not again here.
        """
        x = np.asarray(x)
        if x.shape[1:] != self.input_shape and x.shape[1:] != (self.input_dim,):
            raise InvalidInputError(
                "x", f"shape (N, {', '.join(map(str, self.input_shape))}) or (N, {self.input_dim})", f"shape {x.shape}"
            )
        out = _scaled(_as_rows(x, "x"), self.divisor)
        if self.mean is not None:
            out -= self.mean
        if self.std is not None:
            out /= self.std
        if self.pca_matrix is not None and self.pca_bias is not None:
            out = out @ self.pca_matrix.T
            out += self.pca_bias
        if self.config.l2_normalize:
            norms = np.linalg.norm(out, axis=1, keepdims=True)
            np.divide(out, norms, out=out, where=norms > 0)
        return out

    def affine(self) -> tuple[np.ndarray, np.ndarray]:
        """Return (M, c) with ``transform(x) == x_flat @ M.T + c`` (M: (D, input_dim)).

        Raises InvalidInputError when ``l2_normalize`` is on, since that step is not affine. Used to
        map a linear head's weights back to pixel space (the "templates" view).
        """
        if self.config.l2_normalize:
            raise InvalidInputError("preprocessing", "an affine transform (l2_normalize=False)", "l2_normalize=True")
        scale = np.full(self.input_dim, 1.0 / self.divisor, dtype=np.float64)
        shift = np.zeros(self.input_dim, dtype=np.float64)
        if self.mean is not None:
            shift -= self.mean
        if self.std is not None:
            scale /= self.std
            shift /= self.std
        matrix = np.diag(scale)
        if self.pca_matrix is not None and self.pca_bias is not None:
            pca = self.pca_matrix.astype(np.float64)
            matrix = pca * scale  # == pca @ diag(scale)
            shift = pca @ shift + self.pca_bias
        return matrix, shift

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The fitted arrays by name (only those present), for ``np.savez``."""
        return {name: getattr(self, name) for name in _ARRAY_NAMES if getattr(self, name) is not None}

    def metadata(self) -> dict[str, Any]:
        """JSON-able dict that, with :meth:`to_arrays`, rebuilds this preprocessor."""
        return {
            "schema": PREPROCESS_SCHEMA,
            "config": self.config.to_dict(),
            "input_shape": list(self.input_shape),
            "divisor": float(self.divisor),
            "output_dim": self.output_dim,
        }

    @classmethod
    def from_arrays(cls, arrays: Any, metadata: dict[str, Any]) -> "Preprocessor":
        """Rebuild from :meth:`to_arrays` output (dict or ``np.load`` result) and :meth:`metadata`."""
        if metadata.get("schema") != PREPROCESS_SCHEMA:
            raise BundleError(
                f"preprocessing schema: expected {PREPROCESS_SCHEMA}, got {metadata.get('schema')!r}"
            )
        config = PreprocessConfig.from_dict(dict(metadata["config"]))
        input_shape = tuple(int(v) for v in metadata["input_shape"])
        input_dim = int(np.prod(input_shape))
        present = set(arrays.keys()) if hasattr(arrays, "keys") else set(arrays)
        wanted = {
            "mean": config.center,
            "std": config.standardize,
            "pca_matrix": config.pca_dim is not None,
            "pca_bias": config.pca_dim is not None,
            "pca_variance": config.pca_dim is not None,
        }
        loaded: dict[str, np.ndarray | None] = {}
        for name, needed in wanted.items():
            if needed and name not in present:
                raise BundleError(f"preprocessing array {name!r} is missing")
            loaded[name] = np.ascontiguousarray(arrays[name], dtype=np.float32) if needed else None
        for name in ("mean", "std"):
            array = loaded[name]
            if array is not None and array.shape != (input_dim,):
                raise BundleError(f"preprocessing {name}: expected shape ({input_dim},), got {array.shape}")
        if config.pca_dim is not None:
            expected = (int(config.pca_dim), input_dim)
            matrix = loaded["pca_matrix"]
            if matrix is None or matrix.shape != expected:
                raise BundleError(f"preprocessing pca_matrix: expected shape {expected}, got {getattr(matrix, 'shape', None)}")
        return cls(config=config, input_shape=input_shape, divisor=float(metadata["divisor"]), **loaded)


def fit_preprocessor(x: np.ndarray, config: PreprocessConfig = PreprocessConfig()) -> Preprocessor:
    """Fit the configured steps on training images x (N, ...) of any numeric dtype and return them.

    Fit on the training split only; apply :meth:`Preprocessor.transform` to validation, test and
    serving inputs.
    """
    rows = _as_rows(x, "x_train")
    if rows.shape[0] < 1 or rows.shape[1] < 1:
        raise InvalidInputError("x_train", "at least one sample and one feature", f"shape {np.shape(x)}")
    if config.pca_dim is not None and config.pca_dim > rows.shape[1]:
        raise InvalidInputError("pca_dim", f"at most the input dimension {rows.shape[1]}", config.pca_dim)
    if config.scale == "auto":
        divisor = 255.0 if rows.dtype == np.uint8 else 1.0
    elif config.scale == "none":
        divisor = 1.0
    else:
        divisor = float(config.scale)
    # A scaled float32 copy is needed for the std and the PCA, and to reject non-finite floats; the
    # common uint8 + centring case takes its mean straight from the integers and skips the copy.
    needs_copy = config.standardize or config.pca_dim is not None or rows.dtype.kind == "f"
    data = _scaled(rows, divisor) if needs_copy else None
    if rows.dtype.kind == "f" and data is not None and not np.isfinite(data).all():
        raise InvalidInputError("x_train", "finite values (within float32 range)", "NaN or infinity")
    mean = std = None
    if config.center:
        if data is not None:
            mean = data.mean(axis=0, dtype=np.float64).astype(np.float32)
        else:
            mean = (rows.mean(axis=0, dtype=np.float64) / divisor).astype(np.float32)
    if config.standardize and data is not None:
        std64 = data.std(axis=0, dtype=np.float64)
        std = np.where(std64 < config.std_floor, 1.0, std64).astype(np.float32)
    matrix = bias = variance = None
    if config.pca_dim is not None and data is not None:
        # PCA is fitted on what the earlier steps make of the training data.
        if mean is not None:
            data -= mean
        if std is not None:
            data /= std
        # Imported here so that linear-only users never load faiss's OpenMP runtime.
        from knnserve.index.backend import fit_pca

        matrix, bias, variance = fit_pca(data, int(config.pca_dim))
    return Preprocessor(
        config=config,
        input_shape=tuple(np.shape(x)[1:]),
        divisor=divisor,
        mean=mean,
        std=std,
        pca_matrix=matrix,
        pca_bias=bias,
        pca_variance=variance,
    )
