"""Differential tests of ``convscope.optim`` against ``torch.optim``.

Both libraries start from the same parameters and receive the same gradient sequences (random
arrays set as ``.grad``, with some parameters left without a gradient at some steps); after
every step the parameters must agree, and at the end the optimizer state too (float64 to
1e-12 relative, float32 to 1e-5: PyTorch's vectorised kernels use fused multiply-adds, which
NumPy cannot reproduce bit for bit).  Learning-rate schedules are plain Python arithmetic on
both sides and must be identical.
"""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

import convscope as cs  # noqa: E402
from convscope import optim  # noqa: E402
from convscope.optim import lr_scheduler  # noqa: E402

SHAPES = [(3, 4), (5,), (), (2, 1, 3)]
TOL = {np.dtype(np.float32): (1e-5, 1e-6), np.dtype(np.float64): (1e-12, 1e-14)}
TORCH_ONLY_KEYS = {"foreach", "differentiable", "fused", "capturable"}

SETTINGS = settings(
    derandomize=True,
    deadline=None,
    database=None,
    max_examples=25,
    suppress_health_check=[HealthCheck.too_slow],
)


# --------------------------------------------------------------------------------- helpers
def make_params(dtype, seed=0, shapes=SHAPES):
    """The same initial values as convscope and torch Parameters."""
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(shape).astype(dtype) for shape in shapes]
    ours = [cs.nn.Parameter(a.copy()) for a in arrays]
    theirs = [torch.nn.Parameter(torch.from_numpy(a.copy())) for a in arrays]
    return ours, theirs


def grouped(params, groups):
    """``params`` split into groups: ``groups`` is ``None`` (a plain list) or a list of
    ``(indices, options)``."""
    if groups is None:
        return list(params)
    return [{"params": [params[i] for i in idx], **options} for idx, options in groups]


def make_pair(name, kwargs, dtype, groups=None, seed=0):
    ours, theirs = make_params(dtype, seed)
    opt = getattr(optim, name)(grouped(ours, groups), **kwargs)
    ref = getattr(torch.optim, name)(grouped(theirs, groups), **kwargs, foreach=False)
    return ours, theirs, opt, ref


def as_grad(like, array):
    """``array`` as a gradient for ``like``: a convscope or a torch tensor."""
    return (
        cs.Tensor(array.copy()) if isinstance(like, cs.Tensor) else torch.from_numpy(array.copy())
    )


def feed_grads(ours, theirs, rng, p_none=0.25):
    """Give both sides the same random gradient, or none, for each parameter."""
    for a, b in zip(ours, theirs, strict=True):
        if rng.random() < p_none:
            a.grad = b.grad = None
        else:
            g = rng.standard_normal(a.shape).astype(a.dtype)
            a.grad, b.grad = as_grad(a, g), as_grad(b, g)


def assert_params_match(ours, theirs):
    rtol, atol = TOL[ours[0].dtype]
    for a, b in zip(ours, theirs, strict=True):
        assert a.dtype == b.detach().numpy().dtype
        np.testing.assert_allclose(a.numpy(), b.detach().numpy(), rtol=rtol, atol=atol)


def group_options(state_dict):
    """The groups of a state dict without torch's implementation switches (foreach...)."""
    return [
        {k: v for k, v in g.items() if k not in TORCH_ONLY_KEYS} for g in state_dict["param_groups"]
    ]


def assert_state_dicts_match(ours, theirs, tol):
    """Same structure (indices, keys, dtypes), close values, equal group options."""
    assert ours.keys() == {"state", "param_groups"}
    assert group_options(ours) == group_options(theirs)
    assert ours["state"].keys() == theirs["state"].keys()
    for index, ref_state in theirs["state"].items():
        state = ours["state"][index]
        assert state.keys() == ref_state.keys()
        for key, ref in ref_state.items():
            assert isinstance(state[key], cs.Tensor)
            assert state[key].dtype == ref.numpy().dtype, key
            np.testing.assert_allclose(state[key].numpy(), ref.numpy(), *tol)


