"""The FFT algorithm of the convolution primitive against PyTorch (and the direct reference).

Random 1-3-d configurations with groups (depthwise and channel multipliers), stride, kernel
dilation, per-side and negative padding and input dilation, in float64 and float32, on both
FFT backends (numpy.fft and scipy.fft), under a tiny workspace budget, and through autograd.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from test_conv_algorithms import _arrays, _ours, _scale  # shared differential helpers

import convscope as cs
import convscope.nn.functional as F
from convscope.ops import fft, tiling
from convscope.ops.conv import conv_general

torch = pytest.importorskip("torch")
TF = torch.nn.functional

SETTINGS = settings(
    max_examples=75,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
TOLERANCE = {np.float64: 1e-10, np.float32: 1e-4}


@pytest.fixture(params=["numpy", "scipy"])
def backend(request, monkeypatch):
    if request.param == "scipy":
        pytest.importorskip("scipy.fft")
    monkeypatch.setattr(fft, "BACKEND", request.param)
    return request.param


@st.composite
def configs(draw, input_dilation=False):
    nd = draw(st.integers(1, 3))
    groups = draw(st.integers(1, 3))
    cg = draw(st.sampled_from([1, 1, 2, 3]))  # 1: depthwise (with a channel multiplier)
    og = draw(st.integers(1, 2))
    kmax, smax = (3, 6) if nd == 3 else (5, 9)
    return SimpleNamespace(
        nd=nd,
        batch=draw(st.integers(1, 2)),
        groups=groups,
        cin=groups * cg,
        cout=groups * og,
        kernel=tuple(draw(st.integers(1, kmax)) for _ in range(nd)),
        size=tuple(draw(st.integers(3, smax)) for _ in range(nd)),
        stride=tuple(draw(st.integers(1, 3)) for _ in range(nd)),
        dilation=tuple(draw(st.integers(1, 2)) for _ in range(nd)),
        padding=tuple((draw(st.integers(-1, 3)), draw(st.integers(-1, 3))) for _ in range(nd)),
        input_dilation=(
            tuple(draw(st.integers(1, 3)) for _ in range(nd)) if input_dilation else None
        ),
    )


def _torch(c, x, w):
    """torch's conv on the explicitly (per-side, possibly negatively) padded input."""
    pads = [v for pair in reversed(c.padding) for v in pair]
    conv = getattr(TF, f"conv{c.nd}d")
    tx = TF.pad(torch.from_numpy(x), pads)
    return conv(tx, torch.from_numpy(w), stride=c.stride, dilation=c.dilation, groups=c.groups)


def _check_against_torch(c, dtype, **kwargs):
    x, w = _arrays(c, dtype)
    try:
        want = _torch(c, x, w).numpy()
    except RuntimeError:
        assume(False)  # an output with no positions: not a valid configuration
    got = _ours(c, x, w, algorithm="fft", **kwargs)
    assert got.dtype == dtype and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=TOLERANCE[dtype] * _scale(c, x, w))
    return got


@SETTINGS
@given(c=configs())
def test_float64_matches_torch(c, backend):
    _check_against_torch(c, np.float64)


@settings(SETTINGS, max_examples=40)
@given(c=configs())
def test_float32_matches_torch(c, backend):
    _check_against_torch(c, np.float32)


@settings(SETTINGS, max_examples=40)
@given(c=configs(input_dilation=True))
def test_input_dilation_matches_direct(c):
    x, w = _arrays(c, np.float64)
    try:
        want = _ours(c, x, w, algorithm="direct")
    except RuntimeError:
        assume(False)
    assume(want.size > 0)
    got = _ours(c, x, w, algorithm="fft")
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-10 * _scale(c, x, w))


@settings(SETTINGS, max_examples=40)
@given(c=configs())
def test_tiny_budget_gives_the_same_result(c):
    assume(c.nd < 3)  # the whole kernel spectrum must fit, which 64 KiB does not for all 3-d
    x, w = _arrays(c, np.float64)
    try:
        whole = _ours(c, x, w, algorithm="fft")
    except RuntimeError:
        assume(False)
    chunked = _ours(c, x, w, algorithm="fft", workspace_bytes=64 << 10)
    np.testing.assert_allclose(chunked, whole, rtol=0, atol=1e-12 * _scale(c, x, w))


def test_tiny_budget_really_tiles_and_matches_torch(monkeypatch):
    plans = []
    original = tiling.plan_tiles

    def spy(batch, output_size, cost, budget):
        plan = original(batch, output_size, cost, budget)
        plans.append((plan, cost(*plan)))
        return plan

    monkeypatch.setattr(tiling, "plan_tiles", spy)
    c = SimpleNamespace(
        nd=2,
        batch=3,
        groups=2,
        cin=6,
        cout=4,
        kernel=(7, 5),
        size=(40, 33),
        stride=(1, 2),
        dilation=(2, 1),
        padding=((3, 4), (-1, 2)),
        input_dilation=None,
    )
    budget = 64 << 10
    _check_against_torch(c, np.float64, workspace_bytes=budget)
    (nb, box), cost = plans[0]  # the fft call (the later ones measure the scale)
    assert nb * box[0] * box[1] < 3 * 35 * 15 and cost <= budget  # split into several tiles


