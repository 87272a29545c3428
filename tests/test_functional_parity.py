"""Differential tests: ``convscope.nn.functional`` convolutions against PyTorch, the reference.

Hypothesis draws random configurations over every parameter of the functional convolutions
(dims 1-3, batched/unbatched, groups incl. depthwise, kernel/stride/dilation/padding forms, bias,
output_padding, dtypes).  Every expected value is computed live by torch; nothing is hard-coded.

Float results are compared relative to the *magnitude scale* of the convolution (the same
convolution applied to ``|x|``, ``|w|`` and ``|b|``), so cancellation cannot cause false
failures while an error in any single term still shows.  Integer results must be exact.

The helpers at the top are shared with the other parity test files of this directory.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import convscope as cs
import convscope.nn.functional as F
from convscope.ops.conv import conv_general

torch = pytest.importorskip("torch")
TF = torch.nn.functional

pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same':UserWarning")

# Relative tolerances w.r.t. the magnitude scale.  float64/float32 come from the contract;
# float16 is ~4 ulps (eps = 9.8e-4): torch accumulates half convolutions in float32 and rounds
# once (measured <= 6e-4 of the scale), an implementation may round once more (bias add).
RTOL = {np.dtype(np.float64): 1e-10, np.dtype(np.float32): 1e-4, np.dtype(np.float16): 4e-3}
FLOAT_DTYPES = ("float64", "float32")
INT_DTYPES = ("int64", "int32", "uint8")


@pytest.fixture(autouse=True, scope="module")
def single_threaded_torch():
    """The reference calls are tiny: torch's thread pool only adds latency (up to ~30 ms per
    call with 2 threads), so the parity modules run torch single-threaded and restore after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def hyp(max_examples: int) -> settings:
    """Reproducible Hypothesis settings (the same examples on every run, no database)."""
    return settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


# ----------------------------------------------------------------------------- shared helpers


def to_torch(a):
    return None if a is None else torch.from_numpy(np.array(a, order="C"))


def outcome(fn):
    """Run ``fn()``; return ``(result, None)`` or ``(None, exception)``."""
    try:
        return fn(), None
    except Exception as exc:
        return None, exc


def describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def assert_same_error(ref_err: BaseException, got, got_err, context="") -> None:
    """convscope must raise the class torch raised (NotImplementedError is a RuntimeError
    subclass, so it only counts when torch raised it too)."""
    assert got_err is not None, (
        f"torch raised {describe(ref_err)}\nbut convscope returned a result of shape "
        f"{np.shape(got)} {context}"
    )
    cls = type(ref_err)
    same = isinstance(got_err, cls) and (
        issubclass(cls, NotImplementedError) or not isinstance(got_err, NotImplementedError)
    )
    assert same, f"torch raised {describe(ref_err)}\nconvscope raised {describe(got_err)} {context}"


def assert_no_error(got_err, context="") -> None:
    if got_err is not None:
        raise AssertionError(f"torch accepted the call but convscope raised {context}") from got_err


def assert_values(arr: np.ndarray, ref: np.ndarray, scale=None, context="") -> None:
    """``arr`` equals ``ref``: shape, dtype, then values -- exactly for non-float dtypes (or
    without ``scale``), else within ``RTOL[dtype] * scale``."""
    assert arr.shape == ref.shape, f"shape {arr.shape} != torch {ref.shape} {context}"
    assert arr.dtype == ref.dtype, f"dtype {arr.dtype} != torch {ref.dtype} {context}"
    if ref.dtype.kind != "f" or scale is None:
        bad = arr != ref
        if ref.dtype.kind == "f":
            bad &= ~(np.isnan(arr) & np.isnan(ref))
    else:
        err = np.abs(arr.astype(np.float64) - ref.astype(np.float64))
        bad = ~(err <= RTOL[ref.dtype] * scale + np.finfo(ref.dtype).tiny)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        worst = "" if scale is None else f", scale {scale[idx]!r}"
        raise AssertionError(
            f"{int(bad.sum())}/{bad.size} elements differ from torch {context}; first at {idx}: "
            f"convscope {arr[idx]!r} vs torch {ref[idx]!r}{worst}"
        )


def assert_matches(got, ref: np.ndarray, scale=None, context="") -> None:
    """``got`` is a convscope Tensor whose shape, dtype and values equal torch's ``ref``."""
    assert isinstance(got, cs.Tensor), f"expected a convscope Tensor, got {type(got)} {context}"
    assert tuple(got.shape) == ref.shape, f"shape {got.shape} != torch {ref.shape} {context}"
    assert np.dtype(got.dtype) == ref.dtype, f"dtype {got.dtype} != torch {ref.dtype} {context}"
    assert_values(np.asarray(got), ref, scale, context)


