"""Differential tests of ``convscope.nn`` against ``torch.nn``: outputs, reprs, errors, init.

Every forward comparison copies torch's parameters into the convscope layer and checks

    |y - y_ref| <= rtol * (|x| conv |w| + |b|)

element-wise, the right bound for a sum of products (float32: 1e-4, float64: 1e-10).  The
bound is computed by torch itself in float64 from the absolute values of input and
parameters, so it is exact for every padding mode (padding copies values, so it commutes with
``abs``).
"""

from __future__ import annotations

import copy
import math
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")
tnn = torch.nn
tF = torch.nn.functional

import convscope as cs  # noqa: E402
import convscope.nn as nn  # noqa: E402
import convscope.nn.functional as F  # noqa: E402

CLASSES = [
    (name + f"{dim}d", dim, name == "ConvTranspose")
    for name in ("Conv", "ConvTranspose")
    for dim in (1, 2, 3)
]
CLASS_IDS = [c[0] for c in CLASSES]
MODES = ("zeros", "reflect", "replicate", "circular")
TORCH_PAD_MODE = {
    "zeros": "constant",
    "reflect": "reflect",
    "replicate": "replicate",
    "circular": "circular",
}
RTOL = {np.dtype(np.float32): 1e-4, np.dtype(np.float64): 1e-10}
TORCH_DTYPE = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}
TORCH_TO_NUMPY = {v: k for k, v in TORCH_DTYPE.items()}

BASE_SETTINGS = settings(
    derandomize=True, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)


def examples(n):
    """Hypothesis settings: derandomized, no deadline, ``n`` examples."""
    return settings(BASE_SETTINGS, max_examples=n)


# --------------------------------------------------------------------------------- helpers
def as_arg(draw, values):
    """A per-dimension tuple, passed as a plain int when all equal (half of the time)."""
    if len(set(values)) == 1 and draw(st.booleans()):
        return values[0]
    return tuple(values)


def per_dim(value, dim):
    return tuple(value) if isinstance(value, tuple | list) else (value,) * dim


def torch_state_as_numpy(tmod):
    return {k: v.detach().numpy().copy() for k, v in tmod.state_dict().items()}


ATTRIBUTES = (
    "in_channels",
    "out_channels",
    "kernel_size",
    "stride",
    "padding",
    "dilation",
    "groups",
    "padding_mode",
    "output_padding",
    "transposed",
)


def build_pair(name, args, kwargs, dtype=None):
    """The torch layer and the convscope layer with the same arguments and parameters."""
    np_dtype = np.dtype(dtype or np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tmod = getattr(tnn, name)(*args, **kwargs, dtype=TORCH_DTYPE[np_dtype])
    cmod = (
        getattr(nn, name)(*args, **kwargs)
        if dtype is None
        else getattr(nn, name)(*args, **kwargs, dtype=dtype)
    )
    cmod.load_state_dict(torch_state_as_numpy(tmod))
    return tmod, cmod


def torch_forward(tmod, x, **call_kw):
    with torch.no_grad():
        return tmod(torch.from_numpy(np.ascontiguousarray(x)), **call_kw).numpy()


def magnitude(tmod, x, dtype=torch.float64, **call_kw):
    """``|x| conv |w| + |b|`` in float64, computed by torch (the scale of the rounding error)."""
    ref = copy.deepcopy(tmod).to(dtype)
    with torch.no_grad():
        for p in ref.parameters():
            p.abs_()
    return torch_forward(ref, np.abs(x).astype(TORCH_TO_NUMPY[dtype]), **call_kw)


def assert_scaled_close(actual, expected, scale, rtol, what=""):
    actual = np.asarray(actual)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype} != {expected.dtype}"
    err = np.abs(actual.astype(np.float64) - expected.astype(np.float64))
    bad = err > rtol * scale
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise AssertionError(
            f"{what}: {int(bad.sum())} of {bad.size} elements differ; first at {idx}: "
            f"convscope {actual[idx]!r}, torch {expected[idx]!r}, allowed {rtol * scale[idx]:.3g}"
        )


