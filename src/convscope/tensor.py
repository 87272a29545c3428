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
from typing import Any

import numpy as np

from . import _dtypes


def _as_array(value: Any) -> np.ndarray | np.generic | Any:
    return value.data if isinstance(value, Tensor) else value


def _result(data: np.ndarray) -> Tensor:
    """Wrap the output of an operation (the hook where autograd records the graph)."""
    return Tensor(np.asarray(data))


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

    @property
    def T(self) -> Tensor:
        return _result(self.data.T)

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
        return (_result(row) for row in self.data)

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
        return self if dtype == self.data.dtype else _result(self.data.astype(dtype))

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
        return _result(self.data.copy())

    def detach(self) -> Tensor:
        """A tensor sharing this one's data, outside any autograd graph."""
        return Tensor(self.data)

    def contiguous(self) -> Tensor:
        return self if self.data.flags.c_contiguous else _result(np.ascontiguousarray(self.data))

    def is_contiguous(self) -> builtins.bool:
        return builtins.bool(self.data.flags.c_contiguous)

    # ------------------------------------------------------------------ shape ops
    def reshape(self, *shape: Any) -> Tensor:
        return _result(self.data.reshape(_shape_arg(shape)))

    def view(self, *shape: Any) -> Tensor:
        return self.reshape(*shape)

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> Tensor:
        if self.data.ndim == 0:
            return self.reshape(1)
        shape = self.data.shape
        start, end = start_dim % len(shape), end_dim % len(shape)
        new = (*shape[:start], int(np.prod(shape[start : end + 1])), *shape[end + 1 :])
        return self.reshape(new)

    def permute(self, *dims: Any) -> Tensor:
        return _result(self.data.transpose(_shape_arg(dims)))

    def transpose(self, dim0: int, dim1: int) -> Tensor:
        return _result(np.swapaxes(self.data, dim0, dim1))

    def unsqueeze(self, dim: int) -> Tensor:
        return _result(np.expand_dims(self.data, dim))

    def squeeze(self, dim: int | None = None) -> Tensor:
        if dim is None:
            return _result(self.data.squeeze())
        return _result(self.data.squeeze(dim) if self.data.shape[dim] == 1 else self.data)

    def __getitem__(self, index: Any) -> Tensor:
        return _result(self.data[_index_arg(index)])

    def __setitem__(self, index: Any, value: Any) -> None:
        self.data[_index_arg(index)] = _as_array(value)

    # ------------------------------------------------------------------ reductions
    def sum(self, dim: Any = None, keepdim: builtins.bool = False) -> Tensor:
        data = self.data
        if data.dtype.kind in "biu":  # PyTorch sums integers (and bools) in int64
            data = data.astype(_dtypes.int64)
        return _result(data.sum(axis=_dim_arg(dim), keepdims=keepdim))

    def mean(self, dim: Any = None, keepdim: builtins.bool = False) -> Tensor:
        if self.data.dtype.kind not in "fc":
            raise RuntimeError(
                "mean(): could not infer output dtype. Input dtype must be either a floating "
                f"point or complex dtype. Got: {self.data.dtype}"
            )
        out = self.data.mean(axis=_dim_arg(dim), keepdims=keepdim)
        return _result(np.asarray(out, dtype=self.data.dtype))

    def max(self) -> Tensor:
        return _result(self.data.max())

    def min(self) -> Tensor:
        return _result(self.data.min())

    def abs(self) -> Tensor:
        return _result(np.abs(self.data))

    # ------------------------------------------------------------------ arithmetic
    def _binary(self, other: Any, ufunc: np.ufunc, reverse: builtins.bool = False) -> Tensor:
        a, b = self.data, _coerce_operand(other, self.data.dtype)
        return _result(ufunc(b, a) if reverse else ufunc(a, b))

    def __add__(self, other: Any) -> Tensor:
        return self._binary(other, np.add)

    def __radd__(self, other: Any) -> Tensor:
        return self._binary(other, np.add, reverse=True)

    def __sub__(self, other: Any) -> Tensor:
        return self._binary(other, np.subtract)

    def __rsub__(self, other: Any) -> Tensor:
        return self._binary(other, np.subtract, reverse=True)

    def __mul__(self, other: Any) -> Tensor:
        return self._binary(other, np.multiply)

    def __rmul__(self, other: Any) -> Tensor:
        return self._binary(other, np.multiply, reverse=True)

    def __truediv__(self, other: Any) -> Tensor:
        return _true_divide(self.data, _coerce_operand(other, self.data.dtype))

    def __rtruediv__(self, other: Any) -> Tensor:
        return _true_divide(_coerce_operand(other, self.data.dtype), self.data)

    def __pow__(self, other: Any) -> Tensor:
        return self._binary(other, np.power)

    def __matmul__(self, other: Any) -> Tensor:
        return self._binary(other, np.matmul)

    def __rmatmul__(self, other: Any) -> Tensor:
        return self._binary(other, np.matmul, reverse=True)

    def __neg__(self) -> Tensor:
        return _result(-self.data)

    def __eq__(self, other: Any) -> Tensor:  # type: ignore[override]
        return self._binary(other, np.equal)

    def __ne__(self, other: Any) -> Tensor:  # type: ignore[override]
        return self._binary(other, np.not_equal)

    def __lt__(self, other: Any) -> Tensor:
        return self._binary(other, np.less)

    def __le__(self, other: Any) -> Tensor:
        return self._binary(other, np.less_equal)

    def __gt__(self, other: Any) -> Tensor:
        return self._binary(other, np.greater)

    def __ge__(self, other: Any) -> Tensor:
        return self._binary(other, np.greater_equal)

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
        if self.requires_grad:
            extra += ", requires_grad=True"
        return f"tensor({body}{extra})"


def _coerce_operand(value: Any, like: np.dtype) -> Any:
    """Python scalars take the tensor's dtype (PyTorch's type promotion for scalars)."""
    value = _as_array(value)
    if isinstance(value, builtins.bool | builtins.int) and like.kind in "fiu":
        return np.asarray(value, dtype=like) if like.kind != "u" or value >= 0 else value
    if isinstance(value, builtins.float) and like.kind == "f":
        return np.asarray(value, dtype=like)
    if isinstance(value, builtins.float):
        return np.asarray(value, dtype=_dtypes.get_default_dtype())
    return value


def _true_divide(a: Any, b: Any) -> Tensor:
    out = np.true_divide(a, b)
    if out.dtype == _dtypes.float64 and all(
        np.asarray(v).dtype.kind in "biu" for v in (a, b)
    ):  # integer / integer is float32 in PyTorch (the default dtype), not float64
        out = out.astype(_dtypes.get_default_dtype())
    return _result(out)


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
