"""Time convscope's convolutions against PyTorch in the same process, on the same threads.

Prints one line per case (median time of each library, convscope/torch ratio, GFLOP/s) and
the geometric mean of the ratios; optionally writes JSON and a markdown table.

    python benchmarks/bench_conv.py [--repeats 7] [--threads 2] [--json F] [--markdown F]

This is a script, not a test: timings depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import time
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Case:
    name: str
    input_shape: tuple[int, ...]
    out_channels: int
    kernel_size: int | tuple[int, ...]
    stride: int = 1
    padding: int = 0
    groups: int = 1
    dilation: int = 1
    transposed: bool = False
    output_padding: int = 0


CASES = [
    Case("ResNet stem 7x7/2", (8, 3, 224, 224), 64, 7, stride=2, padding=3),
    Case("ResNet 3x3 64ch 56x56", (8, 64, 56, 56), 64, 3, padding=1),
    Case("ResNet 3x3 256ch 14x14", (8, 256, 14, 14), 256, 3, padding=1),
    Case("ResNet 1x1 256->64 56x56", (8, 256, 56, 56), 64, 1),
    Case("MobileNetV2 depthwise 3x3", (8, 144, 56, 56), 144, 3, padding=1, groups=144),
    Case("ConvNeXt depthwise 7x7", (8, 96, 56, 56), 96, 7, padding=3, groups=96),
    Case("RepLKNet depthwise 31x31", (1, 128, 64, 64), 128, 31, padding=15, groups=128),
    Case("depthwise 13x13", (4, 64, 56, 56), 64, 13, padding=6, groups=64),
    Case("U-Net ConvTranspose 2x2/2", (8, 128, 28, 28), 64, 2, stride=2, transposed=True),
    Case(
        "DCGAN ConvTranspose 4x4/2", (16, 256, 8, 8), 128, 4, stride=2, padding=1, transposed=True
    ),
    Case("WaveNet Conv1d k2 d8", (4, 64, 16000), 64, 2, dilation=8),
    Case("C3D Conv3d 3x3x3", (2, 64, 16, 56, 56), 64, 3, padding=1),
    Case("seed spectrogram Conv2d 1->2 3x3", (1, 1, 257, 188), 2, 3, padding=1),
]


def flops(case: Case, out_shape: tuple[int, ...]) -> float:
    """Multiply-adds x 2 of the case (counted on the non-transposed side)."""
    kernel = (
        (case.kernel_size,) * (len(case.input_shape) - 2)
        if isinstance(case.kernel_size, int)
        else case.kernel_size
    )
    if case.transposed:
        per_input = case.out_channels // case.groups * math.prod(kernel)
        return 2.0 * math.prod(case.input_shape) * per_input
    per_output = case.input_shape[1] // case.groups * math.prod(kernel)
    return 2.0 * math.prod(out_shape) * per_output


def median_time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def build(case: Case):
    import torch

    import convscope as cs

    n = len(case.input_shape) - 2
    kind = "ConvTranspose" if case.transposed else "Conv"
    kwargs = dict(
        stride=case.stride, padding=case.padding, groups=case.groups, dilation=case.dilation
    )
    if case.transposed:
        kwargs["output_padding"] = case.output_padding
    reference = getattr(torch.nn, f"{kind}{n}d")(
        case.input_shape[1], case.out_channels, case.kernel_size, **kwargs
    )
    ours = getattr(cs.nn, f"{kind}{n}d")(
        case.input_shape[1], case.out_channels, case.kernel_size, **kwargs
    )
    ours.load_state_dict({k: v.detach().numpy() for k, v in reference.state_dict().items()})
    x = np.random.default_rng(0).standard_normal(case.input_shape, dtype=np.float32)
    return reference, ours, torch.from_numpy(x), cs.from_numpy(x)


def run_case(case: Case, repeats: int) -> dict:
    import torch

    reference, ours, x_ref, x_ours = build(case)
    with torch.no_grad():
        expected = reference(x_ref).numpy()
        t_ref = median_time(lambda: reference(x_ref), repeats)
    got = ours(x_ours).numpy()
    t_ours = median_time(lambda: ours(x_ours), repeats)
    err = float(np.abs(got - expected).max() / max(np.abs(expected).max(), 1e-30))
    work = flops(case, got.shape)
    return {
        **asdict(case),
        "torch_s": t_ref,
        "convscope_s": t_ours,
        "ratio": t_ours / t_ref,
        "convscope_gflops": work / t_ours / 1e9,
        "torch_gflops": work / t_ref / 1e9,
        "max_rel_err": err,
    }


def markdown(rows: list[dict], threads: int, geomean: float) -> str:
    lines = [
        f"Forward pass, float32, {threads} thread(s), median of repeats "
        f"({platform.machine()}, NumPy {np.__version__}).",
        "",
        "| case | input | convscope ms | torch ms | ratio | convscope GFLOP/s |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['name']} | {tuple(r['input_shape'])} | {r['convscope_s'] * 1e3:.2f} | "
            f"{r['torch_s'] * 1e3:.2f} | {r['ratio']:.2f} | {r['convscope_gflops']:.1f} |"
        )
    lines.append(f"| **geometric mean** | | | | **{geomean:.2f}** | |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--only", default="", help="run only cases whose name contains this")
    parser.add_argument("--json", help="write the results to this JSON file")
    parser.add_argument("--markdown", help="write a markdown table to this file")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    rows = []
    for case in CASES:
        if args.only.lower() not in case.name.lower():
            continue
        row = run_case(case, args.repeats)
        rows.append(row)
        print(
            f"{case.name:<34} convscope {row['convscope_s'] * 1e3:9.2f} ms  torch "
            f"{row['torch_s'] * 1e3:9.2f} ms  ratio {row['ratio']:6.2f}  "
            f"{row['convscope_gflops']:7.1f} GFLOP/s  rel.err {row['max_rel_err']:.1e}",
            flush=True,
        )
    geomean = math.exp(statistics.fmean(math.log(r["ratio"]) for r in rows))
    print(f"geometric mean ratio (convscope/torch): {geomean:.2f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(
                {"threads": args.threads, "geomean_ratio": geomean, "cases": rows}, fh, indent=2
            )
    if args.markdown:
        with open(args.markdown, "w") as fh:
            fh.write(markdown(rows, args.threads, geomean))


if __name__ == "__main__":
    main()
