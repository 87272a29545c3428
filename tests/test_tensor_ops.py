"""Tensor operations and top-level functions against torch: values, shapes, dtypes, float64
gradients, node names, in-place semantics, error classes and printing."""

from __future__ import annotations

import numpy as np
import pytest

import convscope as cs

torch = pytest.importorskip("torch")

RNG = np.random.default_rng(0)
A = RNG.standard_normal((2, 3, 4))
B = RNG.standard_normal((2, 3, 4))
TIES = np.array([[1.0, 3.0, 3.0, 0.0], [2.0, 2.0, -1.0, 2.0], [0.0, 0.0, 0.0, 0.0]])


def _pairs(ours, theirs):
    if isinstance(theirs, tuple | list):
        assert len(ours) == len(theirs)
        return list(zip(ours, theirs, strict=True))
    return [(ours, theirs)]


def _both(fn_ours, fn_theirs, *arrays, grad=True, rtol=1e-12):
    """Same values, shapes and dtypes; then the same float64 gradients for a random upstream
    gradient of every floating output."""
    ours_in = [cs.tensor(a, requires_grad=grad and a.dtype.kind == "f") for a in arrays]
    theirs_in = [torch.tensor(a, requires_grad=grad and a.dtype.kind == "f") for a in arrays]
    pairs = _pairs(fn_ours(*ours_in), fn_theirs(*theirs_in))
    for o, t in pairs:
        assert o.shape == tuple(t.shape)
        assert o.dtype == t.detach().numpy().dtype
        np.testing.assert_allclose(o.detach().numpy(), t.detach().numpy(), rtol=rtol, atol=1e-14)
    pairs = [(o, t) for o, t in pairs if t.requires_grad]
    if not grad or not pairs:
        return
    weights = [RNG.standard_normal(t.shape) for _, t in pairs]
    sum((o * cs.tensor(w)).sum() for (o, _), w in zip(pairs, weights, strict=True)).backward()
    sum((t * torch.tensor(w)).sum() for (_, t), w in zip(pairs, weights, strict=True)).backward()
    for o, t in zip(ours_in, theirs_in, strict=True):
        if t.grad is None:
            assert o.grad is None or not o.grad.numpy().any()
        else:
            np.testing.assert_allclose(o.grad.numpy(), t.grad.numpy(), rtol=rtol, atol=1e-14)


# ---------------------------------------------------------------- functions of two tensors
BINARY = [
    (lambda a, b: cs.cat([a, b], 1), lambda a, b: torch.cat([a, b], 1)),
    (lambda a, b: cs.concat([a, b], -1), lambda a, b: torch.concat([a, b], -1)),
    (lambda a, b: cs.cat((a, b[:, :1]), 1), lambda a, b: torch.cat((a, b[:, :1]), 1)),
    (lambda a, b: cs.stack([a, b], 2), lambda a, b: torch.stack([a, b], 2)),
    (lambda a, b: cs.stack([a, b], -1), lambda a, b: torch.stack([a, b], -1)),
    (lambda a, b: cs.add(a, b, alpha=2), lambda a, b: torch.add(a, b, alpha=2)),
    (lambda a, b: a.add(b[0], alpha=-0.5), lambda a, b: a.add(b[0], alpha=-0.5)),
    (lambda a, b: cs.sub(a, b[:, :1]), lambda a, b: torch.sub(a, b[:, :1])),
    (lambda a, b: a.sub(b, alpha=3), lambda a, b: a.sub(b, alpha=3)),
    (lambda a, b: cs.mul(a, b[0]), lambda a, b: torch.mul(a, b[0])),
    (lambda a, b: a.mul(b[:, :, :1]), lambda a, b: a.mul(b[:, :, :1])),
    (lambda a, b: cs.div(a, b.abs() + 1), lambda a, b: torch.div(a, b.abs() + 1)),
    (lambda a, b: a.div(b[1].abs() + 1), lambda a, b: a.div(b[1].abs() + 1)),
    (lambda a, b: cs.matmul(a, b.transpose(1, 2)), lambda a, b: torch.matmul(a, b.transpose(1, 2))),
    (lambda a, b: cs.matmul(a[0], b[0, 0]), lambda a, b: torch.matmul(a[0], b[0, 0])),
    (lambda a, b: a[0].matmul(b[0].T), lambda a, b: a[0].matmul(b[0].T)),
    (lambda a, b: cs.where(a > b, a, b), lambda a, b: torch.where(a > b, a, b)),
    (lambda a, b: cs.where(a > 0, 1.5, b), lambda a, b: torch.where(a > 0, 1.5, b)),
    (lambda a, b: cs.maximum(a, b), lambda a, b: torch.maximum(a, b)),
    (lambda a, b: cs.minimum(a, b[0]), lambda a, b: torch.minimum(a, b[0])),
    (lambda a, b: cs.max(a, b), lambda a, b: torch.max(a, b)),
    (lambda a, b: cs.min(a, b), lambda a, b: torch.min(a, b)),
    (lambda a, b: a.max(a.round()), lambda a, b: a.max(a.round())),  # ties split the gradient
    (lambda a, b: cs.clamp(a, min=b, max=b + 1), lambda a, b: torch.clamp(a, min=b, max=b + 1)),
    (lambda a, b: cs.clip(a, max=b[0]), lambda a, b: torch.clip(a, max=b[0])),
    (lambda a, b: cs.pow(a.abs() + 1, b), lambda a, b: torch.pow(a.abs() + 1, b)),
    (
        lambda a, b: cs.einsum("nci,ncj->nij", a, b),
        lambda a, b: torch.einsum("nci,ncj->nij", a, b),
    ),
    (lambda a, b: cs.einsum("ijk,ijk", a, b), lambda a, b: torch.einsum("ijk,ijk", a, b)),
    (lambda a, b: cs.einsum("ijk->ki", a), lambda a, b: torch.einsum("ijk->ki", a)),
    (lambda a, b: cs.einsum("ijk,jk->i", a, b[0]), lambda a, b: torch.einsum("ijk,jk->i", a, b[0])),
    (
        lambda a, b: cs.einsum("i,j->ij", a[0, 0], b[0, 0]),
        lambda a, b: torch.einsum("i,j->ij", a[0, 0], b[0, 0]),
    ),
    (
        lambda a, b: cs.einsum("bij,bkj,bk->bi", a, b, a[:, :, 0]),
        lambda a, b: torch.einsum("bij,bkj,bk->bi", a, b, a[:, :, 0]),
    ),
    (
        lambda a, b: cs.einsum("...ij,...kj->...ik", a, b[:1]),
        lambda a, b: torch.einsum("...ij,...kj->...ik", a, b[:1]),
    ),
    (lambda a, b: cs.einsum("ii->i", a[0, :, :3]), lambda a, b: torch.einsum("ii->i", a[0, :, :3])),
    (lambda a, b: cs.einsum("ii", a[0, :, :3]), lambda a, b: torch.einsum("ii", a[0, :, :3])),
]


