"""convscope's generator draws PyTorch's CPU stream: after the same seed, the same random
tensors and the same default layer weights (what tutorials print)."""

from __future__ import annotations

import numpy as np
import pytest

import convscope as cs
import convscope.nn as nn

torch = pytest.importorskip("torch")

SHAPES = [(1,), (3,), (15,), (16,), (17,), (4, 9), (2, 3, 5, 5), (1000,)]
DTYPES = [(np.float32, torch.float32), (np.float64, torch.float64)]


@pytest.mark.parametrize("seed", [0, 1, 42, 2**33 + 7])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize(("dtype", "tdtype"), DTYPES)
def test_rand_and_randn_follow_torch(seed, shape, dtype, tdtype):
    torch.manual_seed(seed)
    cs.manual_seed(seed)
    for _ in range(2):  # consecutive draws stay in step (randn's cached sample included)
        np.testing.assert_array_equal(
            cs.rand(*shape, dtype=dtype).numpy(), torch.rand(shape, dtype=tdtype).numpy()
        )
        ours, theirs = (
            cs.randn(*shape, dtype=dtype).numpy(),
            torch.randn(shape, dtype=tdtype).numpy(),
        )
        np.testing.assert_allclose(
            ours, theirs, rtol=2e-6 if dtype == np.float32 else 1e-14, atol=5e-6
        )
    assert cs.random.initial_seed() == torch.initial_seed()


@pytest.mark.parametrize(("dtype", "tdtype"), DTYPES)
def test_init_functions_follow_torch(dtype, tdtype):
    init, tinit = nn.init, torch.nn.init
    cases = [
        (lambda t: init.uniform_(t, -0.5, 2.0), lambda t: tinit.uniform_(t, -0.5, 2.0)),
        (lambda t: init.normal_(t, 1.0, 0.2), lambda t: tinit.normal_(t, 1.0, 0.2)),
        (init.kaiming_uniform_, tinit.kaiming_uniform_),
        (
            lambda t: init.kaiming_normal_(t, mode="fan_out", nonlinearity="relu"),
            lambda t: tinit.kaiming_normal_(t, mode="fan_out", nonlinearity="relu"),
        ),
        (init.xavier_uniform_, tinit.xavier_uniform_),
        (init.xavier_normal_, tinit.xavier_normal_),
    ]
    for ours_fn, theirs_fn in cases:
        for shape in [(4, 3, 3, 3), (2, 5)]:
            cs.manual_seed(7)
            torch.manual_seed(7)
            ours = ours_fn(cs.zeros(*shape, dtype=dtype)).numpy()
            theirs = theirs_fn(torch.zeros(shape, dtype=tdtype)).numpy()
            np.testing.assert_allclose(
                ours, theirs, rtol=3e-6 if dtype == np.float32 else 1e-13, atol=1e-7
            )


@pytest.mark.parametrize(
    "build",
    [
        lambda m: m.Conv1d(2, 3, 5),
        lambda m: m.Conv2d(3, 16, 3, padding=1),
        lambda m: m.Conv3d(1, 2, (2, 3, 3), groups=1, bias=False),
        lambda m: m.ConvTranspose2d(4, 2, 3, stride=2, groups=2),
        lambda m: m.Linear(10, 4),
        lambda m: m.Sequential(m.Conv2d(1, 4, 3), m.BatchNorm2d(4), m.Linear(4, 2)),
    ],
)
def test_default_layer_initialisation_is_torchs(build):
    cs.manual_seed(0)
    torch.manual_seed(0)
    ours, theirs = build(nn), build(torch.nn)
    ours_state, theirs_state = ours.state_dict(), theirs.state_dict()
    assert list(ours_state) == list(theirs_state)
    for key, value in theirs_state.items():
        np.testing.assert_array_equal(ours_state[key].numpy(), value.numpy(), err_msg=key)


def test_seeded_streams_repeat_and_differ():
    cs.manual_seed(3)
    a = cs.rand(5).numpy()
    cs.manual_seed(3)
    assert np.array_equal(a, cs.rand(5).numpy())
    assert not np.array_equal(a, cs.rand(5).numpy())
