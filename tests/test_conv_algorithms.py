"""The depthwise and Winograd algorithms of the convolution primitive against PyTorch.

* depthwise (``groups == in_channels``, any channel multiplier): random 1-3-d configurations
  with stride, kernel dilation, per-side and negative padding, in float64, float32 and int64
  (exact); input dilation against the direct reference;
* Winograd F(2x2, 3x3) (3x3, stride 1, dilation 1 over the last two dimensions; 2-D, and
  3-D with any kernel, stride, dilation and padding along time): random sizes (odd and
  even), groups, per-side and negative padding, float64 and float32, plus float32 accuracy
  on realistic magnitudes;
* both: refusals, tiny workspace budgets (several tiles, same result) and gradients through
  ``convscope.nn.functional.conv2d`` with the algorithm forced wherever it applies.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import convscope as cs
import convscope.nn.functional as F
from convscope.ops import conv as conv_ops
from convscope.ops import tiling
from convscope.ops.conv import conv_general

torch = pytest.importorskip("torch")
TF = torch.nn.functional

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
TOLERANCE = {np.float64: 1e-12, np.float32: 1e-5}


@pytest.fixture(autouse=True)
def numpy_kernels(monkeypatch):
    """This module tests the NumPy paths; tests/test_jit.py covers the compiled kernel."""
    from convscope.ops import jit

    monkeypatch.setattr(jit, "BACKEND", "numpy")


@st.composite
def depthwise_configs(draw, input_dilation=False):
    nd = draw(st.integers(1, 3))
    cin = draw(st.integers(1, 3))
    kmax, smax = (3, 6) if nd == 3 else (4, 10)
    return SimpleNamespace(
        nd=nd,
        batch=draw(st.integers(1, 3)),
        groups=cin,
        cin=cin,
        cout=cin * draw(st.integers(1, 3)),  # channel multiplier
        kernel=tuple(draw(st.integers(1, kmax)) for _ in range(nd)),
        size=tuple(draw(st.integers(1, smax)) for _ in range(nd)),
        stride=tuple(draw(st.integers(1, 3)) for _ in range(nd)),
        dilation=tuple(draw(st.integers(1, 2)) for _ in range(nd)),
        padding=tuple((draw(st.integers(-1, 3)), draw(st.integers(-1, 3))) for _ in range(nd)),
        input_dilation=(
            tuple(draw(st.integers(1, 3)) for _ in range(nd)) if input_dilation else None
        ),
    )


@st.composite
def winograd_configs(draw):
    """2-D 3x3 convolutions, and 3-D ones 3x3 over the last two dimensions whose first
    dimension has any kernel size, stride, dilation and padding."""
    groups = draw(st.integers(1, 2))
    lead = draw(st.integers(0, 1))  # leading dimensions before the 3x3 ones
    return SimpleNamespace(
        nd=2 + lead,
        batch=draw(st.integers(1, 3)),
        groups=groups,
        cin=groups * draw(st.integers(1, 3)),
        cout=groups * draw(st.integers(1, 3)),
        kernel=(*(draw(st.integers(1, 3)) for _ in range(lead)), 3, 3),
        size=tuple(draw(st.integers(1, 11 - 4 * lead)) for _ in range(2 + lead)),
        stride=(*(draw(st.integers(1, 2)) for _ in range(lead)), 1, 1),
        dilation=(*(draw(st.integers(1, 2)) for _ in range(lead)), 1, 1),
        padding=tuple(
            (draw(st.integers(-1, 3)), draw(st.integers(-1, 3))) for _ in range(2 + lead)
        ),
        input_dilation=None,
    )


def _arrays(c, dtype, seed=0):
    rng = np.random.default_rng(seed)
    if np.issubdtype(dtype, np.integer):
        x = rng.integers(-9, 10, (c.batch, c.cin, *c.size)).astype(dtype)
        w = rng.integers(-9, 10, (c.cout, c.cin // c.groups, *c.kernel)).astype(dtype)
        return x, w
    x = rng.standard_normal((c.batch, c.cin, *c.size)).astype(dtype)
    w = rng.standard_normal((c.cout, c.cin // c.groups, *c.kernel)).astype(dtype)
    return x, w


def _ours(c, x, w, **kwargs):
    return conv_general(
        x,
        w,
        stride=c.stride,
        padding=c.padding,
        dilation=c.dilation,
        input_dilation=c.input_dilation,
        groups=c.groups,
        **kwargs,
    )


def _torch(c, x, w):
    """torch's conv on the explicitly (per-side, possibly negatively) padded input.

    Integers are convolved in float64 (exact for these magnitudes) and converted back.
    """
    pads = [v for pair in reversed(c.padding) for v in pair]
    conv = getattr(TF, f"conv{c.nd}d")
    cast = np.float64 if np.issubdtype(x.dtype, np.integer) else x.dtype
    tx = TF.pad(torch.from_numpy(x.astype(cast)), pads)
    y = conv(
        tx, torch.from_numpy(w.astype(cast)), stride=c.stride, dilation=c.dilation, groups=c.groups
    ).numpy()
    return y.astype(x.dtype)


def _scale(c, x, w):
    """The magnitude the error is measured against: max of |x| conv |w| (at least |x||w|)."""
    floor = float(np.abs(x).max(initial=0) * np.abs(w).max(initial=0))
    absolute = _ours(c, np.abs(x).astype(np.float64), np.abs(w).astype(np.float64))
    return max(float(absolute.max()) if absolute.size else 0.0, floor, 1e-30)


def _check_against_torch(c, dtype, algorithm, **kwargs):
    x, w = _arrays(c, dtype)
    try:
        want = _torch(c, x, w)
    except RuntimeError:
        assume(False)  # an output with no positions: not a valid configuration
    got = _ours(c, x, w, algorithm=algorithm, **kwargs)
    assert got.dtype == dtype and got.shape == want.shape
    if np.issubdtype(dtype, np.integer):
        np.testing.assert_array_equal(got, want)
    else:
        np.testing.assert_allclose(got, want, rtol=0, atol=TOLERANCE[dtype] * _scale(c, x, w))
    return got


# ---------------------------------------------------------------------------------- depthwise


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int64])
@SETTINGS
@given(c=depthwise_configs())
def test_depthwise_matches_torch(c, dtype):
    _check_against_torch(c, dtype, "depthwise")


@SETTINGS
@given(c=depthwise_configs(input_dilation=True), exact=st.booleans())
def test_depthwise_input_dilation_matches_direct(c, exact):
    x, w = _arrays(c, np.int64 if exact else np.float64)
    try:
        want = _ours(c, x, w, algorithm="direct")
    except RuntimeError:
        assume(False)
    assume(want.size > 0)
    got = _ours(c, x, w, algorithm="depthwise")
    if exact:
        np.testing.assert_array_equal(got, want)
    else:
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12 * _scale(c, x, w))


def test_depthwise_float16_is_computed_in_float32():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 10, 10)).astype(np.float16)
    w = rng.standard_normal((6, 1, 3, 3)).astype(np.float16)
    args = {"stride": (1, 1), "padding": ((1, 1), (1, 1)), "dilation": (1, 1), "groups": 3}
    got = conv_general(x, w, algorithm="depthwise", **args)
    assert got.dtype == np.float16
    want = TF.conv2d(
        torch.from_numpy(x.astype(np.float32)),
        torch.from_numpy(w.astype(np.float32)),
        padding=1,
        groups=3,
    ).numpy()
    np.testing.assert_allclose(got.astype(np.float32), want, rtol=2e-3, atol=2e-2)


@pytest.mark.parametrize(("cin", "groups"), [(2, 1), (4, 2), (6, 3)])
def test_depthwise_refuses_other_groupings(cin, groups):
    x = np.ones((1, cin, 5, 5))
    w = np.ones((6, cin // groups, 3, 3))
    args = {"stride": (1, 1), "padding": ((0, 0), (0, 0)), "dilation": (1, 1)}
    with pytest.raises(ValueError, match="groups == in_channels"):
        conv_general(x, w, groups=groups, algorithm="depthwise", **args)


@pytest.mark.parametrize("per_channel", [True, False])
def test_depthwise_paths_agree(per_channel, monkeypatch):
    """Channel-by-channel runs across samples, and broadcast blocks of channels."""
    from convscope.ops import depthwise

    monkeypatch.setattr(depthwise, "LONG_RUN", 1 if per_channel else 1 << 40)
    c = SimpleNamespace(
        nd=2,
        batch=3,
        groups=5,
        cin=5,
        cout=10,
        kernel=(3, 4),
        size=(13, 11),
        stride=(2, 1),
        dilation=(1, 2),
        padding=((1, 2), (-1, 3)),
        input_dilation=None,
    )
    _check_against_torch(c, np.float64, "depthwise")
    _check_against_torch(c, np.int64, "depthwise")


def test_depthwise_threads_give_the_same_result(monkeypatch):
    from convscope.ops import depthwise

    rng = np.random.default_rng(4)
    x, w = rng.standard_normal((2, 8, 20, 20)), rng.standard_normal((16, 1, 3, 3))
    args = {"stride": (1, 1), "padding": ((1, 1), (1, 1)), "dilation": (1, 1), "groups": 8}
    single = conv_general(x, w, algorithm="depthwise", **args)
    monkeypatch.setattr(depthwise, "THREADS", 2)
    monkeypatch.setattr(depthwise, "MIN_PARALLEL", 0)
    monkeypatch.setattr(depthwise, "CACHE_BYTES", 1)  # one channel per block: many blocks
    np.testing.assert_array_equal(conv_general(x, w, algorithm="depthwise", **args), single)


# ----------------------------------------------------------------------------------- winograd


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@SETTINGS
@given(c=winograd_configs())
def test_winograd_matches_torch(c, dtype):
    _check_against_torch(c, dtype, "winograd")


@pytest.fixture(params=[2, 4], ids=["F2x2", "F4x4"])
def compiled_tile_size(request, monkeypatch):
    """The compiled transforms (numba installed) with output tiles of 2x2, or 4x4 for every
    call (see ``winograd.F4_FROM_TILES``)."""
    from convscope.ops import jit, winograd

    monkeypatch.setattr(jit, "BACKEND", "auto")
    if jit.kernels() is None:
        pytest.skip("numba is not installed")
    monkeypatch.setattr(winograd, "F4_FROM_TILES", 1 if request.param == 4 else 1 << 62)
    return request.param


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@SETTINGS
@given(c=winograd_configs())
def test_compiled_winograd_matches_torch(c, dtype, compiled_tile_size):
    """The same configurations through the compiled transforms, F(2x2, 3x3) and F(4x4, 3x3)
    (float32 within 1e-5 of the magnitude scale, see the accuracy test below)."""
    _check_against_torch(c, dtype, "winograd")


@pytest.mark.parametrize(("shape", "out_channels"), [((2, 64, 28, 28), 64), ((1, 128, 30, 27), 96)])
def test_compiled_winograd_4x4_float32_accuracy(shape, out_channels, compiled_tile_size):
    """F(4x4, 3x3)'s transforms have larger entries than F(2x2, 3x3)'s (B^T up to 5, G down
    to 1/24): on activations ~ N(0, 1) with He-initialised weights its float32 error
    relative to the magnitude scale max(|x| conv |w|) was 1.4e-6 (F(2x2): 1e-7), within the
    bound asserted, 5e-6, and far within float32's contract of 1e-4."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal(shape).astype(np.float32)
    w = rng.standard_normal((out_channels, shape[1], 3, 3)) * np.sqrt(2 / (9 * shape[1]))
    w = w.astype(np.float32)
    args = {"stride": (1, 1), "padding": ((1, 1), (1, 1)), "dilation": (1, 1)}
    want = conv_general(x.astype(np.float64), w.astype(np.float64), algorithm="unfold", **args)
    got = conv_general(x, w, algorithm="winograd", **args)
    c = SimpleNamespace(
        groups=1, stride=(1, 1), dilation=(1, 1), padding=args["padding"], input_dilation=None
    )
    error = np.abs(got - want).max() / _scale(c, x, w)
    assert error < (5e-6 if compiled_tile_size == 4 else 1e-6)