@pytest.mark.parametrize(("ours", "theirs"), BINARY)
def test_binary_functions(ours, theirs):
    _both(ours, theirs, A, B)


# ---------------------------------------------------------------- functions of one tensor
UNARY = [
    (lambda a: cs.flatten(a, 1), lambda a: torch.flatten(a, 1)),
    (lambda a: a.flatten(0, 1), lambda a: a.flatten(0, 1)),
    (lambda a: cs.clamp(a, -0.5, 0.5), lambda a: torch.clamp(a, -0.5, 0.5)),
    (
        lambda a: cs.clamp(a, min=cs.zeros(4, dtype=cs.float64)),
        lambda a: torch.clamp(a, min=torch.zeros(4, dtype=torch.float64)),
    ),
    (lambda a: cs.where(a > 0, a, 0.0), lambda a: torch.where(a > 0, a, 0.0)),
    (lambda a: cs.permute(a, (2, 0, 1)), lambda a: torch.permute(a, (2, 0, 1))),
    (lambda a: a.permute(-1, 0, 1), lambda a: a.permute(-1, 0, 1)),
    (lambda a: cs.transpose(a, 0, 2), lambda a: torch.transpose(a, 0, 2)),
    (lambda a: a[0].t(), lambda a: a[0].t()),
    (lambda a: cs.chunk(a, 2, dim=2), lambda a: torch.chunk(a, 2, dim=2)),
    (lambda a: a.chunk(2, dim=1), lambda a: a.chunk(2, dim=1)),
    (lambda a: a.chunk(4, dim=-1), lambda a: a.chunk(4, dim=-1)),
    (lambda a: a.split(3, dim=2), lambda a: a.split(3, dim=2)),
    (lambda a: cs.split(a, [1, 2], dim=1), lambda a: torch.split(a, [1, 2], dim=1)),
    (
        lambda a: cs.std(a, dim=(0, 2), keepdim=True),
        lambda a: torch.std(a, dim=(0, 2), keepdim=True),
    ),
    (lambda a: a.std(1, correction=0), lambda a: a.std(1, correction=0)),
    (lambda a: a.std(), lambda a: a.std()),
    (lambda a: a.std(-1, unbiased=False), lambda a: a.std(-1, unbiased=False)),
    (lambda a: cs.var(a, (0, 1)), lambda a: torch.var(a, (0, 1))),
    (
        lambda a: a.var(2, keepdim=True, correction=2),
        lambda a: a.var(2, keepdim=True, correction=2),
    ),
    (lambda a: cs.mean(a, (1, 2)), lambda a: torch.mean(a, (1, 2))),
    (lambda a: a.mean((0, -1), keepdim=True), lambda a: a.mean((0, -1), keepdim=True)),
    (lambda a: cs.sum(a, (2, 0)), lambda a: torch.sum(a, (2, 0))),
    (lambda a: cs.max(a, 1).values, lambda a: torch.max(a, 1).values),
    (lambda a: a.min(-1, keepdim=True), lambda a: a.min(-1, keepdim=True)),
    (lambda a: cs.max(a), lambda a: torch.max(a)),
    (lambda a: a.amax((0, 2)), lambda a: a.amax((0, 2))),
    (lambda a: cs.amin(a, 1, keepdim=True), lambda a: torch.amin(a, 1, keepdim=True)),
    (lambda a: a.topk(2), lambda a: a.topk(2)),
    (
        lambda a: cs.topk(a, 2, dim=0, largest=False),
        lambda a: torch.topk(a, 2, dim=0, largest=False),
    ),
    (lambda a: a.sort(dim=1, descending=True), lambda a: a.sort(dim=1, descending=True)),
    (lambda a: cs.sort(a), lambda a: torch.sort(a)),
    (lambda a: a.argsort(dim=0), lambda a: a.argsort(dim=0)),
    (
        lambda a: cs.squeeze(cs.unsqueeze(a, 1), 1),
        lambda a: torch.squeeze(torch.unsqueeze(a, 1), 1),
    ),
    (lambda a: a.unsqueeze(-1).squeeze((0, 3)), lambda a: a.unsqueeze(-1).squeeze((0, 3))),
    (lambda a: a[:1].squeeze(), lambda a: a[:1].squeeze()),
    (lambda a: a[:, :1].expand(2, 5, 4), lambda a: a[:, :1].expand(2, 5, 4)),
    (lambda a: a[0, 0].expand(3, -1), lambda a: a[0, 0].expand(3, -1)),
    (lambda a: a[:, :, :1].expand_as(a), lambda a: a[:, :, :1].expand_as(a)),
    (lambda a: a.repeat(1, 2, 3), lambda a: a.repeat(1, 2, 3)),
    (lambda a: a[0].repeat(2, 1, 2), lambda a: a[0].repeat(2, 1, 2)),
    (lambda a: a.permute(2, 0, 1).contiguous(), lambda a: a.permute(2, 0, 1).contiguous()),
    (lambda a: a.transpose(0, 1).reshape(-1, 8), lambda a: a.transpose(0, 1).reshape(-1, 8)),
    (lambda a: a.view(6, -1), lambda a: a.view(6, -1)),
    (lambda a: a.transpose(1, 2).view(2, 4, 3), lambda a: a.transpose(1, 2).view(2, 4, 3)),
    (lambda a: cs.reshape(a, (4, 6)), lambda a: torch.reshape(a, (4, 6))),
    (lambda a: a.view_as(cs.zeros(4, 6)), lambda a: a.view_as(torch.zeros(4, 6))),
    (lambda a: a.reshape_as(cs.zeros(4, 6)), lambda a: a.reshape_as(torch.zeros(4, 6))),
    (lambda a: abs(a), lambda a: abs(a)),
    (lambda a: cs.abs(a), lambda a: torch.abs(a)),
    (lambda a: cs.neg(a), lambda a: torch.neg(a)),
    (lambda a: a.neg(), lambda a: a.neg()),
    (lambda a: cs.exp(a), lambda a: torch.exp(a)),
    (lambda a: cs.log(a.abs() + 0.1), lambda a: torch.log(a.abs() + 0.1)),
    (lambda a: cs.sqrt(a.abs() + 0.1), lambda a: torch.sqrt(a.abs() + 0.1)),
    (lambda a: cs.tanh(a), lambda a: torch.tanh(a)),
    (lambda a: cs.sigmoid(a), lambda a: torch.sigmoid(a)),
    (lambda a: cs.relu(a), lambda a: torch.relu(a)),
    (lambda a: cs.softmax(a, 1), lambda a: torch.softmax(a, 1)),
    (lambda a: a.softmax(-1), lambda a: a.softmax(-1)),
    (lambda a: cs.log_softmax(a, 0), lambda a: torch.log_softmax(a, 0)),
    (lambda a: cs.sign(a) * a, lambda a: torch.sign(a) * a),
    (lambda a: a.floor() + a.round(), lambda a: a.floor() + a.round()),
    (lambda a: cs.round(a * 10, decimals=1), lambda a: torch.round(a * 10, decimals=1)),
    (lambda a: a.pow(2) + cs.pow(2.0, a), lambda a: a.pow(2) + torch.pow(2.0, a)),
    (lambda a: a.type_as(cs.zeros(1)), lambda a: a.type_as(torch.zeros(1))),
    (lambda a: a.to("cpu", cs.float32), lambda a: a.to("cpu", torch.float32)),
]