def random_input(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


def check_against_torch(name, args, kwargs, x, dtype=None, call_kw=None):
    """Build both layers; compare repr, attributes and output (values, shape, dtype)."""
    call_kw = call_kw or {}
    tmod, cmod = build_pair(name, args, kwargs, dtype)
    what = f"{name}{args} {kwargs} input {x.shape} {call_kw}"
    assert repr(cmod) == repr(tmod), what
    for attribute in ATTRIBUTES:
        assert getattr(cmod, attribute) == getattr(tmod, attribute), f"{what}: {attribute}"
    expected = torch_forward(tmod, x, **call_kw)
    actual = cmod(cs.tensor(x), **call_kw)
    assert isinstance(actual, cs.Tensor), what
    assert_scaled_close(
        actual.numpy(), expected, magnitude(tmod, x, **call_kw), RTOL[x.dtype], what
    )
    return tmod, cmod


def outcome(fn):
    """``("ok", value)`` or ``("raise", exception class)``."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return "ok", fn()
    except Exception as exc:
        return "raise", type(exc)


# ---------------------------------------------------------------------- config strategies
@st.composite
def conv_configs(draw, dim, transposed):
    """A valid (name, args, kwargs, input shape) for one class; sizes are kept small."""
    groups = draw(st.sampled_from((1, 1, 2, 3)))
    cin, cout = groups * draw(st.integers(1, 3)), groups * draw(st.integers(1, 3))
    ks, stride, dil = (
        draw(st.lists(st.integers(1, hi), min_size=dim, max_size=dim)) for hi in (4, 3, 3)
    )
    kwargs = {
        "stride": as_arg(draw, stride),
        "dilation": as_arg(draw, dil),
        "groups": groups,
        "bias": draw(st.booleans()),
    }
    sizes = []
    if transposed:
        outpad = [draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dil, strict=True)]
        pads = []
        for k, s, d, op in zip(ks, stride, dil, outpad, strict=True):
            size = draw(st.integers(1, 5))
            full = (size - 1) * s + d * (k - 1) + op  # output size minus one with padding 0
            pads.append(draw(st.integers(0, min(full // 2, 3))))
            sizes.append(size)
        kwargs["padding"] = as_arg(draw, pads)
        kwargs["output_padding"] = as_arg(draw, outpad)
    else:
        mode = draw(st.sampled_from(MODES))
        kwargs["padding_mode"] = mode
        kind = draw(st.sampled_from(("int", "int", "valid", "same")))
        if kind == "same" and set(stride) != {1}:
            kind = "int"
        pads = [draw(st.integers(0, 3)) for _ in range(dim)]
        kwargs["padding"] = {"int": as_arg(draw, pads), "valid": "valid", "same": "same"}[kind]
        for i in range(dim):
            eff = dil[i] * (ks[i] - 1) + 1
            before, after = {
                "int": (pads[i], pads[i]),
                "valid": (0, 0),
                "same": ((eff - 1) // 2, eff - 1 - (eff - 1) // 2),
            }[kind]
            low = max(1, eff - before - after)
            if mode == "reflect":
                low = max(low, before + 1, after + 1)
            elif mode == "circular":
                low = max(low, before, after)
            sizes.append(low + draw(st.integers(0, 3)))
    batch = draw(st.sampled_from((None, 1, 2)))  # None: unbatched input
    shape = ((batch,) if batch else ()) + (cin, *sizes)
    name = ("ConvTranspose" if transposed else "Conv") + f"{dim}d"
    return name, (cin, cout, as_arg(draw, ks)), kwargs, shape


def run_config(config, dtype=None, seed=0):
    name, args, kwargs, shape = config
    np_dtype = np.dtype(dtype or np.float32)
    x = random_input(np.random.default_rng(seed), shape, np_dtype)
    return check_against_torch(name, args, kwargs, x, dtype=dtype)


# -------------------------------------------------------------------------- forward tests
@pytest.mark.parametrize(("name", "dim", "transposed"), CLASSES, ids=CLASS_IDS)
def test_forward_float32_matches_torch(name, dim, transposed):
    @examples(45)
    @given(conv_configs(dim, transposed))
    def inner(config):
        tmod, cmod = run_config(config)
        assert cmod.weight.dtype == np.float32
        assert cmod.weight.shape == tuple(tmod.weight.shape)

    inner()


@pytest.mark.parametrize(("name", "dim", "transposed"), CLASSES, ids=CLASS_IDS)
def test_forward_float64_modules_match_torch(name, dim, transposed):
    @examples(15)
    @given(conv_configs(dim, transposed))
    def inner(config):
        _tmod, cmod = run_config(config, dtype=cs.float64)
        assert cmod.weight.dtype == np.float64
        if cmod.bias is not None:
            assert cmod.bias.dtype == np.float64

    inner()


def functional_name(name):
    return name.replace("ConvTranspose", "conv_transpose").replace("Conv", "conv")


@pytest.mark.parametrize(("name", "dim", "transposed"), CLASSES, ids=CLASS_IDS)
def test_functional_matches_torch(name, dim, transposed):
    """``F.convNd`` / ``F.conv_transposeNd`` with keyword arguments, float64 and int64."""

    @examples(20)
    @given(conv_configs(dim, transposed), st.sampled_from((np.float64, np.int64)), st.booleans())
    def inner(config, dtype, with_bias):
        name_, args, kwargs, shape = config
        kwargs = {k: v for k, v in kwargs.items() if k not in ("padding_mode", "bias")}
        rng = np.random.default_rng(1)
        cin, cout, ks = args
        groups = kwargs["groups"]
        wshape = (cin, cout // groups) if transposed else (cout, cin // groups)
        w = rng.integers(-3, 4, wshape + per_dim(ks, dim)).astype(dtype)
        b = rng.integers(-3, 4, cout).astype(dtype)
        x = rng.integers(-3, 4, shape).astype(dtype)
        fname = functional_name(name_)
        expected = getattr(tF, fname)(
            torch.from_numpy(x),
            torch.from_numpy(w),
            torch.from_numpy(b) if with_bias else None,
            **kwargs,
        ).numpy()
        actual = getattr(F, fname)(
            cs.tensor(x), cs.tensor(w), cs.tensor(b) if with_bias else None, **kwargs
        )
        actual = np.asarray(actual)
        assert actual.dtype == expected.dtype
        # small integers: every product and partial sum is exact
        np.testing.assert_array_equal(actual, expected, err_msg=f"{fname} {kwargs} {x.shape}")

    inner()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dim", [1, 2, 3])
@pytest.mark.parametrize("batched", [False, True], ids=["unbatched", "batched"])
def test_padding_modes(mode, dim, batched):
    rng = np.random.default_rng(dim)
    shape = (2,) * batched + (4,) + tuple(range(5, 5 + dim))
    x = random_input(rng, shape, np.float32)
    for padding in (1, 2, tuple(range(1, dim + 1)), "same"):
        check_against_torch(
            f"Conv{dim}d", (4, 6, 3), {"padding": padding, "padding_mode": mode, "groups": 2}, x
        )


REALISTIC = [
    ("Conv2d", (16, 32, 3), {"padding": 1}, (2, 16, 20, 18)),
    ("Conv2d", (32, 32, 3), {"padding": 1, "groups": 32, "bias": False}, (1, 32, 17, 17)),
    (
        "Conv2d",
        (24, 48, (5, 3)),
        {"stride": 2, "padding": (2, 1), "padding_mode": "reflect"},
        (2, 24, 19, 23),
    ),
    (
        "Conv1d",
        (64, 32, 7),
        {"padding": "same", "dilation": 3, "padding_mode": "circular"},
        (3, 64, 50),
    ),
    ("Conv3d", (8, 16, 3), {"padding": 1, "stride": (1, 2, 2)}, (2, 8, 9, 12, 11)),
    ("ConvTranspose2d", (32, 16, 4), {"stride": 2, "padding": 1}, (2, 32, 9, 10)),
    ("ConvTranspose1d", (48, 24, 5), {"stride": 3, "output_padding": 2, "groups": 3}, (2, 48, 21)),
    (
        "ConvTranspose3d",
        (8, 8, 3),
        {"stride": 2, "padding": 1, "output_padding": 1},
        (1, 8, 5, 6, 7),
    ),
]


@pytest.mark.parametrize(("name", "args", "kwargs", "shape"), REALISTIC)
@pytest.mark.parametrize("dtype", [None, cs.float64], ids=["float32", "float64"])
def test_realistic_layers(name, args, kwargs, shape, dtype):
    """Wider layers (hundreds of terms per output) than the random configurations above."""
    x = random_input(np.random.default_rng(11), shape, np.dtype(dtype or np.float32))
    check_against_torch(name, args, kwargs, x, dtype=dtype)


def test_output_dtype_follows_module_dtype():
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8))
    for dtype in (np.float32, np.float64):
        mod = nn.Conv2d(3, 4, 3, dtype=None if dtype is np.float32 else cs.float64)
        y = mod(cs.tensor(x.astype(dtype)))
        assert y.dtype == dtype and mod.weight.dtype == dtype


@pytest.mark.parametrize("dtype", [np.float64, np.int64])
def test_input_dtype_mismatch_is_runtime_error(dtype):
    """torch refuses a float64/int64 input to a float32 layer (RuntimeError)."""
    x = np.ones((1, 2, 5, 5), dtype=dtype)
    with pytest.raises(RuntimeError):
        tnn.Conv2d(2, 2, 3)(torch.from_numpy(x))
    with pytest.raises(RuntimeError):
        nn.Conv2d(2, 2, 3)(cs.tensor(x))


# ---------------------------------------------------------------- ConvTranspose output_size
@st.composite
def output_size_cases(draw, dim):
    config = draw(conv_configs(dim, True))
    _name, args, kwargs, shape = config
    stride, dil = per_dim(kwargs["stride"], dim), per_dim(kwargs["dilation"], dim)
    pad, ks = per_dim(kwargs["padding"], dim), per_dim(args[2], dim)
    spatial = []
    for size, s, d, p, k in zip(shape[-dim:], stride, dil, pad, ks, strict=True):
        smallest = (size - 1) * s - 2 * p + d * (k - 1) + 1
        # never 0: torch's float32 (oneDNN) path returns an empty tensor for an output length
        # of 0 where its float64 path raises RuntimeError, so that case has no one answer
        low = max(smallest - 1, 1)
        spatial.append(draw(st.integers(low, max(smallest + s, low))))
    form = draw(st.sampled_from(("tuple", "list", "full")))
    if form == "full":
        out = (*shape[: -dim - 1], args[1], *spatial)
    else:
        out = tuple(spatial) if form == "tuple" else list(spatial)
    return config, out


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_conv_transpose_output_size(dim):
    """Valid sizes give torch's output; invalid ones raise the same class as torch."""

    @examples(40)
    @given(output_size_cases(dim))
    def inner(case):
        (name, args, kwargs, shape), out = case
        x = random_input(np.random.default_rng(2), shape, np.float32)
        tmod, cmod = build_pair(name, args, kwargs)
        t_kind, t_val = outcome(lambda: torch_forward(tmod, x, output_size=out))
        c_kind, c_val = outcome(lambda: cmod(cs.tensor(x), output_size=out))
        what = f"{name}{args} {kwargs} x{shape} output_size={out}"
        assert c_kind == t_kind, f"{what}: torch {t_kind} {t_val}, convscope {c_kind} {c_val}"
        if t_kind == "raise":
            assert c_val is t_val, f"{what}: torch raised {t_val}, convscope {c_val}"
        else:
            assert_scaled_close(
                np.asarray(c_val),
                t_val,
                magnitude(tmod, x, output_size=out),
                RTOL[np.dtype(np.float32)],
                f"output_size={out}",
            )

    inner()


def test_conv_transpose_output_size_examples():
    x = random_input(np.random.default_rng(3), (1, 2, 5, 5), np.float32)
    for out in [(11, 11), (12, 12), (11, 12), [12, 11], (1, 2, 12, 12)]:
        check_against_torch(
            "ConvTranspose2d", (2, 3, 3), {"stride": 2}, x, call_kw={"output_size": out}
        )
    _, cmod = build_pair("ConvTranspose2d", (2, 3, 3), {"stride": 2})
    for bad in [(10, 11), (13, 12), (12,), (1, 12, 12)]:
        with pytest.raises(ValueError):
            cmod(cs.tensor(x), output_size=bad)


# ------------------------------------------------------------------------------------ repr
REPR_CASES = [
    ("Conv2d", (3, 16, 3), {"padding": 1}),
    ("Conv1d", (4, 8, 5), {}),
    ("Conv1d", (4, 8, 5), {"padding": "valid"}),
    ("Conv1d", (4, 8, 5), {"padding": "same", "dilation": 2}),
    ("Conv1d", (4, 8, (5,)), {"stride": (2,), "padding": (0,)}),
    ("Conv2d", (4, 8, (3, 5)), {"stride": (1, 2), "padding": (1, 0), "groups": 4}),
    ("Conv2d", (4, 8, 3), {"padding": "same", "bias": False, "padding_mode": "reflect"}),
    ("Conv2d", (4, 8, 3), {"padding": 2, "padding_mode": "circular", "dilation": (1, 2)}),
    ("Conv2d", (4, 4, 3), {"padding_mode": "replicate"}),
    (
        "Conv3d",
        (2, 4, (1, 2, 3)),
        {"stride": (1, 2, 1), "padding": (0, 1, 0), "padding_mode": "circular"},
    ),
    ("Conv3d", (6, 6, 3), {"groups": 6, "bias": False, "dilation": 2, "padding": "same"}),
    ("ConvTranspose1d", (4, 2, 3), {"stride": 2, "output_padding": 1}),
    ("ConvTranspose2d", (16, 8, 2), {"stride": 2}),
    (
        "ConvTranspose2d",
        (4, 8, 3),
        {
            "stride": 2,
            "output_padding": 1,
            "groups": 2,
            "dilation": 2,
            "padding": (1, 0),
            "bias": False,
        },
    ),
    ("ConvTranspose3d", (2, 2, (2, 3, 1)), {"stride": (2, 1, 3), "output_padding": (1, 0, 2)}),
]


@pytest.mark.parametrize(("name", "args", "kwargs"), REPR_CASES)
def test_repr_matches_torch(name, args, kwargs):
    tmod = getattr(tnn, name)(*args, **kwargs)
    cmod = getattr(nn, name)(*args, **kwargs)
    assert repr(cmod) == repr(tmod)
    assert str(cmod) == str(tmod)
    assert cmod.extra_repr() == tmod.extra_repr()


# --------------------------------------------------------------------------- error parity
MUTATIONS = (
    "groups",
    "channels",
    "kernel",
    "stride",
    "dilation",
    "padding",
    "padding_mode",
    "output_padding",
    "rank",
    "input_channels",
    "input_size",
)


def invalid_rank(draw, shape, dim):
    """A shape of a rank convolution does not accept (one too few or one too many dims)."""
    batched = shape if len(shape) == dim + 2 else (1, *shape)
    return draw(st.sampled_from((batched[2:], (1, *batched))))


@st.composite
def maybe_invalid_configs(draw, dim, transposed):
    """A valid configuration with up to two arguments spoiled; torch decides what is valid."""
    name, (cin, cout, ks), kwargs, shape = draw(conv_configs(dim, transposed))
    kwargs = dict(kwargs)
    for _ in range(draw(st.sampled_from((0, 1, 1, 2)))):
        what = draw(st.sampled_from(MUTATIONS))
        if what == "groups":
            kwargs["groups"] = draw(st.sampled_from((0, -1, cin + 1)))
        elif what == "channels":
            cin, cout = (cin + 1, cout) if draw(st.booleans()) else (cin, cout + 1)
        elif what == "kernel":
            ks = draw(st.sampled_from((0, -1, 9)))
        elif what in ("stride", "dilation"):
            values = list(per_dim(kwargs[what], dim))
            if draw(st.booleans()):
                values[draw(st.integers(0, dim - 1))] = draw(st.sampled_from((0, -1)))
            else:  # a tuple of the wrong length
                values.append(1)
            kwargs[what] = tuple(values)
        elif what == "padding":
            # torch turns a padding string of a transposed layer into a tuple of characters,
            # and crops for negative padding with a non-zero padding mode: both left out
            choices = (
                (5, -1)
                if transposed
                else ("foo", 5, -1 if kwargs["padding_mode"] == "zeros" else 6)
            )
            kwargs["padding"] = draw(st.sampled_from(choices))
        elif what == "padding_mode":
            kwargs["padding_mode"] = draw(st.sampled_from(("foo", "reflect", "circular")))
        elif what == "output_padding" and transposed:
            limit = max(max(per_dim(kwargs["stride"], dim)), max(per_dim(kwargs["dilation"], dim)))
            kwargs["output_padding"] = draw(st.sampled_from((-1, limit)))
        elif what == "rank":
            shape = invalid_rank(draw, shape, dim)
        elif what == "input_channels" and len(shape) > dim:
            shape = (*shape[: -dim - 1], shape[-dim - 1] + 1, *shape[-dim:])
        elif what == "input_size":
            shape = (*shape[:-dim], *(1,) * dim)
    return name, (cin, cout, ks), kwargs, shape


def same_error(convscope_class, torch_class):
    """Equal classes; a RuntimeError also stands for torch's NotImplementedError (a subclass),
    which torch raises from ``F.pad`` when a non-zero padding mode meets an input of the wrong
    rank (convscope reports the rank, as torch does for ``padding_mode='zeros'``)."""
    if torch_class is NotImplementedError:
        return convscope_class in (RuntimeError, NotImplementedError)
    return convscope_class is torch_class


def torch_call_answer(tmod, x, convscope_answer):
    """torch's answer to ``tmod(x)``: ``("ok", float32 output, dtype)`` or ``("raise", class)``.

    torch's float32 kernels (oneDNN) skip some checks its float64 kernels make: they return an
    empty tensor for an output length of 0 and accept dilation 0 for a depthwise transposed
    layer, where float64 raises RuntimeError.  Where the two disagree, torch has no single
    answer, and the one convscope gave (if either) is taken.
    """
    answers = []
    for dtype in (torch.float32, torch.float64):
        kind, value = outcome(
            lambda d=dtype: torch_forward(copy.deepcopy(tmod).to(d), x.astype(TORCH_TO_NUMPY[d]))
        )
        if kind == "ok":
            value = value.astype(np.float32)
        answers.append((kind, value, dtype))
    if answers[0][0] != answers[1][0] and convscope_answer[0] == answers[1][0]:
        return answers[1]
    return answers[0]


def is_convscope_extension(kwargs):
    """Configurations convscope accepts on purpose where torch raises (see the contract)."""
    stride = per_dim(kwargs["stride"], 1)
    return kwargs.get("padding") == "same" and any(s != 1 for s in stride)


@pytest.mark.parametrize(("name", "dim", "transposed"), CLASSES, ids=CLASS_IDS)
def test_error_class_parity(name, dim, transposed):
    @examples(60)
    @given(maybe_invalid_configs(dim, transposed))
    def inner(config):
        name_, args, kwargs, shape = config
        if is_convscope_extension(kwargs):
            return
        x = np.random.default_rng(4).standard_normal(shape).astype(np.float32)
        t_build = outcome(lambda: getattr(tnn, name_)(*args, **kwargs))
        c_build = outcome(lambda: getattr(nn, name_)(*args, **kwargs))
        what = f"{name_}{args} {kwargs} input {shape}"
        if t_build[0] == "raise":
            assert c_build[0] == "raise" and same_error(c_build[1], t_build[1]), (
                f"{what}: construction: torch {t_build}, convscope {c_build}"
            )
            return
        if c_build[0] == "raise":  # allowed only for what torch checks at call time
            t_call = torch_call_answer(t_build[1], x, c_build)
            assert t_call[0] == "raise" and same_error(c_build[1], t_call[1]), (
                f"{what}: convscope raised {c_build[1]} at construction; torch call {t_call}"
            )
            return
        c_build[1].load_state_dict(torch_state_as_numpy(t_build[1]))
        c_call = outcome(lambda: np.asarray(c_build[1](cs.tensor(x))))
        t_call = torch_call_answer(t_build[1], x, c_call)
        if t_call[0] == "raise":
            assert c_call[0] == "raise" and same_error(c_call[1], t_call[1]), (
                f"{what}: call: torch {t_call}, convscope {c_call}"
            )
        else:
            assert c_call[0] == "ok", f"{what}: torch ok, convscope raised {c_call[1]}"
            scale = magnitude(t_build[1], x, dtype=t_call[2])
            assert_scaled_close(c_call[1], t_call[1], scale, 1e-4, what)

    inner()


@pytest.mark.parametrize(
    ("name", "args", "kwargs"),
    [
        ("Conv2d", (4, 4, 3), {"groups": 0}),
        ("Conv2d", (4, 4, 3), {"groups": -2}),
        ("Conv2d", (3, 4, 3), {"groups": 2}),
        ("Conv2d", (4, 3, 3), {"groups": 2}),
        ("Conv1d", (4, 4, 3), {"padding": "full"}),
        ("Conv3d", (4, 4, 3), {"padding_mode": "mirror"}),
        ("ConvTranspose2d", (4, 4, 3), {"padding_mode": "reflect"}),
        ("ConvTranspose1d", (4, 4, 3), {"padding_mode": "circular"}),
        ("ConvTranspose3d", (4, 6, 3), {"groups": 4}),
    ],
)
def test_construction_errors_are_value_errors(name, args, kwargs):
    with pytest.raises(ValueError):
        getattr(tnn, name)(*args, **kwargs)
    with pytest.raises(ValueError):
        getattr(nn, name)(*args, **kwargs)


def test_wrong_input_rank_message():
    with pytest.raises(RuntimeError, match=r"\[5, 5\]"):
        nn.Conv2d(1, 1, 3)(cs.zeros(5, 5))
    with pytest.raises(RuntimeError, match=r"\[1, 1, 5\]"):
        nn.Conv3d(1, 1, 3)(cs.zeros(1, 1, 5))


# ------------------------------------------------------------- beyond torch: extensions
def padded_reference(tname, args, kwargs, x, pads, mode):
    """torch reference for explicit per-side padding: ``F.pad`` then an unpadded layer."""
    tmod = getattr(tnn, tname)(*args, **kwargs, padding=0)
    flat = [p for before_after in reversed(pads) for p in before_after]
    xt = tF.pad(torch.from_numpy(x), flat, mode=TORCH_PAD_MODE[mode]).numpy()
    return tmod, xt


def check_extension(name, args, kwargs, padding, pads, x, mode="zeros"):
    tmod, xpad = padded_reference(name, args, kwargs, x, pads, mode)
    cmod = getattr(nn, name)(*args, **kwargs, padding=padding, padding_mode=mode)
    cmod.load_state_dict(torch_state_as_numpy(tmod))
    expected = torch_forward(tmod, xpad)
    scale = magnitude(tmod, xpad)
    what = f"{name}{args} {kwargs} padding={padding} mode={mode} x{x.shape}"
    actual = cmod(cs.tensor(x)).numpy()
    assert_scaled_close(actual, expected, scale, 1e-4, what)
    if mode == "zeros":  # the functional form takes the same padding arguments
        functional = getattr(F, functional_name(name))(
            cs.tensor(x), cmod.weight, cmod.bias, padding=padding, **kwargs
        )
        assert_scaled_close(np.asarray(functional), expected, scale, 1e-4, "F." + what)
    return actual


def tf_same_pads(size, k, s, d):
    out = -(-size // s)
    total = max((out - 1) * s + d * (k - 1) + 1 - size, 0)
    return total // 2, total - total // 2


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dim", [1, 2, 3])
def test_same_padding_with_stride(dim, mode):
    """padding='same' with stride > 1 follows TensorFlow: output ceil(size / stride)."""
    rng = np.random.default_rng(5)
    for k, s, d, sizes in [
        (3, 2, 1, (7, 8, 5)),
        (4, 3, 1, (9, 10, 6)),
        (3, 2, 2, (8, 9, 7)),
        (1, 2, 1, (5, 6, 4)),
        (5, 3, 1, (4, 6, 5)),
    ]:
        sizes = sizes[:dim]
        x = random_input(rng, (2, 3, *sizes), np.float32)
        pads = [tf_same_pads(n, k, s, d) for n in sizes]
        y = check_extension(
            f"Conv{dim}d", (3, 4, k), {"stride": s, "dilation": d}, "same", pads, x, mode
        )
        assert y.shape[2:] == tuple(-(-n // s) for n in sizes)


@pytest.mark.parametrize("mode", MODES)
def test_per_side_padding(mode):
    rng = np.random.default_rng(6)
    cases = [
        (1, ((2, 0),)),
        (1, ((0, 3),)),
        (2, ((1, 2), (0, 1))),
        (2, ((2, 2), (3, 0))),
        (3, ((0, 1), (1, 0), (2, 1))),
    ]
    for dim, pads in cases:
        x = random_input(rng, (2, 2) + (5,) * dim, np.float32)
        check_extension(f"Conv{dim}d", (2, 4, 3), {"stride": 1 + (dim == 2)}, pads, pads, x, mode)


def test_causal_padding_conv1d():
    rng = np.random.default_rng(7)
    for k, s, d, length in [(3, 1, 1, 10), (4, 1, 2, 9), (2, 2, 1, 7), (5, 3, 2, 11)]:
        x = random_input(rng, (2, 3, length), np.float32)
        y = check_extension(
            "Conv1d", (3, 2, k), {"stride": s, "dilation": d}, "causal", [(d * (k - 1), 0)], x
        )
        if s == 1:
            assert y.shape[-1] == length


@pytest.mark.parametrize("name", ["Conv2d", "Conv3d"])
def test_causal_padding_rejected_beyond_1d(name):
    with pytest.raises(ValueError):
        getattr(nn, name)(2, 2, 3, padding="causal")


# ---------------------------------------------------------------------------- default init
INIT_SHAPES = [
    ("Conv1d", (8, 16, 5), {}),
    ("Conv2d", (64, 64, 3), {}),
    ("Conv2d", (12, 24, (3, 5)), {"groups": 3}),
    ("Conv3d", (4, 32, 3), {}),
    ("ConvTranspose2d", (64, 64, 3), {}),
    ("ConvTranspose1d", (16, 30, 4), {"groups": 2}),
    ("ConvTranspose3d", (4, 6, 2), {}),
]


def fan_in(weight):
    return weight.shape[1] * int(np.prod(weight.shape[2:]))


@pytest.mark.parametrize(("name", "args", "kwargs"), INIT_SHAPES)
def test_default_init_within_bound(name, args, kwargs):
    cs.manual_seed(0)
    mod = getattr(nn, name)(*args, **kwargs)
    tmod = getattr(tnn, name)(*args, **kwargs)
    assert mod.weight.shape == tuple(tmod.weight.shape)
    bound = 1 / math.sqrt(fan_in(mod.weight))
    for param in (mod.weight, mod.bias):
        values = np.asarray(param)
        assert values.dtype == np.float32
        assert np.all(np.abs(values) <= bound)
        assert np.unique(values).size > 0.9 * values.size  # really random
        if values.size >= 30:  # not squeezed into a fraction of the range (P(fail) < 1e-9)
            assert np.abs(values).max() > 0.5 * bound


def test_default_init_float64_module():
    cs.manual_seed(3)
    mod = nn.Conv3d(4, 8, 3, dtype=cs.float64)
    bound = 1 / math.sqrt(4 * 27)
    for param in (mod.weight, mod.bias):
        assert param.dtype == np.float64
        assert np.all(np.abs(np.asarray(param)) <= bound)
    assert np.abs(np.asarray(mod.weight)).max() > 0.99 * bound


def ks_uniform_pvalue(values, bound):
    stats = pytest.importorskip("scipy.stats")
    return stats.kstest(
        np.asarray(values, np.float64).ravel(), "uniform", args=(-bound, 2 * bound)
    ).pvalue


@pytest.mark.parametrize("name", ["Conv2d", "ConvTranspose2d"])
def test_default_init_is_uniform_like_torch(name):
    """A large layer: KS test against U(-b, b), moments, and the bound torch itself uses."""
    cs.manual_seed(1)
    torch.manual_seed(1)
    mod = getattr(nn, name)(64, 64, 3)
    tmod = getattr(tnn, name)(64, 64, 3)
    bound = 1 / math.sqrt(64 * 9)
    w = np.asarray(mod.weight, np.float64).ravel()
    assert w.size == 36864
    assert ks_uniform_pvalue(w, bound) > 1e-3
    # U(-b, b): mean 0 (sd b/sqrt(3n)), variance b^2/3 (sd of the estimate ~ b^2 * 0.0015)
    assert abs(w.mean()) < 5 * bound / math.sqrt(3 * w.size)
    assert abs(w.var() / (bound**2 / 3) - 1) < 0.03
    # with 36864 draws the maximum is within 1e-3 of the bound (P(fail) ~ e^-37)
    tmax = float(tmod.weight.detach().abs().max())
    cmax = float(np.abs(w).max())
    assert abs(tmax - bound) < 1e-3 * bound
    assert abs(cmax - tmax) < 1e-3 * bound


def test_default_bias_distribution():
    cs.manual_seed(2)
    mod = nn.Conv1d(16, 4096, 1)
    bound = 1 / 4.0
    b = np.asarray(mod.bias)
    assert b.shape == (4096,)
    assert np.all(np.abs(b) <= bound)
    assert ks_uniform_pvalue(b, bound) > 1e-3
    tb = tnn.Conv1d(16, 4096, 1).bias.detach().numpy()
    assert abs(np.abs(tb).max() - np.abs(b).max()) < 0.01 * bound


def test_init_follows_manual_seed():
    cs.manual_seed(123)
    a = nn.Conv2d(3, 4, 3)
    cs.manual_seed(123)
    b = nn.Conv2d(3, 4, 3)
    np.testing.assert_array_equal(np.asarray(a.weight), np.asarray(b.weight))
    np.testing.assert_array_equal(np.asarray(a.bias), np.asarray(b.bias))
    c = nn.Conv2d(3, 4, 3)
    assert not np.array_equal(np.asarray(a.weight), np.asarray(c.weight))


# ----------------------------------------------------------------- parameters, state_dict
def snapshot(mod):
    return {k: np.array(v) for k, v in mod.named_parameters()}


def assert_unchanged(mod, before):
    after = snapshot(mod)
    assert after.keys() == before.keys()
    for k, v in before.items():
        np.testing.assert_array_equal(after[k], v, err_msg=k)


@pytest.mark.parametrize(("name", "dim", "transposed"), CLASSES, ids=CLASS_IDS)
def test_parameters_and_state_dict(name, dim, transposed):
    mod = getattr(nn, name)(4, 6, 3, groups=2)
    tmod = getattr(tnn, name)(4, 6, 3, groups=2)
    assert isinstance(mod.weight, nn.Parameter) and isinstance(mod.weight, cs.Tensor)
    assert mod.weight.requires_grad and mod.bias.requires_grad
    assert mod.weight.shape == tuple(tmod.weight.shape)
    assert mod.bias.shape == (6,)
    params = list(mod.parameters())
    assert len(params) == 2 and params[0] is mod.weight and params[1] is mod.bias
    named = dict(mod.named_parameters())
    assert list(named) == ["weight", "bias"] and named["weight"] is mod.weight
    sd = mod.state_dict()
    assert list(sd) == list(tmod.state_dict()) == ["weight", "bias"]
    other = getattr(nn, name)(4, 6, 3, groups=2)
    other.load_state_dict(sd)
    assert_unchanged(other, snapshot(mod))
    no_bias = getattr(nn, name)(4, 6, 3, bias=False)
    assert no_bias.bias is None
    assert list(no_bias.state_dict()) == ["weight"]
    assert [n for n, _ in no_bias.named_parameters()] == ["weight"]


def test_load_state_dict_accepts_arrays_and_tensors():
    mod = nn.Conv2d(2, 3, 3)
    rng = np.random.default_rng(8)
    w, b = rng.standard_normal((3, 2, 3, 3)), rng.standard_normal(3)
    for convert in (np.asarray, cs.tensor, lambda a: torch.from_numpy(a).numpy()):
        mod.load_state_dict(
            {"weight": convert(w.astype(np.float32)), "bias": convert(b.astype(np.float32))}
        )
        np.testing.assert_array_equal(np.asarray(mod.weight), w.astype(np.float32))
        np.testing.assert_array_equal(np.asarray(mod.bias), b.astype(np.float32))
    # like torch's copy_: the parameter keeps its dtype
    mod.load_state_dict({"weight": w, "bias": b})
    assert mod.weight.dtype == np.float32 and mod.bias.dtype == np.float32
    np.testing.assert_array_equal(np.asarray(mod.weight), w.astype(np.float32))
    assert isinstance(mod.weight, nn.Parameter) and mod.weight.requires_grad


def test_load_state_dict_copies_values():
    """Changing the loaded array afterwards does not change the layer (torch copies too)."""
    mod = nn.Conv1d(1, 1, 2)
    w = np.ones((1, 1, 2), np.float32)
    mod.load_state_dict({"weight": w, "bias": np.zeros(1, np.float32)})
    w[...] = 5
    np.testing.assert_array_equal(np.asarray(mod.weight), np.ones((1, 1, 2)))


BAD_STATE_DICTS = {
    "missing": lambda w, b: {"weight": w},
    "unexpected": lambda w, b: {"weight": w, "bias": b, "running_mean": b},
    "size_mismatch": lambda w, b: {"weight": w, "bias": np.zeros(5, np.float32)},
    "size_mismatch_weight": lambda w, b: {"weight": w[:, :, :2], "bias": b},
}


@pytest.mark.parametrize("case", list(BAD_STATE_DICTS))
def test_load_state_dict_strict_errors_leave_parameters(case):
    mod = nn.Conv2d(2, 3, 3)
    tmod = tnn.Conv2d(2, 3, 3)
    w = np.full((3, 2, 3, 3), 7, np.float32)
    b = np.full(3, 7, np.float32)
    sd = BAD_STATE_DICTS[case](w, b)
    with pytest.raises(RuntimeError):
        tmod.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()})
    before = snapshot(mod)
    with pytest.raises(RuntimeError):
        mod.load_state_dict(sd)
    assert_unchanged(mod, before)
    if case.startswith("size"):  # size mismatch is an error even when not strict
        with pytest.raises(RuntimeError):
            mod.load_state_dict(sd, strict=False)
        assert_unchanged(mod, before)


def test_load_state_dict_non_strict_reports_keys():
    mod = nn.Conv2d(2, 3, 3)
    tmod = tnn.Conv2d(2, 3, 3)
    w = np.full((3, 2, 3, 3), 7, np.float32)
    sd = {"weight": w, "extra": np.zeros(1, np.float32)}
    expected = tmod.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()}, strict=False)
    bias_before = np.array(mod.bias)
    result = mod.load_state_dict(sd, strict=False)
    assert list(result.missing_keys) == expected.missing_keys == ["bias"]
    assert list(result.unexpected_keys) == expected.unexpected_keys == ["extra"]
    np.testing.assert_array_equal(np.asarray(mod.weight), w)
    np.testing.assert_array_equal(np.asarray(mod.bias), bias_before)
    full = mod.load_state_dict({"weight": w, "bias": bias_before})
    if full is not None:
        assert list(full.missing_keys) == [] and list(full.unexpected_keys) == []


def test_double_and_float_convert_parameters():
    mod = nn.ConvTranspose2d(2, 4, 3)
    w32 = np.array(mod.weight)
    assert mod.double() is mod
    assert mod.weight.dtype == np.float64 and mod.bias.dtype == np.float64
    assert isinstance(mod.weight, nn.Parameter) and mod.weight.requires_grad
    np.testing.assert_array_equal(np.asarray(mod.weight), w32.astype(np.float64))
    assert [v.dtype for v in mod.state_dict().values()] == [np.float64, np.float64]
    x = np.random.default_rng(9).standard_normal((1, 2, 4, 4))
    assert mod(cs.tensor(x)).dtype == np.float64
    assert mod.float() is mod
    assert mod.weight.dtype == np.float32 and mod.bias.dtype == np.float32
    np.testing.assert_array_equal(np.asarray(mod.weight), w32)


def test_call_is_forward():
    mod = nn.Conv1d(2, 3, 2)
    x = cs.tensor(np.random.default_rng(10).standard_normal((1, 2, 5)).astype(np.float32))
    np.testing.assert_array_equal(np.asarray(mod(x)), np.asarray(mod.forward(x)))
