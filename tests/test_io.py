"""Checkpoints: ``cs.save``/``cs.load``, safetensors, and ``cs.load_torch`` on real torch files."""

from __future__ import annotations

import io
import json
import math
import os
import pickle
import re
import struct
import zipfile
from collections import OrderedDict

import numpy as np
import pytest

import convscope as cs
from convscope.io import CheckpointError, UnsafeCheckpointError, load_safetensors, save_safetensors

torch = pytest.importorskip("torch")

DTYPES = ["bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64"]
DTYPES += ["float16", "float32", "float64", "complex64", "complex128"]


def sample(dtype: str, shape=(2, 3)) -> np.ndarray:
    values = np.arange(-3, math.prod(shape) - 3).reshape(shape)
    if dtype == "bool":
        return values % 2 == 0
    if dtype.startswith("complex"):
        return (values + 0.5j * values).astype(dtype)
    return (values * (1.25 if dtype.startswith("float") else 1)).astype(dtype)


def assert_same(got, expected) -> None:
    """Same type, same structure, same values and dtypes (NaN equal to NaN)."""
    assert type(got) is type(expected)
    if isinstance(expected, cs.Tensor | np.ndarray | np.generic):
        got, expected = np.asarray(got), np.asarray(expected)
        assert got.dtype == expected.dtype and got.shape == expected.shape
        np.testing.assert_array_equal(got, expected)
    elif isinstance(expected, dict):
        assert list(got) == list(expected)
        for key in expected:
            assert_same(got[key], expected[key])
    elif isinstance(expected, list | tuple):
        assert len(got) == len(expected)
        for a, b in zip(got, expected, strict=True):
            assert_same(a, b)
    elif isinstance(expected, float) and math.isnan(expected):
        assert math.isnan(got)
    else:
        assert got == expected


# ---------------------------------------------------------------- cs.save / cs.load


def roundtrip(obj, tmp_path):
    path = tmp_path / "ckpt.cs"
    cs.save(obj, path)
    return cs.load(path)


@pytest.mark.parametrize("dtype", DTYPES)
def test_save_load_roundtrip_every_dtype(dtype, tmp_path):
    array = sample(dtype)
    obj = {
        "tensor": cs.Tensor(array),
        "transposed": cs.Tensor(array.T),  # non-contiguous
        "empty": cs.Tensor(np.zeros((0, 4), dtype)),
        "scalar_tensor": cs.Tensor(array[1, 2]),
        "ndarray": array[:, ::2],
        "big_endian": array.astype(np.dtype(dtype).newbyteorder(">")),
        "numpy_scalar": array[1, 1],
    }
    loaded = roundtrip(obj, tmp_path)
    obj["big_endian"] = obj["big_endian"].astype(dtype)  # comes back in native order
    assert_same(loaded, obj)
    assert loaded["tensor"].data.flags.writeable


def test_save_load_nested_structures(tmp_path):
    state = OrderedDict([("z.weight", cs.rand(2, 2)), ("a.bias", cs.zeros(2))])
    obj = {
        "model": state,
        "optimizer": {"state": {0: {"step": 3, "momentum": cs.ones(2)}}, "groups": [{"lr": 0.1}]},
        "history": [1.5, float("nan"), float("inf"), -float("inf"), 2**70, -7],
        "flags": (True, False, None, ("nested", ["deeper", (cs.tensor([1, 2]),)])),
        "text": "päth ✓",
        "weight": cs.nn.Parameter(cs.ones(3)),
        "frozen": cs.nn.Parameter(cs.ones(1), requires_grad=False),
        "grad": cs.ones(2, requires_grad=True),
        None: 0,
        2.5: "float key",
        "": [],
        "e": {},
    }
    loaded = roundtrip(obj, tmp_path)
    assert_same(loaded, obj)
    assert type(loaded["model"]) is OrderedDict and list(loaded["model"]) == ["z.weight", "a.bias"]
    assert [loaded["weight"].requires_grad, loaded["frozen"].requires_grad] == [True, False]
    assert loaded["grad"].requires_grad and not loaded["model"]["a.bias"].requires_grad


