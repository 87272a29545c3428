"""The register-blocked dense kernel ('blocked') against PyTorch on random configurations:
1-D to 3-D, strides, dilations, uneven padding, channel counts that leave partial blocks,
float32/float64/float16, gradients, bands and channel blocks forced by small budgets,
Inf/NaN inputs, and the heuristic's choices."""

from __future__ import annotations

import numpy as np
import pytest

import convscope as cs
import convscope.nn.functional as F
from convscope.ops import blocked, conv
from convscope.ops.conv import conv_general, conv_general_backward

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.skipif(
    not blocked.available(), reason="needs numba and a CPU with vector fused multiply-add"
)


def _case(rng: np.random.Generator, dims: int, dtype) -> tuple:
    kernel = [int(k) for k in rng.integers(1, 5, dims)]
    stride = [int(s) for s in rng.integers(1, 4, dims)]
    dilation = [int(d) for d in rng.integers(1, 3, dims)]
    pads = [(int(a), int(b)) for a, b in rng.integers(0, 3, (dims, 2))]
    extent = [(k - 1) * d + 1 for k, d in zip(kernel, dilation, strict=True)]
    size = [
        int(rng.integers(max(1, e - a - b), e + 14)) for e, (a, b) in zip(extent, pads, strict=True)
    ]
    # channel counts around the micro-kernel's 8 rows and the 16-channel sum blocks
    cin, cout = int(rng.choice([1, 3, 16, 17, 35])), int(rng.choice([1, 5, 8, 13, 24]))
    x = rng.standard_normal((int(rng.integers(1, 4)), cin, *size)).astype(dtype)
    w = rng.standard_normal((cout, cin, *kernel)).astype(dtype)
    return x, w, {"stride": stride, "padding": pads, "dilation": dilation}


def _torch_reference(x: np.ndarray, w: np.ndarray, config: dict) -> np.ndarray:
    """float64 torch on the explicitly padded input (torch has no per-side padding)."""
    dims = x.ndim - 2
    pad = [p for a, b in reversed(config["padding"]) for p in (a, b)]
    tx = torch.nn.functional.pad(torch.from_numpy(x.astype(np.float64)), pad)
    fn = getattr(torch.nn.functional, f"conv{dims}d")
    tw = torch.from_numpy(w.astype(np.float64))
    return fn(tx, tw, None, config["stride"], 0, config["dilation"]).numpy()


@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_random_configurations_match_torch(dims, dtype):
    rng = np.random.default_rng(100 * dims + np.dtype(dtype).itemsize)
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    for _ in range(6):
        x, w, config = _case(rng, dims, dtype)
        ours = conv_general(x, w, **config, algorithm="blocked")
        expected = _torch_reference(x, w, config)
        assert ours.dtype == dtype and ours.shape == expected.shape
        scale = max(1.0, float(np.abs(expected).max()))
        assert np.abs(ours - expected).max() <= tolerance * scale, config


