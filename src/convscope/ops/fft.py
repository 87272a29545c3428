"""FFT convolution: correlate each tile's slab with the kernel as a product of spectra.

Each tile (batch entries times an output box, planned by :func:`tiling.plan_tiles`) reads its
padded, zero-inserted slab through :func:`tiling.extract_slab`, so only a *valid* correlation
of the slab with the (kernel-dilated) kernel is left.  Stride is handled by the polyphase
identity: with ``k = q*s + r``, ``y[p] = sum_r sum_q slab[(p + q)*s + r] * w[q*s + r]``, so
the ``prod(stride)`` phases of the slab and of the kernel become extra input channels of a
stride-1 correlation (nothing is computed at stride 1 and thrown away).  Per tile:

* ``X = rfftn(phased slab)`` over the spatial axes at a 2,3,5-smooth size (:func:`good_size`)
  large enough that the circular correlation has no wrap-around in the box;
* ``Y = sum_c X[c] * conj(W[c])``: the channel contraction per frequency bin, an elementwise
  product for depthwise kernels and a batched GEMM over the bins otherwise;
* ``y = irfftn(Y)[:box]`` (correlation, so the valid outputs start at index 0).

The kernel spectra are computed once per call, at the FFT size of the planned box, and
reused by every tile (edge tiles are zero-padded up to it).  The cost given to
``plan_tiles`` counts the slab, the phase-split slab, the input spectra (twice: FFT
temporaries or the transposed copy), the kernel spectra (twice, for their creation), the
product spectra (three times) and the real inverse transform.

``scipy.fft`` (multithreaded with ``workers``) is used when importable, else ``numpy.fft``;
set :data:`BACKEND` to ``"numpy"`` or ``"scipy"`` to force one.  Only floating-point inputs
are accepted (float16 is computed in float32, complex64 spectra for float32 and complex128
for float64).

>>> import numpy as np
>>> from convscope.ops.conv import conv_general
>>> x = np.arange(6.0).reshape(1, 1, 6)
>>> w = np.array([[[1.0, 0.0, -1.0]]])
>>> y = conv_general(x, w, stride=(1,), padding=((1, 1),), dilation=(1,), algorithm="fft")
>>> np.round(y, 10) + 0.0
array([[[-1., -2., -2., -2., -2.,  4.]]])
>>> good_size(97), good_size(128), good_size(131)
(100, 128, 135)
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Sequence
from types import ModuleType

import numpy as np
from numpy.lib.stride_tricks import as_strided

from . import tiling
from .matmul import matmul

BACKEND = "auto"
"""``"auto"`` (scipy.fft when importable, else numpy.fft), ``"numpy"`` or ``"scipy"``."""

REFUSAL = "fft algorithm is for floating-point inputs; use 'unfold' or 'direct'"

# Contract channels with elementwise products (one pass over the output spectra per input
# channel) up to this many input channels per group (times stride phases); batched GEMMs
# over the frequency bins above it.
ELEMENTWISE_MAX_CHANNELS = 4

Transform = Callable[[np.ndarray, Sequence[int], Sequence[int]], np.ndarray]


@functools.cache
def good_size(n: int) -> int:
    """The smallest 2,3,5-smooth integer ``>= n`` (a fast FFT length)."""
    if n <= 1:
        return 1
    best = 1 << (n - 1).bit_length()
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            m = p35
            while m < n:
                m *= 2
            best = min(best, m)
            p35 *= 3
        p5 *= 5
    return best


@functools.lru_cache(maxsize=1)
def _scipy_fft() -> ModuleType | None:
    try:
        import scipy.fft
    except ImportError:
        return None
    return scipy.fft


def _workers() -> int:
    """scipy's FFT threads: the engine's thread count (``cs.set_num_threads``)."""
    from .threads import get_num_threads

    return get_num_threads()


def transforms() -> tuple[Transform, Transform]:
    """``(rfftn, irfftn)`` of the backend chosen by :data:`BACKEND`, as ``f(a, s, axes)``.

    The forward transform goes one axis at a time, the real one (``axes[-1]``) first, so the
    zero padding up to ``s`` is never transformed along the axes not yet done (a pruned FFT:
    a 7x7 kernel padded to 64x64 costs 7 + 33 transforms of length 64, not 64 + 33).
    """
    if BACKEND not in ("auto", "numpy", "scipy"):
        raise ValueError(f"unknown FFT backend {BACKEND!r}; choose 'auto', 'numpy' or 'scipy'")
    sp = None if BACKEND == "numpy" else _scipy_fft()
    if sp is None:
        if BACKEND == "scipy":
            raise ImportError("the 'scipy' FFT backend needs scipy installed")
        rfft, fft = np.fft.rfft, np.fft.fft

        def full(a: np.ndarray, s: Sequence[int], axes: Sequence[int]) -> np.ndarray:
            return np.fft.rfftn(a, s=s, axes=axes)

        def irfftn(a: np.ndarray, s: Sequence[int], axes: Sequence[int]) -> np.ndarray:
            return np.fft.irfftn(a, s=s, axes=axes)

    else:
        workers = _workers()
        rfft = functools.partial(sp.rfft, workers=workers)
        fft = functools.partial(sp.fft, workers=workers, overwrite_x=True)

        def full(a: np.ndarray, s: Sequence[int], axes: Sequence[int]) -> np.ndarray:
            return sp.rfftn(a, s=s, axes=axes, workers=workers)

        def irfftn(a: np.ndarray, s: Sequence[int], axes: Sequence[int]) -> np.ndarray:
            return sp.irfftn(a, s=s, axes=axes, workers=workers, overwrite_x=True)

    def rfftn(a: np.ndarray, s: Sequence[int], axes: Sequence[int]) -> np.ndarray:
        if 2 * tiling.prod(a.shape[i] for i in axes[:-1]) > tiling.prod(s[:-1]):
            return full(a, s, axes)  # little zero padding to skip: one multi-axis call
        a = rfft(a, n=s[-1], axis=axes[-1])
        for length, axis in zip(s[-2::-1], axes[-2::-1], strict=True):
            a = fft(a, n=length, axis=axis)
        return a

    return rfftn, irfftn


def run(
    x: np.ndarray,
    w: np.ndarray,
    geom: tiling.ConvGeometry,
    groups: int,
    out: np.ndarray,
    budget: int,
) -> None:
    if x.dtype.kind != "f":
        raise ValueError(REFUSAL)
    dtype = tiling.compute_dtype(x.dtype)
    ctype = np.result_type(dtype, np.complex64)
    size, csize = tiling.itemsize(dtype), tiling.itemsize(ctype)
    n, c = x.shape[:2]
    o = w.shape[0]
    og = o // groups
    d = len(geom.kernel_size)
    phases = tiling.prod(geom.stride)
    taps = tuple(-(-e // s) for e, s in zip(geom.extent, geom.stride, strict=True))
    cgs = (c // groups) * phases  # contracted channels per group, stride phases included
    elementwise = cgs <= ELEMENTWISE_MAX_CHANNELS

    def fft_shape(box: Sequence[int]) -> tuple[int, ...]:
        return tuple(good_size(t - 1 + q) for t, q in zip(box, taps, strict=True))

    def cost(nb: int, box: Sequence[int]) -> int:
        shape = fft_shape(box)
        bins = tiling.prod(shape[:-1]) * (shape[-1] // 2 + 1)
        slab = tiling.prod(tiling.slab_shape(geom, nb, box))
        phased = nb * c * phases * tiling.prod(t - 1 + q for t, q in zip(box, taps, strict=True))
        spectra = bins * (2 * nb * c * phases + 2 * o * cgs + 3 * nb * o)
        real = slab + phased * ((phases > 1) + (not elementwise)) + nb * o * tiling.prod(shape)
        return size * real + csize * spectra

    nb, box = tiling.plan_tiles(n, geom.output_size, cost, budget)
    fshape = fft_shape(box)
    spectrum = (*fshape[:-1], fshape[-1] // 2 + 1)
    bins = tiling.prod(spectrum)
    rfftn, irfftn = transforms()
    kernel = _kernel_spectra(w, geom, groups, fshape, dtype, ctype, rfftn, elementwise)
    slabs, split, leading = (tiling.Scratch(dtype) for _ in range(3))
    products, terms = tiling.Scratch(ctype), tiling.Scratch(ctype)
    for tile in tiling.iter_tiles(n, geom.output_size, nb, box):
        slab = tiling.extract_slab(x, geom, tile, dtype, slabs)
        if phases > 1:
            slab = _split_phases(slab, geom.stride, tile.size, taps, split)
        nt, lengths = slab.shape[0], slab.shape[2:]
        crop = tuple(slice(0, t) for t in tile.size)
        if elementwise:  # channels first; kernel (groups, cgs, og, bins)
            spectra = rfftn(slab, fshape, tuple(range(2, 2 + d))).astype(ctype, copy=False)
            spectra = spectra.reshape(nt, groups, cgs, bins)
            product = products.take((nt, groups, og, bins))
            np.multiply(spectra[:, :, 0, None], kernel[:, 0], out=product)
            if cgs > 1:
                term = terms.take(product.shape)
                for r in range(1, cgs):
                    np.multiply(spectra[:, :, r, None], kernel[:, r], out=term)
                    product += term
            del spectra
            y = irfftn(product.reshape(nt, o, *spectrum), fshape, tuple(range(2, 2 + d)))
            out[tile.out_index] = y[(slice(None), slice(None), *crop)]
        else:  # spatial axes leading; kernel (bins, groups, cgs, og): one GEMM per bin, group
            spatial = leading.take((*lengths, groups, nt, cgs))
            order = (*range(3, 3 + d), 1, 0, 2)
            np.copyto(spatial, slab.reshape(nt, groups, cgs, *lengths).transpose(order))
            spectra = rfftn(spatial, fshape, tuple(range(d))).astype(ctype, copy=False)
            product = products.take((bins, groups, nt, og))
            matmul(spectra.reshape(bins, groups, nt, cgs), kernel, out=product)
            del spectra
            y = irfftn(product.reshape(*spectrum, groups, nt, og), fshape, tuple(range(d)))
            target = _split_channels(out[tile.out_index], groups)  # (nt, groups, og, *box)
            target[...] = y[crop].transpose(d + 1, d, d + 2, *range(d))


def _split_channels(view: np.ndarray, groups: int) -> np.ndarray:
    """The writeable view ``(N, groups, O/groups, *S)`` of a strided ``(N, O, *S)`` view."""
    n, o, *rest = view.shape
    sn, so, *srest = view.strides
    return as_strided(view, (n, groups, o // groups, *rest), (sn, so * (o // groups), so, *srest))


def _split_phases(
    slab: np.ndarray,
    stride: Sequence[int],
    box: Sequence[int],
    taps: Sequence[int],
    scratch: tiling.Scratch,
) -> np.ndarray:
    """``slab`` (nb, C, *L) as (nb, C * prod(stride), *M): phase ``r`` holds ``slab[r::s]``."""
    nb, c = slab.shape[:2]
    lengths = [t - 1 + q for t, q in zip(box, taps, strict=True)]
    split = scratch.take((nb, c, *stride, *lengths))
    split.fill(0)
    for offset in itertools.product(*(range(s) for s in stride)):
        steps = (slice(r, None, s) for r, s in zip(offset, stride, strict=True))
        part = slab[(slice(None), slice(None), *steps)]
        split[(slice(None), slice(None), *offset, *(slice(0, m) for m in part.shape[2:]))] = part
    return split.reshape(nb, c * tiling.prod(stride), *lengths)


def _kernel_spectra(
    w: np.ndarray,
    geom: tiling.ConvGeometry,
    groups: int,
    fshape: Sequence[int],
    dtype: np.dtype,
    ctype: np.dtype,
    rfftn: Transform,
    elementwise: bool,
) -> np.ndarray:
    """Conjugated spectra of the dilated, phase-split kernel, laid out for the contraction.

    ``(groups, cgs, og, bins)`` for elementwise products, ``(bins, groups, cgs, og)`` for
    GEMMs, where ``cgs = C/groups * prod(stride)`` with input channel major, phase minor.
    The layout is made on the small real kernel, before transforming.
    """
    o, cg = w.shape[:2]
    stride = geom.stride
    d = len(stride)
    taps = [-(-e // s) for e, s in zip(geom.extent, stride, strict=True)]
    dilated = np.zeros((o, cg, *(q * s for q, s in zip(taps, stride, strict=True))), dtype)
    spaced = (slice(0, e, k) for e, k in zip(geom.extent, geom.dilation, strict=True))
    dilated[(slice(None), slice(None), *spaced)] = w
    # (o, cg, q1, s1, q2, s2, ...) -> (groups, og, cg, s1, s2, ..., q1, q2, ...)
    interleaved = dilated.reshape(
        groups, o // groups, cg, *itertools.chain(*zip(taps, stride, strict=True))
    )
    phase_axes, tap_axes = range(4, 4 + 2 * d, 2), range(3, 3 + 2 * d, 2)
    if elementwise:  # (groups, cg, s..., og, q...)
        order, axes = (0, 2, *phase_axes, 1, *tap_axes), tuple(range(3 + d, 3 + 2 * d))
    else:  # (q..., groups, cg, s..., og)
        order, axes = (*tap_axes, 0, 2, *phase_axes, 1), tuple(range(d))
    spectra = rfftn(np.ascontiguousarray(interleaved.transpose(order)), fshape, axes)
    spectra = spectra.astype(ctype, copy=False)
    np.conjugate(spectra, out=spectra)
    cgs, og = cg * tiling.prod(stride), o // groups
    return spectra.reshape((groups, cgs, og, -1) if elementwise else (-1, groups, cgs, og))
