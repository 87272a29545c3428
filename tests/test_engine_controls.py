"""Engine controls: thread count, forced algorithms, autotuning and its cache."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest

import convscope as cs
import convscope.nn.functional as F
from convscope.ops import algorithms, blocked, jit, threads
from convscope.ops import conv as ops_conv

torch = pytest.importorskip("torch")
TF = torch.nn.functional


@pytest.fixture(autouse=True)
def clean_policy(monkeypatch):
    """Every test starts with the heuristic, no autotuning, an empty cache."""
    monkeypatch.setattr(algorithms, "_forced", None)
    monkeypatch.setattr(algorithms, "_autotune", False)
    monkeypatch.setattr(algorithms, "_cache_file", None)
    monkeypatch.setattr(algorithms, "_cache", {})
    monkeypatch.setattr(algorithms, "_cache_loaded", False)
    yield


# ------------------------------------------------------------------------------- threads
@pytest.mark.parametrize("bad", [0, -2, 1.5, True, "2"])
def test_set_num_threads_rejects_what_torch_rejects(bad):
    with pytest.raises(RuntimeError, match="positive integer"):
        cs.set_num_threads(bad)


def test_num_threads_setting_and_blas():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    before = cs.get_num_threads()
    with cs.num_threads(1):
        assert cs.get_num_threads() == 1
        blas = [i for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
        assert blas and all(i["num_threads"] == 1 for i in blas)
    assert cs.get_num_threads() == before


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"CONVSCOPE_NUM_THREADS": "3", "OMP_NUM_THREADS": "5"}, 3),
        ({"OMP_NUM_THREADS": "5"}, 5),
        ({"OMP_NUM_THREADS": "junk", "MKL_NUM_THREADS": "4"}, 4),
    ],
)
def test_thread_count_honours_environment(monkeypatch, env, expected):
    for name in threads.ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(threads, "_threads", None)
    assert cs.get_num_threads() == expected


def test_parallel_helpers_keep_order_and_errors():
    with cs.num_threads(2):
        assert threads.parallel_map(lambda v: v * 10, range(7)) == [0, 10, 20, 30, 40, 50, 60]
        with pytest.raises(ZeroDivisionError):
            threads.parallel_map(lambda v: 1 // v, [3, 2, 0, 1])
        source = np.random.default_rng(0).standard_normal((6, 300, 400)).transpose(1, 0, 2)
        dest = np.empty(source.shape)
        threads.parallel_copy(dest, source, axis=1, min_bytes=0)
        np.testing.assert_array_equal(dest, source)
    assert threads.split(5, 8) == [slice(i, i + 1) for i in range(5)]


def test_nested_parallel_steps_run_inline_and_blas_threads_come_back():
    """A share of a parallel_map that itself calls parallel_map runs it in its own thread
    (waiting on the busy pool would deadlock it); blas_threads restores BLAS's count."""
    threadpoolctl = pytest.importorskip("threadpoolctl")

    def inner(v):
        return threads.parallel_map(lambda u: (u, threading.get_ident()), range(v, v + 3))

    with cs.num_threads(2):
        for share in threads.parallel_map(inner, [0, 10, 20]):
            assert len({ident for _, ident in share}) == 1

        def blas_counts():  # NumPy's BLAS (other BLAS libraries loaded later are not ours)
            info = threadpoolctl.threadpool_info()
            ours = {library.filepath for library in threads._blas()}
            return [i["num_threads"] for i in info if i["filepath"] in ours]

        before = blas_counts()
        with threads.blas_threads(1):
            assert blas_counts() and all(count == 1 for count in blas_counts())
        assert blas_counts() == before

        def overlapping(seconds):  # blocks in several threads, ending in another order
            with threads.blas_threads(1):
                time.sleep(seconds)

        runners = [
            threading.Thread(target=overlapping, args=(0.02 * (i % 3 + 1),)) for i in range(6)
        ]
        for runner in runners:
            runner.start()
        for runner in runners:
            runner.join()
        assert blas_counts() == before


