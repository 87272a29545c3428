"""The compiled direct depthwise kernel against PyTorch and the NumPy path on random
configurations: values and gradients, float32/float64, channel multipliers, 1-D to 3-D,
NaN inputs, bands of one output row."""

from __future__ import annotations

import numpy as np
import pytest

import convscope as cs
import convscope.nn.functional as F
from convscope.ops import jit
from convscope.ops import pool as pool_ops

torch = pytest.importorskip("torch")


def _config(rng: np.random.Generator, dims: int) -> dict:
    return {
        "kernel": [int(k) for k in rng.integers(1, 6, dims)],
        "stride": [int(s) for s in rng.integers(1, 4, dims)],
        "dilation": [int(d) for d in rng.integers(1, 3, dims)],
        "padding": [int(p) for p in rng.integers(0, 4, dims)],
    }


def _case(rng: np.random.Generator, dims: int, dtype, nan: bool = False):
    config = _config(rng, dims)
    channels, mult = int(rng.integers(1, 5)), int(rng.integers(1, 4))
    extent = [(k - 1) * d + 1 for k, d in zip(config["kernel"], config["dilation"], strict=True)]
    size = [
        int(rng.integers(max(1, e - 2 * p), e + 12))
        for e, p in zip(extent, config["padding"], strict=True)
    ]
    x = rng.standard_normal((int(rng.integers(1, 4)), channels, *size)).astype(dtype)
    w = rng.standard_normal((channels * mult, 1, *config["kernel"])).astype(dtype)
    if nan:
        x.reshape(-1)[rng.integers(0, x.size)] = np.nan
    return x, w, config


def _ours(x, w, config, upstream=None):
    args = {
        "stride": config["stride"],
        "padding": config["padding"],
        "dilation": config["dilation"],
        "groups": x.shape[1],
    }
    fn = getattr(F, f"conv{x.ndim - 2}d")
    tx, tw = cs.tensor(x, requires_grad=True), cs.tensor(w, requires_grad=True)
    with cs.record_conv_algorithms() as used:
        y = fn(tx, tw, **args)
        if upstream is not None:
            y.backward(cs.tensor(upstream))
    return y.numpy(), tx.grad, tw.grad, used


def _theirs(x, w, config, upstream=None):
    fn = getattr(torch.nn.functional, f"conv{x.ndim - 2}d")
    tx = torch.from_numpy(x.copy()).requires_grad_()
    tw = torch.from_numpy(w.copy()).requires_grad_()
    y = fn(tx, tw, None, config["stride"], config["padding"], config["dilation"], x.shape[1])
    if upstream is not None:
        y.backward(torch.from_numpy(upstream))
        return y.detach().numpy(), tx.grad.numpy(), tw.grad.numpy()
    return y.detach().numpy(), None, None


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("dims", [1, 2, 3])
def test_depthwise_matches_torch(dims, dtype, monkeypatch):
    monkeypatch.setattr(jit, "BACKEND", "auto")
    rng = np.random.default_rng(dims * 7 + (dtype == np.float64))
    tol = 1e-11 if dtype == np.float64 else 2e-5
    for _ in range(5):
        x, w, config = _case(rng, dims, dtype)
        want, _, _ = _theirs(x, w, config)
        upstream = rng.standard_normal(want.shape).astype(dtype)
        want, want_gx, want_gw = _theirs(x, w, config, upstream)
        with cs.conv_algorithm("depthwise"):
            got, gx, gw, used = _ours(x, w, config, upstream)
        assert used[0][0] == "depthwise"
        scale = max(1.0, float(np.abs(want).max()))
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * scale, err_msg=str(config))
        np.testing.assert_allclose(gx.numpy(), want_gx, rtol=tol, atol=tol * scale * 10)
        np.testing.assert_allclose(gw.numpy(), want_gw, rtol=tol, atol=tol * scale * 10)


@pytest.mark.parametrize("dims", [1, 2, 3])
def test_compiled_depthwise_equals_the_numpy_path(dims, monkeypatch):
    """The taps are added in the same order as the NumPy tap-by-tap passes: equal results
    (float64; NaN inputs included), also in bands of one output row on two threads."""
    pytest.importorskip("numba")
    rng = np.random.default_rng(40 + dims)
    for trial in range(5):
        x, w, config = _case(rng, dims, np.float64, nan=trial == 4)
        monkeypatch.setattr(jit, "BACKEND", "numpy")
        with cs.conv_algorithm("depthwise"), cs.no_grad():
            plain, *_ = _ours(x, w, config)
        monkeypatch.setattr(jit, "BACKEND", "auto")
        with cs.conv_algorithm("depthwise"), cs.no_grad():
            compiled, *_ = _ours(x, w, config)
            with cs.workspace_budget(64), cs.num_threads(2):
                banded, *_ = _ours(x, w, config)
        np.testing.assert_allclose(compiled, plain, rtol=1e-14, atol=1e-14, err_msg=str(config))
        np.testing.assert_allclose(banded, compiled, rtol=0, atol=0)
        if trial == 4:
            want, *_ = _theirs(x, w, config)
            assert np.array_equal(np.isnan(compiled), np.isnan(want))
    assert any(k.startswith("depthwise(float64") for k in jit.compile_seconds())


