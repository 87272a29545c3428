"""Time convscope's convolutions against PyTorch in the same process, on the same threads.

For every case: median time of each library (forward, and forward+backward), the ratio
convscope/torch, effective GFLOP/s, convscope's peak traced memory and its largest
relative error against torch; then the geometric mean of the ratios per group, the import
time of ``import convscope`` and the installed size of convscope and torch.  Timings of the
two libraries are interleaved (one call each, repeatedly) so that load from elsewhere on
the machine affects both alike.

    python benchmarks/bench_conv.py [--repeats 7] [--threads 2] [--only TEXT] [--no-backward]
                                    [--json docs/benchmarks.json] [--markdown docs/benchmarks.md]

This is a script, not a test: timings depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tracemalloc
from dataclasses import asdict, dataclass, field
from pathlib import Path

import machine
import numpy as np
import timing

# the targets of the whole-network issue (forward x torch unless stated)
GROUPS = {
    "dense": "dense convolutions (target: forward geomean <= 0.9, none > 1.5; "
    "forward+backward geomean <= 1.1)",
    "depthwise-small": "small-kernel depthwise, 3x3 and 7x7 (target <= 1.5)",
    "depthwise-large": "large-kernel depthwise, 13x13 and 31x31 (target <= 0.3)",
    "latency": "seed spectrogram stack, latency-bound (no target)",
}


@dataclass(frozen=True)
class Layer:
    out_channels: int
    kernel_size: int | tuple[int, ...]
    stride: int = 1
    padding: int = 0
    groups: int = 1
    dilation: int = 1
    transposed: bool = False
    output_padding: int = 0


@dataclass(frozen=True)
class Case:
    name: str
    group: str
    input_shape: tuple[int, ...]
    layers: tuple[Layer, ...] = field(default_factory=tuple)


def case(name, group, shape, *layers):
    return Case(name, group, shape, tuple(layers))


CASES = [
    case("ResNet stem 7x7/2", "dense", (8, 3, 224, 224), Layer(64, 7, stride=2, padding=3)),
    case("ResNet 3x3 64ch 56x56", "dense", (8, 64, 56, 56), Layer(64, 3, padding=1)),
    case("ResNet 3x3 128ch 28x28", "dense", (8, 128, 28, 28), Layer(128, 3, padding=1)),
    case("ResNet 3x3 256ch 14x14", "dense", (8, 256, 14, 14), Layer(256, 3, padding=1)),
    case("ResNet 1x1 256->64 56x56", "dense", (8, 256, 56, 56), Layer(64, 1)),
    case("ResNet 3x3/2 128ch 56x56", "dense", (8, 128, 56, 56), Layer(128, 3, 2, 1)),
    case(
        "MobileNetV2 depthwise 3x3",
        "depthwise-small",
        (8, 144, 56, 56),
        Layer(144, 3, padding=1, groups=144),
    ),
    case(
        "MobileNetV2 depthwise 3x3/2",
        "depthwise-small",
        (8, 96, 112, 112),
        Layer(96, 3, stride=2, padding=1, groups=96),
    ),
    case(
        "ConvNeXt depthwise 7x7",
        "depthwise-small",
        (8, 96, 56, 56),
        Layer(96, 7, padding=3, groups=96),
    ),
    case(
        "RepLKNet depthwise 31x31",
        "depthwise-large",
        (1, 128, 64, 64),
        Layer(128, 31, padding=15, groups=128),
    ),
    case(
        "depthwise 13x13",
        "depthwise-large",
        (4, 64, 56, 56),
        Layer(64, 13, padding=6, groups=64),
    ),
    case(
        "U-Net ConvTranspose 2x2/2",
        "dense",
        (8, 128, 28, 28),
        Layer(64, 2, stride=2, transposed=True),
    ),
    case(
        "DCGAN ConvTranspose 4x4/2",
        "dense",
        (16, 256, 8, 8),
        Layer(128, 4, stride=2, padding=1, transposed=True),
    ),
    case("WaveNet Conv1d k2 d8", "dense", (4, 64, 16000), Layer(64, 2, dilation=8)),
    case("wav2vec Conv1d 1->512 k10/5", "dense", (4, 1, 16000), Layer(512, 10, stride=5)),
    case("C3D Conv3d 3x3x3", "dense", (2, 64, 16, 56, 56), Layer(64, 3, padding=1)),
    case(
        "seed spectrogram stack",
        "latency",
        (1, 1, 257, 188),
        Layer(2, 3, padding=1),
        Layer(2, 5, padding=2),
    ),
]


def _module(lib, layer: Layer, in_channels: int, dims: int):
    kind = "ConvTranspose" if layer.transposed else "Conv"
    kwargs = dict(
        stride=layer.stride, padding=layer.padding, groups=layer.groups, dilation=layer.dilation
    )
    if layer.transposed:
        kwargs["output_padding"] = layer.output_padding
    return getattr(lib.nn, f"{kind}{dims}d")(
        in_channels, layer.out_channels, layer.kernel_size, **kwargs
    )


def build(c: Case):
    """The case as a torch model and an identical convscope model, and their input."""
    import torch

    import convscope as cs

    dims = len(c.input_shape) - 2
    channels, ours, theirs = c.input_shape[1], [], []
    for layer in c.layers:
        reference = _module(torch, layer, channels, dims)
        mine = _module(cs, layer, channels, dims)
        mine.load_state_dict({k: v.detach().numpy() for k, v in reference.state_dict().items()})
        theirs.append(reference)
        ours.append(mine)
        channels = layer.out_channels
    x = np.random.default_rng(0).standard_normal(c.input_shape, dtype=np.float32)
    return torch.nn.Sequential(*theirs), cs.nn.Sequential(*ours), x


def flops(model, x) -> float:
    """Multiply-adds x 2 of one forward pass of a torch Sequential (non-transposed side)."""
    import torch

    total = 0.0
    with torch.no_grad():
        for layer in model:
            y = layer(x)
            kernel = math.prod(layer.kernel_size)
            if layer.transposed:
                total += 2.0 * x.numel() * layer.out_channels // layer.groups * kernel
            else:
                total += 2.0 * y.numel() * layer.in_channels // layer.groups * kernel
            x = y
    return total


def peak_traced(fn) -> int:
    """Peak bytes allocated through Python/NumPy while ``fn()`` runs."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def run_case(c: Case, repeats: int, backward: bool) -> dict:
    import torch

    import convscope as cs

    reference, ours, x = build(c)
    x_ref, x_ours = torch.from_numpy(x), cs.from_numpy(x)

    def torch_forward():
        with torch.no_grad():
            return reference(x_ref)

    def ours_forward():
        with cs.no_grad():
            return ours(x_ours)

    expected = torch_forward().numpy()
    got = ours_forward().numpy()
    err = float(np.abs(got - expected).max() / max(np.abs(expected).max(), 1e-30))
    t_ours, t_ref = timing.interleaved([ours_forward, torch_forward], repeats)
    work = flops(reference, x_ref)
    row = {
        "name": c.name,
        "group": c.group,
        "input_shape": list(c.input_shape),
        "layers": [asdict(layer) for layer in c.layers],
        "gflop": work / 1e9,
        "forward": {
            "convscope_s": t_ours,
            "torch_s": t_ref,
            "ratio": t_ours / t_ref,
            "convscope_gflops": work / t_ours / 1e9,
            "torch_gflops": work / t_ref / 1e9,
            "convscope_peak_mib": peak_traced(ours_forward) / 2**20,
            "max_rel_err": err,
        },
    }
    if backward:
        upstream = np.random.default_rng(1).standard_normal(expected.shape, dtype=np.float32)
        up_ref, up_ours = torch.from_numpy(upstream), cs.from_numpy(upstream)
        x_ref_grad = x_ref.clone().requires_grad_()
        x_ours_grad = cs.tensor(x, requires_grad=True)

        def torch_step():
            reference.zero_grad(set_to_none=True)
            x_ref_grad.grad = None
            reference(x_ref_grad).backward(up_ref)

        def ours_step():
            ours.zero_grad()
            x_ours_grad.grad = None
            ours(x_ours_grad).backward(up_ours)

        torch_step(), ours_step()
        grads = [(x_ours_grad.grad.numpy(), x_ref_grad.grad.numpy())] + [
            (p.grad.numpy(), q.grad.numpy())
            for p, q in zip(ours.parameters(), reference.parameters(), strict=True)
        ]
        grad_err = max(float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30)) for a, b in grads)
        t_ours_b, t_ref_b = timing.interleaved([ours_step, torch_step], repeats)
        row["forward_backward"] = {
            "convscope_s": t_ours_b,
            "torch_s": t_ref_b,
            "ratio": t_ours_b / t_ref_b,
            "convscope_gflops": 3 * work / t_ours_b / 1e9,
            "torch_gflops": 3 * work / t_ref_b / 1e9,
            "convscope_peak_mib": peak_traced(ours_step) / 2**20,
            "max_rel_err": grad_err,
        }
    return row


