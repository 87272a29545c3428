"""The convolution primitive: one N-d function behind every convolution of the library.

``conv_general`` correlates a batched input ``(N, C, *S)`` with a kernel ``(O, C/groups, *K)``
given per-side padding (negative crops), stride, kernel dilation, input dilation (zeros
inserted between input cells, which is what a transposed convolution needs) and groups.
1-D, 2-D, 3-D and transposed convolutions and their gradients are all calls of it.

Algorithms are interchangeable implementations of the primitive; ``algorithm=None`` lets
:func:`select_algorithm` choose.  Each works in tiles that fit the workspace budget.

>>> import numpy as np
>>> from convscope.ops.conv import conv_general
>>> x = np.arange(5.0).reshape(1, 1, 5)
>>> w = np.ones((1, 1, 3))
>>> conv_general(x, w, stride=(1,), padding=((1, 1),), dilation=(1,))
array([[[1., 3., 6., 9., 7.]]])
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..geometry import conv_output_size
from . import algorithms, allocator, blocked, depthwise, jit, threads, tiling, winograd
from .tiling import ConvGeometry
from .workspace import get_workspace_budget

ALGORITHMS = algorithms.NAMES


FEW_CHANNELS = 16
"""Layers whose (input channels x output channels) per group is at most this take the
compiled tap-by-tap kernel when numba is installed."""

BLOCKED_FROM_EFFICIENCY = 0.8
"""Strided dense layers (in training also stride-1 ones) take the register-blocked kernel
(:mod:`convscope.ops.blocked`) when
at least this share of the positions it computes are outputs (the rest: its wide rows'
padding columns, rounded up to whole vectors), a job's rows fit the cache
(:attr:`convscope.ops.blocked.Plan.cached`) and each output sums at least
:data:`BLOCKED_DEPTH` products; stride-1 layers only when thin (:data:`BLOCKED_THIN`).

