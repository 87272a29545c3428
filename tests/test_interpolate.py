"""``interpolate`` / ``Upsample`` in every interpolating mode against torch: values (float32 and
float64), float64 gradients, uint8 images bit for bit, antialiasing, the error classes and
messages, reprs of the modules.

Two places where torch's own kernels disagree with torch's forward are checked differently
(convscope follows the forward, and its gradient is the exact adjoint of it):

* bicubic backward copies the gradient when the output size equals the input size, even when
  a scale factor made the forward interpolate;
* the antialiased (and the generic uint8) forward gives every row the first row's weights
  when the output is one column wide: there the reference is torch on the transposed image
  (float) or torch's AVX kernel on at most 4 channels at a time (uint8).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")
tF = torch.nn.functional

import convscope as cs  # noqa: E402
import convscope.nn as nn  # noqa: E402
import convscope.nn.functional as F  # noqa: E402
from convscope.ops import resample as R  # noqa: E402

RANK = {"linear": 1, "bilinear": 2, "bicubic": 2, "trilinear": 3}
SHAPE = {1: (2, 3, 7), 2: (2, 3, 6, 7), 3: (1, 2, 4, 5, 6)}
SPECS = [
    {"scale_factor": 2},
    {"scale_factor": 1.7},
    {"scale_factor": 0.6},
    {"scale_factor": 1.7, "recompute_scale_factor": True},
    {"scale_factor": 1.1},  # output length == input length, factor != 1
    {"scale_factor": 3, "recompute_scale_factor": False},
    {"scale_factor": 3, "recompute_scale_factor": True},
    {"size": 5},
    {"size": 1},
    {"size": 13},
    {"per_dim": True},  # a different size per axis
    {"per_dim_scale": True},
]
TOL = {np.float32: 1e-5, np.float64: 1e-12}


def spec_kwargs(spec: dict, n: int) -> dict:
    if spec.get("per_dim"):
        return {"size": (9, 2, 4)[:n]}
    if spec.get("per_dim_scale"):
        return {"scale_factor": (0.6, 2.5, 1.3)[:n]}
    return spec


def spec_id(spec: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in spec.items())


def assert_close(ours, theirs, dtype, what=""):
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    assert ours.shape == theirs.shape, (what, ours.shape, theirs.shape)
    assert ours.dtype == theirs.dtype, (what, ours.dtype, theirs.dtype)
    scale = max(1.0, float(np.abs(theirs).max(initial=0)))
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=TOL[dtype] * scale, err_msg=what)


def run(x: np.ndarray, grad: bool, **kwargs):
    """Output and (when ``grad``) input gradient in both libraries for one upstream gradient."""
    ours = cs.tensor(x, requires_grad=grad)
    theirs = torch.tensor(x, requires_grad=grad)
    y_c, y_t = F.interpolate(ours, **kwargs), tF.interpolate(theirs, **kwargs)
    if not grad:
        return y_c.numpy(), y_t.numpy(), None, None
    g = np.random.default_rng(1).standard_normal(y_c.shape).astype(x.dtype)
    y_c.backward(cs.tensor(g))
    y_t.backward(torch.tensor(g))
    return y_c.numpy(), y_t.detach().numpy(), ours.grad.numpy(), theirs.grad.numpy()


def adjoint_gap(x: np.ndarray, **kwargs) -> float:
    """``|<f(x), g> - <x, f'(x)^T g>|`` relative: zero when the gradient is f's adjoint."""
    t = cs.tensor(x, requires_grad=True)
    y = F.interpolate(t, **kwargs)
    g = np.random.default_rng(2).standard_normal(y.shape)
    y.backward(cs.tensor(g))
    lhs, rhs = float((y.numpy() * g).sum()), float((x * t.grad.numpy()).sum())
    return abs(lhs - rhs) / max(1.0, abs(lhs))


def torch_backward_differs(x_shape, y_shape, kwargs) -> bool:
    """Where torch's backward is not the derivative of its forward: an output length equal to
    the input length, reached with a scale factor (bicubic: every axis; antialiased: any axis,
    which torch's forward copies but its backward filters)."""
    factor = kwargs.get("scale_factor")
    if factor is None or kwargs.get("recompute_scale_factor"):
        return False
    kept = [a == b for a, b in zip(x_shape[2:], y_shape[2:], strict=True)]
    if kwargs.get("antialias"):
        return any(k and f != 1 for k, f in zip(kept, per_dim(factor, len(kept)), strict=True))
    return kwargs["mode"] == "bicubic" and all(kept)


def per_dim(value, n):
    return tuple(value) if isinstance(value, tuple | list) else (value,) * n


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("spec", SPECS, ids=spec_id)
@pytest.mark.parametrize("align_corners", [False, True], ids=["ac0", "ac1"])
@pytest.mark.parametrize("mode", list(RANK))
def test_matches_torch(mode, align_corners, spec, dtype):
    n = RANK[mode]
    kwargs = dict(spec_kwargs(spec, n), mode=mode, align_corners=align_corners)
    x = np.random.default_rng(0).standard_normal(SHAPE[n]).astype(dtype)
    grad = dtype == np.float64
    y_c, y_t, g_c, g_t = run(x, grad, **kwargs)
    assert_close(y_c, y_t, dtype, "output")
    if not grad:
        return
    if torch_backward_differs(x.shape, y_c.shape, kwargs):
        # e.g. torch's bicubic backward copies here; convscope differentiates its forward
        assert adjoint_gap(x, **kwargs) < 1e-12
        return
    assert_close(g_c, g_t, dtype, "gradient")


def one_column_bug(x_shape, y_shape) -> bool:
    """torch's separable kernels mishandle a 1-wide output whose height is resampled."""
    return y_shape[-1] == 1 and y_shape[-2] != x_shape[-2]


def torch_reference(x: np.ndarray, **kwargs) -> np.ndarray:
    """torch's output, or torch on the transposed image where its kernel has the bug."""
    y = tF.interpolate(torch.tensor(x), **kwargs)
    if not one_column_bug(x.shape, y.shape):
        return y.numpy()
    swapped = dict(kwargs)
    for key in ("size", "scale_factor"):
        value = kwargs.get(key)
        if isinstance(value, tuple):
            swapped[key] = value[::-1]
    return tF.interpolate(torch.tensor(x).transpose(2, 3), **swapped).transpose(2, 3).numpy()


AA_SPECS = [
    {"scale_factor": 0.6},
    {"scale_factor": 0.35},
    {"scale_factor": 0.3, "recompute_scale_factor": True},
    {"scale_factor": 1.7},
    {"scale_factor": 1.1},
    {"scale_factor": (1.05, 0.5)},  # height kept: torch's forward copies that axis
    {"size": (3, 8)},
    {"size": (1, 13)},
    {"size": (4, 1)},  # one column, height resampled: torch's kernel bug
    {"size": (11, 1)},
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("spec", AA_SPECS, ids=spec_id)
@pytest.mark.parametrize(
    "mode, align_corners",
    [
        ("bilinear", False),
        ("bilinear", True),
        ("bicubic", False),
        ("bicubic", True),
        ("lanczos", False),
    ],
)
def test_antialias_matches_torch(mode, align_corners, spec, dtype):
    kwargs = dict(spec, mode=mode, align_corners=align_corners, antialias=True)
    x = np.random.default_rng(3).standard_normal((2, 3, 11, 14)).astype(dtype)
    y_c, _, g_c, g_t = run(x, dtype == np.float64, **kwargs)
    assert_close(y_c, torch_reference(x, **kwargs), dtype, "output")
    if g_c is None:
        return
    if torch_backward_differs(x.shape, y_c.shape, kwargs):
        assert adjoint_gap(x, **kwargs) < 1e-12
        return
    assert_close(g_c, g_t, dtype, "gradient")


def test_torch_one_column_bug_is_real():
    """The reason for ``torch_reference``: torch gives both rows the first row's value."""
    x = np.arange(8.0).reshape(1, 1, 8, 1)
    theirs = tF.interpolate(torch.tensor(x), size=(4, 1), mode="bilinear", antialias=True)
    ours = F.interpolate(cs.tensor(x), size=(4, 1), mode="bilinear", antialias=True)
    assert len(set(theirs.flatten().tolist())) == 1
    np.testing.assert_allclose(ours.numpy().ravel(), [5 / 7, 2.5, 4.5, 44 / 7])


@pytest.mark.parametrize("channels", [3, 5])  # torch: AVX kernel up to 4 channels, else generic
@pytest.mark.parametrize("spec", [*AA_SPECS, {"scale_factor": 2}, {"size": (40, 9)}], ids=spec_id)
@pytest.mark.parametrize(
    "mode, antialias",
    [
        ("bilinear", False),
        ("bilinear", True),
        ("bicubic", False),
        ("bicubic", True),
        ("lanczos", True),
    ],
)
def test_uint8_is_bit_exact(mode, antialias, spec, channels):
    x = np.random.default_rng(4).integers(0, 256, (2, channels, 11, 14), dtype=np.uint8)
    for align_corners in [False, True] if mode != "lanczos" else [False]:
        kwargs = dict(spec, mode=mode, align_corners=align_corners, antialias=antialias)
        ours = F.interpolate(cs.tensor(x), **kwargs).numpy()
        theirs = tF.interpolate(torch.tensor(x), **kwargs).numpy()
        if channels > 4 and one_column_bug(x.shape, ours.shape):
            # torch's generic uint8 kernel has the bug; its AVX one (up to 4 channels) does not
            chunks = [torch.tensor(x[:, c : c + 4]) for c in range(0, channels, 4)]
            theirs = np.concatenate([tF.interpolate(c, **kwargs).numpy() for c in chunks], 1)
        assert ours.dtype == np.uint8
        np.testing.assert_array_equal(ours, theirs, err_msg=str(kwargs))


@pytest.mark.parametrize("mode", ["linear", "bilinear", "bicubic", "trilinear", "aa", "lanczos"])
def test_gradient_is_the_adjoint(mode):
    """``<f(x), g> == <x, grad>`` over random sizes, including the shapes torch differs on."""
    rng = np.random.default_rng(5)
    for _ in range(6):
        n = RANK.get(mode, 2)
        shape = (1, 2, *rng.integers(1, 9, n))
        size = tuple(int(s) for s in rng.integers(1, 12, n))
        kwargs = {
            "aa": {"mode": "bicubic", "antialias": True},
            "lanczos": {"mode": "lanczos", "antialias": True},
        }.get(mode, {"mode": mode, "align_corners": bool(rng.integers(2))})
        x = rng.standard_normal(shape)
        assert adjoint_gap(x, size=size, **kwargs) < 1e-12


@st.composite
def random_cases(draw):
    """Any interpolating mode, with or without antialiasing, on a random small input."""
    mode = draw(st.sampled_from(["linear", "bilinear", "bicubic", "trilinear", "lanczos"]))
    n = RANK.get(mode, 2)
    antialias = mode == "lanczos" or (n == 2 and draw(st.booleans()))
    shape = (draw(st.integers(1, 2)), 2, *(draw(st.integers(1, 9)) for _ in range(n)))
    kwargs = {"mode": mode, "antialias": antialias}
    if mode != "lanczos":
        kwargs["align_corners"] = draw(st.booleans())
    if draw(st.booleans()):
        kwargs["size"] = tuple(draw(st.integers(1, 12)) for _ in range(n))
    else:
        scales = st.sampled_from([0.3, 0.5, 0.6, 0.75, 1.0, 1.1, 1.7, 2.0, 2.5, 3.0])
        kwargs["scale_factor"] = tuple(draw(scales) for _ in range(n))
        kwargs["recompute_scale_factor"] = draw(st.sampled_from([None, False, True]))
    return shape, draw(st.sampled_from([np.float32, np.float64])), kwargs


@settings(
    max_examples=80,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(random_cases())
def test_random_configurations_match_torch(case):
    shape, dtype, kwargs = case
    x = np.random.default_rng(11).standard_normal(shape).astype(dtype)
    try:
        theirs = torch_reference(x, **kwargs) if len(shape) == 4 else None
        if theirs is None:
            theirs = tF.interpolate(torch.tensor(x), **kwargs).numpy()
    except RuntimeError:  # a zero output size
        with pytest.raises(RuntimeError):
            F.interpolate(cs.tensor(x), **kwargs)
        return
    grad = dtype == np.float64
    y_c, _, g_c, g_t = run(x, grad, **kwargs)
    assert_close(y_c, theirs, dtype, "output")
    if not grad:
        return
    if torch_backward_differs(x.shape, y_c.shape, kwargs):
        assert adjoint_gap(x, **kwargs) < 1e-12
    else:
        assert_close(g_c, g_t, dtype, "gradient")


def test_source_index_rule():
    """align_corners=False: source = (i + 0.5) / scale - 0.5, clamped at 0 for linear modes;
    a user's scale factor is used as given, the recomputed one is in/out."""
    x = np.arange(4.0).reshape(1, 1, 4)
    y = F.interpolate(cs.tensor(x), scale_factor=1.7, mode="linear").numpy().ravel()
    source = np.maximum((np.arange(6) + 0.5) / 1.7 - 0.5, 0)
    np.testing.assert_allclose(y, np.minimum(source, 3), rtol=1e-15)
    y = F.interpolate(cs.tensor(x), scale_factor=1.7, mode="linear", recompute_scale_factor=True)
    source = np.maximum((np.arange(6) + 0.5) * 4 / 6 - 0.5, 0)
    np.testing.assert_allclose(y.numpy().ravel(), np.minimum(source, 3), rtol=1e-15)


def test_bicubic_taps_clamp_at_the_border():
    t = R.cubic_taps(3, 6, dtype=np.float64)
    assert t.index.min() == 0 and t.index.max() == 2
    np.testing.assert_allclose(t.weight.sum(axis=1), 1, rtol=1e-15)
    assert t.weight[0, 0] < 0  # a = -0.75: negative outer lobe


@pytest.mark.parametrize(
    "kwargs",
    [{"scale_factor": 0.5}, {"scale_factor": 1.5}, {"size": (3, 5)}, {"size": 1}],
    ids=str,
)
def test_area_is_adaptive_average_pooling(kwargs):
    x = np.random.default_rng(6).standard_normal((2, 3, 6, 7))
    y_c, y_t, g_c, g_t = run(x, True, mode="area", **kwargs)
    assert_close(y_c, y_t, np.float64, "output")
    assert_close(g_c, g_t, np.float64, "gradient")


def test_float16_and_empty_batch():
    x = np.random.default_rng(7).standard_normal((2, 3, 5, 6)).astype(np.float16)
    ours = F.interpolate(cs.tensor(x), scale_factor=1.7, mode="bicubic").numpy()
    theirs = tF.interpolate(torch.tensor(x), scale_factor=1.7, mode="bicubic").numpy()
    assert ours.dtype == np.float16
    np.testing.assert_allclose(ours.astype(np.float32), theirs.astype(np.float32), atol=4e-3)
    empty = F.interpolate(cs.zeros(0, 3, 4, 5), scale_factor=2, mode="bilinear")
    assert empty.shape == (0, 3, 8, 10)


def test_no_graph_under_no_grad():
    x = cs.rand(1, 2, 4, 4, requires_grad=True)
    with cs.no_grad():
        y = F.interpolate(x, scale_factor=2, mode="bilinear")
    assert not y.requires_grad and y.grad_fn is None


# ------------------------------------------------------------------------ errors
X3, X4, X5 = (np.ones(s, np.float32) for s in [(1, 2, 4), (1, 2, 4, 5), (1, 2, 3, 4, 5)])
ERRORS = {
    "linear_4d": (X4, {"size": 2, "mode": "linear"}),
    "linear_5d": (X5, {"size": 2, "mode": "linear"}),
    "bilinear_3d": (X3, {"size": 2, "mode": "bilinear"}),
    "bilinear_5d": (X5, {"size": 2, "mode": "bilinear"}),
    "trilinear_3d": (X3, {"size": 2, "mode": "trilinear"}),
    "trilinear_4d": (X4, {"size": 2, "mode": "trilinear"}),
    "bicubic_3d": (X3, {"size": 2, "mode": "bicubic"}),
    "bicubic_5d": (X5, {"size": 2, "mode": "bicubic"}),
    "lanczos_3d": (X3, {"size": 2, "mode": "lanczos", "antialias": False}),
    "unknown_mode": (X4, {"size": 2, "mode": "cubic"}),
    "rank_2": (X4[0, 0], {"size": 2, "mode": "bilinear"}),
    "nearest_align_corners": (X4, {"size": 2, "align_corners": False}),
    "area_align_corners": (X4, {"size": 2, "mode": "area", "align_corners": True}),
    "exact_align_corners": (X4, {"size": 2, "mode": "nearest-exact", "align_corners": True}),
    "size_and_scale": (X4, {"size": 2, "scale_factor": 2.0, "mode": "bilinear"}),
    "neither": (X4, {"mode": "bilinear"}),
    "size_length": (X4, {"size": (2, 2, 2), "mode": "bilinear"}),
    "scale_length": (X4, {"scale_factor": (2.0,), "mode": "bicubic"}),
    "recompute_with_size": (X4, {"size": 3, "mode": "bilinear", "recompute_scale_factor": True}),
    "antialias_linear": (X3, {"size": 2, "mode": "linear", "antialias": True}),
    "antialias_nearest": (X4, {"size": 2, "antialias": True}),
    "antialias_trilinear": (X5, {"size": 2, "mode": "trilinear", "antialias": True}),
    "lanczos_no_antialias": (X4, {"size": 2, "mode": "lanczos"}),
    "lanczos_align_corners": (
        X4,
        {"size": 2, "mode": "lanczos", "antialias": True, "align_corners": True},
    ),
    "zero_output": (X4, {"scale_factor": 0.1, "mode": "bilinear"}),
    "zero_output_1d": (X3, {"scale_factor": 0.1, "mode": "linear"}),
    "zero_output_3d": (X5, {"size": (0, 1, 1), "mode": "trilinear"}),
    "negative_size": (X4, {"size": (-1, 3), "mode": "bicubic"}),
    "negative_scale": (X4, {"scale_factor": -1.0, "mode": "bilinear", "antialias": True}),
    "nan_scale": (X4, {"scale_factor": math.nan, "mode": "bilinear"}),
    "zero_channels": (np.ones((1, 0, 2, 3), np.float32), {"scale_factor": 2, "mode": "bilinear"}),
    "zero_channels_nearest": (np.ones((1, 0, 3), np.float32), {"scale_factor": 2}),
    "float_size": (X4, {"size": (2.0, 3), "mode": "bilinear"}),
    "align_corners_int": (X4, {"size": 2, "mode": "bilinear", "align_corners": 1}),
    "int32_bilinear": (X4.astype(np.int32), {"size": 3, "mode": "bilinear"}),
    "int32_bilinear_large": (X4.astype(np.int32), {"size": (64, 65), "mode": "bilinear"}),
    "uint8_linear": (X3.astype(np.uint8), {"size": 3, "mode": "linear"}),
    "uint8_trilinear": (X5.astype(np.uint8), {"size": 3, "mode": "trilinear"}),
    "int64_bicubic": (X4.astype(np.int64), {"size": 3, "mode": "bicubic"}),
    "float16_antialias": (
        X4.astype(np.float16),
        {"size": 3, "mode": "bilinear", "antialias": True},
    ),
    "int8_nearest": (X4.astype(np.int8), {"size": 3}),
    "bool_nearest_1d": (X3.astype(bool), {"size": 3, "mode": "nearest-exact"}),
    "uint8_area": (X4.astype(np.uint8), {"size": 3, "mode": "area"}),
}


@pytest.mark.parametrize("name", list(ERRORS))
def test_errors_match_torch(name):
    x, kwargs = ERRORS[name]
    with pytest.raises(Exception) as theirs:
        tF.interpolate(torch.tensor(x), **kwargs)
    with pytest.raises(theirs.type) as ours:
        F.interpolate(cs.tensor(x), **kwargs)
    if theirs.type in (ValueError, NotImplementedError, RuntimeError):
        assert str(ours.value) == str(theirs.value)


# ------------------------------------------------------------------------ modules
MODULES = [
    ("Upsample", {"scale_factor": 2}),
    ("Upsample", {"scale_factor": 1.5, "mode": "bilinear", "align_corners": True}),
    ("Upsample", {"size": (5, 3), "mode": "bicubic"}),
    ("Upsample", {"scale_factor": (2, 0.5), "mode": "bilinear"}),
    ("Upsample", {"size": 4, "mode": "area"}),
    ("Upsample", {"scale_factor": 1.7, "mode": "bicubic", "recompute_scale_factor": True}),
    ("UpsamplingNearest2d", {"scale_factor": 3}),
    ("UpsamplingBilinear2d", {"size": (5, 9)}),
    ("UpsamplingBilinear2d", {"scale_factor": 2}),
]


@pytest.mark.parametrize("name, kwargs", MODULES, ids=lambda v: str(v))
def test_modules_match_torch(name, kwargs):
    ours, theirs = getattr(nn, name)(**kwargs), getattr(torch.nn, name)(**kwargs)
    assert repr(ours) == repr(theirs)
    assert list(ours.state_dict()) == list(theirs.state_dict()) == []
    x = np.random.default_rng(8).standard_normal((1, 2, 4, 6))
    t = cs.tensor(x, requires_grad=True)
    tt = torch.tensor(x, requires_grad=True)
    y, yt = ours(t), theirs(tt)
    assert_close(y.numpy(), yt.detach().numpy(), np.float64)
    y.sum().backward()
    yt.sum().backward()
    assert_close(t.grad.numpy(), tt.grad.numpy(), np.float64)


def test_trilinear_module():
    x = np.random.default_rng(9).standard_normal((1, 2, 3, 4, 5)).astype(np.float32)
    ours = nn.Upsample(scale_factor=(2, 1.5, 0.8), mode="trilinear", align_corners=False)
    theirs = torch.nn.Upsample(scale_factor=(2, 1.5, 0.8), mode="trilinear", align_corners=False)
    assert repr(ours) == repr(theirs) == "Upsample(scale_factor=(2.0, 1.5, 0.8), mode='trilinear')"
    assert_close(ours(cs.tensor(x)).numpy(), theirs(torch.tensor(x)).numpy(), np.float32)


@pytest.mark.parametrize("name", ["upsample", "upsample_nearest", "upsample_bilinear"])
def test_deprecated_functionals_warn(name):
    x = np.random.default_rng(10).standard_normal((1, 1, 3, 4))
    with pytest.warns(UserWarning, match=f"nn.functional.{name}` is deprecated"):
        ours = getattr(F, name)(cs.tensor(x), scale_factor=2).numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = getattr(tF, name)(torch.tensor(x), scale_factor=2).numpy()
    assert_close(ours, theirs, np.float64)


def test_output_never_aliases_the_input():
    for dtype in (np.float32, np.uint8):
        x = cs.tensor(np.ones((1, 1, 3, 4), dtype))
        y = F.interpolate(x, size=(3, 4), mode="bilinear")
        y.numpy()[...] = 0
        assert x.numpy().min() == 1


@pytest.mark.parametrize(
    ("shape", "kwargs"),
    [
        ((1, 1, 2), {"scale_factor": 0.5}),  # one source cell out of a window of two
        ((2, 3, 8, 6), {"size": (4, 3)}),  # every other cell: starts tile the axis
        ((1, 2, 6, 4, 4), {"size": (3, 2, 1)}),
    ],
)
def test_nearest_downsampling_picks_cells_not_window_means(shape, kwargs):
    """Nearest downsampling reads single cells at window starts; adaptive average pooling's
    shortcut for windows tiling an axis must not apply to it."""
    x = np.random.default_rng(0).standard_normal(shape)
    got = F.interpolate(cs.tensor(x), mode="nearest", **kwargs).numpy()
    want = tF.interpolate(torch.tensor(x), mode="nearest", **kwargs).numpy()
    np.testing.assert_array_equal(got, want)