def test_save_load_state_dict_into_module(tmp_path):
    cs.manual_seed(0)
    conv = cs.nn.Conv2d(3, 4, 3, padding=1)
    x = cs.rand(2, 3, 5, 5)
    fresh = cs.nn.Conv2d(3, 4, 3, padding=1)
    fresh.load_state_dict(roundtrip(conv.state_dict(), tmp_path))
    np.testing.assert_array_equal(fresh(x).numpy(), conv(x).numpy())


def test_save_is_deterministic(tmp_path):
    obj = {"w": cs.ones(3), "n": [1, 2.0]}
    cs.save(obj, tmp_path / "a")
    cs.save(obj, tmp_path / "b")
    assert (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes()


def test_save_format_is_plain_json_and_bytes(tmp_path):
    cs.save({"w": cs.tensor([1.0, 2.0])}, tmp_path / "c")
    with zipfile.ZipFile(tmp_path / "c") as archive:
        index = json.loads(archive.read("checkpoint.json"))
        assert index == {
            "format": "convscope.checkpoint",
            "version": 1,
            "root": {
                "type": "dict",
                "items": [
                    [
                        "w",
                        {
                            "type": "tensor",
                            "data": "arrays/0",
                            "dtype": "float32",
                            "shape": [2],
                            "requires_grad": False,
                        },
                    ]
                ],
            },
        }
        assert archive.read("arrays/0") == struct.pack("<2f", 1.0, 2.0)


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        (object(), "type object"),
        ({"a": {1, 2}}, r"type set \(at obj\['a'\]\)"),
        ({(1, 2): cs.ones(1)}, "dict key of type tuple"),
        ([np.array(["x"])], "dtype <U1"),
        (np.array([1.0], dtype=np.longdouble), "dtype float128"),
        (cs.nn.Conv1d(1, 1, 1), "save its state_dict"),
    ],
)
def test_save_refuses_other_objects(obj, message, tmp_path):
    with pytest.raises(TypeError, match=message):
        cs.save(obj, tmp_path / "x")
    assert not (tmp_path / "x").exists()


def write_zip(path, members: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def index(root) -> bytes:
    return json.dumps({"format": "convscope.checkpoint", "version": 1, "root": root}).encode()


ARRAY = {"type": "ndarray", "data": "arrays/0", "dtype": "float32", "shape": [3]}
PAYLOAD = {"arrays/0": b"\0" * 12}


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ({"checkpoint.json": b"{not json"}, "corrupt or truncated convscope checkpoint"),
        ({"checkpoint.json": b'{"format": "other"}'}, "no format tag"),
        ({"other.txt": b""}, "no checkpoint.json"),
        ({"a/data.pkl": b""}, "PyTorch file: load it with convscope.load_torch"),
        ({"checkpoint.json": index({"type": "module"})}, "unrecognised node"),
        ({"checkpoint.json": index(ARRAY), "arrays/0": b"\0" * 8}, "expected 12 bytes .* found 8"),
        ({"checkpoint.json": index(ARRAY)}, "arrays/0"),
        (
            {"checkpoint.json": index({**ARRAY, "dtype": "object"}), **PAYLOAD},
            "unsupported dtype 'object'",
        ),
        ({"checkpoint.json": index({**ARRAY, "shape": [-3]}), **PAYLOAD}, "invalid shape"),
        ({"checkpoint.json": index({**ARRAY, "data": "../x"})}, "outside arrays/"),
    ],
)
def test_load_rejects_bad_checkpoints(members, message, tmp_path):
    path = tmp_path / "bad.ckpt"
    write_zip(path, members)
    with pytest.raises(CheckpointError, match=message) as error:
        cs.load(path)
    assert str(path) in str(error.value)


