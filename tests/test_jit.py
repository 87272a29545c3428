"""The compiled (numba) depthwise kernel against the NumPy path and PyTorch."""

from __future__ import annotations

import numpy as np
import pytest

import convscope as cs
import convscope.nn.functional as F
from convscope.ops import epilogue, jit

torch = pytest.importorskip("torch")
numba = pytest.importorskip("numba")

CASES = [  # (dims, channels, multiplier, kernel, stride, dilation, padding)
    (2, 6, 1, 3, 1, 1, 1),
    (2, 5, 2, (3, 5), (2, 1), 1, (2, 0)),
    (2, 4, 1, 7, 1, 2, 3),
    (2, 3, 3, 4, 3, (1, 2), 2),
    (1, 7, 1, 5, 2, 3, 4),
    (1, 4, 2, 2, 1, 1, 0),
    (3, 3, 1, 3, (1, 2, 1), 1, 1),
]


def _run(dims, channels, mult, kernel, stride, dilation, padding, dtype, backend, monkeypatch):
    monkeypatch.setattr(jit, "BACKEND", backend)
    rng = np.random.default_rng(dims * 100 + channels)
    shape = (2, channels, *(9, 11, 7)[:dims])
    if np.dtype(dtype).kind == "i":
        x = rng.integers(-5, 6, shape).astype(dtype)
        w = rng.integers(-3, 4, (channels * mult, 1, *_k(kernel, dims))).astype(dtype)
    else:
        x = rng.standard_normal(shape).astype(dtype)
        w = rng.standard_normal((channels * mult, 1, *_k(kernel, dims))).astype(dtype)
    kwargs = {"stride": stride, "dilation": dilation, "padding": padding, "groups": channels}
    fn = getattr(F, f"conv{dims}d")
    with cs.conv_algorithm("depthwise"), cs.record_conv_algorithms() as used:
        got = fn(x, w, **kwargs).numpy()
    assert used and used[0][0] == "depthwise"
    return got, x, w, kwargs


def _k(kernel, dims):
    return kernel if isinstance(kernel, tuple) else (kernel,) * dims


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_compiled_depthwise_matches_numpy_path_and_torch(case, dtype, monkeypatch):
    compiled, x, w, kwargs = _run(*case, dtype, "numba", monkeypatch)
    plain, *_ = _run(*case, dtype, "numpy", monkeypatch)
    fn = getattr(torch.nn.functional, f"conv{case[0]}d")
    want = fn(torch.from_numpy(x), torch.from_numpy(w), **kwargs).numpy()
    assert compiled.dtype == plain.dtype == want.dtype and compiled.shape == want.shape
    if np.dtype(dtype).kind == "i":
        np.testing.assert_array_equal(compiled, want)
        np.testing.assert_array_equal(plain, want)
    else:
        tol = 1e-10 if dtype == np.float64 else 1e-4
        np.testing.assert_allclose(compiled, want, rtol=tol, atol=tol)
        np.testing.assert_allclose(plain, want, rtol=tol, atol=tol)


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_depthwise_in_tiny_workspace_and_threads(backend, monkeypatch):
    case = (2, 6, 2, 3, 2, 1, 1)
    full, *_ = _run(*case, np.float64, backend, monkeypatch)
    with cs.workspace_budget(8 << 10), cs.num_threads(2):
        chunked, *_ = _run(*case, np.float64, backend, monkeypatch)
    np.testing.assert_allclose(chunked, full, rtol=1e-13, atol=1e-13)


def test_compile_time_is_recorded(monkeypatch):
    monkeypatch.setattr(jit, "BACKEND", "auto")
    F.conv2d(np.ones((1, 4, 5, 5), np.float32), np.ones((4, 2, 3, 3), np.float32), groups=2)
    assert any(k.startswith("grouped_taps(float32") for k in jit.compile_seconds())
    F.conv2d(np.ones((1, 2, 5, 5), np.float32), np.ones((2, 1, 3, 3), np.float32), groups=2)
    assert any(k.startswith("depthwise(float32") for k in jit.compile_seconds())