@pytest.mark.parametrize(("shape", "out_channels"), [((2, 64, 28, 28), 64), ((2, 128, 14, 13), 96)])
def test_winograd_float32_accuracy_on_realistic_magnitudes(shape, out_channels):
    """Activations ~ N(0, 1), He-initialised weights, compared with a float64 reference.

    Error relative to the magnitude scale max(|x| conv |w|): observed max 9.6e-08 and
    8.4e-08, the same as unfold in float32 (1.1e-07, 7.8e-08); the bound asserted is 1e-6.
    """
    rng = np.random.default_rng(5)
    x = rng.standard_normal(shape).astype(np.float32)
    w = rng.standard_normal((out_channels, shape[1], 3, 3)) * np.sqrt(2 / (9 * shape[1]))
    w = w.astype(np.float32)
    c = SimpleNamespace(
        nd=2,
        batch=shape[0],
        groups=1,
        cin=shape[1],
        cout=out_channels,
        kernel=(3, 3),
        size=shape[2:],
        stride=(1, 1),
        dilation=(1, 1),
        padding=((1, 1), (1, 1)),
        input_dilation=None,
    )
    want = _ours(c, x.astype(np.float64), w.astype(np.float64), algorithm="unfold")
    got = _ours(c, x, w, algorithm="winograd")
    error = np.abs(got - want).max() / _scale(c, x, w)
    assert error < 1e-6