def random_array(rng: np.random.Generator, shape, dtype, wide: bool = False) -> np.ndarray:
    """Standard normal floats; small integers, or (``wide``) the dtype's full range so that
    sums wrap around."""
    dt = np.dtype(dtype)
    if dt.kind == "f":
        return np.asarray(rng.standard_normal(shape), dtype=dt)
    info = np.iinfo(dt)
    lo, hi = (info.min, info.max) if wide else (max(info.min, -8), min(info.max, 8))
    return np.asarray(rng.integers(lo, hi, size=shape, endpoint=True, dtype=dt))


def conv_name(nd: int, transposed: bool) -> str:
    return f"conv_transpose{nd}d" if transposed else f"conv{nd}d"


def torch_conv(name: str, x, w, b, kwargs) -> np.ndarray:
    return getattr(TF, name)(to_torch(x), to_torch(w), to_torch(b), **kwargs).numpy()


def magnitude(name: str, x, w, b, kwargs) -> np.ndarray:
    """The convolution of ``|x|`` with ``|w|`` plus ``|b|`` in float64: the error scale."""

    def f64abs(a):
        return None if a is None else np.abs(np.asarray(a, dtype=np.float64))

    return torch_conv(name, f64abs(x), f64abs(w), f64abs(b), kwargs)


def check_conv(name: str, x, w, b, kwargs, cs_args=None, context="", may_reject=False) -> None:
    """torch and convscope run the same convolution; same exception class or same values.

    ``cs_args`` optionally replaces ``(x, w, b)`` for the convscope call (e.g. as Tensors);
    ``may_reject`` lets convscope raise RuntimeError where torch happened to succeed."""
    ref, ref_err = outcome(lambda: torch_conv(name, x, w, b, kwargs))
    args = (x, w, b) if cs_args is None else cs_args
    got, got_err = outcome(lambda: getattr(F, name)(*args, **kwargs))
    context = f"[{name}(x{np.shape(x)}, w{np.shape(w)}, b{np.shape(b)}, {kwargs}) {context}]"
    if ref_err is not None:
        assert_same_error(ref_err, got, got_err, context)
        return
    # torch's grouped transposed kernels return an empty result where the groups=1 kernel
    # raises "Output size is too small": either answer is torch's.
    may_reject |= ref.size == 0 and name.startswith("conv_transpose")
    if may_reject and type(got_err) is RuntimeError:
        return
    assert_no_error(got_err, context)
    scale = magnitude(name, x, w, b, kwargs) if ref.dtype.kind == "f" else None
    assert_matches(got, ref, scale, context)


# ----------------------------------------------------------------------------- configurations

# per number of spatial dims: max kernel, dilation, stride, spatial size (conv / transposed),
# batch -- small enough to keep thousands of examples fast.
LIMITS = {
    1: {"k": 5, "d": 3, "s": 3, "h": 24, "htr": 10, "n": 3},
    2: {"k": 4, "d": 3, "s": 3, "h": 12, "htr": 6, "n": 3},
    3: {"k": 3, "d": 2, "s": 2, "h": 7, "htr": 4, "n": 2},
}


@dataclasses.dataclass
class Case:
    """One functional call: shapes, dtypes and keyword arguments (arrays come from ``seed``)."""

    nd: int
    transposed: bool
    x_shape: tuple
    w_shape: tuple
    b_shape: tuple | None
    dtype: str
    kwargs: dict
    seed: int
    w_dtype: str | None = None
    b_dtype: str | None = None
    wide: bool = False

    @property
    def name(self) -> str:
        return conv_name(self.nd, self.transposed)

    def arrays(self):
        rng = np.random.default_rng(self.seed)
        x = random_array(rng, self.x_shape, self.dtype, self.wide)
        w = random_array(rng, self.w_shape, self.w_dtype or self.dtype, self.wide)
        b = None
        if self.b_shape is not None:
            b = random_array(rng, self.b_shape, self.b_dtype or self.dtype, self.wide)
        return x, w, b


def spec(draw, values, default):
    """A per-dimension parameter the way users pass it: a tuple, a single int when all entries
    agree, or omitted when it equals torch's default."""
    values = tuple(values)
    forms = ["tuple"]
    if len(set(values)) == 1:
        forms.append("int")
        if values[0] == default:
            forms.append("omit")
    form = draw(st.sampled_from(forms))
    return {"tuple": values, "int": values[0], "omit": None}[form]


def put(kwargs, key, value):
    if value is not None:
        kwargs[key] = value