def test_bands_output_blocks_and_threads_give_identical_bits():
    """Every output is the same sum in the same order (16-channel blocks, taps in order)
    whatever the jobs: one-row bands and split output channels under a small budget, and
    one or two threads, give the same bits."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 40, 23, 19)).astype(np.float32)
    w = rng.standard_normal((21, 40, 3, 3)).astype(np.float32)
    config = {"stride": (2, 1), "padding": ((1, 2), (0, 1)), "dilation": (1, 2)}
    whole = conv_general(x, w, **config, algorithm="blocked")
    geom = conv._plan(x.shape, x.dtype, w.shape, (2, 1), ((1, 2), (0, 1)), (1, 2), None, 1,
                      1 << 16, True, 2).geom  # fmt: skip
    small = blocked.plan(geom, 21, 4, 2, 1 << 16)
    assert small is not None and small.windows.band < geom.output_size[0]
    banded = conv_general(x, w, **config, algorithm="blocked", workspace_bytes=1 << 16)
    with cs.num_threads(1):
        serial = conv_general(x, w, **config, algorithm="blocked")
    assert np.array_equal(whole, banded) and np.array_equal(whole, serial)
    expected = _torch_reference(x, w, config)
    assert np.abs(whole - expected).max() <= 1e-5 * np.abs(expected).max()


def test_output_channels_split_over_jobs_at_batch_one():
    """A single sample on small planes: the jobs split the output channels (partial blocks
    of the micro-kernel's rows included), still exact against torch."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 33, 7, 7))
    w = rng.standard_normal((29, 33, 3, 3))
    config = {"stride": (1, 1), "padding": ((1, 1), (1, 1)), "dilation": (1, 1)}
    geom = conv._plan(x.shape, x.dtype, w.shape, (1, 1), ((1, 1), (1, 1)), (1, 1), None, 1,
                      1 << 29, True, 2).geom  # fmt: skip
    assert blocked.plan(geom, 29, 8, 2, 1 << 29).out_block < 29
    with cs.num_threads(2):
        ours = conv_general(x, w, **config, algorithm="blocked")
    np.testing.assert_allclose(ours, _torch_reference(x, w, config), rtol=1e-11, atol=1e-11)


def test_budget_too_small_for_one_row_falls_back_to_unfold():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((1, 64, 12, 12)).astype(np.float32)
    w = rng.standard_normal((8, 64, 3, 3)).astype(np.float32)
    config = {"stride": (1, 1), "padding": ((1, 1), (1, 1)), "dilation": (1, 1)}
    geom = conv._plan(x.shape, x.dtype, w.shape, (1, 1), ((1, 1), (1, 1)), (1, 1), None, 1,
                      8192, True, 2).geom  # fmt: skip
    assert blocked.plan(geom, 8, 4, 2, 8192) is None
    ours = conv_general(x, w, **config, algorithm="blocked", workspace_bytes=8192)
    expected = _torch_reference(x, w, config)
    assert np.abs(ours - expected).max() <= 1e-5 * np.abs(expected).max()


def test_float16_is_computed_in_float32_and_writes_strided_outputs():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 6, 10, 9)).astype(np.float16)
    w = rng.standard_normal((10, 6, 3, 2)).astype(np.float16)
    config = {"stride": (1, 2), "padding": ((1, 1), (0, 0)), "dilation": (1, 1)}
    ours = conv_general(x, w, **config, algorithm="blocked")
    assert ours.dtype == np.float16
    expected = _torch_reference(x.astype(np.float32), w.astype(np.float32), config)
    np.testing.assert_allclose(ours.astype(np.float32), expected, rtol=2e-3, atol=2e-2)
    # the output as a strided view (as a transposed convolution's phases write it)
    base = np.full((2, 20, 10, 8), np.nan, np.float64)
    view = base[:, ::2, :, ::2]
    conv_general(
        x.astype(np.float64), w.astype(np.float64), **config, algorithm="blocked", out=view
    )
    np.testing.assert_allclose(view, expected, rtol=1e-3, atol=1e-2)
    assert np.isnan(base[:, 1::2]).all() and np.isnan(base[..., 1::2]).all()


def test_non_finite_inputs_give_torchs_pattern():
    """Positions between rows are computed and dropped: an Inf or NaN there must not leak
    into the outputs, which see exactly the windows torch's do."""
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 18, 11, 13))
    w = rng.standard_normal((9, 18, 3, 3))
    x[0, 2, 0, 12] = np.inf
    x[1, 17, 10, 0] = np.nan
    x[1, 0, 5, 5] = -np.inf
    config = {"stride": (2, 2), "padding": ((1, 1), (1, 1)), "dilation": (1, 1)}
    ours = conv_general(x, w, **config, algorithm="blocked")
    expected = torch.nn.functional.conv2d(
        torch.from_numpy(x), torch.from_numpy(w), None, 2, 1
    ).numpy()
    assert np.array_equal(np.isnan(ours), np.isnan(expected))
    assert np.array_equal(np.isposinf(ours), np.isposinf(expected))
    assert np.array_equal(np.isneginf(ours), np.isneginf(expected))
    finite = np.isfinite(expected)
    np.testing.assert_allclose(ours[finite], expected[finite], rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gradients_through_the_layer_api(dtype):
    """A strided and a stride-1 layer with 'blocked' forced: the forward and the stride-1
    input gradient run on it; values and gradients match torch."""
    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, 19, 15, 14)).astype(dtype)
    w1 = rng.standard_normal((12, 19, 3, 3)).astype(dtype)
    w2 = rng.standard_normal((10, 12, 3, 3)).astype(dtype)
    up = rng.standard_normal((2, 10, 8, 7)).astype(dtype)
    tx, tw1, tw2 = (cs.tensor(a, requires_grad=True) for a in (x, w1, w2))
    with cs.conv_algorithm("blocked"), cs.record_conv_algorithms() as used:
        y = F.conv2d(F.conv2d(tx, tw1, stride=2, padding=1), tw2, padding=1)
        y.backward(cs.tensor(up))
    assert "blocked" in [name for name, _ in used]
    rx, rw1, rw2 = (torch.tensor(a, requires_grad=True) for a in (x, w1, w2))
    ry = torch.nn.functional.conv2d(
        torch.nn.functional.conv2d(rx, rw1, None, 2, 1), rw2, None, 1, 1
    )
    ry.backward(torch.from_numpy(up))
    rtol = 1e-4 if dtype == np.float32 else 1e-10
    for ours, theirs in (
        (y.numpy(), ry),
        (tx.grad, rx.grad),
        (tw1.grad, rw1.grad),
        (tw2.grad, rw2.grad),
    ):
        theirs = theirs.detach().numpy()
        assert np.abs(np.asarray(ours) - theirs).max() <= rtol * np.abs(theirs).max()