Alone, at 2 threads (float32, batch 8, medians of 7 interleaved calls, blocked / the
previous choice (torch)), it wins on stride-1 layers too: (64,56x56) 3x3 7.4 / 12.3 ms
Winograd (6.6), (128,28x28) 7.2 / 10.1 (6.5), (256,14x14) 7.9 / 10.3 (6.1); strided: the
7x7/2 stem (3 -> 64, 224x224) 8.7 / 20.7 unfold (7.6), 3x3/2 (64 -> 128, 56x56) 4.7 / 9.5
(4.1); on 7x7 planes, where half its positions are padding, unfold is faster: (512,7x7)
13.4 / 10.1.  Inside whole networks the stride-1 gains did not hold: after a GEMM that used
OpenBLAS's threads, its idle worker spins on a core for about 0.1 s, and the kernel's two
threads then share the cores with it (ResNet-18 at batch 1: a 64-channel 56x56 layer took
1.0-1.1 ms after a quiet pause, 1.8-5 ms right after a forward pass; the network 43 ms
against 36 ms without the kernel; with OpenBLAS's spin shortened, 29 against 34).  Strided
layers keep their gain there: ResNet-18 at batch 8 128 against 136 ms, other networks
within noise.  So in inference stride-1 layers keep Winograd/unfold (whose latency-bound
small GEMMs want BLAS's own, spinning, threads); calls that feed a gradient keep BLAS's
workers idle instead (``ops.matmul.GRADIENT_SHARED_FROM``), and there stride-1 layers take
'blocked' too: ResNet-18's forward+backward at batch 8, 743 -> 628 ms."""

BLOCKED_DEPTH = 16
"""Fewest products per output (input channels x taps) for the heuristic to take 'blocked':
each micro-kernel call loads and stores its partial sums once (wav2vec2's first layer, 1
channel x 10 taps, ran 2x slower)."""

BLOCKED_THIN = 64
"""Stride-1 layers with at most this many products per output take 'blocked' too: there
unfold's GEMMs are too thin to run at BLAS's speed ((8,3,224,224) 3 -> 32 3x3: 7.1 ms
against unfold's 21.3, torch 7.0), a gain the spinning BLAS worker cannot undo."""

WINOGRAD_FROM_TILES = 256
"""With numba installed, layers 3x3 stride 1 over the last two dimensions whose output has at
least this many 2x2 tiles (samples x frames x tiles per frame: the columns of the Winograd
GEMMs) take Winograd F(2x2, 3x3):
its compiled transforms made it faster than unfold there (2-core machine, 2 threads,
float32, winograd / unfold: (8,128,28,28) 0.88, (8,256,14,14) 0.82-0.93, (1,64,128,128)
0.65, (1,128,64,64) 0.80, (8,64,56,56) 0.95), while on fewer tiles its 16 GEMMs re-read a
kernel 16/9 the weights' size ((8,512,7,7), 128 tiles: 1.3-1.5; (1,256,14,14) 1.2).  3x3x3
layers of r3d_18 (best of 5, winograd / unfold): (1,64,16,56,56) 0.78, (1,128,8,28,28) 0.70,
(2,64,8,28,28) 0.80, (1,32,8,56,56) 0.70, but (1,256,4,14,14), 196 tiles, 1.13."""

WINOGRAD_CHANNELS = 64
"""Input channels per group (times the taps of the leading dimensions of a 3-D kernel: the
depth of its GEMMs) from which Winograd may be chosen: with fewer, its GEMMs are too
thin ((8,32,256,256) 1.11-1.20, (2,32,256,256) 1.04-1.13, (8,32,128,128) 1.13-1.14,
(4,32,128,128) 1.06 against unfold) -- except for a single sample, see
:data:`WINOGRAD_ONE_SAMPLE_CHANNELS`."""

WINOGRAD_ONE_SAMPLE_CHANNELS = 16
"""With a single sample or a single thread, input channels per group from which Winograd may
be chosen: there unfold gains less (or nothing) from its threads' shares and Winograd wins
on thin layers too (2 threads, winograd / unfold, interleaved medians: (1,32->32,256,256)
0.77, (1,32->64,128,128) 0.64, (1,16->16,256,256) 0.50; one thread, as in a batch-parallel
share, with F(4x4, 3x3), best of 5: (4,32->32,256,256) 0.48, (4,32->64,128,128) 0.61,
(8,32->64,128,128) 0.60, (4,16->16,256,256) 0.42)."""


def select_algorithm(
    geom: ConvGeometry,
    groups: int,
    dtype: np.dtype,
    out_channels: int | None = None,
    workers: int | None = None,
    precise: bool | None = None,
) -> str:
    """Pick an algorithm from the shapes (thresholds measured with ``benchmarks/``).

    Integers always take ``unfold`` (exact).  Depthwise layers take the FFT for large kernels
    (from 7x7, or 25x25 with the compiled kernel, 45x45 with its register-blocked form; stride
    1) and the direct depthwise kernel otherwise; with numba installed, layers with few channels
    per group (see :data:`FEW_CHANNELS`) take the compiled tap-by-tap kernel too; strided and
    thin dense layers take the register-blocked kernel (see :data:`BLOCKED_FROM_EFFICIENCY`);
    everything else is unfold + GEMM (a plain GEMM for 1x1), or Winograd for 3x3 layers with
    many output tiles (see :data:`WINOGRAD_FROM_TILES`).  ``workers``: the threads the call runs on
    (default: the current :func:`threads.get_num_threads`, 1 inside a batch-parallel share);
    ``precise``: the call feeds a gradient (default: :func:`algorithms.precise`).
    ``shifted`` runs when forced or autotuned: on the quiet 2-core machine at 2 threads shifted took
    1.4-2.7x unfold's time on ResNet layers ((8,128,28,28) 3x3 16.5 vs 11.0 ms, (8,64,56,56)
    20.6 vs 14.6) and won only on some 128x128 planes (0.8x); it is the accurate choice
    (about half unfold's float32 error: ``cs.conv_algorithm("shifted")``).
    """
    if np.dtype(dtype).kind != "f" or max(geom.input_dilation) > 1:
        return "unfold"
    channels = geom.input_shape[1]
    taps = math.prod(geom.kernel_size)
    if groups == channels and channels > 1:
        small_output = math.prod(geom.output_size) < taps  # e.g. a weight gradient
        # the compiled direct depthwise kernel beats the FFT up to about 21x21 kernels and
        # ties at 25x25 (measured, one thread: (4,64,56,56) 13x13 9.8 vs 30 ms, 21x21 27 vs
        # 39 ms), its register-blocked form up to about 45x45 (2 threads: (1,128,64,64) 31x31
        # 7.3 vs 14.7 ms, (1,32,200,200) 51x51 24.8 vs 22.8 ms); NumPy's tap-by-tap passes
        # only below 7x7
        fft_from = 49
        if jit.kernels() is not None:
            fft_from = 2025 if depthwise.register_blocked(geom) else 625
        if taps >= fft_from and max(geom.stride) == 1 and not small_output:
            return "fft"
        return "depthwise"
    few_channels = (
        out_channels is not None and (channels // groups) * (out_channels // groups) <= FEW_CHANNELS
    )
    if few_channels and jit.kernels() is not None:
        return "depthwise"  # e.g. Conv2d(1, 2, 3): a GEMM with 2 rows mostly moves memory
    if workers is None:
        workers = threads.get_num_threads()
    if precise is None:
        precise = algorithms.precise()
    if _blocked_pays(geom, groups, dtype, out_channels, precise):
        return "blocked"
    if _winograd_pays(geom, groups, dtype, workers):
        return "winograd"
    return "unfold"


def _blocked_pays(
    geom: ConvGeometry, groups: int, dtype: np.dtype, out_channels: int | None, precise: bool
) -> bool:
    """Whether the register-blocked kernel takes this call (see :data:`BLOCKED_FROM_EFFICIENCY`)."""
    if out_channels is None or math.prod(geom.kernel_size) == 1:
        return False  # 1x1: a plain GEMM on the input as it lies, nothing to gather
    depth = geom.input_shape[1] * math.prod(geom.kernel_size)
    if depth < BLOCKED_DEPTH or blocked.unsupported(geom, groups, dtype) is not None:
        return False
    if max(geom.stride) == 1 and depth > BLOCKED_THIN and not precise:
        return False  # inference: see BLOCKED_FROM_EFFICIENCY
    found = blocked.plan(geom, out_channels, np.dtype(dtype).itemsize, 1, 1 << 62)
    return found is not None and found.cached and found.efficiency >= BLOCKED_FROM_EFFICIENCY


def _winograd_pays(geom: ConvGeometry, groups: int, dtype: np.dtype, workers: int) -> bool:
    """Whether Winograd beats unfold here (see :data:`WINOGRAD_FROM_TILES`)."""
    if jit.kernels() is None or algorithms.unsupported("winograd", geom, groups, dtype):
        return False
    samples, channels = geom.input_shape[0], geom.input_shape[1] // groups
    # the GEMMs of each output frame sum over the leading dimensions' taps too
    depth = channels * math.prod(geom.kernel_size[:-2])
    size = geom.output_size
    tiles = samples * math.prod(size[:-2]) * math.prod(-(-s // 2) for s in size[-2:])
    alone = samples == 1 or workers == 1
    fewest = WINOGRAD_ONE_SAMPLE_CHANNELS if alone else WINOGRAD_CHANNELS
    return tiles >= WINOGRAD_FROM_TILES and depth >= fewest


def conv_general(
    x: np.ndarray,
    w: np.ndarray,
    *,
    stride: Sequence[int],
    padding: Sequence[tuple[int, int]],
    dilation: Sequence[int],
    input_dilation: Sequence[int] | None = None,
    groups: int = 1,
    algorithm: str | None = None,
    workspace_bytes: int | None = None,
    out: np.ndarray | None = None,
    precise: bool = False,
) -> np.ndarray:
    """Grouped N-d cross-correlation of ``x`` (N, C, *S) with ``w`` (O, C/groups, *K).

    Arguments must already be valid (the public layers validate with PyTorch's errors);
    this function only checks that the ranks and channel counts fit together.  Returns an
    array of ``x.dtype`` with shape ``(N, O, *output)``: ``out`` (any strided view of the
    right shape) when given, else a new array.  ``precise``: the result feeds a gradient, so
    float32 errors stay at PyTorch's level (see :func:`algorithms.precise`); inference
    leaves it off and may take faster, slightly less accurate transforms.
    """
    budget = get_workspace_budget() if workspace_bytes is None else int(workspace_bytes)
    plan = _plan(
        x.shape,
        x.dtype,
        w.shape,
        tuple(stride),
        tuple(tuple(pair) for pair in padding),
        tuple(dilation),
        None if input_dilation is None else tuple(input_dilation),
        groups,
        budget,
        jit.kernels() is not None,
        threads.get_num_threads(),
        precise or algorithms.precise(),
    )
    geom = plan.geom
    if out is None:
        out = np.empty(plan.shape, dtype=x.dtype)
    elif out.shape != plan.shape:
        raise RuntimeError(f"conv_general: out has shape {out.shape}, expected {plan.shape}")
    if out.size == 0 or x.shape[1] == 0:
        out[...] = 0
        return out
    threads.ensure_blas_threads()
    allocator.apply()
    if not x.flags.c_contiguous and x.nbytes <= budget:
        # a permuted view (channels-last after a permute): the tiles' gathers would read it
        # cell by cell; one contiguous copy first is 2.4x faster (ConvNeXt's 2x2/2 downsample)
        x = np.ascontiguousarray(x)
    phased = plan.phased
    if algorithm is not None:
        name = algorithm
        reason = algorithms.unsupported(name, geom, groups, x.dtype)
        if reason is not None:
            raise ValueError(f"convolution algorithm {name!r} cannot compute this call: {reason}")
    else:
        name = algorithms.forced_for(geom, groups, x.dtype)
        if name is None and not phased and algorithms.get_autotune():
            with algorithms.precisely(precise):
                name = _automatic(x, w, geom, groups, out, budget)
        elif name is None and not (phased and algorithms.get_conv_algorithm() is not None):
            name = plan.heuristic
        # (a forced algorithm that cannot take a phased call whole still runs its phases)
    if phased and name not in ("direct", "fold"):
        with algorithms.precisely(precise):
            _by_phases(x, w, geom, groups, out, algorithm, budget)
        return out
    # a transform spreads one Inf/NaN over whole tiles or channels: the definition's
    # non-finite pattern needs an algorithm that sums products tap by tap (Winograd checks
    # its input itself, on the way through its transform)
    tap_by_tap = "depthwise" if groups == x.shape[1] else "unfold"
    if algorithms.spreads_non_finite(name) and not (
        (name == "winograd" or tiling.all_finite(x)) and tiling.all_finite(w)
    ):
        name = tap_by_tap
    with algorithms.precisely(precise):
        try:
            algorithms.implementation(name)(x, w, geom, groups, out, budget)
        except winograd.NonFinite:
            name = tap_by_tap
            algorithms.implementation(name)(x, w, geom, groups, out, budget)
    algorithms.record(name, geom)
    return out


@dataclass(frozen=True)
class Plan:
    """What one call signature of :func:`conv_general` resolves to, worked out once: the
    geometry, the output shape and the heuristic's algorithm (forcing and autotuning are
    applied per call on top of it)."""

    geom: ConvGeometry
    shape: tuple[int, ...]
    phased: bool
    heuristic: str | None


@functools.lru_cache(maxsize=4096)
def _plan(
    x_shape: tuple[int, ...],
    dtype: np.dtype,
    w_shape: tuple[int, ...],
    stride: tuple[int, ...],
    padding: tuple[tuple[int, int], ...],
    dilation: tuple[int, ...],
    input_dilation: tuple[int, ...] | None,
    groups: int,
    budget: int,
    compiled: bool,  # part of the key: the heuristic depends on numba's presence...
    workers: int,  # ... on the threads the call runs on
    precise: bool = False,  # ... and on whether it feeds a gradient
) -> Plan:
    n = len(x_shape) - 2
    if len(w_shape) != n + 2 or x_shape[1] != w_shape[1] * groups or w_shape[0] % groups:
        raise RuntimeError(
            f"conv_general: input {x_shape} and weight {w_shape} do not fit with groups={groups}"
        )
    input_dilation = tuple(input_dilation or (1,) * n)
    dilated = tuple((s - 1) * i + 1 for s, i in zip(x_shape[2:], input_dilation, strict=True))
    geom = ConvGeometry(
        input_shape=tuple(x_shape),
        kernel_size=tuple(w_shape[2:]),
        stride=stride,
        pads=tuple((int(a), int(b)) for a, b in padding),
        dilation=dilation,
        input_dilation=input_dilation,
        output_size=tuple(conv_output_size(dilated, w_shape[2:], stride, padding, dilation)),
    )
    phased = max(input_dilation) > 1 and max(stride) == 1
    if phased:
        # dense, with at most half as many output as input channels (a U-Net or DCGAN
        # up-sampling): one GEMM and col2im beat the unfolded phases (quiet 2-core machine,
        # 2 threads, fold / phases: ConvTranspose2d 256->128 4x4/2 on 8x8 0.79, 512->256 on
        # 4x4 0.77, 128->64 2x2/2 on 28x28 0.85; with as many output channels the phases
        # win: 128->128 4x4/2 1.23, 64->64 2x2/2 3.1); grouped, with far fewer (a stem's
        # input gradient)
        fewer = 2 if groups == 1 else 4
        heuristic = "fold" if fewer * w_shape[0] <= x_shape[1] else None
        depth = x_shape[1] // groups * math.prod(w_shape[2:])
        if precise and dtype.kind == "f" and _blocked_phases_pay(x_shape, depth, groups):
            heuristic = None  # by phases (see _input_gradient_algorithm)
    else:
        heuristic = select_algorithm(geom, groups, dtype, w_shape[0], workers, precise)
    return Plan(geom, (x_shape[0], w_shape[0], *geom.output_size), phased, heuristic)


def _automatic(
    x: np.ndarray, w: np.ndarray, geom: ConvGeometry, groups: int, out: np.ndarray, budget: int
) -> str:
    """The heuristic's choice, or with autotuning on the fastest applicable algorithm (the
    timing runs compute ``out`` as a side effect)."""
    if not algorithms.get_autotune():
        return select_algorithm(geom, groups, x.dtype, w.shape[0])
    names = algorithms.candidates(geom, groups, x.dtype, w.shape[0])
    if len(names) <= 1:
        return names[0] if names else select_algorithm(geom, groups, x.dtype, w.shape[0])
    key = algorithms.cache_key(geom, w.shape, groups, x.dtype, budget)

    def trial(name: str) -> None:
        # on NonFinite the caller computes this input with a tap-by-tap algorithm
        with contextlib.suppress(winograd.NonFinite):
            algorithms.implementation(name)(x, w, geom, groups, out, budget)

    return algorithms.tuned(key, names, trial)


def _phases_of_dim(
    size: int, kernel: int, dilation: int, step: int, before: int, out_len: int
) -> list[tuple[int, tuple | None]]:
    """Split one dimension of a zero-inserted correlation into ``step`` phases.

    Output position ``o = r + step*m`` only meets real input cells through the taps ``k`` with
    ``r + k*dilation - before`` divisible by ``step``; those taps form an arithmetic progression
    ``k0, k0 + step/g, ...`` (``g = gcd(step, dilation)``) and read input cells ``m + base``,
    ``m + base + dilation/g``, ...: an ordinary correlation of the undilated input.  Returns,
    for each phase ``r``, ``None`` (no tap ever hits a real cell) or (tap slice, dilation,
    (pad before, pad after)) of that ordinary correlation.
    """
    g = math.gcd(step, dilation)
    tap_step, sub_dilation = step // g, dilation // g
    phases = []
    for r in range(min(step, out_len)):
        first = [k for k in range(min(tap_step, kernel)) if (r + k * dilation - before) % step == 0]
        if not first:
            phases.append((r, None))
            continue
        k0 = first[0]
        taps = len(range(k0, kernel, tap_step))
        length = -(-(out_len - r) // step)
        pad_before = -((r + k0 * dilation - before) // step)
        pad_after = length - size - pad_before + sub_dilation * (taps - 1)
        phases.append((r, (slice(k0, kernel, tap_step), sub_dilation, (pad_before, pad_after))))
    return phases


def _by_phases(
    x: np.ndarray,
    w: np.ndarray,
    geom: ConvGeometry,
    groups: int,
    out: np.ndarray,
    algorithm: str | None,
    budget: int,
) -> None:
    """A stride-1 correlation of a zero-inserted input as ``prod(input_dilation)`` ordinary ones.

    This is how transposed convolutions run without multiplying the inserted zeros (the
    sub-pixel decomposition); each phase writes straight into its strided slice of ``out``.
    """
    per_dim = [
        _phases_of_dim(size, k, d, step, before, length)
        for size, k, d, step, (before, _), length in zip(
            geom.input_shape[2:],
            geom.kernel_size,
            geom.dilation,
            geom.input_dilation,
            geom.pads,
            geom.output_size,
            strict=True,
        )
    ]
    # a strided depthwise layer's input gradient: every phase in one pass, unless an
    # algorithm is forced or autotuning chooses per phase
    if (
        algorithm in (None, "depthwise")
        and algorithms.get_conv_algorithm() in (None, "depthwise")
        and not algorithms.get_autotune()
        and depthwise.phases_at_once(x, w, groups, per_dim, out)
    ):
        algorithms.record("depthwise", geom)
        return
    for combo in itertools.product(*per_dim):
        view = out[
            (
                slice(None),
                slice(None),
                *(
                    slice(r, None, step)
                    for (r, _), step in zip(combo, geom.input_dilation, strict=True)
                ),
            )
        ]
        if any(spec is None for _, spec in combo):
            view[...] = 0
            continue
        taps = tuple(spec[0] for _, spec in combo)
        conv_general(
            x,
            np.ascontiguousarray(w[(slice(None), slice(None), *taps)]),
            stride=(1,) * len(combo),
            padding=[spec[2] for _, spec in combo],
            dilation=[spec[1] for _, spec in combo],
            groups=groups,
            algorithm=algorithm,  # None: each phase picks for its own (smaller) kernel
            workspace_bytes=budget,
            out=view,
        )


def transpose_kernel(w: np.ndarray, groups: int) -> np.ndarray:
    """Swap the in/out roles of a grouped kernel and flip it spatially.

    Maps a transposed-convolution weight ``(in, out/g, *K)`` to the equivalent convolution
    weight ``(out, in/g, *K)``; applied twice it is the identity, so it is its own adjoint.
    """
    cin, og, *k = w.shape
    # the taps flattened into one axis, reversed (a spatial flip of every dimension at once)
    taps = w.reshape(groups, cin // groups, og, -1)
    out = np.empty((groups, og, cin // groups, taps.shape[-1]), w.dtype)
    if w.size >= 1 << 16 and w.flags.c_contiguous and jit.kernels() is not None:
        # 512x512 3x3: 1.2 ms against NumPy's 1.9 (a reversed inner axis of 9 taps)
        jit.call("flip_swap_taps", taps, out)
    else:
        np.copyto(out, taps[..., ::-1].swapaxes(1, 2))
    return out.reshape(og * groups, cin // groups, *k)


def conv_general_backward(
    x: np.ndarray,
    w: np.ndarray,
    grad: np.ndarray,
    *,
    stride: Sequence[int],
    padding: Sequence[tuple[int, int]],
    dilation: Sequence[int],
    input_dilation: Sequence[int] | None = None,
    groups: int = 1,
    needs: tuple[bool, bool] = (True, True),
    algorithm: str | None = None,
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Gradients of :func:`conv_general` with respect to ``x`` and ``w``, each itself a call
    of the primitive; only those flagged in ``needs`` are computed.

    * input: correlate the stride-dilated gradient with the flipped, in/out-swapped kernel,
      reading every ``input_dilation``-th position starting at the forward's front padding;
    * weight: correlate the input (batch and channels swapped) with the gradient used as the
      kernel, stride and dilation exchanging roles.

    Gradients are computed :func:`algorithms.precisely`.
    """
    with algorithms.precisely():
        n = x.ndim - 2
        input_dilation = tuple(input_dilation or (1,) * n)
        size, kernel, out_size = x.shape[2:], w.shape[2:], grad.shape[2:]
        grad_x = grad_w = None
        if needs[0]:
            pads = []
            for h, k, o, s, d, i, (lo, _) in zip(
                size, kernel, out_size, stride, dilation, input_dilation, padding, strict=True
            ):
                before = d * (k - 1) - lo
                pads.append((before, (h - 1) * i + d * (k - 1) + 1 - ((o - 1) * s + 1) - before))
            grad_x = conv_general(
                grad,
                transpose_kernel(w, groups),
                stride=input_dilation,
                padding=pads,
                dilation=dilation,
                input_dilation=stride,
                groups=groups,
                algorithm=algorithm
                or _input_gradient_algorithm(w, groups, stride, input_dilation, grad.shape),
            )
        if needs[1]:
            pads = []
            for h, k, o, s, d, i, (lo, hi) in zip(
                size, kernel, out_size, stride, dilation, input_dilation, padding, strict=True
            ):
                used = (o - 1) * s + (k - 1) * d + 1  # padded cells the forward actually read
                pads.append((lo, hi - ((h - 1) * i + 1 + lo + hi - used)))
            chosen = algorithm or algorithms.get_conv_algorithm()
            channels = x.shape[1]
            few = (channels // groups) * (grad.shape[1] // groups) <= FEW_CHANNELS
            tap_by_tap = (groups == channels and channels > 1) or few
            geom = ConvGeometry(
                input_shape=x.shape,
                kernel_size=tuple(kernel),
                stride=tuple(stride),
                pads=tuple((int(a), int(b)) for a, b in padding),
                dilation=tuple(dilation),
                input_dilation=input_dilation,
                output_size=tuple(out_size),
            )
            if (
                chosen in (None, "depthwise")
                and tap_by_tap
                and max(input_dilation) == 1
                and x.dtype.kind == "f"
                and jit.kernels() is not None
            ):
                tap_weight_gradient = algorithms.weight_gradient("depthwise")
                grad_w = tap_weight_gradient(x, grad, geom, groups, get_workspace_budget())
                algorithms.record("depthwise", geom)
                return grad_x, grad_w
            dense = groups < channels or channels == 1
            if (chosen == "blocked" or (chosen is None and dense)) and max(input_dilation) == 1:
                grad_w = _blocked_weight_gradient(x, grad, geom, groups, chosen == "blocked")
                if grad_w is not None:
                    return grad_x, grad_w
            gemm = (chosen in (None, "unfold") and dense) or chosen == "shifted"
            if gemm and max(input_dilation) == 1:
                # dense layers: GEMMs on the forward pass's own unfolding, tile by tile;
                # 'shifted' has no weight gradient of its own (its taps would be the output's cells)
                gemm_weight_gradient = algorithms.weight_gradient("unfold")
                grad_w = gemm_weight_gradient(x, grad, geom, groups, get_workspace_budget())
                algorithms.record("unfold", geom)
                return grad_x, grad_w
            if chosen in (None, "unfold") and dense and all(s == 1 for s in stride):
                # zero insertion without a stride (a transposed convolution's forward): the
                # gradient unfolded with the insertion as its stride; otherwise the swapped
                # correlation below, by phases
                grad_w = _zero_inserted_weight_gradient(x, grad, geom, groups)
                return grad_x, grad_w
            # The swapped copies of input and gradient are made a batch chunk at a time, so they
            # stay within a quarter of the workspace budget; the chunks' gradients add up.
            batch = x.shape[0]
            per_sample = (x[:1].nbytes + grad[:1].nbytes) or 1
            chunk = max(1, min(batch, get_workspace_budget() // 4 // per_sample))
            for start in range(0, batch, chunk):
                part = _weight_gradient(
                    x[start : start + chunk],
                    grad[start : start + chunk],
                    stride=stride,
                    pads=pads,
                    dilation=dilation,
                    input_dilation=input_dilation,
                    groups=groups,
                    algorithm=algorithm,
                )
                if grad_w is None:
                    grad_w = part
                else:
                    grad_w += part
        return grad_x, grad_w


def _blocked_weight_gradient(
    x: np.ndarray, grad: np.ndarray, geom: ConvGeometry, groups: int, forced: bool
) -> np.ndarray | None:
    """The weight gradient with the register-blocked kernel when forced, or when the layer's
    forward takes it and its runs are long enough (``blocked.weight_gradient_pays``); ``None``
    otherwise (or when the kernel declines the call: non-finite input, budget)."""
    if not forced:
        heuristic = select_algorithm(geom, groups, x.dtype, grad.shape[1], precise=True)
        itemsize = tiling.compute_dtype(x.dtype).itemsize
        if heuristic != "blocked" or not blocked.weight_gradient_pays(
            geom, grad.shape[1], itemsize
        ):
            return None
    elif blocked.unsupported(geom, groups, x.dtype) is not None:
        return None
    grad_w = blocked.weight_gradient(x, grad, geom, groups, get_workspace_budget())
    if grad_w is not None:
        algorithms.record("blocked", geom)
    return grad_w


def _input_gradient_algorithm(
    w: np.ndarray,
    groups: int,
    stride: Sequence[int],
    input_dilation: Sequence[int],
    grad_shape: Sequence[int],
) -> str | None:
    """``"fold"`` for the input gradient of a strided dense floating-point layer (none
    forced, no autotuning), else ``None`` (the usual choice) -- unless its phases run on the
    register-blocked kernel: a gradient (``grad_shape``) with planes of at least
    :data:`BLOCKED_PHASE_PLANE` positions, a dense layer (2 threads, batch 8, 3x3/2, fold /
    phases (torch): 64 -> 128 channels on 56x56 14.6 / 6.6 ms (5.2), 128 -> 256 on 28x28 11.9
    / 7.1 (4.4), but 256 -> 512 on 14x14, whose 7x7 phases stay on unfold, 11.8 / 14.2).

    Fold skips the zeros the stride inserts into the gradient without splitting the call
    into phases, and its GEMM sums over the output channels only, the taps being added
    afterwards as PyTorch's col2im does.  Measured on ResNet-18's stride-2 layers at batch 8,
    2 threads: 3x3 0.59-0.78x the time of the phases, float32 error 2.9-4.1e-7 against their
    5.0-6.2e-7 (torch 5.7-12e-7); 1x1 0.57-0.77x.  Stride-1 layers keep unfold/Winograd:
    fold's nine strided adds made them 1.0-1.7x slower there (their error stays 1.5-2x
    torch's).
    """
    if algorithms.get_conv_algorithm() is not None or algorithms.get_autotune():
        return None
    channels = w.shape[1] * groups
    dense = groups < channels or channels == 1
    few = w.shape[1] * (w.shape[0] // groups) <= FEW_CHANNELS  # the tap-by-tap kernel's
    strided = max(stride) > 1 and max(input_dilation) == 1
    if w.dtype.kind != "f" or not dense or few or not strided:
        return None
    # the gradient is the phases' input, the forward's output channels theirs
    if _blocked_phases_pay(tuple(grad_shape), w.shape[0] * math.prod(w.shape[2:]), groups):
        return None
    return "fold"


def _blocked_phases_pay(x_shape: tuple[int, ...], depth: int, groups: int) -> bool:
    """Whether a zero-inserted call that feeds a gradient (a strided layer's input gradient,
    a transposed layer's forward in training) runs its phases on the register-blocked kernel
    rather than as ``fold``: dense, planes of :data:`BLOCKED_PHASE_PLANE` positions or more,
    ``depth`` (input channels x taps) of at least :data:`BLOCKED_DEPTH`."""
    return (
        groups == 1
        and math.prod(x_shape[2:]) >= BLOCKED_PHASE_PLANE
        and depth >= BLOCKED_DEPTH
        and blocked.available()
    )


BLOCKED_PHASE_PLANE = 196
"""Positions per plane of a strided dense layer's output gradient (14x14) from which its
input gradient runs by phases, on the register-blocked kernel, rather than as ``fold``."""


def _zero_inserted_weight_gradient(
    x: np.ndarray, grad: np.ndarray, geom: ConvGeometry, groups: int
) -> np.ndarray:
    """Weight gradient of a stride-1 convolution over the zero-inserted input (``geom``'s
    ``input_dilation`` s > 1, as a transposed convolution's forward runs), with no zeros
    inserted: the output gradient is read as the input of a convolution of stride s, whose
    output gradient is ``x``; that weight gradient, channels swapped and taps flipped, is this
    one's.  Output position ``y`` reads input cell ``i`` through tap ``t`` where ``y = i*s +
    lo - t*d``; with ``t = K-1-t'`` that is ``i*s - lo' + t'*d``, ``lo' = d*(K-1) - lo``.
    One unfold of the gradient, tile by tile, and GEMMs (``unfold_gemm.weight_gradient``),
    instead of a swapped correlation per stride phase."""
    n = x.ndim - 2
    pads = []
    for size, k, lo_hi, d, s, out in zip(
        grad.shape[2:],
        geom.kernel_size,
        geom.pads,
        geom.dilation,
        geom.input_dilation,
        x.shape[2:],
        strict=True,
    ):
        lo = d * (k - 1) - lo_hi[0]
        pads.append((lo, (out - 1) * s + d * (k - 1) + 1 - size - lo))
    swapped = ConvGeometry(
        input_shape=grad.shape,
        kernel_size=geom.kernel_size,
        stride=geom.input_dilation,
        pads=tuple(pads),
        dilation=geom.dilation,
        input_dilation=(1,) * n,
        output_size=tuple(x.shape[2:]),
    )
    # (C, O/groups, *K): x's channels as the output channels of the swapped convolution
    unfold_weight_gradient = algorithms.weight_gradient("unfold")
    per_channel = unfold_weight_gradient(grad, x, swapped, groups, get_workspace_budget())
    algorithms.record("unfold", swapped)
    return transpose_kernel(per_channel, groups)


def _weight_gradient(
    x: np.ndarray,
    grad: np.ndarray,
    *,
    stride: Sequence[int],
    pads: Sequence[tuple[int, int]],
    dilation: Sequence[int],
    input_dilation: Sequence[int],
    groups: int,
    algorithm: str | None,
) -> np.ndarray:
    """Weight gradient of one batch chunk: the input (batch and channels swapped) correlated
    with the output gradient used as the kernel, stride and dilation exchanging roles."""
    batch, channels, *size = x.shape
    n = len(size)
    cg = channels // groups
    # x'[c, g*N + n] = x[n, g*cg + c]; w'[o, n] = grad[n, o]
    x_swapped = x.reshape(batch, groups, cg, *size).transpose(2, 1, 0, *range(3, 3 + n))
    x_swapped = np.ascontiguousarray(x_swapped).reshape(cg, groups * batch, *size)
    g_swapped = np.ascontiguousarray(np.swapaxes(grad, 0, 1))
    per_channel = conv_general(
        x_swapped,
        g_swapped,
        stride=dilation,
        padding=pads,
        dilation=stride,
        input_dilation=input_dilation,
        groups=groups,
        algorithm=algorithm,
    )
    return np.ascontiguousarray(np.swapaxes(per_channel, 0, 1))
