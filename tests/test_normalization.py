"""Normalisation layers against PyTorch: BatchNorm, InstanceNorm, GroupNorm, LayerNorm and
LocalResponseNorm, modules and functional forms.

Values in float32 (~1e-5 relative to the largest magnitude) and float64 (~1e-10); gradients of
the input, weight and bias against torch's autograd; running statistics after a few training
steps; reprs, state_dict keys and exception classes.  A last group checks the accuracy of the
float32 BatchNorm backward on data with a large mean, and the block-wise kernels with tiny
blocks.
"""

from __future__ import annotations

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
from convscope.ops import normalization as norm_ops  # noqa: E402

RTOL = {np.dtype(np.float32): 2e-5, np.dtype(np.float64): 1e-10}
TORCH_DTYPE = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}
DTYPES = [np.float64, np.float32]


# ---------------------------------------------------------------- helpers
def close(actual, expected, what=""):
    """Same shape and dtype; values to the dtype's tolerance relative to the largest expected
    magnitude (at least 1)."""
    a = np.asarray(actual.data if isinstance(actual, cs.Tensor) else actual)
    e = expected.detach().numpy() if isinstance(expected, torch.Tensor) else np.asarray(expected)
    assert a.shape == e.shape, f"{what}: shape {a.shape} != {e.shape}"
    assert a.dtype == e.dtype, f"{what}: dtype {a.dtype} != {e.dtype}"
    if a.dtype.kind != "f":
        np.testing.assert_array_equal(a, e, err_msg=what)
        return
    tol = RTOL[a.dtype]
    scale = max(1.0, float(np.abs(e).max())) if e.size else 1.0
    np.testing.assert_allclose(a, e, rtol=tol, atol=tol * scale, err_msg=what)


