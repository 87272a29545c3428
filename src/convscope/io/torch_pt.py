"""``load_torch``: read files written by ``torch.save`` without torch and without running them.

``torch.save`` writes a zip archive: ``<name>/data.pkl`` (a pickle of the saved object, whose
tensors refer to storages by key), ``<name>/data/<key>`` (each storage's raw bytes),
``<name>/byteorder`` and ``<name>/version``.  The pickle is read by a restricted unpickler:
``find_class`` only resolves the globals in :data:`ALLOWED_GLOBALS` (tensor and parameter
rebuilders, storage classes, dtypes, ``OrderedDict``, ``torch.Size`` and a few builtin
containers), each mapped to a small function or type this module calls itself; any other
global, and any ``BUILD`` (state setting) other than the ``_metadata`` torch attaches to state
dicts, raises :class:`convscope.io.UnsafeCheckpointError` before it can do anything.

The unpickler also keeps a crafted pickle from crashing Python or taking hours: containers
nested more than :data:`~convscope.io._common.MAX_DEPTH` deep, dicts and sets with many keys
sharing a hash, and keys whose hashing would take too long (tuples nesting shared tuples) are
refused; dicts, lists and sets are only grown by the opcodes meant for them.
"""

from __future__ import annotations

import io
import pickle
import reprlib
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any, ClassVar, NamedTuple

import numpy as np

from ..nn.parameter import Parameter
from ..tensor import Tensor
from ._common import (
    DTYPES,
    MAX_DEPTH,
    Budget,
    CheckpointError,
    FileLike,
    KeyGuard,
    UnsafeCheckpointError,
    checked_shape,
    decode,
    file_size,
    itemsize,
    member,
    open_zip,
    read_member,
    read_metadata,
    reading,
)

_STORAGE_DTYPES = {  # torch's storage classes and the dtype of their elements
    "DoubleStorage": "float64",
    "FloatStorage": "float32",
    "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16",
    "ComplexDoubleStorage": "complex128",
    "ComplexFloatStorage": "complex64",
    "LongStorage": "int64",
    "IntStorage": "int32",
    "ShortStorage": "int16",
    "CharStorage": "int8",
    "ByteStorage": "uint8",
    "BoolStorage": "bool",
    "UntypedStorage": "uint8",  # bytes; the tensor record then names the dtype
}

_CONTAINERS = (list, tuple, dict, set, frozenset)


class _StorageType(NamedTuple):
    dtype: str


class _Storage:
    """One storage record of the archive: its bytes (read once) and their flat arrays by dtype.

    The first tensor that is the whole storage, in order, takes the data over without a copy
    (``claimed``); every other tensor on the storage gets a copy or a read-only view (see
    ``_view``).
    """

    def __init__(self, name: str, raw: np.ndarray, byteorder: str, budget: Budget):
        self.name, self.raw, self.byteorder, self.budget = name, raw, byteorder, budget
        self.flat: dict[str, np.ndarray] = {}
        self.claimed = False

    def values(self, dtype: str) -> np.ndarray:
        if dtype not in self.flat:
            self.flat[dtype] = decode(self.raw, dtype, self.byteorder, self.budget)
        return self.flat[dtype]


class _StorageRef(NamedTuple):
    """A storage as one persistent id names it: with the dtype of its storage class."""

    storage: _Storage
    dtype: str