@st.composite
def conv_cases(draw, dtypes=FLOAT_DTYPES, dims=(1, 2, 3), transposed=None):
    """A random configuration that torch accepts."""
    nd = draw(st.sampled_from(dims))
    tr = draw(st.booleans()) if transposed is None else transposed
    lim = LIMITS[nd]
    groups = draw(st.integers(1, 3))
    depthwise = draw(st.booleans())  # one input channel per group, multiplier = out per group
    cin_g = 1 if depthwise else draw(st.integers(1, 3))
    cout_g = draw(st.integers(1, 3))
    k = [draw(st.integers(1, lim["k"])) for _ in range(nd)]
    s = [draw(st.integers(1, lim["s"])) for _ in range(nd)]
    d = [draw(st.integers(1, lim["d"])) for _ in range(nd)]
    eff = [di * (ki - 1) + 1 for ki, di in zip(k, d, strict=True)]
    kwargs: dict = {}
    if tr:
        h = [draw(st.integers(1, lim["htr"])) for _ in range(nd)]
        op = [draw(st.integers(0, max(si, di) - 1)) for si, di in zip(s, d, strict=True)]
        # largest padding that keeps the output size (H-1)s - 2p + d(k-1) + op + 1 >= 1
        pmax = [
            ((hi - 1) * si + e - 1 + o) // 2 for hi, si, e, o in zip(h, s, eff, op, strict=True)
        ]
        if draw(st.booleans()):
            p = [min(draw(st.integers(0, 3)), m) for m in pmax]
        else:
            p = [min(draw(st.integers(0, 3)), min(pmax))] * nd
        put(kwargs, "padding", spec(draw, p, 0))
        put(kwargs, "output_padding", spec(draw, op, 0))
        cin, cout = groups * cin_g, groups * cout_g
        w_shape = (cin, cout_g, *k)
    else:
        kind = draw(st.sampled_from(["int", "tuple", "same", "valid"]))
        if kind == "same":
            s = [1] * nd  # strided 'same' is a convscope extension (test_beyond_pytorch.py)
        if kind in ("same", "valid"):
            p = [0] * nd
            kwargs["padding"] = kind
        else:
            p = [draw(st.integers(0, 3)) for _ in range(nd)]
            if kind == "int":
                p = [p[0]] * nd
            put(kwargs, "padding", spec(draw, p, 0))
        lo = [1 if kind == "same" else max(1, e - 2 * pi) for e, pi in zip(eff, p, strict=True)]
        h = [draw(st.integers(m, max(m, lim["h"]))) for m in lo]
        cin, cout = groups * cin_g, groups * cout_g
        w_shape = (cout, cin_g, *k)
    put(kwargs, "stride", spec(draw, s, 1))
    put(kwargs, "dilation", spec(draw, d, 1))
    if groups != 1 or draw(st.booleans()):
        kwargs["groups"] = groups
    batch = (draw(st.integers(1, lim["n"])),) if draw(st.booleans()) else ()
    return Case(
        nd=nd,
        transposed=tr,
        x_shape=(*batch, cin, *h),
        w_shape=w_shape,
        b_shape=(cout,) if draw(st.booleans()) else None,
        dtype=draw(st.sampled_from(dtypes)),
        kwargs=kwargs,
        seed=draw(st.integers(0, 2**32 - 1)),
        wide=draw(st.booleans()),
    )


@st.composite
def dtype_sweeps(draw, dtype_sets):
    """One configuration checked in several dtypes (one from each set), each argument passed
    either as a NumPy array or as a convscope Tensor."""
    case = draw(conv_cases())
    dtypes = [draw(st.sampled_from(choices)) for choices in dtype_sets]
    return case, dtypes, [draw(st.booleans()) for _ in range(3)]


def check_case(case: Case, as_tensor=(False, False, False)) -> None:
    """Run ``case`` in torch and convscope and compare.

    torch's CPU kernels for int32 and uint8 only cover non-dilated, non-transposed convolutions
    and raise NotImplementedError otherwise; there convscope may raise the same class or must
    return the exact wrapped value, which torch yields by computing in int64 (arithmetic modulo
    2**n commutes with the cast)."""
    x, w, b = case.arrays()
    cs_args = tuple(
        cs.tensor(a, dtype=a.dtype) if wrap and a is not None else a
        for a, wrap in zip((x, w, b), as_tensor, strict=True)
    )
    name, kwargs = case.name, case.kwargs
    if case.dtype in ("int32", "uint8"):
        _, ref_err = outcome(lambda: torch_conv(name, x, w, b, kwargs))
        if isinstance(ref_err, NotImplementedError):
            got, got_err = outcome(lambda: getattr(F, name)(*cs_args, **kwargs))
            if isinstance(got_err, NotImplementedError):
                return
            assert_no_error(got_err, str(case))
            wide = [None if a is None else a.astype(np.int64) for a in (x, w, b)]
            assert_matches(
                got,
                torch_conv(name, *wide, kwargs).astype(case.dtype),
                None,
                f"[int64 reference cast to {case.dtype}: {case}]",
            )
            return
    check_conv(name, x, w, b, kwargs, cs_args, context=str(case))


