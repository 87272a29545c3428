"""Loading weights into a model holds one copy of them, not three.

``load_state_dict(state, assign=True)`` makes the state's arrays the parameters (PyTorch's
``assign``), ``nn.utils.skip_init`` / ``nn.init.skipped`` build a module without drawing its
random initial weights, and ``apps.classify.load_model`` (every command's ``--model`` with
``--weights``) uses both: its peak resident memory stays near the weights' size (it was about
three times that: the file's arrays, the random weights and their float64 draws).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import convscope as cs
from convscope.nn.utils import skip_init

MiB = 2**20


def test_assign_takes_the_arrays_and_keeps_the_parameters():
    layer = cs.nn.Conv2d(2, 3, 3)
    weight, bias = layer.weight, layer.bias
    new_w = np.arange(54, dtype=np.float32).reshape(3, 2, 3, 3)
    frozen = np.ones(3, np.float32)
    frozen.flags.writeable = False  # e.g. a read-only view from a checkpoint: copied
    layer.load_state_dict({"weight": new_w, "bias": frozen}, assign=True)
    assert layer.weight is weight and layer.bias is bias
    assert layer.weight.data is new_w
    assert layer.bias.data is not frozen and layer.bias.data.flags.writeable
    np.testing.assert_array_equal(layer.bias.data, frozen)


def test_assign_checks_everything_first():
    layer = cs.nn.Linear(2, 2)
    before = layer.weight.data.copy()
    with pytest.raises(RuntimeError, match="size mismatch for bias"):
        layer.load_state_dict({"weight": np.zeros((2, 2)), "bias": np.zeros(3)}, assign=True)
    np.testing.assert_array_equal(layer.weight.data, before)


def test_skip_init_draws_nothing():
    cs.manual_seed(0)
    want = cs.nn.Conv2d(3, 4, 3).weight.data.copy()
    cs.manual_seed(0)
    skipped = skip_init(cs.nn.Conv2d, 3, 4, 3)
    got = cs.nn.Conv2d(3, 4, 3).weight.data  # the generator was not advanced by skip_init
    np.testing.assert_array_equal(got, want)
    assert skipped.weight.shape == (4, 3, 3, 3)
    with pytest.raises(TypeError, match="Module subclass"):
        skip_init(len)


CHILD = textwrap.dedent(
    """
    import ctypes, gc, json, sys
    import convscope as cs
    from convscope.apps import classify

    def status(field):
        for line in open("/proc/self/status"):
            if line.startswith(field):
                return int(line.split()[1]) * 1024

    path, name = sys.argv[1], sys.argv[2]
    cs.models.get_model(name)  # imports and one-off allocations, not the load's
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")
    start = status("VmRSS")
    net = classify.load_model(name, path)
    print(json.dumps({"peak": status("VmHWM") - start, "held": status("VmRSS") - start}))
    """
)


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="needs Linux's /proc")
def test_load_model_peak_is_one_copy_of_the_weights(tmp_path):
    cs.manual_seed(0)
    state = cs.models.get_model("resnet18").state_dict()
    path = tmp_path / "resnet18.cs"
    cs.save(state, path)
    weights = sum(np.asarray(v).nbytes for v in state.values())
    del state
    run = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), "resnet18"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    used = json.loads(run.stdout.strip().splitlines()[-1])
    # the weights once, plus a little for the file's metadata and the model's objects
    assert used["peak"] <= weights + 16 * MiB, (used, weights)
    assert used["held"] <= weights + 16 * MiB