@pytest.mark.parametrize(("ours", "theirs"), UNARY)
def test_unary_functions(ours, theirs):
    _both(ours, theirs, A)


@pytest.mark.parametrize(
    "op",
    [
        lambda x: x.max(),
        lambda x: x.amax(1),
        lambda x: x.amin(),
        lambda x: x.max(1).values,
        lambda x: x.min(0, keepdim=True).values,
    ],
)
def test_ties_share_the_gradient_like_torch(op):
    _both(op, op, TIES)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float32_and_float64_keep_their_dtype(dtype):
    a, b = A.astype(dtype), B.astype(dtype)
    for ours, theirs in BINARY[:20] + UNARY[:30]:
        out = ours(*(cs.tensor(v) for v in (a, b)[: ours.__code__.co_argcount]))
        ref = theirs(*(torch.tensor(v) for v in (a, b)[: theirs.__code__.co_argcount]))
        for o, t in _pairs(out, ref):
            assert o.dtype == t.numpy().dtype
            tol = 1e-5 if dtype == np.float32 else 1e-12
            np.testing.assert_allclose(o.numpy(), t.numpy(), rtol=tol, atol=tol)


# ---------------------------------------------------------------- dtypes and indices
def test_integer_results_and_promotion():
    x, t = cs.tensor(A), torch.tensor(A)
    assert cs.argmax(x, 2).tolist() == torch.argmax(t, 2).tolist()
    assert cs.argmin(x, 1, keepdim=True).tolist() == torch.argmin(t, 1, keepdim=True).tolist()
    assert x.argmax(keepdim=True).shape == tuple(t.argmax(keepdim=True).shape)
    assert cs.max(x, 0).indices.tolist() == torch.max(t, 0).indices.tolist()
    assert cs.argmax(x).item() == torch.argmax(t).item()
    assert cs.argmin(x).dtype == np.int64
    assert x.topk(3, dim=1).indices.tolist() == t.topk(3, dim=1).indices.tolist()
    assert cs.sort(cs.tensor(TIES), stable=True).indices.tolist() == (
        torch.sort(torch.tensor(TIES), stable=True).indices.tolist()
    )
    ties = cs.tensor(TIES).sort(descending=True, stable=True).indices.tolist()
    assert ties == torch.tensor(TIES).sort(descending=True, stable=True).indices.tolist()
    values = [np.array([1, 2]), np.array([True]), np.array([2.5], np.float32), np.int32([1])]
    ints, tints = [cs.tensor(v) for v in values], [torch.tensor(v) for v in values]
    for i in range(4):
        for j in range(4):
            ours, theirs = cs.cat([ints[i], ints[j]]), torch.cat([tints[i], tints[j]])
            assert ours.dtype == theirs.numpy().dtype and ours.tolist() == theirs.tolist()
    assert cs.stack([ints[0], ints[2].expand(2)]).dtype == np.float32
    cond = cs.tensor([True, False])
    for a, b in [(1, 0), (1.0, 0), (True, False), (cs.tensor([1, 2]), 0.5), (ints[3], 7)]:
        ta, tb = (torch.tensor(v.numpy()) if isinstance(v, cs.Tensor) else v for v in (a, b))
        ours, theirs = cs.where(cond, a, b), torch.where(torch.tensor([True, False]), ta, tb)
        assert ours.dtype == theirs.numpy().dtype and ours.tolist() == theirs.tolist()
    assert cs.sum(cs.tensor([True, True])).dtype == np.int64
    assert cs.tensor([1, 2]).sum(dtype=cs.float64).dtype == np.float64
    assert cs.tensor([1, 2]).mean(dtype=cs.float32).item() == 1.5
    assert cs.tensor([7, -7]).div(2, rounding_mode="floor").tolist() == [3, -4]
    assert cs.tensor([7, -7]).div(2, rounding_mode="trunc").tolist() == [3, -3]
    assert cs.div(cs.tensor([7.0, -7.0]), 2, rounding_mode="floor").tolist() == [3.0, -4.0]
    assert cs.tensor([-2, 0, 3]).sign().tolist() == [-1, 0, 1]
    assert cs.tensor([0.5, 1.5, 2.5]).round().tolist() == [0.0, 2.0, 2.0]  # half to even
    assert cs.numel(x) == 24 and x.size(-1) == 4 and x.size() == (2, 3, 4) and x.dim() == 3


