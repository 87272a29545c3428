"""Padding layers, pixel/channel shuffles and Unflatten against torch: values, dtypes,
float64 gradients, reprs and errors."""

from __future__ import annotations

import numpy as np
import pytest

import convscope as cs
import convscope.nn as nn

torch = pytest.importorskip("torch")


def _compare(ours, theirs, shape, dtype=np.float64, grad=True):
    x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    xs = cs.tensor(x, requires_grad=grad)
    xt = torch.tensor(x, requires_grad=grad)
    ys, yt = ours(xs), theirs(xt)
    assert ys.shape == tuple(yt.shape) and ys.dtype == x.dtype
    np.testing.assert_array_equal(ys.detach().numpy(), yt.detach().numpy())
    if grad:
        g = np.random.default_rng(1).standard_normal(ys.shape)
        ys.backward(cs.tensor(g))
        yt.backward(torch.from_numpy(g))
        np.testing.assert_allclose(xs.grad.numpy(), xt.grad.numpy(), rtol=1e-13)


@pytest.mark.parametrize("kind", ["Zero", "Constant", "Reflection", "Replication", "Circular"])
@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize("padding", [1, "tuple"])
def test_padding_layers(kind, dims, padding):
    if padding == "tuple":
        padding = tuple([1, 2, 0, 1, 2, 0][: 2 * dims])
    args = (padding, 2.5) if kind == "Constant" else (padding,)
    ours = getattr(nn, f"{kind}Pad{dims}d")(*args)
    theirs = getattr(torch.nn, f"{kind}Pad{dims}d")(*args)
    assert repr(ours) == repr(theirs)
    _compare(ours, theirs, (2, 3) + (4,) * dims)
    if kind in ("Zero", "Constant"):
        _compare(ours, theirs, (2, 3) + (4,) * dims, dtype=np.int64, grad=False)


@pytest.mark.parametrize(
    ("ours", "theirs", "shape"),
    [
        (nn.PixelShuffle(2), torch.nn.PixelShuffle(2), (2, 8, 3, 5)),
        (nn.PixelShuffle(3), torch.nn.PixelShuffle(3), (9, 2, 2)),
        (nn.PixelUnshuffle(2), torch.nn.PixelUnshuffle(2), (2, 3, 4, 6)),
        (nn.ChannelShuffle(3), torch.nn.ChannelShuffle(3), (2, 6, 3, 3)),
        (nn.Unflatten(1, (2, 6)), torch.nn.Unflatten(1, (2, 6)), (3, 12, 2)),
        (nn.Unflatten(-1, (-1, 2)), torch.nn.Unflatten(-1, (-1, 2)), (3, 4)),
    ],
)
def test_rearranging_layers(ours, theirs, shape):
    assert repr(ours) == repr(theirs)
    _compare(ours, theirs, shape)


@pytest.mark.parametrize(
    ("layer", "shape"),
    [
        (lambda m: m.PixelShuffle(2), (1, 3, 2, 2)),
        (lambda m: m.PixelUnshuffle(2), (1, 3, 3, 2)),
        (lambda m: m.ChannelShuffle(2), (1, 3, 2, 2)),
        (lambda m: m.Unflatten(1, (2, 2)), (1, 5)),
        (lambda m: m.ReflectionPad1d(3), (1, 2, 3)),
    ],
)
def test_errors_match_torch(layer, shape):
    with pytest.raises(RuntimeError):
        layer(torch.nn)(torch.zeros(shape))
    with pytest.raises(RuntimeError):
        layer(nn)(cs.zeros(*shape))


@pytest.mark.parametrize(
    ("dims", "shape", "output_size"),
    [
        (1, (2, 3, 10), 4),
        (1, (3, 7), 7),
        (2, (2, 3, 9, 7), (4, 3)),
        (2, (2, 3, 5, 7), (None, 2)),
        (2, (1, 2, 7, 7), 1),
        (3, (1, 2, 5, 6, 7), (2, 3, 4)),
    ],
)
def test_adaptive_max_pool(dims, shape, output_size):
    ours = getattr(nn, f"AdaptiveMaxPool{dims}d")(output_size, return_indices=True)
    theirs = getattr(torch.nn, f"AdaptiveMaxPool{dims}d")(output_size, return_indices=True)
    assert repr(ours) == repr(theirs)
    x = np.random.default_rng(3).standard_normal(shape)
    xs, xt = cs.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    (ys, is_), (yt, it) = ours(xs), theirs(xt)
    np.testing.assert_array_equal(ys.detach().numpy(), yt.detach().numpy())
    np.testing.assert_array_equal(is_.numpy(), it.numpy())
    g = np.random.default_rng(4).standard_normal(ys.shape)
    ys.backward(cs.tensor(g))
    yt.backward(torch.from_numpy(g))
    np.testing.assert_allclose(xs.grad.numpy(), xt.grad.numpy(), rtol=1e-13)
    plain = getattr(nn, f"AdaptiveMaxPool{dims}d")(output_size)(cs.tensor(x.astype(np.float32)))
    assert plain.dtype == np.float32 and plain.shape == ys.shape
