"""Hostile or odd checkpoints: loading stays safe and bounded, real files load as before.

Expanded (stride-0) views load as read-only views, not as copies many times the file's size;
crafted nesting, zip bombs, overlapping ranges and colliding keys are refused at once with a
CheckpointError (crash reproducers run in a subprocess, so that a crash fails one test).
"""

from __future__ import annotations

import io
import json
import os
import pickle
import struct
import subprocess
import sys
import time
import tracemalloc
import types
import zipfile
from collections import OrderedDict

import numpy as np
import pytest

import convscope as cs
from convscope.io import CheckpointError, load_safetensors

torch = pytest.importorskip("torch")


def test_expanded_view_stays_a_view(tmp_path):
    path = tmp_path / "expanded.pt"
    torch.save({"w": torch.arange(3.0).reshape(3, 1).expand(3, 2**30)}, path)
    assert path.stat().st_size < 4096
    loaded = cs.load_torch(path)["w"].numpy()  # 3 * 2**30 float32 = 12 GiB if copied
    assert loaded.shape == (3, 2**30) and not loaded.flags.writeable
    assert loaded[2, 123456789] == 2.0 and loaded[0, -1] == 0.0 and loaded[1, 0] == 1.0


def test_ordinary_views_are_copies(tmp_path):
    path = tmp_path / "views.pt"
    base = torch.arange(12.0).reshape(3, 4)
    torch.save({"t": base.t(), "row": base[1]}, path)
    loaded = cs.load_torch(path)
    np.testing.assert_array_equal(loaded["t"].numpy(), base.t().numpy())
    assert loaded["t"].numpy().flags.writeable and loaded["row"].tolist() == [4.0, 5.0, 6.0, 7.0]


def test_state_dict_with_expanded_buffer_loads_into_a_module(tmp_path):
    path = tmp_path / "bn.pt"
    bn = torch.nn.BatchNorm1d(4)
    state = bn.state_dict()
    state["running_var"] = torch.full((1,), 2.0).expand(4)
    torch.save(state, path)
    ours = cs.nn.BatchNorm1d(4)
    ours.load_state_dict(cs.load_torch(path))
    assert ours.running_var.tolist() == [2.0] * 4 and ours.running_var.numpy().flags.writeable


# ---------------------------------------------------------------- hand-made files


class Storage(tuple):
    """A persistent id as torch writes it: ('storage', storage class, key, location, numel)."""


