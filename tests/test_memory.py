"""The workspace budget: results do not depend on it, and it bounds the memory a call takes."""

from __future__ import annotations

import os
import tracemalloc

import numpy as np
import pytest

import convscope as cs
import convscope.nn as nn
import convscope.nn.functional as F

MiB = 1 << 20
TINY = 16 << 10


# --------------------------------------------------------------------------- budget API
def test_default_budget_and_setters():
    if "CONVSCOPE_WORKSPACE_BYTES" not in os.environ:
        assert cs.get_workspace_budget() == 512 * MiB
    before = cs.get_workspace_budget()
    cs.set_workspace_budget(3 * MiB)
    try:
        assert cs.get_workspace_budget() == 3 * MiB
    finally:
        cs.set_workspace_budget(before)
    assert cs.get_workspace_budget() == before


def test_budget_context_manager_restores_on_error():
    before = cs.get_workspace_budget()
    with pytest.raises(KeyError), cs.workspace_budget(TINY):
        assert cs.get_workspace_budget() == TINY
        raise KeyError
    assert cs.get_workspace_budget() == before


# ------------------------------------------------------------------ same result, any budget
def magnitude_bound(make_layer, layer, x):
    """``|x| conv |w| + |b|``: a fresh layer from ``make_layer`` loaded with absolute values."""
    absolute = make_layer()
    absolute.load_state_dict({k: np.abs(np.asarray(v)) for k, v in layer.state_dict().items()})
    return np.asarray(absolute(cs.tensor(np.abs(x)))).astype(np.float64)


BUDGET_CASES = [
    ("Conv1d", (4, 6, 3), {"stride": 2, "padding": 2, "dilation": 2}, (2, 4, 300)),
    ("Conv1d", (4, 4, 5), {"padding": "same", "padding_mode": "reflect", "groups": 2}, (4, 200)),
    ("Conv1d", (3, 5, 4), {"padding": 3, "padding_mode": "circular"}, (2, 3, 150)),
    ("Conv2d", (4, 6, 3), {"padding": 1}, (2, 4, 24, 20)),
    (
        "Conv2d",
        (6, 6, 3),
        {"padding": 2, "padding_mode": "reflect", "groups": 3, "stride": (1, 2)},
        (2, 6, 17, 21),
    ),
    (
        "Conv2d",
        (4, 8, (3, 2)),
        {"padding": (2, 1), "padding_mode": "replicate", "dilation": (1, 3)},
        (4, 19, 23),
    ),
    ("Conv2d", (2, 4, 3), {"padding": 3, "padding_mode": "circular"}, (2, 2, 16, 16)),
    ("Conv3d", (3, 4, 3), {"padding": 1}, (2, 3, 9, 10, 11)),
    (
        "Conv3d",
        (4, 4, 2),
        {"padding": 1, "padding_mode": "reflect", "groups": 2, "stride": 2},
        (1, 4, 10, 9, 12),
    ),
    ("Conv3d", (2, 3, 3), {"padding": "same", "padding_mode": "circular"}, (2, 8, 8, 8)),
    ("ConvTranspose1d", (4, 6, 3), {"stride": 3, "output_padding": 2}, (2, 4, 120)),
    (
        "ConvTranspose2d",
        (4, 6, 3),
        {"stride": 2, "padding": 1, "output_padding": 1, "groups": 2},
        (2, 4, 14, 12),
    ),
    ("ConvTranspose2d", (3, 2, 2), {"dilation": 2, "stride": 1}, (3, 20, 20)),
    ("ConvTranspose3d", (3, 4, 3), {"stride": (1, 2, 2), "padding": 1}, (2, 3, 6, 7, 8)),
]