@pytest.mark.parametrize(("length", "chunks"), [(5, 3), (6, 4), (7, 7), (3, 5), (0, 3), (12, 5)])
def test_chunk_sizes_follow_torch(length, chunks):
    ours = [p.shape for p in cs.zeros(length, 2).chunk(chunks)]
    assert ours == [tuple(p.shape) for p in torch.zeros(length, 2).chunk(chunks)]


def test_like_factories():
    x, t = cs.tensor(A), torch.tensor(A)
    pairs = [
        (cs.zeros_like(x), torch.zeros_like(t)),
        (cs.ones_like(x, dtype=cs.int32), torch.ones_like(t, dtype=torch.int32)),
        (cs.full_like(cs.tensor([1, 2]), 2.7), torch.full_like(torch.tensor([1, 2]), 2.7)),
        (cs.empty_like(x).zero_(), torch.empty_like(t).zero_()),
        (x.new_zeros(2, 3), t.new_zeros(2, 3)),
        (x.new_ones((2,)), t.new_ones((2,))),
        (x.new_full((1, 2), 3), t.new_full((1, 2), 3)),
        (x.new_empty(3).fill_(1), t.new_empty(3).fill_(1)),
        (x.new_tensor([1, 2]), t.new_tensor([1, 2])),
    ]
    for ours, theirs in pairs:
        assert ours.dtype == theirs.numpy().dtype
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    assert cs.zeros_like(x, requires_grad=True).requires_grad
    cs.manual_seed(3)
    torch.manual_seed(3)
    np.testing.assert_array_equal(
        cs.rand_like(cs.zeros(2, 3)).numpy(), torch.rand_like(torch.zeros(2, 3)).numpy()
    )
    assert cs.randn_like(x).dtype == np.float64 and cs.randn_like(x).shape == x.shape


