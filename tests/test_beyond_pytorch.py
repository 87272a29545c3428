"""convscope's documented extensions beyond PyTorch, checked against explicit torch compositions.

* ``padding='same'`` with stride > 1 follows TensorFlow: output ``ceil(H / s)``, total padding
  ``max((ceil(H/s) - 1) * s + d * (k - 1) + 1 - H, 0)``, floor half before, the rest after;
* per-side padding ``((before, after), ...)``: zero-pad then convolve; for conv_transpose the
  full (padding 0) result cropped per side;
* ``padding='causal'`` for conv1d: left pad ``d * (k - 1)``, nothing on the right.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_functional_parity import (
    LIMITS,
    assert_matches,
    assert_same_error,
    hyp,
    outcome,
    random_array,
    single_threaded_torch,  # noqa: F401 - autouse fixture
    to_torch,
)

import convscope as cs
import convscope.nn.functional as F

torch = pytest.importorskip("torch")
TF = torch.nn.functional


def torch_flat_pad(pairs) -> list[int]:
    """Per-dim (before, after) pairs (first spatial dim first) in torch's F.pad order."""
    return [v for pair in reversed(pairs) for v in pair]


def compare_with_composition(got, compose, x, w, b, context="") -> None:
    """``got`` must equal ``compose(x, w, b)`` (a torch composition on NumPy arrays) within the
    float tolerance relative to the same composition applied to absolute values."""
    ref = compose(x, w, b)

    def f64abs(a):
        return None if a is None else np.abs(a.astype(np.float64))

    scale = compose(f64abs(x), f64abs(w), f64abs(b))
    assert_matches(got, ref, scale, context)


@st.composite
def layer(draw, nd, transposed=False):
    """Channels, groups, kernel, dilation, stride, batch and dtype (no padding, no sizes)."""
    lim = LIMITS[nd]
    groups = draw(st.integers(1, 3))
    cin_g, cout_g = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    return {
        "groups": groups,
        "cin": groups * cin_g,
        "w_shape": (groups * cin_g, cout_g) if transposed else (groups * cout_g, cin_g),
        "cout": groups * cout_g,
        "k": [draw(st.integers(1, lim["k"])) for _ in range(nd)],
        "d": [draw(st.integers(1, lim["d"])) for _ in range(nd)],
        "s": [draw(st.integers(1, lim["s"])) for _ in range(nd)],
        "batch": (draw(st.integers(1, lim["n"])),) if draw(st.booleans()) else (),
        "bias": draw(st.booleans()),
        "dtype": draw(st.sampled_from(["float64", "float32"])),
        "seed": draw(st.integers(0, 2**32 - 1)),
    }


def make_inputs(spec, sizes):
    rng = np.random.default_rng(spec["seed"])
    x = random_array(rng, (*spec["batch"], spec["cin"], *sizes), spec["dtype"])
    w = random_array(rng, (*spec["w_shape"], *spec["k"]), spec["dtype"])
    b = random_array(rng, (spec["cout"],), spec["dtype"]) if spec["bias"] else None
    return x, w, b


# ----------------------------------------------------------------------------- strided 'same'