def test_depthwise_float16_and_strided_output(monkeypatch):
    """float16 is computed in float32; an output that is not contiguous is filled in place."""
    monkeypatch.setattr(jit, "BACKEND", "auto")
    rng = np.random.default_rng(9)
    x = rng.standard_normal((2, 4, 10, 9)).astype(np.float16)
    w = rng.standard_normal((4, 1, 3, 3)).astype(np.float16)
    want = torch.nn.functional.conv2d(
        torch.from_numpy(x).float(), torch.from_numpy(w).float(), None, 2, 1, 1, 4
    ).numpy()
    got = F.conv2d(x, w, stride=2, padding=1, groups=4).numpy()
    assert got.dtype == np.float16
    np.testing.assert_allclose(got.astype(np.float32), want, rtol=1e-2, atol=1e-2)
    from convscope.ops.conv import conv_general

    x32, w32 = x.astype(np.float32), w.astype(np.float32)
    out = np.zeros((2, 8, 5, 5), np.float32)[:, ::2]
    conv_general(
        x32, w32, stride=(2, 2), padding=((1, 1), (1, 1)), dilation=(1, 1), groups=4, out=out
    )
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)


def test_large_planes_are_split_into_bands():
    geom = pool_ops.pool_geometry((1, 1, 300, 300), (3, 3), (1, 1), (1, 1), (1, 1), False)
    band = pool_ops.Windows.of(geom, 4).band
    assert 1 <= band < 300
    assert (band + 2) * 302 * 4 * 2 <= pool_ops.CACHE_BYTES


def test_float32_weight_gradient_is_as_accurate_as_torch(monkeypatch):
    """Per-plane partial sums added in float64: the float32 weight gradient stays as close to
    the float64 one as torch's float32 gradient (also in bands of one row on two threads)."""
    pytest.importorskip("numba")
    monkeypatch.setattr(jit, "BACKEND", "auto")
    rng = np.random.default_rng(11)
    x = rng.standard_normal((4, 6, 40, 40)) + 3.0  # an offset makes sums cancel less evenly
    w = rng.standard_normal((12, 1, 3, 3))
    config = {"kernel": [3, 3], "stride": [2, 2], "dilation": [1, 1], "padding": [1, 1]}
    upstream = rng.standard_normal((4, 12, 20, 20))
    _, _, exact = _theirs(x, w, config, upstream)
    x32, w32, up32 = (a.astype(np.float32) for a in (x, w, upstream))
    _, _, theirs = _theirs(x32, w32, config, up32)
    _, _, ours, used = _ours(x32, w32, config, up32)
    with cs.workspace_budget(64), cs.num_threads(2):
        _, _, banded, _ = _ours(x32, w32, config, up32)
    assert used[-1][0] == "depthwise"
    assert any(k.startswith("depthwise_weight(float32") for k in jit.compile_seconds())
    scale = np.abs(exact).max()
    torch_error = np.abs(theirs - exact).max() / scale
    for got in (ours, banded):
        error = np.abs(got.numpy() - exact).max() / scale
        assert error <= max(2 * torch_error, 3e-7), (error, torch_error)


@pytest.mark.skipif(jit.kernels() is None, reason="numba is not installed")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_depthwise_kernel_writes_a_strided_output_in_place(dtype):
    """A stride-2 depthwise layer's input gradient is computed phase by phase, each into a
    strided view of the gradient: the kernel writes there directly (no copy), and only
    there."""
    from convscope.ops.conv import conv_general

    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 6, 9, 11)).astype(dtype)
    w = rng.standard_normal((12, 1, 3, 3)).astype(dtype)  # channel multiplier 2
    kwargs = {"stride": (1, 1), "padding": ((1, 1), (1, 1)), "dilation": (1, 1), "groups": 6}
    want = conv_general(x, w, algorithm="depthwise", **kwargs)
    canvas = np.full((2, 12, 18, 22), 7.0, dtype)
    phase = canvas[:, :, 1::2, ::2]
    conv_general(x, w, algorithm="depthwise", out=phase, **kwargs)
    np.testing.assert_array_equal(phase, want)
    untouched = np.ones(canvas.shape, bool)
    untouched[:, :, 1::2, ::2] = False
    assert (canvas[untouched] == 7.0).all()
