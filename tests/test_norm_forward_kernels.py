"""Compiled normalisation-forward kernels (row moments, row affine) against the NumPy path.

``moments`` and ``affine`` run as numba kernels when numba works and the arrays are
C-contiguous; the NumPy block-wise code stays the reference.  The moments agree to float32
accuracy (the kernel sums in float64, the NumPy path pairwise around the row's mean, both
exact for large means); the affine step rounds after every operation in both and agrees bit
for bit.  LayerNorm/GroupNorm/BatchNorm through them still match torch.
"""

from __future__ import annotations

import numpy as np
import pytest

import convscope as cs
from convscope.ops import jit
from convscope.ops import normalization as norm

needs_numba = pytest.mark.skipif(jit.kernels() is None, reason="numba is not installed")


def _numpy_path(monkeypatch, function, *args, **kwargs):
    with monkeypatch.context() as patch:
        patch.setattr(jit, "BACKEND", "numpy")
        return function(*args, **kwargs)


SHAPES = [(2, 3, 1), (3, 5, 96), (2, 4, 257), (1, 1, 70000), (300, 1, 768), (2, 70, 3136)]


@needs_numba
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("threads", [1, 2])
def test_moments_match_numpy(shape, dtype, threads, monkeypatch):
    rng = np.random.default_rng(sum(shape))
    x = (rng.standard_normal(shape) * 3 + 100).astype(dtype)  # a large mean
    with cs.num_threads(threads):
        mean, m2 = norm.moments(x)
    want_mean, want_m2 = _numpy_path(monkeypatch, norm.moments, x)
    exact = x.astype(np.float64)
    true_mean = exact.mean(axis=2)
    true_m2 = ((exact - true_mean[..., None]) ** 2).sum(axis=2)
    tol = 1e-6 if dtype == np.float32 else 1e-13
    # both paths: the mean to the input's precision, the squared deviations to a relative
    # tolerance (no digits lost to the large mean)
    for got in (mean, want_mean):
        assert np.all(np.abs(got - true_mean) <= tol * np.abs(true_mean))
    for got in (m2, want_m2):
        assert np.all(np.abs(got - true_m2) <= 10 * tol * true_m2 + 1e-30)
    assert mean.dtype == m2.dtype == np.float64 and mean.shape == shape[:2]


@needs_numba
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("per_row", [False, True])
@pytest.mark.parametrize("columns", ["none", "scale", "shift", "both"])
def test_affine_matches_numpy_bit_for_bit(shape, dtype, per_row, columns, monkeypatch):
    rng = np.random.default_rng(7 + sum(shape))
    x = (rng.standard_normal(shape) * 3 + 100).astype(dtype)
    constants = shape[:2] if per_row else shape[1:2]
    scale, shift, centre = (rng.standard_normal(constants) for _ in range(3))
    col_scale = (
        rng.standard_normal(shape[2]).astype(dtype) if columns in ("scale", "both") else None
    )
    col_shift = (
        rng.standard_normal(shape[2]).astype(dtype) if columns in ("shift", "both") else None
    )
    for c in (None, centre):
        kwargs = {"centre": c, "col_scale": col_scale, "col_shift": col_shift}
        got = norm.affine(x, scale, shift, **kwargs)
        want = _numpy_path(monkeypatch, norm.affine, x, scale, shift, **kwargs)
        np.testing.assert_array_equal(got, want)
        assert got.dtype == dtype


def test_non_finite_values_spread_as_in_torch(monkeypatch):
    """A NaN makes its row's mean NaN, an infinity makes it infinite (PyTorch's running mean
    after such a batch), and the squared deviations NaN; other rows are untouched."""
    x = np.zeros((1, 3, 300), np.float32)
    x[0, 0, 5], x[0, 1, 299] = np.nan, np.inf
    for mean, m2 in (norm.moments(x), _numpy_path(monkeypatch, norm.moments, x)):
        assert np.isnan(mean[0, 0]) and mean[0, 1] == np.inf and mean[0, 2] == 0
        assert np.isnan(m2[0, 0]) and np.isnan(m2[0, 1]) and m2[0, 2] == 0


@pytest.mark.parametrize(
    ("make", "shape"),
    [
        (lambda nn: nn.LayerNorm(96), (2, 7, 5, 96)),
        (lambda nn: nn.GroupNorm(4, 8), (3, 8, 50)),
        (lambda nn: nn.BatchNorm2d(6), (4, 6, 9, 7)),
    ],
)
def test_layers_through_the_kernels_match_torch(reference, make, shape):
    torch = reference
    x = np.random.default_rng(3).standard_normal(shape).astype(np.float32) * 2 + 5
    ours, theirs = make(cs.nn), make(torch.nn)
    with cs.no_grad():
        y = ours(cs.tensor(x)).numpy()
    with torch.no_grad():
        want = theirs(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-5)
