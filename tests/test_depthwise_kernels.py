"""The compiled direct depthwise kernel against PyTorch and the NumPy path on random
configurations: values and gradients, float32/float64, channel multipliers, 1-D to 3-D,
NaN inputs, bands of one output row."""

from __future__ import annotations

import dataclasses
import functools

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


def _launched(monkeypatch) -> list[str]:
    """Names of the compiled sliding-window kernels launched from now on (the depthwise
    kernel's register-blocked runs as ``depthwise_blocked``)."""
    names: list[str] = []
    original = pool_ops.launch

    def record(name: str, *args, **kwargs) -> None:
        blocked = name == "depthwise" and args[10] > 0  # rows_per_call: register-blocked
        names.append("depthwise_blocked" if blocked else name)
        original(name, *args, **kwargs)

    monkeypatch.setattr(pool_ops, "launch", record)
    return names


BLOCKED_CASES = [
    # (input shape, kernel, padding, channel multiplier)
    ((2, 3, 17, 23), (7, 7), (3, 3), 1),
    ((1, 4, 9, 40), (5, 3), (2, 0), 2),  # width 38: lanes partly past the row
    ((2, 2, 30, 5), (13, 13), (6, 6), 1),  # output narrower than the kernel
    ((1, 2, 10, 12), (9, 9), (0, 0), 1),  # 2 output rows: most of a block past the plane
    ((3, 5, 21, 33), (5, 7), (4, 1), 3),
    ((1, 3, 40, 70), (31, 31), (15, 15), 1),
]


@pytest.mark.skipif(jit.kernels() is None, reason="numba is not installed")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, kernel, padding, mult", BLOCKED_CASES)
def test_register_blocked_depthwise_matches_torch(shape, kernel, padding, mult, dtype, monkeypatch):
    """Stride-1 undilated depthwise layers from 5 kernel rows run the register-blocked kernel,
    forward and (without a channel multiplier) input gradient, and match torch; bands of one
    row on two threads give the same bits."""
    rng = np.random.default_rng(sum(shape) + sum(kernel))
    x = rng.standard_normal(shape).astype(dtype)
    w = rng.standard_normal((shape[1] * mult, 1, *kernel)).astype(dtype)
    config = {"kernel": list(kernel), "stride": [1, 1], "dilation": [1, 1], "padding": padding}
    want, _, _ = _theirs(x, w, config)
    upstream = rng.standard_normal(want.shape).astype(dtype)
    want, want_gx, want_gw = _theirs(x, w, config, upstream)
    names = _launched(monkeypatch)
    got, gx, gw, used = _ours(x, w, config, upstream)
    assert used[0][0] == "depthwise"
    assert names[0] == "depthwise_blocked"
    # the input gradient: a depthwise call of its own without a channel multiplier
    assert (names[1] == "depthwise_blocked") == (mult == 1)
    with cs.workspace_budget(64), cs.num_threads(2), cs.no_grad():
        banded, *_ = _ours(x, w, config)
    tol = 1e-12 if dtype == np.float64 else 2e-5
    scale = float(np.abs(want).max())
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * scale)
    np.testing.assert_array_equal(banded, got)
    np.testing.assert_allclose(gx.numpy(), want_gx, rtol=tol, atol=tol * scale)
    np.testing.assert_allclose(gw.numpy(), want_gw, rtol=tol, atol=tol * scale * 10)


@pytest.mark.skipif(jit.kernels() is None, reason="numba is not installed")
@pytest.mark.parametrize(
    "shape, kernel, stride, dilation, blocked",
    [
        ((1, 2, 20, 20), (5, 5), 1, 1, True),
        ((1, 2, 1, 20, 20), (1, 7, 7), 1, 1, True),  # 3-D with a single frame
        ((1, 2, 20, 20), (3, 3), 1, 1, False),
        ((1, 2, 20, 20), (4, 7), 1, 1, False),
        ((1, 2, 20, 20), (5, 5), 2, 1, False),
        ((1, 2, 20, 20), (5, 5), 1, 2, False),
        ((1, 2, 40), (9,), 1, 1, False),
        ((1, 2, 3, 20, 20), (3, 5, 5), 1, 1, False),
    ],
)
def test_register_blocked_depthwise_only_where_it_applies(
    shape, kernel, stride, dilation, blocked, monkeypatch
):
    rng = np.random.default_rng(5)
    x = rng.standard_normal(shape).astype(np.float32)
    w = rng.standard_normal((shape[1], 1, *kernel)).astype(np.float32)
    dims = len(kernel)
    config = {
        "kernel": list(kernel),
        "stride": [stride] * dims,
        "dilation": [dilation] * dims,
        "padding": [k // 2 for k in kernel],
    }
    names = _launched(monkeypatch)
    with cs.conv_algorithm("depthwise"), cs.no_grad():
        got, *_ = _ours(x, w, config)
    assert names == ["depthwise_blocked" if blocked else "depthwise"]
    want, _, _ = _theirs(x, w, config)
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5 * np.abs(want).max())


