"""k-NN preprocessing specs: ``raw``, ``cosine``, ``pca:D`` or ``pca:D+cosine`` -> PreprocessConfig."""

from __future__ import annotations

import re

from knnserve.errors import InvalidInputError
from knnserve.features.preprocess import PreprocessConfig

# Candidates --preprocess auto compares by cross-validation: raw pixels, and PCA-128 + cosine. On
# Fashion-MNIST raw L2 at k=5 scores 85.54% on the test split (benchmarks/results/knn-2026-11-26.md)
# and `make demo`'s cross-validation chose pca:128+cosine, k=5, distance, which scored 87.05%.
AUTO_CANDIDATES: tuple[str, ...] = ("raw", "pca:128+cosine")
# Learned embeddings are already small: auto chooses between L2 on them and cosine (L2 after
# normalising), which is the choice of metric.
EMBEDDING_AUTO_CANDIDATES: tuple[str, ...] = ("raw", "cosine")
_SPEC = re.compile(r"(?:pca:(?P<dim>\d+))?(?P<plus>\+)?(?P<cosine>cosine)?")
EXPECTED = "raw, cosine, pca:D or pca:D+cosine (D an integer >= 1)"


def parse_knn_preprocess(spec: str) -> PreprocessConfig | None:
    """The preprocessing a spec names; None for ``raw`` (vectors indexed as they come).

    ``cosine`` L2-normalises each row, so L2 search ranks by cosine similarity. ``pca:D`` centres
    and projects onto the top D principal components of the training set (faiss.PCAMatrix).
    """
    text = spec.strip().lower()
    if text == "raw":
        return None
    match = _SPEC.fullmatch(text)
    if not text or match is None or (match["plus"] and not (match["dim"] and match["cosine"])):
        raise InvalidInputError("preprocess", EXPECTED, repr(spec))
    dim = int(match["dim"]) if match["dim"] else None
    if dim is not None and dim < 1:
        raise InvalidInputError("preprocess", EXPECTED, repr(spec))
    if dim is None:
        return PreprocessConfig(scale="none", center=False, l2_normalize=True)
    return PreprocessConfig(center=True, pca_dim=dim, l2_normalize=bool(match["cosine"]))


def knn_preprocess_name(config: PreprocessConfig | None) -> str:
    """The spec string of a k-NN preprocessing config (inverse of :func:`parse_knn_preprocess`)."""
    if config is None:
        return "raw"
    if config.pca_dim is None:
        return "cosine"
    return f"pca:{config.pca_dim}" + ("+cosine" if config.l2_normalize else "")