def run_pair(ours, theirs, opt, ref, steps, seed=1, p_none=0.25):
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        feed_grads(ours, theirs, rng, p_none)
        opt.step()
        ref.step()
        assert_params_match(ours, theirs)


def check_against_torch(name, kwargs, dtype, groups=None, steps=20, seed=0):
    ours, theirs, opt, ref = make_pair(name, kwargs, dtype, groups, seed)
    run_pair(ours, theirs, opt, ref, steps, seed + 1)
    assert_state_dicts_match(opt.state_dict(), ref.state_dict(), TOL[np.dtype(dtype)])


DTYPES = st.sampled_from([np.float64, np.float32])
LRS = st.sampled_from([0.0, 1e-3, 0.1, 0.5]) | st.floats(1e-4, 1.0)


@st.composite
def sgd_options(draw):
    options = {
        "lr": draw(LRS),
        "momentum": draw(st.sampled_from([0.0, 0.5, 0.9, 0.99])),
        "dampening": draw(st.sampled_from([0.0, 0.1, 0.5, 1.0])),
        "weight_decay": draw(st.sampled_from([0.0, 1e-4, 0.1])),
        "nesterov": draw(st.booleans()),
        "maximize": draw(st.booleans()),
    }
    if options["nesterov"]:
        options["dampening"] = 0.0
        options["momentum"] = options["momentum"] or 0.9
    return options


@st.composite
def adam_options(draw, adamw=False):
    options = {
        "lr": draw(LRS),
        # beta1 < 0.5 takes lerp's other formula
        "betas": draw(st.sampled_from([(0.9, 0.999), (0.5, 0.9), (0.0, 0.99), (0.3, 0.5)])),
        "eps": draw(st.sampled_from([1e-8, 1e-6, 0.1])),
        "weight_decay": draw(st.sampled_from([0.0, 0.01, 0.3])),
        "amsgrad": draw(st.booleans()),
        "maximize": draw(st.booleans()),
    }
    if not adamw:
        options["decoupled_weight_decay"] = draw(st.booleans())
    return options


# ------------------------------------------------------------------------- optimizers vs torch
@SETTINGS
@given(options=sgd_options(), dtype=DTYPES, seed=st.integers(0, 2**16))
def test_sgd_matches_torch(options, dtype, seed):
    check_against_torch("SGD", options, dtype, seed=seed)


@SETTINGS
@given(options=adam_options(), dtype=DTYPES, seed=st.integers(0, 2**16))
def test_adam_matches_torch(options, dtype, seed):
    check_against_torch("Adam", options, dtype, seed=seed)


@SETTINGS
@given(options=adam_options(adamw=True), dtype=DTYPES, seed=st.integers(0, 2**16))
def test_adamw_matches_torch(options, dtype, seed):
    check_against_torch("AdamW", options, dtype, seed=seed)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("SGD", {"lr": 0.1, "momentum": 0.9}),
        ("SGD", {"lr": 0.05, "momentum": 0.9, "dampening": 0.3, "weight_decay": 0.1}),
        ("SGD", {"lr": 0.05, "momentum": 0.8, "nesterov": True, "maximize": True}),
        ("Adam", {}),
        ("Adam", {"lr": 0.01, "betas": (0.3, 0.6), "amsgrad": True, "weight_decay": 0.1}),
        ("AdamW", {}),
        ("AdamW", {"lr": 0.02, "amsgrad": True, "maximize": True, "weight_decay": 0.2}),
    ],
)
def test_named_configurations_match_torch_for_40_steps(name, kwargs, dtype):
    check_against_torch(name, kwargs, dtype, steps=40)


