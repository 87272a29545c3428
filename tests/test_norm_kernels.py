"""Compiled normalisation-backward kernels against the NumPy path and PyTorch.

``grad_sums`` and ``combine`` (the two halves of every normalisation's input gradient) run as
numba kernels when numba works; the NumPy block-wise code stays the reference.  Both must
agree on random rows (lengths around the kernel's chunk size, per-channel and per-row
constants, float32 and float64, Inf/NaN), and a training-mode BatchNorm's gradients must match
torch's float64 ones.
"""

from __future__ import annotations

import numpy as np
import pytest

import convscope as cs
from convscope.ops import jit
from convscope.ops import normalization as norm

try:
    import torch
except ImportError:  # pragma: no cover - conftest makes this a hard failure in CI
    torch = None

needs_numba = pytest.mark.skipif(jit.kernels() is None, reason="numba is not installed")


@pytest.fixture
def numpy_path(monkeypatch):
    """A function running its argument with the compiled kernels switched off."""

    def run(function, *args):
        with monkeypatch.context() as patch:
            patch.setattr(jit, "BACKEND", "numpy")
            return function(*args)

    return run


SHAPES = [(2, 3, 1), (3, 5, 255), (2, 4, 256), (2, 2, 257), (4, 3, 1000), (1, 70, 12544)]


@needs_numba
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("per_row", [False, True])
@pytest.mark.parametrize("threads", [1, 2])
def test_compiled_kernels_match_numpy(shape, dtype, per_row, threads, numpy_path):
    rng = np.random.default_rng(sum(shape))
    g = rng.standard_normal(shape).astype(dtype)
    x = (rng.standard_normal(shape) * 3 + 100).astype(dtype)  # a large mean: centring matters
    constants = shape[:2] if per_row else shape[1:2]
    centre = x.mean(axis=2).astype(dtype) if per_row else x.mean(axis=(0, 2)).astype(dtype)
    a, b, c = (rng.standard_normal(constants) for _ in range(3))
    with cs.num_threads(threads):
        total, dot = norm.grad_sums(g, x, centre)
        out = norm.combine(g, x, centre, a, b, c)
    want_total, want_dot = numpy_path(norm.grad_sums, g, x, centre)
    want_out = numpy_path(norm.combine, g, x, centre, a, b, c)
    # sums: both paths are float32-accurate (float64 accumulation in the kernel); exact in
    # float64 up to the order of the additions
    tol = 1e-5 if dtype == np.float32 else 1e-12
    scale = np.abs(g).sum(axis=2) * (1 + np.abs(x - centre[..., None]).max())
    assert np.all(np.abs(total - want_total) <= tol * scale)
    assert np.all(np.abs(dot - want_dot) <= tol * scale)
    # the combination adds in the same order: identical results
    np.testing.assert_array_equal(out, want_out)
    assert out.dtype == dtype and total.dtype == dot.dtype == np.float64


@needs_numba
def test_compiled_kernels_propagate_non_finite_values(numpy_path):
    g = np.ones((1, 2, 300), np.float32)
    x = np.zeros((1, 2, 300), np.float32)
    g[0, 0, 7], x[0, 1, 299] = np.nan, np.inf
    centre = np.zeros(2, np.float32)
    got, want = norm.grad_sums(g, x, centre), numpy_path(norm.grad_sums, g, x, centre)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
    np.testing.assert_array_equal(got[0], want[0])  # the sums of g: nan and 300


@pytest.mark.parametrize("shape", [(8, 16, 28, 28), (4, 8, 5, 3)])
def test_batch_norm_training_gradients_match_torch(shape, reference):
    rng = np.random.default_rng(2)
    x = rng.standard_normal(shape) * 2 + 5
    g = rng.standard_normal(shape)
    bn = cs.nn.BatchNorm2d(shape[1]).train()
    bn.weight.data[...] = rng.random(shape[1]) + 0.5
    bn.bias.data[...] = rng.standard_normal(shape[1])
    tb = reference.nn.BatchNorm2d(shape[1]).double().train()
    with reference.no_grad():
        tb.weight.copy_(reference.from_numpy(bn.weight.data.astype(np.float64)))
        tb.bias.copy_(reference.from_numpy(bn.bias.data.astype(np.float64)))
    xt = reference.from_numpy(x).requires_grad_()
    tb(xt).backward(reference.from_numpy(g))
    xc = cs.tensor(x.astype(np.float32), requires_grad=True)
    bn(xc).backward(cs.tensor(g.astype(np.float32)))
    for got, want in (
        (xc.grad.numpy(), xt.grad.numpy()),
        (bn.weight.grad.numpy(), tb.weight.grad.numpy()),
        (bn.bias.grad.numpy(), tb.bias.grad.numpy()),
    ):
        assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max()


@needs_numba
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("activation", [None, "relu", "relu6"])
@pytest.mark.parametrize("shape", [(4, 3, 521), (1, 5, 512), (8, 2, 3136)])
@pytest.mark.parametrize("threads", [1, 2])
def test_batch_norm_per_channel_kernels_match_the_row_kernels(
    monkeypatch, dtype, affine, activation, shape, threads
):
    """A training-mode BatchNorm with big planes runs as one compiled job per channel
    (statistics and normalisation, then both backward sums and the input gradient); it must
    give the row kernels' values and gradients: the same steps in the same order."""
    from convscope.autograd.normalization import Units, normalize

    rng = np.random.default_rng(sum(shape))
    data = (rng.standard_normal(shape) * 2 + 5).astype(dtype)
    data[0, 0, :3] = 5  # ties at the ReLU boundary after centring are possible
    grad = rng.standard_normal(shape).astype(dtype)
    params = [rng.standard_normal(shape[1]).astype(dtype) for _ in range(2)] if affine else []
    results, called, kernel = [], [], norm.channel_normalize

    def spy(*args):
        called.append(1)
        return kernel(*args)

    for fused in (True, False):
        with monkeypatch.context() as patch:
            if not fused:
                patch.setattr(norm, "channel_normalize", lambda *args: None)
            else:  # the per-channel path must run
                patch.setattr(norm, "channel_normalize", spy)
            x = cs.tensor(data.copy(), requires_grad=True)
            w, b = (
                (cs.tensor(p.copy(), requires_grad=True) for p in params)
                if affine
                else (
                    None,
                    None,
                )
            )
            with cs.num_threads(threads):
                y, mean, var = normalize(
                    x, x.data, Units("channels"), w, b, 1e-5, activation=activation
                )
                y.backward(cs.tensor(grad))
            grads = [x.grad.numpy()] + ([w.grad.numpy(), b.grad.numpy()] if affine else [])
            assert not fused or called
            results.append([y.numpy(), mean, var, *grads])
    for got, want in zip(*results, strict=True):
        np.testing.assert_array_equal(got, want)
