"""The CNN building blocks of ``convscope.nn`` against ``torch.nn``: pooling, batch norm,
resampling, linear, activations, dropout, losses, containers.

Every comparison goes through ``run_both`` (see ``test_autograd_ops``): the same arrays go into
both libraries, outputs must agree in shape, dtype and value (float64 ~1e-10, float32 ~1e-5
relative), and so must the gradients of every input after back-propagating one random upstream
gradient.  Modules get torch's parameters first, so parameter gradients and buffers are
compared too.  Configurations of pooling, batch norm and resampling are drawn by hypothesis;
invalid ones must raise the exception class torch raises.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections import OrderedDict
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")
tnn = torch.nn
tF = torch.nn.functional

from test_autograd_ops import assert_close, run_both  # noqa: E402  (the shared helper)

import convscope as cs  # noqa: E402
import convscope.nn as nn  # noqa: E402
import convscope.nn.functional as F  # noqa: E402
from convscope.ops import pool as pool_ops  # noqa: E402

TORCH_DTYPE = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}
FLOATS = st.sampled_from([np.float64, np.float32])


def examples(n: int) -> settings:
    return settings(
        max_examples=n,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )


def as_arg(draw, values):
    """A per-dimension list as an int when all equal (half of the time), else a tuple."""
    if len(set(values)) == 1 and draw(st.booleans()):
        return values[0]
    return tuple(values)


def per_dim(value, n):
    return tuple(value) if isinstance(value, tuple | list) else (value,) * n


def outcome(call):
    """``('ok', result)`` or ``('error', exception class)``."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return "ok", call()
    except Exception as error:  # any class: it is compared with torch's
        return "error", type(error)


def same_error_or_result(ours, theirs):
    """Both raise the same exception class, or both succeed; the successes for comparison."""
    our_outcome, their_outcome = outcome(ours), outcome(theirs)
    assert our_outcome[0] == their_outcome[0], f"convscope {our_outcome}, torch {their_outcome}"
    if our_outcome[0] == "error":
        assert our_outcome[1] is their_outcome[1], f"{our_outcome[1]} != {their_outcome[1]}"
        return None
    return our_outcome[1], their_outcome[1]