@pytest.mark.parametrize(
    ("cin", "cout", "groups", "kernel", "stride", "padding", "dims"),
    [
        (1, 2, 1, 3, 1, 1, 2),
        (2, 2, 1, 5, 1, 2, 2),
        (4, 6, 2, 3, 2, 0, 2),
        (3, 4, 1, 4, 3, 2, 1),
        (6, 12, 6, 3, 2, 1, 2),  # depthwise, multiplier 2, strided
        (5, 5, 5, 7, 1, 3, 2),  # depthwise 7x7
        (4, 4, 4, 3, 1, 1, 3),  # depthwise 3-D
    ],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_kernel_for_few_channel_layers(
    cin, cout, groups, kernel, stride, padding, dims, dtype, monkeypatch
):
    """Depthwise layers and layers with few channels per group take the compiled tap-by-tap
    kernels, forward and weight gradient."""
    monkeypatch.setattr(jit, "BACKEND", "auto")
    rng = np.random.default_rng(cin * 10 + cout)
    x = rng.standard_normal((2, cin, *(13, 11, 9)[:dims])).astype(dtype)
    w = rng.standard_normal((cout, cin // groups) + (kernel,) * dims).astype(dtype)
    args = {"stride": stride, "padding": padding, "groups": groups}
    ours = [cs.tensor(a, requires_grad=True) for a in (x, w)]
    theirs = [torch.from_numpy(a.copy()).requires_grad_() for a in (x, w)]
    with cs.record_conv_algorithms() as used:
        y = getattr(F, f"conv{dims}d")(*ours, **args)
        y_ref = getattr(torch.nn.functional, f"conv{dims}d")(*theirs, **args)
        upstream = rng.standard_normal(tuple(y_ref.shape)).astype(dtype)
        y.backward(cs.tensor(upstream))
    assert used[0][0] == "depthwise" and used[-1][0] == "depthwise"  # forward, weight grad
    y_ref.backward(torch.from_numpy(upstream))
    tol = 1e-10 if dtype == np.float64 else 1e-4
    np.testing.assert_allclose(y.numpy(), y_ref.detach().numpy(), rtol=tol, atol=tol)
    for got, want in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(got.grad.numpy(), want.grad.numpy(), rtol=tol, atol=tol)


def test_without_numba_few_channel_layers_use_gemm(monkeypatch):
    monkeypatch.setattr(jit, "BACKEND", "numpy")
    with cs.record_conv_algorithms() as used:
        F.conv2d(np.ones((1, 1, 8, 8)), np.ones((2, 1, 3, 3)))
    assert used[0][0] == "unfold"
    from convscope.ops.conv import conv_general

    with pytest.raises(ValueError, match="depthwise needs groups == in_channels"):
        conv_general(
            np.ones((1, 2, 5, 5)),
            np.ones((2, 2, 3, 3)),
            stride=(1, 1),
            padding=((0, 0),) * 2,
            dilation=(1, 1),
            algorithm="depthwise",
        )


def test_missing_numba_falls_back_to_numpy(monkeypatch):
    import sys

    monkeypatch.setattr(jit, "_kernels", None)
    monkeypatch.setattr(jit, "_failed", False)
    monkeypatch.setattr(jit, "BACKEND", "auto")
    import convscope.ops

    monkeypatch.setitem(sys.modules, "convscope.ops._jit_kernels", None)  # import fails
    monkeypatch.delattr(convscope.ops, "_jit_kernels", raising=False)
    assert jit.kernels() is None
    x, w = np.arange(18.0).reshape(1, 2, 9), np.ones((2, 1, 3))
    with cs.record_conv_algorithms() as used:
        y = F.conv1d(x, w, groups=2).numpy()
    assert used[0][0] == "depthwise"  # the NumPy path
    np.testing.assert_array_equal(y[0, 0], [3, 6, 9, 12, 15, 18, 21])
    monkeypatch.setattr(jit, "_failed", False)
    monkeypatch.setattr(jit, "BACKEND", "numba")
    with pytest.raises(ImportError, match="convscope\\[fast\\]"):
        jit.kernels()


def _record_parallel_launches(monkeypatch, serial_below: int) -> list:
    """The default thread policy (serial up to two threads below 2^20 elements, and below
    ``serial_below``) with numba's kernels; returns the list the parallel launches go to
    (they still run)."""
    monkeypatch.setattr(jit, "BACKEND", "auto")
    if jit.kernels() is None:
        pytest.skip("numba is not installed")
    monkeypatch.setattr(jit, "SERIAL_BELOW", serial_below)
    monkeypatch.setattr(jit, "SERIAL_UP_TO_THREADS", 2)
    monkeypatch.setattr(jit, "PARALLEL_FROM", 1 << 20)
    launched: list = []
    monkeypatch.setattr(jit, "_launch_parallel", lambda f, a: launched.append(f) or f(*a))
    return launched


def test_default_policy_runs_small_or_two_thread_calls_serially(monkeypatch):
    """By default a kernel runs serially (its twin, in this thread) for small arrays or with at
    most two threads (unless its arrays are very large), in parallel otherwise; both give the
    same values."""
    launched = _record_parallel_launches(monkeypatch, serial_below=1 << 16)
    rng = np.random.default_rng(0)
    out = rng.standard_normal((2, 4, 200, 200)).astype(np.float32)
    want = np.maximum(out, 0)
    small = out[:, :, :8, :8].copy()
    small_want = np.maximum(small, 0)
    with cs.num_threads(2):
        epilogue.apply(small, activation="relu")
        epilogue.apply(out.copy(), activation="relu")
    assert launched == []
    with cs.num_threads(3):
        big = out.copy()
        epilogue.apply(big, activation="relu")
    assert len(launched) == 1
    np.testing.assert_array_equal(big, want)
    monkeypatch.setattr(jit, "PARALLEL_FROM", out.size)  # 2 threads, but a very large call
    with cs.num_threads(2):
        large = out.copy()
        epilogue.apply(large, activation="relu")
    assert len(launched) == 2
    np.testing.assert_array_equal(large, want)
    # ... never on one thread, nor inside a share of a parallel step (a batch-parallel
    # share): there the serial twin runs in the share's own thread
    from convscope.ops import threads

    with cs.num_threads(1):
        epilogue.apply(out.copy(), activation="relu")
    with cs.num_threads(2):
        shares = [out.copy(), out.copy()]
        threads.parallel_map(lambda a: epilogue.apply(a, activation="relu"), shares)
    assert len(launched) == 2
    for share in shares:
        np.testing.assert_array_equal(share, want)
    np.testing.assert_array_equal(small, small_want)


def test_depthwise_with_many_taps_runs_in_parallel_below_the_element_threshold(monkeypatch):
    """A large-kernel depthwise call goes parallel on two threads once its multiply-adds
    (elements times taps) reach depthwise.PARALLEL_WORK, although its arrays are below
    jit.PARALLEL_FROM; a 3x3 call of the same size stays serial; values as torch's."""
    torch = pytest.importorskip("torch")
    from convscope.ops import depthwise

    launched = _record_parallel_launches(monkeypatch, serial_below=1 << 10)
    monkeypatch.setattr(depthwise, "PARALLEL_WORK", 1 << 20)
    x = np.random.default_rng(0).standard_normal((1, 8, 40, 40)).astype(np.float32)
    for k, parallel in ((13, True), (3, False)):  # 12800 outputs: x169 > 2^20, x9 below
        w = np.random.default_rng(k).standard_normal((8, 1, k, k)).astype(np.float32)
        launched.clear()
        with cs.num_threads(2):
            y = F.conv2d(cs.tensor(x), cs.tensor(w), padding=k // 2, groups=8).numpy()
        assert [f.py_func.__name__ for f in launched] == (["depthwise"] if parallel else [])
        want = torch.nn.functional.conv2d(
            torch.from_numpy(x), torch.from_numpy(w), padding=k // 2, groups=8
        ).numpy()
        np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