@pytest.mark.parametrize(
    ("shape", "weight", "stride", "dilation", "input_dilation", "dtype"),
    [
        ((1, 2, 8, 8), (2, 2, 5, 5), (1, 1), (1, 1), None, np.float64),  # kernel 5x5
        ((1, 2, 8, 8), (2, 2, 3, 2), (1, 1), (1, 1), None, np.float64),  # kernel 3x2
        ((1, 2, 8, 8), (2, 2, 3, 3), (2, 1), (1, 1), None, np.float64),  # stride
        ((1, 2, 8, 8), (2, 2, 3, 3), (1, 1), (1, 2), None, np.float64),  # dilation
        ((1, 2, 8, 8), (2, 2, 3, 3), (2, 2), (1, 1), (2, 2), np.float64),  # input dilation
        ((1, 2, 8, 8), (2, 2, 3, 3), (1, 1), (1, 1), (2, 1), np.float64),  # phases: 2x3, 1x3
        ((1, 2, 8), (2, 2, 3), (1,), (1,), None, np.float64),  # 1-d
        ((1, 2, 5, 5, 5), (2, 2, 3, 3, 3), (1, 1, 2), (1, 1, 1), None, np.float64),  # 3-d stride
        ((1, 2, 5, 5, 5), (2, 2, 3, 3, 3), (1, 1, 1), (1, 2, 1), None, np.float64),  # dilation
        ((1, 2, 5, 5, 5), (2, 2, 3, 3, 3), (1, 1, 1), (1, 1, 1), (2, 1, 1), np.float64),  # input
        ((1, 2, 8, 8), (2, 2, 3, 3), (1, 1), (1, 1), None, np.int64),  # not exact
    ],
)
def test_winograd_refusals(shape, weight, stride, dilation, input_dilation, dtype):
    x, w = np.ones(shape, dtype), np.ones(weight, dtype)
    with pytest.raises(ValueError, match=r"algorithm 'winograd' cannot compute this call"):
        conv_general(
            x,
            w,
            stride=stride,
            padding=[(1, 1)] * len(stride),
            dilation=dilation,
            input_dilation=input_dilation,
            algorithm="winograd",
        )