def _view(
    storage: _Storage, dtype: str, offset: Any, size: Any, stride: Any, flags: set[str]
) -> np.ndarray:
    """The tensor ``(offset, size, stride)`` (in elements) of ``storage``, bounds checked.

    The storage's own array for the first tensor that is all of it, in order; else a copy,
    except for views with more elements than their storage (``expand``, overlapping strides)
    and views whose copy would cross the budget: those stay read-only views of the storage.
    ``flags`` (conj, neg) need a copy of their own, so a flagged view cannot stay a view.
    """
    valid = (
        isinstance(size, tuple)
        and isinstance(stride, tuple)
        and len(size) == len(stride)
        and all(type(n) is int and n >= 0 for n in (offset, *size, *stride))
    )
    if not valid:
        text = reprlib.repr((offset, size, stride))
        raise CheckpointError(f"invalid tensor geometry (offset, size, stride) {text}")
    shape = checked_shape(size)
    flat = storage.values(dtype)
    if 0 in shape:
        return np.zeros(shape, flat.dtype)
    last = offset + sum((n - 1) * s for n, s in zip(shape, stride, strict=True))
    if last >= flat.size:
        raise CheckpointError(
            f"a tensor of size {size}, stride {stride} at offset {offset} runs past the end of "
            f"its storage {storage.name} of {flat.size} elements"
        )
    strides = [s * flat.itemsize for s in stride]
    view = np.lib.stride_tricks.as_strided(flat[offset:], shape, strides, writeable=False)
    whole = offset == 0 and view.size == flat.size and view.flags.c_contiguous
    if whole and not flags and not storage.claimed:
        storage.claimed = True
        return flat.reshape(shape)
    if view.size > flat.size and flags:
        raise CheckpointError(
            f"a {min(flags)} flag on an expanded view of {view.size} elements would need a copy "
            f"far larger than its storage {storage.name} of {flat.size} elements"
        )
    if view.size <= flat.size and (flags or storage.budget.fits(view.nbytes)):
        storage.budget.charge(view.nbytes, f"a tensor of size {size} on {storage.name}")
        return view.copy()
    return view


def _tensor(
    storage: Any, dtype: Any, offset: Any, size: Any, stride: Any, requires_grad: Any, metadata: Any
) -> Tensor:
    if not isinstance(storage, _StorageRef):
        raise CheckpointError("a tensor record without a storage")
    if dtype not in DTYPES and dtype != "bfloat16":
        raise CheckpointError(f"invalid tensor dtype {reprlib.repr(dtype)}")
    if not isinstance(metadata, dict | type(None)):
        raise CheckpointError("invalid tensor metadata")
    unknown = [flag for flag in metadata or {} if flag not in ("conj", "neg")]
    if unknown:
        raise CheckpointError(f"unsupported tensor metadata {reprlib.repr(unknown[0])}")
    flags = {flag for flag, value in (metadata or {}).items() if value}
    array = _view(storage.storage, dtype, offset, size, stride, flags)
    if "conj" in flags:
        np.conjugate(array, out=array)
    if "neg" in flags:
        np.negative(array, out=array)
    return Tensor(array, requires_grad=requires_grad is True)


def _rebuild_tensor_v2(
    storage: Any,
    offset: Any,
    size: Any,
    stride: Any,
    requires_grad: Any,
    backward_hooks: Any,
    metadata: Any = None,
) -> Tensor:
    dtype = getattr(storage, "dtype", None)
    return _tensor(storage, dtype, offset, size, stride, requires_grad, metadata)


def _rebuild_tensor_v3(
    storage: Any,
    offset: Any,
    size: Any,
    stride: Any,
    requires_grad: Any,
    backward_hooks: Any,
    dtype: Any,
    metadata: Any = None,
) -> Tensor:
    if not isinstance(dtype, np.dtype):
        raise CheckpointError(f"invalid tensor dtype {reprlib.repr(dtype)}")
    return _tensor(storage, dtype.name, offset, size, stride, requires_grad, metadata)


def _rebuild_parameter(
    data: Any, requires_grad: Any, backward_hooks: Any, state: Any = None
) -> Parameter:
    if not isinstance(data, Tensor):
        raise CheckpointError("a parameter record without a tensor")
    return Parameter(data.data, requires_grad=requires_grad is True)