def test_load_rejects_truncated_and_corrupt_files(tmp_path):
    path = tmp_path / "ckpt"
    cs.save({"w": cs.arange(1000).float()}, path)
    data = path.read_bytes()
    for cut in (0, 10, len(data) // 2, len(data) - 1):
        path.write_bytes(data[:cut])
        with pytest.raises(
            CheckpointError, match=f"{re.escape(str(path))}: .*(not a zip|truncated)"
        ):
            cs.load(path)
    corrupt = bytearray(data)
    corrupt[data.index(struct.pack("<f", 500.0))] ^= 0xFF  # a byte of the array payload
    path.write_bytes(bytes(corrupt))
    with pytest.raises(CheckpointError, match="CRC"):
        cs.load(path)
    with pytest.raises(FileNotFoundError):
        cs.load(tmp_path / "missing")


# ---------------------------------------------------------------- safetensors


def spec_file(header: dict, data: bytes, pad: bool = True) -> bytes:
    """A safetensors file built by hand from the format description."""
    text = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def test_safetensors_writer_matches_reference_bytes(tmp_path):
    # the reference implementation's own test vectors (safetensors/src/tensor.rs)
    values = np.arange(6, dtype=np.float32)
    save_safetensors({"attn0": values.reshape(1, 1, 2, 3)}, tmp_path / "a")
    expected = (
        struct.pack("<Q", 72)
        + b'{"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}}'
        + b" " * 7
        + values.tobytes()
    )
    assert (tmp_path / "a").read_bytes() == expected
    save_safetensors({}, tmp_path / "empty")
    assert (tmp_path / "empty").read_bytes() == bytes([8, 0, 0, 0, 0, 0, 0, 0]) + b"{}      "
    save_safetensors({}, tmp_path / "meta", metadata={"framework": "pt"})
    assert (tmp_path / "meta").read_bytes() == (
        struct.pack("<Q", 40) + b'{"__metadata__":{"framework":"pt"}}' + b" " * 5
    )


def test_safetensors_writer_orders_like_reference(tmp_path):
    tensors = {"b": np.ones(3, np.uint8), "a": np.ones(2, np.float16), "c": np.ones(1, np.int64)}
    tensors["z"] = np.zeros((2, 2), np.float64)
    save_safetensors(tensors, tmp_path / "t")
    header = {  # decreasing alignment (I64 > F64 > F16 > U8), then name
        "c": {"dtype": "I64", "shape": [1], "data_offsets": [0, 8]},
        "z": {"dtype": "F64", "shape": [2, 2], "data_offsets": [8, 40]},
        "a": {"dtype": "F16", "shape": [2], "data_offsets": [40, 44]},
        "b": {"dtype": "U8", "shape": [3], "data_offsets": [44, 47]},
    }
    data = b"".join(tensors[k].tobytes() for k in header)
    assert (tmp_path / "t").read_bytes() == spec_file(header, data)


@pytest.mark.parametrize("dtype", [d for d in DTYPES if not d.startswith("complex")])
def test_safetensors_roundtrip(dtype, tmp_path):
    arrays = {"x": sample(dtype), "t": sample(dtype, (4,))[::2], "0d": sample(dtype, ())}
    arrays["empty"] = np.zeros((0, 2), dtype)
    save_safetensors({k: cs.Tensor(v) for k, v in arrays.items()}, tmp_path / "f.safetensors")
    loaded = load_safetensors(tmp_path / "f.safetensors")
    assert sorted(loaded) == sorted(arrays)
    for name, array in arrays.items():
        assert_same(loaded[name], cs.Tensor(array))


def test_safetensors_reads_hand_written_file():
    bf16 = torch.tensor([1.0, -2.5, 3.140625, 1e30], dtype=torch.bfloat16)
    header = {
        "__metadata__": {"format": "pt"},
        "w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [8, 24]},
        "b": {"dtype": "BF16", "shape": [4], "data_offsets": [0, 8]},
        "i": {"dtype": "I16", "shape": [], "data_offsets": [24, 26]},
    }
    w = np.array([[1, 2], [3, 4]], "<f4")
    data = bf16.view(torch.int16).numpy().astype("<i2").tobytes() + w.tobytes() + b"\x07\x00"
    for pad in (True, False):
        loaded = load_safetensors(io.BytesIO(spec_file(header, data, pad)))
        assert list(loaded) == ["w", "b", "i"]
        assert_same(loaded["w"], cs.Tensor(w.astype(np.float32)))
        assert_same(loaded["b"], cs.Tensor(bf16.float().numpy()))
        assert_same(loaded["i"], cs.Tensor(np.int16(7)))


def test_safetensors_write_errors(tmp_path):
    with pytest.raises(TypeError, match="no dtype for complex64"):
        save_safetensors({"c": np.ones(2, np.complex64)}, tmp_path / "x")
    with pytest.raises(TypeError, match="metadata"):
        save_safetensors({}, tmp_path / "x", metadata={"epoch": 3})
    with pytest.raises(TypeError, match="tensor name"):
        save_safetensors({"__metadata__": np.ones(1)}, tmp_path / "x")


F32 = {"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "too short"),
        (b"\x10\x00\x00", "too short"),
        (struct.pack("<Q", 2**40), "too large"),
        (struct.pack("<Q", 64) + b"{}", "cut short"),
        (spec_file({}, b"")[:8] + b"{oops}  ", "corrupt or truncated safetensors file"),
        (spec_file(F32, b"\0" * 4), "tensor 'x': expected 8 bytes of float32 .* found 4"),
        (spec_file({"x": {**F32["x"], "dtype": "F8_E4M3"}}, b"\0" * 8), "unsupported dtype"),
        (spec_file({"x": {**F32["x"], "data_offsets": [8, 0]}}, b"\0" * 8), "invalid data offset"),
        (spec_file({"x": {**F32["x"], "shape": [1, -2]}}, b"\0" * 8), "invalid shape"),
        (spec_file([1], b""), "not a JSON object"),
    ],
)
def test_safetensors_read_errors(data, message, tmp_path):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(data)
    with pytest.raises(CheckpointError, match=message) as error:
        load_safetensors(path)
    assert str(path) in str(error.value)