def test_weight_gradient_with_blocked_forced():
    """With 'blocked' forced, the weight gradient is the swapped correlation (the output
    gradient as its kernel) run on it, and the strided input gradient its phases."""
    rng = np.random.default_rng(9)
    x = rng.standard_normal((2, 5, 9, 8))
    w = rng.standard_normal((7, 5, 3, 2))
    g = rng.standard_normal((2, 7, 4, 8))
    args = {"stride": (2, 1), "padding": ((0, 0), (1, 0)), "dilation": (1, 1)}
    with cs.conv_algorithm("blocked"), cs.record_conv_algorithms() as used:
        gx, gw = conv_general_backward(x, w, g, **args)
    assert "blocked" in [name for name, _ in used]  # the weight gradient's swapped correlation
    rx, rw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    torch.nn.functional.conv2d(
        torch.nn.functional.pad(rx, (1, 0, 0, 0)), rw, None, (2, 1)
    ).backward(torch.from_numpy(g))
    np.testing.assert_allclose(gx, rx.grad.numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(gw, rw.grad.numpy(), rtol=1e-10, atol=1e-10)


def test_unsupported_calls_raise_when_forced():
    x = np.ones((1, 4, 6, 6), np.float32)
    same = {"stride": (1, 1), "padding": ((1, 1), (1, 1)), "dilation": (1, 1)}
    with pytest.raises(ValueError, match="groups=1"):
        conv_general(x, np.ones((4, 2, 3, 3), np.float32), **same, groups=2, algorithm="blocked")
    with pytest.raises(ValueError, match="floating-point"):
        conv_general(
            x.astype(np.int64), np.ones((4, 4, 3, 3), np.int64), **same, algorithm="blocked"
        )


def _heuristic(shape, out_channels, kernel, stride, groups=1, dtype=np.float32, precise=False):
    pads = tuple((k // 2, k // 2) for k in kernel)
    w_shape = (out_channels, shape[1] // groups, *kernel)
    dims = len(kernel)
    return conv._plan(shape, np.dtype(dtype), w_shape, stride, pads, (1,) * dims, None, groups,
                      1 << 29, True, 2, precise).heuristic  # fmt: skip


def test_heuristic_takes_blocked_for_strided_and_thin_layers_only():
    assert _heuristic((8, 3, 224, 224), 64, (7, 7), (2, 2)) == "blocked"  # ResNet's stem
    assert _heuristic((8, 64, 56, 56), 128, (3, 3), (2, 2)) == "blocked"
    assert _heuristic((8, 3, 224, 224), 32, (3, 3), (1, 1)) == "blocked"  # thin, stride 1
    assert (
        _heuristic((8, 64, 56, 56), 64, (3, 3), (1, 1)) != "blocked"
    )  # see BLOCKED_FROM_EFFICIENCY
    assert _heuristic((8, 64, 56, 56), 128, (1, 1), (2, 2)) != "blocked"  # 1x1: GEMM
    assert _heuristic((8, 256, 14, 14), 512, (3, 3), (2, 2)) != "blocked"  # 7x7 output: padding
    assert _heuristic((8, 64, 56, 56), 128, (3, 3), (2, 2), groups=2) != "blocked"
    assert _heuristic((8, 64, 56, 56), 128, (3, 3), (2, 2), dtype=np.int64) == "unfold"
    assert _heuristic((8, 1, 16000), 512, (10,), (5,)) != "blocked"  # 10 products per output


def test_training_takes_blocked_for_stride_one_layers_too():
    """Calls that feed a gradient run with BLAS's workers idle (``ops.matmul``), where the
    kernel keeps its speed inside a network: stride-1 layers take it there."""
    assert _heuristic((8, 64, 56, 56), 64, (3, 3), (1, 1), precise=True) == "blocked"
    assert _heuristic((8, 512, 7, 7), 512, (3, 3), (1, 1), precise=True) != "blocked"
    rng = np.random.default_rng(10)
    x = cs.tensor(rng.standard_normal((2, 64, 14, 14)).astype(np.float32), requires_grad=True)
    w = cs.tensor(rng.standard_normal((64, 64, 3, 3)).astype(np.float32), requires_grad=True)
    with cs.record_conv_algorithms() as used:
        F.conv2d(x, w, padding=1).sum().backward()
    assert [name for name, _ in used][:2] == ["blocked", "blocked"]  # forward, input gradient
    with cs.no_grad(), cs.record_conv_algorithms() as used:
        F.conv2d(x, w, padding=1)
    assert used[0][0] != "blocked"


def _torch_weight_gradient(x, w, g, config):
    dims = x.ndim - 2
    pad = [p for a, b in reversed(config["padding"]) for p in (a, b)]
    tx = torch.nn.functional.pad(torch.from_numpy(x.astype(np.float64)), pad)
    tw = torch.tensor(w.astype(np.float64), requires_grad=True)
    fn = getattr(torch.nn.functional, f"conv{dims}d")
    fn(tx, tw, None, config["stride"], 0, config["dilation"]).backward(
        torch.from_numpy(g.astype(np.float64))
    )
    return tw.grad.numpy()


@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_weight_gradient_kernel_matches_torch(dims, dtype):
    rng = np.random.default_rng(200 * dims + np.dtype(dtype).itemsize)
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    for _ in range(5):
        x, w, config = _case(rng, dims, dtype)
        y = conv_general(x, w, **config, algorithm="direct")
        g = rng.standard_normal(y.shape).astype(dtype)
        geom = conv._plan(x.shape, x.dtype, w.shape, tuple(config["stride"]),
                          tuple(config["padding"]), tuple(config["dilation"]), None, 1,
                          1 << 29, True, 2).geom  # fmt: skip
        ours = blocked.weight_gradient(x, g, geom, 1, 1 << 29)
        expected = _torch_weight_gradient(x, w, g, config)
        assert ours is not None and ours.dtype == dtype and ours.shape == w.shape
        scale = max(1.0, float(np.abs(expected).max()))
        assert np.abs(ours - expected).max() <= tolerance * scale, config


def test_weight_gradient_stacks_small_planes_and_bands_large_ones():
    """Small planes: several samples per job (the last block shorter); large ones: bands of
    rows; one thread or two: the gradient PyTorch computes."""
    rng = np.random.default_rng(11)
    config = {"stride": (1, 1), "padding": ((1, 1), (1, 1)), "dilation": (1, 1)}
    for shape, stacked in (((7, 20, 9, 9), True), ((3, 20, 90, 90), False)):
        x = rng.standard_normal(shape)
        w = rng.standard_normal((11, 20, 3, 3))
        g = rng.standard_normal((shape[0], 11, *shape[2:]))
        geom = conv._plan(x.shape, x.dtype, w.shape, (1, 1), ((1, 1), (1, 1)), (1, 1), None,
                          1, 1 << 29, True, 2).geom  # fmt: skip
        found = blocked.plan(geom, 11, 8, 2, 1 << 29)
        if stacked:
            assert blocked._weight_stack(geom, found, 31, 8, 2) > 1
        else:
            assert found.windows.band < shape[2]
        expected = _torch_weight_gradient(x, w, g, config)
        for threads in (1, 2):
            with cs.num_threads(threads):
                ours = blocked.weight_gradient(x, g, geom, 1, 1 << 29)
            np.testing.assert_allclose(ours, expected, rtol=1e-11, atol=1e-11)


def test_weight_gradient_declines_non_finite_inputs_and_small_budgets():
    rng = np.random.default_rng(12)
    x = rng.standard_normal((2, 6, 30, 30))
    w = rng.standard_normal((8, 6, 3, 3))
    g = rng.standard_normal((2, 8, 30, 30))
    same = {"stride": (1, 1), "padding": ((1, 1), (1, 1)), "dilation": (1, 1)}
    geom = conv._plan(x.shape, x.dtype, w.shape, (1, 1), ((1, 1), (1, 1)), (1, 1), None, 1,
                      1 << 29, True, 2).geom  # fmt: skip
    assert blocked.weight_gradient(x, g, geom, 1, 1 << 10) is None
    x[1, 3, 0, 29] = np.inf  # its row's padding column is multiplied by zero gradients
    assert blocked.weight_gradient(x, g, geom, 1, 1 << 29) is None
    with cs.conv_algorithm("blocked"):
        _, ours = conv_general_backward(x, w, g, **same, needs=(False, True))
    rw = torch.tensor(w, requires_grad=True)
    torch.nn.functional.conv2d(torch.from_numpy(x), rw, None, 1, 1).backward(torch.from_numpy(g))
    expected = rw.grad.numpy()
    assert np.array_equal(np.isnan(ours), np.isnan(expected))
    assert np.array_equal(np.isinf(ours), np.isinf(expected))


def test_training_weight_gradients_take_blocked_where_runs_are_long():
    assert blocked.weight_gradient_pays(_geometry((8, 64, 56, 56), 64), 64, 4)
    assert not blocked.weight_gradient_pays(_geometry((8, 256, 14, 14), 256), 256, 4)
    rng = np.random.default_rng(13)
    x = cs.tensor(rng.standard_normal((2, 16, 40, 40)).astype(np.float32), requires_grad=True)
    w = cs.tensor(rng.standard_normal((24, 16, 3, 3)).astype(np.float32), requires_grad=True)
    up = rng.standard_normal((2, 24, 40, 40)).astype(np.float32)
    with cs.record_conv_algorithms() as used:
        F.conv2d(x, w, padding=1).backward(cs.tensor(up))
    assert [name for name, _ in used] == ["blocked", "blocked", "blocked"]
    rx, rw = (
        torch.tensor(x.numpy(), requires_grad=True),
        torch.tensor(w.numpy(), requires_grad=True),
    )
    torch.nn.functional.conv2d(rx, rw, None, 1, 1).backward(torch.from_numpy(up))
    scale = rw.grad.abs().max().item()
    assert np.abs(w.grad - rw.grad.numpy()).max() <= 1e-5 * scale


def _geometry(shape, out_channels):
    w_shape = (out_channels, shape[1], 3, 3)
    return conv._plan(shape, np.dtype(np.float32), w_shape, (1, 1), ((1, 1), (1, 1)), (1, 1),
                      None, 1, 1 << 29, True, 2).geom  # fmt: skip


def test_strided_input_gradients_run_by_phases_on_blocked_when_planes_are_large():
    """A strided dense layer's input gradient: its stride phases on the register-blocked
    kernel when the output gradient's planes are 14x14 or larger, else ``fold``; both match
    torch."""
    rng = np.random.default_rng(14)
    for size, expected in ((32, "blocked"), (12, "fold")):
        x = rng.standard_normal((2, 12, size, size)).astype(np.float32)
        # twice the channels out: as a transposed convolution's forward, 'fold' would be taken
        w = rng.standard_normal((24, 12, 3, 3)).astype(np.float32)
        g = rng.standard_normal((2, 24, size // 2, size // 2)).astype(np.float32)
        args = {"stride": (2, 2), "padding": ((1, 1), (1, 1)), "dilation": (1, 1)}
        with cs.record_conv_algorithms() as used:
            ours, _ = conv_general_backward(x, w, g, **args, needs=(True, False))
        assert expected in {name for name, _ in used}
        assert ("fold" in {name for name, _ in used}) == (expected == "fold")
        rx = torch.tensor(x, requires_grad=True)
        torch.nn.functional.conv2d(rx, torch.from_numpy(w), None, 2, 1).backward(
            torch.from_numpy(g)
        )
        theirs = rx.grad.numpy()
        assert np.abs(ours - theirs).max() <= 1e-5 * np.abs(theirs).max()