def geomean(values: list[float]) -> float:
    return math.exp(statistics.fmean(math.log(v) for v in values)) if values else float("nan")


def summarise(rows: list[dict]) -> dict:
    summary = {}
    for group in GROUPS:
        mine = [r for r in rows if r["group"] == group]
        if not mine:
            continue
        entry = {
            "forward": geomean([r["forward"]["ratio"] for r in mine]),
            "max_forward": max(r["forward"]["ratio"] for r in mine),
        }
        if all("forward_backward" in r for r in mine):
            entry["forward_backward"] = geomean([r["forward_backward"]["ratio"] for r in mine])
        summary[group] = entry
    return summary


def import_time(repeats: int = 7) -> float:
    """Median seconds of ``import convscope`` in a fresh interpreter (numpy included)."""
    code = "import time; t = time.perf_counter(); import convscope; print(time.perf_counter() - t)"
    runs = [
        float(
            subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, check=True
            ).stdout
        )
        for _ in range(repeats)
    ]
    return statistics.median(runs)


def jit_times() -> dict[str, float] | None:
    """Seconds of the first depthwise call in a fresh process: with an empty numba cache
    (compiling) and again with the cache that run filled (loading), numba import included."""
    import tempfile

    try:
        import numba  # noqa: F401
    except ImportError:
        return None
    code = (
        "import time, numpy as np, convscope.nn.functional as F; t = time.perf_counter(); "
        "F.conv2d(np.ones((1, 4, 16, 16), np.float32), np.ones((4, 1, 3, 3), np.float32), "
        "groups=4); print(time.perf_counter() - t)"
    )
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        runs = [
            float(
                subprocess.run(
                    [sys.executable, "-c", code],
                    capture_output=True,
                    text=True,
                    check=True,
                    env=env,
                ).stdout
            )
            for _ in range(2)
        ]
    return {"first_call_compiling_s": runs[0], "first_call_cached_s": runs[1]}


