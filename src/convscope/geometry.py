"""Convolution geometry: argument normalisation, padding resolution, output sizes, validation.

Every layer, functional call and learning tool gets its numbers from here, so the shapes a
tool shows are the shapes the engine computes.  Errors use PyTorch's exception classes:
``RuntimeError`` for shapes and arguments seen at call time.

>>> from convscope.geometry import conv_output_shape, conv_transpose_output_shape
>>> conv_output_shape((32, 32), kernel_size=3, stride=2, padding=1)
(16, 16)
>>> conv_transpose_output_shape(16, kernel_size=4, stride=2, padding=1)
(32,)
>>> conv_output_shape(10, kernel_size=3, stride=3, padding="same")  # ceil(10 / 3)
(4,)
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

Pairs = tuple[tuple[int, int], ...]
PADDING_STRINGS = ("valid", "same", "causal")


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_ints(values: Sequence[Any], name: str, op: str) -> None:
    for pos, value in enumerate(values):
        if not _is_int(value):
            raise TypeError(
                f"{op}(): argument '{name}' must be tuple of ints, but found element of type "
                f"{type(value).__name__} at pos {pos}"
            )


def check_int_sequence(value: Any, name: str, op: str = "convolution") -> None:
    """Raise ``TypeError`` unless ``value`` is an int or a sequence of ints."""
    values = (
        tuple(value) if isinstance(value, Sequence) and not isinstance(value, str) else (value,)
    )
    _check_ints(values, name, op)


def ntuple(value: Any, n: int, name: str, op: str = "convolution") -> tuple[int, ...]:
    """``value`` (an int or a sequence of 1 or ``n`` ints) as an ``n``-tuple.

    >>> ntuple(2, 3, "stride")
    (2, 2, 2)
    """
    values = (
        tuple(value) if isinstance(value, Sequence) and not isinstance(value, str) else (value,)
    )
    _check_ints(values, name, op)
    if len(values) == 1:
        values = values * n
    if len(values) != n:
        raise RuntimeError(
            f"expected {name} to be a single integer value or a list of {n} values to match the "
            f"convolution dimensions, but got {name}={list(values)}"
        )
    return tuple(int(v) for v in values)


def is_per_side(padding: Any) -> bool:
    """True for padding given as ``((before, after), ...)``."""
    return (
        isinstance(padding, Sequence)
        and not isinstance(padding, str)
        and len(padding) > 0
        and all(isinstance(p, Sequence) and not isinstance(p, str) for p in padding)
    )


def normalize_padding(padding: Any, n: int, op: str = "convolution") -> str | tuple | Pairs:
    """Padding as a string, an ``n``-tuple of ints or ``n`` (before, after) pairs.

    Raises ``RuntimeError`` for unknown strings, wrong lengths and negative values.
    """
    if isinstance(padding, str):
        if padding not in PADDING_STRINGS:
            raise RuntimeError(
                f"Invalid padding string: {padding!r} (expected one of 'valid', 'same', 'causal', "
                "an int, a tuple, or ((before, after), ...) pairs)"
            )
        if padding == "causal" and n != 1:
            raise RuntimeError(
                f"padding='causal' is only defined for 1-D convolutions, not {op} ({n}-D)"
            )
        return padding
    if is_per_side(padding):
        if len(padding) != n or any(len(p) != 2 for p in padding):
            raise RuntimeError(
                f"per-side padding must have one (before, after) pair per spatial dimension "
                f"({n} for {op}), but got padding={_fmt(padding)}"
            )
        pairs = tuple((int(a), int(b)) for a, b in padding)
        _check_ints([v for pair in padding for v in pair], "padding", op)
        if any(v < 0 for pair in pairs for v in pair):
            raise RuntimeError(f"negative padding is not supported, but got padding={pairs}")
        return pairs
    values = ntuple(padding, n, "padding", op)
    if any(v < 0 for v in values):
        raise RuntimeError(f"negative padding is not supported, but got padding={values}")
    return values


def _fmt(value: Any) -> str:
    return str(tuple(tuple(v) if isinstance(v, list) else v for v in value))


def same_padding(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """(before, after) padding making the output ``ceil(size / stride)`` long.

    For stride 1 this is PyTorch's 'same' (total ``d*(k-1)``, the extra cell at the end); for
    larger strides it is TensorFlow's rule, which PyTorch refuses.
    """
    wanted = -(-size // stride)
    total = max((wanted - 1) * stride + dilation * (kernel - 1) + 1 - size, 0)
    return total // 2, total - total // 2


def resolve_padding(
    padding: Any,
    input_size: Sequence[int],
    kernel_size: Sequence[int],
    stride: Sequence[int],
    dilation: Sequence[int],
) -> Pairs:
    """Normalised padding (see :func:`normalize_padding`) as explicit (before, after) pairs."""
    if padding == "valid":
        return tuple((0, 0) for _ in kernel_size)
    if padding == "same":
        return tuple(
            same_padding(h, k, s, d)
            for h, k, s, d in zip(input_size, kernel_size, stride, dilation, strict=True)
        )
    if padding == "causal":
        return tuple((d * (k - 1), 0) for k, d in zip(kernel_size, dilation, strict=True))
    if is_per_side(padding):
        return tuple(padding)
    return tuple((p, p) for p in padding)


def _sizes(values: Sequence[int]) -> str:
    return " x ".join(str(v) for v in values)


def check_stride_dilation(stride: Sequence[int], dilation: Sequence[int]) -> None:
    if any(s <= 0 for s in stride):
        raise RuntimeError(f"non-positive stride is not supported, but got stride={tuple(stride)}")
    if any(d <= 0 for d in dilation):
        raise RuntimeError(
            f"dilation should be greater than zero, but got dilation={tuple(dilation)}"
        )


def check_kernel(kernel_size: Sequence[int]) -> None:
    if any(k <= 0 for k in kernel_size):
        raise RuntimeError(
            f"kernel size should be greater than zero, but got kernel_size={tuple(kernel_size)}"
        )


def conv_output_size(
    input_size: Sequence[int],
    kernel_size: Sequence[int],
    stride: Sequence[int],
    pads: Pairs,
    dilation: Sequence[int],
) -> tuple[int, ...]:
    """Output sizes of a convolution whose arguments are already normalised and resolved."""
    padded = [h + lo + hi for h, (lo, hi) in zip(input_size, pads, strict=True)]
    extent = receptive_extent(kernel_size, dilation)
    if any(p < e for p, e in zip(padded, extent, strict=True)):
        raise RuntimeError(
            f"Calculated padded input size per channel: ({_sizes(padded)}). Kernel size: "
            f"({_sizes(extent)}). Kernel size can't be greater than actual input size"
        )
    return tuple((p - e) // s + 1 for p, e, s in zip(padded, extent, stride, strict=True))


def check_output_padding(
    output_padding: Sequence[int], stride: Sequence[int], dilation: Sequence[int]
) -> None:
    if any(o < 0 for o in output_padding):
        raise RuntimeError(
            "negative output_padding is not supported, but got "
            f"output_padding={tuple(output_padding)}"
        )
    for o, s, d in zip(output_padding, stride, dilation, strict=True):
        if o >= s and o >= d:
            raise RuntimeError(
                "output padding must be smaller than either stride or dilation, but got "
                f"output_padding={tuple(output_padding)}, stride={tuple(stride)}, "
                f"dilation={tuple(dilation)}"
            )


def conv_transpose_output_size(
    input_size: Sequence[int],
    kernel_size: Sequence[int],
    stride: Sequence[int],
    pads: Pairs,
    output_padding: Sequence[int],
    dilation: Sequence[int],
) -> tuple[int, ...]:
    """Output sizes of a transposed convolution with normalised arguments."""
    out = tuple(
        (h - 1) * s - lo - hi + d * (k - 1) + o + 1
        for h, k, s, (lo, hi), o, d in zip(
            input_size, kernel_size, stride, pads, output_padding, dilation, strict=True
        )
    )
    if any(v <= 0 for v in out):
        raise RuntimeError(
            f"Given input size per channel: ({_sizes(input_size)}). Calculated output size per "
            f"channel: ({_sizes(out)}). Output size is too small"
        )
    return out


def transpose_as_conv(
    kernel_size: Sequence[int],
    stride: Sequence[int],
    pads: Pairs,
    output_padding: Sequence[int],
    dilation: Sequence[int],
) -> tuple[Pairs, tuple[int, ...]]:
    """Padding and input dilation that turn a transposed convolution into a plain one.

    A transposed convolution is the input-gradient of a convolution: insert ``stride - 1``
    zeros between input cells, pad ``d*(k-1) - before`` at the start and
    ``d*(k-1) - after + output_padding`` at the end (negative values crop), and correlate with
    the flipped kernel at stride 1.
    """
    conv_pads = tuple(
        (d * (k - 1) - lo, d * (k - 1) - hi + o)
        for k, (lo, hi), o, d in zip(kernel_size, pads, output_padding, dilation, strict=True)
    )
    return conv_pads, tuple(stride)


def _checked(
    input_size: Any, kernel_size: Any, stride: Any, dilation: Any
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """Spatial size, kernel, stride and dilation as validated tuples of one length."""
    size = (input_size,) if _is_int(input_size) else tuple(input_size)
    n = len(size)
    kernel = ntuple(kernel_size, n, "kernel_size")
    stride_t, dilation_t = ntuple(stride, n, "stride"), ntuple(dilation, n, "dilation")
    check_stride_dilation(stride_t, dilation_t)
    check_kernel(kernel)
    return size, kernel, stride_t, dilation_t


def conv_output_shape(
    input_size: int | Sequence[int],
    kernel_size: int | Sequence[int],
    stride: int | Sequence[int] = 1,
    padding: Any = 0,
    dilation: int | Sequence[int] = 1,
) -> tuple[int, ...]:
    """Spatial output size of ``conv{n}d`` for spatial input size ``input_size``.

    ``padding`` takes every form the layers take: int, tuple, ``'valid'``, ``'same'`` (any
    stride), ``'causal'`` (1-D) or ``((before, after), ...)``.

    >>> conv_output_shape((5, 5), 3, stride=2)
    (2, 2)
    """
    size, kernel, stride_t, dilation_t = _checked(input_size, kernel_size, stride, dilation)
    pads = resolve_padding(
        normalize_padding(padding, len(size)), size, kernel, stride_t, dilation_t
    )
    return conv_output_size(size, kernel, stride_t, pads, dilation_t)


def conv_transpose_output_shape(
    input_size: int | Sequence[int],
    kernel_size: int | Sequence[int],
    stride: int | Sequence[int] = 1,
    padding: Any = 0,
    output_padding: int | Sequence[int] = 0,
    dilation: int | Sequence[int] = 1,
) -> tuple[int, ...]:
    """Spatial output size of ``conv_transpose{n}d``: ``(H-1)*s - 2p + d*(k-1) + op + 1``.

    >>> conv_transpose_output_shape((8, 8), 2, stride=2)
    (16, 16)
    """
    size, kernel, stride_t, dilation_t = _checked(input_size, kernel_size, stride, dilation)
    out_pad = ntuple(output_padding, len(size), "output_padding")
    check_output_padding(out_pad, stride_t, dilation_t)
    pads = transpose_pads(padding, len(size))
    return conv_transpose_output_size(size, kernel, stride_t, pads, out_pad, dilation_t)


def transpose_pads(padding: Any, n: int, op: str = "conv_transpose") -> Pairs:
    """(before, after) pairs of a transposed convolution (strings are not defined there)."""
    if isinstance(padding, str):
        raise TypeError(
            f"{op}(): argument 'padding' must be tuple of ints, not str ({padding!r} padding "
            "is not defined for transposed convolutions)"
        )
    return resolve_padding(normalize_padding(padding, n, op), (), (0,) * n, (), ())


def transpose_output_padding(
    input_size: int | Sequence[int],
    output_size: Sequence[int],
    kernel_size: int | Sequence[int],
    stride: int | Sequence[int] = 1,
    padding: Any = 0,
    dilation: int | Sequence[int] = 1,
) -> tuple[int, ...]:
    """The ``output_padding`` that makes a transposed convolution produce ``output_size``.

    Raises ``ValueError`` (as PyTorch's ``ConvTranspose`` modules do) when no output padding
    reaches that size.

    >>> transpose_output_padding(5, [10], kernel_size=3, stride=2, padding=1)
    (1,)
    """
    size, kernel, stride_t, dilation_t = _checked(input_size, kernel_size, stride, dilation)
    n = len(size)
    pads = transpose_pads(padding, n)
    wanted = tuple(output_size)
    smallest = [
        (h - 1) * s - lo - hi + d * (k - 1) + 1
        for h, k, s, (lo, hi), d in zip(size, kernel, stride_t, pads, dilation_t, strict=True)
    ]
    largest = [m + s - 1 for m, s in zip(smallest, stride_t, strict=True)]
    if len(wanted) != n or any(
        not lo <= w <= hi for w, lo, hi in zip(wanted, smallest, largest, strict=True)
    ):
        raise ValueError(
            f"requested an output size of {list(wanted)}, but valid sizes range from "
            f"{smallest} to {largest} (for an input of {list(size)})"
        )
    return tuple(w - m for w, m in zip(wanted, smallest, strict=True))


def padding_is_zero(padding: Any) -> bool:
    """True when a normalised padding adds nothing (for repr: PyTorch omits zero padding)."""
    if isinstance(padding, str):
        return False
    flat = [v for p in padding for v in (p if isinstance(p, tuple) else (p,))]
    return all(v == 0 for v in flat)


def receptive_extent(kernel_size: Sequence[int], dilation: Sequence[int]) -> tuple[int, ...]:
    """Cells spanned by a dilated kernel: ``d*(k-1) + 1`` per dimension."""
    return tuple(d * (k - 1) + 1 for k, d in zip(kernel_size, dilation, strict=True))


__all__ = [
    "PADDING_STRINGS",
    "conv_output_shape",
    "conv_output_size",
    "conv_transpose_output_shape",
    "conv_transpose_output_size",
    "normalize_padding",
    "ntuple",
    "resolve_padding",
    "same_padding",
    "transpose_as_conv",
    "transpose_output_padding",
]
