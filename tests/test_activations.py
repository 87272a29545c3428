"""The activation layers real CNNs use, against torch: values, float64 gradients (kinks
included), reprs, state dicts and channel dropout."""

from __future__ import annotations

import numpy as np
import pytest

import convscope as cs
import convscope.nn as nn
import convscope.nn.functional as F

torch = pytest.importorskip("torch")

POINTS = np.array(
    [-30.0, -6.0, -3.0, -2.5, -1.0, -0.3, 0.0, 0.4, 1.0, 2.9, 3.0, 5.5, 6.0, 7.0, 25.0, 40.0]
)

CASES = [
    ("ReLU6", {}),
    ("Hardsigmoid", {}),
    ("Hardswish", {}),
    ("SiLU", {}),
    ("Mish", {}),
    ("ELU", {}),
    ("ELU", {"alpha": 0.5}),
    ("Softplus", {}),
    ("Softplus", {"beta": 2.0, "threshold": 5.0}),
    ("Hardtanh", {"min_val": -2.0, "max_val": 3.0}),
    ("GELU", {"approximate": "tanh"}),
]


@pytest.mark.parametrize(("name", "kwargs"), CASES)
def test_values_gradients_and_repr_match_torch(name, kwargs):
    ours, theirs = getattr(nn, name)(**kwargs), getattr(torch.nn, name)(**kwargs)
    assert repr(ours) == repr(theirs)
    rng = np.random.default_rng(0)
    x64 = np.concatenate([POINTS, rng.standard_normal(40) * 4]).reshape(2, 4, 7)
    for dtype in (np.float32, np.float64):
        x = x64.astype(dtype)
        got = ours(cs.tensor(x)).numpy()
        want = theirs(torch.from_numpy(x)).numpy()
        assert got.dtype == want.dtype
        np.testing.assert_allclose(
            got,
            want,
            rtol=1e-6 if dtype == np.float32 else 1e-13,
            atol=1e-6 if dtype == np.float32 else 1e-14,
        )
    xs = cs.tensor(x64, requires_grad=True)
    xt = torch.tensor(x64, requires_grad=True)
    g = rng.standard_normal(x64.shape)
    ours(xs).backward(cs.tensor(g))
    theirs(xt).backward(torch.from_numpy(g))
    # torch's hardsigmoid backward scales by a float32 1/6: agree to 1e-7 there
    rtol = 1e-7 if name == "Hardsigmoid" else 1e-12
    np.testing.assert_allclose(xs.grad.numpy(), xt.grad.numpy(), rtol=rtol, atol=1e-14)


@pytest.mark.parametrize("name", ["ReLU6", "Hardswish", "SiLU", "Hardsigmoid", "Mish"])
def test_inplace_writes_into_the_input(name):
    x = cs.tensor([-4.0, 0.5, 8.0])
    out = getattr(nn, name)(inplace=True)(x)
    assert out is x
    np.testing.assert_allclose(
        x.numpy(), getattr(torch.nn, name)()(torch.tensor([-4.0, 0.5, 8.0])).numpy(), rtol=1e-6
    )


@pytest.mark.parametrize("num", [1, 3])
def test_prelu_values_gradients_and_state(num):
    ours, theirs = nn.PReLU(num, init=0.1).double(), torch.nn.PReLU(num, init=0.1).double()
    assert repr(ours) == repr(theirs) and list(ours.state_dict()) == list(theirs.state_dict())
    theirs.weight.data.uniform_(-0.5, 0.5, generator=torch.Generator().manual_seed(0))
    ours.load_state_dict({"weight": theirs.weight.detach().numpy()})
    x = np.random.default_rng(1).standard_normal((2, 3, 5))
    xs, xt = cs.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    g = np.random.default_rng(2).standard_normal(x.shape)
    ys, yt = ours(xs), theirs(xt)
    np.testing.assert_allclose(ys.detach().numpy(), yt.detach().numpy(), rtol=1e-13)
    ys.backward(cs.tensor(g))
    yt.backward(torch.from_numpy(g))
    np.testing.assert_allclose(xs.grad.numpy(), xt.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(ours.weight.grad.numpy(), theirs.weight.grad.numpy(), rtol=1e-12)
    if num == 3:
        with pytest.raises(RuntimeError, match="Mismatch of parameter numbers"):
            ours(cs.rand(2, 4, 5, dtype=cs.float64))


@pytest.mark.parametrize("dims", [1, 2, 3])
def test_channel_dropout_zeroes_whole_channels(dims):
    layer = getattr(nn, f"Dropout{dims}d")(p=0.5)
    assert repr(layer) == repr(getattr(torch.nn, f"Dropout{dims}d")(p=0.5))
    cs.manual_seed(0)
    x = cs.ones(4, 16, *(3,) * dims)
    y = layer(x).numpy()
    per_channel = y.reshape(4, 16, -1)
    assert set(np.unique(per_channel)) <= {0.0, 2.0}
    assert (per_channel.min(axis=2) == per_channel.max(axis=2)).all()  # whole channels
    assert 0.2 < (per_channel[:, :, 0] == 0).mean() < 0.8
    assert np.array_equal(layer.eval()(x).numpy(), x.numpy())
    with pytest.raises(ValueError):
        getattr(nn, f"Dropout{dims}d")(p=1.5)
    with pytest.raises(RuntimeError):
        getattr(F, f"dropout{dims}d")(cs.ones(*(2,) * (dims + 3)))


def test_no_graph_under_no_grad():
    x = cs.rand(3, requires_grad=True)
    with cs.no_grad():
        for layer in (nn.ReLU6(), nn.SiLU(), nn.Hardswish(), nn.Mish()):
            assert layer(x).grad_fn is None


def test_erf_matches_math_erf_with_and_without_scipy(monkeypatch):
    import builtins
    import math

    from convscope.ops.elementwise import erf

    x = np.concatenate([np.linspace(-6, 6, 2001), [-30.0, -1e-8, 0.0, 1e-8, 30.0]])
    reference = np.array([math.erf(v) for v in x])
    np.testing.assert_allclose(erf(x), reference, rtol=1e-15, atol=1e-16)
    real_import = builtins.__import__

    def no_scipy(name, *args, **kwargs):
        if name.startswith("scipy"):
            raise ImportError("no scipy here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_scipy)
    np.testing.assert_allclose(erf(x), reference, rtol=1e-15, atol=1e-16)
    assert erf(x.astype(np.float32)).dtype == np.float32