def _encode_bytes(text: Any, encoding: Any) -> bytes:
    """``_codecs.encode``, as protocol-2 pickles use it for ``bytes``: latin-1 only."""
    if not (isinstance(text, str) and encoding == "latin1"):
        raise UnsafeCheckpointError("'_codecs.encode' is only allowed to rebuild bytes")
    return text.encode("latin1")


ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor_v3"): _rebuild_tensor_v3,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("collections", "OrderedDict"): OrderedDict,
    ("torch", "Size"): tuple,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "complex"): complex,
    ("_codecs", "encode"): _encode_bytes,
    ("torch.storage", "UntypedStorage"): _StorageType("uint8"),
    **{("torch", name): _StorageType(dtype) for name, dtype in _STORAGE_DTYPES.items()},
    # dtype objects (torch.float32...) load as NumPy dtypes; torch.bfloat16 as float32
    **{("torch", name): np.dtype(name) for name in DTYPES},
    ("torch", "bfloat16"): np.dtype("float32"),
}

_FUNCTIONS = (_rebuild_tensor_v2, _rebuild_tensor_v3, _rebuild_parameter, _encode_bytes)
_COLLECTIONS = (OrderedDict, tuple, set, frozenset)  # built from () or one list/tuple argument
_MAX_PUT = 1 << 32  # memo indices: the binary opcodes cannot write larger ones either

# Bytes of Python objects charged to a budget (upper estimates), so that a pickle of
# one-byte opcodes each making a new object cannot fill memory: per opcode, per key put in a
# dict or set, per tuple recorded (its entry in the table of hashables) and per tuple item.
_OPCODE_BYTES = {
    pickle.EMPTY_LIST: 56,
    pickle.EMPTY_DICT: 64,
    pickle.EMPTY_SET: 216,
    pickle.MARK: 56,
    pickle.BINPUT: 100,
    pickle.LONG_BINPUT: 100,
    pickle.PUT: 100,
    pickle.MEMOIZE: 100,
}
_KEY_BYTES, _TUPLE_BYTES, _ITEM_BYTES = 64, 200, 8


def _hash_cost(value: Any) -> int:
    """Roughly the work of hashing a number or string (strings cache their hash)."""
    return 1 + value.bit_length() // 30 if type(value) is int else 1


def _charged(load: Callable[[Any], None], nbytes: int) -> Callable[[Any], None]:
    """An opcode's handler that first charges ``nbytes`` to the unpickler's budget."""

    def charged(self: Any) -> None:
        self._allocate(nbytes)
        load(self)

    return charged


