"""Preprocessing: fitted on training data only, identical at inference, PCA vs numpy, array round trip."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from knnserve.errors import BundleError, InvalidInputError
from knnserve.features.preprocess import PreprocessConfig, Preprocessor, fit_preprocessor


def _images(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 6, 5), dtype=np.uint8)
    images[:, 0, 0] = 7  # a constant pixel, like Fashion-MNIST's black border
    return images


def test_default_scales_uint8_and_centres_on_training_mean_only() -> None:
    train, test = _images(50, 0), _images(20, 1)
    pre = fit_preprocessor(train)
    assert pre.divisor == 255.0 and pre.output_dim == 30 and pre.input_shape == (6, 5)
    expected_mean = train.reshape(50, -1).astype(np.float64).mean(axis=0) / 255
    np.testing.assert_allclose(pre.mean, expected_mean, rtol=1e-6)
    out = pre.transform(test)
    assert out.dtype == np.float32 and out.shape == (20, 30) and out.flags.c_contiguous
    np.testing.assert_allclose(out, test.reshape(20, -1) / 255 - expected_mean, atol=1e-6)
    # Training data comes out centred; test data, transformed with the training mean, does not.
    assert np.abs(pre.transform(train).mean(axis=0)).max() < 1e-6
    assert np.abs(out.mean(axis=0)).max() > 1e-3
    # Flat input of the same size is accepted and gives the same rows; the input is not modified.
    before = test.copy()
    np.testing.assert_array_equal(pre.transform(test.reshape(20, -1)), out)
    np.testing.assert_array_equal(test, before)


def test_auto_scale_leaves_floats_and_explicit_scale_divides() -> None:
    floats = _images(10, 2).astype(np.float64) / 255
    assert fit_preprocessor(floats).divisor == 1.0
    pre = fit_preprocessor(_images(10, 2), PreprocessConfig(scale=2.0, center=False))
    np.testing.assert_allclose(pre.transform(_images(3, 3)), _images(3, 3).reshape(3, -1) / 2.0)
    raw = fit_preprocessor(_images(10, 2), PreprocessConfig(scale="none", center=False))
    np.testing.assert_array_equal(raw.transform(_images(3, 3)), _images(3, 3).reshape(3, -1).astype(np.float32))


def test_standardize_gives_unit_variance_and_skips_constant_features() -> None:
    train = _images(80, 4)
    pre = fit_preprocessor(train, PreprocessConfig(standardize=True))
    out = pre.transform(train).astype(np.float64)
    std = out.std(axis=0)
    assert std[0] == 0.0 and pre.std[0] == 1.0  # the constant pixel is centred, not blown up
    np.testing.assert_allclose(std[1:], 1.0, rtol=1e-4)
    np.testing.assert_allclose(out.mean(axis=0), 0.0, atol=1e-5)


def test_pca_matches_numpy_pca_up_to_sign() -> None:
    train, test = _images(200, 5), _images(30, 6)
    dim = 4
    pre = fit_preprocessor(train, PreprocessConfig(pca_dim=dim))
    got = pre.transform(test).astype(np.float64)
    # Reference: eigenvectors of the covariance of the scaled, centred training data.
    x = train.reshape(200, -1).astype(np.float64) / 255
    mean = x.mean(axis=0)
    _, singular, vt = np.linalg.svd(x - mean, full_matrices=False)
    ref = (test.reshape(30, -1) / 255 - mean) @ vt[:dim].T
    signs = np.sign((got * ref).sum(axis=0))
    np.testing.assert_allclose(got, ref * signs, atol=1e-4)
    np.testing.assert_allclose(pre.pca_variance, (singular[:dim] ** 2) / 200, rtol=1e-3)
    assert pre.output_dim == dim


def test_pca_without_centering_still_centres() -> None:
    train = _images(120, 7)
    pre = fit_preprocessor(train, PreprocessConfig(center=False, pca_dim=3))
    np.testing.assert_allclose(pre.transform(train).mean(axis=0), 0.0, atol=1e-4)


def test_l2_normalize_unit_rows_and_zero_rows_stay_zero() -> None:
    train = _images(40, 8)
    pre = fit_preprocessor(train, PreprocessConfig(center=False, l2_normalize=True))
    test = _images(5, 9)
    test[2] = 0
    out = pre.transform(test)
    norms = np.linalg.norm(out, axis=1)
    np.testing.assert_allclose(np.delete(norms, 2), 1.0, rtol=1e-6)
    assert not out[2].any()


@pytest.mark.parametrize(
    "config",
    [
        PreprocessConfig(),
        PreprocessConfig(standardize=True, pca_dim=5, l2_normalize=True),
        PreprocessConfig(scale=3.0, center=False, pca_dim=2),
        PreprocessConfig(scale="none", center=False),
    ],
)
def test_arrays_round_trip(tmp_path: Path, config: PreprocessConfig) -> None:
    train, test = _images(60, 10), _images(8, 11)
    pre = fit_preprocessor(train, config)
    np.savez(tmp_path / "pre.npz", **pre.to_arrays())
    (tmp_path / "pre.json").write_text(json.dumps(pre.metadata()))
    with np.load(tmp_path / "pre.npz", allow_pickle=False) as arrays:
        loaded = Preprocessor.from_arrays(arrays, json.loads((tmp_path / "pre.json").read_text()))
    assert loaded.config == config
    np.testing.assert_array_equal(loaded.transform(test), pre.transform(test))


def test_affine_form_equals_transform() -> None:
    train, test = _images(90, 12), _images(7, 13)
    for config in (PreprocessConfig(standardize=True), PreprocessConfig(pca_dim=6, standardize=True)):
        pre = fit_preprocessor(train, config)
        matrix, shift = pre.affine()
        np.testing.assert_allclose(test.reshape(7, -1) @ matrix.T + shift, pre.transform(test), atol=1e-4)
    with pytest.raises(InvalidInputError, match="l2_normalize"):
        fit_preprocessor(train, PreprocessConfig(l2_normalize=True)).affine()


def test_errors() -> None:
    train = _images(20, 14)
    pre = fit_preprocessor(train)
    with pytest.raises(InvalidInputError, match="shape"):
        pre.transform(np.zeros((3, 5, 6), dtype=np.uint8))
    bad = train.astype(np.float32)
    bad[0, 1, 1] = np.nan
    with pytest.raises(InvalidInputError, match="finite"):
        fit_preprocessor(bad)  # training data is checked when it enters; served rows by KNNModel.prepare
    with pytest.raises(InvalidInputError, match="dtype"):
        fit_preprocessor(np.array([["a", "b"]]))
    with pytest.raises(InvalidInputError, match="pca_dim"):
        fit_preprocessor(train, PreprocessConfig(pca_dim=31))
    with pytest.raises(InvalidInputError, match="scale"):
        PreprocessConfig(scale="max")
    with pytest.raises(InvalidInputError, match="x_train"):
        fit_preprocessor(np.zeros(5))
    with pytest.raises(BundleError, match="missing"):
        Preprocessor.from_arrays({}, pre.metadata())
    with pytest.raises(BundleError, match="schema"):
        Preprocessor.from_arrays(pre.to_arrays(), {**pre.metadata(), "schema": 2})
