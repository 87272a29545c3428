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
    x = rng.standard_normal((1, 2, 64, 64)).astype(np.float32)
    w = rng.standard_normal((2, 1, 31, 31)).astype(np.float32)
    used, _ = _check_like_direct(x, w, groups=2, padding=((0, 0), (0, 0)))
    assert used == ["fft"]  # chosen by the selector for a 31x31 depthwise kernel
