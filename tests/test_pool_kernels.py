"""Max and average pooling: the compiled kernels and the NumPy path against PyTorch on random
configurations (values, indices and gradients; float32/float64; NaN and -inf; small bands)."""

from __future__ import annotations

import numpy as np
import pytest

import convscope as cs
import convscope.nn.functional as F
from convscope.ops import jit
from convscope.ops import pool as pool_ops

torch = pytest.importorskip("torch")

BACKENDS = ["auto", "numpy"]


def _config(rng: np.random.Generator, dims: int) -> dict:
    """A random valid pooling configuration of ``dims`` spatial dimensions."""
    kernel = [int(k) for k in rng.integers(1, 5, dims)]
    return {
        "kernel_size": kernel,
        "stride": [int(s) for s in rng.integers(1, 4, dims)],
        "padding": [int(rng.integers(0, k // 2 + 1)) for k in kernel],
        "dilation": [int(d) for d in rng.integers(1, 3, dims)],
        "ceil_mode": bool(rng.integers(0, 2)),
    }


def _input(rng: np.random.Generator, dims: int, dtype, special: bool) -> np.ndarray:
    shape = (int(rng.integers(1, 3)), int(rng.integers(1, 4)), *rng.integers(7, 13, dims))
    x = rng.standard_normal(shape).astype(dtype)
    if special:  # NaNs, -inf and ties
        flat = x.reshape(-1)
        picks = rng.choice(flat.size, size=max(1, flat.size // 8), replace=False)
        flat[picks[: len(picks) // 3]] = np.nan
        flat[picks[len(picks) // 3 : 2 * len(picks) // 3]] = -np.inf
        flat[picks[2 * len(picks) // 3 :]] = 0.5
    return x


def _torch_max(x: np.ndarray, config: dict, grad: np.ndarray | None = None):
    t = torch.from_numpy(x.copy()).requires_grad_(grad is not None)
    fn = getattr(torch.nn.functional, f"max_pool{x.ndim - 2}d")
    y, i = fn(t, return_indices=True, **config)
    if grad is not None:
        y.backward(torch.from_numpy(grad))
        return y.detach().numpy(), i.numpy(), t.grad.numpy()
    return y.detach().numpy(), i.numpy(), None


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("dims", [1, 2, 3])
def test_max_pool_matches_torch(dims, dtype, backend, monkeypatch):
    monkeypatch.setattr(jit, "BACKEND", backend)
    rng = np.random.default_rng(dims * 10 + (dtype == np.float64))
    fn = getattr(F, f"max_pool{dims}d")
    for trial in range(6):
        config = _config(rng, dims)
        x = _input(rng, dims, dtype, special=trial % 2 == 1)
        want, want_index, _ = _torch_max(x, config)
        with cs.no_grad():
            values = fn(x, **config)
        got, got_index = fn(x, return_indices=True, **config)
        np.testing.assert_array_equal(values.numpy(), want, err_msg=str(config))
        np.testing.assert_array_equal(got.numpy(), want, err_msg=str(config))
        np.testing.assert_array_equal(got_index.numpy(), want_index, err_msg=str(config))
        upstream = rng.standard_normal(want.shape).astype(dtype)
        _, _, want_grad = _torch_max(x, config, upstream)
        t = cs.tensor(x, requires_grad=True)
        fn(t, **config).backward(cs.tensor(upstream))
        np.testing.assert_allclose(t.grad.numpy(), want_grad, rtol=1e-12, atol=1e-6)
    if backend == "auto" and pool_ops.compiled_kernels() is not None:
        assert any(k.startswith("max_scatter(") for k in jit.compile_seconds())


def test_compiled_max_pool_matches_the_numpy_path_in_small_bands(monkeypatch):
    """Bands of one output row (tiny workspace, two threads) give the same values and indices
    as the NumPy reference."""
    pytest.importorskip("numba")
    monkeypatch.setattr(jit, "BACKEND", "auto")
    rng = np.random.default_rng(5)
    for dims in (1, 2, 3):
        config = _config(rng, dims)
        x = _input(rng, dims, np.float64, special=True)
        geom = pool_ops.pool_geometry(
            (x.shape if x.ndim == dims + 2 else (1, *x.shape)),
            config["kernel_size"],
            config["stride"],
            config["padding"],
            config["dilation"],
            config["ceil_mode"],
        )
        ref_values, ref_index = pool_ops._max_pool_numpy(x, geom, None, True)
        with cs.workspace_budget(256), cs.num_threads(2):
            assert pool_ops.Windows.of(geom, 8, 3).band == 1
            values, index = pool_ops.max_pool(x, geom)
            alone = pool_ops.max_pool_values(x, geom)
        np.testing.assert_array_equal(values, ref_values)
        np.testing.assert_array_equal(alone, ref_values)
        np.testing.assert_array_equal(index, ref_index)
    seen = jit.compile_seconds()
    assert any(k.startswith("max_indices(float64") for k in seen)
    assert any(k.startswith("max_values(float64") for k in seen)


def test_no_grad_max_pool_computes_no_indices(monkeypatch):
    """Without a gradient to compute (and no return_indices) only the values are computed."""

    def refuse(*args, **kwargs):
        raise AssertionError("indices computed")

    monkeypatch.setattr(pool_ops, "max_pool", refuse)
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    with cs.no_grad():
        F.max_pool2d(cs.tensor(x, requires_grad=True), 3, 2, 1)
    F.max_pool2d(cs.tensor(x), 3, 2, 1)  # no input requires a gradient
    with pytest.raises(AssertionError, match="indices computed"):
        F.max_pool2d(cs.tensor(x, requires_grad=True), 3, 2, 1)
    with pytest.raises(AssertionError, match="indices computed"), cs.no_grad():
        F.max_pool2d(cs.tensor(x), 3, 2, 1, return_indices=True)


@pytest.mark.parametrize("dtype", ["float16", "int8", "int32", "int64", "uint8"])
def test_max_pool_other_dtypes(dtype):
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((2, 3, 9, 10)) * 20).astype(dtype)
    config = {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True}
    want, want_index, _ = _torch_max(x, config)
    got, index = F.max_pool2d(x, return_indices=True, **config)
    with cs.no_grad():
        values = F.max_pool2d(x, **config)
    assert got.dtype == values.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(got.numpy(), want)
    np.testing.assert_array_equal(values.numpy(), want)
    np.testing.assert_array_equal(index.numpy(), want_index)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("dims", [1, 2, 3])
def test_avg_pool_matches_torch(dims, dtype, backend, monkeypatch):
    monkeypatch.setattr(jit, "BACKEND", backend)
    rng = np.random.default_rng(dims * 20 + (dtype == np.float64))
    ours = getattr(F, f"avg_pool{dims}d")
    theirs = getattr(torch.nn.functional, f"avg_pool{dims}d")
    tol = 1e-12 if dtype == np.float64 else 1e-5
    for trial in range(6):
        config = _config(rng, dims)
        del config["dilation"]
        config["count_include_pad"] = bool(trial % 2)
        if dims > 1 and trial % 3 == 2:
            config["divisor_override"] = int(rng.integers(1, 7))
        x = _input(rng, dims, dtype, special=False)
        if dims == 3:  # PyTorch's avg_pool3d wants the kernel inside the unpadded input
            kernel = zip(config["kernel_size"], x.shape[2:], strict=True)
            config["kernel_size"] = [min(k, s) for k, s in kernel]
        t = torch.from_numpy(x.copy()).requires_grad_()
        want = theirs(t, **config)
        upstream = rng.standard_normal(tuple(want.shape)).astype(dtype)
        want.backward(torch.from_numpy(upstream))
        with cs.no_grad():
            values = ours(x, **config)
        ct = cs.tensor(x, requires_grad=True)
        got = ours(ct, **config)
        got.backward(cs.tensor(upstream))
        np.testing.assert_allclose(values.numpy(), want.detach().numpy(), rtol=tol, atol=tol)
        np.testing.assert_allclose(got.numpy(), want.detach().numpy(), rtol=tol, atol=tol)
        np.testing.assert_allclose(ct.grad.numpy(), t.grad.numpy(), rtol=tol, atol=tol)
    if backend == "auto" and pool_ops.compiled_kernels() is not None:
        kind = np.dtype(dtype).name
        seen = jit.compile_seconds()
        assert any(k.startswith(f"avg_values({kind}") for k in seen)
        assert any(k.startswith(f"avg_scatter({kind}") for k in seen)


def test_avg_pool_nan_and_small_bands(monkeypatch):
    """A NaN or Inf spreads to the windows holding it; bands of one row change nothing."""
    monkeypatch.setattr(jit, "BACKEND", "auto")
    x = np.random.default_rng(1).standard_normal((2, 2, 11, 9))
    x[0, 1, 4, 4], x[1, 0, 0, 0] = np.nan, np.inf
    config = {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True}
    want = torch.nn.functional.avg_pool2d(torch.from_numpy(x), **config).numpy()
    with cs.workspace_budget(64), cs.num_threads(2):
        got = F.avg_pool2d(x, **config).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-13)
    assert np.array_equal(np.isnan(got), np.isnan(want))


def test_avg_pool_float16_and_int64():
    x = np.random.default_rng(2).standard_normal((1, 3, 8, 8))
    for dtype in ("float16", "int64"):
        a = (x * 50).astype(dtype)
        want = torch.nn.functional.avg_pool2d(torch.from_numpy(a), 3, 2, 1).numpy()
        got = F.avg_pool2d(a, 3, 2, 1).numpy()
        assert got.dtype == np.dtype(dtype)
        np.testing.assert_allclose(got.astype(float), want.astype(float), rtol=1e-3)
