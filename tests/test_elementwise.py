"""The compiled exact GELU against the error function in double precision, and its fallback."""

import math

import numpy as np
import pytest

from convscope.ops import elementwise, jit


def _reference(x: np.ndarray) -> np.ndarray:
    wide = x.astype(np.float64).reshape(-1)
    return np.array([v * 0.5 * math.erfc(-v / math.sqrt(2)) for v in wide]).reshape(x.shape)


def _gelu_errors(dtype, backend, monkeypatch):
    """The input, the float64 reference and ``gelu``'s absolute error on both sides of 0,
    far tails and tiny values included."""
    monkeypatch.setattr(jit, "BACKEND", backend)
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.uniform(-12, 12, 30000), rng.uniform(-1e-3, 1e-3, 1000)])
    x = x.astype(dtype).reshape(31, 1000)
    got = elementwise.gelu(x)
    assert got.dtype == dtype and got.shape == x.shape
    want = _reference(x)
    return x, want, np.abs(got - want)


@pytest.mark.parametrize(
    ("dtype", "backend"), [(np.float64, "auto"), (np.float64, "numpy"), (np.float32, "numpy")]
)
def test_gelu_is_relatively_exact_to_the_dtype(monkeypatch, dtype, backend):
    """float64 (libm's erfc) and the NumPy fallback keep relative accuracy everywhere, the far
    negative tail included."""
    _, want, error = _gelu_errors(dtype, backend, monkeypatch)
    visible = np.abs(want) > 1e-30
    tolerance = 1e-12 if dtype == np.float64 else 4e-7
    assert (error[visible] / np.abs(want)[visible]).max() <= tolerance


def test_compiled_float32_gelu_accuracy(monkeypatch):
    """The compiled float32 kernel (a rational erf): within 2.5e-7 |x| everywhere, 4e-7
    relative from -1 up; below, ``1 + erf`` cancels as in torch, whose own error we beat."""
    x, want, error = _gelu_errors(np.float32, "auto", monkeypatch)
    assert (error <= 2.5e-7 * np.abs(x) + 1e-45).all()
    upper = x >= -1
    assert (error[upper] / np.maximum(np.abs(want[upper]), 1e-38)).max() <= 4e-7
    import torch

    theirs = torch.nn.functional.gelu(torch.from_numpy(x)).numpy().astype(np.float64)
    assert error.max() <= np.abs(theirs - want).max()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gelu_non_finite_and_empty(dtype):
    x = np.array([np.nan, np.inf, -1.0, 0.0, -np.inf, -40.0, 40.0, 1e30], dtype)
    got = elementwise.gelu(x)
    assert np.isnan(got[0]) and got[1] == np.inf and got[3] == 0
    assert np.isnan(got[4])  # -inf * Phi(-inf) = -inf * 0, as x * erfc(-x / sqrt 2) / 2 gives
    assert got[5] == 0 and np.signbit(got[5])  # below the smallest subnormal: -0.0
    assert got[6] == 40 and got[7] == dtype(1e30)
    assert elementwise.gelu(np.zeros((0, 3), np.float64)).shape == (0, 3)


def test_gelu_reads_strided_input():
    x = np.linspace(-3, 3, 24, dtype=np.float32).reshape(4, 6).T
    got = elementwise.gelu(x)
    np.testing.assert_array_equal(got, elementwise.gelu(np.ascontiguousarray(x)))
    np.testing.assert_allclose(got, _reference(x), rtol=4e-7, atol=1e-6)


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


def _logistic_reference(x: np.ndarray, silu: bool) -> np.ndarray:
    wide = x.astype(np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        e = np.exp(-np.abs(wide))
        s = np.where(wide >= 0, 1.0, e) / (1.0 + e)
        return wide * s if silu else s


@pytest.mark.parametrize("silu", [False, True])
@pytest.mark.parametrize("backend", ["auto", "numpy"])
def test_logistic_is_exact_to_float32(monkeypatch, silu, backend):
    monkeypatch.setattr(jit, "BACKEND", backend)
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.standard_normal(40000) * 6, np.linspace(-87, 87, 4000)])
    x = x.astype(np.float32).reshape(-1, 1000)
    got = elementwise.logistic(x, silu=silu)
    want = _logistic_reference(x, silu)
    assert got.dtype == np.float32 and got.shape == x.shape
    normal = np.abs(want) > np.finfo(np.float32).tiny / np.finfo(np.float32).eps
    assert np.all(np.abs(got - want)[normal] <= 3e-7 * np.abs(want)[normal])


@pytest.mark.parametrize("silu", [False, True])
def test_logistic_far_tails_and_non_finite_values(reference, silu):
    """Subnormal results on the far negative side (where torch flushes some to 0), and
    torch's values for infinities and NaN."""
    torch = reference
    x = np.array([np.inf, -np.inf, np.nan, 0.0, -0.0, 88.5, -88.5, -95.0, -103.5, -120.0])
    x = x.astype(np.float32)
    got = elementwise.logistic(x, silu=silu)
    want = (torch.nn.functional.silu if silu else torch.sigmoid)(torch.from_numpy(x)).numpy()
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(got[:6], want[:6])
    exact = _logistic_reference(x, silu)
    assert np.all(np.abs(got[6:] - exact[6:]) <= 1e-43)  # within a few subnormal steps


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_logistic_in_place_and_float64(dtype):
    x = np.linspace(-30, 30, 70000, dtype=dtype).reshape(7, -1)
    want = elementwise.logistic(x, silu=True)
    same = x.copy()
    assert elementwise.logistic(same, silu=True, out=same) is same
    np.testing.assert_array_equal(same, want)
    if dtype == np.float64:
        np.testing.assert_allclose(want, _logistic_reference(x, True), rtol=1e-15, atol=0)