# ---------------------------------------------------------------- node names
NAMED = [
    lambda x: x.sum(),
    lambda x: x.sum(1),
    lambda x: x.mean(),
    lambda x: x.mean((0, 1)),
    lambda x: x.max(),
    lambda x: x.max(1).values,
    lambda x: x.std(),
    lambda x: x.var(1),
    lambda x: x.amax(1),
    lambda x: x + 1,
    lambda x: 1 - x,
    lambda x: x - x,
    lambda x: x * 2,
    lambda x: x / 2,
    lambda x: -x,
    lambda x: x**2,
    lambda x: x.abs() ** x,
    lambda x: 2**x,
    lambda x: x[0] @ x[1].T,
    lambda x: x[0, 0] @ x[0, 0],
    lambda x: x[0] @ x[0, 0],
    lambda x: x @ x.transpose(1, 2),
    lambda x: x.reshape(-1),
    lambda x: x.view(6, 4),
    lambda x: x.transpose(1, 2).reshape(-1),
    lambda x: x.flatten(),
    lambda x: x.permute(2, 1, 0),
    lambda x: x.transpose(0, 1),
    lambda x: x.unsqueeze(1),
    lambda x: x[:1].squeeze(),
    lambda x: x[:1].squeeze(0),
    lambda x: x[0],
    lambda x: x[1:],
    lambda x: x[:, 0],
    lambda x: x[None],
    lambda x: x[..., 1:],
    lambda x: x[[0, 1]],
    lambda x: x[:, :],
    lambda x: x.exp(),
    lambda x: x.abs(),
    lambda x: x.tanh(),
    lambda x: x.softmax(1),
    lambda x: x.log_softmax(1),
    lambda x: torch.cat([x, x]) if isinstance(x, torch.Tensor) else cs.cat([x, x]),
    lambda x: x.chunk(2, 1)[0],
    lambda x: x.split([1, 2], 1)[1],
    lambda x: x[:, :1].expand(2, 3, 4),
    lambda x: x.repeat(2, 1, 1),
    lambda x: x.transpose(0, 2).contiguous(),
    lambda x: x.clone(),
    lambda x: x.double(),
    lambda x: x.topk(2).values,
    lambda x: x.sort().values,
    lambda x: x.sign(),
    lambda x: x.floor(),
    lambda x: x.round(),
    lambda x: x.maximum(x),
]


@pytest.mark.parametrize("op", NAMED)
def test_grad_fn_names_match_torch(op):
    ours = op(cs.tensor(A, dtype=cs.float32, requires_grad=True))
    theirs = op(torch.tensor(A, dtype=torch.float32, requires_grad=True))
    assert repr(ours.grad_fn) == f"<{type(theirs.grad_fn).__name__}>"


