"""convscope.dask against the single-machine modules: random stacks over randomly (unevenly)
chunked dask arrays, computed with dask's synchronous scheduler, and once on a local
two-process distributed cluster."""

from __future__ import annotations

import itertools
import re

import dask.array as da
import distributed
import numpy as np
import pytest

import convscope as cs
import convscope.dask as csd
import convscope.nn as nn
import convscope.nn.functional as F

MODES = ("zeros", "reflect", "replicate", "circular")


def _chunks(rng: np.random.Generator, size: int) -> tuple[int, ...]:
    """Uneven chunks: random cut points (sometimes one chunk, sometimes one-cell chunks)."""
    cuts = sorted(set(rng.integers(1, size, size=rng.integers(0, min(size, 5))).tolist()))
    edges = [0, *cuts, size]
    return tuple(b - a for a, b in itertools.pairwise(edges))


def _dask(rng: np.random.Generator, array: np.ndarray) -> da.Array:
    chunks = (
        _chunks(rng, array.shape[0]),
        array.shape[1],
        *map(lambda s: _chunks(rng, s), array.shape[2:]),
    )
    return da.from_array(array, chunks=chunks)


def _close(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape and got.dtype == want.dtype
    if want.dtype.kind in "iu":
        np.testing.assert_array_equal(got, want)
    else:
        scale = float(np.abs(want).max()) if want.size else 1.0
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10 * scale)


def _check(module, array: np.ndarray, rng: np.random.Generator) -> None:
    x = _dask(rng, array)
    try:
        want = module(cs.tensor(array)).numpy()
    except RuntimeError as error:  # the same error, raised before anything is computed
        with pytest.raises(RuntimeError, match=re.escape(str(error))):
            csd.apply(module, x)
        return
    got = csd.apply(module, x).compute(scheduler="sync")
    _close(got, want)


def _random_conv(rng: np.random.Generator, n: int, channels: int):
    groups = int(rng.choice([1, 2])) if channels % 2 == 0 else 1
    out = groups * int(rng.integers(1, 3))
    kernel = tuple(int(k) for k in rng.integers(1, 5, size=n))
    stride = tuple(int(s) for s in rng.integers(1, 4, size=n))
    dilation = tuple(int(d) for d in rng.integers(1, 3, size=n))
    mode = str(rng.choice(MODES))
    kind = rng.integers(0, 4)
    if kind == 0:
        padding = "same" if all(s == 1 for s in stride) else "valid"
    elif kind == 1:
        padding = tuple(int(p) for p in rng.integers(0, 3, size=n))
    elif kind == 2 and n == 1 and mode == "zeros":
        padding = "causal"
    else:
        padding = int(rng.integers(0, 3))
    return nn.Conv1d if n == 1 else nn.Conv2d if n == 2 else nn.Conv3d, dict(
        in_channels=channels,
        out_channels=out,
        kernel_size=kernel,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        bias=bool(rng.integers(0, 2)),
        padding_mode=mode,
    )


