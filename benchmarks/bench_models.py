"""Whole networks: convscope against PyTorch and onnxruntime, in one process, same threads.

For every network (torchvision's architectures from ``convscope.models`` with the weights of
the torchvision model they are compared with, a U-Net with ``ConvTranspose2d`` and a
wav2vec2-style ``Conv1d`` feature encoder): median eval-mode inference time under no_grad at
batch 1 and 8 for convscope, torch and (when installed: ``pip install -e ".[bench]"``)
onnxruntime running torch's ONNX export; a training step (forward, cross-entropy, backward,
SGD with momentum) for resnet18 and mobilenet_v2 at batch 8; the ten slowest layers of the
network slowest against torch (forward hooks, so that network runs unfused there); peak
resident memory added by a resnet18 batch-8 forward, each library in its own process; and
the cost of single layers on a tiny input (everything but the arithmetic). Calls of the
libraries are interleaved so that load from elsewhere on the machine affects all alike.

    python benchmarks/bench_models.py [--repeats 5] [--threads 2] [--only resnet18]
                                      [--json docs/bench_models.json]
                                      [--markdown docs/bench_models.md]

This is a script, not a test: timings depend on the machine.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import subprocess
import sys
import time
import types
from collections.abc import Callable
from typing import Any

import machine
import numpy as np
from timing import interleaved

INFERENCE = [  # (name, batches, input shape after the batch)
    ("resnet18", (1, 8), (3, 224, 224)),
    ("resnet50", (1, 8), (3, 224, 224)),
    ("mobilenet_v2", (1, 8), (3, 224, 224)),
    ("efficientnet_b0", (1, 8), (3, 224, 224)),
    ("convnext_tiny", (1, 8), (3, 224, 224)),
    ("r3d_18", (1,), (3, 16, 112, 112)),
    ("unet", (1, 8), (3, 256, 256)),
    ("wav2vec2_encoder", (1, 8), (1, 16000)),
]
TRAINING = [("resnet18", 8), ("mobilenet_v2", 8)]
TARGETS = {
    "inference_vs_torch": "geomean <= 1.0, none > 1.5",
    "inference_vs_onnxruntime": "<= 1.5",
    "training_vs_torch": "<= 1.3",
    "overhead_us_per_layer": "< 30",
}


def _torchvision():
    sys.modules.setdefault(
        "torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations")
    )
    import torchvision

    return torchvision


# ------------------------------------------------------------------ networks in both libraries
def unet(lib: Any, nn: Any) -> Any:
    """A small U-Net (two levels, Conv-BN-ReLU pairs, ConvTranspose2d up, skip concatenation)."""

    def double(cin: int, cout: int) -> Any:
        return nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(),
        )

    class UNet(nn.Module):
        # each sample from itself alone: convscope may run shares of a batch on separate
        # threads (convscope.nn.batch_parallel; torch ignores the attribute)
        independent_samples = True

        def __init__(self) -> None:
            super().__init__()
            self.down1, self.down2, self.bottom = double(3, 32), double(32, 64), double(64, 128)
            self.pool = nn.MaxPool2d(2)
            self.up2 = nn.ConvTranspose2d(128, 64, 2, stride=2)
            self.dec2 = double(128, 64)
            self.up1 = nn.ConvTranspose2d(64, 32, 2, stride=2)
            self.dec1 = double(64, 32)
            self.head = nn.Conv2d(32, 2, 1)

        def forward(self, x: Any) -> Any:
            d1 = self.down1(x)
            d2 = self.down2(self.pool(d1))
            b = self.bottom(self.pool(d2))
            u2 = self.dec2(lib.cat([self.up2(b), d2], 1))
            u1 = self.dec1(lib.cat([self.up1(u2), d1], 1))
            return self.head(u1)

    return UNet()


def wav2vec2_encoder(lib: Any, nn: Any) -> Any:
    """wav2vec2-base's feature encoder: seven Conv1d (512 channels), GroupNorm on the first,
    GELU after each; 1 s of 16 kHz audio gives 49 frames."""
    layers = [nn.Conv1d(1, 512, 10, stride=5, bias=False), nn.GroupNorm(512, 512), nn.GELU()]
    for kernel in (3, 3, 3, 3, 2, 2):
        layers += [nn.Conv1d(512, 512, kernel, stride=2, bias=False), nn.GELU()]
    return nn.Sequential(*layers)


def build_pair(name: str) -> tuple[Any, Any]:
    """(convscope model, torch model) with equal weights and non-trivial BatchNorm statistics,
    both in eval mode."""
    import torch

    import convscope as cs

    torch.manual_seed(0)
    if name in ("unet", "wav2vec2_encoder"):
        factory = globals()[name]
        theirs, ours = factory(torch, torch.nn), factory(cs, cs.nn)
    else:
        tv = _torchvision()
        if name == "r3d_18":
            theirs, ours = tv.models.video.r3d_18(), cs.models.video.r3d_18()
        else:
            theirs, ours = tv.models.get_model(name), cs.models.get_model(name)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for module in theirs.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.running_mean.copy_(torch.randn(module.num_features, generator=gen) * 0.1)
                module.running_var.copy_(torch.rand(module.num_features, generator=gen) + 0.5)
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    return ours.eval(), theirs.eval()


# ------------------------------------------------------------------ timing
def onnx_session(theirs: Any, x: Any, threads: int) -> Callable[[np.ndarray], Any] | None:
    """torch's ONNX export of ``theirs`` run by onnxruntime, or ``None`` when not installed."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    import torch

    buffer = io.BytesIO()
    torch.onnx.export(theirs, (x,), buffer, dynamo=False, input_names=["x"])
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    session = ort.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])
    return lambda array: session.run(None, {"x": array})