class _RestrictedUnpickler(pickle._Unpickler):
    """The pure-Python unpickler, with globals, persistent ids and every building opcode checked.

    The pure-Python class is used because its opcode table can be overridden.  Tuples and
    frozensets (the hashable containers) are recorded when built with their depth and the work
    of hashing them, so that no key can make hashing recurse too deep or run too long.
    """

    dispatch: ClassVar[dict[int, Any]] = dict(pickle._Unpickler.dispatch)

    def __init__(
        self,
        data: bytes,
        archive: zipfile.ZipFile,
        prefix: str,
        byteorder: str,
        budget: Budget,
    ):
        super().__init__(io.BytesIO(data))
        self._archive, self._prefix, self._byteorder = archive, prefix, byteorder
        self._budget = budget  # for array data
        self._objects = Budget(budget.size)  # for the Python objects the pickle builds
        self._storages: dict[str, _Storage] = {}
        self._hashables: dict[int, tuple[Any, int, int]] = {}  # id -> (object, depth, cost)
        self._guards: dict[int, tuple[Any, KeyGuard]] = {}  # id -> (dict or set, its guard)
        self._hash_work = 0
        self._max_hash_work = 10_000_000 + 16 * len(data)

    # ---------------------------------------------------------------- globals and storages
    def find_class(self, module: str, name: str) -> Any:
        module = "builtins" if module == "__builtin__" else module
        if (module, name) not in ALLOWED_GLOBALS:
            raise UnsafeCheckpointError(
                f"refusing to load '{module[:100]}.{name[:100]}': only tensors, numbers, "
                "strings and plain containers can be loaded (nothing from the file was run)"
            )
        return ALLOWED_GLOBALS[module, name]

    def persistent_load(self, pid: Any) -> _StorageRef:
        match pid:
            case ("storage", _StorageType(dtype=dtype), str(key), _, int(numel)):
                pass
            case _:
                raise UnsafeCheckpointError(f"unsupported persistent id {reprlib.repr(pid)}")
        name = f"{self._prefix}data/{key}"
        storage = self._storages.get(key)
        if storage is None:
            info = member(self._archive, name, "storage record")
            size = info.file_size
        else:
            size = storage.raw.size
        expected = numel * itemsize(dtype)
        if size != expected:
            raise CheckpointError(
                f"storage {name} has {size} bytes, expected {expected} (truncated or corrupt)"
            )
        if storage is None:
            raw = read_member(self._archive, info, self._budget)
            storage = self._storages[key] = _Storage(name, raw, self._byteorder, self._budget)
        return _StorageRef(storage, dtype)

    # ---------------------------------------------------------------- hashing and nesting
    def _shape(self, value: Any) -> tuple[int, int]:
        """(depth, hashing work) of ``value``: only tuples and frozensets nest when hashed."""
        if type(value) is tuple or type(value) is frozenset:
            entry = self._hashables.get(id(value))
            if entry is not None and entry[0] is value:
                return entry[1], entry[2]
            return self._record(value)[1:]
        return 0, _hash_cost(value)

    def _allocate(self, nbytes: int) -> None:
        """Charge ``nbytes`` of Python objects built by the pickle to their own budget."""
        budget = self._objects
        if not budget.fits(nbytes):
            raise CheckpointError(
                f"the pickle builds more objects than a file of {budget.size} bytes may "
                f"({budget.limit} bytes: 16 x its size, at least 64 MiB)"
            )
        budget.used += nbytes

    def _record(self, value: Any) -> tuple[Any, int, int]:
        """Record a new tuple or frozenset from its items, which were all recorded before."""
        self._allocate(_TUPLE_BYTES + _ITEM_BYTES * len(value))
        depth, cost = 1, 1
        for item in value:
            item_depth, item_cost = self._shape(item)
            depth, cost = max(depth, item_depth + 1), cost + item_cost
        if depth > MAX_DEPTH:
            raise CheckpointError(f"containers nested more than {MAX_DEPTH} levels deep")
        entry = (value, depth, min(cost, 1 << 62))
        if value:
            self._hashables[id(value)] = entry
        return entry

    def _hashing(self, keys: Iterable[Any], guard: KeyGuard) -> None:
        """Check that ``keys`` can be hashed quickly, before they are put in a dict or set."""
        for key in keys:
            self._allocate(_KEY_BYTES)
            self._hash_work += self._shape(key)[1]
            if self._hash_work > self._max_hash_work:
                raise CheckpointError(
                    "hashing the keys of this pickle would take too long (crafted keys?)"
                )
            guard.add(key)

    def _guard(self, target: Any) -> KeyGuard:
        entry = self._guards.get(id(target))
        if entry is None or entry[0] is not target:
            guard = KeyGuard()
            self._hashing(target, guard)
            entry = self._guards[id(target)] = (target, guard)
        return entry[1]

    def _target(self, kind: type | tuple[type, ...], opcode: str) -> Any:
        target = self.stack[-1]
        if type(target) not in (kind if isinstance(kind, tuple) else (kind,)):
            raise UnsafeCheckpointError(f"refusing {opcode} on a {type(target).__name__} object")
        return target

    # ---------------------------------------------------------------- building opcodes
    def _load_setitems(self, items: list[Any]) -> None:
        target = self._target((dict, OrderedDict), "SETITEMS")
        if len(items) % 2:
            raise CheckpointError("SETITEMS with an odd number of items")
        self._hashing(items[::2], self._guard(target))
        for i in range(0, len(items), 2):
            target[items[i]] = items[i + 1]

    def _load_setitem(self) -> None:
        value, key = self.stack.pop(), self.stack.pop()
        self._load_setitems([key, value])

    def _load_setitems_mark(self) -> None:
        self._load_setitems(self.pop_mark())

    def _load_additems(self) -> None:
        items = self.pop_mark()
        target = self._target(set, "ADDITEMS")
        self._hashing(items, self._guard(target))
        target.update(items)

    def _load_append(self) -> None:
        value = self.stack.pop()
        self._target(list, "APPEND").append(value)

    def _load_appends(self) -> None:
        items = self.pop_mark()
        self._target(list, "APPENDS").extend(items)

    def _load_dict(self) -> None:
        items = self.pop_mark()
        if len(items) % 2:
            raise CheckpointError("DICT with an odd number of items")
        self._hashing(items[::2], KeyGuard())
        self.append(dict(zip(items[::2], items[1::2], strict=True)))

    def _load_frozenset(self) -> None:
        items = self.pop_mark()  # before looking up self.append: pop_mark replaces it
        self.append(self._build(frozenset, items))

    def _load_tuple(self) -> None:
        items = self.pop_mark()
        self.append(self._build(tuple, items))

    def _load_tuple_of(self, n: int) -> None:
        if len(self.stack) < n:
            raise CheckpointError("a tuple opcode on a short stack")
        items = self.stack[-n:]
        del self.stack[-n:]
        self.append(self._build(tuple, items))

    def _build(self, kind: type, items: Any) -> Any:
        """A new ``kind`` (OrderedDict, tuple, set or frozenset) of ``items`` (a list or tuple)."""
        if type(items) not in (list, tuple):
            raise CheckpointError(f"{kind.__name__} of a {type(items).__name__}, not a list")
        if kind is OrderedDict:
            if not all(type(pair) in (list, tuple) and len(pair) == 2 for pair in items):
                raise CheckpointError("OrderedDict of something else than key-value pairs")
            self._hashing((key for key, _ in items), KeyGuard())
        elif kind is not tuple:
            self._hashing(items, KeyGuard())
        result = kind(items)
        if kind is tuple or kind is frozenset:
            self._record(result)
        return result

    def _call(self, func: Any, args: Any) -> Any:
        """``func(*args)`` for the callables of ALLOWED_GLOBALS, whatever opcode asks."""
        if type(args) not in (tuple, list):
            raise CheckpointError(f"call arguments in a {type(args).__name__}, not a tuple")
        if any(func is f for f in _FUNCTIONS):
            return func(*args)
        if any(func is kind for kind in _COLLECTIONS):
            if len(args) > 1:
                raise CheckpointError(f"{func.__name__} with {len(args)} arguments")
            return self._build(func, args[0] if args else ())
        if func is complex:
            if len(args) > 2 or not all(type(a) in (int, float) for a in args):
                raise CheckpointError("complex of something else than two numbers")
            return complex(*args)
        raise UnsafeCheckpointError(f"refusing to call a {type(func).__name__} object")

    def _load_reduce(self) -> None:
        args = self.stack.pop()
        self.stack[-1] = self._call(self.stack[-1], args)

    def _load_newobj(self) -> None:
        args = self.stack.pop()
        self.stack[-1] = self._call(self.stack[-1], args)

    def _load_newobj_ex(self) -> None:
        kwargs, args = self.stack.pop(), self.stack.pop()
        if kwargs:
            raise CheckpointError("keyword arguments in a pickle are not supported")
        self.stack[-1] = self._call(self.stack[-1], args)

    def _load_obj(self) -> None:
        args = self.pop_mark()
        if not args:
            raise CheckpointError("OBJ without a class")
        self.append(self._call(args[0], args[1:]))

    def _load_inst(self) -> None:
        module = self.readline()[:-1].decode("ascii")
        name = self.readline()[:-1].decode("ascii")
        func = self.find_class(module, name)
        args = self.pop_mark()
        self.append(self._call(func, args))

    def _load_put(self) -> None:
        index = int(self.readline()[:-1])
        if not 0 <= index < _MAX_PUT:
            raise CheckpointError(f"memo index {reprlib.repr(index)} out of range")
        self.memo[index] = self.stack[-1]

    def _load_build(self) -> None:
        state = self.stack.pop()
        target = self.stack[-1]
        if not (
            type(target) is OrderedDict
            and type(state) is dict
            and all(type(k) is str for k in state)
        ):
            raise UnsafeCheckpointError(
                f"refusing to set the state of a {type(target).__name__} object"
            )
        vars(target).update(state)  # torch's state dicts carry `_metadata` this way

    dispatch[pickle.SETITEM[0]] = _load_setitem
    dispatch[pickle.SETITEMS[0]] = _load_setitems_mark
    dispatch[pickle.ADDITEMS[0]] = _load_additems
    dispatch[pickle.APPEND[0]] = _load_append
    dispatch[pickle.APPENDS[0]] = _load_appends
    dispatch[pickle.DICT[0]] = _load_dict
    dispatch[pickle.FROZENSET[0]] = _load_frozenset
    dispatch[pickle.TUPLE[0]] = _load_tuple
    dispatch[pickle.REDUCE[0]] = _load_reduce
    dispatch[pickle.NEWOBJ[0]] = _load_newobj
    dispatch[pickle.NEWOBJ_EX[0]] = _load_newobj_ex
    dispatch[pickle.OBJ[0]] = _load_obj
    dispatch[pickle.INST[0]] = _load_inst
    dispatch[pickle.PUT[0]] = _load_put
    dispatch[pickle.BUILD[0]] = _load_build
    dispatch[pickle.TUPLE1[0]] = lambda self: self._load_tuple_of(1)
    dispatch[pickle.TUPLE2[0]] = lambda self: self._load_tuple_of(2)
    dispatch[pickle.TUPLE3[0]] = lambda self: self._load_tuple_of(3)
    for _opcode, _nbytes in _OPCODE_BYTES.items():
        dispatch[_opcode[0]] = _charged(dispatch[_opcode[0]], _nbytes)
    del _opcode, _nbytes