@pytest.mark.parametrize("activation", ["silu", "sigmoid"])
@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("shape", [(2, 5, 97, 91), (4, 300, 7, 7)])
def test_one_pass_epilogue_equals_affine_then_logistic(activation, residual, threads, shape):
    """The float32 SiLU/sigmoid epilogue (affine step and activation block by block in one
    compiled pass) gives the bits of the affine pass followed by ``logistic``, on planes
    spanning several blocks and ending in a partial one, and on short planes (7x7) whose
    blocks span many channels, serial and parallel."""
    import convscope as cs
    from convscope.ops import epilogue

    if jit.kernels() is None:
        pytest.skip("numba is not installed")
    rng = np.random.default_rng(2)
    out = (rng.standard_normal(shape) * 8).astype(np.float32)
    scale = rng.uniform(0.5, 2, shape[1]).astype(np.float32)
    shift = rng.standard_normal(shape[1]).astype(np.float32)
    extra = rng.standard_normal(out.shape).astype(np.float32) if residual else None
    want = out.copy()
    epilogue.apply(want, scale=scale, shift=shift, residual=extra)
    elementwise.logistic(want, silu=activation == "silu", out=want)
    got = out.copy()
    with cs.num_threads(threads):
        epilogue.apply(got, scale=scale, shift=shift, residual=extra, activation=activation)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("backend", ["auto", "numpy"])
def test_hardtanh_gradient_compares_in_the_input_dtype(backend, monkeypatch, reference):
    """Bounds that float32 cannot hold (0.1, 0.7) are rounded to it before comparing, as
    PyTorch does: at x = float32(0.1), just above 0.1, the gradient is 0."""
    torch = reference
    monkeypatch.setattr(jit, "BACKEND", backend)
    x = np.random.default_rng(4).uniform(0, 1, 70000).astype(np.float32)
    x[:4] = [0.1, 0.7, np.nextafter(np.float32(0.1), 1), np.nextafter(np.float32(0.7), 0)]
    g = np.ones_like(x)
    got = elementwise.pass_inside(g, x, 0.1, 0.7)
    tx = torch.tensor(x, requires_grad=True)
    torch.nn.functional.hardtanh(tx, 0.1, 0.7).backward(torch.tensor(g))
    np.testing.assert_array_equal(got, tx.grad.numpy())
    assert got[:4].tolist() == [0.0, 0.0, 1.0, 1.0]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(3, 384), (2, 1100, 96), (5000, 7), (300, 5000)])
def test_gelu_with_a_bias_is_gelu_of_the_sum(dtype, shape):
    """``gelu(x, bias=b)`` gives the bits of ``gelu(x + b)``, into a new array or in place,
    for rows narrower and wider than the compiled kernel's block and row counts that do not
    fill the last block."""
    rng = np.random.default_rng(7)
    x = (rng.standard_normal(shape) * 4).astype(dtype)
    bias = rng.standard_normal(shape[-1]).astype(dtype)
    want = elementwise.gelu(x + bias)
    np.testing.assert_array_equal(elementwise.gelu(x, bias=bias), want)
    same = x.copy()
    assert elementwise.gelu(same, out=same, bias=bias) is same
    np.testing.assert_array_equal(same, want)


def test_gelu_bias_must_fit_the_last_dimension():
    x = np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match=r"bias of shape \(2,\)"):
        elementwise.gelu(x, bias=np.zeros(2, np.float32))
    with pytest.raises(ValueError, match="bias"):
        elementwise.gelu(x, bias=np.zeros(3, np.float64))


@pytest.mark.parametrize("backend", ["auto", "numpy"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 96, 56, 56), (2, 40, 7, 9), (3, 5, 1, 1)])
def test_scale_add_from_channels_last_is_the_two_operations(monkeypatch, backend, dtype, shape):
    """``scale * y + x`` with ``y`` a channels-last array seen as NCHW: the bits of NumPy's
    two operations, for a per-channel and a single scale; a ``y`` that is not channels-last
    takes the NumPy path with the same result."""
    monkeypatch.setattr(jit, "BACKEND", backend)
    rng = np.random.default_rng(3)
    n, c = shape[:2]
    y = np.moveaxis(rng.standard_normal((n, *shape[2:], c)).astype(dtype), -1, 1)
    x = rng.standard_normal(shape).astype(dtype)
    for scale in (rng.standard_normal((c, 1, 1)), np.full((1, 1, 1), 0.37)):
        scale = scale.astype(dtype)
        want = np.add(np.multiply(scale, y), x)
        got = elementwise.scale_add_from_channels_last(y, scale, x)
        assert got.dtype == dtype and got.flags.c_contiguous
        np.testing.assert_array_equal(got, want)
        plain = np.ascontiguousarray(y)  # NCHW-contiguous: not channels-last
        np.testing.assert_array_equal(
            elementwise.scale_add_from_channels_last(plain, scale, x), want
        )


def test_gelu_refuses_an_out_it_could_not_fill():
    x = np.zeros((4, 6), np.float32)
    with pytest.raises(ValueError, match="C-contiguous"):
        elementwise.gelu(x, out=np.zeros((6, 4), np.float32).T)
    with pytest.raises(ValueError, match="shape"):
        elementwise.gelu(x, out=np.zeros((4, 5), np.float32))
