"""Training fusion: a BatchNorm with batch statistics followed by ReLU or ReLU6 in a
``Sequential`` runs as one recorded operation (``nn.fusion``), with the activation's backward
gated inside the normalisation's.  Values, gradients, running statistics and graph node names
equal the layers run one by one, and PyTorch's; it steps aside where fusing could be seen."""

from __future__ import annotations

import numpy as np
import pytest

import convscope as cs
import convscope.nn as nn
from convscope.nn import normalization as norm_modules
from convscope.ops import jit
from convscope.ops import normalization as norm_ops

torch = pytest.importorskip("torch")

PAIRS = [(nn.ReLU, torch.nn.ReLU, "ReluBackward0"), (nn.ReLU6, torch.nn.ReLU6, "HardtanhBackward0")]


@pytest.fixture
def fused_calls(monkeypatch):
    """The activations BatchNorm layers were asked to fuse (None: run alone)."""
    calls = []
    original = norm_modules._BatchNorm._normalize

    def spy(self, input, activation):
        calls.append(activation)
        return original(self, input, activation)

    monkeypatch.setattr(norm_modules._BatchNorm, "_normalize", spy)
    return calls


def _pair(act, tact, dtype, bn=nn.BatchNorm2d, tbn=torch.nn.BatchNorm2d):
    torch.manual_seed(0)
    theirs = torch.nn.Sequential(torch.nn.Conv2d(3, 6, 3, padding=1), tbn(6), tact())
    ours = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), bn(6), act())
    if dtype == np.float64:
        theirs, ours = theirs.double(), ours.double()
    with torch.no_grad():  # a non-trivial affine
        theirs[1].weight.uniform_(0.5, 1.5)
        theirs[1].bias.uniform_(-0.5, 0.5)
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    return ours.train(), theirs.train()


def _step(model, x, upstream, lib):
    if lib is torch:
        tx = torch.from_numpy(x.copy()).requires_grad_()
        y = model(tx)
        y.backward(torch.from_numpy(upstream))
        grads = [p.grad.numpy() for p in model.parameters()]
        return y.detach().numpy(), tx.grad.numpy(), grads, y.grad_fn.name()
    cx = cs.tensor(x, requires_grad=True)
    y = model(cx)
    y.backward(cs.tensor(upstream))
    grads = [p.grad.numpy() for p in model.parameters()]
    return y.detach().numpy(), cx.grad.numpy(), grads, repr(y.grad_fn)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("act", "tact", "node"), PAIRS)
@pytest.mark.parametrize("backend", ["auto", "numpy"])
def test_fused_batch_norm_activation_equals_layers_and_torch(
    act, tact, node, dtype, backend, fused_calls, monkeypatch
):
    monkeypatch.setattr(jit, "BACKEND", backend)
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((4, 3, 9, 8)) * 2).astype(dtype)
    ours, theirs = _pair(act, tact, dtype)
    y, gx, grads, name = _step(
        ours, x, upstream := rng.standard_normal((4, 6, 9, 8)).astype(dtype), cs
    )
    assert fused_calls == [("relu" if act is nn.ReLU else "relu6")]
    assert repr(y.dtype) == repr(np.dtype(dtype))
    t_y, t_gx, t_grads, t_name = _step(theirs, x, upstream, torch)
    # the layers one by one (a fresh copy: same weights and running statistics)
    separate, _ = _pair(act, tact, dtype)
    cx = cs.tensor(x, requires_grad=True)
    ys = separate[2](separate[1](separate[0](cx)))
    ys.backward(cs.tensor(upstream))
    tol = 1e-12 if dtype == np.float64 else 2e-5
    np.testing.assert_allclose(y, ys.detach().numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(gx, cx.grad.numpy(), rtol=tol, atol=tol * np.abs(gx).max())
    # the conv's bias gradient is 0 up to rounding (a BatchNorm follows): one scale for all
    scale = max(float(np.abs(want).max()) for want in t_grads)
    for got, alone in zip(grads, (p.grad.numpy() for p in separate.parameters()), strict=True):
        np.testing.assert_allclose(got, alone, rtol=tol, atol=tol * scale)
    np.testing.assert_allclose(y, t_y, rtol=tol, atol=tol)
    np.testing.assert_allclose(gx, t_gx, rtol=tol, atol=tol * np.abs(t_gx).max())
    for got, want in zip(grads, t_grads, strict=True):
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * scale)
    for key in ("running_mean", "running_var"):
        np.testing.assert_allclose(
            getattr(ours[1], key).numpy(), getattr(theirs[1], key).numpy(), rtol=tol
        )
    assert int(ours[1].num_batches_tracked.numpy()) == 1
    assert name == f"<{node}>" and t_name == node  # the graph's last node: the activation