@pytest.mark.parametrize(("name", "args", "kwargs", "shape"), BUDGET_CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tiny_budget_gives_the_same_result(name, args, kwargs, shape, dtype):
    def make_layer():
        return getattr(nn, name)(*args, **kwargs, dtype=dtype)

    cs.manual_seed(0)
    layer = make_layer()
    x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    reference = layer(cs.tensor(x)).numpy().copy()
    with cs.workspace_budget(TINY):
        small = layer(cs.tensor(x)).numpy()
    assert small.shape == reference.shape and small.dtype == reference.dtype
    # chunking may only change the order of a few additions
    tolerance = (1e-6 if dtype == np.float32 else 1e-14) * magnitude_bound(make_layer, layer, x)
    assert np.all(np.abs(small.astype(np.float64) - reference) <= tolerance), name


@pytest.mark.parametrize("transposed", [False, True], ids=["conv", "conv_transpose"])
@pytest.mark.parametrize("dim", [1, 2, 3])
def test_tiny_budget_integer_functional_is_exact(dim, transposed):
    rng = np.random.default_rng(dim)
    x = cs.tensor(rng.integers(-4, 5, (2, 4) + (12,) * dim))
    w = cs.tensor(rng.integers(-4, 5, (4, 2) + (3,) * dim))
    b = cs.tensor(rng.integers(-4, 5, 4))  # 4 output channels either way
    fn = getattr(F, ("conv_transpose" if transposed else "conv") + f"{dim}d")
    kwargs = {"stride": 2, "padding": 1, "groups": 2}
    reference = fn(x, w, b, **kwargs).numpy().copy()
    with cs.workspace_budget(TINY):
        small = fn(x, w, b, **kwargs).numpy()
    assert small.dtype == np.int64
    np.testing.assert_array_equal(small, reference)


# ------------------------------------------------------------------ a large 3-D convolution
BIG_SHAPE = (1, 16, 64, 128, 128)  # 64 MiB in float32; an im2col matrix would be 1.7 GiB


@pytest.fixture(scope="module")
def big_case():
    cs.manual_seed(0)
    layer = nn.Conv3d(16, 16, 3, padding=1)
    x = np.random.default_rng(0).standard_normal(BIG_SHAPE, dtype=np.float32)
    return layer, x


def traced_forward(layer, x):
    """Run ``layer`` on ``x`` and return (output array, peak bytes traced during the call)."""
    inp = cs.tensor(x)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        out = layer(inp)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return np.asarray(out), peak


def direct_value(x, weight, bias, o, d, h, w):
    """Output ``(0, o, d, h, w)`` of a 3x3x3 convolution with zero padding 1, in float64."""
    window = np.zeros((x.shape[1], 3, 3, 3))
    lo = [max(i - 1, 0) for i in (d, h, w)]
    hi = [min(i + 2, n) for i, n in zip((d, h, w), x.shape[2:], strict=True)]
    target = tuple(
        slice(a - (i - 1), b - (i - 1)) for a, b, i in zip(lo, hi, (d, h, w), strict=True)
    )
    window[(slice(None), *target)] = x[
        (0, slice(None), *(slice(a, b) for a, b in zip(lo, hi, strict=True)))
    ]
    terms = window * weight[o].astype(np.float64)
    return terms.sum() + float(bias[o]), np.abs(terms).sum() + abs(float(bias[o]))


POSITIONS = [
    (0, 0, 0, 0),
    (15, 63, 127, 127),
    (3, 0, 64, 127),
    (7, 31, 0, 5),
    (11, 63, 1, 126),
    (5, 32, 64, 64),
    (9, 1, 127, 0),
    (2, 40, 77, 13),
]


def check_positions(y, layer, x):
    weight, bias = np.asarray(layer.weight), np.asarray(layer.bias)
    for o, d, h, w in POSITIONS:
        value, scale = direct_value(x, weight, bias, o, d, h, w)
        assert abs(float(y[0, o, d, h, w]) - value) <= 1e-4 * scale, (o, d, h, w)


def test_big_conv3d_default_budget(big_case):
    layer, x = big_case
    y, peak = traced_forward(layer, x)
    assert y.shape == BIG_SHAPE and y.dtype == np.float32
    assert peak < 1.25 * 1024 * MiB, f"peak traced memory {peak / MiB:.0f} MiB"
    check_positions(y, layer, x)


def test_big_conv3d_small_budget(big_case):
    layer, x = big_case
    budget, slack = 64 * MiB, 32 * MiB
    with cs.workspace_budget(budget):
        y, peak = traced_forward(layer, x)
    assert y.shape == BIG_SHAPE and y.dtype == np.float32
    limit = x.nbytes + y.nbytes + budget + slack
    assert peak < limit, f"peak traced memory {peak / MiB:.0f} MiB > {limit / MiB:.0f} MiB"
    check_positions(y, layer, x)


def test_weight_gradient_stays_within_the_budget():
    """The weight gradient swaps batch and channels of input and gradient a chunk at a time."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((16, 32, 64, 64), dtype=np.float32)  # 8 MiB
    w = cs.tensor(rng.standard_normal((32, 32, 3, 3), dtype=np.float32), requires_grad=True)
    upstream = rng.standard_normal((16, 32, 64, 64), dtype=np.float32)
    y = F.conv2d(cs.tensor(x), w, padding=1)
    y.backward(cs.tensor(upstream))
    reference = w.grad.numpy().copy()
    w.grad = None
    budget = 2 * MiB
    with cs.workspace_budget(budget):
        y, seed = F.conv2d(cs.tensor(x), w, padding=1), cs.tensor(upstream)
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            y.backward(seed)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert peak < budget + 2 * MiB, f"peak traced memory {peak / MiB:.1f} MiB"
    scale = np.abs(x).sum() * np.abs(upstream).max()
    assert np.abs(w.grad.numpy() - reference).max() <= 1e-6 * scale
