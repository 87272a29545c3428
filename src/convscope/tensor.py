"""``Tensor``: an n-dimensional array with PyTorch's interface, backed by a NumPy array.

A tensor owns one ``numpy.ndarray`` (``.numpy()`` returns it without copying, as PyTorch
does for CPU tensors).  Every operation goes through :func:`_result`, the single place where
the autograd graph will be recorded, so gradients can be added without touching the ops.

>>> import convscope as cs
>>> x = cs.tensor([[1.0, 2.0], [3.0, 4.0]])
>>> (x * 2 + 1).sum().item()
24.0
>>> x.dtype, x.shape
(dtype('float32'), (2, 2))
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import numpy as np

from . import _dtypes


def _as_array(value: Any) -> np.ndarray | np.generic | Any:
    return value.data if isinstance(value, Tensor) else value


def _result(data: np.ndarray) -> Tensor:
    """Wrap an array computed outside the graph (no gradient flows through it)."""
    return Tensor(np.asarray(data))


class ReductionResult(NamedTuple):
    """``(values, indices)`` of ``max``/``min`` along a dimension."""

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
        return self.data.shape if dim is None else self.data.shape[dim]

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
    def to(self, dtype: Any) -> Tensor:
        """Convert to ``dtype`` (returns ``self`` when it already has that dtype)."""
        dtype = np.dtype(dtype)
        if dtype == self.data.dtype:
            return self
        source = self.data.dtype
        return _engine.attach(
            Tensor(self.data.astype(dtype)), (self,), lambda g, n: (g.astype(source),), "ToCopy"
        )

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

    def clone(self) -> Tensor:
        return _engine.attach(Tensor(self.data.copy()), (self,), lambda g, n: (g,), "Clone")

    def detach(self) -> Tensor:
        """A tensor sharing this one's data, outside any autograd graph."""
        return Tensor(self.data)

    def contiguous(self) -> Tensor:
        return self

    def is_contiguous(self) -> builtins.bool:
        return builtins.bool(self.data.flags.c_contiguous)

    # ------------------------------------------------------------------ shape ops
    def reshape(self, *shape: Any) -> Tensor:
        return _fn.reshape(self, _shape_arg(shape))

    def view(self, *shape: Any) -> Tensor:
        return self.reshape(*shape)

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> Tensor:
        if self.data.ndim == 0:
            return self.reshape(1)
        shape = self.data.shape
        start, end = start_dim % len(shape), end_dim % len(shape)
        new = (*shape[:start], builtins.int(np.prod(shape[start : end + 1])), *shape[end + 1 :])
        return self.reshape(new)

    def permute(self, *dims: Any) -> Tensor:
        return _fn.permute(self, _shape_arg(dims))

    def transpose(self, dim0: int, dim1: int) -> Tensor:
        return _fn.transpose(self, dim0, dim1)

    @property
    def T(self) -> Tensor:
        return self.permute(tuple(reversed(range(self.ndim))))

    def unsqueeze(self, dim: int) -> Tensor:
        dim = dim % (self.ndim + 1)
        return self.reshape((*self.shape[:dim], 1, *self.shape[dim:]))

    def squeeze(self, dim: Any = None) -> Tensor:
        """Drop size-1 dimensions (all, one, or a tuple of them; others are left alone)."""
        if self.ndim == 0:
            return self
        if dim is None:
            dims = range(self.ndim)
        else:
            dims = [d % self.ndim for d in (dim if isinstance(dim, tuple | list) else (dim,))]
        drop = {d for d in dims if self.shape[d] == 1}
        return self.reshape(tuple(s for i, s in enumerate(self.shape) if i not in drop))

    def chunk(self, chunks: builtins.int, dim: builtins.int = 0) -> tuple[Tensor, ...]:
        from .tensor_functions import chunk

        return chunk(self, chunks, dim)

    def split(self, split_size: Any, dim: builtins.int = 0) -> tuple[Tensor, ...]:
        from .tensor_functions import split

        return split(self, split_size, dim)

    def std(
        self,
        dim: Any = None,
        unbiased: builtins.bool | None = None,
        keepdim: builtins.bool = False,
        correction: builtins.int | None = None,
    ) -> Tensor:
        return _fn.var(self, dim, unbiased, keepdim, correction).sqrt()

    def __abs__(self) -> Tensor:
        return _fn.abs(self)

    def __getitem__(self, index: Any) -> Tensor:
        return _fn.getitem(self, _index_arg(index))

    def __setitem__(self, index: Any, value: Any) -> None:
        self.data[_index_arg(index)] = _as_array(value)

    # ------------------------------------------------------------------ reductions
    def sum(self, dim: Any = None, keepdim: builtins.bool = False) -> Tensor:
        return _fn.sum(self, dim, keepdim)

    def mean(self, dim: Any = None, keepdim: builtins.bool = False) -> Tensor:
        return _fn.mean(self, dim, keepdim)

    def var(
        self,
        dim: Any = None,
        unbiased: builtins.bool | None = None,
        keepdim: builtins.bool = False,
        correction: builtins.int | None = None,
    ) -> Tensor:
        return _fn.var(self, dim, unbiased, keepdim, correction)

    def max(self, dim: builtins.int | None = None, keepdim: builtins.bool = False) -> Any:
        return _fn.extreme(self, dim, keepdim, largest=True)

    def min(self, dim: builtins.int | None = None, keepdim: builtins.bool = False) -> Any:
        return _fn.extreme(self, dim, keepdim, largest=False)

    def argmax(self, dim: builtins.int | None = None, keepdim: builtins.bool = False) -> Tensor:
        if dim is None:
            return _result(np.asarray(self.data.argmax()))
        out = self.data.argmax(axis=dim)
        return _result(np.expand_dims(out, dim) if keepdim else out)

    # ------------------------------------------------------------------ elementwise
    def abs(self) -> Tensor:
        return _fn.abs(self)

    def exp(self) -> Tensor:
        return _fn.exp(self)

    def log(self) -> Tensor:
        return _fn.log(self)

    def sqrt(self) -> Tensor:
        return _fn.sqrt(self)

    def clamp(self, min: Any = None, max: Any = None) -> Tensor:
        return _fn.clamp(self, min, max)

    def relu(self) -> Tensor:
        return _fn.relu(self)

    def sigmoid(self) -> Tensor:
        return _fn.sigmoid(self)

    def tanh(self) -> Tensor:
        return _fn.tanh(self)

    def softmax(self, dim: builtins.int) -> Tensor:
        return _fn.softmax(self, dim)

    def log_softmax(self, dim: builtins.int) -> Tensor:
        return _fn.log_softmax(self, dim)

    def pow(self, exponent: Any) -> Tensor:
        return _fn.pow(self, exponent)

    # ------------------------------------------------------------------ arithmetic
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

    # ------------------------------------------------------------------ display
    def __repr__(self) -> str:
        body = np.array2string(
            self.data, separator=", ", prefix="tensor(", threshold=1000, edgeitems=3
        )
        extra = (
            ""
            if self.data.dtype in (_dtypes.get_default_dtype(), _dtypes.int64, _dtypes.bool)
            else f", dtype={self.data.dtype}"
        )
        if self.grad_fn is not None:
            extra += f", grad_fn={self.grad_fn!r}"
        elif self.requires_grad:
            extra += ", requires_grad=True"
        return f"tensor({body}{extra})"


def _shape_arg(args: Sequence[Any]) -> tuple[int, ...]:
    if len(args) == 1 and isinstance(args[0], Iterable):
        return tuple(builtins.int(a) for a in args[0])
    return tuple(builtins.int(a) for a in args)


def _dim_arg(dim: Any) -> Any:
    return tuple(dim) if isinstance(dim, list | tuple) else dim


def _index_arg(index: Any) -> Any:
    if isinstance(index, tuple):
        return tuple(_as_array(i) for i in index)
    return _as_array(index)


from .autograd import engine as _engine  # noqa: E402  (these modules import Tensor)
from .autograd import functions as _fn  # noqa: E402