def run_sweep(sweep) -> None:
    case, dtypes, as_tensor = sweep
    for dtype in dtypes:
        check_case(dataclasses.replace(case, dtype=dtype), as_tensor)


@hyp(700)
@given(dtype_sweeps([("float64",), ("float32",)]))
def test_float64_and_float32_match_torch(sweep):
    """700 configurations x 2 dtypes."""
    run_sweep(sweep)


@hyp(350)
@given(dtype_sweeps([("float16",), INT_DTYPES]))
def test_float16_and_integers_match_torch(sweep):
    """350 configurations x (float16 + one of int64/int32/uint8, exact and wrapping: half of
    the integer cases use the dtype's full range)."""
    run_sweep(sweep)


def test_integer_wraparound_examples():
    """Sums that overflow wrap exactly like torch's (uint8: 200*7*6+250 mod 256; int64: 2**70)."""
    cases = [
        (np.full((1, 2, 5), 200, np.uint8), np.full((3, 2, 3), 7, np.uint8), np.uint8([250, 1, 2])),
        (np.full((1, 2, 5), 2**40, np.int64), np.full((3, 2, 3), 2**30, np.int64), None),
        (np.full((2, 5), 2**30, np.int32), np.full((3, 2, 3), 3, np.int32), np.int32([1, 2, 3])),
    ]
    for x, w, b in cases:
        check_conv("conv1d", x, w, b, {})
    check_conv("conv_transpose1d", *cases[1][:2], None, {"stride": 2})


# ----------------------------------------------------------------------------- error parity

BAD_PADDING_STRINGS = ("foo", "SAME", "full", "Valid", "")


def int_groups(kwargs) -> int:
    groups = kwargs.get("groups", 1)
    return groups if isinstance(groups, int) and groups > 0 else 1


def torch_is_inconsistent(case: Case) -> bool:
    """Calls whose acceptance by torch depends on which CPU kernel it picks (sizes, groups,
    dims): a bias dtype differing from the input's (most kernels raise RuntimeError, some add it
    with type promotion), and grouped transposed calls with dilation 0 (the oneDNN kernel skips
    the dilation check when the kernel size is 1).  For these convscope may raise RuntimeError
    where torch succeeded; if it computes, it must agree with torch."""
    dilation = case.kwargs.get("dilation", 1)
    dilation = dilation if isinstance(dilation, tuple) else (dilation,)
    return (case.b_shape is not None and (case.b_dtype or case.dtype) != case.dtype) or (
        case.transposed and int_groups(case.kwargs) > 1 and 0 in dilation
    )


def replace_dim(shape: tuple, index: int, value: int) -> tuple:
    """``shape`` with entry ``index`` replaced (unchanged when there is no such entry)."""
    if not 0 <= index < len(shape):
        return shape
    return (*shape[:index], value, *shape[index + 1 :])