@pytest.mark.parametrize(
    ("name", "kwargs", "overrides"),
    [
        ("SGD", {"lr": 0.1}, {"lr": 0.01, "momentum": 0.9, "nesterov": True}),
        ("Adam", {"lr": 0.01}, {"betas": (0.5, 0.9), "amsgrad": True, "weight_decay": 0.1}),
        ("AdamW", {"lr": 0.01, "weight_decay": 0.1}, {"lr": 0.1, "maximize": True}),
    ],
)
def test_per_group_options_match_torch(name, kwargs, overrides):
    groups = [([0, 2], {}), ([1, 3], overrides)]
    check_against_torch(name, kwargs, np.float64, groups=groups, steps=25)


def test_adam_with_decoupled_weight_decay_is_adamw():
    ours, _ = make_params(np.float64)
    twins, _ = make_params(np.float64)
    adam = optim.Adam(ours, lr=0.01, weight_decay=0.1, decoupled_weight_decay=True)
    adamw = optim.AdamW(twins, lr=0.01, weight_decay=0.1)
    run_pair(ours, twins, adam, adamw, steps=10)
    assert [p.numpy().tolist() for p in ours] == [p.numpy().tolist() for p in twins]
    assert optim.AdamW(twins).defaults["weight_decay"] == 0.01


def test_parameters_without_grad_are_untouched_and_stateless():
    ours, theirs, opt, ref = make_pair("Adam", {"lr": 0.1}, np.float64)
    before = ours[1].numpy().copy()
    rng = np.random.default_rng(0)
    for _ in range(5):
        feed_grads(ours, theirs, rng, p_none=0.0)
        ours[1].grad = theirs[1].grad = None
        opt.step()
        ref.step()
    np.testing.assert_array_equal(ours[1].numpy(), before)
    assert ours[1] not in opt.state
    assert sorted(opt.state_dict()["state"]) == sorted(ref.state_dict()["state"]) == [0, 2, 3]


def test_sgd_without_momentum_keeps_no_state():
    ours, theirs, opt, ref = make_pair("SGD", {"lr": 0.1}, np.float64)
    run_pair(ours, theirs, opt, ref, steps=3)
    assert opt.state_dict()["state"] == {} == ref.state_dict()["state"]


def test_updates_are_in_place_on_the_parameter_arrays():
    (w,), _ = make_params(np.float64, shapes=[(4,)])
    array = w.data
    for opt in (optim.SGD([w], lr=0.1, momentum=0.9, weight_decay=0.1), optim.AdamW([w])):
        w.grad = cs.ones(4, dtype=cs.float64)
        opt.step()
        assert w.data is array


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "options",
    [
        {"momentum": 0.9},
        {"momentum": 0.9, "dampening": 0.25, "weight_decay": 1e-3},
        {"momentum": 0.5, "nesterov": True, "weight_decay": 0.1},
        {"momentum": 0.9, "maximize": True},
    ],
)
def test_sgd_one_pass_step_has_numpys_bits(monkeypatch, dtype, options):
    """Big parameters take SGD's compiled one-pass step: the same bits as NumPy's passes,
    the momentum buffer included, over several steps (the first one creates the buffer)."""
    from convscope.ops import jit

    rng = np.random.default_rng(3)
    start = rng.standard_normal((64, 70)).astype(dtype)  # above ONE_PASS_FROM
    grads = [rng.standard_normal(start.shape).astype(dtype) for _ in range(4)]
    results = []
    for backend in ("auto", "numpy"):
        monkeypatch.setattr(jit, "BACKEND", backend)
        w = cs.nn.Parameter(cs.tensor(start.copy()))
        opt = optim.SGD([w], lr=0.05, **options)
        for g in grads:
            w.grad = cs.tensor(g)
            opt.step()
        results.append((w.data.copy(), opt.state[w]["momentum_buffer"].data.copy()))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])


