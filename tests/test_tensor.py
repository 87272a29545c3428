"""``cs.Tensor`` and the creation functions: dtype rules, NumPy interop, arithmetic, seeding."""

from __future__ import annotations

import operator

import numpy as np
import pytest

import convscope as cs

torch = pytest.importorskip("torch")


@pytest.mark.parametrize(
    ("data", "dtype"),
    [
        (1.5, np.float32),
        ([1.0, 2.0], np.float32),
        ([1, 2.5], np.float32),
        ([[1, 2], [3, 4]], np.int64),
        (7, np.int64),
        ([True, False], np.bool_),
        (np.arange(3, dtype=np.int32), np.int32),
        (np.ones(2, dtype=np.float64), np.float64),
        (np.ones(2, dtype=np.float16), np.float16),
        (np.float64(2.0), np.float64),
        (np.array([1, 0], dtype=np.uint8), np.uint8),
    ],
)
def test_dtype_inference_matches_torch(data, dtype):
    t = cs.tensor(data)
    assert t.dtype == dtype
    assert t.dtype == torch.tensor(data).numpy().dtype
    np.testing.assert_array_equal(t.numpy(), np.asarray(data))


def test_dtype_argument():
    assert cs.tensor([1, 2], dtype=cs.float64).dtype == np.float64
    assert cs.tensor([1.7, 2.2], dtype=cs.int64).dtype == np.int64
    assert cs.tensor(np.ones(3), dtype=cs.float32).dtype == np.float32
    assert cs.tensor([0, 1], dtype=cs.bool).dtype == np.bool_
    assert cs.float32 == np.dtype("float32") and cs.int64 == np.dtype("int64")
    assert cs.float64 == np.float64


def test_requires_grad_flag():
    assert cs.tensor([1.0], requires_grad=True).requires_grad
    assert not cs.tensor([1.0]).requires_grad


def test_numpy_interop_and_metadata():
    base = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    t = cs.tensor(base)
    assert isinstance(t, cs.Tensor)
    assert t.shape == (2, 3, 4) and isinstance(t.shape, tuple)
    assert t.ndim == 3
    assert t.dtype == np.float32
    assert isinstance(t.numpy(), np.ndarray)
    np.testing.assert_array_equal(t.numpy(), base)
    np.testing.assert_array_equal(np.asarray(t), base)
    assert np.asarray(t).dtype == np.float32
    assert cs.from_numpy(base).dtype == np.float32
    np.testing.assert_array_equal(cs.from_numpy(base).numpy(), base)
    assert cs.from_numpy(np.arange(3)).dtype == np.int64


def test_creation_functions():
    assert cs.zeros(2, 3).shape == (2, 3) and cs.zeros(2, 3).dtype == np.float32
    np.testing.assert_array_equal(cs.zeros(2, 3).numpy(), 0)
    assert cs.ones(4).dtype == np.float32
    np.testing.assert_array_equal(cs.ones(4).numpy(), 1)
    np.testing.assert_array_equal(cs.arange(5).numpy(), np.arange(5))
    assert cs.arange(5).dtype == torch.arange(5).numpy().dtype == np.int64
    np.testing.assert_allclose(cs.arange(0, 1, 0.25).numpy(), [0, 0.25, 0.5, 0.75])
    assert cs.arange(0, 1, 0.25).dtype == np.float32


@pytest.fixture
def operands():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((3, 4)).astype(np.float32)
    b = rng.standard_normal((4,)).astype(np.float32)
    c = rng.standard_normal((4, 2)).astype(np.float32)
    return a, b, c


BINARY = [operator.add, operator.sub, operator.mul, operator.truediv]


@pytest.mark.parametrize("op", BINARY, ids=lambda op: op.__name__)
def test_arithmetic_with_broadcasting(op, operands):
    a, b, _ = operands
    cases = [
        (cs.tensor(a), cs.tensor(b), op(a, b)),
        (cs.tensor(a), b, op(a, b)),
        (a, cs.tensor(b), op(a, b)),
        (cs.tensor(b), cs.tensor(a), op(b, a)),
        (b, cs.tensor(a), op(b, a)),
    ]
    for left, right, expected in cases:
        result = op(left, right)
        assert isinstance(result, cs.Tensor), (type(left), type(right))
        assert result.dtype == np.float32
        np.testing.assert_allclose(result.numpy(), expected, rtol=1e-6)
    for scalar in (2, 0.5):
        np.testing.assert_allclose(
            op(cs.tensor(a), scalar).numpy(), op(a, np.float32(scalar)), rtol=1e-6
        )
        np.testing.assert_allclose(
            op(scalar, cs.tensor(b)).numpy(), op(np.float32(scalar), b), rtol=1e-6
        )


