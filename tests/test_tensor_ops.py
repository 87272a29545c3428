"""Top-level tensor functions against torch: values, shapes, dtypes, float64 gradients, errors."""

from __future__ import annotations

import numpy as np
import pytest

import convscope as cs

torch = pytest.importorskip("torch")

RNG = np.random.default_rng(0)
A = RNG.standard_normal((2, 3, 4))
B = RNG.standard_normal((2, 3, 4))


def _both(fn_ours, fn_theirs, *arrays, grad=True):
    ours_in = [cs.tensor(a, requires_grad=grad) for a in arrays]
    theirs_in = [torch.tensor(a, requires_grad=grad) for a in arrays]
    ours, theirs = fn_ours(*ours_in), fn_theirs(*theirs_in)
    if isinstance(theirs, tuple | list):
        assert len(ours) == len(theirs)
        pairs = list(zip(ours, theirs, strict=True))
    else:
        pairs = [(ours, theirs)]
    for o, t in pairs:
        assert o.shape == tuple(t.shape)
        np.testing.assert_allclose(o.detach().numpy(), t.detach().numpy(), rtol=1e-12, atol=1e-14)
    if grad:
        weights = [RNG.standard_normal(t.shape) for _, t in pairs]
        sum(
            ((o * cs.tensor(w)).sum() for (o, _), w in zip(pairs, weights, strict=True)), 0
        ).backward()
        sum(
            (t * torch.tensor(w)).sum() for (_, t), w in zip(pairs, weights, strict=True)
        ).backward()
        for o, t in zip(ours_in, theirs_in, strict=True):
            np.testing.assert_allclose(o.grad.numpy(), t.grad.numpy(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (lambda a, b: cs.cat([a, b], 1), lambda a, b: torch.cat([a, b], 1)),
        (lambda a, b: cs.concat([a, b], -1), lambda a, b: torch.concat([a, b], -1)),
        (lambda a, b: cs.stack([a, b], 2), lambda a, b: torch.stack([a, b], 2)),
        (lambda a, b: cs.add(a, b, alpha=2), lambda a, b: torch.add(a, b, alpha=2)),
        (lambda a, b: cs.sub(a, b[:, :1]), lambda a, b: torch.sub(a, b[:, :1])),
        (lambda a, b: cs.mul(a, b[0]), lambda a, b: torch.mul(a, b[0])),
        (lambda a, b: cs.div(a, b.abs() + 1), lambda a, b: torch.div(a, b.abs() + 1)),
        (lambda a, b: cs.where(a > b, a, b), lambda a, b: torch.where(a > b, a, b)),
        (lambda a, b: cs.maximum(a, b), lambda a, b: torch.maximum(a, b)),
        (
            lambda a, b: cs.einsum("nci,ncj->nij", a, b),
            lambda a, b: torch.einsum("nci,ncj->nij", a, b),
        ),
        (lambda a, b: cs.einsum("ijk,ijk", a, b), lambda a, b: torch.einsum("ijk,ijk", a, b)),
    ],
)
def test_binary_functions(ours, theirs):
    _both(ours, theirs, A, B)


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (lambda a: cs.flatten(a, 1), lambda a: torch.flatten(a, 1)),
        (lambda a: cs.clamp(a, -0.5, 0.5), lambda a: torch.clamp(a, -0.5, 0.5)),
        (
            lambda a: cs.clamp(a, min=cs.zeros(4, dtype=cs.float64)),
            lambda a: torch.clamp(a, min=torch.zeros(4, dtype=torch.float64)),
        ),
        (lambda a: cs.where(a > 0, a, 0.0), lambda a: torch.where(a > 0, a, 0.0)),
        (lambda a: cs.permute(a, (2, 0, 1)), lambda a: torch.permute(a, (2, 0, 1))),
        (lambda a: cs.transpose(a, 0, 2), lambda a: torch.transpose(a, 0, 2)),
        (lambda a: cs.chunk(a, 2, dim=2), lambda a: torch.chunk(a, 2, dim=2)),
        (lambda a: cs.chunk(a, 2, dim=1), lambda a: torch.chunk(a, 2, dim=1)),
        (lambda a: a.split(3, dim=2), lambda a: a.split(3, dim=2)),
        (lambda a: cs.split(a, [1, 2], dim=1), lambda a: torch.split(a, [1, 2], dim=1)),
        (
            lambda a: cs.std(a, dim=(0, 2), keepdim=True),
            lambda a: torch.std(a, dim=(0, 2), keepdim=True),
        ),
        (lambda a: a.std(1, correction=0), lambda a: a.std(1, correction=0)),
        (lambda a: cs.mean(a, (1, 2)), lambda a: torch.mean(a, (1, 2))),
        (lambda a: cs.max(a, 1).values, lambda a: torch.max(a, 1).values),
        (
            lambda a: cs.squeeze(cs.unsqueeze(a, 1), 1),
            lambda a: torch.squeeze(torch.unsqueeze(a, 1), 1),
        ),
        (lambda a: abs(a), lambda a: abs(a)),
    ],
)
def test_unary_functions(ours, theirs):
    _both(ours, theirs, A)


def test_indices_and_errors():
    x = cs.tensor(A)
    t = torch.tensor(A)
    assert cs.argmax(x, 2).tolist() == torch.argmax(t, 2).tolist()
    assert cs.argmin(x, 1, keepdim=True).tolist() == torch.argmin(t, 1, keepdim=True).tolist()
    assert cs.max(x, 0).indices.tolist() == torch.max(t, 0).indices.tolist()
    assert cs.argmax(x).item() == torch.argmax(t).item()
    with pytest.raises(RuntimeError, match="Sizes of tensors must match"):
        cs.cat([x, cs.zeros(2, 2, 4, dtype=cs.float64)], 2)
    with pytest.raises(RuntimeError):
        torch.cat([t, torch.zeros(2, 2, 4, dtype=torch.float64)], 2)
    with pytest.raises(RuntimeError, match="stack expects each tensor"):
        cs.stack([x, x[0]])
    with pytest.raises(RuntimeError, match="chunk expects"):
        cs.chunk(x, 0)
    with pytest.raises(IndexError, match="Dimension out of range"):
        cs.cat([x, x], 3)
    with pytest.raises(RuntimeError, match="split_with_sizes"):
        cs.split(x, [1, 1], 1)
    with pytest.raises(RuntimeError, match="start_dim cannot come after end_dim"):
        cs.flatten(x, 2, 1)
    assert cs.cat([cs.tensor([1]), cs.tensor([2.5])]).dtype == np.float32  # promotion