def test_sgd_takes_the_one_pass_step_for_a_strided_gradient(monkeypatch):
    """A gradient that is a transposed view (not C-contiguous) is copied once and then takes
    the compiled step, with the bits of a contiguous gradient."""
    from convscope.ops import jit

    monkeypatch.setattr(jit, "BACKEND", "auto")
    if jit.kernels() is None:
        pytest.skip("numba is not installed")
    calls = []
    original = jit.call
    monkeypatch.setattr(jit, "call", lambda name, *a: calls.append(name) or original(name, *a))
    rng = np.random.default_rng(4)
    start = rng.standard_normal((64, 70)).astype(np.float32)
    grads = [rng.standard_normal(start.shape).astype(np.float32) for _ in range(3)]
    results = []
    for strided in (False, True):
        w = cs.nn.Parameter(cs.tensor(start.copy()))
        opt = optim.SGD([w], lr=0.05, momentum=0.9, weight_decay=1e-3)
        for g in grads:
            w.grad = cs.tensor(np.asfortranarray(g) if strided else g)
            assert w.grad.numpy().flags.c_contiguous is not strided
            opt.step()
        results.append(w.data.copy())
    assert calls.count("sgd_momentum") == 4  # steps 2 and 3 of each run (1 makes the buffer)
    np.testing.assert_array_equal(results[0], results[1])


# ------------------------------------------------------------------------- step / zero_grad
def test_step_runs_the_closure_with_grad_enabled_and_returns_its_loss():
    x = np.arange(6.0).reshape(3, 2)
    w = cs.nn.Parameter(np.array([0.5, -0.25]))
    tw = torch.nn.Parameter(torch.tensor([0.5, -0.25], dtype=torch.float64))
    opt, ref = optim.SGD([w], lr=0.01, momentum=0.9), torch.optim.SGD([tw], lr=0.01, momentum=0.9)
    calls = []

    def closure():
        opt.zero_grad()
        loss = ((cs.tensor(x) @ w) ** 2).sum()
        loss.backward()
        calls.append(cs.is_grad_enabled())
        return loss

    def ref_closure():
        ref.zero_grad()
        loss = ((torch.from_numpy(x) @ tw) ** 2).sum()
        loss.backward()
        return loss

    for _ in range(5):
        with cs.no_grad(), torch.no_grad():
            loss, ref_loss = opt.step(closure), ref.step(ref_closure)
        assert loss.item() == pytest.approx(ref_loss.item(), rel=1e-12)
        np.testing.assert_allclose(w.numpy(), tw.detach().numpy(), rtol=1e-12)
    assert calls == [True] * 5
    assert opt.step() is None


def test_zero_grad_sets_none_or_zeros_in_place():
    w = cs.nn.Parameter(cs.ones(3))
    opt = optim.SGD([w])
    w.sum().backward()
    grad = w.grad
    opt.zero_grad(set_to_none=False)
    assert w.grad is grad
    assert w.grad.tolist() == [0.0, 0.0, 0.0]
    opt.zero_grad()
    assert w.grad is None
    opt.zero_grad()  # no gradient: nothing to do


def test_param_groups_and_repr():
    a, b = cs.nn.Parameter(cs.zeros(2)), cs.nn.Parameter(cs.zeros(2))
    opt = optim.SGD([{"params": a}, {"params": [b], "lr": 0.5}], lr=0.1, momentum=0.9)
    assert [g["params"] for g in opt.param_groups] == [[a], [b]]
    assert [(g["lr"], g["momentum"]) for g in opt.param_groups] == [(0.1, 0.9), (0.5, 0.9)]
    assert repr(opt).splitlines()[:4] == [
        "SGD (",
        "Parameter Group 0",
        "    dampening: 0",
        "    lr: 0.1",
    ]
    assert repr(opt).endswith("    weight_decay: 0\n)")