def _children(value: Any) -> Iterable[Any]:
    if isinstance(value, dict):
        extra = vars(value).values() if type(value) is OrderedDict else ()
        return [*value.keys(), *value.values(), *extra]
    return value


def _check_nesting(root: Any) -> None:
    """Refuse ``root`` if containers nest in it more than MAX_DEPTH deep.

    Tuples were checked as they were built, but lists, dicts and sets can be filled after they
    were put into others; this walk, without recursion, sees the final structure.  Each
    container is measured once (shared ones too); a cycle back into the current chain adds
    nothing.
    """
    if not isinstance(root, _CONTAINERS):
        return
    heights: dict[int, int] = {}
    chain = [(root, iter(_children(root)), 1)]
    on_chain = {id(root)}
    while chain:
        value, children, height = chain[-1]
        for child in children:
            if not isinstance(child, _CONTAINERS) or id(child) in on_chain:
                continue
            known = heights.get(id(child))
            if known is None:
                if len(chain) >= MAX_DEPTH:
                    raise CheckpointError(f"containers nested more than {MAX_DEPTH} levels deep")
                chain[-1] = (value, children, height)
                chain.append((child, iter(_children(child)), 1))
                on_chain.add(id(child))
                break
            height = max(height, known + 1)
        else:
            chain.pop()
            on_chain.discard(id(value))
            heights[id(value)] = height
            if height > MAX_DEPTH:
                raise CheckpointError(f"containers nested more than {MAX_DEPTH} levels deep")
            if chain:
                parent, siblings, parent_height = chain[-1]
                chain[-1] = (parent, siblings, max(parent_height, height + 1))