class Record:
    """Pickles as ``func(*args)``: lets a test write any record torch's loader would see."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


class _Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        return tuple(obj) if isinstance(obj, Storage) else None


def zip_bytes(members: dict[str, bytes], compression=zipfile.ZIP_STORED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return out.getvalue()


def torch_file(obj, storages=(), pkl=None) -> bytes:
    """A torch.save-like archive of ``obj`` (or of the raw pickle ``pkl``) and its storages."""
    if pkl is None:
        data = io.BytesIO()
        _Pickler(data, protocol=2).dump(obj)
        pkl = data.getvalue()
    members = {"a/data.pkl": pkl, "a/byteorder": b"little", "a/version": b"3\n"}
    members.update({f"a/data/{i}": raw for i, raw in enumerate(storages)})
    return zip_bytes(members)


def view(size, stride, numel, offset=0, metadata=None):
    storage = Storage(("storage", torch.FloatStorage, "0", "cpu", numel))
    return Record(
        torch._utils._rebuild_tensor_v2,
        storage,
        offset,
        size,
        stride,
        False,
        OrderedDict(),
        metadata,
    )


def load(data: bytes, loader=cs.load_torch):
    return loader(io.BytesIO(data))


# ---------------------------------------------------------------- 1. nesting (crash -> error)

N_DEEP = 200_000


def deep_tuple_key() -> bytes:  # the red team's 340-byte file: {((((...)))): None}
    return b"\x80\x02}N" + b"\x85" * N_DEEP + b"Ns."


def deep_lists() -> bytes:  # [[[[...]]]] through APPEND
    return b"\x80\x02" + b"]" * N_DEEP + b"a" * (N_DEEP - 1) + b"."


def nested_after_placement(n: int = 5000) -> bytes:
    """n lists made first, then each appended into the previous one: depth n, built late."""
    put = b"".join(b"]r" + struct.pack("<I", i) + b"0" for i in range(n))
    get = b"".join(
        b"j" + struct.pack("<I", i) + b"j" + struct.pack("<I", i + 1) + b"a0" for i in range(n - 1)
    )
    return b"\x80\x02" + put + get + b"j\x00\x00\x00\x00."


def shared_tuple_key(levels: int = 100) -> bytes:
    """{t: 0} where t = (t', t'), 100 levels down: 2**100 leaves to hash, 600 bytes."""
    build = b"".join(b"h%ch%c\x86q%c0" % (i, i, i + 1) for i in range(levels))
    return b"\x80\x02})q\x000" + build + b"h%cK\x00s." % levels


DEEP_JSON = b'{"format": "convscope.checkpoint", "version": 1, "root": %s}' % (
    b"[" * N_DEEP + b"]" * N_DEEP
)
CRASHERS = {  # file name: (bytes, the error expected)
    "deep_tuple_key.pt": (
        zip_bytes({"a/data.pkl": deep_tuple_key()}, zipfile.ZIP_DEFLATED),
        "nested more than 1000 levels deep",
    ),
    "deep_lists.pt": (zip_bytes({"a/data.pkl": deep_lists()}), "nested more than 1000 levels"),
    "late.pt": (zip_bytes({"a/data.pkl": nested_after_placement()}), "nested more than 1000"),
    "shared.pt": (
        zip_bytes({"a/data.pkl": shared_tuple_key()}),
        "hashing the keys of this pickle would take too long",
    ),
    "deep.ckpt": (
        zip_bytes({"checkpoint.json": DEEP_JSON}, zipfile.ZIP_DEFLATED),
        "nested too deeply",
    ),
}

SCRIPT = """
import sys
import convscope as cs
for path in sys.argv[1:]:
    loader = cs.load if path.endswith(".ckpt") else cs.load_torch
    try:
        loader(path)
        print("loaded")
    except cs.io.CheckpointError as error:
        print(type(error).__name__, str(error).splitlines()[0])
