"""Inf and NaN inputs: every algorithm gives the direct definition's non-finite pattern
(transforming algorithms would smear one bad value over a whole tile or channel)."""

from __future__ import annotations

import numpy as np
import pytest

import convscope as cs
from convscope.ops.conv import conv_general


def _pattern(a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return np.isnan(a), np.isposinf(a), np.isneginf(a)


def _check_like_direct(x, w, groups, padding, algorithm=None):
    n = x.ndim - 2
    kwargs = dict(stride=(1,) * n, padding=padding, dilation=(1,) * n, groups=groups)
    with cs.record_conv_algorithms() as used:
        got = conv_general(x, w, algorithm=algorithm, **kwargs)
    want = conv_general(x, w, algorithm="direct", **kwargs)
    for mine, reference in zip(_pattern(got), _pattern(want), strict=True):
        np.testing.assert_array_equal(mine, reference)
    finite = np.isfinite(want)
    np.testing.assert_allclose(got[finite], want[finite], rtol=1e-4, atol=1e-3)
    return [name for name, _ in used], got


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_large_kernel_depthwise_keeps_a_bad_pixel_local(bad):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 2, 64, 64)).astype(np.float32)
    x[0, 0, 30, 30] = bad
    w = rng.standard_normal((2, 1, 31, 31)).astype(np.float32)
    used, got = _check_like_direct(x, w, groups=2, padding=((0, 0), (0, 0)))
    assert "fft" not in used
    assert np.isfinite(got[0, 1]).all()  # the other channel is untouched
    assert (~np.isfinite(got[0, 0])).sum() <= 31 * 31  # only windows that read the pixel


@pytest.mark.parametrize("algorithm", [None, "winograd", "fft"])
@pytest.mark.parametrize("where", ["input", "weight"])
def test_dense_3x3_non_finite_matches_direct(algorithm, where):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 64, 10, 10)).astype(np.float32)
    w = rng.standard_normal((8, 64, 3, 3)).astype(np.float32)
    if where == "input":
        x[1, 3, 4, 5] = np.inf
        x[0, 7, 0, 0] = np.nan
    else:
        w[2, 5, 1, 1] = -np.inf
    used, got = _check_like_direct(x, w, groups=1, padding=((1, 1), (1, 1)), algorithm=algorithm)
    assert not set(used) & {"winograd", "fft"}
    assert np.isfinite(got).any()


def test_finite_inputs_still_use_the_transforms():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 64, 20, 20)).astype(np.float32)
    w = rng.standard_normal((4, 64, 3, 3)).astype(np.float32)
    used, _ = _check_like_direct(x, w, groups=1, padding=((1, 1), (1, 1)), algorithm="winograd")
    assert used == ["winograd"]
    x = rng.standard_normal((1, 2, 128, 128)).astype(np.float32)
    w = rng.standard_normal((2, 1, 51, 51)).astype(np.float32)
    used, _ = _check_like_direct(x, w, groups=2, padding=((0, 0), (0, 0)))
    assert used == ["fft"]  # chosen by the selector for a 51x51 depthwise kernel


@pytest.mark.parametrize("variant", [2, 4, "numpy"])
@pytest.mark.parametrize("where", [(0, 0, 0), (0, 12, 12), (0, 12, 0), (1, 0, 12), (1, 7, 5)])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_winograd_notices_one_bad_value_anywhere(monkeypatch, variant, where, bad):
    """Winograd checks its input inside the compiled input transform (no pass of its own):
    a single Inf or NaN in any cell (corners, last row and column, a later frame of a 3-D
    input, a later tile of a small budget) sends the call to a tap-by-tap algorithm, with
    the definition's non-finite pattern."""
    from convscope.ops import jit, winograd

    if variant == "numpy":
        monkeypatch.setattr(jit, "BACKEND", "numpy")
    elif jit.kernels() is None:
        pytest.skip("numba is not installed")
    else:
        monkeypatch.setattr(winograd, "F4_FROM_TILES", 1 if variant == 4 else 1 << 62)
    monkeypatch.setattr(winograd, "COMPILED_TILE_BYTES", 1 << 12)  # several tiles
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 2, 13, 13)).astype(np.float32)
    frame, row, column = where
    x[1, 2, frame, row, column] = bad
    w = rng.standard_normal((4, 3, 2, 3, 3)).astype(np.float32)
    padding = ((0, 0), (1, 1), (1, 1))
    used, _ = _check_like_direct(x, w, groups=1, padding=padding, algorithm="winograd")
    assert used == ["unfold"]
    x[1, 2, frame, row, column] = 0.5
    used, _ = _check_like_direct(x, w, groups=1, padding=padding, algorithm="winograd")
    assert used == ["winograd"]