def load_torch(f: FileLike) -> Any:
    """Load a file written by ``torch.save`` (zip format, torch >= 1.6) without torch.

    Nothing in the file is executed: the pickle is read by a restricted unpickler that only
    rebuilds tensors, parameters and plain containers (dict, ``OrderedDict`` with its
    ``_metadata``, list, tuple, set, ``torch.Size`` as tuple, numbers, strings, bytes, None).
    dtypes: float16/32/64, complex64/128, int8...int64, uint8...uint64 and bool keep their
    dtype; **bfloat16 loads as float32**, exactly (NumPy has no bfloat16; a bfloat16 is the top
    16 bits of a float32), and ``torch.bfloat16`` dtype values load as ``numpy.float32``.

    Tensors become ``Tensor`` (``nn.Parameter`` stays a ``Parameter``) holding their own,
    writable, C-contiguous data: a tensor that is a whole storage takes over the bytes read from
    the file (no copy), other views (transposes, slices, offsets) are copied, and tensors that
    shared a storage no longer share memory.  Two kinds of views stay **read-only** NumPy views
    of their storage instead, after checking that every element they reach lies inside it
    (``offset + sum((size - 1) * stride) < storage size``, no negative sizes or strides):

    * views with more elements than their storage (``expand``, stride 0, overlapping strides):
      a copy could be many times the file's size;
    * views whose copy would make the load allocate more than its budget of
      ``max(64 MiB, 16 x file size)`` bytes of array data (say one storage viewed by thousands
      of tensors).

    Reading them, arithmetic and ``Module.load_state_dict`` (which copies) work; writing into
    them raises ``ValueError``; like torch's views, they show later writes into the tensor that
    took their storage over.  The same budget bounds everything a load allocates: storages
    must be exactly as large as their records say, compressed members count once unpacked (zip
    bombs are refused before they are unpacked), bfloat16 widening and copies count too.

    Any other global (``os.system``, ``builtins.eval``, custom classes, quantized or sparse
    tensors...) raises :class:`convscope.io.UnsafeCheckpointError` (a ``CheckpointError`` and a
    ``pickle.UnpicklingError``) naming it.  Legacy (non-zip) files, corrupt, truncated or
    crafted files (containers nested more than 1000 deep, many dict keys sharing a hash, zip
    bombs) raise :class:`convscope.io.CheckpointError` naming the file and the problem.

    With PyTorch, ``torch.save(model.state_dict(), "model.pt")``, then without it::

        model.load_state_dict(cs.load_torch("model.pt"))

    >>> import io
    >>> import convscope as cs
    >>> legacy = io.BytesIO(b"\\x80\\x02\\x8a\\x0al\\xfc\\x9cF\\xf9 j\\xa8P\\x19.")
    >>> try:
    ...     cs.load_torch(legacy)
    ... except cs.io.CheckpointError as error:
    ...     print(error)
    <BytesIO>: a legacy (non-zip) torch.save file: not supported; re-save it with torch.save
    """
    with reading(f, "torch.save file"):
        budget = Budget(file_size(f))
        with open_zip(f) as archive:
            names = archive.namelist()
            pickles = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
            if len(pickles) != 1:
                raise CheckpointError("not a torch.save archive (no <name>/data.pkl)")
            prefix = pickles[0][: -len("data.pkl")]
            byteorder = "little"
            if f"{prefix}byteorder" in archive.NameToInfo:
                info = archive.getinfo(f"{prefix}byteorder")
                if info.file_size > 16:
                    raise CheckpointError(f"{info.filename} is {info.file_size} bytes long")
                byteorder = read_metadata(archive, info, budget).decode("ascii")
            if byteorder not in ("little", "big"):
                raise CheckpointError(f"unknown byte order {byteorder!r}")
            data = read_metadata(archive, archive.getinfo(pickles[0]), budget)
            result = _RestrictedUnpickler(data, archive, prefix, byteorder, budget).load()
        _check_nesting(result)
        return result