# ---------------------------------------------------------------- in place
def test_in_place_without_grad_writes_the_memory():
    for name, args, *alpha in [
        ("add_", (2.0,)),
        ("add_", (cs.tensor([1.0, 2.0, 3.0]),), 2),
        ("sub_", (cs.tensor([[1.0], [2.0]]),)),
        ("mul_", (cs.tensor([2.0, 0.5, 1.0], dtype=cs.float64),)),
        ("div_", (4,)),
        ("clamp_", (-0.5, 0.5)),
        ("clamp_", (cs.tensor([0.0, -1.0, 0.0]),)),
        ("fill_", (cs.tensor(3.0),)),
        ("zero_", ()),
        ("copy_", (cs.tensor([1, 2, 3]),)),
    ]:
        x = cs.tensor(A[0, :2, :3].copy(), dtype=cs.float32)
        view = x[0]
        t = torch.tensor(A[0, :2, :3].copy(), dtype=torch.float32)
        targs = [torch.tensor(a.numpy()) if isinstance(a, cs.Tensor) else a for a in args]
        kwargs = {"alpha": alpha[0]} if alpha else {}
        assert getattr(x, name)(*args, **kwargs) is x
        getattr(t, name)(*targs, **kwargs)
        assert x.dtype == np.float32, name
        np.testing.assert_allclose(x.numpy(), t.numpy(), rtol=1e-6, err_msg=name)
        np.testing.assert_array_equal(view.numpy(), x.numpy()[0])  # a view sees the change
    y = cs.ones(3)
    alias = y
    y += 1
    y *= cs.tensor([1.0, 2.0, 3.0])
    y -= 1
    y /= 2
    assert alias is y and y.tolist() == [0.5, 1.5, 2.5]
    w = cs.ones(2, requires_grad=True)
    with cs.no_grad():
        w.mul_(3).sub_(1)
    assert w.tolist() == [2.0, 2.0] and w.is_leaf and w.grad_fn is None


def test_in_place_with_grad_records_like_torch():
    def run(lib, make):
        x, b = (make(v, requires_grad=True) for v in (A[0], B[0]))
        y = x * 2
        y.add_(b, alpha=0.5).mul_(b).div_(b.abs() + 1).clamp_(-0.7, 0.9)
        y.sub_(1)
        z = x.new_zeros(x.shape)
        z.copy_(y).mul_(x)  # a leaf without grad joins the graph
        (z * lib.tensor(B[1])).sum().backward()
        return z, x.grad, b.grad, y.grad_fn, z.grad_fn

    ours = run(cs, cs.tensor)
    theirs = run(torch, torch.tensor)
    for o, t in zip(ours[:3], theirs[:3], strict=True):
        np.testing.assert_allclose(o.detach().numpy(), t.detach().numpy(), rtol=1e-12)
    for o, t in zip(ours[3:], theirs[3:], strict=True):
        assert repr(o) == f"<{type(t).__name__}>"


IN_PLACE_ERRORS = [
    lambda lib: lib.ones(3, requires_grad=True).add_(1),
    lambda lib: lib.ones(3, requires_grad=True).zero_(),
    lambda lib: lib.zeros(3).add_(lib.zeros(2, 3)),
    lambda lib: lib.zeros(3, dtype=lib.int64).add_(1.5),
    lambda lib: lib.zeros(3, dtype=lib.int64).div_(2),
    lambda lib: lib.zeros(1, 3).expand(2, 3).add_(1),
    lambda lib: lib.zeros(3).fill_(lib.zeros(2)),
    lambda lib: lib.zeros(3).copy_(lib.zeros(2)),
]


@pytest.mark.parametrize("op", IN_PLACE_ERRORS)
def test_in_place_errors_match_torch(op):
    with pytest.raises(RuntimeError) as theirs:
        op(torch)
    with pytest.raises(RuntimeError) as ours:
        op(cs)
    assert str(ours.value).split(" ")[:3] == str(theirs.value).split(" ")[:3]