# ---------------------------------------------------------------- load_torch


def torch_roundtrip(obj, tmp_path, **kwargs):
    path = tmp_path / "obj.pt"
    torch.save(obj, path, **kwargs)
    return cs.load_torch(path)


def as_numpy(t):
    return t.detach().float().numpy() if t.dtype == torch.bfloat16 else t.detach().numpy()


@pytest.mark.parametrize(
    "make",
    [
        lambda: torch.nn.Conv2d(3, 4, 3),
        lambda: torch.nn.Conv1d(4, 6, 5, stride=2, padding=2, groups=2),
        lambda: torch.nn.ConvTranspose2d(4, 2, 3, stride=2, bias=False),
        lambda: torch.nn.Conv3d(2, 3, 2, dilation=2, padding_mode="circular", padding=1),
    ],
)
def test_torch_trained_state_dict_gives_torch_outputs(make, tmp_path):
    torch.manual_seed(0)
    layer = make()
    dims = layer.weight.dim() - 2
    x = torch.randn(2, layer.in_channels, *[9] * dims)
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.1)
    for _ in range(3):  # train a little, so the weights are not torch's initialisation
        optimizer.zero_grad()
        layer(x).square().mean().backward()
        optimizer.step()
    path = tmp_path / "model.pt"
    torch.save(layer.state_dict(), path)

    ours = getattr(cs.nn, type(layer).__name__)(
        layer.in_channels,
        layer.out_channels,
        layer.kernel_size,
        stride=layer.stride,
        padding=layer.padding,
        dilation=layer.dilation,
        groups=layer.groups,
        bias=layer.bias is not None,
        padding_mode=layer.padding_mode,
    )
    state = cs.load_torch(path)
    assert type(state) is OrderedDict and state._metadata[""]["version"] == 1
    ours.load_state_dict(state)
    with torch.no_grad():
        expected = layer(x).numpy()
    np.testing.assert_allclose(ours(cs.Tensor(x.numpy())).numpy(), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "dtype",
    [
        *(torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.complex64),
        *(torch.complex128, torch.int8, torch.uint8, torch.int16, torch.int32, torch.int64),
        *(torch.bool, torch.uint16, torch.uint32, torch.uint64),
    ],
)
def test_torch_dtypes_and_views(dtype, tmp_path):
    base = (torch.arange(60, dtype=torch.float64).reshape(3, 4, 5) * 1.37 - 30).to(dtype)
    views = {
        "base": base,
        "transposed": base[0].t(),
        "permuted": base.permute(2, 0, 1),
        "offset_slice": base[1:, 2:, 1:4],
        "step": base[::2],
        "strided": base[:, ::3, ::2],
        "expanded": base[0, :1, :1].expand(4, 6),
        "element": base[2, 3, 4],
        "empty": base[:, 4:],
        "clone": base[1].clone(),
    }
    loaded = torch_roundtrip(views, tmp_path)
    assert list(loaded) == list(views)
    for name, view in views.items():
        expected = as_numpy(view)
        assert loaded[name].dtype == expected.dtype, name
        np.testing.assert_array_equal(loaded[name].numpy(), expected, err_msg=name)
        assert loaded[name].data.flags.writeable and loaded[name].data.flags.c_contiguous