def build(name, *args, dtype=np.float64, **kwargs):
    """The convscope and torch modules ``name(*args, **kwargs)``, torch's state copied over."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = getattr(tnn, name)(*args, **kwargs).to(TORCH_DTYPE[np.dtype(dtype)])
    ours = getattr(nn, name)(*args, **kwargs).to(dtype)
    ours.load_state_dict({k: v.detach().numpy().copy() for k, v in theirs.state_dict().items()})
    assert repr(ours) == repr(theirs)
    return ours, theirs


def check_module(ours, theirs, arrays, what="", **kwargs):
    """``run_both`` through the two modules, then their parameter gradients and buffers."""
    run_both(ours, arrays, torch_fn=theirs, what=what, **kwargs)
    their_params = dict(theirs.named_parameters())
    for name, param in ours.named_parameters():
        if their_params[name].grad is not None:
            assert_close(param.grad, their_params[name].grad, f"{what} grad of {name}")
    their_buffers = dict(theirs.named_buffers())
    assert [name for name, _ in ours.named_buffers()] == list(their_buffers)
    for name, buffer in ours.named_buffers():
        assert_close(buffer, their_buffers[name], f"{what} buffer {name}")


# ================================================================================ pooling
def padding_only_window(size, kernel, stride, padding, dilation, out):
    """True when some window holds no input cell: torch's max-pool backward then writes out of
    bounds (heap corruption), so such configurations are never handed to torch."""
    for h, k, s, p, d, o in zip(size, kernel, stride, padding, dilation, out, strict=True):
        for i in range(max(o, 0)):
            if not any(0 <= i * s - p + j * d < h for j in range(k)):
                return True
    return False


@st.composite
def window_cases(draw, kind):
    """A pooling configuration; about one in four is invalid (torch's error class expected)."""
    n = draw(st.integers(1, 3))
    kernel = [draw(st.integers(1, 4)) for _ in range(n)]
    dilation = [draw(st.integers(1, 3)) if kind == "max" else 1 for _ in range(n)]
    padding = [draw(st.integers(0, k // 2 + (draw(st.integers(0, 15)) == 0))) for k in kernel]
    size = [  # mostly a little larger than the dilated kernel, sometimes smaller
        max(1, d * (k - 1) + 1 - 2 * p + draw(st.integers(-1, 5)))
        for k, d, p in zip(kernel, dilation, padding, strict=True)
    ]
    kwargs = {"kernel_size": as_arg(draw, kernel), "ceil_mode": draw(st.booleans())}
    if any(padding) or draw(st.booleans()):
        kwargs["padding"] = as_arg(draw, padding)
    if draw(st.booleans()):
        kwargs["stride"] = as_arg(draw, [draw(st.integers(1, 3)) for _ in range(n)])
    if kind == "max":
        kwargs["dilation"] = as_arg(draw, dilation)
        kwargs["return_indices"] = draw(st.booleans())
    else:
        kwargs["count_include_pad"] = draw(st.booleans())
        if n > 1 and draw(st.booleans()):
            kwargs["divisor_override"] = draw(st.integers(1, 5))
    lead = (draw(st.integers(1, 3)),)
    if draw(st.booleans()):
        lead = (draw(st.integers(1, 2)), *lead)
    return n, (*lead, *size), draw(FLOATS), kwargs


def pooling_geometry(n, shape, kwargs):
    kernel = per_dim(kwargs["kernel_size"], n)
    stride = per_dim(kwargs.get("stride", kernel), n)
    padding = per_dim(kwargs.get("padding", 0), n)
    dilation = per_dim(kwargs.get("dilation", 1), n)
    out = pool_ops.output_size(shape[-n:], kernel, stride, padding, dilation, kwargs["ceil_mode"])
    return kernel, stride, padding, dilation, out


def ties(shape, dtype, seed=0):
    """Random values on a coarse grid: windows often hold several equal maxima."""
    return (np.round(np.random.default_rng(seed).standard_normal(shape) * 2) / 2).astype(dtype)


def check_pooling(kind, n, shape, dtype, kwargs):
    kernel, stride, padding, dilation, out = pooling_geometry(n, shape, kwargs)
    safe = all(p <= k // 2 for p, k in zip(padding, kernel, strict=True)) and min(out) >= 1
    assume(not (safe and padding_only_window(shape[-n:], kernel, stride, padding, dilation, out)))
    name = f"{kind}_pool{n}d"
    x = ties(shape, dtype)
    ours, theirs = getattr(F, name), getattr(tF, name)
    results = same_error_or_result(
        lambda: ours(cs.tensor(x), **kwargs), lambda: theirs(torch.tensor(x), **kwargs)
    )
    if results is None:
        return
    run_both(lambda t: ours(t, **kwargs), [x], torch_fn=lambda t: theirs(t, **kwargs), what=name)
    module_kwargs = dict(kwargs)
    if n == 1 and kind == "avg":
        module_kwargs.pop("divisor_override", None)
    cmod, tmod = build(f"{kind.capitalize()}Pool{n}d", dtype=dtype, **module_kwargs)
    run_both(cmod, [x], torch_fn=tmod, grad=False, what=f"module {name}")


@examples(100)
@given(window_cases("max"))
def test_max_pool_matches_torch(case):
    check_pooling("max", *case)


@examples(100)
@given(window_cases("avg"))
def test_avg_pool_matches_torch(case):
    check_pooling("avg", *case)


def test_max_pool_nan_and_infinity_like_torch():
    x = np.array([[[1.0, np.nan, 2.0, np.nan, -np.inf, -np.inf, 0.0]]])
    for kwargs in ({"kernel_size": 5, "stride": 1}, {"kernel_size": 2, "padding": 1}):
        run_both(
            lambda t, kw=kwargs: F.max_pool1d(t, return_indices=True, **kw),
            [x],
            torch_fn=lambda t, kw=kwargs: tF.max_pool1d(t, return_indices=True, **kw),
        )


def test_integer_pooling_like_torch():
    x = np.array([[[[1, 2, 4, -3, 5], [0, -7, 3, 3, 9]]]], dtype=np.int64)
    for call in (
        lambda L, t: L.max_pool2d(t, 2, padding=1, return_indices=True),
        lambda L, t: L.avg_pool2d(t, (1, 2), padding=(0, 1)),
        lambda L, t: L.avg_pool2d(t, 2, divisor_override=3, ceil_mode=True),
    ):
        run_both(lambda t, c=call: c(F, t), [x], torch_fn=lambda t, c=call: c(tF, t), grad=False)
    for dtype in (np.uint8, np.int8, np.int32):  # torch max-pools these in 2-D and 3-D
        small = np.abs(x).astype(dtype)
        run_both(
            lambda t: F.max_pool2d(t, (2, 3), 1, (1, 1)),
            [small],
            torch_fn=lambda t: tF.max_pool2d(t, (2, 3), 1, (1, 1)),
            grad=False,
        )


def test_pooling_float16_like_torch():
    x = ties((2, 3, 6, 5), np.float16)
    run_both(
        lambda t: F.avg_pool2d(t, 3, 2, 1), [x], lambda t: tF.avg_pool2d(t, 3, 2, 1), grad=False
    )
    run_both(lambda t: F.max_pool2d(t, 2), [x], lambda t: tF.max_pool2d(t, 2), grad=False)


def test_pooling_within_a_small_workspace_budget():
    x = np.random.default_rng(1).standard_normal((3, 4, 17, 19))
    with cs.workspace_budget(4096):
        run_both(
            lambda t: F.max_pool2d(t, 3, 2, 1, ceil_mode=True),
            [x],
            lambda t: tF.max_pool2d(t, 3, 2, 1, ceil_mode=True),
        )
        run_both(
            lambda t: F.avg_pool2d(t, 3, 2, 1, count_include_pad=False),
            [x],
            lambda t: tF.avg_pool2d(t, 3, 2, 1, count_include_pad=False),
        )


@st.composite
def adaptive_cases(draw):
    n = draw(st.integers(1, 3))
    size = [draw(st.integers(1, 9)) for _ in range(n)]
    wanted = [draw(st.one_of(st.integers(1, 9), st.just(None), st.just(0))) for _ in range(n)]
    output_size = (
        wanted[0] if n == 1 or (len(set(wanted)) == 1 and draw(st.booleans())) else tuple(wanted)
    )
    lead = (2, 3) if draw(st.booleans()) else (3,)
    return n, (*lead, *size), draw(FLOATS), output_size


@examples(50)
@given(adaptive_cases())
def test_adaptive_avg_pool_matches_torch(case):
    n, shape, dtype, output_size = case
    x = np.random.default_rng(2).standard_normal(shape).astype(dtype)
    name = f"adaptive_avg_pool{n}d"
    ours, theirs = getattr(F, name), getattr(tF, name)
    results = same_error_or_result(
        lambda: ours(cs.tensor(x), output_size), lambda: theirs(torch.tensor(x), output_size)
    )
    if results is None:
        return
    empty = 0 in per_dim(output_size, n)  # torch's backward refuses empty outputs
    run_both(lambda t: ours(t, output_size), [x], lambda t: theirs(t, output_size), grad=not empty)
    cmod, tmod = build(f"AdaptiveAvgPool{n}d", output_size, dtype=dtype)
    run_both(cmod, [x], torch_fn=tmod, grad=False)


# ================================================================================ resampling
@st.composite
def resample_cases(draw):
    n = draw(st.integers(1, 3))
    shape = (
        draw(st.integers(1, 2)),
        draw(st.integers(1, 2)),
        *(draw(st.integers(1, 6)) for _ in range(n)),
    )
    kwargs = {"mode": draw(st.sampled_from(["nearest", "nearest-exact"]))}
    if draw(st.booleans()):
        kwargs["size"] = as_arg(draw, [draw(st.integers(1, 11)) for _ in range(n)])
    else:
        scales = [
            draw(st.sampled_from([0.5, 1.0, 1.5, 2.0, 3.0, 0.7, 1.3, 2.2, 2.9])) for _ in range(n)
        ]
        kwargs["scale_factor"] = as_arg(draw, scales)
        kwargs["recompute_scale_factor"] = draw(st.sampled_from([None, True]))
    return n, shape, draw(FLOATS), kwargs


def torch_nearest_backward_is_adjoint(n, shape, kwargs):
    """torch's 1-D and 3-D 'nearest' backward kernels copy (out == in) or halve (out == 2*in)
    indices whatever the scale factor, while the forward applies ``1/scale``: then torch's
    gradient is not the derivative of its output.  convscope's is (see the test below)."""
    scale = kwargs.get("scale_factor")
    if (
        n == 2
        or kwargs["mode"] != "nearest"
        or scale is None
        or kwargs.get("recompute_scale_factor")
    ):
        return True
    for h, s in zip(shape[2:], per_dim(scale, n), strict=True):
        o = math.floor(h * s)
        plain = pool_ops.nearest_segments(h, o, s)[0]
        if not np.array_equal(plain, pool_ops.nearest_segments(h, o, s, shortcuts=True)[0]):
            return False
    return True


@examples(60)
@given(resample_cases())
def test_interpolate_nearest_matches_torch(case):
    n, shape, dtype, kwargs = case
    x = np.random.default_rng(4).standard_normal(shape).astype(dtype)
    results = same_error_or_result(
        lambda: F.interpolate(cs.tensor(x), **kwargs),
        lambda: tF.interpolate(torch.tensor(x), **kwargs),
    )
    if results is None:
        return
    grad = torch_nearest_backward_is_adjoint(n, shape, kwargs)
    run_both(
        lambda t: F.interpolate(t, **kwargs), [x], lambda t: tF.interpolate(t, **kwargs), grad=grad
    )
    module_kwargs = {k: v for k, v in kwargs.items() if k != "recompute_scale_factor"}
    cmod, tmod = build("Upsample", dtype=dtype, **module_kwargs)
    run_both(cmod, [x], torch_fn=tmod, grad=False)


def test_nearest_gradient_is_the_adjoint_where_torch_is_not():
    """``<interpolate(x), g> == <x, grad>``: convscope's gradient is the exact adjoint of its
    (torch-identical) forward, also where torch's 1-D backward disagrees with its forward."""
    x = cs.tensor(np.random.default_rng(5).standard_normal((1, 1, 5)), requires_grad=True)
    y = F.interpolate(x, scale_factor=1.1)  # out == in: torch's backward copies, forward doesn't
    g = np.random.default_rng(6).standard_normal(y.shape)
    y.backward(cs.tensor(g))
    assert math.isclose(float((y.numpy() * g).sum()), float((x.numpy() * x.grad.numpy()).sum()))
    xt = torch.tensor(x.numpy(), requires_grad=True)
    yt = tF.interpolate(xt, scale_factor=1.1)
    yt.backward(torch.tensor(g))
    assert np.array_equal(y.numpy(), yt.detach().numpy())
    assert not np.allclose(x.grad.numpy(), xt.grad.numpy())  # torch's gradient is the odd one


def test_interpolate_integers_and_errors():
    x = np.arange(12, dtype=np.uint8).reshape(1, 1, 3, 4)  # torch: no int64 here
    run_both(
        lambda t: F.interpolate(t, scale_factor=1.5),
        [x],
        lambda t: tF.interpolate(t, scale_factor=1.5),
        grad=False,
    )
    with pytest.raises(NotImplementedError):  # torch: linear wants 3-D input
        F.interpolate(cs.ones(1, 1, 4, 4), scale_factor=2, mode="linear")
    with pytest.raises(NotImplementedError):
        tF.interpolate(torch.ones(1, 1, 4, 4), scale_factor=2, mode="linear")


# ================================================================================ batch norm
@st.composite
def batchnorm_cases(draw):
    dims = draw(st.integers(1, 3))
    rank = draw(st.sampled_from([2, 3])) if dims == 1 else dims + 2
    shape = (
        draw(st.integers(1, 4)),
        draw(st.integers(1, 3)),
        *(draw(st.integers(1, 3)) for _ in range(rank - 2)),
    )
    kwargs = {
        "momentum": draw(st.sampled_from([0.1, None, 0.5, 1.0])),
        "affine": draw(st.booleans()),
        "track_running_stats": draw(st.booleans()),
        "eps": draw(st.sampled_from([1e-5, 1e-3, 0.1])),
    }
    return dims, shape, draw(FLOATS), kwargs, draw(st.integers(1, 3))


@examples(50)
@given(batchnorm_cases())
def test_batch_norm_matches_torch(case):
    dims, shape, dtype, kwargs, steps = case
    rng = np.random.default_rng(7)
    cmod, tmod = build(f"BatchNorm{dims}d", shape[1], dtype=dtype, **kwargs)
    if kwargs["affine"]:
        with torch.no_grad():
            tmod.weight.uniform_(0.5, 1.5)
            tmod.bias.uniform_(-1, 1)
        cmod.load_state_dict({k: v.numpy().copy() for k, v in tmod.state_dict().items()})
    for step in range(steps):
        x = (rng.standard_normal(shape) * (step + 1) + step).astype(dtype)
        cmod.zero_grad()
        tmod.zero_grad()
        results = same_error_or_result(
            lambda x=x: cmod(cs.tensor(x)), lambda x=x: tmod(torch.tensor(x))
        )
        if results is None:
            return
        check_module(cmod, tmod, [x], what=f"train step {step}")
    cmod.eval()
    tmod.eval()
    cmod.zero_grad()
    tmod.zero_grad()
    check_module(cmod, tmod, [rng.standard_normal(shape).astype(dtype)], what="eval")


@pytest.mark.parametrize(
    ("name", "shape"),
    [("BatchNorm2d", (2, 3, 4)), ("BatchNorm1d", (2, 3, 4, 4)), ("BatchNorm3d", (2, 3, 4, 4))],
)
def test_batch_norm_rank_errors(name, shape):
    with pytest.raises(ValueError, match=r"expected .*D input \(got \dD input\)"):
        getattr(nn, name)(3)(cs.rand(*shape))
    with pytest.raises(ValueError):
        getattr(tnn, name)(3)(torch.rand(*shape))


def test_batch_norm_state_dict_and_checkpoints():
    theirs = tnn.BatchNorm2d(4)
    theirs(torch.randn(3, 4, 2, 2) * 3 + 1)
    ours = nn.BatchNorm2d(4)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    assert int(ours.num_batches_tracked) == 1
    assert list(nn.BatchNorm1d(2, affine=False).state_dict()) == list(
        tnn.BatchNorm1d(2, affine=False).state_dict()
    )
    untracked = nn.BatchNorm1d(2, track_running_stats=False)
    assert list(untracked.state_dict()) == ["weight", "bias"]
    assert repr(untracked) == repr(tnn.BatchNorm1d(2, track_running_stats=False))
    assert repr(nn.BatchNorm1d(2, bias=False)) == repr(tnn.BatchNorm1d(2, bias=False))


def test_functional_batch_norm_like_torch():
    x = np.random.default_rng(8).standard_normal((4, 3, 5))
    args = lambda lib, t: (t, lib.zeros(3, dtype=t.dtype), lib.ones(3, dtype=t.dtype))  # noqa: E731
    run_both(
        lambda t: F.batch_norm(*args(cs, t), training=True, momentum=0.3),
        [x],
        lambda t: tF.batch_norm(*args(torch, t), training=True, momentum=0.3),
    )
    run_both(lambda t: F.batch_norm(*args(cs, t)), [x], lambda t: tF.batch_norm(*args(torch, t)))


# ================================================================================ linear etc.
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", [(3,), (2, 3), (4, 2, 3)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_matches_torch(shape, bias, dtype):
    cmod, tmod = build("Linear", 3, 5, bias=bias, dtype=dtype)
    x = np.random.default_rng(9).standard_normal(shape).astype(dtype)
    check_module(cmod, tmod, [x], what="Linear")


def test_linear_default_initialisation():
    cs.manual_seed(0)
    layer = nn.Linear(50, 40)
    assert layer.weight.dtype == np.float32 and layer.weight.shape == (40, 50)
    bound = 1 / math.sqrt(50)
    for param in (layer.weight, layer.bias):
        values = param.numpy()
        assert np.abs(values).max() <= bound and np.abs(values).max() > 0.9 * bound
        assert abs(values.mean()) < 0.1 * bound
    assert nn.Linear(2, 3, dtype=cs.float64).bias.dtype == np.float64
    assert list(nn.Linear(2, 3).state_dict()) == list(tnn.Linear(2, 3).state_dict())


ACTIVATIONS = [
    ("ReLU", ()),
    ("ReLU", (True,)),
    ("LeakyReLU", ()),
    ("LeakyReLU", (0.2, True)),
    ("Sigmoid", ()),
    ("Tanh", ()),
    ("GELU", ()),
    ("GELU", ("tanh",)),
    ("Softmax", (1,)),
    ("Softmax", (-1,)),
    ("Identity", ()),
    ("Flatten", ()),
    ("Flatten", (0, 1)),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("name", "args"), ACTIVATIONS, ids=str)
def test_activation_modules_match_torch(name, args, dtype):
    cmod, tmod = build(name, *args, dtype=dtype)
    x = np.random.default_rng(10).uniform(-4, 4, (2, 3, 4)).astype(dtype)
    x[0, 0, :2] = 0.0
    # ``t * 1``: in-place layers may not write into a leaf that requires grad (torch neither)
    run_both(lambda t: cmod(t * 1), [x], torch_fn=lambda t: tmod(t * 1), what=name)


FUNCTIONALS = {
    "relu": lambda L, t: L.relu(t),
    "leaky_relu": lambda L, t: L.leaky_relu(t, 0.1),
    "sigmoid": lambda L, t: L.sigmoid(t),
    "tanh": lambda L, t: L.tanh(t),
    "gelu": lambda L, t: L.gelu(t),
    "gelu_tanh": lambda L, t: L.gelu(t, approximate="tanh"),
    "softmax": lambda L, t: L.softmax(t, dim=0),
    "log_softmax": lambda L, t: L.log_softmax(t, -1),
    "softmax_dtype": lambda L, t: L.softmax(
        t.float(), 1, dtype=cs.float64 if L is F else torch.float64
    ),
    "linear": lambda L, t: L.linear(t, t[0, :2] * 1),
    "dropout_eval": lambda L, t: L.dropout(t, 0.5, training=False),
    "dropout_zero": lambda L, t: L.dropout(t, 0.0),
}


@pytest.mark.parametrize("name", list(FUNCTIONALS))
def test_functionals_match_torch(name):
    call = FUNCTIONALS[name]
    x = np.random.default_rng(11).uniform(-3, 3, (2, 3, 4))
    run_both(lambda t: call(F, t), [x], torch_fn=lambda t: call(tF, t), what=name)


def test_torch_flatten_semantics():
    for args in [(), (1,), (0, 1), (-2, -1), (1, 1)]:
        run_both(
            lambda t, a=args: F.flatten(t, *a),
            [np.ones((2, 3, 4))],
            torch_fn=lambda t, a=args: torch.flatten(t, *a),
        )
    assert F.flatten(cs.tensor(3.0)).shape == (1,)


def test_softmax_implicit_dim_warns_like_torch():
    x = np.random.default_rng(12).standard_normal((2, 3, 4))
    with pytest.warns(UserWarning, match="Implicit dimension choice for softmax"):
        ours = F.softmax(cs.tensor(x))
    with pytest.warns(UserWarning):
        theirs = tF.softmax(torch.tensor(x))
    assert_close(ours, theirs)
    with pytest.warns(UserWarning):
        assert_close(nn.Softmax()(cs.tensor(x[0])), tnn.Softmax()(torch.tensor(x[0])))


def test_inplace_activations():
    x = cs.tensor([-1.0, 2.0])
    assert F.relu(x, inplace=True) is x and x.tolist() == [0.0, 2.0]
    y = cs.tensor([-1.0, 2.0])
    nn.LeakyReLU(0.5, inplace=True)(y)
    assert y.tolist() == [-0.5, 2.0]
    leaf = cs.tensor([-1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf Variable"):
        F.relu(leaf, inplace=True)
    with pytest.raises(RuntimeError, match="leaf Variable"):
        tF.relu(torch.tensor([-1.0, 2.0], requires_grad=True), inplace=True)
    hidden = leaf * 2
    out = F.relu(hidden, inplace=True)  # in a graph: the result is computed out of place
    out.sum().backward()
    assert leaf.grad.tolist() == [0.0, 2.0]


# ================================================================================ dropout
def test_dropout_statistics_and_scaling():
    cs.manual_seed(3)
    x = cs.tensor(np.random.default_rng(13).uniform(1, 2, 20000), requires_grad=True)
    y = F.dropout(x, p=0.3)
    kept = y.numpy() != 0
    assert abs(kept.mean() - 0.7) < 0.02
    np.testing.assert_allclose(y.numpy()[kept], x.numpy()[kept] / 0.7, rtol=1e-12)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), kept / 0.7, rtol=1e-6)
    xt = torch.tensor(x.numpy())
    assert_close(y, xt * torch.tensor(kept.astype(np.float64)) / 0.7)


def test_dropout_module_modes_and_seeding():
    drop = nn.Dropout(0.5)
    cs.manual_seed(5)
    first = drop(cs.ones(100)).numpy()
    cs.manual_seed(5)
    assert np.array_equal(first, drop(cs.ones(100)).numpy())
    assert drop.eval()(cs.ones(4)).tolist() == [1.0] * 4
    assert F.dropout(cs.ones(3), p=1.0).tolist() == [0.0] * 3
    assert repr(nn.Dropout(0.2, inplace=True)) == repr(tnn.Dropout(0.2, inplace=True))
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError):
            nn.Dropout(bad)
        with pytest.raises(ValueError):
            F.dropout(cs.ones(2), bad)


# ================================================================================ losses
REDUCTIONS = ["mean", "sum", "none"]


def class_targets(shape, classes, ignore_index, seed=14):
    rng = np.random.default_rng(seed)
    target = rng.integers(0, classes, shape)
    if ignore_index is not None:
        target[rng.random(shape) < 0.3] = ignore_index
    return target


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("smoothing", [0.0, 0.25])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("ignore_index", [-100, 1])
@pytest.mark.parametrize("shape", [(5, 4), (4,), (2, 4, 3, 2)], ids=str)
def test_cross_entropy_matches_torch(shape, ignore_index, weighted, smoothing, reduction):
    rng = np.random.default_rng(15)
    x = rng.standard_normal(shape) * 2
    t = class_targets(
        shape[:1] + shape[2:] if len(shape) > 1 else (), shape[min(1, len(shape) - 1)], ignore_index
    )
    w = rng.uniform(0.2, 2.0, shape[min(1, len(shape) - 1)]) if weighted else None
    kwargs = {"ignore_index": ignore_index, "reduction": reduction, "label_smoothing": smoothing}
    run_both(
        lambda a: F.cross_entropy(a, cs.tensor(t), None if w is None else cs.tensor(w), **kwargs),
        [x],
        lambda a: tF.cross_entropy(
            a, torch.tensor(t), None if w is None else torch.tensor(w), **kwargs
        ),
        what="cross_entropy",
    )
    cmod, tmod = build("CrossEntropyLoss", None if w is None else torch.tensor(w), **kwargs)
    assert list(cmod.state_dict()) == list(tmod.state_dict())
    run_both(lambda a: cmod(a, cs.tensor(t)), [x], lambda a: tmod(a, torch.tensor(t)), grad=False)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("smoothing", [0.0, 0.3])
@pytest.mark.parametrize("weighted", [False, True])
def test_cross_entropy_with_probabilities(weighted, smoothing, reduction):
    rng = np.random.default_rng(16)
    x, p = rng.standard_normal((2, 4, 3)), rng.dirichlet(np.ones(4), (2, 3)).transpose(0, 2, 1)
    w = rng.uniform(0.5, 2, 4) if weighted else None
    kwargs = {"reduction": reduction, "label_smoothing": smoothing}
    run_both(
        lambda a, b: F.cross_entropy(a, b, None if w is None else cs.tensor(w), **kwargs),
        [x, p],
        lambda a, b: tF.cross_entropy(a, b, None if w is None else torch.tensor(w), **kwargs),
    )


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("shape", [(6, 3), (3,), (2, 3, 4)], ids=str)
def test_nll_loss_matches_torch(shape, weighted, reduction):
    rng = np.random.default_rng(17)
    logp = np.log(rng.dirichlet(np.ones(3), shape[:1] + shape[2:] if len(shape) > 1 else ()))
    x = np.moveaxis(logp, -1, min(1, len(shape) - 1)).reshape(shape)
    t = class_targets(shape[:1] + shape[2:] if len(shape) > 1 else (), 3, 2)
    w = rng.uniform(0.5, 2, 3) if weighted else None
    run_both(
        lambda a: F.nll_loss(
            a,
            cs.tensor(t),
            None if w is None else cs.tensor(w),
            ignore_index=2,
            reduction=reduction,
        ),
        [x],
        lambda a: tF.nll_loss(
            a,
            torch.tensor(t),
            None if w is None else torch.tensor(w),
            ignore_index=2,
            reduction=reduction,
        ),
    )


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_all_targets_ignored_gives_nan_like_torch(smoothing):
    x = np.random.default_rng(18).standard_normal((3, 4))
    t = np.full(3, -100)
    run_both(
        lambda a: F.cross_entropy(a, cs.tensor(t), label_smoothing=smoothing),
        [x],
        lambda a: tF.cross_entropy(a, torch.tensor(t), label_smoothing=smoothing),
    )


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_mse_loss_matches_torch(reduction, dtype):
    x, y = np.random.default_rng(19).standard_normal((2, 3, 4)).astype(dtype)
    run_both(
        lambda a, b: F.mse_loss(a, b, reduction=reduction),
        [x, y],
        lambda a, b: tF.mse_loss(a, b, reduction=reduction),
    )
    cmod, tmod = build("MSELoss", reduction=reduction)
    run_both(cmod, [x, y], torch_fn=tmod)
    w = np.abs(y) + 0.1
    run_both(
        lambda a, b: F.mse_loss(a, b, reduction=reduction, weight=cs.tensor(w)),
        [x, y],
        lambda a, b: tF.mse_loss(a, b, reduction=reduction, weight=torch.tensor(w)),
    )


def test_mse_loss_broadcast_warns_like_torch():
    x, y = np.ones((3, 4)), np.arange(4.0)
    with pytest.warns(UserWarning, match="different to the input size"):
        ours = F.mse_loss(cs.tensor(x), cs.tensor(y))
    with pytest.warns(UserWarning, match="different to the input size"):
        theirs = tF.mse_loss(torch.tensor(x), torch.tensor(y))
    assert_close(ours, theirs)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weights", ["none", "weight", "pos_weight", "both"])
def test_bce_with_logits_matches_torch(weights, reduction, dtype):
    rng = np.random.default_rng(20)
    x = (rng.standard_normal((4, 3)) * 5).astype(dtype)
    x[0] = [60.0, -60.0, 0.0]  # saturated logits stay finite
    t = rng.uniform(0, 1, (4, 3)).astype(dtype)
    w = rng.uniform(0.5, 2, (1, 3)).astype(dtype) if weights in ("weight", "both") else None
    pw = rng.uniform(0.5, 3, 3).astype(dtype) if weights in ("pos_weight", "both") else None

    def call(lib, a, b):
        to = cs.tensor if lib is F else torch.tensor
        return lib.binary_cross_entropy_with_logits(
            a,
            b,
            None if w is None else to(w),
            reduction=reduction,
            pos_weight=None if pw is None else to(pw),
        )

    run_both(lambda a, b: call(F, a, b), [x, t], lambda a, b: call(tF, a, b))
    cmod, tmod = build(
        "BCEWithLogitsLoss",
        weight=None if w is None else torch.tensor(w),
        reduction=reduction,
        pos_weight=None if pw is None else torch.tensor(pw),
        dtype=dtype,
    )
    assert list(cmod.state_dict()) == list(tmod.state_dict())
    run_both(cmod, [x, t], torch_fn=tmod)


def test_legacy_reduction_flags():
    x, t = np.random.default_rng(21).standard_normal((3, 4)), np.array([0, 1, 3])
    for flags in ({"size_average": False}, {"reduce": False}):
        with pytest.warns(UserWarning):
            cmod = nn.CrossEntropyLoss(**flags)
        with pytest.warns(UserWarning):
            tmod = tnn.CrossEntropyLoss(**flags)
        assert cmod.reduction == tmod.reduction
        run_both(lambda a, c=cmod: c(a, cs.tensor(t)), [x], lambda a, m=tmod: m(a, torch.tensor(t)))


# ================================================================================ containers
def small_layers(lib):
    return [lib.Linear(4, 3), lib.ReLU(), lib.Linear(3, 2)]


def test_sequential_forward_and_parameters():
    ours, theirs = nn.Sequential(*small_layers(nn)), tnn.Sequential(*small_layers(tnn))
    ours.double()
    theirs.double()
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    assert repr(ours) == repr(theirs)
    check_module(ours, theirs, [np.random.default_rng(22).standard_normal((5, 4))])


def test_sequential_container_protocol_like_torch():
    ours, theirs = nn.Sequential(*small_layers(nn)), tnn.Sequential(*small_layers(tnn))
    assert len(ours) == 3 and isinstance(ours[-1], nn.Linear) and ours[1] is list(ours)[1]
    sliced = ours[1:]
    assert isinstance(sliced, nn.Sequential) and list(sliced._modules) == list(theirs[1:]._modules)
    for seq, lib in ((ours, nn), (theirs, tnn)):
        assert seq.append(lib.Tanh()) is seq
        seq.insert(1, lib.Sigmoid())
        del seq[0]
        seq[0] = lib.Identity()
        seq.extend([lib.ReLU()])
    assert repr(ours) == repr(theirs)
    assert [k for k, _ in ours.named_parameters()] == [k for k, _ in theirs.named_parameters()]
    with pytest.raises(IndexError):
        ours[10]
    with pytest.raises(TypeError):
        nn.Sequential(nn.ReLU(), "not a module")


def test_sequential_from_ordered_dict():
    def layers(lib):
        return OrderedDict(conv=lib.Conv2d(1, 2, 3), pool=lib.MaxPool2d(2), flat=lib.Flatten())

    ours, theirs = nn.Sequential(layers(nn)), tnn.Sequential(layers(tnn))
    assert repr(ours) == repr(theirs)
    assert list(ours.state_dict()) == list(theirs.state_dict()) == ["conv.weight", "conv.bias"]
    assert isinstance(ours[0], nn.Conv2d) and ours.pool is ours[1]


def test_module_list_like_torch():
    ours = nn.ModuleList([nn.Linear(2, 2), nn.Linear(2, 2), nn.ReLU()])
    theirs = tnn.ModuleList([tnn.Linear(2, 2), tnn.Linear(2, 2), tnn.ReLU()])
    assert repr(ours) == repr(theirs)  # repeated layers are grouped: (0-1): 2 x Linear(...)
    for modules, lib in ((ours, nn), (theirs, tnn)):
        modules.append(lib.ReLU())
        modules += [lib.Tanh()]
        modules.insert(0, lib.Sigmoid())
        del modules[2]
    assert repr(ours) == repr(theirs)
    assert repr(ours[1:3]) == repr(theirs[1:3]) and len(ours) == len(theirs)
    assert repr(nn.ModuleList()) == repr(tnn.ModuleList())
    holder, torch_holder = nn.Module(), tnn.Module()
    holder.blocks, torch_holder.blocks = ours, theirs
    assert list(holder.state_dict()) == list(torch_holder.state_dict())
    assert repr(holder) == repr(torch_holder)


# ================================================================================ reprs, errors
def repr_pairs(lib):
    return [
        lib.Linear(3, 4),
        lib.Linear(3, 4, bias=False),
        lib.BatchNorm2d(32),
        lib.BatchNorm3d(4, momentum=None, affine=False, track_running_stats=False),
        lib.MaxPool2d(2),
        lib.MaxPool1d(3, 2, 1, 2, True, True),
        lib.MaxPool3d((1, 2, 3), stride=(2, 2, 1)),
        lib.AvgPool1d(3, 1, 1),
        lib.AvgPool2d((2, 3), ceil_mode=True, divisor_override=2),
        lib.AvgPool3d(2),
        lib.AdaptiveAvgPool1d(4),
        lib.AdaptiveAvgPool2d((None, 3)),
        lib.AdaptiveAvgPool3d(1),
        lib.Upsample(scale_factor=2),
        lib.Upsample(size=(3, 4), mode="nearest-exact"),
        lib.Upsample(scale_factor=(1.5, 2)),
        lib.Dropout(),
        lib.Flatten(0, 2),
        lib.Softmax(dim=1),
        lib.Softmax(),
        lib.GELU(),
        lib.LeakyReLU(0.3),
        lib.ReLU(),
        lib.CrossEntropyLoss(label_smoothing=0.1),
        lib.NLLLoss(),
        lib.MSELoss(),
        lib.BCEWithLogitsLoss(),
        lib.Identity(),
        lib.Sequential(lib.Conv2d(1, 2, 3), lib.Sequential(lib.ReLU(), lib.Dropout(0.1))),
    ]


def test_reprs_equal_torch():
    for ours, theirs in zip(repr_pairs(nn), repr_pairs(tnn), strict=True):
        assert repr(ours) == repr(theirs)


X4 = np.random.default_rng(23).standard_normal((1, 2, 5, 5)).astype(np.float32)
LIBS = {
    "ours": SimpleNamespace(F=F, nn=nn, t=cs.tensor),
    "torch": SimpleNamespace(F=tF, nn=tnn, t=torch.tensor),
}
ERRORS = {
    "max_pool_pad_over_half": lambda L: L.F.max_pool2d(L.t(X4), 3, padding=2),
    "max_pool_pad_over_half_dilated": lambda L: L.F.max_pool2d(L.t(X4), 3, padding=2, dilation=2),
    "avg_pool_pad_over_half": lambda L: L.F.avg_pool2d(L.t(X4), 3, padding=2),
    "max_pool_output_too_small": lambda L: L.F.max_pool2d(L.t(X4), 7),
    "avg_pool_output_too_small": lambda L: L.F.avg_pool2d(L.t(X4), 7),
    "max_pool_zero_kernel": lambda L: L.F.max_pool2d(L.t(X4), 0),
    "max_pool_zero_stride": lambda L: L.F.max_pool2d(L.t(X4), 2, stride=0),
    "max_pool_zero_dilation": lambda L: L.F.max_pool2d(L.t(X4), 2, dilation=0),
    "avg_pool_negative_pad": lambda L: L.F.avg_pool2d(L.t(X4), 2, padding=-1),
    "max_pool_rank": lambda L: L.F.max_pool2d(L.t(X4[0, 0]), 2),
    "max_pool1d_rank": lambda L: L.F.max_pool1d(L.t(X4[0, 0, 0]), 2),
    "avg_pool3d_rank": lambda L: L.F.avg_pool3d(L.t(X4[0]), 2),
    "max_pool_tuple_length": lambda L: L.F.max_pool2d(L.t(X4), (2, 2, 2)),
    "avg_pool_tuple_length": lambda L: L.F.avg_pool2d(L.t(X4), 2, stride=(1, 1, 1)),
    "max_pool_float_kernel": lambda L: L.F.max_pool2d(L.t(X4), 2.0),
    "avg_pool_divisor_zero": lambda L: L.F.avg_pool2d(L.t(X4), 2, divisor_override=0),
    "max_pool_zero_channels": lambda L: L.F.max_pool2d(L.t(np.ones((1, 0, 4, 4))), 2),
    "max_pool_bool": lambda L: L.F.max_pool2d(L.t(np.ones((1, 1, 4, 4), bool)), 2),
    "avg_pool_int32": lambda L: L.F.avg_pool2d(L.t(np.ones((1, 1, 4, 4), np.int32)), 2),
    "adaptive_rank": lambda L: L.F.adaptive_avg_pool2d(L.t(X4[0, 0, 0]), 2),
    "adaptive_length": lambda L: L.F.adaptive_avg_pool2d(L.t(X4), (2, 2, 2)),
    "adaptive_negative": lambda L: L.F.adaptive_avg_pool2d(L.t(X4), -1),
    "adaptive_long": lambda L: L.F.adaptive_avg_pool2d(L.t(np.ones((1, 1, 4, 4), np.int64)), 2),
    "interpolate_both": lambda L: L.F.interpolate(L.t(X4), size=2, scale_factor=2.0),
    "interpolate_neither": lambda L: L.F.interpolate(L.t(X4)),
    "interpolate_size_length": lambda L: L.F.interpolate(L.t(X4), size=(2, 2, 2)),
    "interpolate_align_corners": lambda L: L.F.interpolate(L.t(X4), size=2, align_corners=True),
    "interpolate_rank": lambda L: L.F.interpolate(L.t(X4[0, 0]), size=2),
    "interpolate_to_zero": lambda L: L.F.interpolate(L.t(X4), scale_factor=0.1),
    "interpolate_recompute_with_size": lambda L: L.F.interpolate(
        L.t(X4), size=3, recompute_scale_factor=True
    ),
    "batch_norm_one_value": lambda L: L.nn.BatchNorm1d(3)(L.t(np.ones((1, 3), np.float32))),
    "batch_norm_channels": lambda L: L.nn.BatchNorm1d(3)(L.t(np.ones((2, 4), np.float32))),
    "batch_norm_eval_no_stats": lambda L: L.F.batch_norm(L.t(X4), None, None),
    "linear_shapes": lambda L: L.F.linear(L.t(X4), L.t(np.ones((3, 4), np.float32))),
    "linear_dtypes": lambda L: L.F.linear(L.t(X4), L.t(np.ones((3, 5)))),
    "linear_bias": lambda L: L.F.linear(
        L.t(X4), L.t(np.ones((3, 5), np.float32)), L.t(np.ones(4, np.float32))
    ),
    "dropout_p": lambda L: L.F.dropout(L.t(X4), 1.5),
    "gelu_approximate": lambda L: L.F.gelu(L.t(X4), approximate="fast"),
    "softmax_dim": lambda L: L.F.softmax(L.t(X4), 4),
    "softmax_long": lambda L: L.F.softmax(L.t(np.ones(3, np.int64)), 0),
    "flatten_order": lambda L: (
        L.F.flatten(L.t(X4), 2, 1) if L.F is F else torch.flatten(L.t(X4), 2, 1)
    ),
    "flatten_module_rank": lambda L: L.nn.Flatten()(L.t(np.ones(3, np.float32))),
    "ce_target_out_of_bounds": lambda L: L.F.cross_entropy(
        L.t(X4[0, 0]), L.t(np.array([0, 1, 2, 3, 5]))
    ),
    "ce_negative_target": lambda L: L.F.cross_entropy(
        L.t(X4[0, 0]), L.t(np.array([0, 1, 2, 3, -1]))
    ),
    "ce_batch_mismatch": lambda L: L.F.cross_entropy(L.t(X4[0, 0]), L.t(np.array([0, 1]))),
    "ce_target_dtype": lambda L: L.F.cross_entropy(
        L.t(X4[0, 0]), L.t(np.arange(5, dtype=np.int32))
    ),
    "ce_target_2d": lambda L: L.F.cross_entropy(L.t(X4[0, 0]), L.t(np.zeros((5, 1), np.int64))),
    "ce_target_spatial": lambda L: L.F.cross_entropy(L.t(X4), L.t(np.zeros((1, 5, 4), np.int64))),
    "ce_weight_size": lambda L: L.F.cross_entropy(
        L.t(X4[0, 0]), L.t(np.arange(5)), L.t(np.ones(3, np.float32))
    ),
    "ce_smoothing": lambda L: L.F.cross_entropy(
        L.t(X4[0, 0]), L.t(np.arange(5)), label_smoothing=1.5
    ),
    "ce_reduction": lambda L: L.F.cross_entropy(L.t(X4[0, 0]), L.t(np.arange(5)), reduction="avg"),
    "ce_soft_ignore_index": lambda L: L.F.cross_entropy(L.t(X4), L.t(X4), ignore_index=1),
    "ce_scalar_input": lambda L: L.F.cross_entropy(L.t(np.float32(1.0)), L.t(np.int64(0))),
    "nll_out_of_bounds": lambda L: L.F.nll_loss(L.t(X4[0, 0]), L.t(np.array([0, 1, 2, 3, 9]))),
    "bce_sizes": lambda L: L.F.binary_cross_entropy_with_logits(L.t(X4), L.t(X4[0])),
    "bce_pos_weight": lambda L: L.F.binary_cross_entropy_with_logits(
        L.t(X4), L.t(X4), pos_weight=L.t(np.ones(3, np.float32))
    ),
    "mse_broadcast": lambda L: L.F.mse_loss(L.t(X4), L.t(np.ones(3, np.float32))),
    "mse_weight_size": lambda L: L.F.mse_loss(L.t(X4), L.t(X4), weight=L.t(X4[0])),
}


@pytest.mark.parametrize("name", list(ERRORS))
def test_error_classes_match_torch(name):
    call = ERRORS[name]
    assert same_error_or_result(lambda: call(LIBS["ours"]), lambda: call(LIBS["torch"])) is None, (
        "both succeeded"
    )


def test_whole_network_matches_torch():
    """A small CNN built from every kind of block, trained one step in both libraries."""

    def network(lib):
        return lib.Sequential(
            lib.Conv2d(3, 6, 3, padding=1),
            lib.BatchNorm2d(6),
            lib.ReLU(),
            lib.MaxPool2d(2, ceil_mode=True),
            lib.Conv2d(6, 4, 3),
            lib.GELU(),
            lib.AvgPool2d(2, stride=1, padding=1, count_include_pad=False),
            lib.AdaptiveAvgPool2d((3, 2)),
            lib.Upsample(scale_factor=2),
            lib.Flatten(),
            lib.Linear(96, 10),
            lib.LeakyReLU(0.1),
        )

    ours, theirs = network(nn).double(), network(tnn).double()
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    x = np.random.default_rng(24).standard_normal((4, 3, 11, 9))
    t = np.array([1, 2, 3, 9])
    run_both(
        lambda a: F.cross_entropy(ours(a), cs.tensor(t), label_smoothing=0.1),
        [x],
        lambda a: tF.cross_entropy(theirs(a), torch.tensor(t), label_smoothing=0.1),
    )
    for (name, param), (_, their_param) in zip(
        ours.named_parameters(), theirs.named_parameters(), strict=True
    ):
        assert_close(param.grad, their_param.grad, name)
    for (name, buffer), (_, their_buffer) in zip(
        ours.named_buffers(), theirs.named_buffers(), strict=True
    ):
        assert_close(buffer, their_buffer, name)


def test_every_block_is_exported():
    names = [
        "Sequential",
        "ModuleList",
        "Identity",
        "Linear",
        "Flatten",
        "Dropout",
        "BatchNorm1d",
        "BatchNorm2d",
        "BatchNorm3d",
        "ReLU",
        "LeakyReLU",
        "Sigmoid",
        "Tanh",
        "GELU",
        "Softmax",
        "Upsample",
        "CrossEntropyLoss",
        "NLLLoss",
        "MSELoss",
        "BCEWithLogitsLoss",
    ]
    pools = [f"{k}Pool{n}d" for k, n in itertools.product(["Max", "Avg", "AdaptiveAvg"], (1, 2, 3))]
    for name in names + pools:
        assert name in nn.__all__ and hasattr(tnn, name)


def test_reassigning_a_layer_keeps_its_place():
    ours, theirs = (
        nn.Sequential(nn.ReLU(), nn.Linear(2, 2)),
        tnn.Sequential(tnn.ReLU(), tnn.Linear(2, 2)),
    )
    setattr(ours, "0", nn.Tanh())
    setattr(theirs, "0", tnn.Tanh())
    ours[1].weight = nn.Parameter(np.zeros((2, 2), np.float32))
    theirs[1].weight = tnn.Parameter(torch.zeros(2, 2))
    assert repr(ours) == repr(theirs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
