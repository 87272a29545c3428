"""One dask task per output block: gather the block's input window from the chunks it
overlaps (the block's own cells and its halo), then run a layer on it.

Arrays are ``(N, C, *spatial)`` with the channel axis in one chunk; batch chunks map one to
one onto output batch chunks.
"""

from __future__ import annotations

import itertools
import operator
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .halo import boundaries

Window = tuple[int, int]


def _pieces(name: str, batch: int, windows: Sequence[Window], edges: Sequence[list[int]]) -> Any:
    """Nested lists (one level per spatial axis) of tasks slicing the chunks a window overlaps;
    an empty window takes an empty slice of the first chunk."""
    from dask._task_spec import List, Task, TaskRef

    def level(axis: int, prefix: tuple, slices: tuple) -> Any:
        a, b = windows[axis]
        cuts = edges[axis]
        items = []
        for index in range(len(cuts) - 1):
            lo, hi = max(a, cuts[index]), min(b, cuts[index + 1])
            if not (lo < hi or (a == b and index == 0)):
                continue
            cut = slice(lo - cuts[index], max(lo, hi) - cuts[index])
            if axis == len(windows) - 1:
                key = (name, batch, 0, *prefix, index)
                items.append(Task(None, operator.getitem, TaskRef(key), (..., *slices, cut)))
            else:
                items.append(level(axis + 1, (*prefix, index), (*slices, cut)))
        return List(*items)

    return level(0, (), ())


def _assemble_and_run(run: Callable[[np.ndarray, tuple], np.ndarray], pieces: list, block: tuple):
    window = np.block(_as_lists(pieces))
    return run(window, block)


def _as_lists(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return [_as_lists(v) for v in value]
    return value


def windowed(
    x: Any,
    out_chunks: Sequence[tuple[int, ...]],
    windows: Sequence[Sequence[Window]],
    run: Callable[[np.ndarray, tuple], np.ndarray],
    out_channels: int,
    dtype: np.dtype,
    label: str,
) -> Any:
    """A dask array of ``out_chunks`` spatial blocks, block ``b`` computed by
    ``run(x[..., windows[0][b0], windows[1][b1], ...], b)``.

    ``windows[axis][i]`` is the input window ``(start, stop)`` of output block ``i`` along that
    spatial axis (``start == stop``: an empty window).
    """
    import dask.array as da
    from dask._task_spec import DataNode, Task, TaskRef
    from dask.highlevelgraph import HighLevelGraph

    if x.numblocks[1] != 1:
        raise ValueError("the channel axis must be one chunk")
    name = f"convscope-{label}-{uuid.uuid4().hex}"
    run_key = f"{name}-layer"
    layer: dict[Any, Any] = {run_key: DataNode(run_key, run)}
    edges = [boundaries(c) for c in x.chunks[2:]]
    for batch in range(x.numblocks[0]):
        for block in itertools.product(*(range(len(c)) for c in out_chunks)):
            spans = [windows[axis][i] for axis, i in enumerate(block)]
            pieces = _pieces(x.name, batch, spans, edges)
            key = (name, batch, 0, *block)
            layer[key] = Task(key, _assemble_and_run, TaskRef(run_key), pieces, block)
    graph = HighLevelGraph.from_collections(name, layer, dependencies=[x])
    chunks = (x.chunks[0], (out_channels,), *out_chunks)
    return da.Array(graph, name, chunks, dtype=dtype)
