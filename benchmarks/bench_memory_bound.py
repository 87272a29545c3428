"""Time convscope's memory-bound layers (max/avg pooling, depthwise convolution) against torch.

Both libraries run in this process on the same number of threads, calls interleaved (one of
each, repeatedly) so that load from elsewhere on the machine affects both alike.  Prints one
line per case: median milliseconds of each, the ratio convscope/torch and the largest
absolute difference of the outputs; then the geometric mean of the ratios per group.

    python benchmarks/bench_memory_bound.py [--threads 2] [--repeats 15] [--only TEXT]
                                            [--backward]

``--backward`` times forward+backward (gradients of the input, and of the weight for
depthwise layers) instead of the ``no_grad`` forward.  This is a script, not a test:
timings depend on the machine.
"""

from __future__ import annotations

import argparse
import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import timing


@dataclass(frozen=True)
class Case:
    name: str
    group: str
    shape: tuple[int, ...]
    kind: str  # "max", "max_indices", "avg", "depthwise"
    kernel: int
    stride: int = 1
    padding: int = 0
    ceil_mode: bool = False


CASES = [
    Case("resnet max-pool 3/2/1 b8", "pool", (8, 64, 112, 112), "max", 3, 2, 1),
    Case("resnet max-pool 3/2/1 b1", "pool", (1, 64, 112, 112), "max", 3, 2, 1),
    Case("max-pool 2/2 with indices", "pool", (8, 64, 56, 56), "max_indices", 2, 2),
    Case("max-pool 1d 3/2 ceil", "pool", (8, 64, 4000), "max", 3, 2, 1, True),
    Case("max-pool 3d 3/2/1", "pool", (2, 32, 16, 56, 56), "max", 3, 2, 1),
    Case("avg-pool 2/2", "pool", (8, 64, 56, 56), "avg", 2, 2),
    Case("avg-pool 3/1/1", "pool", (8, 64, 56, 56), "avg", 3, 1, 1),
    Case("dw 3x3/2 96ch 112 b8", "depthwise-small", (8, 96, 112, 112), "depthwise", 3, 2, 1),
    Case("dw 3x3 144ch 56 b8", "depthwise-small", (8, 144, 56, 56), "depthwise", 3, 1, 1),
    Case("dw 3x3 960ch 7 b8", "depthwise-small", (8, 960, 7, 7), "depthwise", 3, 1, 1),
    Case("dw 5x5 240ch 28 b8", "depthwise-small", (8, 240, 28, 28), "depthwise", 5, 1, 2),
    Case("dw 7x7 96ch 56 b8", "depthwise-small", (8, 96, 56, 56), "depthwise", 7, 1, 3),
    Case("dw 3x3/2 96ch 112 b1", "depthwise-small", (1, 96, 112, 112), "depthwise", 3, 2, 1),
    Case("dw 3x3 144ch 56 b1", "depthwise-small", (1, 144, 56, 56), "depthwise", 3, 1, 1),
    Case("dw 3x3 960ch 7 b1", "depthwise-small", (1, 960, 7, 7), "depthwise", 3, 1, 1),
    Case("dw 5x5/2 240ch 28 b1", "depthwise-small", (1, 240, 28, 28), "depthwise", 5, 2, 2),
    Case("dw 13x13 64ch 56 b4", "depthwise-large", (4, 64, 56, 56), "depthwise", 13, 1, 6),
    Case("dw 31x31 128ch 64 b1", "depthwise-large", (1, 128, 64, 64), "depthwise", 31, 1, 15),
]


