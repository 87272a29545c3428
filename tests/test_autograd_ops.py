"""Every differentiable tensor op against PyTorch: values, shapes, dtypes and gradients.

One helper, :func:`run_both` (tinygrad's ``helper_test_op``), calls the same function on
convscope tensors and on torch tensors made from the same arrays, compares the outputs, then
back-propagates one random upstream gradient in both libraries and compares the gradient of
every input.  Finite differences check the gradients independently of PyTorch, and the engine
tests cover ``no_grad``, ``detach``, accumulation and freed graphs.


"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
tF = torch.nn.functional

import convscope as cs  # noqa: E402
import convscope.nn.functional as F  # noqa: E402
from convscope.autograd import functions as fn  # noqa: E402

RTOL = {np.dtype(np.float16): 1e-2, np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-10}


def _numpy(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().numpy()
    if isinstance(value, cs.Tensor):
        return value.numpy()
    return np.asarray(value)


def assert_close(actual: Any, expected: Any, what: str = "", rtol: float | None = None) -> None:
    """Same shape, dtype and values; floats to the dtype's tolerance relative to the largest
    expected magnitude (at least 1), NaN matching NaN."""
    a, e = _numpy(actual), _numpy(expected)
    assert a.shape == e.shape, f"{what}: shape {a.shape} != {e.shape}"
    assert a.dtype == e.dtype, f"{what}: dtype {a.dtype} != {e.dtype}"
    if a.dtype.kind != "f":
        np.testing.assert_array_equal(a, e, err_msg=what)
        return
    tol = RTOL[a.dtype] if rtol is None else rtol
    finite = np.abs(e[np.isfinite(e)])
    scale = max(1.0, float(finite.max())) if finite.size else 1.0
    np.testing.assert_allclose(a, e, rtol=tol, atol=tol * scale, equal_nan=True, err_msg=what)


def _outputs(value: Any) -> list:
    return list(value) if isinstance(value, tuple | list) else [value]


def run_both(
    fn_: Callable[..., Any],
    arrays: Sequence[np.ndarray],
    torch_fn: Callable[..., Any] | None = None,
    grad: bool = True,
    seed: int = 0,
    what: str = "",
    rtol: float | None = None,
) -> tuple[list, list]:
    """Run ``fn_`` on convscope tensors and ``torch_fn`` (default ``fn_``) on torch tensors
    built from ``arrays`` (floating ones require grad when ``grad``); compare every output,
    then the gradients of every input after back-propagating a random upstream gradient."""
    needs = [grad and np.asarray(a).dtype.kind == "f" for a in arrays]
    ours = [cs.tensor(a, requires_grad=n) for a, n in zip(arrays, needs, strict=True)]
    theirs = [torch.tensor(a, requires_grad=n) for a, n in zip(arrays, needs, strict=True)]
    out_c, out_t = _outputs(fn_(*ours)), _outputs((torch_fn or fn_)(*theirs))
    assert len(out_c) == len(out_t), what
    for i, (c, t) in enumerate(zip(out_c, out_t, strict=True)):
        assert_close(c, t, f"{what} output {i}", rtol)
    differentiable = [
        (c, t) for c, t in zip(out_c, out_t, strict=True) if getattr(t, "requires_grad", False)
    ]
    if not differentiable:
        return out_c, out_t
    rng = np.random.default_rng(seed)
    loss_c, loss_t = 0, 0
    for c, t in differentiable:
        up = rng.standard_normal(t.shape).astype(_numpy(t).dtype)
        loss_c = loss_c + (c * cs.tensor(up)).sum()
        loss_t = loss_t + (t * torch.tensor(up)).sum()
    loss_c.backward()
    loss_t.backward()
    for i, (c, t) in enumerate(zip(ours, theirs, strict=True)):
        if not needs[i]:
            continue
        if t.grad is None:
            assert c.grad is None or not np.any(c.grad.numpy()), f"{what}: grad of input {i}"
        else:
            assert c.grad is not None, f"{what}: no gradient for input {i}"
            assert_close(c.grad, t.grad, f"{what} grad of input {i}", rtol)
    return out_c, out_t


def inputs(shapes: Sequence[tuple], dtype: Any = np.float64, low=-2.0, high=2.0, seed=0) -> list:
    rng = np.random.default_rng(seed)
    return [rng.uniform(low, high, shape).astype(dtype) for shape in shapes]


def positive(shapes: Sequence[tuple], dtype: Any = np.float64) -> list:
    return inputs(shapes, dtype, 0.5, 2.0)


# ---------------------------------------------------------------- arithmetic and matmul
BINARY = {
    "add": (lambda x, y: x + y, [(3, 4), (4,)]),
    "add_outer": (lambda x, y: x + y, [(3, 1), (1, 5)]),
    "sub": (lambda x, y: x - y, [(2, 1, 4), (3, 1)]),
    "mul": (lambda x, y: x * y, [(2, 3, 4), (3, 1)]),
    "div": (lambda x, y: x / y, [(3, 4), (1, 4)]),
    "radd": (lambda x: 2 + x, [(3, 4)]),
    "rsub": (lambda x: 2.5 - x, [(3, 4)]),
    "rmul": (lambda x: 3 * x, [(3, 4)]),
    "neg": (lambda x: -x, [(3, 4)]),
    "pow_scalar": (lambda x: x**3, [(3, 4)]),
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", list(BINARY))
def test_arithmetic(name, dtype):
    op, shapes = BINARY[name]
    arrays = inputs(shapes, dtype)
    if name == "div":
        arrays[1] = positive([shapes[1]], dtype)[0]
    run_both(op, arrays, what=name)


@pytest.mark.parametrize(
    ("name", "op"),
    [
        ("pow_tensor", lambda x, y: x**y),
        ("pow_fraction", lambda x, y: x**0.5 * y),
        ("rpow", lambda x, y: 2**x + y),
        ("rtruediv", lambda x, y: 2 / x + y),
    ],
)
def test_powers_and_reciprocals(name, op):
    run_both(op, positive([(3, 4), (4,)]), what=name)


MATMUL = [
    [(3, 4), (4, 5)],
    [(4,), (4, 5)],
    [(3, 4), (4,)],
    [(2, 3, 4), (4, 5)],
    [(2, 3, 4), (2, 4, 5)],
    [(1, 3, 4), (2, 4, 5)],
    [(4,), (2, 4, 5)],
    [(2, 3, 4), (4,)],
    [(2, 1, 3, 4), (5, 4, 2)],
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shapes", MATMUL, ids=str)
def test_matmul(shapes, dtype):
    run_both(lambda x, y: x @ y, inputs(shapes, dtype), what=f"matmul {shapes}")


def test_matmul_vector_vector():
    run_both(lambda x, y: x @ y, inputs([(4,), (4,)]))


# ---------------------------------------------------------------- shapes and indexing
SHAPES = {
    "reshape": lambda x: x.reshape(6, 4),
    "reshape_infer": lambda x: x.reshape(-1, 3),
    "view": lambda x: x.view(-1),
    "flatten": lambda x: x.flatten(),
    "flatten_from_1": lambda x: x.flatten(1),
    "permute": lambda x: x.permute(2, 0, 1),
    "transpose": lambda x: x.transpose(0, -1),
    "T": lambda x: x[0].T,
    "unsqueeze": lambda x: x.unsqueeze(0),
    "unsqueeze_last": lambda x: x.unsqueeze(-1),
    "squeeze_dim": lambda x: x.unsqueeze(1).squeeze(1),
    "squeeze_all": lambda x: x.reshape(1, 2, 1, 12).squeeze(),
    "squeeze_non_unit": lambda x: x.squeeze(0),
}


@pytest.mark.parametrize("name", list(SHAPES))
def test_shape_ops(name):
    run_both(SHAPES[name], inputs([(2, 3, 4)]), what=name)


MASK = np.array([True, False, True])
INDEXING = {
    "int": lambda x: x[1],
    "negative_and_slice": lambda x: x[-1, 1:3],
    "none_and_step": lambda x: x[:, None, ::2],
    "ellipsis": lambda x: x[..., 1],
    "repeated_list": lambda x: x[[0, 0, 2]],
    "array_2d": lambda x: x[np.array([[0, 1], [1, 0]])],
    "two_lists": lambda x: x[[0, 2, 2], [1, 1, 3]],
    "slice_and_repeats": lambda x: x[1:, [2, 2, 0]],
}


@pytest.mark.parametrize("name", list(INDEXING))
def test_indexing(name):
    run_both(INDEXING[name], inputs([(3, 4, 5)]), what=name)


def test_boolean_mask_indexing():
    run_both(
        lambda x: x[MASK],
        inputs([(3, 4)]),
        torch_fn=lambda x: x[torch.from_numpy(MASK)],
        what="mask",
    )


def test_indexing_with_an_integer_tensor():
    run_both(
        lambda x: x[cs.tensor([2, 0, 2])],
        inputs([(3, 4)]),
        torch_fn=lambda x: x[torch.tensor([2, 0, 2])],
    )


# ---------------------------------------------------------------- reductions
REDUCTIONS = {
    "sum": lambda x: x.sum(),
    "sum_dim": lambda x: x.sum(1),
    "sum_dims_keepdim": lambda x: x.sum((0, 2), keepdim=True),
    "mean": lambda x: x.mean(),
    "mean_dim_keepdim": lambda x: x.mean(-1, keepdim=True),
    "mean_dims": lambda x: x.mean((0, 1)),
    "var": lambda x: x.var(),
    "var_dim": lambda x: x.var(1),
    "var_biased_keepdim": lambda x: x.var((0, 2), keepdim=True, correction=0),
    "max_dim": lambda x: x.max(1),
    "max_dim_keepdim": lambda x: x.max(-1, keepdim=True),
    "min_dim": lambda x: x.min(0),
    "max_all": lambda x: x.max(),
    "min_all": lambda x: x.min(),
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", list(REDUCTIONS))
def test_reductions(name, dtype):
    run_both(REDUCTIONS[name], inputs([(3, 4, 5)], dtype), what=name)


TIES = np.array([[1.0, 3.0, 3.0, 0.0], [2.0, 2.0, -1.0, 2.0], [0.0, 0.0, 0.0, 0.0]])


@pytest.mark.parametrize(
    "op",
    [lambda x: x.max(), lambda x: x.min(), lambda x: x.max(1), lambda x: x.min(0, keepdim=True)],
    ids=["max_all", "min_all", "max_dim", "min_dim"],
)
def test_extremes_with_ties(op):
    """Ties: ``max()`` shares the gradient evenly, ``max(dim)`` gives it to the first maximum."""
    run_both(op, [TIES])


def test_argmax():
    run_both(lambda x: x.argmax(), inputs([(3, 4)]), grad=False)
    run_both(lambda x: x.argmax(1, keepdim=True), inputs([(3, 4)]), grad=False)


def test_sum_over_empty_dim_tuple():
    run_both(lambda x: x.sum(dim=()), inputs([(2, 3)]))


# ---------------------------------------------------------------- elementwise functions
def _method(name: str) -> Callable[[Any], Any]:
    return lambda x: getattr(x, name)()


UNARY = {
    "exp": (_method("exp"), (-2.0, 2.0)),
    "log": (_method("log"), (0.1, 3.0)),
    "sqrt": (_method("sqrt"), (0.1, 3.0)),
    "abs": (_method("abs"), (-2.0, 2.0)),
    "relu": (_method("relu"), (-2.0, 2.0)),
    "sigmoid": (_method("sigmoid"), (-8.0, 8.0)),
    "tanh": (_method("tanh"), (-3.0, 3.0)),
    "clamp": (lambda x: x.clamp(-0.5, 0.5), (-2.0, 2.0)),
    "clamp_min": (lambda x: x.clamp(min=0.1), (-2.0, 2.0)),
    "clamp_max": (lambda x: x.clamp(max=0.0), (-2.0, 2.0)),
    "softmax_0": (lambda x: x.softmax(0), (-3.0, 3.0)),
    "softmax_last": (lambda x: x.softmax(-1), (-3.0, 3.0)),
    "log_softmax_1": (lambda x: x.log_softmax(1), (-3.0, 3.0)),
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", list(UNARY))
def test_unary(name, dtype):
    op, (low, high) = UNARY[name]
    run_both(op, inputs([(3, 4, 5)], dtype, low, high), what=name)


FUNCTIONS = {
    "gelu": (lambda x: fn.gelu(x), lambda x: tF.gelu(x)),
    "gelu_tanh": (lambda x: fn.gelu(x, "tanh"), lambda x: tF.gelu(x, approximate="tanh")),
    "leaky_relu": (lambda x: fn.leaky_relu(x), lambda x: tF.leaky_relu(x)),
    "leaky_relu_slope": (lambda x: fn.leaky_relu(x, 0.3), lambda x: tF.leaky_relu(x, 0.3)),
    "softmax": (lambda x: fn.softmax(x, 1), lambda x: torch.softmax(x, 1)),
    "log_softmax": (lambda x: fn.log_softmax(x, 0), lambda x: torch.log_softmax(x, 0)),
    "where": (
        lambda x: fn.where(x > 0, x, x * 3),
        lambda x: torch.where(x > 0, x, x * 3),
    ),
    "to_float32": (lambda x: x.to(cs.float32), lambda x: x.float()),
    "double_sum": (lambda x: x.double().sum(), lambda x: x.double().sum()),
    "clone": (lambda x: x.clone(), lambda x: x.clone()),
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_functions(name, dtype):
    ours, theirs = FUNCTIONS[name]
    run_both(ours, inputs([(3, 4, 5)], dtype, -4, 4), torch_fn=theirs, what=name)


def test_gradients_at_kinks():
    """ReLU, abs, clamp and leaky ReLU at exactly 0 and at the clamp bounds."""
    x = np.array([-1.0, 0.0, 0.5, 1.0, 2.0])
    run_both(lambda t: t.relu() + t.abs() + t.clamp(0.0, 1.0), [x])
    run_both(lambda t: fn.leaky_relu(t, 0.2), [x], torch_fn=lambda t: tF.leaky_relu(t, 0.2))


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_cat_and_stack(dim):
    a, b = inputs([(2, 3), (2, 3)])
    run_both(lambda x, y: fn.cat([x, y * 2], dim), [a, b], lambda x, y: torch.cat([x, y * 2], dim))
    run_both(lambda x, y: fn.stack([x, y], dim), [a, b], lambda x, y: torch.stack([x, y], dim))


def test_cat_of_different_lengths():
    run_both(
        lambda x, y: fn.cat([x, y], 1),
        inputs([(3, 2), (3, 4)]),
        lambda x, y: torch.cat([x, y], 1),
    )


COMPARISONS = {
    "eq": lambda x, y: x == y,
    "ne": lambda x, y: x != y,
    "lt": lambda x, y: x < y,
    "le": lambda x, y: x <= y,
    "gt": lambda x, y: x > y,
    "ge": lambda x, y: x >= y,
    "gt_scalar": lambda x, y: x > 0.5,
}


@pytest.mark.parametrize("name", list(COMPARISONS))
def test_comparisons(name):
    x = np.array([[0.0, 1.0, 2.0], [1.0, 0.5, -1.0]])
    y = np.array([1.0, 1.0, 0.0])
    out, _ = run_both(COMPARISONS[name], [x, y], grad=False)
    assert out[0].dtype == np.bool_ and not out[0].requires_grad


def test_item():
    x = inputs([(1, 1)])[0]
    assert cs.tensor(x).item() == torch.tensor(x).item()
    assert isinstance(cs.tensor([[3]]).item(), int)
    with pytest.raises(RuntimeError):
        cs.tensor([1.0, 2.0]).item()


# ---------------------------------------------------------------- finite differences
def numerical_gradient(f: Callable[[np.ndarray], float], x: np.ndarray, eps=1e-6) -> np.ndarray:
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + eps
        up = f(x)
        x[i] = old - eps
        down = f(x)
        x[i] = old
        grad[i] = (up - down) / (2 * eps)
    return grad


FINITE = {
    "chain": lambda x: ((x * x).sum(1).sqrt() * x[:, 0].sigmoid()).sum(),
    "softmax_weighted": lambda x: (x.softmax(1) * cs.tensor(np.arange(12.0).reshape(3, 4))).sum(),
    "var_and_mean": lambda x: x.var(0).sum() + x.mean(1).exp().sum(),
    "matmul_tanh": lambda x: (x @ x.T).tanh().sum(),
    "index_and_cat": lambda x: fn.cat([x[[0, 0]], x[1:] ** 2], 0).abs().sum(),
    "gelu_max": lambda x: fn.gelu(x).max(1).values.sum(),
    "max_pool": lambda x: weighted(F.max_pool1d(x.reshape(1, 3, 4), 2, 1, 1, ceil_mode=True)),
    "avg_pool": lambda x: weighted(F.avg_pool2d(x.reshape(1, 3, 4), 2, 1, 1, True, False)),
    "adaptive_avg_pool": lambda x: weighted(F.adaptive_avg_pool2d(x.reshape(1, 3, 4), (2, 3))),
    "interpolate": lambda x: weighted(F.interpolate(x.reshape(1, 3, 4), scale_factor=1.1)),
    "batch_norm": lambda x: weighted(F.batch_norm(x, None, None, training=True)),
    "cross_entropy": lambda x: F.cross_entropy(
        x, cs.tensor([0, 3, -100]), cs.tensor([1.0, 2.0, 0.5, 1.5]), label_smoothing=0.2
    ),
    "bce_with_logits": lambda x: F.binary_cross_entropy_with_logits(
        x * 4, cs.tensor(np.linspace(0, 1, 12).reshape(3, 4)), pos_weight=cs.tensor([1.0, 2, 3, 4])
    ),
}


def weighted(y):
    """A scalar that depends on every output element differently."""
    return (y * cs.tensor(np.cos(np.arange(y.numel())).reshape(y.shape))).sum()


@pytest.mark.parametrize("name", list(FINITE))
def test_finite_differences(name):
    f = FINITE[name]
    x = np.random.default_rng(3).uniform(-1.5, 1.5, (3, 4))
    t = cs.tensor(x, requires_grad=True)
    f(t).backward()
    expected = numerical_gradient(lambda a: f(cs.tensor(a)).item(), x.copy())
    np.testing.assert_allclose(t.grad.numpy(), expected, rtol=1e-5, atol=1e-7)


# ---------------------------------------------------------------- the engine
def test_no_grad_records_nothing():
    w = cs.ones(3, requires_grad=True)
    with cs.no_grad():
        y = w * 2
    assert not y.requires_grad and y.grad_fn is None
    with cs.no_grad(), cs.enable_grad():
        assert (w * 2).requires_grad
    assert (w * 2).requires_grad


def test_set_grad_enabled_and_decorator():
    w = cs.ones(2, requires_grad=True)
    with cs.set_grad_enabled(False):
        assert not (w + 1).requires_grad
    assert (w + 1).requires_grad

    @cs.no_grad()
    def double(t):
        return t * 2

    assert not double(w).requires_grad


def test_detach_shares_data_outside_the_graph():
    w = cs.tensor([1.0, 2.0], requires_grad=True)
    d = (w * 3).detach()
    assert not d.requires_grad and d.grad_fn is None
    e = w.detach()
    e.numpy()[0] = 7.0
    assert w.numpy()[0] == 7.0  # shares memory, as torch's detach does


def test_gradients_accumulate_across_backward_calls():
    x, xt = (
        cs.tensor([1.0, -2.0], requires_grad=True),
        torch.tensor([1.0, -2.0], requires_grad=True),
    )
    for _ in range(2):
        (x * x).sum().backward()
        (xt * xt).sum().backward()
    assert_close(x.grad, xt.grad)
    assert x.grad.tolist() == [4.0, -8.0]


def test_second_backward_through_a_freed_graph_raises():
    x = cs.tensor([1.0, 2.0], requires_grad=True)
    y = (x.exp() * 2).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        y.backward()
    xt = torch.tensor([1.0, 2.0], requires_grad=True)
    yt = (xt.exp() * 2).sum()
    yt.backward()
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        yt.backward()


def test_retain_graph_allows_a_second_backward():
    x = cs.tensor([1.0, 2.0], requires_grad=True)
    y = (x.exp() * 2).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 4 * np.exp([1.0, 2.0]))


def test_backward_needs_a_scalar_or_a_gradient():
    x = cs.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError):
        (x * 2).backward()
    with pytest.raises(RuntimeError):
        cs.tensor([1.0]).sum().backward()


def test_only_leaves_keep_grad_unless_retained():
    x = cs.tensor([1.0, 2.0], requires_grad=True)
    h = x * 3
    h.retain_grad()
    (h * h).sum().backward()
    assert h.grad.tolist() == [6.0, 12.0]
    assert x.grad.tolist() == [18.0, 36.0]


# ---------------------------------------------------------------- known bugs (not owned here)
def test_pow_zero_exponent_gradient_at_zero():
    run_both(lambda x: x**0, [np.array([0.0, 1.0])])


def test_iterating_keeps_the_graph():
    x = cs.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    assert all(row.requires_grad for row in x)


def test_clone_keeps_the_dtype():
    assert cs.tensor([True, False]).clone().dtype == np.bool_


def test_sigmoid_of_an_integer_tensor():
    run_both(lambda x: x.sigmoid(), [np.array([1, 2])], grad=False)


@pytest.mark.parametrize("name", ["exp", "tanh", "sqrt", "log"])
def test_float_functions_of_integer_tensors(name):
    run_both(_method(name), [np.array([1, 2])], grad=False)


def test_cat_promotes_like_torch():
    out = fn.cat([cs.tensor([1]), cs.tensor([1.5])])
    assert out.dtype == torch.cat([torch.tensor([1]), torch.tensor([1.5])]).numpy().dtype


def test_zero_dim_tensors_promote_like_scalars():
    out = cs.ones(2) * cs.tensor(2.0, dtype=cs.float64)
    assert out.dtype == (torch.ones(2) * torch.tensor(2.0, dtype=torch.float64)).numpy().dtype


def test_clamp_of_integers_with_a_float_bound():
    run_both(lambda x: x.clamp(min=1.5), [np.array([1, 2])], grad=False)


def test_gelu_bad_approximate_is_a_runtime_error():
    with pytest.raises(RuntimeError):
        fn.gelu(cs.ones(2), "fast")


def test_squeeze_a_tuple_of_dims():
    run_both(lambda x: x.squeeze((0, 2)), inputs([(1, 3, 1)]))


def test_exponent_gradient_matches_torch_away_from_zero():
    base, exponent = positive([(3,), (3,)])
    run_both(lambda b, e: b**e, [base, exponent])
    assert math.isfinite(float(cs.tensor(2.0) ** 3))