@pytest.mark.parametrize("seed", range(24))
def test_random_conv_stacks_match_the_single_machine_module(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 1 + seed % 3
    size = {1: 40, 2: 19, 3: 12}[n]
    channels = int(rng.integers(1, 4)) * 2
    cs.manual_seed(seed)
    layers = []
    for _ in range(int(rng.integers(1, 3))):
        cls, kwargs = _random_conv(rng, n, channels)
        layers.append(cls(**kwargs))
        layers.append(nn.ReLU())
        channels = kwargs["out_channels"]
    net = nn.Sequential(*layers).double()
    array = rng.standard_normal((3, layers[0].in_channels, *(size,) * n))
    _check(net, array, rng)


@pytest.mark.parametrize("seed", range(12))
def test_transposed_convolutions_match(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    n = 1 + seed % 3
    size = {1: 23, 2: 11, 3: 6}[n]
    groups = int(rng.choice([1, 2]))
    stride = tuple(int(s) for s in rng.integers(1, 4, size=n))
    dilation = tuple(int(d) for d in rng.integers(1, 3, size=n))
    kernel = tuple(int(k) for k in rng.integers(1, 4, size=n))
    padding = tuple(
        int(rng.integers(0, d * (k - 1) + 1)) for k, d in zip(kernel, dilation, strict=True)
    )
    output_padding = tuple(
        int(rng.integers(0, max(s, d))) for s, d in zip(stride, dilation, strict=True)
    )
    cls = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)[n - 1]
    cs.manual_seed(seed)
    net = cls(
        2 * groups,
        3 * groups,
        kernel,
        stride,
        padding,
        output_padding,
        groups,
        bias=bool(seed % 2),
        dilation=dilation,
    ).double()
    _check(net, rng.standard_normal((2, 2 * groups, *(size,) * n)), rng)


@pytest.mark.parametrize("seed", range(12))
def test_pooling_matches(seed: int) -> None:
    rng = np.random.default_rng(200 + seed)
    n = 1 + seed % 3
    size = {1: 31, 2: 17, 3: 9}[n]
    kernel = int(rng.integers(1, 4))
    stride = int(rng.integers(1, 4))
    padding = int(rng.integers(0, kernel // 2 + 1))
    ceil_mode = bool(rng.integers(0, 2))
    if seed % 2:
        cls = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)[n - 1]
        pool = cls(kernel, stride, padding, dilation=int(rng.integers(1, 3)), ceil_mode=ceil_mode)
    else:
        cls = (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)[n - 1]
        extra = {} if n == 1 else {"divisor_override": [None, 3][seed % 4 // 2]}
        pool = cls(kernel, stride, padding, ceil_mode, count_include_pad=bool(seed % 3), **extra)
    _check(pool, rng.standard_normal((2, 3, *(size,) * n)), rng)


def test_integer_convolutions_and_pooling_are_exact() -> None:
    rng = np.random.default_rng(7)
    array = rng.integers(-9, 10, size=(2, 2, 21, 18)).astype(np.int64)
    conv = nn.Conv2d(2, 4, 3, stride=(2, 1), padding=2, dilation=2, padding_mode="reflect")
    conv.weight.data = rng.integers(-3, 4, size=conv.weight.shape).astype(np.int64)
    conv.bias.data = rng.integers(-3, 4, size=4).astype(np.int64)
    up = nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1, output_padding=1)
    up.weight.data = rng.integers(-3, 4, size=up.weight.shape).astype(np.int64)
    up.bias.data = rng.integers(-3, 4, size=2).astype(np.int64)
    net = nn.Sequential(conv, nn.MaxPool2d(3, 2, 1, ceil_mode=True), up, nn.ReLU())
    _check(net, array, rng)


def test_a_cnn_block_with_batch_norm_padding_layers_and_activations() -> None:
    rng = np.random.default_rng(3)
    cs.manual_seed(3)
    bn = nn.BatchNorm2d(8)
    bn.running_mean.data[:] = rng.standard_normal(8)
    bn.running_var.data[:] = rng.random(8) + 0.5
    net = (
        nn.Sequential(
            nn.ReflectionPad2d((1, 2, 0, 1)),
            nn.Conv2d(3, 8, 3, padding="same", padding_mode="circular"),
            bn,
            nn.PReLU(8),
            nn.Dropout2d(),
            nn.ConstantPad2d((-1, 1, 2, -1), 0.5),
            nn.Conv2d(8, 8, 3, stride=2, groups=8),
            nn.GELU(),
            nn.AvgPool2d(2, ceil_mode=True),
            nn.Identity(),
            nn.ReplicationPad2d(1),
            nn.Conv2d(8, 2, 1),
            nn.Sigmoid(),
        )
        .double()
        .eval()
    )
    _check(net, rng.standard_normal((3, 3, 33, 26)), rng)


def test_stride_grid_does_not_follow_the_chunks() -> None:
    """Stride 3 over chunks of 5 cells: every output computed once, none missed."""
    rng = np.random.default_rng(5)
    array = rng.standard_normal((1, 1, 50))
    w = rng.standard_normal((2, 1, 4))
    x = da.from_array(array, chunks=(1, 1, 5))
    y = csd.conv1d(x, w, stride=3, padding=1)
    _close(y.compute(scheduler="sync"), F.conv1d(array, w, stride=3, padding=1).numpy())
    # each output block reads its own cells plus a halo of kernel - stride = 1 cell, no more
    assert max(y.chunks[2]) <= 2


def test_a_stack_runs_as_one_task_per_output_block() -> None:
    """No intermediate result leaves a task: the graph is the input plus one layer whose
    blocks each read the input window with the whole stack's halo."""
    cs.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 2, 3, padding=1, padding_mode="reflect"), nn.ReLU(), nn.Conv2d(2, 2, 5)
    ).double()
    x = da.zeros((1, 1, 64, 64), chunks=(1, 1, 16, 16))
    y = csd.apply(net, x)
    assert len(y.dask.layers) == 2
    assert y.chunks[2:] == ((17, 16, 16, 11),) * 2  # the edges shift with the padding
    # output block (1, 1) covers rows and columns 17..33: it reads input cells 16..38 (a halo
    # of 1 before, 5 after), so input chunks 1 and 2 along each axis and nothing else
    dependencies = y.dask.get_all_dependencies()[(y.name, 0, 0, 1, 1)]
    assert {key[2:] for key in dependencies if isinstance(key, tuple)} == {
        (0, i, j) for i in (1, 2) for j in (1, 2)
    }


@pytest.mark.parametrize("n", [1, 2, 3])
def test_functional_forms_match_nn_functional(n: int) -> None:
    rng = np.random.default_rng(n)
    size = (30, 14, 7)[n - 1]
    array = rng.standard_normal((2, 4, *(size,) * n))
    x = _dask(rng, array)
    w = rng.standard_normal((6, 2, *(3,) * n))
    b = rng.standard_normal(6)
    conv = getattr(csd, f"conv{n}d")
    want = getattr(F, f"conv{n}d")(array, w, b, 2, 1, 1, 2).numpy()
    _close(conv(x, w, b, stride=2, padding=1, groups=2).compute(scheduler="sync"), want)
    padded = F.pad(array, (1,) * (2 * n), mode="reflect")
    want = getattr(F, f"conv{n}d")(padded, w, None, 1, 0, 2, 2).numpy()
    got = conv(x, w, None, 1, 1, 2, 2, padding_mode="reflect").compute(scheduler="sync")
    _close(got, want)
    wt = rng.standard_normal((4, 3, *(2,) * n))
    want = getattr(F, f"conv_transpose{n}d")(array, wt, None, 2, 1, 1, 1, 1).numpy()
    got = getattr(csd, f"conv_transpose{n}d")(x, wt, None, 2, 1, 1).compute(scheduler="sync")
    _close(got, want)
    unbatched = getattr(csd, f"conv{n}d")(x[0], w, b, groups=2).compute(scheduler="sync")
    _close(unbatched, getattr(F, f"conv{n}d")(array[0], w, b, groups=2).numpy())


def test_matches_torch_on_a_strided_reflect_stack(reference) -> None:
    torch = reference
    rng = np.random.default_rng(11)
    array = rng.standard_normal((2, 3, 37, 29))
    cs.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 4, 5, stride=2, padding=2, dilation=1, padding_mode="reflect"),
        nn.ReLU(),
        nn.Conv2d(4, 2, 3, dilation=2, padding="same", padding_mode="replicate"),
    ).double()
    tnet = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 5, stride=2, padding=2, padding_mode="reflect"),
        torch.nn.ReLU(),
        torch.nn.Conv2d(4, 2, 3, dilation=2, padding="same", padding_mode="replicate"),
    ).double()
    for ours, theirs in zip((net[0], net[2]), (tnet[0], tnet[2]), strict=True):
        theirs.weight.data = torch.from_numpy(ours.weight.data.copy())
        theirs.bias.data = torch.from_numpy(ours.bias.data.copy())
    got = csd.apply(net, _dask(rng, array)).compute(scheduler="sync")
    _close(got, tnet(torch.from_numpy(array)).detach().numpy())


