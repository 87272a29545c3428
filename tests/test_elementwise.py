"""The compiled exact GELU against the error function in double precision, and its fallback."""

import math

import numpy as np
import pytest

from convscope.ops import elementwise, jit


def _reference(x: np.ndarray) -> np.ndarray:
    wide = x.astype(np.float64).reshape(-1)
    return np.array([v * 0.5 * math.erfc(-v / math.sqrt(2)) for v in wide]).reshape(x.shape)


@pytest.mark.parametrize(("dtype", "tolerance"), [(np.float32, 3e-7), (np.float64, 1e-12)])
@pytest.mark.parametrize("backend", ["auto", "numpy"])
def test_gelu_is_exact_to_the_dtype(monkeypatch, dtype, tolerance, backend):
    monkeypatch.setattr(jit, "BACKEND", backend)
    rng = np.random.default_rng(0)
    # beyond -5 float32's 1 + erf cancels: the result must stay relatively exact there too
    x = np.concatenate([rng.uniform(-12, 12, 30000), rng.uniform(-1e-3, 1e-3, 1000)])
    x = x.astype(dtype).reshape(31, 1000)
    got = elementwise.gelu(x)
    assert got.dtype == dtype and got.shape == x.shape
    want = _reference(x)
    visible = np.abs(want) > 1e-30
    error = np.abs(got - want)[visible] / np.abs(want)[visible]
    assert error.max() <= tolerance


def test_gelu_non_finite_and_empty():
    x = np.array([np.nan, np.inf, -1.0, 0.0], np.float32)
    got = elementwise.gelu(x)
    assert np.isnan(got[0]) and got[1] == np.inf and got[3] == 0
    assert elementwise.gelu(np.zeros((0, 3), np.float64)).shape == (0, 3)


def test_gelu_reads_strided_input():
    x = np.linspace(-3, 3, 24, dtype=np.float32).reshape(4, 6).T
    np.testing.assert_allclose(elementwise.gelu(x), _reference(x), rtol=3e-7)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gelu_in_place(dtype):
    x = np.linspace(-9, 9, 70000, dtype=dtype).reshape(7, 10000)
    want = elementwise.gelu(x)
    same = x.copy()
    assert elementwise.gelu(same, out=same) is same
    np.testing.assert_array_equal(same, want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("low", "high"), [(0.0, None), (0.0, 6.0), (-1.0, 1.0)])
def test_relu_and_hardtanh_gradients_match_torch(dtype, low, high):
    import torch

    rng = np.random.default_rng(3)
    x = rng.uniform(-8, 8, (3, 70000)).astype(dtype)
    x[0, :5] = [low, 1e30 if high is None else high, np.nan, -np.inf, np.inf]
    g = rng.standard_normal(x.shape).astype(dtype)
    if high is None:  # ReLU: a NaN input keeps its gradient
        got = elementwise.pass_positive(g, x)
        want = np.where(np.isnan(x) | (x > 0), g, 0)
    else:  # Hardtanh: a NaN input gets 0
        got = elementwise.pass_inside(g, x, low, high)
        want = np.where((x > low) & (x < high), g, 0)
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, want)
    tx = torch.tensor(x, requires_grad=True)
    y = torch.relu(tx) if high is None else torch.nn.functional.hardtanh(tx, low, high)
    y.backward(torch.tensor(g))
    np.testing.assert_array_equal(got, tx.grad.numpy())
