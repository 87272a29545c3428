"""GEMM + fold (col2im) against the reference algorithm and PyTorch."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convscope as cs
import convscope.nn.functional as F
from convscope.ops.conv import conv_general

torch = pytest.importorskip("torch")


@st.composite
def stride_one_calls(draw):
    dims = draw(st.integers(1, 3))
    groups = draw(st.integers(1, 2))
    cg, og = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    size = tuple(draw(st.integers(1, 6)) for _ in range(dims))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(dims))
    input_dilation = tuple(draw(st.integers(1, 3)) for _ in range(dims))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(dims))
    pads = tuple((draw(st.integers(-2, 3)), draw(st.integers(-2, 3))) for _ in range(dims))
    dtype = draw(st.sampled_from([np.float64, np.int64]))
    return dims, groups, cg, og, size, kernel, input_dilation, dilation, pads, dtype


@settings(max_examples=150, deadline=None)
@given(stride_one_calls(), st.sampled_from([None, 1 << 11]))
def test_fold_equals_direct_exactly(call, budget):
    dims, groups, cg, og, size, kernel, input_dilation, dilation, pads, dtype = call
    rng = np.random.default_rng(0)
    x = rng.integers(-4, 5, (2, cg * groups, *size)).astype(dtype)
    w = rng.integers(-3, 4, (og * groups, cg, *kernel)).astype(dtype)
    kwargs = {
        "stride": (1,) * dims,
        "padding": pads,
        "dilation": dilation,
        "input_dilation": input_dilation,
        "groups": groups,
    }
    try:
        want = conv_general(x, w, algorithm="direct", **kwargs)
    except (RuntimeError, ValueError):
        return  # an empty output: nothing to compare
    got = conv_general(x, w, algorithm="fold", workspace_bytes=budget, **kwargs)
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)  # small integers: exact in both dtypes


def test_fold_refuses_strides():
    with pytest.raises(ValueError, match="fold is for stride-1 calls"):
        conv_general(
            np.ones((1, 1, 5)),
            np.ones((1, 1, 2)),
            stride=(2,),
            padding=((0, 0),),
            dilation=(1,),
            algorithm="fold",
        )


@pytest.mark.parametrize(
    ("cin", "cout", "kernel", "stride", "padding", "output_padding", "groups"),
    [
        (12, 3, 4, 2, 1, 0, 1),
        (16, 4, 3, 3, 2, 1, 2),
        (8, 2, (2, 3), (2, 1), 0, (1, 0), 1),
        (8, 4, 4, 2, 1, 0, 1),  # half as many: DCGAN's and U-Net's up-sampling layers
    ],
)
def test_transposed_conv_and_gradients_through_fold(
    cin, cout, kernel, stride, padding, output_padding, groups
):
    """At most half as many output as input channels: the selector takes fold for the
    forward pass."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, cin, 5, 6))
    k = kernel if isinstance(kernel, tuple) else (kernel, kernel)
    w = rng.standard_normal((cin, cout // groups, *k))
    args = {
        "stride": stride,
        "padding": padding,
        "output_padding": output_padding,
        "groups": groups,
    }
    ours = [cs.tensor(a, requires_grad=True) for a in (x, w)]
    theirs = [torch.from_numpy(a.copy()).requires_grad_() for a in (x, w)]
    with cs.record_conv_algorithms() as used:
        y = F.conv_transpose2d(*ours, **args)
    assert used[0][0] == "fold"
    y_ref = torch.nn.functional.conv_transpose2d(*theirs, **args)
    upstream = rng.standard_normal(tuple(y_ref.shape))
    y.backward(cs.tensor(upstream))
    y_ref.backward(torch.from_numpy(upstream))
    np.testing.assert_allclose(y.numpy(), y_ref.detach().numpy(), rtol=1e-10, atol=1e-10)
    for got, want in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(got.grad.numpy(), want.grad.numpy(), rtol=1e-9, atol=1e-9)


def test_transposed_conv_with_as_many_output_channels_runs_by_phases():
    """With as many output as input channels the phases are faster (see ops.conv._plan)."""
    x = cs.tensor(np.random.default_rng(5).standard_normal((2, 6, 5, 5)))
    w = cs.tensor(np.random.default_rng(6).standard_normal((6, 6, 4, 4)))
    with cs.record_conv_algorithms() as used:
        F.conv_transpose2d(x, w, stride=2, padding=1)
    assert used and all(name != "fold" for name, _ in used)


@pytest.mark.parametrize(("padding", "output_padding"), [(0, 0), (1, 0), (0, 1), (1, 1)])
def test_non_overlapping_transposed_convolution_copies_into_every_cell(padding, output_padding):
    """A 2x2 stride-2 transposed convolution (a U-Net's up-sampling): each output cell takes
    one contribution, copied; cells no input reaches (``output_padding``) stay zero, as in
    torch (the fresh output is not zeroed when every cell is reached)."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 6, 5, 7)).astype(np.float32)
    w = rng.standard_normal((6, 3, 2, 2)).astype(np.float32)
    kwargs = {"stride": 2, "padding": padding, "output_padding": output_padding}
    want = torch.nn.functional.conv_transpose2d(torch.from_numpy(x), torch.from_numpy(w), **kwargs)
    with cs.record_conv_algorithms() as used:
        for _ in range(2):  # a recycled output buffer must not leak into uncovered cells
            got = F.conv_transpose2d(cs.tensor(x), cs.tensor(w), **kwargs)
    assert {name for name, _ in used} == {"fold"}
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-6)
