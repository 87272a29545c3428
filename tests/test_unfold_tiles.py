"""The unfold + GEMM forward in tiles: any budget, any geometry, any thread count, PyTorch's
numbers.

Tiles that span whole trailing output dimensions are written by BLAS straight into the
output through a strided view; others go through a buffer.  With several threads, big
convolutions share their tiles out (each thread unfolds and multiplies its own, cutting a
lone tile into sample or row shares).  All of it is checked here on random 1-D/2-D/3-D
geometries (strides, padding, dilation, groups) with budgets from unlimited down to a few
output positions per tile, serial and shared over 2 and 3 threads.
"""

from __future__ import annotations

import numpy as np
import pytest

import convscope as cs
from convscope.ops import tiling, unfold_gemm, workspace
from convscope.ops.conv import conv_general

BUDGETS = [1 << 30, 6000, 2500, 1200]


def _case(rng: np.random.Generator, dim: int):
    c = int(rng.integers(1, 6))
    groups = int(rng.choice([1, c]))
    o = groups * int(rng.integers(1, 4))
    size = [int(rng.integers(3, 30 if dim < 3 else 11)) for _ in range(dim)]
    kernel = [int(rng.integers(1, 4)) for _ in range(dim)]
    stride = tuple(int(rng.integers(1, 3)) for _ in range(dim))
    pad = tuple(int(rng.integers(0, 2)) for _ in range(dim))
    dilation = tuple(int(rng.integers(1, 3)) for _ in range(dim))
    x = rng.standard_normal((int(rng.integers(1, 4)), c, *size))
    w = rng.standard_normal((o, c // groups, *kernel))
    return x, w, stride, pad, dilation, groups


@pytest.mark.parametrize("dim", [1, 2, 3])
@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_unfold_tiles_match_torch(reference, dim, seed, threads, monkeypatch):
    torch = reference
    monkeypatch.setattr(unfold_gemm, "SHARED_FROM", 0)  # share even the small ones
    monkeypatch.setattr(unfold_gemm, "SHARED_PLANE", 0)
    rng = np.random.default_rng(100 * dim + seed)
    functional = [torch.nn.functional.conv1d, torch.nn.functional.conv2d]
    functional.append(torch.nn.functional.conv3d)
    checked = 0
    for _ in range(6):
        x, w, stride, pad, dilation, groups = _case(rng, dim)
        try:
            expected = functional[dim - 1](
                torch.from_numpy(x), torch.from_numpy(w), None, stride, pad, dilation, groups
            ).numpy()
        except RuntimeError:  # the kernel does not fit the padded input
            continue
        for budget in BUDGETS:
            with workspace.workspace_budget(budget), cs.num_threads(threads):
                try:
                    y = conv_general(
                        x,
                        w,
                        stride=stride,
                        padding=tuple((p, p) for p in pad),
                        dilation=dilation,
                        groups=groups,
                        algorithm="unfold",
                    )
                except MemoryError:  # not even one position fits this budget
                    continue
            assert y.shape == expected.shape
            np.testing.assert_allclose(y, expected, rtol=1e-10, atol=1e-12)
            checked += 1
    assert checked >= 6


def test_row_strips_are_written_in_place():
    """A big 3-D layer gets tiles of whole (H, W) planes, and the output view BLAS writes
    into is the output's own memory."""
    x = np.zeros((1, 8, 40, 30, 30), np.float32)
    geom = tiling.ConvGeometry(
        input_shape=x.shape,
        kernel_size=(3, 3, 3),
        stride=(1, 1, 1),
        pads=((1, 1),) * 3,
        dilation=(1, 1, 1),
        input_dilation=(1, 1, 1),
        output_size=(40, 30, 30),
    )
    tiles, box = unfold_gemm._tiles(geom, np.dtype(np.float32), 8, 1 << 30)
    assert box[1:] == (30, 30) and box[0] < 40
    out = np.empty((1, 8, 40, 30, 30), np.float32)
    view = unfold_gemm._gemm_view(out, tiles[0], geom, 1)
    assert view is not None and np.shares_memory(view, out)
    assert view.shape == (1, 1, 8, box[0] * 900)


@pytest.mark.parametrize(
    ("shape", "count"),
    [((1, 4, 20, 20), 2), ((6, 4, 5, 5), 2), ((1, 4, 5, 7), 3), ((5, 4, 3, 3), 3)],
)
def test_each_thread_gets_a_share(shape, count):
    """A lone sample is cut into row bands, a batch in one tile into sample shares; together
    the shares cover every output cell once."""
    geom = tiling.ConvGeometry(
        input_shape=shape,
        kernel_size=(3, 3),
        stride=(1, 1),
        pads=((1, 1),) * 2,
        dilation=(1, 1),
        input_dilation=(1, 1),
        output_size=shape[2:],
    )
    tiles = unfold_gemm._shared_tiles(geom, np.dtype(np.float64), 4, 1 << 30, count)
    assert len(tiles) >= count
    covered = np.zeros((shape[0], *shape[2:]), int)
    for tile in tiles:
        covered[
            (tile.batch, *(slice(a, b) for a, b in zip(tile.start, tile.stop, strict=True)))
        ] += 1
    assert np.all(covered == 1)
