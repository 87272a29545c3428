"""``explain.element`` and ``convscope explain``: every variant's written-out sum is the layer's.

Windows are checked against an independent definition (``np.pad`` and the index formula
``i*s - p + t*d``), not against the tap map the tool itself uses.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

import convscope as cs
from convscope import explain, nn
from convscope.cli import main
from convscope.explain import Explanation

SEED_003_INPUT = [
    [1, 2, 0, 3, 1],
    [0, 1, 2, 3, 1],
    [1, 2, 1, 0, 0],
    [5, 2, 3, 1, 1],
    [2, 1, 0, 1, 1],
]
SEED_003_KERNEL = [[1, 2, 1], [0, 1, 0], [2, 1, 0]]
SEED_003_OUTPUTS = {
    (1, 0): [[10, 12, 12], [18, 16, 16], [13, 9, 3]],
    (2, 0): [[10, 12], [13, 3]],
    (1, 1): [
        [1, 3, 4, 10, 8],
        [5, 10, 12, 12, 6],
        [7, 18, 16, 16, 8],
        [11, 13, 9, 3, 4],
        [14, 13, 9, 7, 4],
    ],
}
NP_MODES = {"zeros": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


# ----------------------------------------------------------------------------- random layers
def _padding(rng, dim, kernel, dilation, transposed):
    forms = ["int", "tuple", "pairs"] if transposed else ["int", "tuple", "pairs", "valid", "same"]
    if dim == 1 and not transposed:
        forms.append("causal")
    form = forms[rng.integers(len(forms))]
    top = [d * (k - 1) + 1 for k, d in zip(kernel, dilation, strict=True)]
    if form == "int":
        return int(rng.integers(0, min(top) + 1))
    if form == "tuple":
        return tuple(int(rng.integers(0, t + 1)) for t in top)
    if form == "pairs":
        return tuple((int(rng.integers(0, t + 1)), int(rng.integers(0, t + 1))) for t in top)
    return form


def random_layer(rng, dtype):
    """A random valid layer and input: any dimension, transposed, groups, padding form/mode."""
    while True:
        dim = int(rng.integers(1, 4))
        transposed = bool(rng.random() < 0.4)
        groups = int(rng.choice([1, 2, 3]))
        cin, cout = groups * int(rng.integers(1, 3)), groups * int(rng.integers(1, 3))
        kernel = tuple(int(v) for v in rng.integers(1, 4, dim))
        stride = tuple(int(v) for v in rng.integers(1, 4, dim))
        dilation = tuple(int(v) for v in rng.integers(1, 3, dim))
        padding = _padding(rng, dim, kernel, dilation, transposed)
        mode = "zeros" if transposed else str(rng.choice(list(NP_MODES)))
        out_pad = tuple(
            int(rng.integers(0, max(s, d))) for s, d in zip(stride, dilation, strict=True)
        )
        spatial = tuple(int(v) for v in rng.integers(2, 7, dim))
        try:
            layer = explain.build_layer(
                dim,
                cin,
                cout,
                kernel,
                stride,
                padding,
                dilation,
                groups,
                bool(rng.random() < 0.8),
                mode,
                transposed=transposed,
                output_padding=out_pad if transposed else 0,
            )
            x = cs.tensor(_values(rng, (int(rng.integers(1, 3)), cin, *spatial), dtype))
            _set(layer, rng, dtype)
            layer(x)
        except (RuntimeError, ValueError):
            continue  # e.g. reflect padding wider than the input: draw again
        return layer, x


def _values(rng, shape, dtype):
    if np.dtype(dtype).kind == "i":
        return rng.integers(-4, 5, shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


def _set(layer, rng, dtype):
    layer.weight.data = _values(rng, layer.weight.shape, dtype)
    if layer.bias is not None:
        layer.bias.data = _values(rng, layer.bias.shape, dtype)


def _check_windows(e: Explanation, layer, x: np.ndarray) -> None:
    """Every tap's value against np.pad and the index formulas of SPEC section 1."""
    n = len(layer.kernel_size)
    xb = x if x.ndim == n + 2 else x[None]
    index = e.index if e.batched else (0, *e.index)
    nb, position = index[0], index[2:]
    pads = [d.padding for d in e.dims]
    for term in e.channels:
        plane = xb[nb, term.input_channel]
        if not layer.transposed:
            mode = NP_MODES[layer.padding_mode]
            padded = np.pad(plane, pads, mode=mode) if any(map(any, pads)) else plane
        for tap in term.taps:
            if layer.transposed:
                hits = []
                for a, t in enumerate(tap.tap):
                    s, lo, dl = layer.stride[a], pads[a][0], layer.dilation[a]
                    j, rest = divmod(position[a] + lo - t * dl, s)
                    hits.append(j if rest == 0 and 0 <= j < plane.shape[a] else None)
                source = None if None in hits else tuple(hits)
                assert tap.source == source
                assert tap.value == (0 if source is None else plane[source])
            else:
                cell = tuple(
                    position[a] * layer.stride[a] + t * layer.dilation[a]
                    for a, t in enumerate(tap.tap)
                )
                assert tap.value == padded[cell]
                inside = all(
                    0 <= c - lo < size
                    for c, (lo, _), size in zip(cell, pads, plane.shape, strict=True)
                )
                assert tap.padding == (not inside)
            assert tap.product == tap.value * tap.weight