@pytest.mark.parametrize(
    ("layer", "name"),
    [
        (nn.Linear(4, 2), "Linear"),
        (nn.Flatten(), "Flatten"),
        (nn.AdaptiveAvgPool2d(1), "AdaptiveAvgPool2d"),
        (nn.BatchNorm2d(2), "BatchNorm2d"),
        (nn.GroupNorm(1, 2), "GroupNorm"),
        (nn.MaxPool2d(2, return_indices=True), "MaxPool2d"),
        (nn.Dropout(), "Dropout"),
    ],
)
def test_global_layers_are_refused_up_front_naming_the_layer(layer, name: str) -> None:
    net = nn.Sequential(nn.Conv2d(2, 2, 3), nn.Sequential(nn.ReLU(), layer))
    x = da.zeros((1, 2, 8, 8), chunks=4)
    with pytest.raises(TypeError, match=rf"layer '1\.1' {name}\("):
        csd.apply(net, x)


def test_custom_modules_and_overridden_forwards_are_refused() -> None:
    class Doubled(nn.Conv2d):
        def forward(self, input):
            return super().forward(input) * 2

    with pytest.raises(TypeError, match="Doubled"):
        csd.apply(Doubled(1, 1, 3), da.zeros((1, 1, 8, 8)))


def test_errors_are_the_functions_errors() -> None:
    x = da.zeros((1, 3, 8, 8), chunks=4)
    with pytest.raises(RuntimeError, match="expected input\\[1, 3, 8, 8\\] to have 2 channels"):
        csd.conv2d(x, np.zeros((1, 2, 3, 3)))
    with pytest.raises(RuntimeError, match="Kernel size can't be greater"):
        csd.conv2d(x, np.zeros((1, 3, 9, 9)))
    with pytest.raises(RuntimeError, match="Padding size should be less"):
        csd.conv2d(x, np.zeros((1, 3, 3, 3)), padding=8, padding_mode="reflect")
    with pytest.raises(ValueError, match="padding_mode must be one of"):
        csd.conv2d(x, np.zeros((1, 3, 3, 3)), padding_mode="mirror")
    with pytest.raises(RuntimeError, match=r"MaxPool2d on batched 4-D input"):
        csd.apply(nn.MaxPool2d(2), da.zeros((2, 3, 8), chunks=4))  # not an unbatched (C, H, W)
    with pytest.raises(RuntimeError, match=r"ZeroPad2d on batched 4-D input"):
        csd.apply(nn.ZeroPad2d(1), da.zeros((2, 3, 8), chunks=4))
    with pytest.raises(TypeError, match=r"dask\.array\.Array"):
        csd.apply(nn.ReLU(), np.zeros((1, 1, 2)))