def installed_mib(distribution: str) -> float | None:
    """Installed size of a distribution's files (its site-packages footprint), in MiB."""
    from importlib import metadata

    try:
        dist = metadata.distribution(distribution)
    except metadata.PackageNotFoundError:
        return None
    total = 0
    for entry in dist.files or []:
        path = Path(dist.locate_file(entry))
        if path.is_file():
            total += path.stat().st_size
    if distribution == "convscope" and total < 1 << 20:  # editable install: count the source
        import convscope

        root = Path(convscope.__file__).parent
        total = sum(
            p.stat().st_size
            for p in root.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts
        )
    return total / 2**20


def markdown(report: dict) -> str:
    rows, threads = report["cases"], report["threads"]
    lines = [
        f"float32, {threads} thread(s) for both libraries, median of {report['repeats']} "
        f"interleaved calls; {report['machine']}, NumPy {report['numpy']}, "
        f"torch {report['torch']}. Ratio = convscope time / torch time (below 1: faster).",
        "",
        "| case | group | input | fwd ms (torch) | fwd ratio | fwd+bwd ms (torch) "
        "| fwd+bwd ratio | GFLOP/s fwd | peak MiB fwd / fwd+bwd |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        f, b = r["forward"], r.get("forward_backward")
        back = (
            (
                f"{b['convscope_s'] * 1e3:.1f} ({b['torch_s'] * 1e3:.1f})",
                f"{b['ratio']:.2f}",
                f"{b['convscope_peak_mib']:.0f}",
            )
            if b
            else ("-", "-", "-")
        )
        lines.append(
            f"| {r['name']} | {r['group']} | {tuple(r['input_shape'])} | "
            f"{f['convscope_s'] * 1e3:.1f} ({f['torch_s'] * 1e3:.1f}) | {f['ratio']:.2f} | "
            f"{back[0]} | {back[1]} | {f['convscope_gflops']:.1f} | "
            f"{f['convscope_peak_mib']:.0f} / {back[2]} |"
        )
    lines += [
        "",
        "| group | forward geomean | worst forward | forward+backward geomean |",
        "|---|---:|---:|---:|",
    ]
    for group, entry in report["groups"].items():
        fb = entry.get("forward_backward")
        lines.append(
            f"| {GROUPS[group]} | {entry['forward']:.2f} | {entry['max_forward']:.2f} "
            f"| {'-' if fb is None else f'{fb:.2f}'} |"
        )
    extra = report.get("footprint", {})
    if extra:
        lines += [
            "",
            f"`import convscope`: {extra['import_s'] * 1e3:.0f} ms (fresh interpreter, NumPy "
            f"included). Installed size: convscope {extra['convscope_mib']:.1f} MiB, torch "
            f"{extra['torch_mib']:.0f} MiB.",
        ]
        if extra.get("jit"):
            lines[-1] += (
                " Compiled kernels (numba): the first depthwise call of a process takes "
                f"{extra['jit']['first_call_compiling_s']:.1f} s when it compiles, "
                f"{extra['jit']['first_call_cached_s']:.1f} s with the on-disk cache."
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--only", default="", help="run only cases whose name contains this")
    parser.add_argument("--no-backward", action="store_true", help="forward passes only")
    parser.add_argument("--json", help="write the results to this JSON file")
    parser.add_argument("--markdown", help="write a markdown table to this file")
    args = parser.parse_args()
    import torch

    import convscope as cs

    torch.set_num_threads(args.threads)
    cs.set_num_threads(args.threads)
    rows = []
    for c in CASES:
        if args.only.lower() not in c.name.lower():
            continue
        row = run_case(c, args.repeats, not args.no_backward)
        rows.append(row)
        f, b = row["forward"], row.get("forward_backward")
        line = (
            f"{c.name:<30} fwd {f['convscope_s'] * 1e3:8.2f} ms vs {f['torch_s'] * 1e3:8.2f}"
            f" ratio {f['ratio']:5.2f} ({f['convscope_gflops']:5.1f} GFLOP/s, "
            f"peak {f['convscope_peak_mib']:5.0f} MiB, err {f['max_rel_err']:.0e})"
        )
        if b:
            line += (
                f" | fwd+bwd {b['convscope_s'] * 1e3:8.2f} vs {b['torch_s'] * 1e3:8.2f} "
                f"ratio {b['ratio']:5.2f} (err {b['max_rel_err']:.0e})"
            )
        print(line, flush=True)
    report = {
        "command": "python " + " ".join([sys.argv[0], *sys.argv[1:]]),
        "threads": args.threads,
        "repeats": args.repeats,
        "machine": machine.describe(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "cases": rows,
        "groups": summarise(rows),
    }
    if not args.only:
        report["footprint"] = {
            "import_s": import_time(),
            "jit": jit_times(),
            "convscope_mib": installed_mib("convscope"),
            "torch_mib": installed_mib("torch"),
        }
    for group, entry in report["groups"].items():
        fb = entry.get("forward_backward")
        print(
            f"{group:<16} forward geomean {entry['forward']:.2f} (worst "
            f"{entry['max_forward']:.2f})" + ("" if fb is None else f", fwd+bwd {fb:.2f}")
        )
    if "footprint" in report:
        fp = report["footprint"]
        print(
            f"import convscope {fp['import_s'] * 1e3:.0f} ms; installed convscope "
            f"{fp['convscope_mib']:.1f} MiB vs torch {fp['torch_mib']:.0f} MiB"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    if args.markdown:
        Path(args.markdown).write_text(markdown(report))


if __name__ == "__main__":
    main()