@pytest.mark.parametrize(
    ("shape", "weight", "kwargs"),
    [
        ((4, 16, 20, 18), (24, 16, 3, 3), {"padding": 1}),  # unfold / winograd
        ((4, 12, 20, 18), (12, 1, 3, 3), {"padding": 1, "groups": 12}),  # depthwise
        ((2, 6, 30, 30), (6, 1, 9, 9), {"padding": 4, "groups": 6}),  # fft
        ((3, 8, 11, 13), (8, 4, 3, 3), {"stride": 2, "groups": 2}),
    ],
)
def test_results_do_not_depend_on_threads(shape, weight, kwargs):
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal(shape), rng.standard_normal(weight)
    with cs.num_threads(1):
        one = F.conv2d(x, w, **kwargs).numpy()
    with cs.num_threads(2), cs.workspace_budget(64 << 10):  # many tiles, copies split
        two = F.conv2d(x, w, **kwargs).numpy()
    np.testing.assert_allclose(two, one, rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------------- forced algorithms
def test_unknown_algorithm_names_fail_clearly():
    with pytest.raises(ValueError, match="unknown convolution algorithm 'gemm'"):
        cs.set_conv_algorithm("gemm")
    assert cs.get_conv_algorithm() is None


@pytest.mark.parametrize("name", algorithms.NAMES)
def test_forced_algorithm_runs_where_it_applies_and_matches_torch(name):
    rng = np.random.default_rng(5)
    cases = [
        ((2, 6, 12, 12), (6, 1, 3, 3), {"padding": 1, "groups": 6}),
        ((2, 4, 12, 12), (5, 4, 3, 3), {"padding": 1}),
        ((2, 4, 12, 12), (5, 4, 5, 5), {"stride": 2, "dilation": 1}),
    ]
    for shape, weight, kwargs in cases:
        x, w = rng.standard_normal(shape), rng.standard_normal(weight)
        with cs.conv_algorithm(name), cs.record_conv_algorithms() as used:
            got = F.conv2d(x, w, **kwargs).numpy()
        want = TF.conv2d(torch.from_numpy(x), torch.from_numpy(w), **kwargs).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
        applies = algorithms.unsupported(name, used[0][1], kwargs.get("groups", 1), x.dtype)
        assert (used[0][0] == name) == (applies is None)
    assert cs.get_conv_algorithm() is None


def test_forced_algorithm_reaches_gradients_and_transposed_phases():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 4, 9, 9))
    w = rng.standard_normal((4, 3, 4, 4))
    ours = [cs.tensor(a, requires_grad=True) for a in (x, w)]
    theirs = [torch.from_numpy(a.copy()).requires_grad_() for a in (x, w)]
    with cs.conv_algorithm("direct"), cs.record_conv_algorithms() as used:
        y = F.conv_transpose2d(*ours, stride=2, padding=1)
        y.backward(cs.ones(*y.shape, dtype=cs.float64))
    y_ref = TF.conv_transpose2d(*theirs, stride=2, padding=1)
    y_ref.backward(torch.ones_like(y_ref))
    assert {name for name, _ in used} == {"direct"} and len(used) >= 3
    np.testing.assert_allclose(y.numpy(), y_ref.detach().numpy(), rtol=1e-10, atol=1e-12)
    for got, want in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(got.grad.numpy(), want.grad.numpy(), rtol=1e-10, atol=1e-10)


def test_explicit_algorithm_that_cannot_compute_the_call_is_refused():
    from convscope.ops.conv import conv_general

    x, w = np.ones((1, 4, 6, 6)), np.ones((2, 4, 5, 5))
    with pytest.raises(ValueError, match="'winograd' cannot compute this call: winograd is for"):
        conv_general(
            x, w, stride=(1, 1), padding=((0, 0),) * 2, dilation=(1, 1), algorithm="winograd"
        )


# ---------------------------------------------------------------------------- autotuning
def _count_trials(monkeypatch):
    calls = []
    original = algorithms.implementation

    def counting(name):
        calls.append(name)
        return original(name)

    monkeypatch.setattr(algorithms, "implementation", counting)
    return calls


