"""Shared test setup: PyTorch is the reference every differential test compares against.

When ``CI=true`` a missing torch is a hard failure (the reference must be there); locally the
torch-based tests are skipped instead.
"""

from __future__ import annotations

import os

import pytest

try:
    import torch
except ImportError:  # pragma: no cover - exercised only on machines without torch
    torch = None

if torch is None and os.environ.get("CI", "").lower() == "true":
    raise RuntimeError(
        "CI=true but torch is not installed: install the test extra (pip install -e '.[test]')"
    )

if torch is not None:
    torch.set_num_threads(max(1, os.cpu_count() or 1))


@pytest.fixture
def reference():
    """The ``torch`` module, or skip when it is missing (never in CI, see above)."""
    if torch is None:
        pytest.skip("torch (the reference) is not installed")
    return torch


@pytest.fixture(autouse=True)
def _parallel_kernels(monkeypatch):
    """Compiled kernels run their parallel form whenever convscope has two threads or more
    (by default small calls and 2-thread runs take the serial twin, see ops.jit), so that the
    tests exercise the parallel code; with one thread the serial twin runs."""
    from convscope.ops import jit

    monkeypatch.setattr(jit, "SERIAL_BELOW", 0)
    monkeypatch.setattr(jit, "SERIAL_UP_TO_THREADS", 1)


@pytest.fixture
def batch_split_runs(monkeypatch):
    """Batch-parallel inference whenever allowed, however small the input; the list of the
    input shapes that were split (``convscope.nn.batch_parallel``)."""
    from convscope.nn import batch_parallel

    monkeypatch.setattr(batch_parallel, "MODE", "on")
    monkeypatch.setattr(batch_parallel, "SPLIT_FROM_ELEMENTS", 0)
    runs = []
    real = batch_parallel._run_split
    monkeypatch.setattr(
        batch_parallel, "_run_split", lambda m, x: runs.append(tuple(x.shape)) or real(m, x)
    )
    return runs
