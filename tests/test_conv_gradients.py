"""Gradients of every convolution variant against PyTorch, plus finite differences.

Input, weight and bias gradients of conv1d/2d/3d and conv_transpose1d/2d/3d (stride,
dilation, groups/depthwise, every padding form, output_padding), of the padding modes through
the layers, and of convscope's extensions (strided 'same', per-side, causal) checked against
torch running the equivalent explicit padding.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import convscope as cs
import convscope.nn as nn
import convscope.nn.functional as F
from convscope.geometry import resolve_padding

torch = pytest.importorskip("torch")
TF = torch.nn.functional
SETTINGS = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def _grads_both(fn_cs, fn_torch, arrays, upstream_seed=0):
    """Run both, backpropagate the same random upstream gradient, return both grads."""
    ours = [cs.tensor(a, requires_grad=True) for a in arrays]
    theirs = [torch.from_numpy(a.copy()).requires_grad_() for a in arrays]
    y_ref = fn_torch(*theirs)
    upstream = np.random.default_rng(upstream_seed).standard_normal(tuple(y_ref.shape))
    y_ref.backward(torch.from_numpy(upstream))
    y = fn_cs(*ours)
    assert y.shape == tuple(y_ref.shape)
    np.testing.assert_allclose(y.numpy(), y_ref.detach().numpy(), rtol=1e-10, atol=1e-10)
    y.backward(upstream)
    return [t.grad.numpy() for t in ours], [t.grad.numpy() for t in theirs]


def _assert_grads(fn_cs, fn_torch, arrays):
    ours, theirs = _grads_both(fn_cs, fn_torch, arrays)
    for got, want in zip(ours, theirs, strict=True):
        scale = max(np.abs(want).max(), 1.0)
        np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-8 * scale)


@st.composite
def conv_configs(draw):
    nd = draw(st.integers(1, 3))
    transposed = draw(st.booleans())
    groups = draw(st.integers(1, 3))
    cin, cout = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    small = (1, 3) if nd == 3 else (1, 4)
    kernel = tuple(draw(st.integers(*small)) for _ in range(nd))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    size = tuple(draw(st.integers(3, 6 if nd == 3 else 9)) for _ in range(nd))
    padding = tuple(draw(st.integers(0, 2)) for _ in range(nd))
    batched = draw(st.booleans())
    bias = draw(st.booleans())
    out_pad = tuple(
        draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dilation, strict=True)
    )
    return SimpleNamespace(
        nd=nd,
        transposed=transposed,
        groups=groups,
        cin=cin,
        cout=cout,
        kernel=kernel,
        stride=stride,
        dilation=dilation,
        size=size,
        padding=padding,
        batched=batched,
        bias=bias,
        out_pad=out_pad,
    )


@SETTINGS
@given(conv_configs(), st.integers(0, 2**16))
def test_conv_gradients_match_torch(config, seed):
    c = config
    nd, groups, cin, cout, transposed = c.nd, c.groups, c.cin, c.cout, c.transposed
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(((2,) if c.batched else ()) + (cin,) + c.size)
    w_shape = (cin, cout // groups) if transposed else (cout, cin // groups)
    w = rng.standard_normal(w_shape + c.kernel)
    arrays = [x, w] + ([rng.standard_normal(cout)] if c.bias else [])
    name = f"conv_transpose{nd}d" if transposed else f"conv{nd}d"
    kwargs = {"stride": c.stride, "padding": c.padding, "dilation": c.dilation, "groups": groups}
    if transposed:
        kwargs["output_padding"] = c.out_pad
    try:
        getattr(TF, name)(*(torch.from_numpy(a) for a in arrays), **kwargs)
    except RuntimeError:
        return  # an invalid combination: error parity is tested elsewhere
    _assert_grads(
        lambda *t: getattr(F, name)(*t, **kwargs),
        lambda *t: getattr(TF, name)(*t, **kwargs),
        arrays,
    )


@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("padding", [1, 2, "same"])
def test_padding_mode_gradients_through_layers(mode, nd, padding):
    ref = getattr(torch.nn, f"Conv{nd}d")(
        2, 3, 3, padding=padding, padding_mode=mode, dtype=torch.float64
    )
    ours = getattr(nn, f"Conv{nd}d")(2, 3, 3, padding=padding, padding_mode=mode, dtype=cs.float64)
    ours.load_state_dict({k: v.detach().numpy() for k, v in ref.state_dict().items()})
    x = np.random.default_rng(nd).standard_normal((2, 2) + (5,) * nd)
    ref_x = torch.from_numpy(x).requires_grad_()
    upstream = np.random.default_rng(1).standard_normal(tuple(ref(ref_x).shape))
    ref(ref_x).backward(torch.from_numpy(upstream))
    our_x = cs.tensor(x, requires_grad=True)
    ours(our_x).backward(upstream)
    np.testing.assert_allclose(our_x.grad.numpy(), ref_x.grad.numpy(), rtol=1e-10, atol=1e-10)
    for name, param in ours.named_parameters():
        want = getattr(ref, name).grad.numpy()
        np.testing.assert_allclose(param.grad.numpy(), want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize(
    ("padding", "stride", "dilation", "size"),
    [
        ("same", 2, 1, 9),
        ("same", 3, 2, 10),
        ("causal", 1, 2, 8),
        ("causal", 2, 1, 9),
        (((2, 0),), 1, 1, 7),
        (((0, 3),), 2, 2, 9),
    ],
)
def test_extension_gradients_equal_explicit_padding(padding, stride, dilation, size):
    """strided 'same', causal and per-side padding differentiate like pad + conv in torch."""
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal((2, 2, size)), rng.standard_normal((3, 2, 3))
    pads = resolve_padding(padding, (size,), (3,), (stride,), (dilation,))
    torch_pad = [v for pair in reversed(pads) for v in pair]
    _assert_grads(
        lambda a, b: F.conv1d(a, b, stride=stride, padding=padding, dilation=dilation),
        lambda a, b: TF.conv1d(TF.pad(a, torch_pad), b, stride=stride, dilation=dilation),
        [x, w],
    )


def test_only_requested_gradients_are_computed(monkeypatch):
    """A frozen weight gets no gradient, and the weight-gradient convolution is not run."""
    from convscope.ops import conv as conv_ops

    calls = []
    original = conv_ops.conv_general_backward

    def spy(*args, **kwargs):
        calls.append(kwargs["needs"])
        return original(*args, **kwargs)

    monkeypatch.setattr(conv_ops, "conv_general_backward", spy)
    x = cs.randn(1, 2, 6, 6, requires_grad=True)
    w = cs.randn(3, 2, 3, 3)
    F.conv2d(x, w).sum().backward()
    assert calls == [(True, False)]
    assert w.grad is None and x.grad is not None


@pytest.mark.parametrize("transposed", [False, True])
def test_finite_differences(transposed):
    """Central differences on a tiny float64 case agree with the analytic gradients."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((1, 2, 5, 4))
    w = rng.standard_normal((2, 1, 3, 2))
    fn = (
        (lambda a, b: F.conv_transpose2d(a, b, stride=2, padding=1, output_padding=1, groups=2))
        if transposed
        else (
            lambda a, b: F.conv2d(
                a, b, stride=(2, 1), padding=((1, 0), (2, 1)), dilation=(1, 2), groups=2
            )
        )
    )
    upstream = rng.standard_normal(fn(cs.tensor(x), cs.tensor(w)).shape)
    tx, tw = cs.tensor(x, requires_grad=True), cs.tensor(w, requires_grad=True)
    fn(tx, tw).backward(upstream)

    def loss(a, b):
        return float((fn(cs.tensor(a), cs.tensor(b)).numpy() * upstream).sum())

    for array, grad in ((x, tx.grad.numpy()), (w, tw.grad.numpy())):
        numeric = np.zeros_like(array)
        for index in np.ndindex(array.shape):
            saved = array[index]
            array[index] = saved + 1e-6
            up = loss(x, w)
            array[index] = saved - 1e-6
            down = loss(x, w)
            array[index] = saved
            numeric[index] = (up - down) / 2e-6
        np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    ("shape", "groups"),
    [
        ((6, 4, 3), 2),
        ((4, 3, 2, 5), 1),
        ((6, 2, 3, 1, 2), 3),
        ((8, 8, 3, 3), 4),
        ((2, 3), 1),
        # big enough for the compiled copy: partial tiles of 16, groups, a 3-D kernel
        ((130, 68, 3, 3), 2),
        ((40, 64, 3, 3, 3), 1),
    ],
)
def test_transpose_kernel_swaps_roles_and_flips_every_axis(shape, groups):
    """The kernel of a transposed convolution (and of an input gradient): in/out channels
    swapped per group and every spatial axis reversed; applied twice, the identity."""
    from convscope.ops.conv import transpose_kernel

    w = np.random.default_rng(0).standard_normal(shape)
    cin, og, *k = shape
    got = transpose_kernel(w, groups)
    assert got.shape == (og * groups, cin // groups, *k)
    for g in range(groups):
        for o in range(og):
            for c in range(cin // groups):
                want = w[g * (cin // groups) + c, o][(slice(None, None, -1),) * len(k)]
                np.testing.assert_array_equal(got[g * og + o, c], want)
    np.testing.assert_array_equal(transpose_kernel(got, groups), w)


@pytest.mark.parametrize(
    ("nd", "cin", "cout", "groups", "kernel", "stride", "padding", "dilation", "out_pad"),
    [
        (2, 6, 4, 1, 4, 2, 1, 1, 0),  # DCGAN's 4x4/2
        (2, 6, 4, 1, 2, 2, 0, 1, 0),  # U-Net's 2x2/2: no overlap
        (2, 6, 4, 2, 3, (2, 3), (1, 0), (1, 2), (1, 2)),
        (1, 4, 6, 2, 5, 3, 2, 2, 1),
        (3, 4, 2, 1, (2, 3, 3), (2, 1, 2), 1, 1, (1, 0, 0)),
    ],
)
@pytest.mark.parametrize("budget", [None, 16 << 10])
def test_transposed_weight_gradient_unfolds_the_output_gradient_once(
    nd, cin, cout, groups, kernel, stride, padding, dilation, out_pad, budget
):
    """A transposed convolution's weight gradient is one unfolding of the output gradient,
    strided by the layer's stride (no zeros inserted, no split into stride phases), and
    matches torch in float64, also tile by tile in a small workspace."""
    rng = np.random.default_rng(nd + cin)
    x = rng.standard_normal((3, cin) + (5,) * nd)
    kernel = (kernel,) * nd if isinstance(kernel, int) else kernel
    w = rng.standard_normal((cin, cout // groups, *kernel))
    names = ("stride", "padding", "dilation", "groups", "output_padding")
    kwargs = dict(zip(names, (stride, padding, dilation, groups, out_pad), strict=True))
    name = f"conv_transpose{nd}d"
    tx, tw = (torch.from_numpy(a.copy()).requires_grad_() for a in (x, w))
    reference = getattr(TF, name)(tx, tw, **kwargs)
    upstream = np.random.default_rng(1).standard_normal(tuple(reference.shape))
    reference.backward(torch.from_numpy(upstream))
    cx, cw = cs.tensor(x, requires_grad=True), cs.tensor(w, requires_grad=True)
    with cs.workspace_budget(budget or cs.get_workspace_budget()):
        y = getattr(F, name)(cx, cw, **kwargs)
        with cs.record_conv_algorithms() as used:
            y.backward(upstream)
    strides = (stride,) * nd if isinstance(stride, int) else tuple(stride)
    # backward: the input gradient and the weight gradient, both reading the output gradient
    # with the layer's stride (no stride phases, no zeros inserted)
    assert len(used) == 2
    assert used[-1][0] == "unfold"
    assert all(g.stride == strides and max(g.input_dilation) == 1 for _, g in used)
    ours, theirs = (cx.grad.numpy(), cw.grad.numpy()), (tx.grad.numpy(), tw.grad.numpy())
    for got, want in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9 * np.abs(want).max())


@pytest.mark.parametrize(
    "size, groups, direct",
    [
        ((200,), 1, True),
        ((12, 12), 1, True),
        ((12, 12), 3, True),
        ((3, 7, 7), 1, True),
        ((9, 9), 1, False),
    ],
)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_pointwise_weight_gradient_reads_the_input_unfolded_as_it_is(
    monkeypatch, size, groups, direct, dtype
):
    """A 1x1 stride-1 layer's weight gradient on planes of at least
    POINTWISE_GRADIENT_PLANE positions is a sum of per-sample GEMMs on the input as it lies
    (no unfolding copy); smaller planes keep the unfolding.  Both match torch, also with a
    non-contiguous output gradient."""
    from convscope.ops import unfold_gemm

    plane = int(np.prod(size))
    rng = np.random.default_rng(plane + groups)
    x = rng.standard_normal((3, 12, *size)).astype(dtype)
    w = rng.standard_normal((18, 12 // groups, *(1,) * len(size))).astype(dtype)
    upstream = np.random.default_rng(1).standard_normal((18, 3, *size)).astype(dtype)
    upstream = upstream.swapaxes(0, 1)  # not C-contiguous
    name = f"conv{len(size)}d"
    tx, tw = (torch.from_numpy(a.copy()).requires_grad_() for a in (x, w))
    getattr(TF, name)(tx, tw, groups=groups).backward(torch.from_numpy(upstream.copy()))
    unfolded = []
    original = unfold_gemm.unfold
    monkeypatch.setattr(
        unfold_gemm, "unfold", lambda *a, **k: unfolded.append(1) or original(*a, **k)
    )
    cx, cw = cs.tensor(x, requires_grad=True), cs.tensor(w, requires_grad=True)
    getattr(F, name)(cx, cw, groups=groups).backward(upstream)
    assert bool(unfolded) != direct
    tol = 1e-5 if dtype == "float32" else 1e-12
    for got, want in ((cx.grad.numpy(), tx.grad.numpy()), (cw.grad.numpy(), tw.grad.numpy())):
        assert got.dtype == want.dtype == np.dtype(dtype)
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * np.abs(want).max())