@pytest.mark.parametrize("backend", ["auto", "numpy"])
def test_gate_passes_gradients_as_relu_and_hardtanh_do(backend, monkeypatch):
    """The gated backward sums and combination at the activation's edges: exactly 0 and 6,
    NaN and infinities, against the separate gate passes (``elementwise``)."""
    monkeypatch.setattr(jit, "BACKEND", backend)
    rng = np.random.default_rng(2)
    shape = (2, 3, 7000)
    g = rng.standard_normal(shape)
    x = rng.standard_normal(shape)
    output = rng.uniform(-1, 7, shape)
    output[0, 0, :6] = [0.0, 6.0, np.nan, np.inf, -np.inf, 3.0]
    centre, a, b, c = (rng.standard_normal(3) for _ in range(4))
    from convscope.ops import elementwise

    for gate, alone in [
        ((output, 0.0, float("nan"), True), elementwise.pass_positive(g, output)),
        ((output, 0.0, 6.0, False), elementwise.pass_inside(g, output, 0.0, 6.0)),
    ]:
        total, dot = norm_ops.grad_sums(g, x, centre, gate=gate)
        want_total, want_dot = norm_ops.grad_sums(alone, x, centre)
        np.testing.assert_allclose(total, want_total, rtol=1e-12)
        np.testing.assert_allclose(dot, want_dot, rtol=1e-12)
        got = norm_ops.combine(g, x, centre, a, b, c, gate=gate)
        np.testing.assert_array_equal(got, norm_ops.combine(alone, x, centre, a, b, c))


def test_fusion_steps_aside_where_it_could_be_seen(fused_calls):
    """Hooks on either layer, an evaluation-mode BatchNorm (running statistics) and an
    activation that is not the next layer all run the layers one by one."""
    rng = np.random.default_rng(3)
    x = cs.tensor(rng.standard_normal((2, 3, 5, 5)), requires_grad=True)
    ours, _ = _pair(nn.ReLU, torch.nn.ReLU, np.float64)
    seen = []
    handle = ours[2].register_forward_hook(lambda m, i, o: seen.append(o))
    ours(x)
    handle.remove()
    assert fused_calls == [None] and len(seen) == 1
    fused_calls.clear()
    ours.eval()
    ours(x)
    assert fused_calls == [None]
    fused_calls.clear()
    spaced = nn.Sequential(nn.BatchNorm2d(3), nn.Identity(), nn.ReLU()).double().train()
    spaced(x)
    assert fused_calls == [None]
    fused_calls.clear()
    with cs.no_grad():  # no graph, batch statistics: fused too (running statistics updated)
        ours.train()(x)
    assert fused_calls == ["relu"]


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
@pytest.mark.parametrize(("act", "tact", "node"), PAIRS)
@pytest.mark.parametrize("backend", ["auto", "numpy"])
def test_non_finite_values_spread_as_in_the_layers(act, tact, node, backend, monkeypatch):
    """A NaN in one channel and an infinity in another: the fused clamp keeps NaN as NaN,
    and outputs and gradients carry the same non-finite pattern as the layers one by one."""
    monkeypatch.setattr(jit, "BACKEND", backend)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 2, 6, 6))
    x[0, 0, 1, 1], x[1, 1, 2, 2] = np.nan, np.inf
    upstream = rng.standard_normal((3, 2, 6, 6))
    results = []
    for fused in (True, False):
        model = nn.Sequential(nn.BatchNorm2d(2), act()).double().train()
        cx = cs.tensor(x, requires_grad=True)
        y = model(cx) if fused else model[1](model[0](cx))
        y.backward(cs.tensor(upstream))
        results.append((y.detach().numpy(), cx.grad.numpy(), model[0].weight.grad.numpy()))
    for got, want in zip(*results, strict=True):
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_model_blocks_fuse_their_batch_norm_and_relu_in_training(fused_calls):
    """``conv_bn_act`` (ResNet's blocks call it) takes the training fusion too, not the
    residual's BatchNorm (an addition comes between it and its ReLU)."""
    from convscope.nn.fusion import conv_bn_act

    ours, _ = _pair(nn.ReLU, torch.nn.ReLU, np.float64)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 7, 7))
    results = []
    for fused in (True, False):
        conv, bn, act = (m for m in _pair(nn.ReLU, torch.nn.ReLU, np.float64)[0])
        cx = cs.tensor(x, requires_grad=True)
        y = conv_bn_act(cx, conv, bn, act) if fused else act(bn(conv(cx)))
        y.sum().backward()
        results.append((y.detach().numpy(), cx.grad.numpy(), bn.weight.grad.numpy()))
    assert fused_calls == ["relu", None]
    for got, want in zip(*results, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    fused_calls.clear()
    conv, bn, act = ours
    conv_bn_act(cs.tensor(x), conv, bn, act, residual=cs.tensor(np.zeros((2, 6, 7, 7))))
    assert fused_calls == [None]