def test_torch_bfloat16_is_exact(tmp_path):
    values = torch.randn(1000).bfloat16()
    values[:4] = torch.tensor([float("inf"), -float("inf"), float("nan"), -0.0])
    loaded = torch_roundtrip({"v": values}, tmp_path)["v"]
    assert loaded.dtype == np.float32
    np.testing.assert_array_equal(
        loaded.numpy().view(np.uint32), values.float().numpy().view(np.uint32)
    )


def test_torch_shared_storage(tmp_path):
    base = torch.arange(24.0)
    a, b = base[:12].view(3, 4), base[6:].view(2, 9)
    loaded = torch_roundtrip({"a": a, "b": b, "again": a, "base": base}, tmp_path)
    for name, t in (("a", a), ("b", b), ("again", a), ("base", base)):
        np.testing.assert_array_equal(loaded[name].numpy(), t.numpy())
    loaded["a"].data[0, 0] = 100  # loaded tensors own their data
    assert loaded["base"].numpy()[0] == 0


def test_torch_nested_containers_and_numbers(tmp_path):
    obj = {
        "list": [1, 2.5, "s", None, True, (torch.ones(2), [torch.zeros(1, dtype=torch.int64)])],
        "tuple": (torch.tensor(3.5),),
        "nested": {"a": {"b": {"c": torch.eye(2)}}, 7: "int key"},
        "size": torch.Size([2, 3]),
        "bytes": b"\x00\xffabc",
        "set": {1, 2},
        "complex": 1 + 2j,
        "dtype": torch.float16,
        "big": 2**80,
    }
    for protocol in (2, 4):
        loaded = torch_roundtrip(obj, tmp_path, pickle_protocol=protocol)
        assert loaded["list"][:5] == [1, 2.5, "s", None, True]
        np.testing.assert_array_equal(loaded["list"][5][0].numpy(), np.ones(2, np.float32))
        assert loaded["list"][5][1][0].dtype == np.int64
        assert type(loaded["tuple"]) is tuple and loaded["tuple"][0].item() == 3.5
        np.testing.assert_array_equal(loaded["nested"]["a"]["b"]["c"].numpy(), np.eye(2))
        assert loaded["nested"][7] == "int key"
        assert loaded["size"] == (2, 3) and type(loaded["size"]) is tuple
        assert loaded["bytes"] == b"\x00\xffabc" and loaded["set"] == {1, 2}
        assert loaded["complex"] == 1 + 2j and loaded["dtype"] == np.float16
        assert loaded["big"] == 2**80


def test_torch_parameters_and_requires_grad(tmp_path):
    obj = {
        "param": torch.nn.Parameter(torch.ones(2)),
        "frozen": torch.nn.Parameter(torch.ones(2), requires_grad=False),
        "leaf": torch.ones(2, requires_grad=True),
        "plain": torch.ones(2),
    }
    loaded = torch_roundtrip(obj, tmp_path)
    assert isinstance(loaded["param"], cs.nn.Parameter) and loaded["param"].requires_grad
    assert isinstance(loaded["frozen"], cs.nn.Parameter) and not loaded["frozen"].requires_grad
    assert loaded["leaf"].requires_grad and not loaded["plain"].requires_grad


def test_torch_from_file_object(tmp_path):
    model = torch.nn.Conv2d(2, 2, 1)
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    state = cs.load_torch(buffer)
    np.testing.assert_array_equal(state["weight"].numpy(), model.weight.detach().numpy())


# ---------------------------------------------------------------- hand-made torch archives


class Storage(tuple):
    """A persistent id as torch writes it: ('storage', storage class, key, location, numel)."""