"""


def test_crafted_nesting_is_refused_without_crashing(tmp_path):
    paths = []
    for name, (data, _) in CRASHERS.items():
        (tmp_path / name).write_bytes(data)
        paths.append(str(tmp_path / name))
    assert len(CRASHERS["deep_tuple_key.pt"][0]) < 1000
    start = time.perf_counter()
    run = subprocess.run(  # a crash (segfault) must fail this test, not kill pytest
        [sys.executable, "-c", SCRIPT, *paths], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert time.perf_counter() - start < 60
    lines = run.stdout.splitlines()
    assert len(lines) == len(paths), run.stdout + run.stderr[-2000:]
    for path, line in zip(paths, lines, strict=True):
        assert line.startswith("CheckpointError " + path), line
        assert CRASHERS[os.path.basename(path)][1] in line, line


@pytest.mark.parametrize(
    "pickle_of",
    [
        lambda depth: b"\x80\x02)" + b"\x85" * (depth - 1) + b".",
        lambda depth: b"\x80\x02" + b"]" * depth + b"a" * (depth - 1) + b".",
    ],
    ids=["tuples", "lists"],
)
def test_nesting_limit_is_exactly_1000_levels(pickle_of):
    loaded = load(torch_file(None, pkl=pickle_of(1000)))
    depth = 0
    while isinstance(loaded, tuple | list):
        depth, loaded = depth + 1, loaded[0] if loaded else None
    assert depth == 1000
    with pytest.raises(CheckpointError, match="nested more than 1000 levels deep"):
        load(torch_file(None, pkl=pickle_of(1001)))


def test_shared_lists_are_measured_once():
    """A list referenced twice at every level is 2**60 paths but 60 levels: loads at once."""
    levels = 60
    build = b"".join(b"(h%ch%cl" % (i, i) + b"q%c" % (i + 1) for i in range(levels))
    loaded = load(torch_file(None, pkl=b"\x80\x02]q\x00" + build + b"."))
    assert loaded[0] is loaded[1] and len(loaded) == 2


def test_cyclic_lists_load():
    a = []
    a.append(a)
    loaded = load(torch_file(a))
    assert loaded[0] is loaded


# ---------------------------------------------------------------- 2. stride-0 and overlapping views


def test_stride_0_view_of_2_31_elements_stays_a_read_only_view():
    data = torch_file({"t": view((2**31,), (0,), 1)}, [struct.pack("<f", 1.5)])
    assert len(data) < 1500
    t = load(data)["t"]
    array = t.numpy()
    assert array.shape == (2**31,) and array.strides == (0,) and not array.flags.writeable
    assert (t[-3:] + 1).tolist() == [2.5, 2.5, 2.5] and float(array[2**30]) == 1.5
    with pytest.raises(ValueError, match="read-only"):
        array[0] = 2


def test_overlapping_strides_stay_a_view_and_match_torch(tmp_path):
    raw = np.arange(2**17, dtype="<f4")
    data = torch_file({"t": view((2**16, 2**16), (1, 1), 2**17)}, [raw.tobytes()])
    (tmp_path / "o.pt").write_bytes(data)
    array = cs.load_torch(tmp_path / "o.pt")["t"].numpy()
    assert array.shape == (2**16, 2**16) and not array.flags.writeable
    expected = torch.load(tmp_path / "o.pt", weights_only=True)["t"]
    for i, j in [(0, 0), (5, 7), (2**16 - 1, 2**16 - 1), (123, 45678)]:
        assert array[i, j] == expected[i, j].item() == i + j


def test_views_reaching_past_their_storage_are_refused():
    for size, stride, offset in [((2**31,), (1,), 0), ((2, 2), (0, 1), 1), ((3,), (2**62,), 0)]:
        data = torch_file({"t": view(size, stride, 2, offset)}, [b"\0" * 8])
        with pytest.raises(CheckpointError, match="runs past the end of its storage a/data/0"):
            load(data)


def test_one_storage_viewed_many_times_is_copied_within_the_budget_only():
    numel, copies = 2**16, 400  # 256 KiB storage, 100 MiB if every tensor were copied
    raw = np.arange(numel, dtype="<f4")
    data = torch_file([view((numel,), (1,), numel) for _ in range(copies)], [raw.tobytes()])
    loaded = load(data)
    owned = [t for t in loaded if t.numpy().flags.writeable]
    assert 1 < len(owned) < copies
    assert sum(t.numpy().nbytes for t in owned) <= max(64 << 20, 16 * len(data))
    for t in loaded[:: copies // 10]:
        np.testing.assert_array_equal(t.numpy(), raw)


def test_neg_and_conj_flags_match_torch_and_need_a_copy(tmp_path):
    raw = np.arange(6, dtype="<f4")
    data = torch_file({"t": view((2, 3), (1, 2), 6, metadata={"neg": True})}, [raw.tobytes()])
    (tmp_path / "n.pt").write_bytes(data)
    expected = torch.load(tmp_path / "n.pt", weights_only=True)["t"].resolve_neg()
    np.testing.assert_array_equal(cs.load_torch(tmp_path / "n.pt")["t"].numpy(), expected.numpy())
    expanded = torch_file({"t": view((2**31,), (0,), 1, metadata={"neg": True})}, [b"\0" * 4])
    with pytest.raises(CheckpointError, match="neg flag on an expanded view"):
        load(expanded)


# ---------------------------------------------------------------- 3. zip bombs


def bomb(name: str, nbytes: int) -> dict[str, bytes]:
    """A member of ``nbytes`` zeros: about ``nbytes / 1000`` bytes once deflated."""
    return {name: bytes(nbytes)}


def test_compressed_storage_bomb_is_refused_before_unpacking():
    numel = 20 * 2**20  # 80 MiB of zeros, ~80 KB deflated
    record = view((numel,), (1,), numel)
    pkl = io.BytesIO()
    _Pickler(pkl, protocol=2).dump({"w": record})
    members = {"a/data.pkl": pkl.getvalue(), **bomb("a/data/0", 4 * numel)}
    data = zip_bytes(members, zipfile.ZIP_DEFLATED)
    assert len(data) < 200_000
    with pytest.raises(CheckpointError, match=r"a/data/0 needs 83886080 bytes, more than a file"):
        load(data)


def test_storage_sizes_must_match_their_records():
    data = torch_file({"t": view((4,), (1,), 4)}, [b"\0" * 32])
    with pytest.raises(CheckpointError, match="storage a/data/0 has 32 bytes, expected 16"):
        load(data)


def test_compressed_pickle_and_index_bombs_are_refused():
    pkl = b"\x80\x02N" + b"0N" * 2**20 + b"."  # 2 MiB of pickle, a few KB deflated
    data = zip_bytes({"a/data.pkl": pkl}, zipfile.ZIP_DEFLATED)
    with pytest.raises(CheckpointError, match=r"a/data.pkl unpacks to 2097156 bytes"):
        load(data)
    index = b'{"format": "convscope.checkpoint", "version": 1, "root": 0}' + b" " * 2**21
    data = zip_bytes({"checkpoint.json": index}, zipfile.ZIP_DEFLATED)
    with pytest.raises(CheckpointError, match=r"checkpoint\.json unpacks to"):
        load(data, cs.load)
    data = zip_bytes({"a/data.pkl": b"\x80\x02N.", "a/byteorder": b"little" * 100})
    with pytest.raises(CheckpointError, match="a/byteorder is 600 bytes long"):
        load(data)


def test_members_that_lie_about_their_size_or_use_bzip2_are_refused():
    real = b"\x80\x02N" + b"0N" * 2**22 + b"."  # 8 MiB of pickle
    data = bytearray(zip_bytes({"a/data.pkl": real}, zipfile.ZIP_DEFLATED))
    for header, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):  # claim 9 bytes
        at = data.index(header) + offset
        data[at : at + 4] = struct.pack("<I", 9)
    tracemalloc.start()
    with pytest.raises(CheckpointError, match=r"Bad CRC-32|truncated"):
        load(bytes(data))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 2**20  # the member was not unpacked whole (8 MiB) to be cut to 9 bytes
    bz2 = zip_bytes({"a/data.pkl": b"\x80\x02N."}, zipfile.ZIP_BZIP2)
    with pytest.raises(CheckpointError, match="compression method 12 is not supported"):
        load(bz2)


def test_pickle_building_many_objects_is_refused():
    pkl = b"\x80\x04" + b"\x8f" * (2**20 - 3) + b"."  # a million empty sets: 216 MiB
    data = zip_bytes({"a/data.pkl": pkl}, zipfile.ZIP_DEFLATED)
    assert len(data) < 5000
    with pytest.raises(CheckpointError, match="the pickle builds more objects than a file of"):
        load(data)


def test_convscope_checkpoint_bomb_is_refused():
    numel = 20 * 2**20
    node = {"type": "ndarray", "data": "arrays/0", "dtype": "float32", "shape": [numel]}
    index = json.dumps({"format": "convscope.checkpoint", "version": 1, "root": node})
    data = zip_bytes(
        {"checkpoint.json": index.encode(), **bomb("arrays/0", 4 * numel)}, zipfile.ZIP_DEFLATED
    )
    with pytest.raises(CheckpointError, match="arrays/0 needs 83886080 bytes"):
        load(data, cs.load)


# ---------------------------------------------------------------- 4. cs.load: members used twice


def test_convscope_member_used_twice_is_refused():
    node = {"type": "ndarray", "data": "arrays/0", "dtype": "float32", "shape": [2]}
    index = json.dumps({"format": "convscope.checkpoint", "version": 1, "root": [node] * 3})
    data = zip_bytes({"checkpoint.json": index.encode(), "arrays/0": b"\0" * 8})
    with pytest.raises(CheckpointError, match="arrays/0: used twice"):
        load(data, cs.load)


# ---------------------------------------------------------------- 5. safetensors ranges


def safetensors_bytes(tensors: dict, data_size: int) -> bytes:
    header = json.dumps(tensors).encode()
    header += b" " * (-len(header) % 8)
    return struct.pack("<Q", len(header)) + header + np.arange(data_size, dtype=np.uint8).tobytes()


def f32(begin, end, shape=None):
    return {
        "dtype": "F32",
        "shape": [(end - begin) // 4] if shape is None else shape,
        "data_offsets": [begin, end],
    }


@pytest.mark.parametrize(
    ("tensors", "size", "message"),
    [
        ({"a": f32(0, 8), "b": f32(4, 12)}, 12, "tensor 'b' overlaps tensor 'a'"),
        ({f"t{i}": f32(0, 4096) for i in range(100)}, 4096, "overlaps"),  # 100 x the data
        ({"a": f32(0, 4), "b": f32(8, 12)}, 12, "4 unused bytes before tensor 'b'"),
        ({"a": f32(4, 12)}, 12, "4 unused bytes before tensor 'a'"),
        ({"a": f32(0, 8)}, 12, "4 bytes after the last tensor's data"),
        ({"a": f32(0, 12, [2])}, 12, r"tensor 'a': expected 8 bytes of float32 .* found 12"),
        ({"a": f32(0, 16)}, 8, r"tensor 'a': expected 16 bytes of float32 .* found 8"),
        ({"a": f32(0, 8), "b": f32(16, 24)}, 8, "tensor 'b': expected 8 bytes .* found 0"),
        ({"a": {"dtype": "F32", "shape": [1] * 65, "data_offsets": [0, 4]}}, 4, "invalid shape"),
    ],
)
def test_safetensors_ranges_must_tile_the_data(tensors, size, message):
    with pytest.raises(CheckpointError, match=message):
        load(safetensors_bytes(tensors, size), load_safetensors)


def test_safetensors_tiled_in_any_header_order_loads():
    tensors = {
        "late": f32(8, 16),
        "empty": {"dtype": "F32", "shape": [0, 3], "data_offsets": [8, 8]},
        "early": {"dtype": "U8", "shape": [2, 4], "data_offsets": [0, 8]},
        "none": {"dtype": "I64", "shape": [0], "data_offsets": [16, 16]},
    }
    loaded = load(safetensors_bytes(tensors, 16), load_safetensors)
    assert list(loaded) == list(tensors)
    np.testing.assert_array_equal(loaded["early"].numpy(), np.arange(8).reshape(2, 4))
    np.testing.assert_array_equal(
        loaded["late"].numpy(), np.arange(8, 16, dtype=np.uint8).view("<f4")
    )
    assert loaded["empty"].shape == (0, 3) and loaded["late"].numpy().flags.writeable


# ---------------------------------------------------------------- 6. keys sharing a hash

COLLIDING = [k * (2**61 - 1) for k in range(1, 100_001)]  # all hash to 0


def int_ops(keys, value=b"N") -> bytes:
    return b"".join(pickle.dumps(k, 2)[2:-1] + value for k in keys)


def test_100k_colliding_keys_are_refused_at_once():
    data = torch_file(None, pkl=b"\x80\x02}(" + int_ops(COLLIDING) + b"u.")
    start = time.perf_counter()
    with pytest.raises(CheckpointError, match="more than 32 keys of one dict or set share"):
        load(data)
    assert time.perf_counter() - start < 5


@pytest.mark.parametrize(
    "pkl",
    [
        b"\x80\x04\x8f(" + int_ops(COLLIDING[:1000], b"") + b"\x90.",  # ADDITEMS
        b"\x80\x04(" + int_ops(COLLIDING[:1000], b"") + b"\x91.",  # FROZENSET
        b"\x80\x02(" + int_ops(COLLIDING[:1000]) + b"d.",  # DICT
        b"\x80\x02c__builtin__\nset\n](" + int_ops(COLLIDING[:1000], b"") + b"e\x85R.",
        b"\x80\x02ccollections\nOrderedDict\n](" + int_ops(COLLIDING[:1000], b"N\x86") + b"e\x85R.",
        b"\x80\x02}" + int_ops(COLLIDING[:1000], b"Ns") + b".",  # SETITEM one by one
    ],
    ids=["additems", "frozenset", "dict", "set", "ordered_dict", "setitem"],
)
def test_colliding_keys_are_refused_by_every_opcode(pkl):
    with pytest.raises(CheckpointError, match="share a hash value"):
        load(torch_file(None, pkl=pkl))


def test_100k_ordinary_keys_load_quickly(tmp_path):
    obj = {"ints": dict.fromkeys(range(100_000), 1), "floats": {i / 3: i for i in range(1000)}}
    obj["tuples"] = {(i, -i): i for i in range(1000)}
    obj["set"] = set(range(1000, 2000))
    torch.save(obj, tmp_path / "keys.pt")
    start = time.perf_counter()
    loaded = cs.load_torch(tmp_path / "keys.pt")
    assert time.perf_counter() - start < 5
    assert loaded == obj


def test_colliding_keys_in_a_convscope_checkpoint_are_refused():
    items = [[k, 0] for k in COLLIDING]
    index = json.dumps(
        {"format": "convscope.checkpoint", "version": 1, "root": {"type": "dict", "items": items}}
    )
    start = time.perf_counter()
    with pytest.raises(CheckpointError, match="share a hash value"):
        load(zip_bytes({"checkpoint.json": index.encode()}), cs.load)
    assert time.perf_counter() - start < 5


def test_huge_memo_index_is_refused():
    with pytest.raises(CheckpointError, match="memo index"):
        load(torch_file(None, pkl=b"\x80\x02Np%d\n." % (2**61 - 1)))


def test_containers_only_grow_through_their_own_opcodes():
    # SETITEM on a tensor would call Tensor.__setitem__; APPEND on a dict, ADDITEMS on a list
    tensor = b"ctorch._utils\n_rebuild_parameter\n"
    for pkl, message in [
        (b"\x80\x02]K\x00K\x01s.", "refusing SETITEMS on a list"),
        (b"\x80\x02}K\x01a.", "refusing APPEND on a dict"),
        (b"\x80\x04](K\x01\x90.", "refusing ADDITEMS on a list"),
        (b"\x80\x02" + tensor + b"NNN\x87R.", "parameter record without a tensor"),
        (b"\x80\x02c__builtin__\nset\nX\x03\x00\x00\x00abc\x85R.", "set of a str, not a list"),
    ]:
        with pytest.raises(CheckpointError, match=message):
            load(torch_file(None, pkl=pkl))


# ---------------------------------------------------------------- real torch files still load


@pytest.fixture(scope="module")
def torchvision():
    sys.modules.setdefault(
        "torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations")
    )
    return pytest.importorskip("torchvision")


def test_torchvision_resnet18_state_dict_loads_exactly(torchvision, tmp_path):
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None).eval()
    with torch.no_grad():  # buffers other than their initial values
        for name, buffer in model.named_buffers():
            if name.endswith("running_var"):
                buffer.uniform_(0.5, 2.0)
    path = tmp_path / "resnet18.pt"
    torch.save(model.state_dict(), path)
    state = cs.load_torch(path)
    expected = model.state_dict()
    assert list(state) == list(expected)
    for key, value in expected.items():
        got = state[key].numpy()
        assert got.dtype == value.numpy().dtype and got.flags.writeable, key
        np.testing.assert_array_equal(got, value.numpy(), err_msg=key)
    ours = cs.models.resnet18()
    ours.load_state_dict(state)
    ours.eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        reference = model(x).numpy()
    with cs.no_grad():
        np.testing.assert_allclose(
            ours(cs.Tensor(x.numpy())).numpy(), reference, rtol=1e-4, atol=1e-5
        )


MEMORY = """
import sys
import convscope as cs
def peak():  # VmHWM: this process's peak memory (ru_maxrss can keep the parent's after fork)
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM"))
before = peak()
state = cs.load_torch(sys.argv[1])
print(peak() - before)
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux /proc")
def test_loading_needs_about_the_file_size_in_memory(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(*[torch.nn.Linear(1024, 1024) for _ in range(8)])  # 32 MiB
    path = tmp_path / "big.pt"
    torch.save(model.state_dict(), path)
    run = subprocess.run(
        [sys.executable, "-c", MEMORY, str(path)], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr[-2000:]
    peak_kib = int(run.stdout)
    assert 0.9 * path.stat().st_size < peak_kib * 1024 < 1.4 * path.stat().st_size  # was 3x


def test_tied_half_and_bfloat16_tensors(tmp_path):
    weight = torch.randn(4, 3)
    half = torch.randn(2, 5).half()
    bf16 = torch.randn(7).bfloat16()
    state = {"a": weight, "tied": weight.detach(), "t": weight.t(), "half": half, "bf16": bf16}
    state["steps"] = torch.tensor(12345678901, dtype=torch.int64)
    torch.save(state, tmp_path / "s.pt")
    loaded = cs.load_torch(tmp_path / "s.pt")
    for key, value in state.items():
        expected = value.float().numpy() if key == "bf16" else value.numpy()
        np.testing.assert_array_equal(loaded[key].numpy(), expected, err_msg=key)
        assert loaded[key].numpy().dtype == expected.dtype
    loaded["a"].numpy()[0, 0] = 100.0
    assert loaded["tied"].numpy()[0, 0] == weight[0, 0].item() == loaded["t"].numpy()[0, 0]


# ---------------------------------------------------------------- 7. load_state_dict


def test_state_dict_of_another_architecture_gives_one_clear_error(tmp_path):
    path = tmp_path / "other.pt"
    torch.save(torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU()).state_dict(), path)
    ours = cs.nn.Sequential(cs.nn.Conv2d(3, 4, 3), cs.nn.ReLU(), cs.nn.Conv2d(4, 2, 1))
    before = ours.state_dict()["0.weight"].numpy().copy()
    with pytest.raises(RuntimeError) as error:
        ours.load_state_dict(cs.load_torch(path))
    message = str(error.value)
    assert 'Missing key(s) in state_dict: "2.weight", "2.bias"' in message
    assert "size mismatch for 0.weight" in message and "size mismatch for 0.bias" in message
    np.testing.assert_array_equal(ours.state_dict()["0.weight"].numpy(), before)


def test_read_only_views_load_into_a_module(tmp_path):
    data = torch_file(
        {"weight": view((4, 3, 1), (0, 0, 0), 4), "bias": view((4,), (1,), 4)},
        [struct.pack("<4f", 1, 2, 3, 4)],
    )
    state = load(data)
    assert not state["weight"].numpy().flags.writeable
    conv = cs.nn.Conv1d(3, 4, 1)
    conv.load_state_dict(state)
    assert conv.weight.numpy().flags.writeable and conv.weight.tolist() == [[[1.0]] * 3] * 4
    assert conv.bias.tolist() == [1.0, 2.0, 3.0, 4.0]
