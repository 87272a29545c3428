"""The allocator policy (ops.allocator): freed big arrays stay for reuse until released."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from convscope.ops import allocator

CHILD = """
import json
import numpy as np
import convscope as cs
from convscope.ops import allocator

def rss():
    with open("/proc/self/status") as fh:
        return next(int(l.split()[1]) for l in fh if l.startswith("VmRSS")) * 1024

cs.nn.functional.conv2d(cs.zeros(1, 1, 4, 4), cs.zeros(1, 1, 3, 3))  # applies the policy
before = rss()
block = np.ones((64 << 20) // 8)  # 64 MiB, written
held = rss()
del block
freed = rss()
again = np.ones((64 << 20) // 8)  # the same size once more
del again
allocator.release()
print(json.dumps({"applied": allocator.apply(), "before": before, "held": held,
                  "freed": freed, "released": rss()}))
"""


def _child(**env: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", CHILD],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout)


@pytest.mark.skipif(allocator._libc() is None, reason="the policy is glibc's")
def test_freed_arrays_stay_with_the_process_until_released():
    mib = 1 << 20
    kept = _child()
    assert kept["applied"] is True
    assert kept["held"] - kept["before"] > 60 * mib  # the block was resident
    assert kept["freed"] - kept["before"] > 60 * mib  # ... and stays after del
    assert kept["released"] - kept["before"] < 8 * mib  # release() hands it back
    system = _child(CONVSCOPE_MALLOC="system")
    assert system["applied"] is False
    assert system["freed"] - system["before"] < 8 * mib  # glibc's default: unmapped on free