def inference_row(name: str, batch: int, shape: tuple, threads: int, repeats: int) -> dict:
    import torch

    import convscope as cs

    ours, theirs = build_pair(name)
    x = np.random.default_rng(0).standard_normal((batch, *shape)).astype(np.float32)
    tx, cx = torch.from_numpy(x), cs.tensor(x)

    def run_ours() -> Any:
        with cs.no_grad():
            return ours(cx)

    def run_theirs() -> Any:
        with torch.no_grad():
            return theirs(tx)

    fns = [run_ours, run_theirs]
    session = onnx_session(theirs, tx, threads)
    if session is not None:
        fns.append(lambda: session(x))
    # eight warm-up calls: over its first eight calls of a shape convscope times batch-parallel
    # runs against unsplit ones and keeps the faster way (convscope.nn.batch_parallel)
    seconds = interleaved(fns, repeats, warmups=8)
    a, b = run_ours().numpy(), run_theirs().numpy()
    row = {
        "network": name,
        "batch": batch,
        "input": [batch, *shape],
        "convscope_ms": seconds[0] * 1e3,
        "torch_ms": seconds[1] * 1e3,
        "vs_torch": seconds[0] / seconds[1],
        "max_rel_err": float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30)),
    }
    if session is not None:
        row["onnxruntime_ms"] = seconds[2] * 1e3
        row["vs_onnxruntime"] = seconds[0] / seconds[2]
    return row


def training_row(name: str, batch: int, repeats: int) -> dict:
    import torch

    import convscope as cs

    ours, theirs = build_pair(name)
    ours.train(), theirs.train()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, 3, 224, 224)).astype(np.float32)
    y = rng.integers(0, 1000, batch)
    opt_ours = cs.optim.SGD(ours.parameters(), lr=0.01, momentum=0.9)
    opt_theirs = torch.optim.SGD(theirs.parameters(), lr=0.01, momentum=0.9)
    loss_ours, loss_theirs = cs.nn.CrossEntropyLoss(), torch.nn.CrossEntropyLoss()
    cx, cy, tx, ty = cs.tensor(x), cs.tensor(y), torch.from_numpy(x), torch.from_numpy(y)

    def step_ours() -> None:
        opt_ours.zero_grad()
        loss_ours(ours(cx), cy).backward()
        opt_ours.step()

    def step_theirs() -> None:
        opt_theirs.zero_grad()
        loss_theirs(theirs(tx), ty).backward()
        opt_theirs.step()

    # two warm-up steps: the first plans and allocates, the second still ran 10-20% slow
    seconds = interleaved([step_ours, step_theirs], max(3, repeats), warmups=2)
    return {
        "network": name,
        "batch": batch,
        "convscope_ms": seconds[0] * 1e3,
        "torch_ms": seconds[1] * 1e3,
        "vs_torch": seconds[0] / seconds[1],
    }


