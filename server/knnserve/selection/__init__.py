"""Model selection on the training set only: cross-validated k-NN settings and their plots."""

from knnserve.selection.knn_cv import DEFAULT_KS, Candidate, CVResult, cross_validate_k

__all__ = ["DEFAULT_KS", "CVResult", "Candidate", "cross_validate_k"]