def _mutate(draw, case: Case, mutation: str) -> None:
    nd, kw = case.nd, case.kwargs
    dim = draw(st.integers(0, nd - 1))
    spatial = len(case.x_shape) - nd + dim  # index of spatial dim ``dim`` in x_shape
    groups = int_groups(kw)

    def out_channels():
        if len(case.w_shape) < 2:
            return 1
        return case.w_shape[1] * groups if case.transposed else case.w_shape[0]

    def per_dim(key, value, default):
        cur = kw.get(key, default)
        vals = list(cur) if isinstance(cur, tuple) else [cur] * nd
        if isinstance(cur, str):
            vals = [0] * nd
        vals += [default] * (dim + 1 - len(vals))
        vals[dim] = value
        kw[key] = tuple(vals)

    def entry(key):  # the current int value of parameter ``key`` along ``dim`` (else 1)
        value = kw.get(key, 1)
        if isinstance(value, tuple):
            value = value[dim] if dim < len(value) else 1
        return value if isinstance(value, int) else 1

    if mutation == "input_rank":
        case.x_shape = draw(st.sampled_from([case.x_shape[1:], (2, *case.x_shape), (3,)]))
    elif mutation == "weight_rank":
        case.w_shape = draw(st.sampled_from([case.w_shape[:-1], (*case.w_shape, 2)]))
    elif mutation == "channels":
        ch = len(case.x_shape) - nd - 1
        if ch >= 0:
            new = max(1, case.x_shape[ch] + draw(st.sampled_from([-1, 1, 2])))
            case.x_shape = replace_dim(case.x_shape, ch, new)
    elif mutation == "groups":
        kw["groups"] = draw(st.sampled_from([0, -1, groups + 1, 2, 4]))
    elif mutation == "kernel_big":
        case.w_shape = replace_dim(case.w_shape, 2 + dim, draw(st.integers(2, 6)))
        case.x_shape = replace_dim(case.x_shape, spatial, draw(st.integers(1, 2)))
    elif mutation == "negative_padding":
        per_dim("padding", -draw(st.integers(1, 2)), 0)
    elif mutation == "stride":
        per_dim("stride", draw(st.sampled_from([0, -1])), 1)
    elif mutation == "dilation":
        per_dim("dilation", draw(st.sampled_from([0, -1])), 1)
    elif mutation == "tuple_length":
        keys = ["stride", "padding", "dilation"] + (["output_padding"] if case.transposed else [])
        key = draw(st.sampled_from(keys))
        length = draw(st.sampled_from([0, 1, nd + 1, nd + 2]))
        kw[key] = (1 if key in ("stride", "dilation") else 0,) * length
    elif mutation == "padding_string":
        kw["padding"] = draw(st.sampled_from((*BAD_PADDING_STRINGS, "same", "valid")))
    elif mutation == "output_padding" and case.transposed:
        top = max(entry("stride"), entry("dilation"))
        per_dim("output_padding", draw(st.sampled_from([top, top + 1, -1])), 0)
    elif mutation == "bias_shape":
        out = out_channels()
        case.b_shape = draw(st.sampled_from([(out + 1,), (out, 1), (), (0,), (max(out - 1, 0),)]))
    elif mutation == "dtype":
        other = "float32" if case.dtype == "float64" else "float64"
        target = draw(st.sampled_from(["w_dtype", "b_dtype", "x"]))
        if target == "x":
            case.w_dtype, case.b_dtype = case.dtype, case.dtype
            case.dtype = draw(st.sampled_from([other, "int64"]))
        else:
            setattr(case, target, draw(st.sampled_from([other, "int64", "float16"])))
            if target == "b_dtype" and case.b_shape is None:
                case.b_shape = (out_channels(),)
    elif mutation == "zero_spatial":
        case.x_shape = replace_dim(case.x_shape, spatial, 0)
    elif mutation == "zero_batch" and len(case.x_shape) == nd + 2:
        case.x_shape = replace_dim(case.x_shape, 0, 0)
    elif mutation == "small_output" and case.transposed:
        kw["padding"] = draw(st.integers(4, 30))
    elif mutation == "arg_type":
        key = draw(st.sampled_from(["stride", "padding", "dilation", "groups"]))
        kw[key] = draw(st.sampled_from([1.0, 1.5, None, "1", (1.0,) * nd]))


MUTATIONS = (
    "input_rank",
    "weight_rank",
    "channels",
    "groups",
    "kernel_big",
    "negative_padding",
    "stride",
    "dilation",
    "tuple_length",
    "padding_string",
    "output_padding",
    "bias_shape",
    "dtype",
    "zero_spatial",
    "zero_batch",
    "small_output",
    "arg_type",
)


def uses_strided_same(case: Case) -> bool:
    """padding='same' with a stride > 1 is a documented convscope extension torch rejects."""
    stride = case.kwargs.get("stride", 1)
    strides = stride if isinstance(stride, tuple) else (stride,)
    return (
        not case.transposed
        and case.kwargs.get("padding") == "same"
        and any(isinstance(v, int) and v > 1 for v in strides)
    )


@st.composite
def maybe_invalid_cases(draw):
    case = draw(conv_cases())
    for mutation in draw(st.lists(st.sampled_from(MUTATIONS), min_size=1, max_size=3)):
        _mutate(draw, case, mutation)
    if uses_strided_same(case):
        case.kwargs["stride"] = 1
    return case


@hyp(500)
@given(maybe_invalid_cases())
def test_error_parity(case: Case):
    """Possibly invalid calls: torch raises E => convscope raises E; torch succeeds => same
    values.

    Where torch itself is inconsistent (``torch_is_inconsistent``, or an empty transposed result)
    a RuntimeError from convscope is accepted in place of torch's result."""
    x, w, b = case.arrays()
    lenient = torch_is_inconsistent(case)
    check_conv(case.name, x, w, b, case.kwargs, context=str(case), may_reject=lenient)