def _leaf_times(model: Any, run: Callable[[], Any], record: Callable | None = None) -> dict:
    """Seconds spent in each leaf module during ``run()`` (forward hooks), and what ``record``
    says about it (convscope: the algorithms its convolutions used)."""
    spent: dict[str, float] = {}
    notes: dict[str, str] = {}
    handles = []
    for name, module in model.named_modules():
        if any(True for _ in module.children()):
            continue

        def before(m: Any, args: Any) -> None:
            if record is not None:
                m._bench_recorder = record()
                m._bench_used = m._bench_recorder.__enter__()
            m._bench_start = time.perf_counter()

        def after(m: Any, args: Any, out: Any, _name: str = name) -> None:
            spent[_name] = spent.get(_name, 0.0) + time.perf_counter() - m._bench_start
            if record is not None:
                m._bench_recorder.__exit__(None, None, None)
                if m._bench_used:
                    notes[_name] = ",".join(sorted({a for a, _ in m._bench_used}))

        handles += [module.register_forward_pre_hook(before), module.register_forward_hook(after)]
    try:
        run()
    finally:
        for handle in handles:
            handle.remove()
    return {"seconds": spent, "notes": notes}


def breakdown(name: str, batch: int, shape: tuple) -> list[dict]:
    """The ten layers of ``name`` taking longest in convscope, with torch's time for each."""
    import torch

    import convscope as cs

    ours, theirs = build_pair(name)
    x = np.random.default_rng(0).standard_normal((batch, *shape)).astype(np.float32)
    with cs.no_grad():
        ours(cs.tensor(x))  # warm-up (compiled kernels, caches)
        mine = _leaf_times(ours, lambda: ours(cs.tensor(x)), cs.record_conv_algorithms)
    with torch.no_grad():
        theirs(torch.from_numpy(x))
        other = _leaf_times(theirs, lambda: theirs(torch.from_numpy(x)))
    rows = []
    for layer, seconds in sorted(mine["seconds"].items(), key=lambda kv: -kv[1])[:10]:
        module = ours.get_submodule(layer)
        rows.append(
            {
                "layer": layer,
                "module": repr(module).split("\n")[0][:70],
                "convscope_ms": seconds * 1e3,
                "torch_ms": other["seconds"].get(layer, float("nan")) * 1e3,
                "algorithm": mine["notes"].get(layer, ""),
            }
        )
    return rows


def _tiny_layers(lib: Any) -> dict[str, Any]:
    nn = lib.nn
    return {
        "Conv2d(8, 8, 3)": nn.Conv2d(8, 8, 3, padding=1),
        "Conv2d 1x1": nn.Conv2d(8, 16, 1),
        "depthwise 3x3": nn.Conv2d(8, 8, 3, padding=1, groups=8),
        "BatchNorm2d (eval)": nn.BatchNorm2d(8),
        "ReLU": nn.ReLU(),
        "conv+BN+ReLU (Sequential)": nn.Sequential(
            nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU()
        ),
        "MaxPool2d(3, 2, 1)": nn.MaxPool2d(3, 2, 1),
        "Linear(128, 10)": nn.Linear(128, 10),
    }


def overhead(repeats: int) -> dict:
    """Microseconds per call of single layers on a (1, 8, 8, 8) input (Linear: (1, 128)),
    eval mode under no_grad: the arithmetic is about a microsecond, the rest is each
    library's per-layer cost (Python, dispatch, allocation)."""
    import torch

    import convscope as cs

    ours, theirs = _tiny_layers(cs), _tiny_layers(torch)
    x = np.random.default_rng(0).standard_normal((1, 8, 8, 8)).astype(np.float32)
    flat = x.reshape(1, -1)[:, :128]
    rows = []
    with cs.no_grad(), torch.no_grad():
        for name, layer in ours.items():
            other = theirs[name]
            layer.eval()
            other.eval()
            data = flat if name.startswith("Linear") else x
            cx, tx = cs.tensor(data), torch.from_numpy(data)

            def run_ours(layer: Any = layer, cx: Any = cx) -> Any:
                for _ in range(100):
                    layer(cx)

            def run_theirs(other: Any = other, tx: Any = tx) -> Any:
                for _ in range(100):
                    other(tx)

            mine, other_s = interleaved([run_ours, run_theirs], repeats * 4)
            rows.append({"layer": name, "convscope_us": mine * 1e4, "torch_us": other_s * 1e4})
    return {
        "rows": rows,
        "convscope_us_per_layer": geomean([r["convscope_us"] for r in rows]),
        "torch_us_per_layer": geomean([r["torch_us"] for r in rows]),
    }


