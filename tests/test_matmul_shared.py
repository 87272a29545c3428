"""``ops.matmul``: a big product shared out over the threads gives ``np.matmul``'s numbers.

Every split (the stack, the columns, the rows) leaves each output element one BLAS dot
product over the same ``k``; BLAS's kernels for the edges of a block may add in another
order, so a few elements differ in the last bits, as they do between BLAS's own thread
counts.  Integers are exact.
"""

from __future__ import annotations

import numpy as np
import pytest

import convscope as cs
from convscope.ops import matmul as shared

SHAPES = [
    ((8, 3, 5), (5, 4)),  # a stack times one matrix: the stack is split
    ((3, 5), (8, 5, 4)),  # one matrix times a stack
    ((2, 1, 7, 5), (3, 5, 9)),  # broadcast stacks
    ((1, 6, 5), (2, 5, 3)),  # a stack of one: columns or rows
    ((40, 5), (5, 3)),  # tall: the rows are split
    ((3, 5), (5, 40)),  # wide: the columns are split
    ((64, 300), (300, 700)),
]


@pytest.mark.parametrize(("sa", "sb"), SHAPES)
@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_shared_product_is_numpys(sa, sb, threads, dtype, monkeypatch):
    monkeypatch.setattr(shared, "SHARED_FROM", 0)
    rng = np.random.default_rng(len(sa) * 10 + len(sb))
    a = (rng.standard_normal(sa) * 4).astype(dtype)
    b = (rng.standard_normal(sb) * 4).astype(dtype)
    with cs.num_threads(threads):
        got = shared.matmul(a, b)
        out = np.empty_like(got)
        into = shared.matmul(a, b, out=out)
    want = np.matmul(a, b)
    assert into is out and got.dtype == want.dtype
    # the rounding of a sum of k products of these magnitudes
    bound = np.matmul(np.abs(a).astype(np.float64), np.abs(b).astype(np.float64))
    tol = {np.float32: 1e-6, np.float64: 1e-15, np.int64: 0}[dtype] * sa[-1]
    for result in (got, out):
        assert np.all(np.abs(result.astype(np.float64) - want) <= tol * bound)


def test_mismatched_operands_raise_numpys_error(monkeypatch):
    monkeypatch.setattr(shared, "SHARED_FROM", 0)
    with cs.num_threads(2), pytest.raises(ValueError):
        shared.matmul(np.ones((2, 3, 4)), np.ones((5, 2)))
    with cs.num_threads(2), pytest.raises(ValueError):
        shared.matmul(np.ones((2, 3, 4)), np.ones((3, 4, 2)))


def test_linear_layer_and_its_gradients_agree_on_any_thread_count(monkeypatch):
    monkeypatch.setattr(shared, "SHARED_FROM", 0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 9, 30)).astype(np.float32)
    results = []
    for threads in (1, 2):
        cs.manual_seed(0)
        layer = cs.nn.Linear(30, 20)
        inp = cs.tensor(x, requires_grad=True)
        with cs.num_threads(threads):
            y = layer(inp)
            (y * y).sum().backward()
        results.append((y.numpy(), inp.grad.numpy(), layer.weight.grad.numpy()))
    for one, two in zip(*results, strict=True):
        np.testing.assert_allclose(one, two, rtol=1e-5, atol=1e-5)


def test_products_that_feed_a_gradient_are_shared_out(monkeypatch):
    """In a training step (``algorithms.precise``) a big product runs on convscope's threads
    with BLAS on one core each, so that BLAS's own workers stay idle (see
    ``GRADIENT_SHARED_FROM``); outside one it is left to BLAS."""
    from convscope.ops import algorithms, threads

    if not threads.blas_is_adjustable():
        pytest.skip("needs threadpoolctl to set BLAS's threads")
    shares = []
    real = threads.parallel_map
    monkeypatch.setattr(
        threads, "parallel_map", lambda fn, items: shares.append(1) or real(fn, items)
    )
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((128, 128)), rng.standard_normal((128, 128))  # 2M multiply-adds
    with cs.num_threads(2):
        plain = shared.matmul(a, b)
        assert shares == []
        with algorithms.precisely():
            training = shared.matmul(a, b)
    assert shares == [1]
    np.testing.assert_allclose(training, plain, rtol=1e-12, atol=1e-12)


def test_linear_layers_of_a_training_step_share_their_products(monkeypatch):
    """A Linear layer's forward (when recorded) and backward products count as feeding a
    gradient."""
    from convscope.ops import algorithms

    seen = []
    real = shared.matmul

    def spy(a, b, out=None):
        seen.append(algorithms.precise())
        return real(a, b, out)

    monkeypatch.setattr("convscope.autograd.functions.ops_matmul", spy)
    layer = cs.nn.Linear(6, 4)
    x = cs.tensor(np.ones((3, 6), np.float32), requires_grad=True)
    with cs.no_grad():
        layer(x)
    assert seen == [False]
    seen.clear()
    layer(x).sum().backward()
    assert seen == [True, True, True]  # forward, input gradient, weight gradient
