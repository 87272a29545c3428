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
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Source:
    """An ``(N, C, *spatial)`` array that is read window by window (from a file, say) rather
    than held in chunks: each output block's task reads its own window, halo included, so no
    neighbouring input block stays in memory for it.  ``chunks`` (dask's form) only sets
    where output blocks start."""

    read: Callable[[list[Window]], np.ndarray]
    shape: tuple[int, ...]
    dtype: np.dtype
    chunks: tuple[tuple[int, ...], ...]

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def numblocks(self) -> tuple[int, ...]:
        return tuple(len(c) for c in self.chunks)

    def to_dask(self) -> Any:
        """The whole array as a dask array of ``chunks`` (for whole-array operations)."""
        import dask.array as da
        from dask import delayed

        edges = [boundaries(c) for c in self.chunks[2:]]
        spans = [list(itertools.pairwise(e)) for e in edges]

        def nest(axis: int, prefix: list[Window]) -> Any:
            if axis == len(spans):
                shape = (*self.shape[:2], *(b - a for a, b in prefix))
                return da.from_delayed(delayed(self.read)(list(prefix)), shape, self.dtype)
            return [nest(axis + 1, [*prefix, span]) for span in spans[axis]]

        return da.block(nest(0, []))


def _read_and_run(run: Callable, source: Source, spans: list, block: tuple) -> np.ndarray:
    return run(source.read(list(spans)), block)


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

    if x.numblocks[1] != 1 or (isinstance(x, Source) and x.numblocks[0] != 1):
        raise ValueError("the channel axis (and a Source's batch axis) must be one chunk")
    name = f"convscope-{label}-{uuid.uuid4().hex}"
    run_key, source_key = f"{name}-layer", f"{name}-source"
    layer: dict[Any, Any] = {run_key: DataNode(run_key, run)}
    if isinstance(x, Source):
        layer[source_key] = DataNode(source_key, x)
    edges = [boundaries(c) for c in x.chunks[2:]]
    for batch in range(x.numblocks[0]):
        for block in itertools.product(*(range(len(c)) for c in out_chunks)):
            spans = [windows[axis][i] for axis, i in enumerate(block)]
            key = (name, batch, 0, *block)
            if isinstance(x, Source):
                layer[key] = Task(
                    key, _read_and_run, TaskRef(run_key), TaskRef(source_key), spans, block
                )
                continue
            pieces = _pieces(x.name, batch, spans, edges)
            layer[key] = Task(key, _assemble_and_run, TaskRef(run_key), pieces, block)
    dependencies = [] if isinstance(x, Source) else [x]
    graph = HighLevelGraph.from_collections(name, layer, dependencies=dependencies)
    chunks = (x.chunks[0], (out_channels,), *out_chunks)
    return da.Array(graph, name, chunks, dtype=dtype)