@pytest.mark.parametrize("dtype", ["int64", "float64", "float32"])
def test_random_layers_sum_equals_layer_output(dtype):
    rng = np.random.default_rng({"int64": 1, "float64": 2, "float32": 3}[dtype])
    kinds = set()
    for _ in range(60):
        layer, x = random_layer(rng, dtype)
        y = layer(x).numpy()
        batched = bool(rng.random() < 0.8)
        if not batched:
            x, y = x[0], y[0]
        index = tuple(int(rng.integers(0, s)) for s in y.shape)
        e = explain.element(layer, x, index)
        _check_windows(e, layer, x.numpy())
        assert e.actual == y[index]
        products = [t.product for c in e.channels for t in c.taps]
        if dtype == "int64":
            assert e.total == e.actual and isinstance(e.total, int)
            assert e.total == sum(products) + (e.bias or 0)
        elif dtype == "float64":
            scale = 1 + sum(abs(p) for p in products)
            assert abs(e.total - e.actual) <= 1e-13 * scale
        assert e.matches
        kinds.add((len(layer.kernel_size), layer.transposed, layer.groups > 1))
    assert len(kinds) >= 6  # the draw covered many variants


def test_seed_004_conv1d_by_hand():
    cs.manual_seed(0)
    conv = nn.Conv1d(2, 3, 5)
    x = cs.rand(4, 2, 6)
    y, xs, w, b = conv(x).numpy(), x.numpy(), conv.weight.numpy(), conv.bias.numpy()
    assert y.shape == (4, 3, 2)
    for t in range(2):
        e = explain.element(conv, x, (0, 0, t))
        by_hand = xs[0, 0, t : t + 5] @ w[0, 0] + xs[0, 1, t : t + 5] @ w[0, 1] + b[0]
        # float32: the layer's algorithm may add in another order than the exact sum rounds
        assert e.matches and abs(float(y[0, 0, t]) - e.total) <= e.tolerance
        assert math.isclose(e.total, by_hand, rel_tol=1e-6)
        assert [c.expression for c in e.channels] == [
            f"x[0, 0, {t}:{t + 5}] @ w[0, 0]",
            f"x[0, 1, {t}:{t + 5}] @ w[0, 1]",
        ]
    table = e.table
    assert (table.weight_shape, table.bias_shape, table.params) == ((3, 2, 5), (3,), 33)
    assert table.shape.output_shape == (4, 3, 2)
    assert [f.result for f in table.shape.formulas] == [2]


@pytest.mark.parametrize(("stride", "padding"), list(SEED_003_OUTPUTS))
def test_seed_003_integer_example_every_element(stride, padding):
    conv = nn.Conv2d(1, 1, 3, stride=stride, padding=padding, bias=False)
    conv.weight.data = np.array(SEED_003_KERNEL).reshape(1, 1, 3, 3)
    x = cs.tensor(SEED_003_INPUT).reshape(1, 1, 5, 5)
    expected = SEED_003_OUTPUTS[(stride, padding)]
    for i, row in enumerate(expected):
        for j, value in enumerate(row):
            e = explain.element(conv, x, (0, 0, i, j))
            assert (e.total, e.actual, e.matches) == (value, value, True)


def test_negative_index_unbatched_and_errors():
    conv = nn.Conv2d(2, 4, 3, groups=2)
    x = cs.rand(2, 5, 5)
    e = explain.element(conv, x, (-1, -1, 0))
    assert e.index == (3, 2, 0) and not e.batched
    assert e.group == 1 and e.input_channels == (1,)
    with pytest.raises(IndexError, match="out of bounds for dimension 1 with size 3"):
        explain.element(conv, x, (0, 3, 0))
    with pytest.raises(IndexError, match="needs 3 indices"):
        explain.element(conv, x, (0, 0))
    with pytest.raises(RuntimeError, match="to have 2 channels, but got 3"):
        explain.element(conv, cs.rand(3, 5, 5), (0, 0, 0))
    with pytest.raises(TypeError, match="convolution layer"):
        explain.element(nn.ReLU(), x, (0, 0, 0))


def test_transposed_lists_contributing_inputs_and_taps():
    up = nn.ConvTranspose2d(1, 1, 3, stride=2, bias=False)
    up.weight.data = np.array(SEED_003_KERNEL).reshape(1, 1, 3, 3)
    x = cs.tensor([[[[1, 2], [3, 4]]]])
    e = explain.element(up, x, (0, 0, 2, 2))
    used = {(t.tap, t.source) for t in e.channels[0].taps if t.source is not None}
    # o = j*2 + t: o=2 is reached by j=1 through t=0 and by j=0 through t=2, per dimension
    assert used == {
        ((0, 0), (1, 1)),
        ((0, 2), (1, 0)),
        ((2, 0), (0, 1)),
        ((2, 2), (0, 0)),
    }
    assert e.total == 4 * 1 + 3 * 1 + 2 * 2 + 1 * 0 == e.actual
    assert [d.positions for d in e.dims] == [(1, None, 0), (1, None, 0)]
    text = str(e)
    assert "j=1 (t=0), j=0 (t=2)" in text
    assert "x[0, 0, 1, 1]*w[0, 0, 0, 0]" in text


