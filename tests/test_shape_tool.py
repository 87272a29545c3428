"""``explain.shapes`` and ``convscope shape``: sizes, formulas, inverse solvers, rejections.

Answers are compared with PyTorch's layers; the inverse solvers' answers are verified by
building the PyTorch layer with the solved value.
"""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest

from convscope.cli import main
from convscope.explain import shapes


def _torch_out(torch, dim, size, kernel, stride, padding, dilation, transposed=False, out_pad=0):
    """Spatial output size of the PyTorch layer (per-side padding via F.pad first)."""
    x = torch.zeros(1, 1, *size)
    if shapes.geometry.is_per_side(padding):
        flat = [v for pair in reversed(padding) for v in pair]
        x, padding = torch.nn.functional.pad(x, flat), 0
    cls = getattr(torch.nn, f"{'ConvTranspose' if transposed else 'Conv'}{dim}d")
    extra = {"output_padding": out_pad} if transposed else {}
    layer = cls(1, 1, kernel, stride=stride, padding=padding, dilation=dilation, **extra)
    with torch.no_grad():
        return tuple(layer(x).shape[2:])


def _evaluate(filled: str) -> int:
    """The value of a filled-in formula, computed from its text alone."""
    expression = filled.split(" = ")[0].replace("floor", "math.floor")
    return eval(expression, {"math": math})


def _random_config(rng):
    dim = int(rng.integers(1, 4))
    kernel = tuple(int(v) for v in rng.integers(1, 5, dim))
    stride = tuple(int(v) for v in rng.integers(1, 4, dim))
    dilation = tuple(int(v) for v in rng.integers(1, 3, dim))
    size = tuple(int(v) for v in rng.integers(1, 12, dim))
    return dim, size, kernel, stride, dilation


def test_shapes_and_formulas_match_torch(reference):
    torch = reference
    rng = np.random.default_rng(0)
    checked = 0
    while checked < 40:
        dim, size, kernel, stride, dilation = _random_config(rng)
        transposed = bool(rng.random() < 0.4)
        padding = tuple(int(rng.integers(0, 3)) for _ in range(dim))
        out_pad = tuple(
            int(rng.integers(0, max(s, d))) for s, d in zip(stride, dilation, strict=True)
        )
        if not transposed and rng.random() < 0.3:
            padding = "same" if rng.random() < 0.5 else "valid"
            stride = (1,) * dim if padding == "same" else stride  # PyTorch: 'same' needs stride 1
        args = (
            dim,
            size,
            kernel,
            stride,
            padding,
            dilation,
            transposed,
            out_pad if transposed else 0,
        )
        try:
            expected = _torch_out(torch, *args)
        except RuntimeError as error:
            with pytest.raises(RuntimeError):
                shapes.conv_shape(
                    size,
                    kernel,
                    stride,
                    padding,
                    dilation,
                    transposed=transposed,
                    output_padding=args[-1],
                )
            assert "size" in str(error)
            continue
        answer = shapes.conv_shape(
            size, kernel, stride, padding, dilation, transposed=transposed, output_padding=args[-1]
        )
        assert answer.output_shape == (1, 1, *expected)
        for formula, result in zip(answer.formulas, expected, strict=True):
            assert formula.result == result == _evaluate(formula.filled)
        checked += 1


def test_seed_shapes_and_text():
    answer = shapes.conv_shape((32, 32), 3, in_channels=3, out_channels=6, batch=64)
    assert answer.output_shape == (64, 6, 30, 30)
    assert shapes.conv_shape((257, 188), 5, padding=2, in_channels=2, out_channels=2).output_shape[
        2:
    ] == (257, 188)
    up = shapes.conv_shape((8, 8), 2, 2, transposed=True, in_channels=16, out_channels=8)
    assert up.output_shape == (1, 8, 16, 16)
    strided_same = shapes.conv_shape(10, 3, stride=3, padding="same")
    assert strided_same.output_shape == (1, 1, 4) and strided_same.padding == ((1, 1),)
    text = str(strided_same)
    assert "padding='same' resolves to (before, after) = (1, 1)" in text
    assert "= floor((10 + 2*1 - 1*(3-1) - 1) / 3) + 1 = floor(9 / 3) + 1 = 4" in text
    causal = shapes.conv_shape(10, 3, dilation=2, padding="causal")
    assert causal.padding == ((4, 0),) and "p_before + p_after" in str(causal)


