"""``convscope.geometry`` output shapes against the spatial shape of torch's actual outputs."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_functional_parity import (
    assert_same_error,
    hyp,
    outcome,
    single_threaded_torch,  # noqa: F401 - autouse fixture
)

from convscope import geometry

torch = pytest.importorskip("torch")
TF = torch.nn.functional

# max input size per number of spatial dims (1-D also draws long inputs: shapes are cheap)
MAX_SIZE = {1: 2000, 2: 16, 3: 8}


def per_dim(draw, values):
    """A tuple, or a single int when all entries agree (geometry broadcasts it like torch)."""
    values = tuple(values)
    if len(set(values)) == 1 and draw(st.booleans()):
        return values[0]
    return values


@st.composite
def geometry_cases(draw, transposed: bool):
    """Random (possibly impossible) configurations: (input_size, kwargs for geometry)."""
    nd = draw(st.integers(1, 3))
    size = [draw(st.integers(1, MAX_SIZE[nd] if draw(st.booleans()) else 8)) for _ in range(nd)]
    k = [draw(st.integers(1, 6)) for _ in range(nd)]
    s = [draw(st.integers(1, 4)) for _ in range(nd)]
    d = [draw(st.integers(1, 3)) for _ in range(nd)]
    p = [draw(st.integers(0, 5)) for _ in range(nd)]
    kwargs = {
        "kernel_size": per_dim(draw, k),
        "stride": per_dim(draw, s),
        "padding": per_dim(draw, p),
        "dilation": per_dim(draw, d),
    }
    if transposed:
        op = [draw(st.integers(0, max(si, di) - 1)) for si, di in zip(s, d, strict=True)]
        kwargs["output_padding"] = per_dim(draw, op)
    input_size = size[0] if nd == 1 and draw(st.booleans()) else tuple(size)
    return input_size, kwargs


def torch_spatial_shape(input_size, kwargs, transposed: bool) -> tuple:
    """Run the real torch convolution on a 1x1-channel tensor and read its output shape."""
    size = (input_size,) if isinstance(input_size, int) else input_size
    nd = len(size)
    kwargs = dict(kwargs)
    kernel = kwargs.pop("kernel_size")
    kernel = (kernel,) * nd if isinstance(kernel, int) else kernel
    name = f"conv_transpose{nd}d" if transposed else f"conv{nd}d"
    x = torch.zeros((1, 1, *size))
    w = torch.zeros((1, 1, *kernel))
    return tuple(getattr(TF, name)(x, w, **kwargs).shape[2:])


def check_geometry(input_size, kwargs, transposed: bool) -> None:
    fn = geometry.conv_transpose_output_shape if transposed else geometry.conv_output_shape
    ref, ref_err = outcome(lambda: torch_spatial_shape(input_size, kwargs, transposed))
    got, got_err = outcome(lambda: fn(input_size, **kwargs))
    context = f"[{fn.__name__}({input_size!r}, **{kwargs})]"
    if ref_err is not None:
        assert_same_error(ref_err, got, got_err, context)
        return
    if transposed and 0 in ref and type(got_err) is RuntimeError:
        return  # torch's checked kernels reject a zero-size output, some others return it empty
    assert got_err is None, f"torch accepted but geometry raised {got_err!r} {context}"
    assert isinstance(got, tuple), f"expected a tuple, got {type(got)} {context}"
    assert got == ref, f"geometry {got} != torch {ref} {context}"
    assert all(type(v) is int for v in got), f"entries should be Python ints: {got!r} {context}"


@hyp(300)
@given(geometry_cases(transposed=False))
def test_conv_output_shape_matches_torch(case):
    check_geometry(*case, transposed=False)


@hyp(300)
@given(geometry_cases(transposed=True))
def test_conv_transpose_output_shape_matches_torch(case):
    check_geometry(*case, transposed=True)


@pytest.mark.parametrize(
    ("input_size", "kwargs", "transposed"),
    [
        (5, {"kernel_size": 7}, False),  # kernel larger than the input
        ((6, 6), {"kernel_size": (3, 9), "padding": 1}, False),  # ... than the padded input
        ((4, 4, 4), {"kernel_size": 3, "dilation": (1, 1, 3)}, False),  # dilated kernel
        (1, {"kernel_size": 1, "padding": 1}, True),  # negative transposed output
        ((2, 2), {"kernel_size": 1, "padding": (1, 0)}, True),  # zero transposed output
        ((3, 1, 3), {"kernel_size": 2, "padding": (0, 2, 0), "stride": 2}, True),
    ],
)
def test_impossible_configurations_raise_like_torch(input_size, kwargs, transposed):
    ref, ref_err = outcome(lambda: torch_spatial_shape(input_size, kwargs, transposed))
    assert ref_err is not None, f"torch accepted it (shape {ref}): the case is wrong"
    check_geometry(input_size, kwargs, transposed)
