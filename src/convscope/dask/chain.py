"""Consecutive window steps in one dask task per output block: the block's input window (its
cells plus the halo of the whole chain) goes through every step in turn, so intermediate
results never leave the task and memory stays at a few blocks per worker.

Output chunk edges follow the input's (each step maps an input edge to an output edge, on its
stride grid); the input ranges are then derived backwards from the final blocks, so every
final output cell is computed exactly once.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import halo
from .graph import Source, windowed
from .steps import ArrayOp, Range, Step


def _blocks(chunks: tuple[int, ...]) -> list[Range]:
    edges = halo.boundaries(chunks)
    return list(itertools.pairwise(edges))


@dataclass(frozen=True)
class Chain:
    """The steps of one task and, per axis and output block, the range each step reads and
    the one it writes (``ranges[axis][block][k]`` is step ``k``'s input range)."""

    steps: tuple[Step, ...]
    ranges: tuple[tuple[tuple[Range, ...], ...], ...]

    def __call__(self, window: np.ndarray, block: tuple) -> np.ndarray:
        spans = [self.ranges[axis][i] for axis, i in enumerate(block)]
        x = window
        for k, step in enumerate(self.steps):
            inputs = [span[k] for span in spans]
            outputs = [span[k + 1] for span in spans]
            x = step.run(x, inputs, outputs)
        return x


def run_chain(x: Any, steps: list[Step]) -> Any:
    """The dask array ``steps`` make of ``x`` (``(N, C, *spatial)``, channels in one chunk)."""
    n = x.ndim - 2
    chunks = [tuple(c) for c in x.chunks[2:]]
    for step in steps:
        chunks = [
            halo.output_chunks(
                chunks[axis], step.out_shape[2 + axis], lambda e, s=step, a=axis: s.to_output(a, e)
            )
            for axis in range(n)
        ]
    ranges, windows = [], []
    for axis in range(n):
        per_block = []
        for j0, j1 in _blocks(chunks[axis]):
            span = [(j0, j1)]
            for step in reversed(steps):
                lo, hi = span[0]
                span.insert(0, step.needs(axis, lo, hi) if hi > lo else (0, 0))
            per_block.append(tuple(span))
        ranges.append(tuple(per_block))
        windows.append([span[0] for span in per_block])
    last = steps[-1]
    label = "-".join(type(s).__name__.lower() for s in steps)[:60]
    run = Chain(tuple(steps), tuple(ranges))
    return windowed(x, chunks, windows, run, last.out_shape[1], last.dtype, label)


def run_steps(x: Any, factories: list[Any]) -> Any:
    """Bind each layer to its input's shape (its checks run here), then run consecutive window
    steps as one task per output block, whole-array operations between them."""
    shape, dtype = tuple(x.shape), x.dtype
    groups: list[list[Any]] = [[]]
    for factory in factories:
        for step in factory(shape, dtype):
            if isinstance(step, ArrayOp):
                groups.append([step])
                groups.append([])
            else:
                groups[-1].append(step)
            shape, dtype = step.out_shape, step.dtype
    for group in groups:
        if len(group) == 1 and isinstance(group[0], ArrayOp):
            x = group[0](x.to_dask() if isinstance(x, Source) else x)
            x = x.rechunk({1: -1}) if x.numblocks[1] != 1 else x
        elif group:
            x = run_chain(x, group)
    return x.to_dask() if isinstance(x, Source) else x
