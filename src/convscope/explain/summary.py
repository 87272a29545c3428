"""A model summary as torchinfo prints it: layers by depth, output shapes, params, mult-adds.

The model runs once on zeros (eval mode, no gradients, training flags restored afterwards);
every module's ``forward`` is wrapped for that one call to record what it returns.  Counts
follow torchinfo 1.8.0 so the numbers can be compared with it: a convolution's mult-adds are
its weight and bias elements times ``N x output positions``, other layers' their parameters
times ``N``; a module used twice is listed twice (``(recursive)``), its parameters counted once.

>>> from convscope import nn
>>> model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
...                       nn.Linear(4 * 8 * 8, 10))
>>> s = summary(model, (1, 1, 8, 8))
>>> s.total_params, s.trainable_params, s.total_mult_adds
(2610, 2610, 5130)
>>> print(s.rows[1].label, s.rows[1].output_shape)
├─Conv2d: 1-1 [1, 4, 8, 8]
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .. import _dtypes
from ..autograd import no_grad
from ..nn.module import Module
from ..tensor import Tensor
from . import tables


def module_mult_adds(module: Module, output_shape: Sequence[int]) -> int:
    """Mult-adds of one leaf module as torchinfo counts them, for an output of ``output_shape``.

    >>> from convscope import nn
    >>> module_mult_adds(nn.Conv1d(2, 3, 5), (4, 3, 2))  # (30 + 3) x 4 x 2
    264
    """
    out = [int(s) for s in output_shape]
    if not out:
        return 0
    conv = "Conv" in type(module).__name__
    total = 0
    for name, param in module.named_parameters():
        count = int(np.prod(param.shape))
        if name in ("weight", "bias"):
            total += count * (math.prod(out[:1] + out[2:]) if conv else out[0])
        elif "weight" in name or "bias" in name:
            total += math.prod(out[:2]) * count
    return total


@dataclass
class LayerRow:
    """One row of the summary: a module call (or a container of called modules)."""

    name: str
    class_name: str
    depth: int
    depth_index: int = 0
    output_shape: list[int] | None = None
    kernel_size: Any = None
    num_params: int = 0
    trainable_params: int = 0
    param_bytes: int = 0
    output_bytes: int = 0
    mult_adds: int = 0
    is_leaf: bool = True
    is_recursive: bool = False
    executed: bool = False
    descendants: list[LayerRow] = field(default_factory=list, repr=False)

    @property
    def label(self) -> str:
        """``├─Conv2d: 1-1`` as torchinfo writes it."""
        if self.depth == 0:
            return self.class_name
        start = "├─" if self.depth == 1 else "│    " * (self.depth - 1) + "└─"
        return f"{start}{self.class_name}: {self.depth}-{self.depth_index}"

    def leftover_params(self, trainable: bool = False) -> int:
        """Parameters of this module not shown in any listed descendant (torchinfo's rule)."""
        own = self.trainable_params if trainable else self.num_params
        return own - sum(
            (c.trainable_params if trainable else c.num_params)
            if c.is_leaf
            else c.leftover_params(trainable)
            for c in self.descendants
            if not c.is_recursive
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("descendants")
        data["label"] = self.label
        return data


@dataclass
class Summary:
    """The result of :func:`summary`: ``str()`` is the table, the totals are attributes.

    Totals use torchinfo's ``ModelStatistics`` names where they exist (``total_params``,
    ``trainable_params``, ``total_mult_adds``) and bytes for the memory estimates.
    """

    model: str
    input_size: tuple[int, ...]
    rows: list[LayerRow]
    total_params: int
    trainable_params: int
    total_mult_adds: int
    input_size_bytes: int
    forward_backward_bytes: int
    params_bytes: int
    depth: int = 3
    show_kernel_size: bool = False

    @property
    def non_trainable_params(self) -> int:
        return self.total_params - self.trainable_params

    @property
    def estimated_total_bytes(self) -> int:
        return self.input_size_bytes + self.forward_backward_bytes + self.params_bytes

    def _cells(self, row: LayerRow) -> list[str]:
        at_max = row.depth == self.depth
        if row.num_params == 0:
            params = "--"
        elif row.is_recursive:
            params = "(recursive)"
        elif at_max or row.is_leaf:
            params = f"{row.num_params:,}" if row.trainable_params else f"({row.num_params:,})"
        else:
            left = row.leftover_params()
            params = f"{left:,}" if left > 0 else "--"
        if row.is_leaf:
            macs = row.mult_adds
        else:
            macs = sum(c.mult_adds for c in row.descendants if c.is_leaf) if at_max else 0
        cells = [row.label]
        if self.show_kernel_size:
            cells.append(str(row.kernel_size) if row.kernel_size is not None else "--")
        shape = str(row.output_shape) if row.output_shape else "--"
        return [*cells, shape, params, f"{macs:,}" if macs > 0 else "--"]

    def __str__(self) -> str:
        header = ["Layer (type:depth-idx)"]
        if self.show_kernel_size:
            header.append("Kernel Shape")
        header += ["Output Shape", "Param #", "Mult-Adds"]
        body = [self._cells(r) for r in self.rows if r.depth <= self.depth]
        right = (len(header) - 2, len(header) - 1)
        lines = tables.table(body, header=header, right=right).splitlines()
        width = max(len(line) for line in lines)
        divider = tables.rule(width)
        units, scaled = _readable(self.total_mult_adds)
        return "\n".join(
            [
                divider,
                lines[0],
                divider,
                *lines[1:],
                divider,
                f"Total params: {self.total_params:,}",
                f"Trainable params: {self.trainable_params:,}",
                f"Non-trainable params: {self.non_trainable_params:,}",
                f"Total mult-adds: {self.total_mult_adds:,} ({scaled:.2f} {units})",
                divider,
                f"Input size (MB): {_mb(self.input_size_bytes)}",
                f"Forward/backward pass size (MB): {_mb(self.forward_backward_bytes)}",
                f"Params size (MB): {_mb(self.params_bytes)}",
                f"Estimated Total Size (MB): {_mb(self.estimated_total_bytes)}",
                divider,
            ]
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "input_size": list(self.input_size),
            "rows": [r.to_dict() for r in self.rows],
            "total_params": self.total_params,
            "trainable_params": self.trainable_params,
            "non_trainable_params": self.non_trainable_params,
            "total_mult_adds": self.total_mult_adds,
            "input_size_bytes": self.input_size_bytes,
            "forward_backward_bytes": self.forward_backward_bytes,
            "params_bytes": self.params_bytes,
            "estimated_total_bytes": self.estimated_total_bytes,
        }


def _readable(count: int) -> tuple[str, float]:
    for units, factor in (("T", 1e12), ("G", 1e9)):
        if count >= factor:
            return units, count / factor
    return "M", count / 1e6


def _mb(size: int) -> str:
    return f"{size / 1e6:.2f}" if size >= 10_000 or size == 0 else f"{size / 1e6:.4f}"


def _shape_of(value: Any) -> tuple[list[int], int]:
    """Shape and item size of a module's output (first tensor of a tuple, torchinfo-like)."""
    if isinstance(value, (Tensor, np.ndarray)):
        array = value.data if isinstance(value, Tensor) else value
        return list(array.shape), array.dtype.itemsize
    if isinstance(value, dict) and value:
        return _shape_of(list(value.values())[-1])
    if isinstance(value, (list, tuple)) and value:
        return _shape_of(value[0])
    return [], 0


def _kernel_size(module: Module) -> Any:
    k = getattr(module, "kernel_size", None)
    if k is None:
        return None
    return list(k) if isinstance(k, (tuple, list)) else k


class _Recorder:
    """Builds the rows while the model runs, as torchinfo's hooks do."""

    def __init__(self, model: Module) -> None:
        self.where: dict[int, tuple[str, int, list[Module]]] = {}  # id -> name, depth, ancestors
        stack: list[tuple[str, Module, list[Module]]] = [("", model, [])]
        while stack:
            name, module, ancestors = stack.pop()
            if id(module) in self.where:
                continue
            depth = 0 if not name else name.count(".") + 1
            self.where[id(module)] = (name, depth, ancestors)
            children = list(module.named_children())
            for child_name, child in reversed(children):
                path = f"{name}.{child_name}" if name else child_name
                stack.append((path, child, [*ancestors, module]))
        self.rows: list[LayerRow] = []
        self.seen: set[int] = set()
        self.current: dict[int, Module] = {}
        self.placeholders: dict[int, LayerRow] = {}  # containers that never ran (ModuleList)

    def _new_row(self, module: Module, executed: bool) -> LayerRow:
        name, depth, _ = self.where[id(module)]
        params = list(module.parameters())
        return LayerRow(
            name=name,
            class_name=type(module).__name__,
            depth=depth,
            kernel_size=_kernel_size(module),
            num_params=sum(int(np.prod(p.shape)) for p in params),
            trainable_params=sum(int(np.prod(p.shape)) for p in params if p.requires_grad),
            param_bytes=sum(p.data.nbytes for p in params),
            is_leaf=not any(True for _ in module.children()),
            executed=executed,
        )

    def _add(self, module: Module, row: LayerRow) -> LayerRow:
        # torchinfo marks a module's row recursive once the module was listed before; a
        # container that never ran is one shared row listed at each place it is needed
        row.is_recursive = row.is_recursive or id(module) in self.seen
        self.seen.add(id(module))
        self.rows.append(row)
        self.current[row.depth] = module
        for deeper in [d for d in self.current if d > row.depth]:
            del self.current[deeper]
        return row

    def enter(self, module: Module) -> LayerRow:
        for ancestor in self.where[id(module)][2][1:]:
            depth = self.where[id(ancestor)][1]
            placeholder = self.placeholders.get(id(ancestor))
            last = self.rows[-1] if self.rows else None
            if self.current.get(depth) is not ancestor and (
                placeholder is None or last is not placeholder
            ):
                if placeholder is None:
                    placeholder = self._new_row(ancestor, executed=False)
                    self.placeholders[id(ancestor)] = placeholder
                self._add(ancestor, placeholder)
        return self._add(module, self._new_row(module, executed=True))

    @staticmethod
    def leave(module: Module, row: LayerRow, output: Any) -> None:
        shape, itemsize = _shape_of(output)
        row.output_shape = shape
        row.output_bytes = itemsize * math.prod(shape) if shape else 0
        if row.is_leaf:
            row.mult_adds = module_mult_adds(module, shape)

    def finish(self) -> None:
        counters: dict[int, int] = {}
        for i, row in enumerate(self.rows):  # a shared row keeps its last index, as in torchinfo
            counters[row.depth] = counters.get(row.depth, 0) + 1
            row.depth_index = counters[row.depth]
            row.descendants = []
            for later in self.rows[i + 1 :]:
                if later.depth <= row.depth:
                    break
                row.descendants.append(later)


@contextmanager
def _recording(model: Module) -> Iterator[_Recorder]:
    """Wrap every module's ``forward`` (on the instance) for one run; always unwrap."""
    recorder = _Recorder(model)
    modules = {id(m): m for m in model.modules()}
    saved: dict[int, Any] = {}
    for key, module in modules.items():
        saved[key] = module.__dict__.get("forward")
        original = module.forward

        def wrapped(*args: Any, _module=module, _original=original, **kwargs: Any) -> Any:
            row = recorder.enter(_module)
            output = _original(*args, **kwargs)
            recorder.leave(_module, row, output)
            return output

        object.__setattr__(module, "forward", wrapped)
    training = {key: m.training for key, m in modules.items()}
    try:
        model.eval()
        yield recorder
    finally:
        for key, module in modules.items():
            if saved[key] is None:
                module.__dict__.pop("forward", None)
            else:
                object.__setattr__(module, "forward", saved[key])
            object.__setattr__(module, "training", training[key])


def _input_dtype(model: Module, dtype: Any) -> np.dtype:
    if dtype is not None:
        return np.dtype(dtype)
    for param in model.parameters():
        if param.data.dtype.kind == "f":
            return param.data.dtype
    return np.dtype(_dtypes.get_default_dtype())


def summary(
    model: Module,
    input_size: Sequence[int],
    *,
    depth: int = 3,
    dtype: Any = None,
    show_kernel_size: bool = False,
) -> Summary:
    """Run ``model`` once on zeros of ``input_size`` (batch included) and tabulate every layer.

    ``depth`` limits the rows shown (not the totals); ``dtype`` defaults to the model's
    floating-point parameters' dtype; ``show_kernel_size`` adds torchinfo's "Kernel Shape".

    >>> from convscope import nn
    >>> print(summary(nn.Sequential(nn.Conv1d(2, 3, 5)), (4, 2, 6)))
    ========================================================
    Layer (type:depth-idx)  Output Shape  Param #  Mult-Adds
    ========================================================
    Sequential              [4, 3, 2]          --         --
    ├─Conv1d: 1-1           [4, 3, 2]          33        264
    ========================================================
    Total params: 33
    Trainable params: 33
    Non-trainable params: 0
    Total mult-adds: 264 (0.00 M)
    ========================================================
    Input size (MB): 0.0002
    Forward/backward pass size (MB): 0.0002
    Params size (MB): 0.0001
    Estimated Total Size (MB): 0.0005
    ========================================================
    """
    if not isinstance(model, Module):
        raise TypeError(f"summary() needs a convscope.nn.Module, got {type(model).__name__}")
    if isinstance(input_size, int):
        input_size = (input_size,)
    size = tuple(input_size)
    if not size or any(not isinstance(s, (int, np.integer)) or s <= 0 for s in size):
        raise ValueError(f"input_size must be positive integers (batch first), got {input_size}")
    x = Tensor(np.zeros(size, dtype=_input_dtype(model, dtype)))
    with _recording(model) as recorder, no_grad():
        try:
            model(x)
        except (RuntimeError, ValueError, TypeError) as error:
            failed = [r for r in recorder.rows if r.executed and r.output_shape is None]
            where = f" in {failed[-1].class_name} '{failed[-1].name}'" if failed else ""
            raise RuntimeError(
                f"the model failed{where} on an input of size {list(size)}: {error}"
            ) from error
    recorder.finish()
    rows = recorder.rows
    total_params = trainable = mult_adds = fb_bytes = 0
    for row in rows:
        if row.is_leaf:
            mult_adds += row.mult_adds
            if row.num_params > 0:
                fb_bytes += 2 * row.output_bytes  # activations and their gradients
            if not row.is_recursive:
                total_params += row.num_params
                trainable += row.trainable_params
        elif not row.is_recursive:
            total_params += max(row.leftover_params(), 0)
            trainable += max(row.leftover_params(trainable=True), 0)
    unique = {id(p): p for p in model.parameters()}
    return Summary(
        model=type(model).__name__,
        input_size=size,
        rows=rows,
        total_params=total_params,
        trainable_params=trainable,
        total_mult_adds=mult_adds,
        input_size_bytes=x.data.nbytes,
        forward_backward_bytes=fb_bytes,
        params_bytes=sum(p.data.nbytes for p in unique.values()),
        depth=depth,
        show_kernel_size=show_kernel_size,
    )