@pytest.mark.parametrize(
    ("shape", "kernel", "padding", "stride"),
    [
        ((2, 8, 23, 19), (8, 1, 9, 9), 4, 1),  # depthwise
        ((1, 4, 30, 30), (8, 1, 11, 7), 5, 2),  # depthwise, multiplier 2, strided
        ((2, 6, 17, 16), (6, 3, 5, 5), 2, 1),  # grouped (GEMM path)
    ],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_depthwise_and_grouped_large_kernels(shape, kernel, padding, stride, dtype, backend):
    groups = shape[1] // kernel[1]
    c = SimpleNamespace(
        nd=2,
        batch=shape[0],
        groups=groups,
        cin=shape[1],
        cout=kernel[0],
        kernel=kernel[2:],
        size=shape[2:],
        stride=(stride, stride),
        dilation=(1, 1),
        padding=((padding, padding),) * 2,
        input_dilation=None,
    )
    _check_against_torch(c, dtype)


def test_elementwise_and_gemm_contractions_agree(monkeypatch):
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((2, 4, 12, 11)), rng.standard_normal((6, 2, 4, 3))
    args = {"stride": (2, 1), "padding": ((1, 2), (0, 1)), "dilation": (1, 2), "groups": 2}
    results = []
    for threshold in (0, 1000):
        monkeypatch.setattr(fft, "ELEMENTWISE_MAX_CHANNELS", threshold)
        results.append(conv_general(x, w, algorithm="fft", **args))
    want = conv_general(x, w, algorithm="direct", **args)
    for got in results:
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12 * np.abs(want).max())


def test_numpy_fallback_when_scipy_is_missing(monkeypatch):
    monkeypatch.setattr(fft, "_scipy_fft", lambda: None)
    rng = np.random.default_rng(2)
    x, w = rng.standard_normal((1, 2, 9)), rng.standard_normal((2, 2, 4))
    args = {"stride": (1,), "padding": ((2, 1),), "dilation": (1,)}
    monkeypatch.setattr(fft, "BACKEND", "auto")
    got = conv_general(x, w, algorithm="fft", **args)
    want = conv_general(x, w, algorithm="direct", **args)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    monkeypatch.setattr(fft, "BACKEND", "scipy")
    with pytest.raises(ImportError, match="scipy"):
        conv_general(x, w, algorithm="fft", **args)
    monkeypatch.setattr(fft, "BACKEND", "cufft")
    with pytest.raises(ValueError, match="unknown FFT backend"):
        conv_general(x, w, algorithm="fft", **args)


def test_float16_is_computed_in_float32():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 3, 10, 10)).astype(np.float16)
    w = rng.standard_normal((3, 1, 5, 5)).astype(np.float16)
    args = {"stride": (1, 1), "padding": ((2, 2), (2, 2)), "dilation": (1, 1), "groups": 3}
    got = conv_general(x, w, algorithm="fft", **args)
    assert got.dtype == np.float16
    want = TF.conv2d(
        torch.from_numpy(x.astype(np.float32)),
        torch.from_numpy(w.astype(np.float32)),
        padding=2,
        groups=3,
    ).numpy()
    np.testing.assert_allclose(got.astype(np.float32), want, rtol=2e-3, atol=2e-2)


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint8, np.bool_])
def test_integer_and_bool_inputs_are_refused(dtype):
    x = np.ones((1, 1, 5, 5), dtype)
    w = np.ones((1, 1, 3, 3), dtype)
    with pytest.raises(ValueError, match=r"'fft' cannot compute this call: fft is not exact"):
        conv_general(
            x, w, stride=(1, 1), padding=((0, 0), (0, 0)), dilation=(1, 1), algorithm="fft"
        )


@pytest.mark.parametrize(
    ("stride", "padding", "dilation", "groups"),
    [(1, 3, 1, 1), (2, 2, 1, 2), (1, "same", 2, 4), (3, 1, 1, 4)],
)
def test_gradients_through_conv2d_match_torch(stride, padding, dilation, groups):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 4, 13, 11))
    w = rng.standard_normal((4, 4 // groups, 7, 5))
    kwargs = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}
    tx, tw = (torch.from_numpy(a.copy()).requires_grad_() for a in (x, w))
    y_ref = TF.conv2d(tx, tw, **kwargs)
    upstream = rng.standard_normal(tuple(y_ref.shape))
    y_ref.backward(torch.from_numpy(upstream))
    ox, ow = cs.tensor(x, requires_grad=True), cs.tensor(w, requires_grad=True)
    with cs.conv_algorithm("fft"), cs.record_conv_algorithms() as used:
        y = F.conv2d(ox, ow, **kwargs)
        y.backward(upstream)
    scale = np.abs(x).max() * np.abs(w).max() * w[0].size
    np.testing.assert_allclose(y.numpy(), y_ref.detach().numpy(), rtol=0, atol=1e-10 * scale)
    # forward, input gradient (per phase when strided) and weight gradient all ran as "fft"
    assert len(used) >= 3 and {name for name, _ in used} == {"fft"}
    for got, want in ((ox.grad.numpy(), tx.grad.numpy()), (ow.grad.numpy(), tw.grad.numpy())):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-9 * max(np.abs(want).max(), 1))


def test_good_size_is_the_smallest_smooth_length():
    def smooth(m):
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        return m == 1

    for n in range(1, 600):
        g = fft.good_size(n)
        assert g >= n and smooth(g)
        assert not any(smooth(m) for m in range(n, g))