@pytest.mark.skipif(jit.kernels() is None, reason="numba is not installed")
def test_register_blocked_depthwise_non_finite_and_float16(monkeypatch):
    """Inf and NaN inputs give torch's NaN and Inf pattern; float16 is computed in float32."""
    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, 3, 19, 26))
    x[0, 1, 5, 7], x[1, 2, 0, 25], x[1, 0, 12, 3] = np.inf, -np.inf, np.nan
    w = rng.standard_normal((3, 1, 7, 5))
    config = {"kernel": [7, 5], "stride": [1, 1], "dilation": [1, 1], "padding": [3, 2]}
    names = _launched(monkeypatch)
    with cs.no_grad():
        got, *_ = _ours(x, w, config)
        half, *_ = _ours(x.astype(np.float16), w.astype(np.float16), config)
    assert names == ["depthwise_blocked"] * 2
    want, _, _ = _theirs(x, w, config)
    assert np.array_equal(np.isnan(got), np.isnan(want))
    assert np.array_equal(np.isinf(got), np.isinf(want)) and np.isnan(got).any()
    finite = np.isfinite(want)
    np.testing.assert_allclose(got[finite], want[finite], rtol=1e-12, atol=1e-12)
    want16, _, _ = _theirs(x.astype(np.float32), w.astype(np.float32), config)
    assert half.dtype == np.float16
    np.testing.assert_allclose(half[finite], want16[finite], rtol=1e-2, atol=2e-2)


def test_fft_takes_over_from_the_blocked_kernel_at_45x45():
    from convscope.ops.conv import select_algorithm

    def geometry(k: int, stride: int = 1):
        return pool_ops.pool_geometry(
            (1, 8, 100, 100), (k, k), (stride, stride), (0, 0), (1, 1), False
        )

    compiled = jit.kernels() is not None
    assert select_algorithm(geometry(31), 8, np.float32) == ("depthwise" if compiled else "fft")
    assert select_algorithm(geometry(45), 8, np.float32) == "fft"
    assert select_algorithm(geometry(31, 2), 8, np.float32) == "depthwise"


@pytest.mark.skipif(jit.kernels() is None, reason="numba is not installed")
def test_no_register_blocking_without_vector_fma(monkeypatch):
    """Without fused multiply-add instructions the micro-kernel's FMAs would be library calls
    per element: the plain compiled kernel runs instead."""
    kernels = pool_ops.compiled_kernels()
    monkeypatch.setattr(kernels, "fused_multiply_add", lambda: False)
    rng = np.random.default_rng(6)
    x = rng.standard_normal((1, 2, 20, 20)).astype(np.float32)
    w = rng.standard_normal((2, 1, 7, 7)).astype(np.float32)
    config = {"kernel": [7, 7], "stride": [1, 1], "dilation": [1, 1], "padding": [3, 3]}
    names = _launched(monkeypatch)
    with cs.no_grad():
        got, *_ = _ours(x, w, config)
    assert names == ["depthwise"]
    want, _, _ = _theirs(x, w, config)
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5 * np.abs(want).max())


STACKED_CASES = [  # (input shape, multiplier, kernel, stride, dilation, padding, stack)
    ((5, 3, 9, 8), 2, (3, 3), (1, 1), (1, 1), (1, 1), 2),
    ((5, 4, 11, 10), 1, (3, 3), (2, 2), (1, 1), (1, 1), 3),
    ((4, 2, 30), 3, (5,), (1,), (2,), (3,), 3),
    ((3, 2, 4, 7, 6), 1, (3, 3, 3), (1, 2, 2), (1, 1, 1), (1, 0, 1), 2),
]