def test_named_parameters_give_param_names_like_torch():
    conv = cs.nn.Conv2d(1, 2, 3)
    ref_conv = torch.nn.Conv2d(1, 2, 3)
    opt = optim.Adam(conv.named_parameters())
    ref = torch.optim.Adam(ref_conv.named_parameters())
    assert opt.state_dict()["param_groups"] == group_options(ref.state_dict())
    assert opt.param_groups[0]["param_names"] == ["weight", "bias"]


# ------------------------------------------------------------------------- state_dict
@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("SGD", {"lr": 0.1, "momentum": 0.9, "nesterov": True}),
        ("Adam", {"lr": 0.01, "amsgrad": True}),
        ("AdamW", {"lr": 0.01, "weight_decay": 0.1}),
    ],
)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_state_dict_round_trip_continues_identically(name, kwargs, dtype):
    groups = [([0, 1], {}), ([2, 3], {"lr": 0.05})]
    ours, _ = make_params(dtype)
    opt = getattr(optim, name)(grouped(ours, groups), **kwargs)
    twins, _ = make_params(dtype, seed=99)  # other values: replaced below
    rng = np.random.default_rng(3)
    for _ in range(10):
        feed_grads(ours, twins, rng)
        opt.step()
    saved = copy.deepcopy(opt.state_dict())
    for mine, twin in zip(ours, twins, strict=True):
        twin.data[...] = mine.data
    fresh = getattr(optim, name)(grouped(twins, groups), lr=123.0)
    fresh.load_state_dict(saved)
    assert fresh.param_groups[1]["lr"] == 0.05
    assert fresh.param_groups[0]["params"] == twins[:2]
    run_pair(ours, twins, opt, fresh, steps=10, seed=4)
    for mine, twin in zip(ours, twins, strict=True):
        np.testing.assert_array_equal(mine.numpy(), twin.numpy())


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [("SGD", {"lr": 0.1, "momentum": 0.9}), ("Adam", {"lr": 0.01, "amsgrad": True})],
)
def test_loading_torch_state_dict_continues_like_torch(name, kwargs):
    ours, theirs, opt, ref = make_pair(name, kwargs, np.float64)
    run_pair(ours, theirs, opt, ref, steps=8)
    fresh = getattr(optim, name)(ours, **kwargs)
    fresh.load_state_dict(ref.state_dict())
    assert_state_dicts_match(fresh.state_dict(), ref.state_dict(), TOL[np.dtype(np.float64)])
    run_pair(ours, theirs, fresh, ref, steps=8, seed=5)


def test_load_state_dict_copies_and_casts_to_parameter_dtype():
    ours64, _ = make_params(np.float64, shapes=[(3,)])
    ours32, _ = make_params(np.float32, shapes=[(3,)])
    opt = optim.Adam(ours64)
    ours64[0].grad = cs.ones(3, dtype=cs.float64)
    opt.step()
    saved = opt.state_dict()
    fresh = optim.Adam(ours32)
    fresh.load_state_dict(saved)
    state = fresh.state[ours32[0]]
    assert state["exp_avg"].dtype == np.float32
    assert state["step"].dtype == np.float32 and state["step"].item() == 1.0
    saved["state"][0]["exp_avg"].data[...] = 7.0
    assert state["exp_avg"].tolist() == pytest.approx([0.1] * 3)


def test_load_state_dict_rejects_mismatched_groups():
    a, b = cs.nn.Parameter(cs.zeros(1)), cs.nn.Parameter(cs.zeros(1))
    ta, tb = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    cases = [
        (optim.SGD([a]), optim.SGD([{"params": [a]}, {"params": [b]}]).state_dict()),
        (optim.SGD([a]), optim.SGD([a, b]).state_dict()),
    ]
    ref_cases = [
        (torch.optim.SGD([ta]), torch.optim.SGD([{"params": [ta]}, {"params": [tb]}])),
        (torch.optim.SGD([ta]), torch.optim.SGD([ta, tb])),
    ]
    for (opt, saved), (ref, ref_source) in zip(cases, ref_cases, strict=True):
        with pytest.raises(ValueError) as ours:
            opt.load_state_dict(saved)
        with pytest.raises(ValueError) as theirs:
            ref.load_state_dict(ref_source.state_dict())
        assert str(ours.value) == str(theirs.value)


