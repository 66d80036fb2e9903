"""Feature preparation: preprocessing fitted on training data (scale, centre, standardise, PCA, L2)."""

from knnserve.features.preprocess import PreprocessConfig, Preprocessor, fit_preprocessor

__all__ = ["PreprocessConfig", "Preprocessor", "fit_preprocessor"]