def test_matmul(operands):
    a, _, c = operands
    np.testing.assert_allclose((cs.tensor(a) @ cs.tensor(c)).numpy(), a @ c, rtol=1e-6)
    np.testing.assert_allclose((cs.tensor(a) @ c).numpy(), a @ c, rtol=1e-6)
    assert (cs.tensor(a) @ cs.tensor(c)).shape == (3, 2)


@pytest.mark.parametrize(
    ("left", "op", "right"),
    [
        ([1, 2, 3], operator.truediv, 2),
        ([1, 2, 3], operator.mul, 1.5),
        ([1, 2, 3], operator.add, 2.5),
        ([1, 2, 3], operator.sub, 0.5),
        (2.5, operator.mul, 2),
        ([1, 2, 3], operator.add, 2),
        ([1.0, 2.0], operator.mul, 2.5),
        ([1.0, 2.0], operator.add, 2),
        ([True, False], operator.add, 1),
    ],
)
def test_scalar_promotion_matches_torch(left, op, right):
    """A Python scalar does not widen a tensor's dtype; int / int gives the default float."""
    expected = op(torch.tensor(left), right).numpy()
    result = op(cs.tensor(left), right)
    assert result.dtype == expected.dtype
    np.testing.assert_allclose(result.numpy(), expected)


@pytest.mark.parametrize(
    ("x", "y"),
    [
        ([1, 2], [1.0, 2.0]),
        (np.ones(2, np.float32), np.ones(2, np.float64)),
        (np.ones(2, np.int32), np.ones(2, np.int64)),
        ([True, False], [1, 2]),
    ],
    ids=["int64+float32", "float32+float64", "int32+int64", "bool+int64"],
)
def test_tensor_tensor_promotion_matches_torch(x, y):
    expected = (torch.tensor(x) + torch.tensor(y)).numpy().dtype
    assert (cs.tensor(x) + cs.tensor(y)).dtype == expected
    assert (cs.tensor(y) * cs.tensor(x)).dtype == expected


def test_indexing():
    base = np.arange(60, dtype=np.float32).reshape(3, 4, 5)
    t = cs.tensor(base)
    for index in [
        0,
        -1,
        (1, 2),
        (slice(None), 1),
        (Ellipsis, slice(None, None, 2)),
        (slice(1, 3), slice(None), 4),
        (0, slice(None, None, -1)),
    ]:
        np.testing.assert_array_equal(np.asarray(t[index]), base[index], err_msg=str(index))
    np.testing.assert_array_equal(np.asarray(t[cs.tensor([0, 2])]), base[[0, 2]])
    assert t[1, 2, 3].item() == base[1, 2, 3]


def test_item_tolist_reshape_sum():
    t = cs.tensor([[1, 2], [3, 4]])
    assert t.tolist() == [[1, 2], [3, 4]]
    assert cs.tensor([2.5]).item() == 2.5 and isinstance(cs.tensor([2.5]).item(), float)
    assert isinstance(cs.tensor(3).item(), int)
    assert t.reshape(4).tolist() == [1, 2, 3, 4]
    assert t.reshape(1, 4).shape == (1, 4)
    assert t.reshape((4, 1)).shape == (4, 1)
    assert t.sum().item() == 10
    assert cs.tensor([0.5, 0.25]).sum().item() == 0.75
    with pytest.raises((RuntimeError, ValueError)):
        t.item()


def test_repr_contains_values():
    assert all(v in repr(cs.tensor([1.5, 2.5, -3.25])) for v in ("1.5", "2.5", "-3.25"))
    assert all(v in repr(cs.tensor([[11, 22], [33, 44]])) for v in ("11", "22", "33", "44"))


def draw(fn, seed, *size):
    cs.manual_seed(seed)
    return fn(*size).numpy().copy()


@pytest.mark.parametrize("fn", [cs.rand, cs.randn], ids=["rand", "randn"])
def test_manual_seed_reproducibility(fn):
    first = draw(fn, 7, 3, 4)
    assert first.shape == (3, 4) and first.dtype == np.float32
    np.testing.assert_array_equal(draw(fn, 7, 3, 4), first)
    assert not np.array_equal(draw(fn, 8, 3, 4), first)
    cs.manual_seed(7)
    fn(3, 4)
    assert not np.array_equal(fn(3, 4).numpy(), first)  # the stream moves on


def test_random_distributions():
    u = draw(cs.rand, 0, 100_000).astype(np.float64)
    assert u.min() >= 0 and u.max() < 1
    assert abs(u.mean() - 0.5) < 0.005 and abs(u.var() - 1 / 12) < 0.002
    n = draw(cs.randn, 0, 100_000).astype(np.float64)
    assert abs(n.mean()) < 0.02 and abs(n.std() - 1) < 0.02