# ------------------------------------------------------------------------- errors
INVALID_OPTIONS = [
    ("SGD", {"lr": -0.1}),
    ("SGD", {"momentum": -0.5}),
    ("SGD", {"weight_decay": -1e-3}),
    ("SGD", {"nesterov": True}),
    ("SGD", {"nesterov": True, "momentum": 0.9, "dampening": 0.1}),
    ("Adam", {"lr": -1.0}),
    ("Adam", {"eps": -1e-8}),
    ("Adam", {"betas": (1.0, 0.999)}),
    ("Adam", {"betas": (0.9, -0.1)}),
    ("Adam", {"betas": (0, 0.999)}),
    ("Adam", {"weight_decay": -0.1}),
    ("AdamW", {"lr": -1.0}),
    ("AdamW", {"betas": (0.9, 1.5)}),
    ("AdamW", {"weight_decay": -0.01}),
]


@pytest.mark.parametrize(("name", "kwargs"), INVALID_OPTIONS)
def test_invalid_options_raise_like_torch(name, kwargs):
    with pytest.raises(Exception) as theirs:
        getattr(torch.optim, name)([torch.nn.Parameter(torch.zeros(1))], **kwargs)
    with pytest.raises(theirs.type) as ours:
        getattr(optim, name)([cs.nn.Parameter(cs.zeros(1))], **kwargs)
    assert str(ours.value) == str(theirs.value)


def _bad_params(lib):
    param = (cs.nn.Parameter if lib is cs else torch.nn.Parameter)(lib.zeros(2))
    non_leaf = param * 2
    return {
        "empty": [],
        "empty_generator": iter(()),
        "single_tensor": param,
        "not_a_tensor": [param, 3],
        "set": [{"params": {param}}],
        "overlapping_groups": [{"params": [param]}, {"params": [param]}],
        "non_leaf": [non_leaf],
        "mixed_names": [("w", param), lib.zeros(1, requires_grad=True)],
    }


@pytest.mark.parametrize("case", sorted(_bad_params(cs)))
def test_invalid_params_raise_like_torch(case):
    with pytest.raises(Exception) as theirs:
        torch.optim.SGD(_bad_params(torch)[case])
    with pytest.raises(theirs.type) as ours:
        optim.SGD(_bad_params(cs)[case])
    if case != "single_tensor":  # torch names its own tensor type there
        assert str(ours.value) == str(theirs.value)


def test_duplicate_parameters_warn_like_torch():
    w = cs.nn.Parameter(cs.zeros(1))
    with pytest.warns(UserWarning, match="duplicate parameters"):
        optim.SGD([w, w])
    with pytest.raises(TypeError, match="param_group must be a dict"):
        optim.SGD([w]).add_param_group([w])


# ------------------------------------------------------------------------- schedulers
def _scheduled_pair(name, kwargs, sched_name, sched_kwargs, dtype=np.float64):
    groups = [([0, 1], {}), ([2, 3], {"lr": 0.3})]
    ours, theirs, opt, ref = make_pair(name, kwargs, dtype, groups)
    sched = getattr(lr_scheduler, sched_name)(opt, **sched_kwargs)
    ref_sched = getattr(torch.optim.lr_scheduler, sched_name)(ref, **sched_kwargs)
    return ours, theirs, opt, ref, sched, ref_sched


