"""Differential tests: ``convscope.nn.functional.pad`` against ``torch.nn.functional.pad``.

All four modes, 1-3 padded dims, positive / zero / negative pads, ``value`` for constant mode and
integer dtypes -- compared exactly (padding only moves data).  Invalid calls must raise torch's
exception class.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_functional_parity import (
    assert_matches,
    assert_no_error,
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

MODES = ("constant", "reflect", "replicate", "circular")
DTYPES = ("float64", "float32", "float16", "int64", "int32", "uint8")


def circular_well_defined(shape, pad) -> bool:
    """torch's circular pad crops first, then wraps the cropped part; a positive pad longer than
    the cropped part makes torch copy from uninitialised memory (it only checks against the
    uncropped size).  Only the well-defined region is compared."""
    for i in range(len(pad) // 2):
        n = shape[-1 - i]
        before, after = pad[2 * i], pad[2 * i + 1]
        kept = n + min(before, 0) + min(after, 0)
        if max(before, 0) > kept or max(after, 0) > kept:
            return False
    return True


def valid_pairs(mode: str, n: int) -> list[tuple[int, int]]:
    """(before, after) pads torch accepts for a dim of size ``n``, simplest first."""
    lo, hi = {
        "constant": (-n, 4),
        "reflect": (1 - n, n - 1),
        "replicate": (1 - n, 5),
        "circular": (-n, n),
    }[mode]
    pairs = []
    for before in range(lo, hi + 1):
        for after in range(lo, hi + 1):
            kept = n + min(before, 0) + min(after, 0)
            if mode in ("reflect", "replicate"):
                ok = n + before + after >= 1
            elif mode == "constant":
                ok = kept >= 0
            else:
                ok = kept >= max(before, after, 0)
            if ok:
                pairs.append((before, after))
    return sorted(pairs, key=lambda p: (abs(p[0]) + abs(p[1]), p))


@st.composite
def pad_cases(draw, modes=MODES, dtypes=DTYPES):
    """A random F.pad call that torch accepts: (array, pad, mode, value, pass-as-Tensor)."""
    mode = draw(st.sampled_from(modes))
    m = draw(st.integers(1, 3))
    if mode == "constant":
        rank = draw(st.integers(m, m + 2))
    else:  # torch: (m+1)-D unbatched or (m+2)-D batched input
        rank = draw(st.sampled_from([m + 1, m + 2]))
    lead = [draw(st.integers(1, 3)) for _ in range(rank - m)]
    padded = [draw(st.integers(1, 6)) for _ in range(m)]
    pad = []
    for n in reversed(padded):  # torch's order: last dim first
        pad += draw(st.sampled_from(valid_pairs(mode, n)))
    dtype = draw(st.sampled_from(dtypes))
    value = None
    if mode == "constant":
        choices = [None, 0, 7, 1.5]
        choices += [math.nan, -1e3] if dtype.startswith("float") else []
        choices += [] if dtype == "uint8" else [-3, -2.5]  # ints truncate toward zero
        value = draw(st.sampled_from(choices))
    elif draw(st.booleans()):
        value = draw(st.sampled_from([0, 0.0]))  # torch lets non-constant modes take value 0
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = random_array(rng, (*lead, *padded), dtype, wide=True)
    pad = tuple(pad) if draw(st.booleans()) else list(pad)
    return x, pad, mode, value, draw(st.booleans())


def call_pad(module, x, pad, mode, value):
    """``module.pad`` with ``mode``/``value`` passed only when set (so defaults are covered)."""
    kwargs = {} if mode == "constant" and value is None else {"mode": mode}
    if value is not None:
        kwargs["value"] = value
    return module.pad(x, pad, **kwargs)


def torch_pad(x, pad, mode, value) -> np.ndarray:
    out = call_pad(TF, to_torch(x), pad, mode, value)
    if any(size < 0 for size in out.shape):
        # torch's reflect pad skips its output-size check on zero-batch inputs and returns a
        # tensor with a negative dimension; the check it applies otherwise raises RuntimeError
        raise RuntimeError(f"torch returned an invalid shape {tuple(out.shape)}")
    return out.numpy()


def check_pad(x, pad, mode, value, as_tensor=False) -> None:
    context = f"[pad(x{x.shape} {x.dtype}, {pad}, mode={mode!r}, value={value!r})]"
    ref, ref_err = outcome(lambda: torch_pad(x, pad, mode, value))
    arg = cs.tensor(x, dtype=x.dtype) if as_tensor else x
    got, got_err = outcome(lambda: call_pad(F, arg, pad, mode, value))
    if ref_err is not None:
        assert_same_error(ref_err, got, got_err, context)
        return
    if mode == "circular" and not circular_well_defined(x.shape, list(pad)):
        return  # torch's result holds uninitialised memory: nothing to compare against
    assert_no_error(got_err, context)
    assert_matches(got, ref, None, context)


@hyp(500)
@given(pad_cases())
def test_pad_matches_torch(case):
    check_pad(*case)


# ----------------------------------------------------------------------------- error parity


def _mutate(draw, x, pad, mode, value, mutation):
    """Return a possibly invalid variant of a valid call."""
    pad = list(pad) or [1]
    i = draw(st.integers(0, len(pad) - 1))
    n = x.shape[-1 - i // 2] if i // 2 < x.ndim else 1
    if mutation == "odd_length":
        pad = pad[:-1] if draw(st.booleans()) else [*pad, 1]
    elif mutation == "too_long":
        pad += [1] * (2 * x.ndim + 2 - len(pad))
    elif mutation == "pad_at_size":
        pad[i] = n + draw(st.integers(0, 2))
    elif mutation == "wrap_twice":
        mode, value = "circular", None
        pad[i] = n + draw(st.integers(1, 3))
    elif mutation == "bad_mode":
        mode = draw(st.sampled_from(["foo", "zeros", "Reflect", "symmetric", "edge"]))
    elif mutation == "value_non_constant":
        mode = draw(st.sampled_from(MODES[1:]))
        value = draw(st.sampled_from([1.5, -2.0, 1, 0.0]))
    elif mutation == "rank":
        x = x[0] if x.ndim > 1 and len(x) and draw(st.booleans()) else x[None, None, None]
    elif mutation == "negative_output":
        pad[i] = -n - draw(st.integers(0, 2))
    elif mutation == "value_overflow":
        value = draw(st.sampled_from([300, -1, 2**70, math.inf, math.nan, 1e300, 7e4]))
        mode = "constant"
    elif mutation == "pad_type":
        pad[i] = float(pad[i])
    elif mutation == "zero_size":
        x = x[..., :0] if draw(st.booleans()) else x[:0]
    return x, pad, mode, value


PAD_MUTATIONS = (
    "odd_length",
    "too_long",
    "pad_at_size",
    "wrap_twice",
    "bad_mode",
    "value_non_constant",
    "rank",
    "negative_output",
    "value_overflow",
    "pad_type",
    "zero_size",
)


@st.composite
def maybe_invalid_pads(draw):
    x, pad, mode, value, _ = draw(pad_cases())
    for mutation in draw(st.lists(st.sampled_from(PAD_MUTATIONS), min_size=1, max_size=2)):
        x, pad, mode, value = _mutate(draw, x, pad, mode, value, mutation)
    return x, tuple(pad), mode, value


@hyp(300)
@given(maybe_invalid_pads())
def test_pad_error_parity(case):
    """torch raises E => convscope raises E (incl. NotImplementedError for unsupported
    mode/rank combinations and unknown modes); torch succeeds => identical result."""
    check_pad(*case)


@pytest.mark.parametrize(
    ("shape", "pad", "mode", "value", "needles"),
    [
        ((2, 3, 5), (1, 2, 3), "constant", None, ["3"]),
        ((2, 3, 5), (5, 0), "reflect", None, ["5"]),
        ((2, 3, 5), (6, 0), "circular", None, ["wrap"]),
        ((2, 3, 5), (1, 1), "foo", None, ["foo"]),
        ((2, 3, 5), (1, 1), "replicate", 2.0, ["replicate"]),
        ((2, 3, 4, 5), (1, 1), "reflect", None, ["4"]),
        ((2, 3, 5), (1,) * 8, "constant", None, ["8"]),
    ],
)
def test_pad_error_messages(shape, pad, mode, value, needles):
    x = np.zeros(shape)
    _, ref_err = outcome(lambda: torch_pad(x, pad, mode, value))
    got, got_err = outcome(lambda: call_pad(F, x, pad, mode, value))
    assert ref_err is not None, "torch accepts this call: the case is wrong"
    assert_same_error(ref_err, got, got_err)
    message = str(got_err).lower()
    for needle in needles:
        assert needle.lower() in message, f"{needle!r} not in convscope's message {message!r}"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_pad_every_mode_and_dtype(mode, dtype):
    """A deterministic sweep so every (mode, dtype) pair is covered in every padded rank, with
    mixed positive / negative pads."""
    rng = np.random.default_rng(1)
    for m in (1, 2, 3):
        x = random_array(rng, (2, 3, 4, 5, 6)[-(m + 2) :], dtype, wide=True)
        pad = (2, -1, -1, 3, 1, 0)[: 2 * m]
        check_pad(x, pad, mode, None)
        check_pad(x, pad, mode, None, as_tensor=True)