def test_autotune_times_candidates_once_per_shape_and_stays_exact(monkeypatch):
    calls = _count_trials(monkeypatch)
    rng = np.random.default_rng(8)
    x, w = rng.standard_normal((2, 64, 10, 10)), rng.standard_normal((64, 64, 3, 3))
    want = TF.conv2d(torch.from_numpy(x), torch.from_numpy(w), padding=1).numpy()
    cs.set_autotune(True)
    first = F.conv2d(x, w, padding=1).numpy()
    tried = set(calls)
    # every candidate for a dense 3x3 ('blocked' where its compiled kernel can run)
    expected = {"unfold", "winograd", "fft", "shifted"} | (
        {"blocked"} if blocked.available() else set()
    )
    assert tried == expected
    calls.clear()
    with cs.record_conv_algorithms() as used:
        second = F.conv2d(x, w, padding=1).numpy()
    assert calls == [used[0][0]]  # cached: no more timing
    ((key, choice),) = cs.autotune_cache().items()
    assert choice == used[0][0] and "x(2, 64, 10, 10)" in key
    np.testing.assert_allclose(first, want, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(second, want, rtol=1e-10, atol=1e-10)


def test_autotune_cache_file_is_written_and_reused(tmp_path, monkeypatch):
    path = tmp_path / "tune" / "cache.json"
    x, w = np.ones((1, 3, 8, 8)), np.ones((3, 1, 9, 9))
    cs.set_autotune(True, cache_file=path)
    F.conv2d(x, w, padding=4, groups=3)
    stored = json.loads(path.read_text())
    assert next(iter(stored.values())) in ("depthwise", "fft", "unfold")
    # a "new process": empty memory, the file holds a (deliberately odd) choice
    key = next(iter(stored))
    path.write_text(json.dumps({key: "unfold"}))
    monkeypatch.setattr(algorithms, "_cache", {})
    monkeypatch.setattr(algorithms, "_cache_loaded", False)
    calls = _count_trials(monkeypatch)
    F.conv2d(x, w, padding=4, groups=3)
    assert calls == ["unfold"]


def test_corrupt_autotune_cache_warns_and_is_not_fatal(tmp_path):
    path = tmp_path / "cache.json"
    path.write_text("{not json")
    cs.set_autotune(True, cache_file=path)
    with pytest.warns(UserWarning, match="ignoring unreadable autotune cache"):
        y = F.conv2d(np.ones((1, 2, 5, 5)), np.ones((2, 2, 3, 3)))
    assert float(y.numpy()[0, 0, 0, 0]) == 18.0


def test_fft_uses_the_engine_thread_count(monkeypatch):
    pytest.importorskip("scipy")
    import scipy.fft

    from convscope.ops import fft

    seen = []
    original = scipy.fft.rfft

    def spy(*args, **kwargs):
        seen.append(kwargs.get("workers"))
        return original(*args, **kwargs)

    monkeypatch.setattr(scipy.fft, "rfft", spy)
    x = np.ones((1, 2, 40, 40), np.float32)
    w = np.ones((2, 1, 15, 15), np.float32)
    with cs.num_threads(1):
        ops_conv.conv_general(
            x,
            w,
            stride=(1, 1),
            padding=((0, 0), (0, 0)),
            dilation=(1, 1),
            groups=2,
            algorithm="fft",
        )
    assert seen and set(seen) == {1}
    assert fft.BACKEND in ("auto", "scipy")


def _same_3x3(shape):
    """The geometry of a 3x3 (3x3x3...) stride-1 convolution padded to keep ``shape``'s size."""
    size = tuple(shape[2:])
    ones = (1,) * len(size)
    return ops_conv.ConvGeometry(
        input_shape=tuple(shape),
        kernel_size=(3,) * len(size),
        stride=ones,
        pads=((1, 1),) * len(size),
        dilation=ones,
        input_dilation=ones,
        output_size=size,
    )


@pytest.mark.parametrize(
    ("shape", "with_numba"),
    [  # see ops.conv.WINOGRAD_FROM_TILES and WINOGRAD_*CHANNELS for the measurements
        ((8, 64, 56, 56), "winograd"),
        ((8, 256, 28, 28), "winograd"),
        ((8, 256, 14, 14), "winograd"),  # 392 output tiles
        ((8, 512, 7, 7), "unfold"),  # 128 tiles: the transformed kernel dominates
        ((1, 64, 28, 28), "unfold"),  # 196 tiles
        ((8, 32, 128, 128), "unfold"),  # thin GEMMs
        ((1, 32, 256, 256), "winograd"),  # ... but one sample: unfold's shares gain less
        ((1, 16, 128, 128), "winograd"),
        ((1, 8, 128, 128), "unfold"),
        # 3-D, 3x3x3 (r3d_18's layers): frames count as tiles, taps as channels
        ((1, 64, 16, 56, 56), "winograd"),
        ((1, 128, 8, 28, 28), "winograd"),
        ((2, 32, 8, 28, 28), "winograd"),  # GEMMs 96 deep
        ((1, 256, 4, 14, 14), "unfold"),  # 196 tiles
    ],
)
def test_selector_takes_winograd_for_many_tiles_with_numba(shape, with_numba, monkeypatch):
    c = shape[1]
    geom = _same_3x3(shape)
    expected = with_numba if jit.kernels() is not None else "unfold"
    assert ops_conv.select_algorithm(geom, 1, np.dtype(np.float32), c) == expected
    monkeypatch.setattr(jit, "BACKEND", "numpy")  # NumPy's transforms: never chosen
    assert ops_conv.select_algorithm(geom, 1, np.dtype(np.float32), c) == "unfold"
    assert ops_conv.select_algorithm(geom, 1, np.dtype(np.int64), c) == "unfold"


@pytest.mark.parametrize(("workers", "expected"), [(1, "winograd"), (2, "unfold")])
def test_selector_takes_winograd_for_thin_layers_on_one_thread(workers, expected):
    """On one thread (a batch-parallel share) unfold has no thread shares to gain from, and
    Winograd wins on thin layers at any batch (see ops.conv.WINOGRAD_ONE_SAMPLE_CHANNELS);
    the thread count is part of the cached plan."""
    geom = _same_3x3((4, 32, 128, 128))
    with_numba = expected if jit.kernels() is not None else "unfold"
    assert ops_conv.select_algorithm(geom, 1, np.dtype(np.float32), 64, workers) == with_numba
    x = np.zeros((4, 32, 128, 128), np.float32)
    w = np.zeros((64, 32, 3, 3), np.float32)
    args = {"stride": (1, 1), "padding": ((1, 1), (1, 1)), "dilation": (1, 1)}
    with cs.num_threads(workers), algorithms.record_conv_algorithms() as used:
        ops_conv.conv_general(x, w, **args)  # the same shapes on 1 and 2 threads
    assert [name for name, _ in used] == [with_numba]


def test_one_registry_describes_every_algorithm():
    """Each algorithm is one registry entry: its module runs it, its rules say what it cannot
    compute, whether it spreads non-finite values, whether autotuning times it."""
    from convscope.ops import algorithms

    geom = _same_3x3((2, 4, 9, 9))
    for name, spec in algorithms.REGISTRY.items():
        assert callable(algorithms.implementation(name))
        if spec.weight_gradient is not None:
            assert callable(algorithms.weight_gradient(name))
        else:
            assert algorithms.weight_gradient(name) is None
    assert {n for n in algorithms.NAMES if algorithms.spreads_non_finite(n)} == {"fft", "winograd"}
    tuned = algorithms.candidates(geom, 1, np.dtype(np.float32), 4)
    assert "direct" not in tuned and "fold" not in tuned and "unfold" in tuned
    assert algorithms.unsupported("fft", geom, 1, np.dtype(np.int64)) is not None
    assert algorithms.unsupported("winograd", geom, 1, np.dtype(np.float32)) is None
    with pytest.raises(ValueError, match="unknown convolution algorithm"):
        algorithms.spreads_non_finite("im2row")


def test_num_threads_reaches_a_blas_loaded_after_the_first_lookup():
    """The BLAS controllers are cached, and looked up again after new imports: SciPy's own
    OpenBLAS, loaded after convscope first set BLAS's threads, follows cs.num_threads too."""
    pytest.importorskip("threadpoolctl")
    pytest.importorskip("scipy")
    script = """
import convscope as cs, threadpoolctl
from convscope.ops import threads
cs.set_num_threads(2)
before = len(threads._blas())
import scipy.linalg  # SciPy's wheels bundle an OpenBLAS of their own
with cs.num_threads(1):
    inside = [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
after = [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
print(before, len(inside), inside, after)
assert len(inside) > before and set(inside) == {1} and set(after) == {2}, (before, inside, after)
"""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