SCHEDULES = [
    ("StepLR", {"step_size": 1}),
    ("StepLR", {"step_size": 7, "gamma": 0.5}),
    ("StepLR", {"step_size": 3, "gamma": 1.7}),
    ("CosineAnnealingLR", {"T_max": 10}),
    ("CosineAnnealingLR", {"T_max": 7, "eta_min": 0.01}),
    ("CosineAnnealingLR", {"T_max": 1, "eta_min": 1e-3}),
    ("CosineAnnealingLR", {"T_max": 40, "eta_min": 0.2}),
]


@pytest.mark.parametrize(("sched_name", "sched_kwargs"), SCHEDULES)
@pytest.mark.parametrize(
    ("name", "kwargs"), [("SGD", {"lr": 0.1, "momentum": 0.9}), ("Adam", {"lr": 0.05})]
)
def test_scheduled_training_matches_torch(name, kwargs, sched_name, sched_kwargs):
    ours, theirs, opt, ref, sched, ref_sched = _scheduled_pair(
        name, kwargs, sched_name, sched_kwargs
    )
    rng = np.random.default_rng(0)
    for _ in range(35):
        assert sched.get_last_lr() == ref_sched.get_last_lr()
        assert [g["lr"] for g in opt.param_groups] == [g["lr"] for g in ref.param_groups]
        feed_grads(ours, theirs, rng)
        opt.step()
        ref.step()
        sched.step()
        ref_sched.step()
        assert_params_match(ours, theirs)
    assert sched.state_dict() == ref_sched.state_dict()
    assert opt.state_dict()["param_groups"] == group_options(ref.state_dict())


def _lr_sequence(sched, opt, epochs):
    lrs = []
    for _ in range(epochs):
        opt.step()
        sched.step()
        lrs.append(sched.get_last_lr())
    return lrs


@pytest.mark.parametrize(("sched_name", "sched_kwargs"), SCHEDULES)
@pytest.mark.parametrize("last_epoch", [0, 5, 12])
def test_resuming_with_last_epoch_matches_torch(sched_name, sched_kwargs, last_epoch):
    group = {"lr": 0.05, "initial_lr": 0.1}
    opt = optim.SGD([{"params": [cs.nn.Parameter(cs.zeros(1))], **group}])
    ref = torch.optim.SGD([{"params": [torch.nn.Parameter(torch.zeros(1))], **group}])
    sched = getattr(lr_scheduler, sched_name)(opt, last_epoch=last_epoch, **sched_kwargs)
    ref_sched = getattr(torch.optim.lr_scheduler, sched_name)(
        ref, last_epoch=last_epoch, **sched_kwargs
    )
    assert sched.state_dict() == ref_sched.state_dict()
    assert _lr_sequence(sched, opt, 30) == _lr_sequence(ref_sched, ref, 30)


@pytest.mark.parametrize(("sched_name", "sched_kwargs"), SCHEDULES)
def test_scheduler_state_dict_round_trip(sched_name, sched_kwargs):
    def fresh():
        opt = optim.SGD([cs.nn.Parameter(cs.zeros(1))], lr=0.2, momentum=0.9)
        return opt, getattr(lr_scheduler, sched_name)(opt, **sched_kwargs)

    opt, sched = fresh()
    _lr_sequence(sched, opt, 12)
    saved_opt, saved_sched = copy.deepcopy(opt.state_dict()), copy.deepcopy(sched.state_dict())
    rest = _lr_sequence(sched, opt, 20)
    opt2, sched2 = fresh()
    sched2.load_state_dict(saved_sched)
    opt2.load_state_dict(saved_opt)
    assert _lr_sequence(sched2, opt2, 20) == rest


@pytest.mark.parametrize(("sched_name", "sched_kwargs"), SCHEDULES)
def test_step_with_epoch_uses_the_closed_form_like_torch(sched_name, sched_kwargs):
    opt = optim.SGD([cs.nn.Parameter(cs.zeros(1))], lr=0.2)
    ref = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.2)
    sched = getattr(lr_scheduler, sched_name)(opt, **sched_kwargs)
    ref_sched = getattr(torch.optim.lr_scheduler, sched_name)(ref, **sched_kwargs)
    opt.step()
    ref.step()
    for epoch in (3, 9, 4, 25):
        with pytest.warns(UserWarning, match="epoch parameter"):
            sched.step(epoch)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref_sched.step(epoch)
        assert sched.get_last_lr() == ref_sched.get_last_lr()


