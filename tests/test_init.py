"""nn.init against PyTorch: the same gains, bounds and distributions (streams differ)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import convscope as cs
from convscope.nn import init

torch = pytest.importorskip("torch")
stats = pytest.importorskip("scipy.stats")
SHAPE = (64, 32, 5, 5)  # 51,200 draws: tight moment and KS checks


@pytest.mark.parametrize(
    ("nonlinearity", "param"),
    [
        ("linear", None),
        ("conv2d", None),
        ("conv_transpose3d", None),
        ("sigmoid", None),
        ("tanh", None),
        ("relu", None),
        ("leaky_relu", None),
        ("leaky_relu", 0.2),
        ("leaky_relu", math.sqrt(5)),
        ("selu", None),
    ],
)
def test_calculate_gain(nonlinearity, param):
    assert init.calculate_gain(nonlinearity, param) == pytest.approx(
        torch.nn.init.calculate_gain(nonlinearity, param), rel=1e-15
    )


def test_calculate_gain_rejects_unknown():
    with pytest.raises(ValueError):
        init.calculate_gain("swish")


def _both(fn_name, *args, **kwargs):
    cs.manual_seed(0)
    torch.manual_seed(0)
    ours = getattr(init, fn_name)(cs.zeros(*SHAPE, dtype=cs.float64), *args, **kwargs).numpy()
    theirs = getattr(torch.nn.init, fn_name)(
        torch.zeros(SHAPE, dtype=torch.float64), *args, **kwargs
    ).numpy()
    return ours.ravel(), theirs.ravel()


@pytest.mark.parametrize(
    ("fn_name", "args", "kwargs"),
    [
        ("uniform_", (-0.3, 0.7), {}),
        ("normal_", (0.5, 2.0), {}),
        ("xavier_uniform_", (), {"gain": 2.0}),
        ("xavier_normal_", (), {}),
        ("kaiming_uniform_", (), {"a": math.sqrt(5)}),
        ("kaiming_uniform_", (), {"mode": "fan_out", "nonlinearity": "relu"}),
        ("kaiming_normal_", (), {"mode": "fan_out", "nonlinearity": "relu"}),
        ("kaiming_normal_", (), {"a": 0.1}),
        ("trunc_normal_", (), {"mean": 0.2, "std": 1.5, "a": -1.0, "b": 2.5}),
    ],
)
def test_same_distribution_as_torch(fn_name, args, kwargs):
    ours, theirs = _both(fn_name, *args, **kwargs)
    assert stats.ks_2samp(ours, theirs).pvalue > 1e-3
    spread = theirs.std()
    assert abs(ours.mean() - theirs.mean()) < 0.05 * spread
    assert ours.std() == pytest.approx(spread, rel=0.03)
    if fn_name == "trunc_normal_":
        assert ours.min() >= kwargs["a"] and ours.max() <= kwargs["b"]


def test_uniform_bounds_match_torch_formula():
    """kaiming_uniform_ with PyTorch's conv default a=sqrt(5) is U(-1/sqrt(fan_in), ...)."""
    ours, theirs = _both("kaiming_uniform_", a=math.sqrt(5))
    bound = 1 / math.sqrt(32 * 5 * 5)
    assert np.abs(ours).max() <= bound and np.abs(theirs).max() <= bound
    assert np.abs(ours).max() > 0.99 * bound


def test_constant_zeros_ones():
    t = cs.zeros(3, 4)
    assert (init.constant_(t, 0.1).numpy() == np.float32(0.1)).all()
    assert (init.ones_(t).numpy() == 1).all() and (init.zeros_(t).numpy() == 0).all()


def test_fan_errors_match_torch():
    with pytest.raises(ValueError):
        init.xavier_uniform_(cs.zeros(5))
    with pytest.raises(ValueError):
        init.kaiming_normal_(cs.zeros(3, 3), mode="fan_avg")


def test_zero_element_tensor_warns_and_is_left_alone():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        init.kaiming_uniform_(cs.zeros(0, 3))
    assert any("zero-element" in str(w.message) for w in caught)


def test_init_draws_from_manual_seed():
    cs.manual_seed(5)
    a = init.normal_(cs.zeros(10)).numpy().copy()
    cs.manual_seed(5)
    assert (init.normal_(cs.zeros(10)).numpy() == a).all()
