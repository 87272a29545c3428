"""Module methods users expect besides forward: hooks, dtype moves, traversal, freezing,
state-dict order and load errors, compared with torch.nn.Module where torch defines them."""

from __future__ import annotations

import numpy as np
import pytest

import convscope as cs
import convscope.nn as nn


def _pair(reference):
    """The same small network in convscope and torch, with equal weights."""
    tnn = reference.nn
    ours = nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(64, 2)
    )
    theirs = tnn.Sequential(
        tnn.Conv2d(3, 4, 3), tnn.BatchNorm2d(4), tnn.ReLU(), tnn.Flatten(), tnn.Linear(64, 2)
    )
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    return ours, theirs


def test_state_dict_order_and_names_match_torch(reference):
    ours, theirs = _pair(reference)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert [n for n, _ in ours.named_buffers()] == [n for n, _ in theirs.named_buffers()]
    assert list(ours.state_dict(prefix="model.")) == list(theirs.state_dict(prefix="model."))


def test_shared_modules_are_listed_once_but_kept_in_state_dict(reference):
    conv = nn.Conv1d(1, 1, 1)
    ours = nn.Sequential(conv, conv)
    tconv = reference.nn.Conv1d(1, 1, 1)
    theirs = reference.nn.Sequential(tconv, tconv)
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert len(list(ours.named_modules(remove_duplicate=False))) == 3


def test_forward_hook_captures_and_replaces_output(reference):
    ours, theirs = _pair(reference)
    ours.eval(), theirs.eval()
    x = np.random.default_rng(0).standard_normal((2, 3, 6, 6)).astype(np.float32)
    seen, tseen = {}, {}
    handle = ours[0].register_forward_hook(lambda m, args, out: seen.update(out=out, args=args))
    theirs[0].register_forward_hook(lambda m, args, out: tseen.update(out=out))
    ours(cs.tensor(x)), theirs(reference.tensor(x))
    np.testing.assert_allclose(
        seen["out"].numpy(), tseen["out"].detach().numpy(), rtol=1e-5, atol=1e-6
    )
    assert isinstance(seen["args"], tuple) and seen["args"][0].shape == x.shape
    handle.remove()
    seen.clear()
    ours(cs.tensor(x))
    assert seen == {}

    # a hook's non-None result replaces the output
    with ours[2].register_forward_hook(lambda m, args, out: out * 0):
        assert float(np.abs(ours(cs.tensor(x)).numpy() - ours[4].bias.numpy()).max()) < 1e-6


def test_forward_pre_hook_replaces_arguments_and_prepend_orders():
    relu = nn.ReLU()
    calls = []
    relu.register_forward_pre_hook(lambda m, args: calls.append("a") or (args[0] * -1,))
    relu.register_forward_pre_hook(lambda m, args: calls.append("b"), prepend=True)
    out = relu(cs.tensor([1.0, -2.0]))
    assert out.tolist() == [0.0, 2.0] and calls == ["b", "a"]


def test_hooks_with_kwargs_and_always_call():
    class Scale(nn.Module):
        def forward(self, x, factor=1.0):
            if factor < 0:
                raise RuntimeError("negative factor")
            return x * factor

    layer = Scale()
    layer.register_forward_pre_hook(
        lambda m, args, kwargs: (args, {"factor": 3.0}), with_kwargs=True
    )
    got = []
    layer.register_forward_hook(lambda m, a, k, out: got.append(k["factor"]), with_kwargs=True)
    assert layer(cs.tensor([2.0]), factor=2.0).tolist() == [6.0] and got == [3.0]

    failing = Scale()
    called = []
    failing.register_forward_hook(lambda m, a, out: called.append(out), always_call=True)
    with pytest.raises(RuntimeError, match="negative factor"):
        failing(cs.tensor([1.0]), factor=-1.0)
    assert called == [None]


def test_dtype_moves_convert_parameters_buffers_and_grads(reference):
    ours, _ = _pair(reference)
    ours(cs.rand(2, 3, 6, 6)).sum().backward()
    weight = ours[0].weight
    assert ours.double() is ours
    assert weight.dtype == np.float64 and weight.grad.dtype == np.float64
    assert ours[0].weight is weight  # parameters keep their identity, as in torch
    assert ours[1].running_var.dtype == np.float64
    assert ours[1].num_batches_tracked.dtype == np.int64
    assert ours.half()[0].weight.dtype == np.float16
    assert ours.float()[0].weight.dtype == np.float32
    assert ours.to(cs.float64)[0].weight.dtype == np.float64
    assert ours.to("cpu", dtype=cs.float32)[0].weight.dtype == np.float32
    assert ours.to(cs.zeros(1, dtype=cs.float64))[0].weight.dtype == np.float64
    assert ours.to(device="cpu") is ours
    with pytest.raises(TypeError):
        ours.to(cs.int64)
    with pytest.raises(RuntimeError, match="cuda"):
        ours.to("cuda")


def test_requires_grad_freezes_parameters(reference):
    ours, _ = _pair(reference)
    ours[0].requires_grad_(False)
    assert [p.requires_grad for p in ours.parameters()] == [False, False, True, True, True, True]
    ours(cs.rand(2, 3, 6, 6)).sum().backward()
    assert ours[0].weight.grad is None and ours[4].weight.grad is not None


def test_apply_and_get_submodule(reference):
    ours, theirs = _pair(reference)
    order, torder = [], []
    ours.apply(lambda m: order.append(type(m).__name__))
    theirs.apply(lambda m: torder.append(type(m).__name__))
    assert order == torder
    assert ours.get_submodule("4") is ours[4]
    assert ours.get_parameter("4.bias") is ours[4].bias
    with pytest.raises(AttributeError):
        ours.get_submodule("7")


def test_load_state_dict_from_another_architecture_lists_every_problem(reference):
    ours, _ = _pair(reference)
    before = ours[0].weight.numpy().copy()
    other = reference.nn.Sequential(reference.nn.Conv2d(3, 8, 3), reference.nn.Linear(4, 2))
    state = {k: v.numpy() for k, v in other.state_dict().items()}
    with pytest.raises(RuntimeError) as info:
        ours.load_state_dict(state)
    text = str(info.value)
    assert "Missing key(s)" in text and '"1.running_mean"' in text
    assert "Unexpected key(s)" not in text  # every key of the other model exists here ...
    assert "size mismatch for 0.weight" in text and "size mismatch for 1.weight" in text
    np.testing.assert_array_equal(ours[0].weight.numpy(), before)  # nothing was copied

    result = ours.load_state_dict({"0.weight": before, "extra": np.zeros(1)}, strict=False)
    assert "extra" in result.unexpected_keys and "0.bias" in result.missing_keys
    with pytest.raises(RuntimeError, match="expected a numeric array"):
        ours.load_state_dict({**ours.state_dict(), "0.bias": np.array(["a"] * 4)})
    with pytest.raises(TypeError):
        ours.load_state_dict([("0.weight", before)])


def test_read_only_arrays_load(reference):
    ours, _ = _pair(reference)
    state = {k: v.numpy().copy() for k, v in ours.state_dict().items()}
    for array in state.values():
        array.setflags(write=False)
    ours.load_state_dict(state)
    ours(cs.rand(1, 3, 6, 6))  # and the module still computes


def test_zero_grad_keeps_or_drops_gradients():
    lin = nn.Linear(2, 1)
    lin(cs.ones(1, 2)).sum().backward()
    lin.zero_grad(set_to_none=False)
    assert lin.weight.grad.tolist() == [[0.0, 0.0]]
    lin.zero_grad()
    assert lin.weight.grad is None