def _function(lib, c: Case, channels: int) -> Callable:
    """The layer as a function of the input (and, for depthwise, a fixed weight)."""
    functional = lib.nn.functional
    dims = len(c.shape) - 2
    if c.kind.startswith("max"):
        pool = getattr(functional, f"max_pool{dims}d")
        indices = c.kind == "max_indices"
        return lambda x: pool(
            x, c.kernel, c.stride, c.padding, ceil_mode=c.ceil_mode, return_indices=indices
        )
    if c.kind == "avg":
        pool = getattr(functional, f"avg_pool{dims}d")
        return lambda x: pool(x, c.kernel, c.stride, c.padding, ceil_mode=c.ceil_mode)
    conv = getattr(functional, f"conv{dims}d")
    return lambda x, w: conv(x, w, None, c.stride, c.padding, 1, channels)


def _first(result):
    return result[0] if isinstance(result, tuple) else result


def run_case(c: Case, repeats: int, backward: bool) -> dict:
    import torch

    import convscope as cs

    rng = np.random.default_rng(0)
    x = rng.standard_normal(c.shape, dtype=np.float32)
    channels = c.shape[1]
    weight = None
    if c.kind == "depthwise":
        kernel = (c.kernel,) * (len(c.shape) - 2)
        weight = rng.standard_normal((channels, 1, *kernel), dtype=np.float32) / c.kernel
    ours, theirs = _function(cs, c, channels), _function(torch, c, channels)
    if not backward:
        args_ours = [cs.from_numpy(x)] + ([cs.from_numpy(weight)] if weight is not None else [])
        args_theirs = [torch.from_numpy(x)]
        args_theirs += [torch.from_numpy(weight)] if weight is not None else []

        def run_ours():
            with cs.no_grad():
                return _first(ours(*args_ours))

        def run_theirs():
            with torch.no_grad():
                return _first(theirs(*args_theirs))

    else:
        upstream = None

        def run_ours():
            args = [cs.tensor(x, requires_grad=True)]
            if weight is not None:
                args.append(cs.tensor(weight, requires_grad=True))
            y = _first(ours(*args))
            y.backward(cs.from_numpy(upstream_for(y.shape)))
            return args[0].grad

        def run_theirs():
            args = [torch.tensor(x, requires_grad=True)]
            if weight is not None:
                args.append(torch.tensor(weight, requires_grad=True))
            y = _first(theirs(*args))
            y.backward(torch.from_numpy(upstream_for(tuple(y.shape))))
            return args[0].grad

        def upstream_for(shape):
            nonlocal upstream
            if upstream is None or upstream.shape != tuple(shape):
                upstream = rng.standard_normal(shape, dtype=np.float32)
            return upstream

    a, b = np.asarray(run_ours().numpy()), run_theirs().numpy()
    error = float(np.max(np.abs(a - b))) if a.size else 0.0
    t_ours, t_theirs = timing.interleaved([run_ours, run_theirs], repeats)
    return {
        "case": c.name,
        "group": c.group,
        "ours_ms": 1e3 * t_ours,
        "torch_ms": 1e3 * t_theirs,
        "ratio": t_ours / t_theirs,
        "max_abs_diff": error,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--only", default="", help="run the cases whose name contains this")
    parser.add_argument("--backward", action="store_true", help="time forward+backward")
    args = parser.parse_args()

    import torch

    import convscope as cs

    torch.set_num_threads(args.threads)
    cs.set_num_threads(args.threads)
    print(f"{'case':30s} {'convscope ms':>12s} {'torch ms':>9s} {'ratio':>6s} {'max diff':>9s}")
    rows = []
    for c in CASES:
        if args.only not in c.name:
            continue
        row = run_case(c, args.repeats, args.backward)
        rows.append(row)
        print(
            f"{row['case']:30s} {row['ours_ms']:12.2f} {row['torch_ms']:9.2f} "
            f"{row['ratio']:6.2f} {row['max_abs_diff']:9.1e}",
            flush=True,
        )
    for group in dict.fromkeys(r["group"] for r in rows):
        ratios = [r["ratio"] for r in rows if r["group"] == group]
        mean = math.exp(statistics.fmean(math.log(v) for v in ratios))
        print(f"geomean {group}: {mean:.2f} (worst {max(ratios):.2f})")


if __name__ == "__main__":
    main()