def tf_same_pairs(sizes, k, s, d):
    pairs = []
    for h, ki, si, di in zip(sizes, k, s, d, strict=True):
        total = max((math.ceil(h / si) - 1) * si + di * (ki - 1) + 1 - h, 0)
        pairs.append((total // 2, total - total // 2))
    return pairs


@st.composite
def same_cases(draw):
    nd = draw(st.integers(1, 3))
    spec = draw(layer(nd))
    sizes = [draw(st.integers(1, LIMITS[nd]["h"])) for _ in range(nd)]
    stride = tuple(spec["s"]) if draw(st.booleans()) else max(spec["s"])
    return nd, spec, sizes, stride


@hyp(200)
@given(same_cases())
def test_strided_same_follows_tensorflow(case):
    nd, spec, sizes, stride = case
    strides = (stride,) * nd if isinstance(stride, int) else stride
    x, w, b = make_inputs(spec, sizes)
    kw = {"dilation": tuple(spec["d"]), "groups": spec["groups"]}
    got = getattr(F, f"conv{nd}d")(x, w, b, stride=stride, padding="same", **kw)
    expected = tuple(math.ceil(h / s) for h, s in zip(sizes, strides, strict=True))
    assert tuple(got.shape[-nd:]) == expected, f"spatial {got.shape} != ceil(H/s) {expected}"
    pairs = tf_same_pairs(sizes, spec["k"], strides, spec["d"])

    def compose(x, w, b):
        padded = TF.pad(to_torch(x), torch_flat_pad(pairs))
        conv = getattr(TF, f"conv{nd}d")
        return conv(padded, to_torch(w), to_torch(b), stride=strides, **kw).numpy()

    compare_with_composition(got, compose, x, w, b, f"[same, stride={stride}, {spec}]")


# ----------------------------------------------------------------------------- per-side padding


@st.composite
def per_side_conv_cases(draw):
    nd = draw(st.integers(1, 3))
    spec = draw(layer(nd))
    pairs = [(draw(st.integers(0, 3)), draw(st.integers(0, 3))) for _ in range(nd)]
    sizes = []
    for ki, di, (before, after) in zip(spec["k"], spec["d"], pairs, strict=True):
        lo = max(1, di * (ki - 1) + 1 - before - after)
        sizes.append(draw(st.integers(lo, max(lo, LIMITS[nd]["h"]))))
    return nd, spec, sizes, tuple(pairs)


@hyp(200)
@given(per_side_conv_cases())
def test_per_side_padding_conv(case):
    nd, spec, sizes, pairs = case
    x, w, b = make_inputs(spec, sizes)
    kw = {"stride": tuple(spec["s"]), "dilation": tuple(spec["d"]), "groups": spec["groups"]}
    got = getattr(F, f"conv{nd}d")(x, w, b, padding=pairs, **kw)

    def compose(x, w, b):
        padded = TF.pad(to_torch(x), torch_flat_pad(pairs))
        return getattr(TF, f"conv{nd}d")(padded, to_torch(w), to_torch(b), **kw).numpy()

    compare_with_composition(got, compose, x, w, b, f"[padding={pairs}, {spec}]")


@st.composite
def per_side_transpose_cases(draw):
    nd = draw(st.integers(1, 3))
    spec = draw(layer(nd, transposed=True))
    sizes = [draw(st.integers(1, LIMITS[nd]["htr"])) for _ in range(nd)]
    op, pairs = [], []
    for h, ki, si, di in zip(sizes, spec["k"], spec["s"], spec["d"], strict=True):
        op.append(draw(st.integers(0, max(si, di) - 1)))
        full = (h - 1) * si + di * (ki - 1) + 1 + op[-1]
        before = draw(st.integers(0, min(3, full - 1)))
        pairs.append((before, draw(st.integers(0, min(3, full - 1 - before)))))
    return nd, spec, sizes, tuple(pairs), tuple(op)


@hyp(200)
@given(per_side_transpose_cases())
def test_per_side_padding_conv_transpose_crops(case):
    """Per-side padding of a transposed conv == the padding-0 result cropped per side."""
    nd, spec, sizes, pairs, op = case
    x, w, b = make_inputs(spec, sizes)
    kw = {"stride": tuple(spec["s"]), "dilation": tuple(spec["d"]), "groups": spec["groups"]}
    name = f"conv_transpose{nd}d"
    got = getattr(F, name)(x, w, b, padding=pairs, output_padding=op, **kw)

    def compose(x, w, b):
        full = getattr(TF, name)(to_torch(x), to_torch(w), to_torch(b), output_padding=op, **kw)
        crop = tuple(slice(lo, full.shape[-nd + i] - hi) for i, (lo, hi) in enumerate(pairs))
        return full[(..., *crop)].numpy()

    compare_with_composition(got, compose, x, w, b, f"[padding={pairs}, op={op}, {spec}]")
    if all(lo == hi for lo, hi in pairs):  # symmetric pairs are torch's own padding
        sym = tuple(lo for lo, _ in pairs)

        def torch_sym(x, w, b):
            conv = getattr(TF, name)
            return conv(
                to_torch(x), to_torch(w), to_torch(b), padding=sym, output_padding=op, **kw
            ).numpy()

        compare_with_composition(got, torch_sym, x, w, b, f"[symmetric padding={sym}]")


# ----------------------------------------------------------------------------- causal conv1d


@st.composite
def causal_cases(draw):
    spec = draw(layer(1))
    length = draw(st.integers(1, LIMITS[1]["h"]))
    return spec, length, draw(st.integers(0, length - 1))


@hyp(200)
@given(causal_cases())
def test_causal_conv1d(case):
    spec, length, t = case
    x, w, b = make_inputs(spec, [length])
    (k,), (d,), (s,) = spec["k"], spec["d"], spec["s"]
    kw = {"stride": s, "dilation": d, "groups": spec["groups"]}
    got = F.conv1d(x, w, b, padding="causal", **kw)

    def compose(x, w, b):
        padded = TF.pad(to_torch(x), (d * (k - 1), 0))
        return TF.conv1d(padded, to_torch(w), to_torch(b), **kw).numpy()

    compare_with_composition(got, compose, x, w, b, f"[causal, {spec}]")
    # y[..., i] reads x[..., : i*s + 1] only: changing the future leaves it unchanged
    future = x.copy()
    future[..., t + 1 :] = 1e3 * random_array(
        np.random.default_rng(t), future[..., t + 1 :].shape, x.dtype
    )
    later = np.asarray(F.conv1d(future, w, b, padding="causal", **kw))
    kept = t // s + 1
    past = cs.tensor(later[..., :kept], dtype=later.dtype)
    compare_with_composition(
        past, lambda *a: compose(*a)[..., :kept], x, w, b, f"[causality at t={t}]"
    )


@pytest.mark.parametrize(
    ("name", "x_shape", "w_shape"),
    [
        ("conv2d", (1, 2, 5, 5), (3, 2, 3, 3)),
        ("conv3d", (1, 2, 4, 4, 4), (3, 2, 2, 2, 2)),
        ("conv2d", (2, 5, 5), (3, 2, 3, 3)),
    ],
)
def test_causal_rejected_for_2d_and_3d(name, x_shape, w_shape):
    x, w = np.ones(x_shape), np.ones(w_shape)
    with pytest.raises(RuntimeError) as info:
        getattr(F, name)(x, w, padding="causal")
    assert not isinstance(info.value, NotImplementedError)
    assert "causal" in str(info.value)


def test_causal_conv_transpose1d_is_rejected_like_any_string():
    """'causal' is a conv1d extension; conv_transpose1d rejects every string like torch does."""
    x, w = np.ones((1, 2, 5)), np.ones((2, 3, 3))
    _, ref_err = outcome(lambda: TF.conv_transpose1d(to_torch(x), to_torch(w), padding="causal"))
    got, got_err = outcome(lambda: F.conv_transpose1d(x, w, padding="causal"))
    assert_same_error(ref_err, got, got_err)


@pytest.mark.parametrize("cls", ["Conv2d", "Conv3d"])
def test_causal_rejected_by_nn_constructors(cls):
    with pytest.raises(ValueError, match="causal"):
        getattr(cs.nn, cls)(2, 3, 3, padding="causal")


def test_causal_nn_conv1d_matches_functional():
    layer_ = cs.nn.Conv1d(2, 4, 3, dilation=2, padding="causal")
    x = np.random.default_rng(0).standard_normal((2, 2, 9)).astype(np.float32)
    y = layer_(cs.tensor(x, dtype=x.dtype))
    weight, bias = np.asarray(layer_.weight), np.asarray(layer_.bias)

    def compose(x, w, b):
        padded = TF.pad(to_torch(x), (4, 0))
        return TF.conv1d(padded, to_torch(w), to_torch(b), dilation=2).numpy()

    compare_with_composition(y, compose, x, weight, bias, "[nn.Conv1d causal]")