# ---------------------------------------------------------------- errors
ERRORS = [
    (RuntimeError, lambda lib, x: lib.cat([x, lib.zeros(2, 2, 4, dtype=lib.float64)], 2)),
    (RuntimeError, lambda lib, x: lib.cat([x, x[0]])),
    (RuntimeError, lambda lib, x: lib.cat([lib.tensor(1.0), lib.tensor(2.0)])),
    (ValueError, lambda lib, x: lib.cat([])),
    (IndexError, lambda lib, x: lib.cat([x, x], 3)),
    (RuntimeError, lambda lib, x: lib.stack([x, x[0]])),
    (IndexError, lambda lib, x: lib.stack([x, x], 4)),
    (RuntimeError, lambda lib, x: lib.chunk(x, 0)),
    (RuntimeError, lambda lib, x: x.chunk(-1, 1)),
    (RuntimeError, lambda lib, x: lib.split(x, [1, 1], 1)),
    (RuntimeError, lambda lib, x: x.split(0, 1)),
    (IndexError, lambda lib, x: x.split(1, 3)),
    (RuntimeError, lambda lib, x: lib.flatten(x, 2, 1)),
    (IndexError, lambda lib, x: x.flatten(0, 3)),
    (IndexError, lambda lib, x: x.sum(3)),
    (IndexError, lambda lib, x: x.mean((0, -4))),
    (RuntimeError, lambda lib, x: x.sum((0, 0))),
    (IndexError, lambda lib, x: x.max(5)),
    (IndexError, lambda lib, x: x.argmax(-4)),
    (IndexError, lambda lib, x: x.softmax(3)),
    (IndexError, lambda lib, x: x.unsqueeze(4)),
    (IndexError, lambda lib, x: x.squeeze(3)),
    (IndexError, lambda lib, x: x.transpose(0, 3)),
    (IndexError, lambda lib, x: x.size(3)),
    (RuntimeError, lambda lib, x: x.permute(0, 1)),
    (RuntimeError, lambda lib, x: x.permute(0, 1, 1)),
    (RuntimeError, lambda lib, x: x.permute(2, 0, 1).view(-1)),
    (RuntimeError, lambda lib, x: x.view(5, -1)),
    (RuntimeError, lambda lib, x: x.reshape(-1, -1)),
    (RuntimeError, lambda lib, x: x.reshape(-2, 12)),
    (RuntimeError, lambda lib, x: x.expand(2, 3, 5)),
    (RuntimeError, lambda lib, x: x.expand(3, 4)),
    (RuntimeError, lambda lib, x: x.expand(-1, 2, 3, 4)),
    (RuntimeError, lambda lib, x: x.repeat(2, 2)),
    (RuntimeError, lambda lib, x: x.topk(5)),
    (RuntimeError, lambda lib, x: x + lib.zeros(5)),
    (RuntimeError, lambda lib, x: x * lib.zeros(3, 1, 2)),
    (RuntimeError, lambda lib, x: lib.matmul(x[0], x[0])),
    (RuntimeError, lambda lib, x: lib.matmul(x[0, 0, 0], x[0])),
    (RuntimeError, lambda lib, x: lib.einsum("ij,jk->ik", x[0], x[0])),
    (RuntimeError, lambda lib, x: lib.einsum("ij,jk->ik", x[0])),
    (RuntimeError, lambda lib, x: lib.where(x, x, x)),
    (RuntimeError, lambda lib, x: lib.clamp(x)),
    (RuntimeError, lambda lib, x: lib.tensor([1, 2]).mean()),
    (RuntimeError, lambda lib, x: lib.tensor([1, 2]).std()),
    (RuntimeError, lambda lib, x: x.max(0, keepdim=True).values.new_zeros(0).max()),
    (NotImplementedError, lambda lib, x: lib.softmax(lib.tensor([1, 2]), 0)),
]


@pytest.mark.parametrize(("error", "op"), ERRORS)
def test_errors_match_torch(error, op):
    with pytest.raises(error) as theirs:
        op(torch, torch.tensor(A))
    with pytest.raises(error) as ours:
        op(cs, cs.tensor(A))
    first = str(theirs.value).split(" ")[0]
    if "torch" not in first:  # the same message, as far as its first word
        assert str(ours.value).split(" ")[0] == first, (str(ours.value), str(theirs.value))


