"""``Tensor``: an n-dimensional array with PyTorch's interface, backed by a NumPy array.

A tensor owns one ``numpy.ndarray`` (``.numpy()`` returns it without copying, as PyTorch
does for CPU tensors).  Differentiable operations live in :mod:`convscope.autograd.functions`
and record the graph through :func:`convscope.autograd.engine.attach`; the methods here check
arguments as PyTorch does and delegate to them.

>>> import convscope as cs
>>> x = cs.tensor([[1.0, 2.0], [3.0, 4.0]])
>>> (x * 2 + 1).sum().item()
24.0
>>> x.dtype, x.shape
(dtype('float32'), (2, 2))
>>> x.mean(dim=1, keepdim=True)
tensor([[1.5000],
        [3.5000]])
"""

from __future__ import annotations

import builtins
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

import numpy as np

from . import _dtypes


def _as_array(value: Any) -> np.ndarray | np.generic | Any:
    return value.data if isinstance(value, Tensor) else value


def _result(data: np.ndarray) -> Tensor:
    """Wrap an array computed outside the graph (no gradient flows through it)."""
    return Tensor(np.asarray(data))


class ReductionResult(NamedTuple):
    """``(values, indices)`` of ``max``/``min`` along a dimension, ``topk`` and ``sort``."""

    values: Tensor
    indices: Tensor