def peak_rss_child(library: str, batch: int, network: str = "resnet18") -> None:
    """(In a child process) the resident memory two forwards of ``network`` (224x224 images)
    add at their peak (convscope: ten, both of its ways to run), in MiB, over the
    process with the model built, the libraries loaded and one forward on a tiny input done.
    By hand, for another network:
    ``python benchmarks/bench_models.py --peak-child convscope 8 convnext_tiny``."""
    import torch

    import convscope as cs
    from convscope.ops import allocator

    ours, theirs = build_pair(network)
    x = np.random.default_rng(0).standard_normal((batch, 3, 224, 224)).astype(np.float32)
    # both libraries wrap the input without copying it (cs.tensor would copy: 4.6 MiB)
    if library == "convscope":
        del theirs
        model, wrap = ours, cs.from_numpy
        guard: Any = cs.no_grad
    else:
        del ours
        model, wrap = theirs, torch.from_numpy
        guard = torch.no_grad

    def run(data: np.ndarray = x) -> Any:
        return model(wrap(data))

    # a forward on a tiny input first loads what a library loads once, not per forward:
    # numba's compiled kernels (their first call initialises LLVM: ~60 MiB resident),
    # oneDNN's and the BLAS's set-up
    with guard():
        run(x[:1, :, :32, :32].copy())
    import gc

    gc.collect()
    # the memory freed so far (the other library's model) back to the system, so that
    # neither library's forward reuses it unseen by the measure
    allocator.release()

    def status(field: str) -> int:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field):
                    return int(line.split()[1]) * 1024
        raise RuntimeError(field)

    with open("/proc/self/clear_refs", "w") as fh:  # reset the high-water mark (VmHWM)
        fh.write("5")
    # counted from before the first forward: a library's allocator may keep what a first
    # forward freed, so that a second one adds nothing resident
    base = status("VmRSS")
    with guard():
        # convscope: its first eight calls of a shape time unsplit and batch-parallel runs,
        # then it keeps the faster way (convscope.nn.batch_parallel); all ten count
        for _ in range(10 if library == "convscope" else 2):
            run()
    print(json.dumps({"library": library, "added_mib": (status("VmHWM") - base) / 2**20}))