def test_view_after_the_layers_of_a_cnn():
    """``x.view(n, -1)`` after convolution and pooling (tutorial code) needs C-contiguous
    outputs; ``reshape`` and ``contiguous()`` handle the permuted case."""
    x = cs.randn(2, 3, 8, 8)
    for layer in [cs.nn.Conv2d(3, 4, 3), cs.nn.MaxPool2d(2), cs.nn.AdaptiveAvgPool2d(1)]:
        out = layer(x)
        assert out.view(2, -1).shape == (2, out.numel() // 2)
    permuted = x.permute(0, 2, 3, 1)
    assert not permuted.is_contiguous() and permuted.contiguous().is_contiguous()
    np.testing.assert_array_equal(
        permuted.reshape(-1).numpy(), permuted.contiguous().view(-1).numpy()
    )
    assert x.contiguous() is x


# ---------------------------------------------------------------- printing
REPRS = [
    [1.0, 2.0],
    [0.12345, 2.0],
    [1e-5, 1.0],
    [123456.0, 1.0],
    [1e9, 2.0],
    [[1.5, -2.25], [3.0, 4.0]],
    3.0,
    [float("nan"), 1.5, float("-inf")],
    [float("nan"), 1.0],
    [-0.0, 0.0],
    [True, False],
    [1, -20, 300],
    [],
    np.zeros((0, 3)),
    np.arange(2000.0),
    np.arange(24).reshape(2, 3, 4),
    np.linspace(-1, 1, 30),
    np.linspace(-1, 1, 3000).reshape(3, 10, 100),
    RNG.standard_normal((4, 5, 6)) * 1e-6,
    RNG.standard_normal((3, 9)) * 100,
]


@pytest.mark.parametrize("data", REPRS, ids=range(len(REPRS)))
def test_repr_matches_torch(data):
    ours, theirs = cs.tensor(data), torch.tensor(data)
    if isinstance(data, np.ndarray) and data.dtype == np.float64:
        ours, theirs = ours.float(), theirs.float()
    assert repr(ours) == repr(theirs)
    assert str(ours) == str(theirs)


EIGHTHS = np.linspace(-1, 1, 8, dtype=np.float32).reshape(1, 8) / 3  # a full first line


def test_repr_dtype_and_grad_suffixes():
    cases = [
        (lambda lib: lib.tensor([1, 2], dtype=lib.int32), "dtype=int32"),
        (lambda lib: lib.tensor([1.0, 2.0], dtype=lib.float64), "dtype=float64"),
        (lambda lib: lib.tensor([1.5, 2.0], dtype=lib.float16), "dtype=float16"),
        (lambda lib: lib.tensor([], dtype=lib.int64), "dtype=int64"),
        (lambda lib: lib.ones(2, requires_grad=True), "requires_grad=True"),
        (lambda lib: lib.ones(2, 3, requires_grad=True).sum(), "SumBackward0"),
        (lambda lib: lib.ones(2, dtype=lib.float64, requires_grad=True) * 2, "MulBackward0"),
        (lambda lib: lib.tensor(EIGHTHS) + lib.ones(1, requires_grad=True), "AddBackward0"),
        (lambda lib: lib.tensor(EIGHTHS[:, :6]).double().requires_grad_(), "requires_grad"),
        (lambda lib: lib.ones(30, 2, requires_grad=True) * 1.5, "MulBackward0"),
    ]
    for make, part in cases:
        ours, theirs = repr(make(cs)), repr(make(torch)).replace("torch.", "")
        assert ours == theirs and part in ours


def test_format_of_a_scalar_tensor():
    assert f"{cs.tensor(0.123456):.3f}" == f"{torch.tensor(0.123456):.3f}" == "0.123"


def _random_tensor_data(rng: np.random.Generator) -> tuple[np.ndarray, str | None]:
    """Arrays over many magnitudes, shapes (empty and summarised ones too) and dtypes, some
    with nan/inf/zero, to exercise every printing style."""
    ndim = rng.integers(0, 4)
    shape = tuple(rng.integers(0, 9 if ndim > 1 else 40, size=ndim))
    if rng.random() < 0.05:
        shape = (int(rng.integers(900, 1200)),)
    data = rng.standard_normal(shape) * 10.0 ** rng.integers(-9, 11)
    kind = rng.integers(0, 5)
    if kind == 1:
        return np.round(data), str(rng.choice(["float32", "float64"]))
    if kind == 2:
        return rng.integers(-1000, 1000, size=shape), str(rng.choice(["int64", "int32"]))
    if kind == 3:
        return rng.random(shape) > 0.5, "bool"
    if kind == 4 and data.size:
        data.reshape(-1)[rng.integers(0, data.size)] = rng.choice([np.nan, np.inf, -np.inf, 0])
    return data, str(rng.choice(["float32", "float64", "float16"]))


def test_repr_matches_torch_on_random_tensors():
    rng = np.random.default_rng(7)
    with np.errstate(over="ignore"):
        for _ in range(300):
            data, dtype = _random_tensor_data(rng)
            ours = cs.tensor(data, dtype=getattr(cs, dtype))
            theirs = torch.tensor(data, dtype=getattr(torch, dtype))
            if dtype.startswith("float") and rng.random() < 0.3:
                ours, theirs = ours.requires_grad_() * 1, theirs.requires_grad_() * 1
            assert repr(ours) == repr(theirs).replace("torch.", "")


def test_imagenet_accuracy_recipe():
    """The top-k accuracy code of PyTorch's ImageNet example, step for step."""

    def accuracy(lib, output, target, topk=(1, 3)):
        with lib.no_grad():
            maxk, batch_size = max(topk), target.size(0)
            _, pred = output.topk(maxk, 1, True, True)
            pred = pred.t()
            correct = pred.eq(target.view(1, -1).expand_as(pred))
            res = []
            for k in topk:
                correct_k = correct[:k].reshape(-1).float().sum(0, keepdim=True)
                res.append(correct_k.mul_(100.0 / batch_size))
            return res

    logits, labels = RNG.standard_normal((8, 5)).astype(np.float32), RNG.integers(0, 5, 8)
    ours = accuracy(cs, cs.tensor(logits), cs.tensor(labels))
    theirs = accuracy(torch, torch.tensor(logits), torch.tensor(labels))
    assert [o.tolist() for o in ours] == [t.tolist() for t in theirs]
    assert cs.tensor([1, 2]).ne(cs.tensor([1, 3])).tolist() == [False, True]