class Tensor:
    """An array with PyTorch's tensor interface.

    >>> import convscope as cs
    >>> t = cs.Tensor([1, 2, 3])
    >>> t.dtype  # Python ints give int64, as in PyTorch
    dtype('int64')
    """

    __array_priority__ = 1000  # make ``ndarray <op> Tensor`` defer to Tensor

    def __init__(self, data: Any = (), dtype: Any = None, requires_grad: builtins.bool = False):
        if isinstance(data, Tensor):
            data = data.data
        target = np.dtype(dtype) if dtype is not None else _dtypes.infer_dtype(data)
        array = np.asarray(data, dtype=target)
        if requires_grad and array.dtype.kind not in "fc":
            raise RuntimeError(
                f"only Tensors of floating point dtype can require gradients, got {array.dtype}"
            )
        self.data: np.ndarray = array
        self.requires_grad: builtins.bool = builtins.bool(requires_grad)
        self.grad: Tensor | None = None
        self.grad_fn: Any = None
        self._retains_grad = False

    # ------------------------------------------------------------------ autograd
    @property
    def is_leaf(self) -> builtins.bool:
        return self.grad_fn is None

    def backward(self, gradient: Any = None, retain_graph: builtins.bool = False) -> None:
        """Accumulate the gradient of this tensor into ``.grad`` of every leaf it depends on."""
        _engine.backward(self, gradient, retain_graph)

    def retain_grad(self) -> None:
        """Keep ``.grad`` on this non-leaf tensor too."""
        self._retains_grad = True

    def requires_grad_(self, requires_grad: builtins.bool = True) -> Tensor:
        if requires_grad and self.data.dtype.kind not in "fc":
            raise RuntimeError(
                f"only Tensors of floating point dtype can require gradients, got {self.dtype}"
            )
        if not self.is_leaf:
            raise RuntimeError("you can only change requires_grad flags of leaf variables.")
        self.requires_grad = builtins.bool(requires_grad)
        return self

    # ------------------------------------------------------------------ array protocol
    def numpy(self) -> np.ndarray:
        """The underlying NumPy array (shared memory, no copy)."""
        return self.data

    def __array__(self, dtype=None, copy=None):
        if dtype is not None and np.dtype(dtype) != self.data.dtype:
            return self.data.astype(dtype)
        return self.data.copy() if copy else self.data

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    def size(self, dim: int | None = None):
        """The shape, or the size of one dimension."""
        if dim is None:
            return self.data.shape
        if self.data.ndim == 0:
            raise IndexError(f"Dimension specified as {dim} but tensor has no dimensions")
        return self.data.shape[_fn.check_dim(dim, self.data.ndim)]

    def dim(self) -> int:
        return self.data.ndim

    def numel(self) -> int:
        return int(self.data.size)

    def __len__(self) -> int:
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return len(self.data)

    def item(self) -> Any:
        if self.data.size != 1:
            raise RuntimeError(
                f"a Tensor with {self.data.size} elements cannot be converted to Scalar"
            )
        return self.data.reshape(()).item()

    def tolist(self) -> Any:
        return self.data.tolist()

    def __iter__(self):
        if self.data.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(len(self.data)))

    def __bool__(self) -> builtins.bool:
        if self.data.size != 1:
            raise RuntimeError(f"Boolean value of Tensor with {self.data.size} values is ambiguous")
        return builtins.bool(self.data.reshape(()))

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __index__(self) -> int:
        if self.data.dtype.kind not in "iu" or self.data.size != 1:
            raise TypeError("only integer tensors of a single element can be converted to an index")
        return int(self.item())

    # ------------------------------------------------------------------ conversions
    def to(self, *args: Any, **kwargs: Any) -> Tensor:
        """Convert to a dtype (``self`` when it already has it): ``to(dtype)``,
        ``to(other_tensor)``, ``to('cpu')``, ``to('cpu', dtype)``, ``to(dtype=...)``;
        convscope computes on the CPU only."""
        dtype = kwargs.pop("dtype", None)
        device = kwargs.pop("device", None)
        kwargs.pop("non_blocking", None)
        copy = kwargs.pop("copy", False)
        if kwargs:
            raise TypeError(f"to() got unexpected keyword arguments {sorted(kwargs)}")
        for arg in args:
            if isinstance(arg, Tensor):
                dtype = arg.dtype
            elif isinstance(arg, str) and arg.split(":")[0] in ("cpu", "cuda", "mps", "meta"):
                device = arg
            elif type(arg).__name__ == "device":
                device = str(arg)
            else:
                dtype = arg
        if device is not None and str(device).split(":")[0] != "cpu":
            raise RuntimeError(f"convscope computes on the CPU only, cannot move to {device!r}")
        dtype = self.data.dtype if dtype is None else np.dtype(dtype)
        if dtype == self.data.dtype:
            return self.clone() if copy else self
        source = self.data.dtype
        return _engine.attach(
            Tensor(self.data.astype(dtype)), (self,), lambda g, n: (g.astype(source),), "ToCopy"
        )

    def type_as(self, other: Tensor) -> Tensor:
        """This tensor in ``other``'s dtype."""
        return self.to(other.dtype)

    def cpu(self) -> Tensor:
        return self

    def float(self) -> Tensor:
        return self.to(_dtypes.float32)

    def double(self) -> Tensor:
        return self.to(_dtypes.float64)

    def half(self) -> Tensor:
        return self.to(_dtypes.float16)

    def long(self) -> Tensor:
        return self.to(_dtypes.int64)

    def int(self) -> Tensor:
        return self.to(_dtypes.int32)

    def bool(self) -> Tensor:
        return self.to(_dtypes.bool)

    def clone(self) -> Tensor:
        return _engine.attach(Tensor(self.data.copy()), (self,), lambda g, n: (g,), "Clone")

    def detach(self) -> Tensor:
        """A tensor sharing this one's data, outside any autograd graph."""
        return Tensor(self.data)

    def contiguous(self) -> Tensor:
        """``self`` when C-contiguous, else a C-contiguous copy (in the graph)."""
        if self.data.flags.c_contiguous:
            return self
        return _engine.attach(
            Tensor(np.ascontiguousarray(self.data)), (self,), lambda g, n: (g,), "Clone"
        )

    def is_contiguous(self) -> builtins.bool:
        return builtins.bool(self.data.flags.c_contiguous)

    # ------------------------------------------------------------------ new tensors like this one
    def _new_filled(self, size: Sequence[Any], value: Any, dtype: Any, grad: builtins.bool):
        dtype = self.data.dtype if dtype is None else np.dtype(dtype)
        return Tensor(np.full(_shape_arg(size), value, dtype), requires_grad=grad)

    def new_zeros(self, *size: Any, dtype: Any = None, requires_grad: builtins.bool = False):
        """Zeros of ``size`` with this tensor's dtype (unless given)."""
        return self._new_filled(size, 0, dtype, requires_grad)

    def new_ones(self, *size: Any, dtype: Any = None, requires_grad: builtins.bool = False):
        return self._new_filled(size, 1, dtype, requires_grad)

    def new_empty(self, *size: Any, dtype: Any = None, requires_grad: builtins.bool = False):
        return self._new_filled(size, 0, dtype, requires_grad)

    def new_full(
        self, size: Any, fill_value: Any, dtype: Any = None, requires_grad: builtins.bool = False
    ) -> Tensor:
        return self._new_filled((size,), fill_value, dtype, requires_grad)

    def new_tensor(self, data: Any, dtype: Any = None, requires_grad: builtins.bool = False):
        """A copy of ``data`` with this tensor's dtype (unless given)."""
        dtype = self.data.dtype if dtype is None else np.dtype(dtype)
        return Tensor(np.array(_as_array(data), dtype=dtype), requires_grad=requires_grad)

    # ------------------------------------------------------------------ shape ops
    def reshape(self, *shape: Any) -> Tensor:
        """A view when the layout allows, else a copy."""
        return _fn.reshape(self, _resolve_shape(_shape_arg(shape), self.data.size))

    def view(self, *shape: Any) -> Tensor:
        """A view with another shape; a RuntimeError where it would need a copy (as after
        ``permute``), as in PyTorch."""
        return _fn.view(self, _resolve_shape(_shape_arg(shape), self.data.size))

    def view_as(self, other: Tensor) -> Tensor:
        return self.view(other.shape)

    def reshape_as(self, other: Tensor) -> Tensor:
        return self.reshape(other.shape)

    def flatten(self, start_dim: builtins.int = 0, end_dim: builtins.int = -1) -> Tensor:
        """Merge dimensions ``start_dim..end_dim`` into one.

        >>> import convscope as cs
        >>> cs.zeros(2, 3, 4).flatten(1).shape
        (2, 12)
        """
        shape = self.data.shape
        if not shape:
            return self.reshape(1)
        start, end = _fn.check_dim(start_dim, len(shape)), _fn.check_dim(end_dim, len(shape))
        if start > end:
            raise RuntimeError("flatten() has invalid args: start_dim cannot come after end_dim")
        if start == end:
            return self
        merged = math.prod(shape[start : end + 1])
        return _fn.reshape(self, (*shape[:start], merged, *shape[end + 1 :]))

    def permute(self, *dims: Any) -> Tensor:
        return _fn.permute(self, _shape_arg(dims))

    def transpose(self, dim0: builtins.int, dim1: builtins.int) -> Tensor:
        return _fn.transpose(self, dim0, dim1)

    def t(self) -> Tensor:
        if self.ndim > 2:
            raise RuntimeError(
                f"t() expects a tensor with <= 2 dimensions, but self is {self.ndim}D"
            )
        return self.transpose(0, -1) if self.ndim == 2 else self

    @property
    def T(self) -> Tensor:
        return self.permute(tuple(reversed(range(self.ndim))))

    def unsqueeze(self, dim: builtins.int) -> Tensor:
        dim = _fn.check_dim(dim, self.ndim + 1)
        return _fn.reshape(self, (*self.shape[:dim], 1, *self.shape[dim:]), "Unsqueeze")

    def squeeze(self, dim: Any = None) -> Tensor:
        """Drop size-1 dimensions (all, one, or a tuple of them; others are left alone)."""
        if dim is None:
            dims, name = range(self.ndim), "Squeeze"
        elif isinstance(dim, tuple | list):
            dims, name = [_fn.check_dim(d, self.ndim) for d in dim], "SqueezeBackward2"
        else:
            dims, name = [_fn.check_dim(dim, self.ndim)], "SqueezeBackward1"
        drop = {d for d in dims if self.shape[d] == 1}
        shape = tuple(s for i, s in enumerate(self.shape) if i not in drop)
        return _fn.reshape(self, shape, name)

    def expand(self, *sizes: Any) -> Tensor:
        """A broadcast view to ``sizes`` (``-1`` keeps a dimension; new ones go in front).

        >>> import convscope as cs
        >>> cs.tensor([[1], [2]]).expand(2, 3).tolist()
        [[1, 1, 1], [2, 2, 2]]
        """
        sizes = _shape_arg(sizes)
        shape, extra = self.shape, len(sizes) - self.ndim
        if extra < 0:
            raise RuntimeError(
                f"expand({list(shape)}, size={list(sizes)}): the number of sizes provided "
                f"({len(sizes)}) must be greater or equal to the number of dimensions in the "
                f"tensor ({len(shape)})"
            )
        target = []
        for i, size in enumerate(sizes):
            if i < extra:
                if size < 0:
                    raise RuntimeError(
                        f"The expanded size of the tensor ({size}) isn't allowed in a leading, "
                        f"non-existing dimension {i}"
                    )
            elif size == -1:
                size = shape[i - extra]
            elif shape[i - extra] not in (1, size):
                raise RuntimeError(
                    f"The expanded size of the tensor ({size}) must match the existing size "
                    f"({shape[i - extra]}) at non-singleton dimension {i}.  Target sizes: "
                    f"{list(sizes)}.  Tensor sizes: {list(shape)}"
                )
            target.append(size)
        return _fn.expand(self, tuple(target))

    def expand_as(self, other: Tensor) -> Tensor:
        return self.expand(other.shape)

    def repeat(self, *sizes: Any) -> Tensor:
        """Tile the tensor ``sizes[i]`` times along each dimension (new ones in front)."""
        sizes = _shape_arg(sizes)
        if len(sizes) < self.ndim:
            raise RuntimeError(
                "Number of dimensions of repeat dims can not be smaller than number of "
                "dimensions of tensor"
            )
        if any(s < 0 for s in sizes):
            raise RuntimeError(f"Trying to create tensor with negative dimension: {list(sizes)}")
        return _fn.repeat(self, sizes)

    def chunk(self, chunks: builtins.int, dim: builtins.int = 0) -> tuple[Tensor, ...]:
        from .tensor_functions import chunk

        return chunk(self, chunks, dim)

    def split(self, split_size: Any, dim: builtins.int = 0) -> tuple[Tensor, ...]:
        from .tensor_functions import split

        return split(self, split_size, dim)

    def __getitem__(self, index: Any) -> Tensor:
        return _fn.getitem(self, _index_arg(index))

    def __setitem__(self, index: Any, value: Any) -> None:
        self.data[_index_arg(index)] = _as_array(value)

    # ------------------------------------------------------------------ reductions
    def sum(self, dim: Any = None, keepdim: builtins.bool = False, dtype: Any = None) -> Tensor:
        source = self if dtype is None else self.to(dtype)
        return _fn.sum(source, _dim_arg(dim), keepdim)

    def mean(self, dim: Any = None, keepdim: builtins.bool = False, dtype: Any = None) -> Tensor:
        source = self if dtype is None else self.to(dtype)
        return _fn.mean(source, _dim_arg(dim), keepdim)

    def var(
        self,
        dim: Any = None,
        unbiased: builtins.bool | None = None,
        keepdim: builtins.bool = False,
        correction: Any = None,
    ) -> Tensor:
        """Variance (Bessel-corrected unless ``unbiased=False`` or another ``correction``)."""
        return _fn.var(self, _dim_arg(dim), unbiased, keepdim, correction)

    def std(
        self,
        dim: Any = None,
        unbiased: builtins.bool | None = None,
        keepdim: builtins.bool = False,
        correction: Any = None,
    ) -> Tensor:
        """Standard deviation (Bessel-corrected unless ``unbiased=False`` / ``correction=0``)."""
        return _fn.std(self, _dim_arg(dim), unbiased, keepdim, correction)

    def max(self, dim: Any = None, keepdim: builtins.bool = False) -> Any:
        """The largest value; along ``dim`` ``(values, indices)``; elementwise with a tensor."""
        if isinstance(dim, Tensor):
            return _fn.maximum(self, dim)
        return _fn.extreme(self, dim, keepdim, largest=True)

    def min(self, dim: Any = None, keepdim: builtins.bool = False) -> Any:
        if isinstance(dim, Tensor):
            return _fn.maximum(self, dim, largest=False)
        return _fn.extreme(self, dim, keepdim, largest=False)

    def maximum(self, other: Tensor) -> Tensor:
        return _fn.maximum(self, other)

    def minimum(self, other: Tensor) -> Tensor:
        return _fn.maximum(self, other, largest=False)

    def amax(self, dim: Any = (), keepdim: builtins.bool = False) -> Tensor:
        """The largest values over ``dim`` (all by default); ties share the gradient."""
        return _fn.extreme_values(self, _dim_arg(dim), keepdim, largest=True)

    def amin(self, dim: Any = (), keepdim: builtins.bool = False) -> Tensor:
        return _fn.extreme_values(self, _dim_arg(dim), keepdim, largest=False)

    def _arg_extreme(self, dim: Any, keepdim: builtins.bool, largest: builtins.bool) -> Tensor:
        x, name = self.data, "argmax" if largest else "argmin"
        find = np.argmax if largest else np.argmin
        if dim is None:
            if x.size == 0:
                raise RuntimeError(
                    f"{name}(): Expected reduction dim to be specified for input.numel() == 0."
                )
            index = np.asarray(find(x))
            return _result(index.reshape((1,) * x.ndim) if keepdim else index)
        axis = _fn.check_dim(dim, x.ndim)
        if x.ndim == 0:
            return _result(np.asarray(0, _dtypes.int64))
        if x.shape[axis] == 0:
            raise IndexError(f"{name}(): Expected reduction dim {axis} to have non-zero size.")
        return _result(find(x, axis=axis, keepdims=keepdim))

    def argmax(self, dim: Any = None, keepdim: builtins.bool = False) -> Tensor:
        """Index of the largest value (of the flattened tensor when ``dim`` is ``None``)."""
        return self._arg_extreme(dim, keepdim, largest=True)

    def argmin(self, dim: Any = None, keepdim: builtins.bool = False) -> Tensor:
        return self._arg_extreme(dim, keepdim, largest=False)

    def _along(self, op: Callable[[Tensor], Any]) -> Any:
        """``op`` on this tensor, a 0-d tensor acting as one element along dimension 0."""
        if self.ndim:
            return op(self)
        values, indices = op(self.reshape(1))
        return ReductionResult(values.reshape(()), indices.reshape(()))

    def topk(
        self,
        k: builtins.int,
        dim: builtins.int = -1,
        largest: builtins.bool = True,
        sorted: builtins.bool = True,
    ) -> ReductionResult:
        """The ``k`` largest (or smallest) values along ``dim`` and their indices, in order.

        >>> import convscope as cs
        >>> cs.tensor([0.1, 0.7, 0.2]).topk(2).indices.tolist()
        [1, 2]
        """
        return self._along(lambda t: ReductionResult(*_fn.topk(t, k, dim, largest)))

    def sort(
        self,
        dim: builtins.int = -1,
        descending: builtins.bool = False,
        stable: builtins.bool = False,
    ) -> ReductionResult:
        """Values sorted along ``dim`` and where they came from (equal values keep their
        order)."""
        return self._along(lambda t: ReductionResult(*_fn.sort(t, dim, descending)))

    def argsort(
        self,
        dim: builtins.int = -1,
        descending: builtins.bool = False,
        stable: builtins.bool = False,
    ) -> Tensor:
        return self.sort(dim, descending, stable).indices

    # ------------------------------------------------------------------ elementwise
    def abs(self) -> Tensor:
        return _fn.abs(self)

    def __abs__(self) -> Tensor:
        return _fn.abs(self)

    def neg(self) -> Tensor:
        return _fn.neg(self)

    def sign(self) -> Tensor:
        return _fn.sign(self)

    def floor(self) -> Tensor:
        return _fn.floor(self)

    def round(self, decimals: builtins.int = 0) -> Tensor:
        return _fn.round(self, decimals)

    def exp(self) -> Tensor:
        return _fn.exp(self)

    def log(self) -> Tensor:
        return _fn.log(self)

    def sqrt(self) -> Tensor:
        return _fn.sqrt(self)

    def clamp(self, min: Any = None, max: Any = None) -> Tensor:
        """Limit values to ``[min, max]`` (numbers or tensors)."""
        if isinstance(min, Tensor) or isinstance(max, Tensor):
            from .tensor_functions import clamp

            return clamp(self, min, max)
        return _fn.clamp(self, min, max)

    clip = clamp

    def relu(self) -> Tensor:
        return _fn.relu(self)

    def sigmoid(self) -> Tensor:
        return _fn.sigmoid(self)

    def tanh(self) -> Tensor:
        return _fn.tanh(self)

    def softmax(self, dim: builtins.int, dtype: Any = None) -> Tensor:
        from .tensor_functions import softmax

        return softmax(self, dim, dtype)

    def log_softmax(self, dim: builtins.int, dtype: Any = None) -> Tensor:
        from .tensor_functions import log_softmax

        return log_softmax(self, dim, dtype)

    def pow(self, exponent: Any) -> Tensor:
        return _fn.pow(self, exponent)

    # ------------------------------------------------------------------ arithmetic
    def add(self, other: Any, alpha: Any = 1) -> Tensor:
        """``self + alpha * other``."""
        return _fn.add(self, other, alpha)

    def sub(self, other: Any, alpha: Any = 1) -> Tensor:
        """``self - alpha * other``."""
        return _fn.sub(self, other, alpha=alpha)

    def mul(self, other: Any) -> Tensor:
        return _fn.mul(self, other)

    def div(self, other: Any, rounding_mode: str | None = None) -> Tensor:
        """True division, or rounded ``'trunc'``/``'floor'`` division (no gradient)."""
        if rounding_mode is None:
            return _fn.div(self, other)
        if rounding_mode not in ("trunc", "floor"):
            raise ValueError(
                "div expected rounding_mode to be one of None, 'trunc', or 'floor' but found "
                f"'{rounding_mode}'"
            )
        x, y = _fn._operands(self, other)
        floor = rounding_mode == "floor"
        if x.dtype.kind in "biu":
            return _result(np.floor_divide(x, y) if floor else np.trunc(x / y).astype(x.dtype))
        return _result(np.floor(x / y) if floor else np.trunc(x / y))

    def matmul(self, other: Any) -> Tensor:
        return _fn.matmul(self, other)

    def __add__(self, other: Any) -> Tensor:
        return _fn.add(self, other)

    __radd__ = __add__

    def __sub__(self, other: Any) -> Tensor:
        return _fn.sub(self, other)

    def __rsub__(self, other: Any) -> Tensor:
        return _fn.sub(self, other, reverse=True)

    def __mul__(self, other: Any) -> Tensor:
        return _fn.mul(self, other)

    __rmul__ = __mul__

    def __truediv__(self, other: Any) -> Tensor:
        return _fn.div(self, other)

    def __rtruediv__(self, other: Any) -> Tensor:
        return _fn.div(other, self)

    def __pow__(self, other: Any) -> Tensor:
        return _fn.pow(self, other)

    def __rpow__(self, other: Any) -> Tensor:
        return _fn.rpow(other, self)

    def __matmul__(self, other: Any) -> Tensor:
        return _fn.matmul(self, other)

    def __rmatmul__(self, other: Any) -> Tensor:
        return _fn.matmul(other, self)

    def __neg__(self) -> Tensor:
        return _fn.neg(self)

    # ------------------------------------------------------------------ in place
    def _records(self, *others: Any) -> builtins.bool:
        """Whether an in-place op must record a graph node (PyTorch refuses on a leaf that
        requires grad while recording)."""
        if not _engine.is_grad_enabled():
            return False
        if self.requires_grad and self.grad_fn is None:
            raise RuntimeError(
                "a leaf Variable that requires grad is being used in an in-place operation."
            )
        return self.requires_grad or any(getattr(o, "requires_grad", False) for o in others)

    def _rebind(self, op: Callable[[Tensor], Tensor]) -> Tensor:
        """Record ``self = op(self)`` in the graph: the old value becomes a hidden parent and
        ``self`` takes the result (its array replaced, not overwritten, so values that earlier
        nodes saved for their gradients stay intact)."""
        old = Tensor.__new__(Tensor)
        old.data, old.requires_grad, old.grad_fn = self.data, self.requires_grad, self.grad_fn
        old.grad, old._retains_grad = None, False
        out = op(old)
        self._check_target(out.shape)
        self.data = out.data if out.dtype == self.dtype else out.data.astype(self.dtype)
        self.grad_fn, self.requires_grad = out.grad_fn, out.requires_grad
        return self

    def _check_target(self, shape: tuple[builtins.int, ...]) -> None:
        """PyTorch's errors for an in-place result that does not fit this tensor."""
        if shape == self.shape:
            return
        full = _broadcast_shape(self.shape, shape)
        if full != self.shape:
            raise RuntimeError(
                f"output with shape {list(self.shape)} doesn't match the broadcast shape "
                f"{list(full)}"
            )

    def _writable(self) -> np.ndarray:
        data = self.data
        if not data.flags.writeable:
            if 0 in data.strides and data.size > 1:
                raise RuntimeError(
                    "unsupported operation: more than one element of the written-to tensor "
                    "refers to a single memory location. Please clone() the tensor before "
                    "performing the operation."
                )
            raise RuntimeError("cannot write in place to a tensor over read-only memory")
        return data

    def _castable(self, dtype: np.dtype) -> None:
        if _fn._CATEGORY[dtype.kind] > _fn._CATEGORY[self.dtype.kind]:
            raise RuntimeError(
                f"result type {_fn._dtype_name(dtype)} can't be cast to the desired output "
                f"type {_fn._dtype_name(self.dtype)}"
            )

    def _ufunc_(self, ufunc: np.ufunc, other: Any, dtype: np.dtype | None = None) -> Tensor:
        y = _as_array(other)
        self._castable(_fn.result_dtype(self.data, y) if dtype is None else dtype)
        self._check_target(np.shape(y))
        ufunc(self._writable(), y, out=self.data, casting="unsafe")
        return self

    def add_(self, other: Any, alpha: Any = 1) -> Tensor:
        """``self += alpha * other`` in place."""
        if self._records(other):
            return self._rebind(lambda t: _fn.add(t, other, alpha))
        return self._ufunc_(np.add, other if alpha == 1 else _as_array(other) * alpha)

    def sub_(self, other: Any, alpha: Any = 1) -> Tensor:
        if self._records(other):
            return self._rebind(lambda t: _fn.sub(t, other, alpha=alpha))
        return self._ufunc_(np.subtract, other if alpha == 1 else _as_array(other) * alpha)

    def mul_(self, other: Any) -> Tensor:
        """``self *= other`` in place."""
        if self._records(other):
            return self._rebind(lambda t: _fn.mul(t, other))
        return self._ufunc_(np.multiply, other)

    def div_(self, other: Any) -> Tensor:
        if self._records(other):
            return self._rebind(lambda t: _fn.div(t, other))
        dtype = _fn.result_dtype(self.data, _as_array(other))
        dtype = dtype if dtype.kind in "fc" else _dtypes.get_default_dtype()
        return self._ufunc_(np.true_divide, other, dtype)

    def clamp_(self, min: Any = None, max: Any = None) -> Tensor:
        if self._records(min, max):
            return self._rebind(lambda t: t.clamp(min, max))
        if min is None and max is None:
            raise RuntimeError("torch.clamp: At least one of 'min' or 'max' must not be None")
        for bound in (min, max):
            if bound is not None:
                self._castable(_fn.result_dtype(self.data, _as_array(bound)))
        np.clip(self._writable(), _as_array(min), _as_array(max), out=self.data, casting="unsafe")
        return self

    clip_ = clamp_

    def fill_(self, value: Any) -> Tensor:
        """Set every element to ``value`` (a number or a 0-d tensor)."""
        if isinstance(value, Tensor) and value.ndim:
            raise RuntimeError(
                "fill_ only supports 0-dimension value tensor but got tensor with "
                f"{value.ndim} dimensions."
            )
        if self._records(value):
            filled = np.full(self.shape, _as_array(value), self.dtype)
            return self._rebind(
                lambda t: _engine.attach(Tensor(filled), (t,), lambda g, n: (None,), "Fill")
            )
        self._writable()[...] = _as_array(value)
        return self

    def zero_(self) -> Tensor:
        return self.fill_(0)

    def copy_(self, src: Any, non_blocking: builtins.bool = False) -> Tensor:
        """Copy ``src``'s values in (broadcast to this shape, converted to this dtype)."""
        values = np.asarray(_as_array(src))
        if values.shape != self.shape:
            _broadcast_shape(self.shape, values.shape)
            self._check_target(values.shape)
        if self._records(src):
            copied = np.array(np.broadcast_to(values, self.shape), dtype=self.dtype)
            source = values.dtype
            return self._rebind(
                lambda t: _engine.attach(
                    Tensor(copied), (t, src), lambda g, n: (None, g.astype(source)), "CopyBackwards"
                )
            )
        np.copyto(self._writable(), values, casting="unsafe")
        return self

    def __iadd__(self, other: Any) -> Tensor:
        return self.add_(other)

    def __isub__(self, other: Any) -> Tensor:
        return self.sub_(other)

    def __imul__(self, other: Any) -> Tensor:
        return self.mul_(other)

    def __itruediv__(self, other: Any) -> Tensor:
        return self.div_(other)

    # ------------------------------------------------------------------ comparisons
    def _compare(self, other: Any, ufunc: np.ufunc) -> Tensor:
        return _result(ufunc(*_fn._operands(self, other)))

    def __eq__(self, other: Any) -> Tensor:  # type: ignore[override]
        return self._compare(other, np.equal)

    def __ne__(self, other: Any) -> Tensor:  # type: ignore[override]
        return self._compare(other, np.not_equal)

    def __lt__(self, other: Any) -> Tensor:
        return self._compare(other, np.less)

    def __le__(self, other: Any) -> Tensor:
        return self._compare(other, np.less_equal)

    def __gt__(self, other: Any) -> Tensor:
        return self._compare(other, np.greater)

    def __ge__(self, other: Any) -> Tensor:
        return self._compare(other, np.greater_equal)

    __hash__ = object.__hash__

    def eq(self, other: Any) -> Tensor:
        """Elementwise ``==`` as a bool tensor (as ``pred.eq(target)`` in accuracy code)."""
        return self._compare(other, np.equal)

    def ne(self, other: Any) -> Tensor:
        return self._compare(other, np.not_equal)

    def lt(self, other: Any) -> Tensor:
        return self._compare(other, np.less)

    def le(self, other: Any) -> Tensor:
        return self._compare(other, np.less_equal)

    def gt(self, other: Any) -> Tensor:
        return self._compare(other, np.greater)

    def ge(self, other: Any) -> Tensor:
        return self._compare(other, np.greater_equal)

    # ------------------------------------------------------------------ display
    def __repr__(self) -> str:
        return _printing_repr(self)

    def __format__(self, spec: str) -> str:
        if self.data.ndim == 0:
            return self.item().__format__(spec)
        return object.__format__(self, spec)