def test_runs_on_a_local_distributed_cluster() -> None:
    rng = np.random.default_rng(9)
    array = rng.standard_normal((2, 2, 40, 36))
    cs.manual_seed(1)
    net = nn.Sequential(
        nn.Conv2d(2, 3, 3, stride=2, padding=1, padding_mode="circular"),
        nn.Tanh(),
        nn.ConvTranspose2d(3, 2, 2, stride=2),
    ).double()
    with (
        distributed.LocalCluster(
            n_workers=2,
            processes=True,
            threads_per_worker=1,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        got = client.compute(csd.apply(net, _dask(rng, array))).result()
    _close(got, net(cs.tensor(array)).numpy())


def test_a_source_is_read_window_by_window() -> None:
    """A Source (a file, say) gives each output block's task its own window, halo included:
    the same result as the dask array, with no input chunks in the graph."""
    rng = np.random.default_rng(12)
    array = rng.standard_normal((1, 2, 45, 38))
    reads = []

    def read(spans):
        reads.append(tuple(spans))
        return array[(slice(None), slice(None), *(slice(a, b) for a, b in spans))]

    chunks = ((1,), (2,), (16, 16, 13), (20, 18))
    source = csd.Source(read, array.shape, array.dtype, chunks)
    cs.manual_seed(2)
    net = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)).double()
    y = csd.apply(net, source)
    assert all(not isinstance(key, tuple) or key[0] == y.name for key in dict(y.dask))
    _close(y.compute(scheduler="sync"), net(cs.tensor(array)).numpy())
    assert len(reads) == 6 and max(b - a for spans in reads for a, b in spans) <= 22
    circular = nn.Conv2d(2, 2, 3, padding=1, padding_mode="circular").double()
    got = csd.apply(circular, source).compute(scheduler="sync")  # pads the whole array
    _close(got, circular(cs.tensor(array)).numpy())