def test_scheduler_order_and_misuse_warnings():
    opt = optim.SGD([cs.nn.Parameter(cs.zeros(1))], lr=0.2)
    sched = lr_scheduler.StepLR(opt, step_size=2)
    with pytest.warns(UserWarning, match="before `optimizer.step\\(\\)`"):
        sched.step()
    with pytest.warns(UserWarning, match="get_last_lr"):
        sched.get_lr()
    opt2 = optim.SGD([cs.nn.Parameter(cs.zeros(1))], lr=0.2)
    sched2 = lr_scheduler.CosineAnnealingLR(opt2, T_max=3)
    opt2.step()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sched2.step()
    with pytest.raises(TypeError, match="list is not an Optimizer"):
        lr_scheduler.StepLR([], step_size=1)
    with pytest.raises(KeyError, match="initial_lr"):
        lr_scheduler.CosineAnnealingLR(optim.SGD([cs.nn.Parameter(cs.zeros(1))]), 5, last_epoch=3)


# ------------------------------------------------------------------------- end to end
@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("SGD", {"lr": 0.05}),
        ("SGD", {"lr": 0.02, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
        ("Adam", {"lr": 0.1}),
        ("AdamW", {"lr": 0.1, "amsgrad": True}),
    ],
)
def test_least_squares_loss_curve_matches_torch(name, kwargs):
    rng = np.random.default_rng(7)
    x, y, w0 = rng.standard_normal((16, 3)), rng.standard_normal(16), rng.standard_normal(3)
    w = cs.nn.Parameter(w0.copy())
    tw = torch.nn.Parameter(torch.from_numpy(w0.copy()))
    opt = getattr(optim, name)([w], **kwargs)
    ref = getattr(torch.optim, name)([tw], **kwargs)
    sched = lr_scheduler.CosineAnnealingLR(opt, T_max=20)
    ref_sched = torch.optim.lr_scheduler.CosineAnnealingLR(ref, T_max=20)
    losses, ref_losses = [], []
    for _ in range(20):
        opt.zero_grad()
        ref.zero_grad()
        loss = ((cs.tensor(x) @ w - cs.tensor(y)) ** 2).mean()
        ref_loss = ((torch.from_numpy(x) @ tw - torch.from_numpy(y)) ** 2).mean()
        loss.backward()
        ref_loss.backward()
        opt.step()
        ref.step()
        sched.step()
        ref_sched.step()
        losses.append(loss.item())
        ref_losses.append(ref_loss.item())
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-10)
    assert losses[-1] < losses[0]


def test_conv_module_trains_like_torch():
    rng = np.random.default_rng(0)
    conv = cs.nn.Conv2d(2, 3, 3, padding=1, dtype=cs.float64)
    ref_conv = torch.nn.Conv2d(2, 3, 3, padding=1, dtype=torch.float64)
    conv.load_state_dict({k: v.detach().numpy().copy() for k, v in ref_conv.state_dict().items()})
    x = rng.standard_normal((4, 2, 5, 5))
    opt = optim.AdamW(conv.parameters(), lr=0.01)
    ref = torch.optim.AdamW(ref_conv.parameters(), lr=0.01)
    for _ in range(10):
        opt.zero_grad()
        ref.zero_grad()
        (conv(cs.tensor(x)) ** 2).mean().backward()
        (ref_conv(torch.from_numpy(x)) ** 2).mean().backward()
        opt.step()
        ref.step()
    for ours, theirs in zip(conv.parameters(), ref_conv.parameters(), strict=True):
        np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=1e-10)