def test_json_round_trip():
    cs.manual_seed(1)
    layer = nn.Conv2d(2, 2, 3, padding=1, padding_mode="reflect")
    e = explain.element(layer, cs.rand(1, 2, 4, 4), (0, 1, 0, 3))
    data = json.loads(json.dumps(e.to_dict()))
    back = Explanation.from_dict(data)
    assert back == e
    assert str(back) == str(e)
    assert data["channels"][0]["taps"][0]["padding"] is True


def test_text_grid_narrow_and_padding_marks():
    cs.manual_seed(2)
    conv = nn.Conv2d(1, 1, 3, padding=1, padding_mode="replicate")
    e = explain.element(conv, cs.rand(1, 1, 4, 4), (0, 0, 0, 0))
    text = e.to_text(width=100)
    assert "input window x" in text and "products x*w" in text
    assert "copied by padding_mode='replicate'" in text
    assert "sum(xpad[0, 0, 0:3, 0:3] * w[0, 0])" in text
    assert "MATCH" in text
    wide = explain.element(nn.Conv1d(1, 1, 15, padding=7), cs.rand(1, 1, 20), (0, 0, 0))
    text = wide.to_text(width=80)
    assert "input cell" in text and "sum of the x*w column" in text  # narrow: one row per tap
    assert max(len(line) for line in text.splitlines()) <= 100
    assert "input cell" not in wide.to_text(width=200)


# ----------------------------------------------------------------------------- command line
def _run(capsys, *argv):
    code = main(["explain", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_seed_004_and_seed_003(capsys):
    code, out, _ = _run(
        capsys,
        "--dim",
        "1",
        "--in-channels",
        "2",
        "--out-channels",
        "3",
        "--kernel-size",
        "5",
        "--input-size",
        "6",
        "--batch",
        "4",
        "--at",
        "0,0,1",
    )
    assert code == 0
    assert "x[0, 0, 1:6] @ w[0, 0]" in out and "MATCH" in out
    assert "(4, 2, 6) -> output (4, 3, 2)" in out
    input_text = json.dumps(SEED_003_INPUT)
    code, out, _ = _run(
        capsys,
        "--input",
        input_text,
        "--weight",
        json.dumps(SEED_003_KERNEL),
        "--no-bias",
        "--stride",
        "2",
        "--at",
        "0,0,1,1",
        "--json",
    )
    data = json.loads(out)
    assert code == 0 and data["total"] == data["actual"] == 3 and data["dtype"] == "int64"


@pytest.mark.parametrize(
    "argv",
    [
        ["--transposed", "--dim", "3", "--input-size", "2,3,2", "--stride", "2", "--json"],
        ["--groups", "2", "--in-channels", "4", "--padding", "same", "--dilation", "2"],
        ["--dim", "1", "--padding", "causal", "--kernel-size", "4", "--dtype", "int64"],
        ["--padding", "1:0,2:1", "--padding-mode", "circular", "--dtype", "float64", "--narrow"],
    ],
)
def test_cli_variants_succeed(capsys, argv):
    code, out, err = _run(capsys, *argv)
    assert code == 0, err
    assert ('"matches": true' in out) if "--json" in argv else ("MATCH:" in out)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--at", "0,0,9,9"], "out of bounds"),
        (["--input", "[[1, 2], [3]]"], "--input"),
        (["--bias", "[1, 2, 3]"], "size mismatch for bias"),
        (["--input", "[[1,2,3]]", "--weight", "[[[[1]], [[2]]]]"], "to have 2 channels"),
        (["--input", "missing.npy"], "no such file"),
        (["--dim", "2", "--input-size", "5,5,5"], "--input-size has 3 values"),
        (["--input-size", "2,2", "--kernel-size", "3"], "Kernel size can't be greater"),
        (["--groups", "2", "--in-channels", "3"], "divisible by groups"),
        (["--transposed", "--padding-mode", "reflect"], "padding mode"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2(capsys, argv, message):
    code, out, err = _run(capsys, *argv)
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1 and out == ""


def test_cli_subprocess_no_traceback():
    done = subprocess.run(
        [sys.executable, "-m", "convscope.cli", "explain", "--at", "1,2,3,4,5"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_demo_writes_json(tmp_path, capsys):
    from convscope.cli import explain as explain_cli

    explain_cli.demo(tmp_path)
    out = capsys.readouterr().out
    assert out.count("MATCH:") == 2
    for name in ("explain_conv1d_seed004.json", "explain_conv_transpose2d.json"):
        data = json.loads((tmp_path / name).read_text())
        assert data["matches"] is True