@pytest.mark.skipif(jit.kernels() is None, reason="numba is not installed")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", STACKED_CASES)
def test_depthwise_jobs_stacking_samples_match_torch(case, dtype, monkeypatch):
    """Jobs that stack the planes of several samples (the last block of samples shorter):
    forward, input and weight gradients equal torch's; the forward and input gradient equal
    those of one sample per job bit for bit."""
    shape, mult, kernel, stride, dilation, padding, stack = case
    rng = np.random.default_rng(sum(shape))
    x = rng.standard_normal(shape).astype(dtype)
    w = rng.standard_normal((shape[1] * mult, 1, *kernel)).astype(dtype)
    config = {"kernel": kernel, "stride": stride, "dilation": dilation, "padding": padding}
    want, *_ = _theirs(x, w, config)
    upstream = rng.standard_normal(want.shape).astype(dtype)
    want, want_gx, want_gw = _theirs(x, w, config, upstream)
    original = pool_ops.Windows.of.__func__
    stacks: list[int] = []

    def windows(cls, geom, itemsize, accumulators=1, samples=stack):
        tables = original(cls, geom, itemsize, accumulators)
        rows = ((1,) * (3 - len(geom.output_size)) + geom.output_size)[1]  # the banded axis
        assert tables.band >= rows
        stacks.append(min(samples, geom.input_shape[0]))
        return dataclasses.replace(tables, stack=stacks[-1])

    results = {}
    for samples in (1, stack):
        monkeypatch.setattr(
            pool_ops.Windows, "of", classmethod(functools.partial(windows, samples=samples))
        )
        results[samples] = _ours(x, w, config, upstream)
    got, gx, gw, used = results[stack]
    assert {name for name, _ in used} == {"depthwise"}
    assert stack in stacks and stack < shape[0]  # stacked, and the last block shorter
    tol = 1e-11 if dtype == np.float64 else 2e-5
    scale = max(1.0, float(np.abs(want).max()))
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * scale)
    np.testing.assert_allclose(gx.numpy(), want_gx, rtol=tol, atol=tol * scale * 10)
    np.testing.assert_allclose(gw.numpy(), want_gw, rtol=tol, atol=tol * scale * 10)
    single, single_gx, *_ = results[1]
    np.testing.assert_array_equal(got, single)
    np.testing.assert_array_equal(gx.numpy(), single_gx.numpy())


def test_small_planes_of_several_samples_share_a_job():
    """Whole planes that fit :data:`pool.STACK_BYTES` together are stacked, up to the batch;
    planes split into bands are not."""
    small = pool_ops.pool_geometry((8, 960, 7, 7), (3, 3), (1, 1), (1, 1), (1, 1), False)
    assert pool_ops.Windows.of(small, 4).stack == 8
    medium = pool_ops.pool_geometry((8, 64, 28, 28), (3, 3), (1, 1), (1, 1), (1, 1), False)
    tables = pool_ops.Windows.of(medium, 4)
    assert 1 < tables.stack < 8
    assert tables.stack * 30 * 30 * 4 * 2 <= pool_ops.STACK_BYTES
    large = pool_ops.pool_geometry((8, 1, 300, 300), (3, 3), (1, 1), (1, 1), (1, 1), False)
    assert pool_ops.Windows.of(large, 4).stack == 1


PHASED_CASES = [  # (input shape, kernel, stride, padding, dilation)
    ((3, 5, 12, 10), (3, 3), (2, 2), (1, 1), (1, 1)),
    ((2, 4, 16, 12), (5, 5), (2, 2), (2, 2), (1, 1)),
    ((2, 3, 15, 12), (3, 3), (3, 2), (1, 0), (1, 1)),
    ((4, 3, 20), (4,), (2,), (1,), (1,)),
    ((2, 2, 4, 8, 6), (3, 3, 3), (1, 2, 2), (1, 1, 1), (1, 1, 1)),
]