def test_winograd_float16_is_computed_in_float32():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((1, 4, 9, 10)).astype(np.float16)
    w = rng.standard_normal((3, 4, 3, 3)).astype(np.float16)
    args = {"stride": (1, 1), "padding": ((1, 1), (1, 1)), "dilation": (1, 1)}
    got = conv_general(x, w, algorithm="winograd", **args)
    assert got.dtype == np.float16
    want = TF.conv2d(
        torch.from_numpy(x.astype(np.float32)), torch.from_numpy(w.astype(np.float32)), padding=1
    ).numpy()
    np.testing.assert_allclose(got.astype(np.float32), want, rtol=2e-3, atol=3e-2)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    ("shape", "out_channels", "groups", "lead", "padding", "workspace"),
    [
        ((2, 6, 9, 11), 4, 1, (), ((1, 1), (1, 1)), None),
        ((3, 4, 8, 7), 6, 2, (), ((0, 2), (2, 0)), None),
        ((2, 6, 13, 10), 5, 1, (), ((1, 1), (1, 1)), 20000),  # a tiny workspace: many tiles
        # 3-D: the taps along time stacked as one strided matrix...
        ((2, 4, 5, 9, 8), 6, 1, (3, 1, 1), ((1, 1), (1, 1), (1, 1)), None),
        ((2, 3, 9, 7, 10), 5, 1, (3, 2, 1), ((0, 2), (1, 0), (1, 1)), 30000),  # strided, tiled
        # ... or gathered: two groups, a dilated time kernel
        ((1, 4, 7, 8, 9), 4, 2, (2, 1, 2), ((1, 1), (1, 1), (2, 0)), None),
    ],
)
def test_winograd_compiled_transforms_agree_with_numpy_passes(
    shape, out_channels, groups, lead, padding, workspace, dtype, compiled_tile_size, monkeypatch
):
    """The compiled transforms (F(2x2, 3x3) with no parity planes, or F(4x4, 3x3); output
    written in place) give the NumPy passes' values (up to rounding) and torch's, odd boxes
    and tiles included, and a strided ``out`` takes the NumPy passes.  ``lead``: a 3-D
    kernel's (time size, stride, dilation)."""
    from convscope.ops import jit

    rng = np.random.default_rng(11)
    x = rng.standard_normal(shape).astype(dtype)
    kernel, stride, dilation = ((size,) for size in lead) if lead else ((), (), ())
    w = rng.standard_normal((out_channels, shape[1] // groups, *kernel, 3, 3)).astype(dtype)
    args = {
        "stride": (*stride, 1, 1),
        "padding": padding,
        "dilation": (*dilation, 1, 1),
        "groups": groups,
    }
    compiled = conv_general(x, w, algorithm="winograd", workspace_bytes=workspace, **args)
    strided = np.empty(compiled.shape[::-1], dtype).T  # not C-contiguous: the NumPy passes
    conv_general(x, w, algorithm="winograd", workspace_bytes=workspace, out=strided, **args)
    monkeypatch.setattr(jit, "BACKEND", "numpy")
    passes = conv_general(x, w, algorithm="winograd", workspace_bytes=workspace, **args)
    padded = np.pad(x, ((0, 0), (0, 0), *padding))
    conv = getattr(TF, f"conv{x.ndim - 2}d")

    def torch_conv(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        options = {"stride": args["stride"], "dilation": args["dilation"], "groups": groups}
        return conv(torch.from_numpy(a), torch.from_numpy(b), **options).numpy()

    want = torch_conv(padded, w)
    scale = torch_conv(np.abs(padded).astype(np.float64), np.abs(w).astype(np.float64)).max()
    tolerance = {"rtol": 0, "atol": TOLERANCE[dtype] * scale}
    np.testing.assert_allclose(compiled, passes, **tolerance)
    np.testing.assert_allclose(strided, passes, **tolerance)
    np.testing.assert_allclose(compiled, want, **tolerance)


def test_winograd_3d_stacks_frames_without_copying_and_gathers_otherwise(monkeypatch):
    """The GEMMs of a 3-D layer read ``V`` in place when the frames they need are evenly
    spaced (one group, no time dilation), and from a gathered buffer otherwise."""
    from convscope.ops import winograd

    views = []
    original = winograd._stacked

    def spy(v, frames, groups, scratch):
        stacked = original(v, frames, groups, scratch)
        views.append(np.shares_memory(stacked, v))
        return stacked

    monkeypatch.setattr(winograd, "_stacked", spy)
    rng = np.random.default_rng(12)
    x = rng.standard_normal((1, 4, 6, 7, 7))
    for w_shape, dilation, groups in [((4, 4, 3, 3, 3), 1, 1), ((4, 2, 3, 3, 3), 1, 2)]:
        for time_dilation in (dilation, 2):
            views.clear()
            args = {
                "stride": (1, 1, 1),
                "padding": ((1, 1),) * 3,
                "dilation": (time_dilation, 1, 1),
                "groups": groups,
            }
            w = rng.standard_normal(w_shape)
            got = conv_general(x, w, algorithm="winograd", **args)
            want = conv_general(x, w, algorithm="direct", **args)
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
            assert views and all(v == (groups == 1 and time_dilation == 1) for v in views)


# --------------------------------------------------------------------------- both: budget, grad

DEPTHWISE_CASE = SimpleNamespace(
    nd=2,
    batch=3,
    groups=4,
    cin=4,
    cout=8,
    kernel=(3, 5),
    size=(30, 27),
    stride=(2, 1),
    dilation=(1, 2),
    padding=((1, 2), (-1, 4)),
    input_dilation=None,
)
WINOGRAD_CASE = SimpleNamespace(
    nd=2,
    batch=3,
    groups=2,
    cin=6,
    cout=4,
    kernel=(3, 3),
    size=(29, 24),
    stride=(1, 1),
    dilation=(1, 1),
    padding=((2, 1), (-1, 1)),
    input_dilation=None,
)


@pytest.mark.parametrize(
    ("algorithm", "c"), [("depthwise", DEPTHWISE_CASE), ("winograd", WINOGRAD_CASE)]
)
def test_tiny_budget_really_tiles_and_gives_the_same_result(algorithm, c, monkeypatch):
    budget = 16 << 10
    x, w = _arrays(c, np.float64)
    whole = _ours(c, x, w, algorithm=algorithm)
    plans = []
    original = tiling.plan_tiles

    def spy(batch, output_size, cost, limit):
        plan = original(batch, output_size, cost, limit)
        plans.append((plan, cost(*plan), limit))
        return plan

    monkeypatch.setattr(tiling, "plan_tiles", spy)
    chunked = _check_against_torch(c, np.float64, algorithm, workspace_bytes=budget)
    np.testing.assert_allclose(chunked, whole, rtol=0, atol=1e-12 * _scale(c, x, w))
    (nb, box), cost, limit = plans[0]
    out_size = whole.shape[2:]
    assert nb * box[0] * box[1] < c.batch * out_size[0] * out_size[1]  # several tiles
    assert cost <= limit <= budget


def _forcing(algorithm, used):
    """A ``select_algorithm`` that picks ``algorithm`` wherever it applies, else 'direct'."""

    def select(geom, groups, dtype, out_channels=None, workers=None, precise=None):
        if algorithm == "depthwise":
            fits = groups == geom.input_shape[1]
        else:
            ones = (1, 1)
            fits = (
                geom.kernel_size[-2:] == (3, 3) and geom.stride[-2:] == geom.dilation[-2:] == ones
            )
            fits = fits and len(geom.kernel_size) >= 2 and max(geom.input_dilation) == 1
        used.append(fits)
        return algorithm if fits else "direct"

    return select


@pytest.mark.parametrize(
    ("algorithm", "groups", "cin", "cout", "kernel", "stride", "dilation", "padding"),
    [
        ("depthwise", 3, 3, 3, (3, 3), 1, 1, 1),
        ("depthwise", 2, 2, 6, (3, 5), 2, 1, (2, 1)),
        ("depthwise", 4, 4, 4, (7, 7), 1, 2, 3),
        ("winograd", 1, 3, 4, (3, 3), 1, 1, 1),
        ("winograd", 2, 4, 6, (3, 3), 1, 1, (0, 2)),
    ],
)
def test_gradients_through_functional_conv2d(
    algorithm, groups, cin, cout, kernel, stride, dilation, padding, monkeypatch
):
    used = []
    monkeypatch.setattr(conv_ops, "select_algorithm", _forcing(algorithm, used))
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, cin, 11, 10))
    w = rng.standard_normal((cout, cin // groups, *kernel))
    b = rng.standard_normal(cout)
    ours = [cs.tensor(a, requires_grad=True) for a in (x, w, b)]
    theirs = [torch.from_numpy(a.copy()).requires_grad_() for a in (x, w, b)]
    args = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}
    y = F.conv2d(*ours, **args)
    y_ref = TF.conv2d(*theirs, **args)
    upstream = rng.standard_normal(tuple(y_ref.shape))
    y.backward(upstream)
    y_ref.backward(torch.from_numpy(upstream))
    np.testing.assert_allclose(y.numpy(), y_ref.detach().numpy(), rtol=1e-10, atol=1e-10)
    for got, want in zip(ours, theirs, strict=True):
        want = want.grad.numpy()
        np.testing.assert_allclose(
            got.grad.numpy(), want, rtol=1e-9, atol=1e-9 * np.abs(want).max()
        )
    assert used[0] and len(used) >= 2  # forward ran the algorithm; the gradients made calls


@pytest.mark.parametrize(("groups", "kernel", "stride", "dilation"), [(1, 3, 1, 1), (2, 2, 2, 2)])
def test_gradients_through_functional_conv3d_with_winograd(
    groups, kernel, stride, dilation, monkeypatch
):
    """A 3x3 (over height and width) 3-D convolution with Winograd wherever it applies: the
    forward and the input gradient (a stride-1 3x3 convolution too), against torch."""
    used = []
    monkeypatch.setattr(conv_ops, "select_algorithm", _forcing("winograd", used))
    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, 4, 7, 6, 5))
    w = rng.standard_normal((6, 4 // groups, kernel, 3, 3))
    ours = [cs.tensor(a, requires_grad=True) for a in (x, w)]
    theirs = [torch.from_numpy(a.copy()).requires_grad_() for a in (x, w)]
    args = {
        "stride": (stride, 1, 1),
        "padding": (1, 1, 0),
        "dilation": (dilation, 1, 1),
        "groups": groups,
    }
    y = F.conv3d(*ours, **args)
    y_ref = TF.conv3d(*theirs, **args)
    upstream = rng.standard_normal(tuple(y_ref.shape))
    y.backward(upstream)
    y_ref.backward(torch.from_numpy(upstream))
    assert any(used)
    np.testing.assert_allclose(y.numpy(), y_ref.detach().numpy(), rtol=1e-10, atol=1e-10)
    for got, want in zip(ours, theirs, strict=True):
        want = want.grad.numpy()
        np.testing.assert_allclose(
            got.grad.numpy(), want, rtol=1e-9, atol=1e-9 * np.abs(want).max()
        )


def test_winograd_4x4_serves_inference_and_2x2_whatever_feeds_a_gradient(compiled_tile_size):
    """F(4x4, 3x3) is faster but its float32 error is larger: a forward recorded for
    autograd and every gradient take F(2x2, 3x3), so float32 training gradients stay as
    accurate as PyTorch's (tests/test_float32_gradients.py); under no_grad, or with nothing
    requiring a gradient, the layer takes F(4x4) where it has the tiles."""
    from convscope.ops import winograd

    seen = []
    original = winograd._tile

    def spy(*args):
        seen.append(args[-1].m)
        return original(*args)

    layer = cs.nn.Conv2d(8, 8, 3, padding=1)
    x = cs.tensor(np.random.default_rng(9).standard_normal((2, 8, 40, 40)).astype(np.float32))
    with pytest.MonkeyPatch.context() as patch, cs.conv_algorithm("winograd"):
        patch.setattr(winograd, "_tile", spy)
        with cs.no_grad():
            inference = layer(x)
        assert set(seen) == {compiled_tile_size}
        seen.clear()
        x.requires_grad = True
        recorded = layer(x)
        recorded.sum().backward()
        assert set(seen) == {2} and len(seen) >= 2  # the forward and the input gradient
        seen.clear()
        with cs.no_grad():
            layer(x)  # inputs requiring a gradient, but nothing recorded
        assert set(seen) == {compiled_tile_size}
    np.testing.assert_allclose(inference.numpy(), recorded.detach().numpy(), rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    ("shape", "weight", "stride", "padding", "dilation", "budget"),
    [
        ((1, 3, 6, 20, 22), (5, 3, 3, 7, 7), (1, 2, 2), (1, 3, 3), (1, 1, 1), None),
        ((2, 4, 7, 12, 11), (3, 4, 3, 3, 2), (2, 1, 1), (1, 0, 1), (1, 2, 1), None),
        ((2, 4, 7, 12, 11), (3, 4, 3, 3, 2), (2, 1, 1), (1, 0, 1), (1, 2, 1), 96 << 10),
        ((1, 2, 5, 3, 4, 5), (3, 2, 2, 1, 3, 2), (1, 1, 2, 1), (0, 1, 1, 0), (1, 1, 1, 2), None),
    ],
)
def test_unfold_by_frames_matches_torch_and_plain_unfolding(
    shape, weight, stride, padding, dilation, budget, monkeypatch
):
    """A 3-D (or larger) convolution whose kernel spans several frames unfolds each input
    frame once (``unfold_gemm._run_frames``): the values of torch and of plain unfolding,
    with stride, padding and dilation in the trailing dimensions, several samples, tiles of
    a few frames (a tiny budget) and 4-D input."""
    from convscope.ops import unfold_gemm

    rng = np.random.default_rng(5)
    x, w = rng.standard_normal(shape), rng.standard_normal(weight)
    args = {
        "stride": stride,
        "padding": tuple((p, p) for p in padding),
        "dilation": dilation,
        "workspace_bytes": budget,
    }
    plain = conv_general(x, w, algorithm="unfold", **args)
    framed = []
    original = unfold_gemm._run_frames

    def spy(*arguments):
        framed.append(arguments[3])
        return original(*arguments)

    monkeypatch.setattr(unfold_gemm, "FRAME_POSITIONS", 1)
    monkeypatch.setattr(unfold_gemm, "_run_frames", spy)
    unfold_gemm._tiles.cache_clear()
    got = conv_general(x, w, algorithm="unfold", **args)
    unfold_gemm._tiles.cache_clear()
    assert framed and (budget is None or len(framed) > shape[0])
    np.testing.assert_allclose(got, plain, rtol=1e-12, atol=1e-12 * np.abs(plain).max())
    if len(shape) == 5:
        want = torch.nn.functional.conv3d(
            torch.from_numpy(x),
            torch.from_numpy(w),
            stride=stride,
            padding=padding,
            dilation=dilation,
        ).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12 * np.abs(want).max())