# Representative invalid calls: the message must name the offending values (each needle is a
# substring, or a tuple of acceptable alternatives).
MESSAGE_CASES = [
    ("conv2d", (1, 5, 6, 6), (4, 7, 3, 3), None, {}, ["5", "7"]),
    ("conv2d", (1, 4, 6, 6), (4, 4, 9, 3), None, {}, ["9"]),
    ("conv2d", (1, 4, 6, 6), (6, 2, 3, 3), None, {"groups": 5}, ["5"]),
    ("conv2d", (1, 4, 6, 6), (4, 4, 3, 3), None, {"groups": 0}, ["group"]),
    ("conv1d", (1, 4, 6), (4, 4, 3), None, {"stride": 0}, ["stride"]),
    ("conv3d", (1, 4, 6, 6, 6), (4, 4, 3, 3, 3), None, {"dilation": (1, 0, 1)}, ["dilation"]),
    ("conv2d", (1, 4, 6, 6), (4, 4, 3, 3), None, {"padding": "foo"}, ["foo"]),
    ("conv2d", (1, 4, 6, 6), (4, 4, 3, 3), (11,), {}, ["11"]),
    ("conv2d", (4, 6), (4, 4, 3, 3), None, {}, [("[4, 6]", "(4, 6)")]),
    ("conv1d", (1, 4, 6), (4, 4, 3), None, {"padding": -3}, ["padding"]),
    ("conv2d", (1, 4, 6, 6), (4, 4, 3, 3), None, {"stride": (1, 1, 1)}, ["stride"]),
    (
        "conv_transpose2d",
        (1, 4, 6, 6),
        (4, 4, 3, 3),
        None,
        {"stride": 2, "output_padding": 5},
        ["5", ("output_padding", "output padding")],
    ),
    ("conv_transpose1d", (1, 4, 1), (4, 4, 1), None, {"padding": 3}, [("-5", "3")]),
]


@pytest.mark.parametrize(("name", "xs", "ws", "bs", "kwargs", "needles"), MESSAGE_CASES)
def test_error_messages_name_values(name, xs, ws, bs, kwargs, needles):
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal(xs), rng.standard_normal(ws)
    b = None if bs is None else rng.standard_normal(bs)
    _, ref_err = outcome(lambda: torch_conv(name, x, w, b, kwargs))
    got, got_err = outcome(lambda: getattr(F, name)(x, w, b, **kwargs))
    assert ref_err is not None, "torch accepts this call: the case is wrong"
    assert_same_error(ref_err, got, got_err)
    message = str(got_err).lower()
    for needle in needles:
        options = (needle,) if isinstance(needle, str) else needle
        assert any(o.lower() in message for o in options), f"{options} not in {message!r}"


def test_list_input_is_type_error():
    """Only Tensor/ndarray inputs are promised; a Python list is a TypeError (torch agrees)."""
    w = np.ones((1, 1, 3))
    _, ref_err = outcome(lambda: TF.conv1d([[[1.0, 2.0, 3.0]]], torch.ones(1, 1, 3)))
    got, got_err = outcome(lambda: F.conv1d([[[1.0, 2.0, 3.0]]], w))
    assert_same_error(ref_err, got, got_err)


# ----------------------------------------------------------------------------- conv_general


