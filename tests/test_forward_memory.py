"""Inference memory: what a forward under ``no_grad`` adds to the process at its peak stays
within a small multiple of the network's largest feature map plus the workspace budget.

Each network runs in a fresh child process (peak resident memory, ``VmHWM``, is per process):
the model is built and put in eval mode, one forward of the same shape runs first (numba loads
its compiled kernels, the BLAS sizes its buffers, plans are made: memory a library takes once,
not per forward), the freed memory goes back to the system (glibc's ``malloc_trim``), the
high-water mark is reset, and the measured forward runs.  The bounds follow from the shapes:
a residual block needs its input, its intermediate and its output at once (three feature
maps), plus the convolution's column workspace (at most the budget) — a BatchNorm, ReLU or
residual add done out of place, a stage keeping its input to its end, or ConvNeXt's 4x wide
hidden layer held whole would each break them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(
    not os.path.exists("/proc/self/clear_refs"), reason="needs Linux's /proc to reset VmHWM"
)

MiB = 2**20

CHILD = textwrap.dedent(
    """
    import contextlib, ctypes, ctypes.util, gc, json, sys
    import numpy as np
    import convscope as cs
    from convscope.nn import fusion

    name, batch, size, budget = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    cs.manual_seed(0)
    model = cs.models.get_model(name).eval()
    x = cs.from_numpy(np.random.default_rng(0).standard_normal((batch, 3, size, size),
                                                               dtype=np.float32))

    def status(field):
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field):
                    return int(line.split()[1]) * 1024

    with cs.no_grad(), cs.workspace_budget(budget):
        model(x)
        gc.collect()
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        base = status("VmRSS")
        y = model(x)
        peak = status("VmHWM") - base
    print(json.dumps({"added": peak, "mlp_block": fusion.MLP_HIDDEN_BYTES,
                      "out": list(y.shape)}))
    """
)


def peak_added(name: str, batch: int, size: int, budget: int) -> dict:
    env = dict(os.environ, CONVSCOPE_NUM_THREADS="2", OMP_NUM_THREADS="2")
    done = subprocess.run(
        [sys.executable, "-c", CHILD, name, str(batch), str(size), str(budget)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_resnet18_forward_memory_is_two_feature_maps_and_the_workspace() -> None:
    batch, size, budget = 2, 224, 8 * MiB
    result = peak_added("resnet18", batch, size, budget)
    # the largest feature map: the stem's 64 channels at half the input's size; BatchNorm and
    # ReLU work in place on it, the max-pool's output is a quarter of it, every later block's
    # maps are smaller (three of them at a time)
    stem = batch * 64 * (size // 2) ** 2 * 4
    bound = 2 * stem + budget
    assert result["out"] == [batch, 1000]
    assert result["added"] <= bound, (result["added"] / MiB, bound / MiB)


def test_convnext_forward_memory_does_not_hold_the_wide_hidden_layer() -> None:
    batch, size, budget = 4, 224, 8 * MiB
    result = peak_added("convnext_tiny", batch, size, budget)
    # stage 1: 96 channels at a quarter of the input's size; its MLP is 4x as wide, and only
    # one block of rows of that hidden layer may exist at a time
    stage = batch * 96 * (size // 4) ** 2 * 4
    hidden = 4 * stage
    bound = 3 * stage + budget + result["mlp_block"]
    # the whole hidden layer next to the block's input, normalised input and output would not
    # fit in the bound
    assert 3 * stage + hidden > bound
    assert result["out"] == [batch, 1000]
    assert result["added"] <= bound, (result["added"] / MiB, bound / MiB)


# ---------------------------------------------------------------- the grouped paths' rules
def test_grouped_stem_and_blocked_mlp_give_the_layers_values() -> None:
    import numpy as np

    import convscope as cs
    import convscope.nn as nn
    from convscope.nn import fusion

    cs.manual_seed(0)
    conv, bn = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8).eval()
    bn.running_mean.data[...] = np.linspace(-0.2, 0.2, 8)
    bn.running_var.data[...] = np.linspace(0.5, 1.5, 8)
    relu, pool = nn.ReLU(), nn.MaxPool2d(3, 2, 1)
    x = cs.rand(5, 3, 20, 20)
    with cs.no_grad():
        whole = pool(fusion.conv_bn_act(x, conv, bn, relu))
        grouped = fusion.conv_bn_act_pool(x, conv, bn, relu, pool)
    assert np.array_equal(grouped.numpy(), whole.numpy())

    first, act, second = nn.Linear(32, 128), nn.GELU(), nn.Linear(128, 16)
    rows = cs.rand(3, 1500, 32)
    with cs.no_grad():
        blocked = fusion.mlp(rows, first, act, second, hidden_bytes=128 * 4 * 1024)
        layers = second(fusion.linear_act(rows, first, "gelu", act))
    assert blocked is not None
    assert np.array_equal(blocked.numpy(), layers.numpy())


def test_grouped_paths_step_aside_for_hooks_training_and_graphs() -> None:
    import numpy as np

    import convscope as cs
    import convscope.nn as nn
    from convscope.nn import fusion

    conv, bn, relu, pool = nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2)
    x = cs.rand(4, 3, 10, 10)
    seen: list[tuple[int, ...]] = []
    handle = pool.register_forward_hook(lambda m, args, out: seen.append(args[0].shape))
    bn.eval()
    with cs.no_grad():
        fusion.conv_bn_act_pool(x, conv, bn, relu, pool)
    handle.remove()
    assert seen == [(4, 4, 8, 8)]  # a hooked pool sees the whole batch once
    bn.train()  # batch statistics: the whole batch must be normalised together
    with cs.no_grad():
        grouped = fusion.conv_bn_act_pool(x, conv, bn, relu, pool)
    with cs.no_grad():
        layers = pool(relu(bn(conv(x))))
    assert np.array_equal(grouped.numpy(), layers.numpy())

    first, act, second = nn.Linear(32, 128), nn.ReLU(), nn.Linear(128, 16)
    rows = cs.rand(2, 2048, 32)
    assert fusion.mlp(rows, first, act, second, hidden_bytes=1 << 16) is None  # a graph
    with cs.no_grad():
        assert fusion.mlp(rows, first, nn.Dropout(), second, hidden_bytes=1 << 16) is None