def _shape_arg(args: Sequence[Any]) -> tuple[int, ...]:
    if len(args) == 1 and isinstance(args[0], Iterable):
        return tuple(builtins.int(a) for a in args[0])
    return tuple(builtins.int(a) for a in args)


def _resolve_shape(shape: tuple[int, ...], numel: int) -> tuple[int, ...]:
    """``shape`` with its ``-1`` worked out, or PyTorch's RuntimeError."""
    unknown = -1
    for i, size in enumerate(shape):
        if size == -1:
            if unknown >= 0:
                raise RuntimeError("only one dimension can be inferred")
            unknown = i
        elif size < 0:
            raise RuntimeError(
                f"invalid shape dimension {size} at index {i} of shape {list(shape)}"
            )
    known = math.prod(s for s in shape if s != -1)
    if unknown < 0:
        if known == numel:
            return shape
    elif known and numel % known == 0:
        return (*shape[:unknown], numel // known, *shape[unknown + 1 :])
    raise RuntimeError(f"shape '{list(shape)}' is invalid for input of size {numel}")


def _broadcast_shape(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    """The broadcast shape, or PyTorch's RuntimeError naming the first clash."""
    try:
        return np.broadcast_shapes(a, b)
    except ValueError:
        raise _fn.broadcast_error(a, b) from None


def _dim_arg(dim: Any) -> Any:
    return tuple(dim) if isinstance(dim, list | tuple) else dim


def _index_arg(index: Any) -> Any:
    if isinstance(index, tuple):
        return tuple(_as_array(i) for i in index)
    return _as_array(index)


# ---------------------------------------------------------------------- printing, as PyTorch
_LINE_WIDTH, _THRESHOLD, _EDGE_ITEMS = 80, 1000, 3


def _summary(data: np.ndarray) -> np.ndarray:
    """The elements a summarised print shows: the first and last few along each long axis."""
    for axis, size in enumerate(data.shape):
        if size > 2 * _EDGE_ITEMS:
            keep = [*range(_EDGE_ITEMS), *range(size - _EDGE_ITEMS, size)]
            data = np.take(data, keep, axis=axis)
    return data


class _ElementFormat:
    """One text width and style for every element, chosen from the elements shown: floats as
    integers (``1.``), fixed (``0.1235``) or scientific (``1.2346e+05``) with 4 decimals."""

    def __init__(self, shown: np.ndarray) -> None:
        self.style, self.width = "int", 1
        kind = shown.dtype.kind
        if kind != "f":
            texts = [str(v) for v in np.unique(shown).tolist()] if shown.size else []
            self.style = "plain"
            self.width = builtins.max([1, *map(len, texts)])
            return
        finite = shown[np.isfinite(shown) & (shown != 0)].astype(np.float64)
        if finite.size == 0:
            return
        magnitude = np.abs(finite)
        low, high = magnitude.min(), magnitude.max()
        wide = high / low > 1000.0 or high > 1.0e8
        if np.all(finite == np.ceil(finite)):
            self.style = "sci" if wide else "int"
        else:
            self.style = "sci" if wide or low < 1.0e-4 else "fixed"
        self.width = builtins.max(len(self.text(v)) for v in np.unique(finite).tolist())

    def text(self, value: Any) -> str:
        if self.style == "plain":
            return str(value)
        if self.style == "sci":
            return f"{value:.4e}"
        if self.style == "fixed":
            return f"{value:.4f}"
        return f"{value:.0f}." if math.isfinite(value) else f"{value:.0f}"

    def __call__(self, value: Any) -> str:
        return self.text(value).rjust(self.width)


def _block(data: np.ndarray, indent: int, summarize: builtins.bool, fmt: _ElementFormat) -> str:
    if data.ndim == 0:
        return fmt(data.item())
    size, edge = data.shape[0], _EDGE_ITEMS
    cut = summarize and size > 2 * edge
    if data.ndim == 1:
        values = data.tolist()
        items = [fmt(v) for v in values[:edge]] + [" ..."] + [fmt(v) for v in values[-edge:]]
        items = items if cut else [fmt(v) for v in values]
        per_line = builtins.max(1, (_LINE_WIDTH - indent) // (fmt.width + 2))
        lines = [", ".join(items[i : i + per_line]) for i in range(0, len(items), per_line)]
        return "[" + (",\n" + " " * (indent + 1)).join(lines) + "]"
    rows = [*range(edge), None, *range(size - edge, size)] if cut else range(size)
    parts = ["..." if i is None else _block(data[i], indent + 1, summarize, fmt) for i in rows]
    return "[" + ("," + "\n" * (data.ndim - 1) + " " * (indent + 1)).join(parts) + "]"


def _printing_repr(tensor: Tensor) -> str:
    data, prefix = tensor.data, "tensor("
    indent = len(prefix)
    shown_dtype = data.dtype not in (_dtypes.get_default_dtype(), _dtypes.int64, _dtypes.bool)
    suffixes = []
    if data.size == 0:
        if data.ndim != 1:
            suffixes.append(f"size={data.shape}")
        if data.dtype != _dtypes.get_default_dtype():
            suffixes.append(f"dtype={data.dtype}")
        body = "[]"
    else:
        if shown_dtype:
            suffixes.append(f"dtype={data.dtype}")
        values = data.astype(np.float32) if data.dtype == np.float16 else data
        summarize = data.size > _THRESHOLD
        fmt = _ElementFormat(_summary(values) if summarize else values)
        body = _block(values, indent, summarize, fmt)
    if tensor.grad_fn is not None:
        suffixes.append(f"grad_fn={tensor.grad_fn!r}")
    elif tensor.requires_grad:
        suffixes.append("requires_grad=True")
    text = prefix + body
    last_line = len(text) - text.rfind("\n") + 1  # PyTorch's count, one more than shown
    for suffix in suffixes:
        width = len(suffix) + 6 * suffix.startswith("dtype=")  # laid out as "dtype=torch.*"
        if last_line + width + 2 > _LINE_WIDTH:
            text += ",\n" + " " * indent + suffix
            last_line = indent + width
        else:
            text += ", " + suffix
            last_line += width + 2
    return text + ")"


from .autograd import engine as _engine  # noqa: E402  (these modules import Tensor)
from .autograd import functions as _fn  # noqa: E402