@pytest.mark.skipif(jit.kernels() is None, reason="numba is not installed")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", PHASED_CASES)
def test_strided_depthwise_input_gradient_runs_its_phases_in_one_launch(case, dtype, monkeypatch):
    """The input gradient of a strided depthwise layer computes every stride phase in one
    launch, into strided views of the gradient: equal to torch's, and to the gradient
    computed one phase at a time up to rounding (the common window's zero taps regroup the
    fused multiply-adds); the weight gradient is unchanged."""
    from convscope.ops import depthwise as depthwise_ops

    shape, kernel, stride, padding, dilation = case
    rng = np.random.default_rng(sum(shape) + len(kernel))
    x = rng.standard_normal(shape).astype(dtype)
    w = rng.standard_normal((shape[1], 1, *kernel)).astype(dtype)
    config = {"kernel": kernel, "stride": stride, "dilation": dilation, "padding": padding}
    want, *_ = _theirs(x, w, config)
    upstream = rng.standard_normal(want.shape).astype(dtype)
    want, want_gx, want_gw = _theirs(x, w, config, upstream)
    launches = _launched(monkeypatch)
    _, gx, gw, used = _ours(x, w, config, upstream)
    fused_launches = launches.count("depthwise")
    launches.clear()
    monkeypatch.setattr(depthwise_ops, "phases_at_once", lambda *args: False)
    _, phased_gx, phased_gw, _ = _ours(x, w, config, upstream)
    phases = int(np.prod(stride))
    assert fused_launches == 2  # the forward and the whole input gradient
    assert launches.count("depthwise") == 1 + phases
    assert {name for name, _ in used} == {"depthwise"}
    tol = 1e-11 if dtype == np.float64 else 2e-5
    scale = max(1.0, float(np.abs(want).max()))
    np.testing.assert_allclose(gx.numpy(), want_gx, rtol=tol, atol=tol * scale * 10)
    np.testing.assert_allclose(gw.numpy(), want_gw, rtol=tol, atol=tol * scale * 10)
    close = 1e-13 if dtype == np.float64 else 1e-6
    np.testing.assert_allclose(gx.numpy(), phased_gx.numpy(), rtol=close, atol=close * scale)
    np.testing.assert_array_equal(gw.numpy(), phased_gw.numpy())


@pytest.mark.skipif(jit.kernels() is None, reason="numba is not installed")
def test_strided_depthwise_input_gradient_keeps_its_phases_where_one_launch_cannot(monkeypatch):
    """Lengths that are not multiples of the stride, a channel multiplier, phases that no
    tap reaches (dilation 2 with stride 2), or an Inf in the output gradient (whose
    zero-padded common window would make NaNs torch does not have) keep one launch per phase
    that has taps, with torch's values."""
    rng = np.random.default_rng(3)
    for shape, mult, dilation, inf, phases in [
        ((2, 3, 11, 10), 1, 1, False, 4),
        ((2, 3, 12, 10), 2, 1, False, None),
        ((2, 3, 9, 8), 1, 2, False, 1),
        ((2, 3, 12, 10), 1, 1, True, 4),
    ]:
        config = {
            "kernel": (3, 3),
            "stride": (2, 2),
            "dilation": (dilation,) * 2,
            "padding": (1, 1),
        }
        x = rng.standard_normal(shape)
        w = rng.standard_normal((shape[1] * mult, 1, 3, 3))
        want, *_ = _theirs(x, w, config)
        upstream = rng.standard_normal(want.shape)
        if inf:
            upstream[0, 1, 2, 3] = np.inf
        _, want_gx, _ = _theirs(x, w, config, upstream)
        launches = _launched(monkeypatch)
        _, gx, _, _ = _ours(x, w, config, upstream)
        if phases is not None:  # the forward, then one launch per phase with taps
            assert launches.count("depthwise") == 1 + phases
        assert np.array_equal(np.isnan(gx.numpy()), np.isnan(want_gx))
        finite = np.isfinite(want_gx)
        np.testing.assert_allclose(gx.numpy()[finite], want_gx[finite], rtol=1e-11, atol=1e-11)
        monkeypatch.undo()


@pytest.mark.skipif(jit.kernels() is None, reason="numba is not installed")
@pytest.mark.parametrize("forced", ["unfold", "direct"])
def test_a_forced_algorithm_keeps_the_strided_input_gradient_phase_by_phase(forced, monkeypatch):
    """With an algorithm forced, the phases of a strided depthwise layer's input gradient are
    its calls, not the one compiled launch."""
    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, 4, 12, 10))
    w = rng.standard_normal((4, 1, 3, 3))
    config = {"kernel": (3, 3), "stride": (2, 2), "dilation": (1, 1), "padding": (1, 1)}
    want, *_ = _theirs(x, w, config)
    upstream = rng.standard_normal(want.shape)
    _, want_gx, _ = _theirs(x, w, config, upstream)
    launches = _launched(monkeypatch)
    with cs.conv_algorithm(forced):
        _, gx, _, used = _ours(x, w, config, upstream)
    assert "depthwise" not in launches
    assert "depthwise" not in {name for name, _ in used}
    np.testing.assert_allclose(gx.numpy(), want_gx, rtol=1e-11, atol=1e-11)