@st.composite
def general_cases(draw):
    """Array-level primitive: per-side (possibly negative) padding and input dilation."""
    nd = draw(st.sampled_from([1, 2, 3]))
    lim = LIMITS[nd]
    groups = draw(st.integers(1, 2))
    cin_g, cout_g = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    k = [draw(st.integers(1, lim["k"])) for _ in range(nd)]
    s = [draw(st.integers(1, lim["s"])) for _ in range(nd)]
    d = [draw(st.integers(1, lim["d"])) for _ in range(nd)]
    r = [draw(st.integers(1, 3)) for _ in range(nd)]
    pads = [(draw(st.integers(-2, 3)), draw(st.integers(-2, 3))) for _ in range(nd)]
    h = []
    for ki, di, ri, (before, after) in zip(k, d, r, pads, strict=True):
        # smallest size with dilated + pads >= effective kernel and crops leaving >= 1 element
        need = max(di * (ki - 1) + 1 - before - after, 1 - min(before, 0) - min(after, 0), 1)
        lo = 1 + -(-(need - 1) // ri)
        h.append(draw(st.integers(lo, lo + 3)))
    n = draw(st.integers(1, lim["n"]))
    dtype = draw(st.sampled_from(["float64", "float32", "int64"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = random_array(rng, (n, groups * cin_g, *h), dtype)
    w = random_array(rng, (groups * cout_g, cin_g, *k), dtype)
    params = {
        "stride": tuple(s),
        "padding": tuple(pads),
        "dilation": tuple(d),
        "input_dilation": tuple(r),
        "groups": groups,
    }
    return x, w, params


def torch_general(x, w, *, stride, padding, dilation, input_dilation, groups) -> np.ndarray:
    """The reference for conv_general, built from torch ops: zero-insertion, F.pad, conv."""
    t = to_torch(x)
    if any(ri > 1 for ri in input_dilation):
        size = [(hi - 1) * ri + 1 for hi, ri in zip(t.shape[2:], input_dilation, strict=True)]
        z = torch.zeros((*t.shape[:2], *size), dtype=t.dtype)
        z[(..., *(slice(None, None, ri) for ri in input_dilation))] = t
        t = z
    flat = [v for pair in reversed(padding) for v in pair]  # torch order: last dim first
    t = TF.pad(t, flat)
    conv = getattr(TF, f"conv{x.ndim - 2}d")
    return conv(t, to_torch(w), stride=stride, dilation=dilation, groups=groups).numpy()


def check_general(x, w, params, algorithm, context="") -> np.ndarray:
    ref = torch_general(x, w, **params)
    got = np.asarray(conv_general(x, w, algorithm=algorithm, **params))
    context = f"[conv_general x{x.shape} w{w.shape} {params} algorithm={algorithm} {context}]"
    scale = None
    if ref.dtype.kind == "f":
        scale = torch_general(np.abs(x.astype(np.float64)), np.abs(w.astype(np.float64)), **params)
    assert_values(got, ref, scale, context)
    return got


@hyp(250)
@given(general_cases(), st.sampled_from([None, "unfold", "direct"]))
def test_conv_general_algorithms_match_torch(case, algorithm):
    x, w, params = case
    check_general(x, w, params, algorithm)


@pytest.fixture
def restore_budget():
    before = cs.get_workspace_budget()
    yield
    cs.set_workspace_budget(before)


BUDGET_CASES = [
    (
        (3, 4, 16, 16),
        (6, 2, 3, 3),
        {
            "stride": (1, 2),
            "padding": ((1, 2), (-1, 1)),
            "dilation": (2, 1),
            "input_dilation": (1, 1),
            "groups": 2,
        },
    ),
    (
        (2, 3, 20),
        (5, 3, 4),
        {
            "stride": (1,),
            "padding": ((3, 3),),
            "dilation": (1,),
            "input_dilation": (2,),
            "groups": 1,
        },
    ),
    (
        (2, 2, 6, 7, 5),
        (4, 1, 3, 2, 3),
        {
            "stride": (1, 1, 2),
            "padding": ((1, 1), (0, 2), (1, 0)),
            "dilation": (1, 2, 1),
            "input_dilation": (1, 1, 1),
            "groups": 2,
        },
    ),
]


@pytest.mark.parametrize("algorithm", [None, "unfold", "direct"])
@pytest.mark.parametrize("dtype", ["float64", "float32", "int64"])
@pytest.mark.parametrize(("xs", "ws", "params"), BUDGET_CASES)
def test_tiny_workspace_budget_gives_same_results(xs, ws, params, dtype, algorithm, restore_budget):
    """A 4 KiB budget forces the chunked path: still torch's values, and the same values as the
    unchunked path (bit-identical for integers; floats may only differ by summation order)."""
    rng = np.random.default_rng(7)
    x, w = random_array(rng, xs, dtype, wide=True), random_array(rng, ws, dtype, wide=True)
    before = cs.get_workspace_budget()
    full = check_general(x, w, params, algorithm)
    with cs.workspace_budget(4096):
        assert cs.get_workspace_budget() == 4096
        chunked = check_general(x, w, params, algorithm, context="(budget 4096)")
    assert cs.get_workspace_budget() == before
    if x.dtype.kind != "f":
        np.testing.assert_array_equal(chunked, full)


@pytest.mark.parametrize(
    ("name", "xs", "ws", "kwargs"),
    [
        ("conv2d", (3, 4, 14, 13), (6, 2, 3, 3), {"padding": 2, "groups": 2, "dilation": (1, 2)}),
        (
            "conv_transpose2d",
            (2, 4, 7, 6),
            (4, 3, 3, 2),
            {"stride": 2, "padding": 1, "output_padding": 1},
        ),
        ("conv3d", (2, 3, 7, 6, 5), (4, 3, 2, 3, 2), {"padding": "same"}),
        ("conv1d", (3, 5, 30), (5, 1, 4), {"groups": 5, "stride": 3, "padding": 2}),
    ],
)
def test_functional_under_tiny_budget(name, xs, ws, kwargs, restore_budget):
    rng = np.random.default_rng(3)
    x, w, b = (
        rng.standard_normal(xs),
        rng.standard_normal(ws),
        rng.standard_normal(
            ws[1] * kwargs.get("groups", 1) if name.startswith("conv_t") else ws[0]
        ),
    )
    cs.set_workspace_budget(4096)
    assert cs.get_workspace_budget() == 4096
    check_conv(name, x, w, b, kwargs, context="(budget 4096)")


def test_workspace_budget_restored_after_exception(restore_budget):
    before = cs.get_workspace_budget()
    with pytest.raises(KeyError), cs.workspace_budget(12345):
        assert cs.get_workspace_budget() == 12345
        raise KeyError("boom")
    assert cs.get_workspace_budget() == before


# ----------------------------------------------------------------------------- no mutation


def _reading_calls(rng):
    """(function, args, kwargs) triples covering every entry point that reads arrays."""
    x1 = rng.standard_normal((2, 3, 10))
    x2 = rng.standard_normal((2, 3, 6, 10))[..., ::2]  # a non-contiguous view
    x3 = rng.standard_normal((1, 3, 4, 5, 6))
    w1, w2, w3 = (rng.standard_normal((3, 3, *k)) for k in [(3,), (3, 3), (2, 2, 2)])
    b = rng.standard_normal(3)
    calls = [
        (F.conv1d, (x1, w1, b), {"padding": 2, "stride": 2}),
        (F.conv2d, (x2, w2, b), {"padding": "same", "dilation": 2}),
        (F.conv3d, (x3, w3, b), {"padding": 1}),
        (F.conv_transpose1d, (x1, w1, b), {"stride": 2}),
        (F.conv_transpose2d, (x2, w2, b), {"stride": 2, "output_padding": 1}),
        (F.conv_transpose3d, (x3, w3, b), {"dilation": 2}),
    ]
    for mode in ("constant", "reflect", "replicate", "circular"):
        calls.append((F.pad, (x2, (1, 2, 2, 1)), {"mode": mode}))
        calls.append((F.pad, (x2, (0, 0, -1, -1)), {"mode": mode}))
    return calls


@pytest.mark.parametrize("as_tensor", [False, True])
def test_inputs_are_not_mutated(as_tensor):
    for fn, args, kwargs in _reading_calls(np.random.default_rng(11)):
        if as_tensor:
            args = tuple(
                cs.tensor(a, dtype=a.dtype) if isinstance(a, np.ndarray) else a for a in args
            )
        before = [np.array(a, copy=True) for a in args if not isinstance(a, tuple)]
        fn(*args, **kwargs)
        after = [np.asarray(a) for a in args if not isinstance(a, tuple)]
        for old, new in zip(before, after, strict=True):
            np.testing.assert_array_equal(new, old, err_msg=f"{fn.__name__} mutated its input")


def test_conv_general_does_not_mutate():
    rng = np.random.default_rng(12)
    x, w = rng.standard_normal((2, 3, 5, 6))[..., ::-1], rng.standard_normal((4, 3, 2, 3))
    x0, w0 = x.copy(), w.copy()
    params = {
        "stride": (1, 1),
        "padding": ((1, -1), (0, 2)),
        "dilation": (1, 1),
        "input_dilation": (2, 1),
        "groups": 1,
    }
    for algorithm in (None, "unfold", "direct"):
        check_general(x, w, params, algorithm)
        np.testing.assert_array_equal(x, x0)
        np.testing.assert_array_equal(w, w0)


def test_non_contiguous_inputs_match_torch():
    """Strided / Fortran-ordered NumPy views give the same values as contiguous copies."""
    rng = np.random.default_rng(5)
    base = rng.standard_normal((3, 4, 9, 16))
    w = np.asfortranarray(rng.standard_normal((6, 2, 3, 3)))
    b = rng.standard_normal(12)[::2]
    x = base[:, :, ::-1, ::2]
    check_conv("conv2d", x, w, b, {"groups": 2, "padding": 1})
    check_conv(
        "conv_transpose2d",
        x,
        np.asfortranarray(rng.standard_normal((4, 3, 2, 3))),
        b[:3],
        {"stride": 2},
    )


def test_validated_calls_are_remembered_but_never_skip_a_check(reference):
    """A second call with the same signature reuses the resolved arguments; any change of
    shape, dtype or argument (type included) is validated afresh."""
    from convscope.nn.functional import conv as conv_module

    x, w = cs.rand(1, 2, 6, 6), cs.rand(3, 2, 3, 3)
    first = F.conv2d(x, w, stride=2, padding=1)
    size = len(conv_module._PLANS)
    again = F.conv2d(x, w, stride=2, padding=1)
    assert len(conv_module._PLANS) == size
    np.testing.assert_array_equal(first.numpy(), again.numpy())
    with pytest.raises(TypeError):
        F.conv2d(x, w, stride=2.0, padding=1)
    with pytest.raises(RuntimeError):
        F.conv2d(cs.rand(1, 4, 6, 6), w, stride=2, padding=1)
    with pytest.raises(RuntimeError):
        F.conv2d(x, w.double(), stride=2, padding=1)
    listed = F.conv2d(x, w, stride=[2, 2], padding=[1, 1])  # lists: validated every time
    np.testing.assert_array_equal(listed.numpy(), first.numpy())