def test_layer_table_counts():
    from convscope import nn

    table = shapes.layer_table(nn.Conv2d(16, 32, 3, groups=4), (2, 16, 10, 10))
    weights = 32 * 4 * 9
    assert table.weight_shape == (32, 4, 3, 3) and table.params == weights + 32
    assert table.multiplications == 2 * 8 * 8 * weights
    assert table.mult_adds == (weights + 32) * 2 * 8 * 8
    assert table.receptive_field == (3, 3)
    up = shapes.layer_table(nn.ConvTranspose1d(1, 1, 5, stride=2), (1, 1, 4))
    assert up.receptive_field == (3,)  # ceil(5 / 2) input cells reach one output cell
    assert up.multiplications == 4 * 5
    assert "(in, out/groups, *kernel)" in str(up)


def test_padding_for_conv_verified_by_torch(reference):
    torch = reference
    rng = np.random.default_rng(1)
    solved = 0
    while solved < 30:
        dim, size, kernel, stride, dilation = _random_config(rng)
        target = tuple(int(v) for v in rng.integers(1, 8, dim))
        try:
            answer = shapes.padding_for(size, target, kernel, stride, dilation)
        except ValueError as error:
            assert "no padding gives an output size" in str(error)
            unpadded = [
                (s - d * (k - 1) - 1) // st + 1
                for s, k, st, d in zip(size, kernel, stride, dilation, strict=True)
            ]
            assert any(u > t for u, t in zip(unpadded, target, strict=True))
            continue
        assert _torch_out(torch, dim, size, kernel, stride, answer.padding, dilation) == target
        assert answer.check.output_shape[2:] == target
        for d, s, k, st, dl in zip(answer.dims, size, kernel, stride, dilation, strict=True):
            for total in (d.totals[0] - 1, *d.totals, d.totals[-1] + 1):  # complete and exact
                if total < 0:
                    continue
                pads = ((total // 2, total - total // 2),)
                try:
                    got = _torch_out(torch, 1, (s,), k, st, pads, dl)[0]
                except RuntimeError:
                    got = None
                assert (got == d.target_size) == (total in d.totals)
            assert d.symmetric == tuple(t // 2 for t in d.totals if t % 2 == 0)
        assert answer.portable == all(d.symmetric for d in answer.dims)
        solved += 1


def test_padding_for_transposed_verified_by_torch(reference):
    torch = reference
    rng = np.random.default_rng(2)
    for _ in range(15):
        dim, size, kernel, stride, dilation = _random_config(rng)
        target = tuple(
            s * st for s, st in zip(size, stride, strict=True)
        )  # the usual upsampling question
        try:
            answer = shapes.padding_for(size, target, kernel, stride, dilation, transposed=True)
        except ValueError:
            continue
        got = _torch_out(
            torch, dim, size, kernel, stride, answer.padding, dilation, True, answer.output_padding
        )
        assert got == target
        for d, s, k, st, dl in zip(answer.dims, size, kernel, stride, dilation, strict=True):
            for p, o in d.pairs:
                assert _torch_out(torch, 1, (s,), k, st, p, dl, True, o) == (d.target_size,)


def test_restore_and_output_padding_for_match_torch(reference):
    torch = reference
    rng = np.random.default_rng(3)
    for _ in range(20):
        dim, size, kernel, stride, dilation = _random_config(rng)
        size = tuple(s + 8 for s in size)
        padding = tuple(int(rng.integers(0, k)) for k in kernel)
        answer = shapes.restore(size, kernel, stride, padding, dilation)
        down = _torch_out(torch, dim, size, kernel, stride, padding, dilation)
        assert answer.down.output_shape[2:] == down
        up = _torch_out(
            torch, dim, down, kernel, stride, padding, dilation, True, answer.output_padding
        )
        assert up == size == answer.up.output_shape[2:]
        cls = getattr(torch.nn, f"ConvTranspose{dim}d")
        layer = cls(1, 1, kernel, stride=stride, padding=padding, dilation=dilation)
        assert (
            tuple(
                layer._output_padding(
                    torch.zeros(1, 1, *down), list(size), stride, padding, kernel, dim, dilation
                )
            )
            == answer.output_padding
        )
    with pytest.raises(ValueError, match="valid sizes range from"):
        shapes.output_padding_for(5, 20, kernel_size=3, stride=2)


def _torch_error(torch, build):
    try:
        build(torch)
    except Exception as error:  # whatever PyTorch raises
        return type(error)
    return None


REJECTIONS = [
    ({"input_size": (2, 2), "kernel_size": 3}, lambda t: t.nn.Conv2d(1, 1, 3)(t.zeros(1, 1, 2, 2))),
    (
        {"input_size": 5, "kernel_size": 3, "in_channels": 3, "groups": 2},
        lambda t: t.nn.Conv1d(3, 2, 3, groups=2),
    ),
    (
        {"input_size": 5, "kernel_size": 3, "out_channels": 3, "in_channels": 2, "groups": 2},
        lambda t: t.nn.Conv1d(2, 3, 3, groups=2),
    ),
    (
        {"input_size": 5, "kernel_size": 3, "padding": -1},
        lambda t: t.nn.Conv1d(1, 1, 3, padding=-1)(t.zeros(1, 1, 5)),
    ),
    (
        {"input_size": 5, "kernel_size": 3, "stride": 0},
        lambda t: t.nn.Conv1d(1, 1, 3, stride=0)(t.zeros(1, 1, 5)),
    ),
    (
        {"input_size": 5, "kernel_size": 3, "dilation": 0},
        lambda t: t.nn.Conv1d(1, 1, 3, dilation=0)(t.zeros(1, 1, 5)),
    ),
    ({"input_size": 5, "kernel_size": 0}, lambda t: t.nn.Conv1d(1, 1, 0)(t.zeros(1, 1, 5))),
    (
        {"input_size": 5, "kernel_size": 3, "stride": 2, "transposed": True, "output_padding": 2},
        lambda t: t.nn.ConvTranspose1d(1, 1, 3, stride=2, output_padding=2)(t.zeros(1, 1, 5)),
    ),
    (
        {"input_size": 2, "kernel_size": 1, "padding": 3, "transposed": True},
        lambda t: t.nn.ConvTranspose1d(1, 1, 1, padding=3)(t.zeros(1, 1, 2)),
    ),
    (
        {"input_size": 3, "kernel_size": 3, "padding": 3, "padding_mode": "reflect"},
        lambda t: t.nn.Conv1d(1, 1, 3, padding=3, padding_mode="reflect")(t.zeros(1, 1, 3)),
    ),
    (
        {"input_size": 3, "kernel_size": 3, "padding": 5, "padding_mode": "circular"},
        lambda t: t.nn.Conv1d(1, 1, 3, padding=5, padding_mode="circular")(t.zeros(1, 1, 3)),
    ),
    (
        {"input_size": 5, "kernel_size": 3, "padding_mode": "wrap"},
        lambda t: t.nn.Conv1d(1, 1, 3, padding_mode="wrap"),
    ),
    (
        {"input_size": 5, "kernel_size": 3, "padding_mode": "reflect", "transposed": True},
        lambda t: t.nn.ConvTranspose1d(1, 1, 3, padding_mode="reflect"),
    ),
    (
        {"input_size": (5, 5), "kernel_size": 3, "padding": "full"},
        lambda t: t.nn.Conv2d(1, 1, 3, padding="full"),
    ),
]


@pytest.mark.parametrize(("kwargs", "build"), REJECTIONS)
def test_rejections_carry_torch_exception_class(reference, kwargs, build):
    expected = _torch_error(reference, build)
    assert expected in (RuntimeError, ValueError)
    with pytest.raises(expected):
        shapes.conv_shape(**kwargs)


# ----------------------------------------------------------------------------- command line
def _run(capsys, *argv):
    code = main(["shape", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_forward_and_json(capsys):
    code, out, _ = _run(
        capsys, "--input-size", "32,32", "--kernel-size", "3", "--stride", "2", "--padding", "1"
    )
    assert code == 0
    assert "input (1, 1, 32, 32) -> output (1, 1, 16, 16)" in out
    assert "= floor((32 + 2*1 - 1*(3-1) - 1) / 2) + 1 = floor(31 / 2) + 1 = 16" in out
    code, out, _ = _run(
        capsys,
        "--transposed",
        "--input-size",
        "8",
        "--dim",
        "2",
        "--kernel-size",
        "2",
        "--stride",
        "2",
        "--json",
    )
    data = json.loads(out)
    assert code == 0 and data["output_shape"] == [1, 1, 16, 16]
    assert [f["result"] for f in data["formulas"]] == [16, 16]


def test_cli_inverse_questions(capsys):
    code, out, _ = _run(
        capsys,
        "--input-size",
        "28,27",
        "--kernel-size",
        "3",
        "--stride",
        "2",
        "--target-size",
        "14",
    )
    assert code == 0 and "answer: padding=(1, 1)" in out
    code, out, _ = _run(capsys, "--input-size", "10", "--kernel-size", "2", "--target-size", "10")
    assert code == 0 and "padding=((0, 1),)" in out and "convscope only" in out
    code, out, _ = _run(
        capsys,
        "--restore",
        "28,27",
        "--kernel-size",
        "3",
        "--stride",
        "2",
        "--padding",
        "1",
        "--json",
    )
    data = json.loads(out)
    assert data["output_padding"] == [1, 0] and data["up"]["output_shape"] == [1, 1, 28, 27]
    code, out, _ = _run(
        capsys,
        "--transposed",
        "--input-size",
        "5",
        "--kernel-size",
        "3",
        "--stride",
        "2",
        "--padding",
        "1",
        "--restore",
        "10",
    )
    assert code == 0 and "output_padding=(1,) restores (10,)" in out


@pytest.mark.parametrize(
    ("argv", "pattern"),
    [
        (["--input-size", "2,2", "--kernel-size", "3"], r"RuntimeError: Calculated padded input"),
        (["--input-size", "5", "--groups", "2", "--in-channels", "3"], r"ValueError: in_channels"),
        (["--input-size", "5", "--target-size", "1"], r"ValueError: no padding gives"),
        (
            ["--transposed", "--input-size", "5", "--stride", "2", "--restore", "30"],
            r"ValueError: requested an output size of \[30\]",
        ),
        (["--input-size", "5", "--target-size", "3", "--padding", "1"], r"leave out --padding"),
        (["--kernel-size", "3"], r"--input-size is needed"),
        (["--input-size", "5,x"], r"--input-size expects"),
    ],
)
def test_cli_rejections_one_line_exit_2(capsys, argv, pattern):
    code, out, err = _run(capsys, *argv)
    assert code == 2 and out == ""
    assert re.search(pattern, err) and len(err.strip().splitlines()) == 1


def test_demo(tmp_path, capsys):
    from convscope.cli import shape as shape_cli

    shape_cli.demo(tmp_path)
    out = capsys.readouterr().out
    assert "(64, 6, 30, 30)" in out and "output_padding=(1, 0)" in out
    assert "Kernel size can't be greater than actual input size" in out
    data = json.loads((tmp_path / "shape_answers.json").read_text())
    assert len(data) == 5


@pytest.mark.parametrize("command", ["explain", "shape"])
def test_help_examples_run(capsys, tmp_path, monkeypatch, command):
    import shlex

    from PIL import Image

    from convscope.cli import command_module

    monkeypatch.chdir(tmp_path)  # the examples' own picture, made here
    Image.fromarray(np.tile(np.arange(0, 224, 8, dtype=np.uint8), (28, 1))).save("shoe.png")

    examples = command_module(command).EXAMPLES.replace("\\\n", " ")
    lines = [line.strip() for line in examples.splitlines() if line.strip().startswith("convscope")]
    assert len(lines) >= 5
    for line in lines:
        assert main(shlex.split(line)[1:]) == 0, line
    capsys.readouterr()


def test_strided_same_and_causal_say_they_extend_pytorch(capsys):
    from convscope.cli import main

    assert main(["shape", "--input-size", "7,7", "--stride", "2", "--padding", "same"]) == 0
    assert "PyTorch refuses padding='same' with stride > 1" in capsys.readouterr().out
    assert main(["shape", "--input-size", "7", "--padding", "causal"]) == 0
    assert "convscope extension" in capsys.readouterr().out
    assert main(["shape", "--input-size", "7,7", "--padding", "same"]) == 0
    assert "PyTorch refuses" not in capsys.readouterr().out