def build(name, *args, dtype=np.float64, seed=0, **kwargs):
    """convscope's and torch's ``name(*args, **kwargs)`` with the same random affine
    parameters; the reprs and state_dict keys must agree."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = getattr(tnn, name)(*args, **kwargs).to(TORCH_DTYPE[np.dtype(dtype)])
    if name != "LocalResponseNorm":  # the one without parameters (and no dtype argument)
        kwargs = {**kwargs, "dtype": dtype}
    ours = getattr(nn, name)(*args, **kwargs)
    assert repr(ours) == repr(theirs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in theirs.parameters():
            param.copy_(torch.rand(param.shape, generator=gen, dtype=param.dtype) + 0.5)
    ours.load_state_dict({k: v.detach().numpy().copy() for k, v in theirs.state_dict().items()})
    return ours, theirs


def step(ours, theirs, x, what):
    """One forward and backward through both modules; outputs, input gradients, parameter
    gradients and buffers must agree."""
    ours.zero_grad()
    theirs.zero_grad()
    xc = cs.tensor(x, requires_grad=True)
    xt = torch.tensor(x, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yc, yt = ours(xc), theirs(xt)
    close(yc, yt, f"{what} output")
    up = np.random.default_rng(1).standard_normal(yt.shape).astype(x.dtype)
    (yc * cs.tensor(up)).sum().backward()
    (yt * torch.tensor(up)).sum().backward()
    close(xc.grad, xt.grad, f"{what} input grad")
    their_params = dict(theirs.named_parameters())
    for name, param in ours.named_parameters():
        close(param.grad, their_params[name].grad, f"{what} {name} grad")
    their_buffers = dict(theirs.named_buffers())
    assert [name for name, _ in ours.named_buffers()] == list(their_buffers)
    for name, buffer in ours.named_buffers():
        close(buffer, their_buffers[name], f"{what} buffer {name}")


def same_error(ours, theirs):
    """Both calls raise, with the same exception class; returns ours."""
    with pytest.raises(Exception) as their_error:  # any class: compared below
        theirs()
    with pytest.raises(their_error.type) as our_error:
        ours()
    return our_error.value


# ---------------------------------------------------------------- modules, train and eval
MODULES = [
    ("BatchNorm1d", (5,), {}, (8, 5)),
    ("BatchNorm1d", (3,), {"momentum": None}, (4, 3, 6)),
    ("BatchNorm2d", (4,), {"momentum": 0.3, "eps": 1e-3}, (3, 4, 3, 5)),
    ("BatchNorm2d", (3,), {"affine": False}, (2, 3, 4, 4)),
    ("BatchNorm2d", (3,), {"bias": False}, (2, 3, 2, 2)),
    ("BatchNorm3d", (2,), {"track_running_stats": False}, (2, 2, 3, 3, 2)),
    ("GroupNorm", (4, 16), {}, (2, 16, 3, 3)),
    ("GroupNorm", (1, 6), {"affine": False}, (3, 6, 5)),
    ("GroupNorm", (6, 6), {"eps": 1e-3}, (4, 6)),
    ("GroupNorm", (2, 4), {"bias": False}, (2, 4, 2, 2, 2)),
    ("LayerNorm", (8,), {}, (2, 3, 8)),
    ("LayerNorm", ((3, 4),), {}, (2, 3, 4)),
    ("LayerNorm", (5,), {"elementwise_affine": False}, (4, 5)),
    ("LayerNorm", (6,), {"bias": False, "eps": 1e-6}, (3, 6)),
    ("LayerNorm", ([2, 3, 4],), {}, (2, 3, 4)),
    ("InstanceNorm1d", (3,), {}, (2, 3, 7)),
    ("InstanceNorm1d", (3,), {"affine": True}, (3, 7)),
    ("InstanceNorm2d", (3,), {"affine": True}, (2, 3, 4, 5)),
    ("InstanceNorm2d", (3,), {"track_running_stats": True}, (2, 3, 4, 4)),
    ("InstanceNorm2d", (4,), {"affine": True, "track_running_stats": True}, (4, 3, 3)),
    ("InstanceNorm3d", (2,), {"affine": True, "track_running_stats": True, "momentum": 0.3},
     (2, 2, 3, 3, 3)),
    ("LocalResponseNorm", (5,), {}, (2, 7, 4, 4)),
    ("LocalResponseNorm", (2,), {"alpha": 0.1, "beta": 0.5, "k": 2.0}, (2, 4, 5)),
    ("LocalResponseNorm", (3,), {"alpha": 0.5}, (2, 5, 2, 3, 2)),
    ("LocalResponseNorm", (9,), {"alpha": 1.0}, (1, 4, 3)),
]  # fmt: skip


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("name", "args", "kwargs", "shape"), MODULES)
def test_module_train_and_eval_match_torch(name, args, kwargs, shape, dtype):
    ours, theirs = build(name, *args, dtype=dtype, **kwargs)
    rng = np.random.default_rng(3)
    for i in range(3):  # moves the running statistics away from their defaults
        x = (rng.standard_normal(shape) * (i + 1) + 2 * i).astype(dtype)
        step(ours, theirs, x, f"{name} train step {i}")
    ours.eval()
    theirs.eval()
    step(ours, theirs, (rng.standard_normal(shape) * 2 - 1).astype(dtype), f"{name} eval")


@pytest.mark.parametrize("dtype", DTYPES)
def test_functional_forms_match_torch_with_parameter_gradients(dtype):
    rng = np.random.default_rng(4)
    x = (rng.standard_normal((3, 6, 4, 5)) * 2 + 1).astype(dtype)
    w, b = (rng.uniform(0.5, 1.5, 6).astype(dtype), rng.uniform(-1, 1, 6).astype(dtype))
    lw, lb = (
        rng.uniform(0.5, 1.5, (4, 5)).astype(dtype),
        rng.standard_normal((4, 5)).astype(dtype),
    )
    mean, var = rng.standard_normal(6).astype(dtype), rng.uniform(0.5, 2, 6).astype(dtype)
    calls = {
        "group_norm": lambda L, x, w, b: L.group_norm(x, 3, w, b, eps=1e-4),
        "layer_norm": lambda L, x, w, b: L.layer_norm(x, (4, 5), w, b),
        "instance_norm": lambda L, x, w, b: L.instance_norm(x, weight=w, bias=b),
        "instance_norm_eval": lambda L, x, w, b: L.instance_norm(
            x, L.tensor_(mean), L.tensor_(var), w, b, use_input_stats=False
        ),
        "batch_norm_train": lambda L, x, w, b: L.batch_norm(x, None, None, w, b, True),
        "batch_norm_eval": lambda L, x, w, b: L.batch_norm(
            x, L.tensor_(mean), L.tensor_(var), w, b, False, eps=1e-3
        ),
        "local_response_norm": lambda L, x, w, b: (
            L.local_response_norm(x, 3, 0.5, 0.6, 1.5) * w.reshape(1, 6, 1, 1)
            + b.reshape(1, 6, 1, 1)
        ),
    }
    for name, call in calls.items():
        params = (lw, lb) if name == "layer_norm" else (w, b)
        ours = [cs.tensor(a, requires_grad=True) for a in (x, *params)]
        theirs = [torch.tensor(a, requires_grad=True) for a in (x, *params)]
        yc = call(_Lib(F, cs.tensor), *ours)
        yt = call(_Lib(tF, torch.tensor), *theirs)
        close(yc, yt, f"{name} output")
        up = rng.standard_normal(yt.shape).astype(dtype)
        (yc * cs.tensor(up)).sum().backward()
        (yt * torch.tensor(up)).sum().backward()
        for label, c, t in zip(("input", "weight", "bias"), ours, theirs, strict=True):
            close(c.grad, t.grad, f"{name} {label} grad")


class _Lib:
    """``F`` of either library plus ``tensor_`` (that library's tensor constructor)."""

    def __init__(self, functional, tensor):
        self._functional, self.tensor_ = functional, tensor

    def __getattr__(self, name):
        return getattr(self._functional, name)


def test_functional_running_statistics_updates():
    rng = np.random.default_rng(5)
    x = (rng.standard_normal((4, 3, 6)) * 3 + 2).astype(np.float32)
    stats = {lib: (lib.zeros(3), lib.ones(3)) for lib in (cs, torch)}
    for lib, f in ((cs, F), (torch, tF)):
        f.batch_norm(lib.tensor(x), *stats[lib], training=True, momentum=0.3)
        f.instance_norm(lib.tensor(x), *stats[lib], momentum=0.2)
    for ours, theirs in zip(stats[cs], stats[torch], strict=True):
        close(ours, theirs, "running statistics")


@given(
    kind=st.sampled_from(["group", "layer", "instance"]),
    batch=st.integers(1, 3),
    groups=st.integers(1, 3),
    per_group=st.integers(1, 3),
    spatial=st.lists(st.integers(1, 4), min_size=0, max_size=3),
    dtype=st.sampled_from(DTYPES),
)
@settings(max_examples=30, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
def test_random_configurations_match_torch(kind, batch, groups, per_group, spatial, dtype):
    shape = (batch, groups * per_group, *spatial)
    x = np.random.default_rng(len(spatial)).standard_normal(shape).astype(dtype)
    calls = {
        "group": lambda f, t: f.group_norm(t, groups),
        "layer": lambda f, t: f.layer_norm(t, shape[1:]),
        "instance": lambda f, t: f.instance_norm(t),
    }
    ours, theirs = cs.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    try:
        yt = calls[kind](tF, theirs)
    except Exception as error:  # the same class must come from convscope
        with pytest.raises(type(error)):
            calls[kind](F, ours)
        return
    yc = calls[kind](F, ours)
    close(yc, yt, kind)
    up = np.cos(np.arange(x.size)).reshape(shape).astype(dtype)
    (yc * cs.tensor(up)).sum().backward()
    (yt * torch.tensor(up)).sum().backward()
    close(ours.grad, theirs.grad, f"{kind} grad")


# ---------------------------------------------------------------- subclasses, dtypes, edges
class _OursLayerNorm2d(nn.LayerNorm):
    def forward(self, x):
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class _TheirLayerNorm2d(tnn.LayerNorm):
    def forward(self, x):
        x = x.permute(0, 2, 3, 1)
        x = tF.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


@pytest.mark.parametrize("dtype", DTYPES)
def test_layer_norm_subclass_with_its_own_forward(dtype):
    theirs = _TheirLayerNorm2d(4, eps=1e-6).to(TORCH_DTYPE[np.dtype(dtype)])
    ours = _OursLayerNorm2d(4, eps=1e-6, dtype=dtype)
    with torch.no_grad():
        theirs.weight.uniform_(0.5, 1.5)
        theirs.bias.uniform_(-1, 1)
    ours.load_state_dict({k: v.detach().numpy().copy() for k, v in theirs.state_dict().items()})
    x = (np.random.default_rng(6).standard_normal((2, 4, 3, 5)) + 3).astype(dtype)
    step(ours, theirs, x, "LayerNorm2d")


@pytest.mark.parametrize(
    "call",
    [
        lambda f, x, p: f.layer_norm(x, (3,), p),
        lambda f, x, p: f.group_norm(x, 1, p),
        lambda f, x, p: f.batch_norm(x, None, None, p, training=True),
        lambda f, x, p: f.instance_norm(x, weight=p),
    ],
)
@pytest.mark.parametrize("dtypes", [(np.float32, np.float32), (np.float32, np.float64),
                                    (np.float64, np.float32)])  # fmt: skip
def test_parameter_dtype_rule(call, dtypes):
    x = np.random.default_rng(7).standard_normal((2, 3, 3)).astype(dtypes[0])
    p = np.ones(3, dtypes[1])
    if dtypes[0] == dtypes[1]:
        out = call(F, cs.tensor(x), cs.tensor(p))
        assert out.dtype == call(tF, torch.tensor(x), torch.tensor(p)).numpy().dtype == x.dtype
        return
    error = same_error(
        lambda: call(F, cs.tensor(x), cs.tensor(p)),
        lambda: call(tF, torch.tensor(x), torch.tensor(p)),
    )
    assert "mixed dtype" in str(error)


def test_batch_norm_empty_batch_like_torch():
    ours, theirs = build("BatchNorm2d", 3)
    yc, yt = ours(cs.zeros(0, 3, 2, 2, dtype=np.float64)), theirs(torch.zeros(0, 3, 2, 2).double())
    close(yc, yt, "empty output")
    for name, buffer in ours.named_buffers():
        close(buffer, dict(theirs.named_buffers())[name], name)


def test_instance_norm_warns_when_channels_differ_without_affine():
    with pytest.warns(UserWarning, match="does not match num_features"):
        nn.InstanceNorm1d(3)(cs.rand(2, 4, 5))


def test_local_response_norm_returns_an_empty_input_itself():
    x = cs.zeros(2, 3, 0)
    assert F.local_response_norm(x, 2) is x


# ---------------------------------------------------------------- reprs and state dicts
@pytest.mark.parametrize(
    ("module", "text"),
    [
        (lambda L: L.GroupNorm(4, 16), "GroupNorm(4, 16, eps=1e-05, affine=True, bias=True)"),
        (
            lambda L: L.LayerNorm(8),
            "LayerNorm((8,), eps=1e-05, elementwise_affine=True, bias=True)",
        ),
        (
            lambda L: L.LayerNorm([2, 3], elementwise_affine=False),
            "LayerNorm((2, 3), eps=1e-05, elementwise_affine=False, bias=False)",
        ),
        (
            lambda L: L.InstanceNorm2d(3),
            "InstanceNorm2d(3, eps=1e-05, momentum=0.1, affine=False, bias=False, "
            "track_running_stats=False)",
        ),
        (
            lambda L: L.InstanceNorm1d(3, affine=True, bias=False),
            "InstanceNorm1d(3, eps=1e-05, momentum=0.1, affine=True, bias=False, "
            "track_running_stats=False)",
        ),
        (lambda L: L.LocalResponseNorm(5), "LocalResponseNorm(5, alpha=0.0001, beta=0.75, k=1.0)"),
        (
            lambda L: L.LocalResponseNorm(2, k=2),
            "LocalResponseNorm(2, alpha=0.0001, beta=0.75, k=2)",
        ),
    ],
)
def test_repr_is_torchs(module, text):
    assert repr(module(nn)) == repr(module(tnn)) == text


@pytest.mark.parametrize(
    "module",
    [
        lambda L: L.GroupNorm(2, 4),
        lambda L: L.GroupNorm(2, 4, affine=False),
        lambda L: L.LayerNorm((2, 3), bias=False),
        lambda L: L.InstanceNorm3d(2),
        lambda L: L.InstanceNorm1d(2, affine=True, track_running_stats=True),
        lambda L: L.LocalResponseNorm(3),
    ],
)
def test_state_dict_keys_and_shapes_are_torchs(module):
    ours, theirs = module(nn).state_dict(), module(tnn).state_dict()
    assert list(ours) == list(theirs)
    for key, value in ours.items():
        assert tuple(np.shape(value)) == tuple(theirs[key].shape), key


# ---------------------------------------------------------------- errors
X3 = np.random.default_rng(8).standard_normal((2, 4, 3)).astype(np.float32)

ERRORS = {
    "groups_do_not_divide_module": lambda L, T: L.GroupNorm(3, 4),
    "groups_do_not_divide": lambda L, T: L.F.group_norm(T(X3), 3),
    "groups_negative": lambda L, T: L.F.group_norm(T(X3), -2),
    "groups_float": lambda L, T: L.F.group_norm(T(X3), 2.0),
    "group_weight_size": lambda L, T: L.F.group_norm(T(X3), 2, T(np.ones(3, np.float32))),
    "group_rank": lambda L, T: L.F.group_norm(T(X3[0, 0]), 1),
    "group_one_value": lambda L, T: L.F.group_norm(T(X3[:1, :, 0]), 4),
    "group_int": lambda L, T: L.F.group_norm(T(np.ones((2, 4, 3), np.int64)), 2),
    "layer_shape": lambda L, T: L.F.layer_norm(T(X3), (4,)),
    "layer_shape_module": lambda L, T: L.LayerNorm(4)(T(X3)),
    "layer_shape_int": lambda L, T: L.F.layer_norm(T(X3), 3),
    "layer_shape_empty": lambda L, T: L.F.layer_norm(T(X3), ()),
    "layer_too_long": lambda L, T: L.F.layer_norm(T(X3[0, 0]), (2, 3)),
    "layer_weight_shape": lambda L, T: L.F.layer_norm(T(X3), (3,), T(np.ones(4, np.float32))),
    "layer_int": lambda L, T: L.F.layer_norm(T(np.ones((2, 3), np.int64)), (3,)),
    "instance_one_position": lambda L, T: L.F.instance_norm(T(X3[:, :, :1])),
    "instance_rank_module": lambda L, T: L.InstanceNorm2d(4)(T(X3[0])),
    "instance_affine_channels": lambda L, T: L.InstanceNorm1d(3, affine=True)(T(X3)),
    "instance_one_statistic": lambda L, T: L.F.instance_norm(T(X3), T(np.zeros(4, np.float32))),
    "instance_no_statistics": lambda L, T: L.F.instance_norm(T(X3), use_input_stats=False),
    "instance_weight_size": lambda L, T: L.F.instance_norm(T(X3), weight=T(np.ones(3, np.float32))),
    "lrn_rank": lambda L, T: L.F.local_response_norm(T(X3[0]), 2),
    "lrn_size_zero": lambda L, T: L.F.local_response_norm(T(X3), 0),
    "batch_eps_training": lambda L, T: L.F.batch_norm(T(X3), None, None, training=True, eps=0.0),
    "batch_eps_negative": lambda L, T: L.F.batch_norm(
        T(X3), T(np.zeros(4, np.float32)), T(np.ones(4, np.float32)), eps=-1.0
    ),
    "batch_one_value": lambda L, T: L.BatchNorm1d(4)(T(X3[:1, :, 0])),
    "batch_no_running_var": lambda L, T: L.F.batch_norm(T(X3), T(np.zeros(4, np.float32)), None),
    "batch_weight_size": lambda L, T: L.F.batch_norm(
        T(X3), None, None, T(np.ones(3, np.float32)), training=True
    ),
}


class _Namespace:
    def __init__(self, module, functional):
        self._module, self.F = module, functional

    def __getattr__(self, name):
        return getattr(self._module, name)


@pytest.mark.parametrize("name", list(ERRORS))
def test_errors_have_torchs_class(name):
    call = ERRORS[name]
    same_error(
        lambda: call(_Namespace(nn, F), cs.tensor), lambda: call(_Namespace(tnn, tF), torch.tensor)
    )


def test_error_messages_name_the_values():
    with pytest.raises(
        ValueError, match=r"num_channels \(4\) must be divisible by num_groups \(3\)"
    ):
        nn.GroupNorm(3, 4)
    with pytest.raises(RuntimeError, match=r"input of shape \[2, 4, 3\] and num_groups=3"):
        F.group_norm(cs.tensor(X3), 3)
    with pytest.raises(RuntimeError, match=r"normalized_shape=\[4\], expected input with shape "
                       r"\[\*, 4\], but got input of size\[2, 4, 3\]"):  # fmt: skip
        F.layer_norm(cs.tensor(X3), (4,))
    with pytest.raises(ValueError, match=r"expected 3D or 4D input \(got 2D input\)"):
        nn.InstanceNorm2d(4)(cs.tensor(X3[0]))


# ---------------------------------------------------------------- accuracy and the kernels
def _run(lib, call, x, g, w, b):
    """``call(x, w, b)`` in ``lib`` (convscope or torch), back-propagating ``g``: the output
    and the gradients of x, w and b as float64 arrays."""
    make = cs.tensor if lib is cs else torch.tensor
    xt, wt, bt = (make(a, requires_grad=True) for a in (x, w, b))
    y = call(F if lib is cs else tF, xt, wt, bt)
    y.backward(make(g))
    return [np.asarray(t.data if lib is cs else t.detach().numpy(), np.float64)
            for t in (y, xt.grad, wt.grad, bt.grad)]  # fmt: skip


def _float32_errors(call, shape, channels, offset):
    """Max errors (relative to the largest magnitude) of convscope's and torch's float32
    output, dx, dweight and dbias against torch's float64 result on the same data: values
    around ``offset`` with unit spread, and an upstream gradient correlated with them."""
    rng = np.random.default_rng(9)
    x = (offset + rng.standard_normal(shape)).astype(np.float32)
    g = (0.5 * (x - offset) + rng.standard_normal(shape)).astype(np.float32)
    w = rng.uniform(0.5, 1.5, channels).astype(np.float32)
    b = rng.uniform(-1, 1, channels).astype(np.float32)
    wide = [a.astype(np.float64) for a in (x, g, w, b)]
    reference = _run(torch, call, *wide)

    def errors(values):
        return [
            np.abs(v - r).max() / np.abs(r).max() for v, r in zip(values, reference, strict=True)
        ]

    return errors(_run(cs, call, x, g, w, b)), errors(_run(torch, call, x, g, w, b))


@pytest.mark.parametrize("offset", [100.0, 1000.0])
def test_float32_batch_norm_gradients_as_accurate_as_torchs_with_a_large_mean(offset):
    ours, theirs = _float32_errors(
        lambda f, x, w, b: f.batch_norm(x, None, None, w, b, training=True),
        (8, 16, 14, 14),
        16,
        offset,
    )
    for name, mine, torchs in zip(("output", "dx", "dweight", "dbias"), ours, theirs, strict=True):
        # 1e-7: float32 rounding of the result itself, whatever torch happens to reach
        assert mine <= max(2 * torchs, 1e-7), f"{name}: {mine:.2e} vs torch {torchs:.2e}"
        assert mine < 1e-6, f"{name}: {mine:.2e}"


@pytest.mark.parametrize(
    ("call", "shape", "channels"),
    [
        (lambda f, x, w, b: f.layer_norm(x, (96,), w, b), (64, 96), 96),
        (lambda f, x, w, b: f.group_norm(x, 4, w, b), (4, 16, 10, 10), 16),
        (lambda f, x, w, b: f.instance_norm(x, weight=w, bias=b), (4, 16, 10, 10), 16),
    ],
)
def test_float32_norms_keep_their_digits_with_a_large_mean(call, shape, channels):
    ours, _ = _float32_errors(call, shape, channels, 1000.0)
    for name, mine in zip(("output", "dx", "dweight", "dbias"), ours, strict=True):
        assert mine < 1e-6, f"{name}: {mine:.2e}"  # torch's float32 reaches 1e-5..3e-5 here


def test_eval_batch_norm_is_one_affine_pass(monkeypatch):
    calls = []
    affine = norm_ops.affine

    def spy(x, scale, shift, **kwargs):
        calls.append(kwargs)
        return affine(x, scale, shift, **kwargs)

    monkeypatch.setattr(norm_ops, "affine", spy)
    moments = []
    monkeypatch.setattr(norm_ops, "moments", lambda x: moments.append(1))
    ours, theirs = build("BatchNorm2d", 4, dtype=np.float32)
    ours.eval()
    theirs.eval()
    with torch.no_grad():
        theirs.running_mean.uniform_(-1, 1)
        theirs.running_var.uniform_(0.5, 2)
    ours.load_state_dict({k: v.numpy().copy() for k, v in theirs.state_dict().items()})
    x = np.random.default_rng(10).standard_normal((2, 4, 5, 5)).astype(np.float32)
    with cs.no_grad():
        y = ours(cs.tensor(x))
    assert calls == [{}] and not moments  # x * scale + shift, nothing else
    assert y.grad_fn is None
    close(y, theirs(torch.tensor(x)), "eval output")


@pytest.mark.parametrize("block", [1, 7, 40])
@pytest.mark.parametrize(
    ("name", "args", "shape"),
    [
        ("BatchNorm2d", (3,), (2, 3, 4, 5)),
        ("GroupNorm", (2, 4), (2, 4, 3, 3)),
        ("LayerNorm", (6,), (3, 2, 6)),
        ("InstanceNorm1d", (3,), (2, 3, 9)),
    ],
)
def test_kernels_in_small_blocks(monkeypatch, block, name, args, shape):
    monkeypatch.setattr(norm_ops, "BLOCK", block)
    ours, theirs = build(name, *args)
    x = np.random.default_rng(11).standard_normal(shape)
    step(ours, theirs, x, f"{name} in blocks of {block}")


def test_local_response_norm_of_integers_like_torch():
    x = np.arange(1, 25).reshape(2, 4, 3)
    for size in (1, 2, 3, 5):
        ours = F.local_response_norm(cs.tensor(x), size, alpha=1.0, beta=0.7)
        close(ours, tF.local_response_norm(torch.tensor(x), size, alpha=1.0, beta=0.7), "int")
