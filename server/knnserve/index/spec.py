"""Index specs: friendly aliases and FAISS factory strings resolved to what is actually built."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from knnserve.errors import InvalidInputError

Metric = Literal["l2", "l1"]
METRICS: tuple[str, ...] = ("l2", "l1")
ALIASES: tuple[str, ...] = ("flat", "ivf", "ivfpq", "hnsw")
# auto: raw bytes where exact and no slower (IVF lists, HNSW); Flat stays float32, because its batch
#   search is a BLAS matrix multiply, which SQ8_direct codes cannot use (measured 12x slower in batch).
# uint8: raw bytes for Flat too: 4x less memory and faster one query at a time, much slower in batch.
# float32: the spec exactly as written.
STORAGES: tuple[str, ...] = ("auto", "uint8", "float32")

# FAISS k-means warns below 39 training points per centroid; we never ask for fewer.
MIN_POINTS_PER_CENTROID = 39
# FAISS's default efConstruction (40) loses recall on image data; 200 is the usual quality setting.
HNSW_EF_CONSTRUCTION = 200
HNSW_M = 32
DEFAULT_EF_SEARCH = 64
DEFAULT_NPROBE = 16

_IVF_FLAT = re.compile(r"(IVF[^,]+),Flat")
_HNSW_FLAT = re.compile(r"HNSW(\d+)(,Flat)?")
_L1_OK = (re.compile(r"Flat"), _IVF_FLAT, _HNSW_FLAT)


@dataclass(frozen=True)
class ResolvedSpec:
    """What a requested spec becomes for given data: the factory string, metric and storage.

    Attributes
    ----------
    requested : the spec as the user wrote it (alias or factory string).
    factory : the FAISS factory string that is built.
    metric : ``"l2"`` or ``"l1"``.
    storage : how vectors are stored, e.g. ``"uint8 (SQ8_direct, exact)"``, ``"float32"``, ``"PQ56x8"``.
    kind : ``"flat"``, ``"ivf"``, ``"hnsw"`` or ``"other"``; tells which search parameters apply.
    build_params : parameters set on the index before adding vectors (e.g. ``efConstruction``).
    default_nprobe, default_ef_search : search effort used when a call does not name one.
    """

    requested: str
    factory: str
    metric: str
    storage: str
    kind: str
    build_params: dict[str, Any] = field(default_factory=dict)
    default_nprobe: int | None = None
    default_ef_search: int | None = None


def ivf_nlist(n: int) -> int:
    """Number of inverted lists for ``n`` vectors: about 4·√n, capped at n/39 points per centroid."""
    return max(1, min(round(4 * math.sqrt(n)), n // MIN_POINTS_PER_CENTROID))


def pq_shape(d: int, n: int) -> tuple[int, int]:
    """PQ sub-quantizer count ``m`` (a divisor of d, sub-vectors of about 14 dims) and bits per code.

    Bits drop below 8 when there are too few vectors to train 2^bits centroids per sub-quantizer.
    """
    target = max(1.0, d / 14)
    m = min((m for m in range(1, d + 1) if d % m == 0), key=lambda m: (abs(m - target), m))
    nbits = max(1, min(8, int(math.log2(max(2, n // MIN_POINTS_PER_CENTROID)))))
    return m, nbits


def _kind(factory: str) -> str:
    if re.search(r"(^|,)IVF", factory):
        return "ivf"
    if re.search(r"(^|,)HNSW", factory):
        return "hnsw"
    if factory in ("Flat", "SQ8_direct"):
        return "flat"
    return "other"


def _default_nprobe(factory: str) -> int:
    match = re.search(r"IVF(\d+)", factory)
    return min(DEFAULT_NPROBE, int(match.group(1))) if match else DEFAULT_NPROBE


def _expand_alias(alias: str, n: int, d: int) -> tuple[str, dict[str, Any]]:
    if alias == "flat":
        return "Flat", {}
    if alias == "ivf":
        return f"IVF{ivf_nlist(n)},Flat", {}
    if alias == "ivfpq":
        m, nbits = pq_shape(d, n)
        # "np": no polysemous training; knnserve never uses polysemous search. IVF1024,PQ56 trained
        # in 76-175 s with it and 16 s as PQ56np on Fashion-MNIST (evaluation harness runs here).
        return f"IVF{ivf_nlist(n)},PQ{m}x{nbits}np", {}
    if alias == "hnsw":
        return f"HNSW{HNSW_M}", {"efConstruction": HNSW_EF_CONSTRUCTION}
    raise AssertionError(alias)


def _uint8_storage(factory: str, *, flat: bool) -> str | None:
    """The same index with vectors kept as raw bytes, when that is exact for uint8 data under L2."""
    if factory == "Flat" and flat:
        return "SQ8_direct"
    if match := _IVF_FLAT.fullmatch(factory):
        return f"{match.group(1)},SQ8_direct"
    if match := _HNSW_FLAT.fullmatch(factory):
        return f"HNSW{match.group(1)},SQ8_direct"
    return None


def _storage_label(factory: str) -> str:
    if factory.endswith("SQ8_direct"):
        return "uint8 (SQ8_direct, exact for uint8 inputs)"
    if match := re.search(r"PQ(\d+)(?:x(\d+))?", factory):
        return f"PQ{match.group(1)}x{match.group(2) or 8} (lossy)"
    if re.search(r"SQ|PQ|LSH|RaBitQ", factory):
        return "compressed (lossy)"
    return "float32"


def _is_uint8(dtype: Any) -> bool:
    import numpy as np  # here: the CLI imports this module for its choices, without numpy

    return bool(np.dtype(dtype) == np.uint8)


def resolve_spec(
    spec: str,
    *,
    n: int,
    d: int,
    metric: str = "l2",
    dtype: Any = "float32",
    storage: str = "auto",
) -> ResolvedSpec:
    """Resolve an alias or FAISS factory string for ``n`` vectors of dimension ``d``.

    Parameters
    ----------
    spec : ``flat``, ``ivf``, ``ivfpq``, ``hnsw`` or a FAISS factory string (``IVF1024,PQ56``, ``HNSW32``...).
    n, d : number and dimension of the training vectors (aliases size themselves from these).
    metric : ``l2`` (FAISS returns squared distances) or ``l1``.
    dtype : dtype of the training vectors; uint8 with ``storage="auto"`` and L2 stores raw bytes.
    storage : ``auto`` (raw bytes where exact, except Flat), ``uint8`` (raw bytes for Flat too) or
        ``float32`` (build the factory string as written). See docs/indexes.md for the trade-off.
    """
    if metric not in METRICS:
        raise InvalidInputError("metric", f"one of {', '.join(METRICS)}", repr(metric))
    if storage not in STORAGES:
        raise InvalidInputError("storage", f"one of {', '.join(STORAGES)}", repr(storage))
    if n < 1 or d < 1:
        raise InvalidInputError("training data", "at least one vector of at least one dimension", f"{n}x{d}")
    spec = spec.strip()
    if not spec:
        raise InvalidInputError("index", "an alias (flat, ivf, ivfpq, hnsw) or a FAISS factory string", "''")
    if spec.lower() in ALIASES:
        factory, build_params = _expand_alias(spec.lower(), n, d)
    else:
        factory, build_params = spec, {}
        if _kind(factory) == "hnsw":
            build_params = {"efConstruction": HNSW_EF_CONSTRUCTION}
    if metric == "l1" and not any(pattern.fullmatch(factory) for pattern in _L1_OK):
        raise InvalidInputError(
            "metric",
            "l2 for this index: FAISS supports L1 only with Flat, IVF<n>,Flat and HNSW<M>",
            f"l1 with {factory!r}",
        )
    if storage != "float32" and metric == "l2" and _is_uint8(dtype):
        factory = _uint8_storage(factory, flat=storage == "uint8") or factory
    kind = _kind(factory)
    return ResolvedSpec(
        requested=spec,
        factory=factory,
        metric=metric,
        storage=_storage_label(factory),
        kind=kind,
        build_params=build_params,
        default_nprobe=_default_nprobe(factory) if kind == "ivf" else None,
        default_ef_search=DEFAULT_EF_SEARCH if kind == "hnsw" else None,
    )