def peak_rss(batch: int, threads: int) -> dict:
    result = {}
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), CONVSCOPE_NUM_THREADS=str(threads))
    for library in ("convscope", "torch"):
        done = subprocess.run(
            [sys.executable, __file__, "--peak-child", library, str(batch)],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        result[library] = json.loads(done.stdout.strip().splitlines()[-1])["added_mib"]
    return result


def geomean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else float("nan")


def markdown(report: dict) -> str:
    lines = [
        f"`{report['command']}` — {report['machine']}, {report['threads']} thread(s) per "
        f"library, median of {report['repeats']} interleaved calls; NumPy {report['numpy']}, "
        f"torch {report['torch']}, onnxruntime {report.get('onnxruntime') or 'not installed'}, "
        f"numba {report.get('numba') or 'not installed'}.",
        "",
        "| network | batch | convscope ms | torch ms | onnxruntime ms | x torch | x onnxruntime "
        "| max rel err |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["inference"]:
        ort = r.get("onnxruntime_ms")
        ort_ms = "-" if ort is None else f"{ort:.1f}"
        ort_ratio = "-" if ort is None else f"{r['vs_onnxruntime']:.2f}"
        lines.append(
            f"| {r['network']} | {r['batch']} | {r['convscope_ms']:.1f} | {r['torch_ms']:.1f} | "
            f"{ort_ms} | {r['vs_torch']:.2f} | {ort_ratio} | {r['max_rel_err']:.1e} |"
        )
    for r in report["training"]:
        lines.append(
            f"| {r['network']} SGD step | {r['batch']} | {r['convscope_ms']:.1f} | "
            f"{r['torch_ms']:.1f} | - | {r['vs_torch']:.2f} | - | - |"
        )
    s = report["summary"]
    lines += [
        "",
        f"Inference geomean x torch **{s['inference_vs_torch']:.2f}** (worst "
        f"{s['worst_vs_torch']:.2f}); x onnxruntime **{s['inference_vs_onnxruntime']:.2f}**; "
        f"training x torch **{s['training_vs_torch']:.2f}**. Targets: "
        + "; ".join(f"{k} {v}" for k, v in TARGETS.items())
        + ".",
    ]
    if report.get("peak_rss_mib"):
        p = report["peak_rss_mib"]
        lines.append(
            f"Peak resident memory added by a resnet18 batch-8 forward (separate processes): "
            f"convscope {p['convscope']:.0f} MiB, torch {p['torch']:.0f} MiB."
        )
    if report.get("overhead"):
        o = report["overhead"]
        lines.append(
            "Per-layer cost on a tiny input (1x8x8x8, eval, no_grad; geomean of "
            f"{len(o['rows'])} layers): convscope {o['convscope_us_per_layer']:.0f} us, torch "
            f"{o['torch_us_per_layer']:.0f} us ("
            + ", ".join(
                f"{r['layer']} {r['convscope_us']:.0f}/{r['torch_us']:.0f}" for r in o["rows"]
            )
            + " us)."
        )
    if report.get("breakdown"):
        b = report["breakdown"]
        lines += [
            "",
            f"Slowest layers of {b['network']} (batch {b['batch']}; hooks make it run unfused):",
            "",
            "| layer | module | convscope ms | torch ms | algorithm |",
            "|---|---|---:|---:|---|",
        ]
        lines += [
            f"| {r['layer']} | `{r['module']}` | {r['convscope_ms']:.2f} | {r['torch_ms']:.2f} "
            f"| {r['algorithm']} |"
            for r in b["rows"]
        ]
    return "\n".join(lines) + "\n"


def _version(module: str) -> str | None:
    try:
        return __import__(module).__version__
    except ImportError:
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--only", default="", help="networks whose name contains this")
    parser.add_argument("--no-training", action="store_true")
    parser.add_argument("--no-extras", action="store_true", help="skip breakdown/memory/overhead")
    parser.add_argument("--json")
    parser.add_argument("--markdown")
    parser.add_argument("--peak-child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    import torch

    import convscope as cs

    torch.set_num_threads(args.threads)
    cs.set_num_threads(args.threads)
    if args.peak_child:
        peak_rss_child(args.peak_child[0], int(args.peak_child[1]), *args.peak_child[2:3])
        return
    inference = []
    for name, batches, shape in INFERENCE:
        if args.only and args.only not in name:
            continue
        for batch in batches:
            row = inference_row(name, batch, shape, args.threads, args.repeats)
            inference.append(row)
            ort = row.get("vs_onnxruntime")
            print(
                f"{name:<18} b{batch}: convscope {row['convscope_ms']:8.1f} ms  torch "
                f"{row['torch_ms']:8.1f} ms  x torch {row['vs_torch']:5.2f}"
                + ("" if ort is None else f"  x onnxruntime {ort:5.2f}")
                + f"  err {row['max_rel_err']:.1e}",
                flush=True,
            )
    training = []
    for name, batch in [] if args.no_training else TRAINING:
        if args.only and args.only not in name:
            continue
        row = training_row(name, batch, args.repeats)
        training.append(row)
        print(f"{name:<18} train b{batch}: x torch {row['vs_torch']:5.2f}", flush=True)
    report: dict[str, Any] = {
        "command": "python " + " ".join([sys.argv[0], *sys.argv[1:]]),
        "machine": machine.describe(),
        "threads": args.threads,
        "repeats": args.repeats,
        "numpy": np.__version__,
        "torch": torch.__version__,
        "onnxruntime": _version("onnxruntime"),
        "numba": _version("numba"),
        "inference": inference,
        "training": training,
    }
    ort_ratios = [r["vs_onnxruntime"] for r in inference if "vs_onnxruntime" in r]
    report["summary"] = {
        "inference_vs_torch": geomean([r["vs_torch"] for r in inference]),
        "worst_vs_torch": max((r["vs_torch"] for r in inference), default=float("nan")),
        "inference_vs_onnxruntime": geomean(ort_ratios),
        "training_vs_torch": geomean([r["vs_torch"] for r in training]),
    }
    if not args.no_extras and inference:
        slowest = max(inference, key=lambda r: r["vs_torch"])
        shape = next(s for n, _, s in INFERENCE if n == slowest["network"])
        report["breakdown"] = {
            "network": slowest["network"],
            "batch": slowest["batch"],
            "rows": breakdown(slowest["network"], slowest["batch"], shape),
        }
        report["peak_rss_mib"] = peak_rss(8, args.threads)
        report["overhead"] = overhead(args.repeats)
    text = markdown(report)
    print(text)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=1)
    if args.markdown:
        with open(args.markdown, "w") as fh:
            fh.write(text)


if __name__ == "__main__":
    main()