class Record:
    """Pickles as ``func(*args)``: lets a test write any tensor record torch's loader would see."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


class _Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        return tuple(obj) if isinstance(obj, Storage) else None


def write_torch_archive(path, obj, storages=(), byteorder=b"little", protocol=2) -> None:
    data = io.BytesIO()
    _Pickler(data, protocol=protocol).dump(obj)
    members = {"archive/data.pkl": data.getvalue(), "archive/byteorder": byteorder}
    members.update({f"archive/data/{i}": raw for i, raw in enumerate(storages)})
    members["archive/version"] = b"3\n"
    write_zip(path, members)


def tensor_record(size, stride, offset=0, numel=4, storage_class=None):
    storage = Storage(("storage", storage_class or torch.FloatStorage, "0", "cpu", numel))
    return Record(
        torch._utils._rebuild_tensor_v2, storage, offset, size, stride, False, OrderedDict()
    )


def test_hand_made_archive_matches_torch(tmp_path):
    path = tmp_path / "made.pt"
    raw = np.arange(4, dtype="<f4").tobytes()
    write_torch_archive(path, {"t": tensor_record((2, 2), (1, 2))}, [raw])
    np.testing.assert_array_equal(cs.load_torch(path)["t"].numpy(), [[0, 2], [1, 3]])
    assert torch.load(path, weights_only=True)["t"].tolist() == [[0, 2], [1, 3]]


@pytest.mark.parametrize(
    ("storage_class", "stored", "expected"),
    [
        (torch.FloatStorage, np.arange(4, dtype=">f4"), np.arange(4, dtype=np.float32)),
        (torch.HalfStorage, np.arange(4, dtype=">f2"), np.arange(4, dtype=np.float16)),
        (torch.LongStorage, (np.arange(4) - 2).astype(">i8"), np.arange(4) - 2),
        (torch.BFloat16Storage, np.array([0x3F80, 0xC040, 0, 0x4000], ">u2"), [1, -3, 0, 2]),
    ],
)
def test_big_endian_archive(storage_class, stored, expected, tmp_path):
    path = tmp_path / "big.pt"
    record = tensor_record((4,), (1,), storage_class=storage_class)
    write_torch_archive(path, record, [stored.tobytes()], byteorder=b"big")
    loaded = cs.load_torch(path).numpy()
    assert_same(loaded, np.asarray(expected, dtype=loaded.dtype))
    native = stored.dtype.newbyteorder("=")
    assert loaded.dtype == (np.float32 if storage_class is torch.BFloat16Storage else native)


@pytest.mark.parametrize(
    ("record", "raw", "message"),
    [
        (tensor_record((2, 3), (3, 1)), b"\0" * 16, "runs past the end of its storage"),
        (tensor_record((2,), (1,), offset=3), b"\0" * 16, "runs past the end"),
        (tensor_record((2,), (-1,)), b"\0" * 16, "invalid tensor geometry"),
        (tensor_record((2, 2), (1,)), b"\0" * 16, "invalid tensor geometry"),
        (tensor_record((2,), (1,)), b"\0" * 10, "has 10 bytes, expected 16 .*truncated"),
        (tensor_record((2,), (1,), numel=2**40), b"\0" * 16, "expected 4398046511104"),
        (Record(torch._utils._rebuild_tensor_v2, "x", 0, (1,), (1,), False, None), b"", "storage"),
    ],
)
def test_bad_tensor_records(record, raw, message, tmp_path):
    path = tmp_path / "bad.pt"
    write_torch_archive(path, {"t": record}, [raw])
    with pytest.raises(CheckpointError, match=message) as error:
        cs.load_torch(path)
    assert str(path) in str(error.value)


def test_missing_storage_record(tmp_path):
    path = tmp_path / "bad.pt"
    write_torch_archive(path, tensor_record((2,), (1,)))
    with pytest.raises(CheckpointError, match="missing storage record archive/data/0"):
        cs.load_torch(path)


class System:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


class Eval:
    def __init__(self, code):
        self.code = code

    def __reduce__(self):
        return eval, (self.code,)


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
@pytest.mark.parametrize(
    ("make", "refused"),
    [
        (lambda marker: System(f"touch {marker}"), r"(posix|os)\.system"),
        (lambda marker: Eval(f"open({str(marker)!r}, 'w').close()"), "builtins.eval"),
        (lambda marker: {"state": [Eval(f"open({str(marker)!r}, 'w').close()")]}, "builtins.eval"),
    ],
)
def test_malicious_pickles_are_refused_and_not_run(make, refused, protocol, tmp_path):
    marker = tmp_path / "marker"
    path = tmp_path / "evil.pt"
    write_torch_archive(path, make(marker), protocol=protocol)
    with pytest.raises(UnsafeCheckpointError, match=f"refusing to load '{refused}'") as error:
        cs.load_torch(path)
    assert isinstance(error.value, pickle.UnpicklingError | RuntimeError)
    assert str(path) in str(error.value)
    assert not marker.exists()
    with zipfile.ZipFile(path) as archive:  # the payload is live: plain pickle runs it
        pickle.loads(archive.read("archive/data.pkl"))
    assert marker.exists()


def tagged_tensor():
    tensor = torch.ones(2)
    tensor.note = "python attributes need torch._tensor._rebuild_from_type_v2"
    return tensor


@pytest.mark.parametrize(
    ("make", "refused"),
    [
        (lambda: torch.nn.Conv2d(1, 1, 1), "torch.nn.modules.conv.Conv2d"),
        (tagged_tensor, "torch._tensor._rebuild_from_type_v2"),
        (lambda: torch.ones(2, 2).to_sparse(), "torch._utils._rebuild_sparse_tensor"),
        (lambda: {"device": torch.device("cpu")}, "torch.device"),
    ],
)
def test_torch_objects_beyond_tensors_are_refused(make, refused, tmp_path):
    with pytest.raises(UnsafeCheckpointError, match=re.escape(f"refusing to load '{refused}'")):
        torch_roundtrip(make(), tmp_path)


def test_pickle_cannot_set_state_on_allowed_globals(tmp_path):
    # GLOBAL torch._utils._rebuild_tensor_v2, {'a': 1}, BUILD: would patch our function
    pkl = b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n}X\x01\x00\x00\x00aK\x01sb."
    write_zip(tmp_path / "e.pt", {"e/data.pkl": pkl})
    with pytest.raises(UnsafeCheckpointError, match="refusing to set the state of a function"):
        cs.load_torch(tmp_path / "e.pt")
    from convscope.io import torch_pt

    assert not vars(torch_pt._rebuild_tensor_v2)


@pytest.mark.parametrize(
    ("pkl", "message"),
    [
        (
            b"\x80\x02ctorch._utils\n_rebuild_qtensor\n.",
            "refusing to load 'torch._utils._rebuild_qtensor'",
        ),
        (b"\x80\x02X\x01\x00\x00\x00xQ.", "unsupported persistent id"),
        (b"\x80\x02]q\x00(K\x01", "corrupt or truncated torch.save file"),
        (b"garbage", "corrupt or truncated torch.save file"),
    ],
)
def test_refused_and_corrupt_pickles(pkl, message, tmp_path):
    write_zip(tmp_path / "p.pt", {"p/data.pkl": pkl})
    with pytest.raises(CheckpointError, match=message):
        cs.load_torch(tmp_path / "p.pt")


def test_torch_corrupt_truncated_and_legacy_files(tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"w": torch.arange(1000.0)}, path)
    data = path.read_bytes()
    for cut in (0, 100, len(data) // 2, len(data) - 10):
        path.write_bytes(data[:cut])
        with pytest.raises(
            CheckpointError, match=f"{re.escape(str(path))}: .*(not a zip|truncated)"
        ):
            cs.load_torch(path)
    corrupt = bytearray(data)
    corrupt[data.index(struct.pack("<f", 500.0))] ^= 0xFF
    path.write_bytes(bytes(corrupt))
    with pytest.raises(CheckpointError, match="CRC"):
        cs.load_torch(path)

    torch.save(torch.ones(2), path, _use_new_zipfile_serialization=False)
    with pytest.raises(CheckpointError, match=r"legacy .* not supported"):
        cs.load_torch(path)
    cs.save({"w": cs.ones(1)}, path)
    with pytest.raises(CheckpointError, match=r"no <name>/data\.pkl"):
        cs.load_torch(path)
    with pytest.raises(FileNotFoundError):
        cs.load_torch(tmp_path / "missing.pt")
