"""Sliding-kernel animations: frames, highlighted windows (checked against PyTorch), numbers,
pixels, files, the gallery and the ``convscope animate`` command."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from convscope.cli import animate as animate_cli
from convscope.cli import main
from convscope.viz import animation as A
from convscope.viz import animation_draw as D

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


# ---------------------------------------------------------------- random configurations
def _random_kwargs(rng: np.random.Generator) -> dict:
    n = int(rng.integers(1, 3))
    ints = lambda low, high: tuple(int(v) for v in rng.integers(low, high, n))  # noqa: E731
    kwargs = {
        "input_size": ints(1, 8),
        "kernel_size": ints(1, 5),
        "stride": ints(1, 4),
        "dilation": ints(1, 4),
    }
    if rng.random() < 0.35:
        out_pad = tuple(
            int(rng.integers(0, max(s, d)))
            for s, d in zip(kwargs["stride"], kwargs["dilation"], strict=True)
        )
        return {**kwargs, "padding": ints(0, 4), "transposed": True, "output_padding": out_pad}
    form = rng.integers(0, 4)
    if form == 0:
        padding = ints(0, 4)
    elif form == 1:  # per side, asymmetric
        padding = tuple((int(a), int(b)) for a, b in rng.integers(0, 4, (n, 2)))
    elif form == 2:
        padding, kwargs["stride"] = "same", 1  # PyTorch's 'same' needs stride 1
    else:
        padding = "valid"
    return {**kwargs, "padding": padding, "padding_mode": str(rng.choice(PADDING_MODES))}


def _torch_conv(torch, kwargs: dict, x, w):
    """The configuration computed by PyTorch (per-side padding via F.pad, as PyTorch does)."""
    F = torch.nn.functional
    n = len(kwargs["input_size"])
    if kwargs.get("transposed"):
        return getattr(F, f"conv_transpose{n}d")(
            x,
            w,
            stride=kwargs["stride"],
            padding=kwargs["padding"],
            output_padding=kwargs["output_padding"],
            dilation=kwargs["dilation"],
        )
    mode = kwargs["padding_mode"]
    padding = kwargs["padding"]
    if not isinstance(padding, str) and isinstance(padding[0], tuple):
        flat = [v for pair in reversed(padding) for v in pair]
        x = F.pad(x, flat, mode="constant" if mode == "zeros" else mode)
        return getattr(F, f"conv{n}d")(x, w, stride=kwargs["stride"], dilation=kwargs["dilation"])
    layer = getattr(torch.nn, f"Conv{n}d")(
        1,
        1,
        kwargs["kernel_size"],
        stride=kwargs["stride"],
        padding=padding,
        dilation=kwargs["dilation"],
        bias=False,
        padding_mode=mode,
        dtype=torch.float64,
    )
    layer.weight.requires_grad_(False).copy_(w)
    return layer(x)


def _torch_grid(torch, config: A.AnimationConfig, x):
    """The working grid built in PyTorch from the engine's pads (checked by the caller)."""
    F = torch.nn.functional
    flat = [v for pair in reversed(config.taps.pads) for v in pair]
    if not config.transposed:
        mode = "constant" if config.padding_mode == "zeros" else config.padding_mode
        return F.pad(x, flat, mode=mode)
    steps = config.taps.input_dilation
    sizes = [(i - 1) * s + 1 for i, s in zip(config.input_size, steps, strict=True)]
    spread = x.new_zeros(1, 1, *sizes)
    spread[(..., *(slice(None, None, s) for s in steps))] = x
    return F.pad(spread, flat)  # negative amounts crop


def _valid_configs(torch, count: int, seed: int):
    """``count`` valid random configurations; invalid draws must be rejected by PyTorch too."""
    rng = np.random.default_rng(seed)
    found = []
    while len(found) < count:
        kwargs = _random_kwargs(rng)
        try:
            config = A.AnimationConfig(**kwargs)
        except (ValueError, RuntimeError, TypeError):
            x = torch.rand(1, 1, *kwargs["input_size"], dtype=torch.float64)
            w = torch.rand(1, 1, *kwargs["kernel_size"], dtype=torch.float64)
            with pytest.raises((RuntimeError, ValueError)):
                _torch_conv(torch, kwargs, x, w)
            continue
        found.append((kwargs, config))
    return found


@pytest.mark.filterwarnings("ignore:Using padding=.same.")
@pytest.mark.parametrize("seed", range(4))
def test_windows_equal_pytorch_receptive_fields(seed):
    torch = pytest.importorskip("torch")
    for kwargs, config in _valid_configs(torch, 10, seed):
        kernel = config.kernel
        taps = int(np.prod(kernel))
        windows = A.frames_windows(config)
        assert [w.output for w in windows] == list(np.ndindex(config.out_shape))
        # 1. which input cell each tap reads: one-hot kernels on an index image, in PyTorch
        index = torch.arange(1, int(np.prod(config.input_size)) + 1, dtype=torch.float64)
        index = index.reshape(1, 1, *config.input_size)
        for t in range(taps):
            one_hot = torch.zeros(taps, dtype=torch.float64)
            one_hot[t] = 1
            read = _torch_conv(torch, kwargs, index, one_hot.reshape(1, 1, *kernel))[0, 0]
            assert tuple(read.shape) == config.out_shape, kwargs
            for window in windows:
                cell = window.input_cells[t]
                expected = 0 if cell is None else np.ravel_multi_index(cell, config.input_size) + 1
                assert read[window.output].item() == expected, (kwargs, window, t)
        _check_grid(torch, kwargs, config, windows)


def _check_grid(torch, kwargs: dict, config: A.AnimationConfig, windows: list) -> None:
    n, kernel = config.dims, config.kernel
    taps = int(np.prod(kernel))
    conv = getattr(torch.nn.functional, f"conv{n}d")
    stride = 1 if config.transposed else kwargs["stride"]

    def flip(k):  # a transposed convolution reads its working grid with the flipped kernel
        return torch.flip(k, list(range(2, 2 + n))) if config.transposed else k

    def grid_conv(g, k):
        return conv(g, flip(k), stride=stride, dilation=kwargs["dilation"])

    # the working grid: PyTorch convolving it equals PyTorch's own layer ...
    x = torch.rand(1, 1, *config.input_size, dtype=torch.float64)
    w = torch.rand(1, 1, *kernel, dtype=torch.float64)
    grid = _torch_grid(torch, config, x)
    assert tuple(grid.shape[2:]) == config.grid_shape
    torch.testing.assert_close(grid_conv(grid, w), _torch_conv(torch, kwargs, x, w))
    # ... and the gradient of each output w.r.t. the grid marks exactly the highlighted
    # cells, each with the number (1-based) of the tap that reads it
    numbered = torch.arange(1, taps + 1, dtype=torch.float64).reshape(1, 1, *kernel)
    jacobian = torch.autograd.functional.jacobian(
        lambda g: grid_conv(g, numbered).flatten(), grid.detach()
    )
    for row, window in zip(jacobian, windows, strict=True):
        marks = row[0, 0]
        assert {tuple(c) for c in torch.nonzero(marks).tolist()} == set(window.grid_cells)
        assert [marks[c].item() for c in window.grid_cells] == list(range(1, taps + 1))


@pytest.mark.filterwarnings("ignore:Using padding=.same.")
def test_working_grid_agrees_with_the_tap_map():
    torch = pytest.importorskip("torch")
    for _, config in _valid_configs(torch, 12, seed=11):
        grid = A.working_grid(config)
        assert grid.sources.shape == config.grid_shape
        assert (grid.kinds == "input").sum() == np.prod(config.input_size) or (
            config.transposed and min(p for pair in config.taps.pads for p in pair) < 0
        )
        for window in A.frames_windows(config):
            for cell, source in zip(window.grid_cells, window.input_cells, strict=True):
                flat = -1 if source is None else np.ravel_multi_index(source, config.input_size)
                assert grid.sources[cell] == flat
                assert (grid.kinds[cell] in ("padding", "inserted")) == (source is None)


@pytest.mark.filterwarnings("ignore:Using padding=.same.")
def test_numbers_are_the_layer_output_and_each_frame_adds_up():
    torch = pytest.importorskip("torch")
    for kwargs, config in _valid_configs(torch, 10, seed=5):
        values = A.numbers(config, seed=3)
        assert values.input.min() >= 0 and values.input.max() <= 3
        expected = _torch_conv(
            torch,
            kwargs,
            torch.tensor(values.input, dtype=torch.float64)[None, None],
            torch.tensor(values.kernel, dtype=torch.float64)[None, None],
        )[0, 0]
        np.testing.assert_array_equal(values.output, expected.numpy().astype(np.int64))
        weights = values.kernel.reshape(-1)
        scene = A._scene(config, True, 3, 44)
        for window, step in zip(A.frames_windows(config), scene.steps, strict=True):
            total = sum(
                int(w * values.input[c])
                for w, c in zip(weights, window.input_cells, strict=True)
                if c is not None
            )
            assert total == values.output[window.output]
            assert step.endswith(f"= {total}")


# ---------------------------------------------------------------- frames and pixels
CASES = {
    "strided": A.AnimationConfig((5, 5), 3, stride=2, padding=1),
    "dilated": A.AnimationConfig((7, 7), 3, dilation=2),
    "reflect": A.AnimationConfig((4, 4), 3, padding=2, padding_mode="reflect"),
    "transposed": A.AnimationConfig(
        (3, 3), 3, stride=2, padding=1, transposed=True, output_padding=1
    ),
    "1d": A.AnimationConfig(7, 3, stride=2, padding=(1,)),
    "1d_transposed": A.AnimationConfig((4,), 2, stride=3, transposed=True, output_padding=2),
    "asymmetric": A.AnimationConfig((4, 5), (2, 3), padding=((1, 0), (0, 2))),
}


@pytest.mark.parametrize("numbers", [False, True])
@pytest.mark.parametrize("name", sorted(CASES))
def test_frames_highlight_the_engine_window_and_the_current_output(name, numbers):
    config = CASES[name]
    frames = A.render(config, numbers=numbers, cell=32)
    where = A.frame_layout(config, numbers=numbers, cell=32)
    outputs = list(np.ndindex(config.out_shape))
    assert len(frames) == len(outputs) == int(np.prod(config.out_shape))
    assert {f.size for f in frames} == {where.size}
    kinds = A._as_2d(A.working_grid(config).kinds)
    cell2d = A._cell_2d
    for f, (frame, window) in enumerate(zip(frames, A.frames_windows(config), strict=True)):
        lit = {cell2d(c) for c in window.grid_cells}
        for cell in np.ndindex(kinds.shape):
            colour = frame.getpixel(where.grid_inner(*cell))
            kind = str(kinds[cell])
            expected = D.footprint_fill(kind) if cell in lit else D.CELL_STYLES[kind][0]
            assert colour == expected, (name, f, cell, kind)
        for k, out in enumerate(outputs):
            colour = frame.getpixel(where.output_inner(*cell2d(out)))
            expected = D.OUTPUT_CURRENT if k == f else D.OUTPUT_DONE if k < f else D.BACKGROUND
            assert colour == expected, (name, f, out)


def test_1d_is_one_row_and_stacked():
    where = A.frame_layout(CASES["1d"])
    assert where.grid_box(0, 0)[1] > where.output_box(0, 0)[3]  # output above the input row
    with pytest.raises(ValueError, match="1-D or 2-D"):
        A.AnimationConfig((3, 3, 3))


def test_formula_and_caption():
    assert A.formula(CASES["strided"]) == [
        "o = floor((i + 2p - d(k-1) - 1)/s) + 1 = floor((5 + 2 - 2 - 1)/2) + 1 = 3"
    ]
    assert A.formula(CASES["transposed"]) == [
        "o = (i - 1)*s - 2p + d(k-1) + op + 1 = (3 - 1)*2 - 2 + 2 + 1 + 1 = 6"
    ]
    assert A.formula(CASES["asymmetric"]) == [
        "height: o = floor((i + p_l + p_r - d(k-1) - 1)/s) + 1 = floor((4 + 1 + 0 - 1 - 1)/1)"
        " + 1 = 4",
        "width: o = floor((i + p_l + p_r - d(k-1) - 1)/s) + 1 = floor((5 + 0 + 2 - 2 - 1)/1)"
        " + 1 = 5",
    ]
    same = A.AnimationConfig((6, 6), 4, padding="same")
    assert same.out_shape == (6, 6)
    assert A.formula(same)[0].endswith("floor((6 + 1 + 2 - 3 - 1)/1) + 1 = 6")
    caption = A._scene(CASES["transposed"], False, 0, 44).caption
    assert caption[0].startswith("ConvTranspose2d(kernel_size=3, stride=2, padding=1")
    assert "1 zero(s) between inputs" in caption[2]


def test_bad_configurations_raise_like_the_layers():
    with pytest.raises(RuntimeError, match="Kernel size can't be greater"):
        A.AnimationConfig((3, 3), 5)
    with pytest.raises(ValueError, match="positive"):
        A.AnimationConfig((0, 4))
    with pytest.raises(ValueError, match="zeros"):
        A.AnimationConfig((4, 4), 3, padding=1, transposed=True, padding_mode="reflect")
    with pytest.raises(ValueError, match="too large"):
        A.AnimationConfig((40,), 3)
    with pytest.raises(ValueError, match="cell size"):
        A.render(CASES["1d"], cell=4)


# ---------------------------------------------------------------- files
def test_gif_and_webp_files(tmp_path):
    from PIL import Image, features

    frames = A.render(CASES["strided"], numbers=True)
    A.save(frames, tmp_path / "a.gif", "gif", duration=200)
    with Image.open(tmp_path / "a.gif") as gif:
        assert (gif.n_frames, gif.size) == (9, frames[0].size)
        gif.seek(4)
        assert gif.info["duration"] == 200
        # one shared palette: fills stay exact, only the anti-aliased edges of text may snap
        # to a neighbouring colour
        decoded = np.asarray(gif.convert("RGB"))
        assert (decoded != np.asarray(frames[4])).any(axis=-1).mean() < 0.05
        where = A.frame_layout(CASES["strided"], numbers=True)
        assert tuple(decoded[where.output_inner(1, 1)[::-1]]) == D.OUTPUT_CURRENT
        for cell in np.ndindex(CASES["strided"].grid_shape):
            x, y = where.grid_inner(*cell)
            assert tuple(decoded[y, x]) == frames[4].getpixel((x, y))
    if features.check("webp"):
        A.save(frames, tmp_path / "a.webp", "webp")
        with Image.open(tmp_path / "a.webp") as webp:
            assert (webp.n_frames, webp.size) == (9, frames[0].size)
    with pytest.raises(ValueError, match="format"):
        A.save(frames, tmp_path / "a.png", "png")


def test_mp4_file(tmp_path):
    av = pytest.importorskip("av")
    frames = A.render(CASES["1d"])
    A.save(frames, tmp_path / "a.mp4", "mp4", duration=500, hold_last=2)
    with av.open(str(tmp_path / "a.mp4")) as container:
        decoded = list(container.decode(video=0))
    # one extra frame closes the last one's display time (variable frame rate)
    assert len(decoded) == len(frames) + 1
    assert decoded[1].time == pytest.approx(0.5)
    assert decoded[-1].time == pytest.approx(0.5 * (len(frames) - 1) + 1.0)
    assert decoded[0].width >= frames[0].width and decoded[0].width % 2 == 0


def test_gallery_writes_the_classic_set(tmp_path):
    from PIL import Image

    names = [*A._CLASSIC, *(f"{n}_transposed" for n in A._CLASSIC)]
    assert sorted(A.GALLERY) == sorted(names) and len(names) == 16
    classic = {n: (c.input_size, c.kernel, c.out_shape) for n, c in A.GALLERY.items()}
    assert classic["no_padding_no_strides"] == ((4, 4), (3, 3), (2, 2))
    assert classic["arbitrary_padding_no_strides"] == ((5, 5), (4, 4), (6, 6))
    assert classic["padding_strides_odd"] == ((6, 6), (3, 3), (3, 3))
    assert classic["dilation"] == ((7, 7), (3, 3), (3, 3))
    for name in A._CLASSIC:  # each transposed counterpart maps the output size back
        assert classic[f"{name}_transposed"][0] == classic[name][2]
        assert classic[f"{name}_transposed"][2] == classic[name][0]
    assert A.GALLERY["padding_strides_odd_transposed"].output_padding == (1, 1)
    paths = A.gallery(tmp_path, names=["padding_strides_odd_transposed", "dilation"])
    assert [p.name for p in paths] == ["padding_strides_odd_transposed.gif", "dilation.gif"]
    with Image.open(paths[0]) as gif:
        assert gif.n_frames == 36
    with pytest.raises(ValueError, match="unknown"):
        A.gallery(tmp_path, names=["nope"])


# ---------------------------------------------------------------- command line
def test_cli_end_to_end(tmp_path, capsys):
    from PIL import Image

    out = tmp_path / "anim"
    args = [
        "animate",
        "--input-size",
        "5",
        "--stride",
        "2",
        "--padding",
        "1",
        "--numbers",
        "-o",
        str(out),
    ]
    assert main(args) == 0
    path = out / "conv1d_5_k3_s2_p1.gif"
    assert capsys.readouterr().out.strip() == str(path)
    with Image.open(path) as gif:
        assert gif.n_frames == 3
    assert (
        main(
            [
                "animate",
                "--transposed",
                "--stride",
                "2",
                "--output-padding",
                "1",
                "--input-size",
                "2x3",
                "--name",
                "t.gif",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    with Image.open(out / "t.gif") as gif:
        assert gif.n_frames == 6 * 8


def test_cli_gallery(tmp_path, capsys):
    assert main(["animate", "--gallery", "--fps", "4", "--cell", "24", "-o", str(tmp_path)]) == 0
    printed = capsys.readouterr().out.split()
    expected = {f"{name}.gif" for name in A.GALLERY}
    assert {p.split("/")[-1] for p in printed} == expected
    assert {p.name for p in tmp_path.iterdir()} == expected


def test_cli_infers_the_dimension():
    parser = animate_cli.build_parser()
    parse = lambda *a: animate_cli.config_from_args(parser.parse_args(list(a)))  # noqa: E731
    assert parse().input_size == (5, 5)
    assert parse("--input-size", "6").input_size == (6,)
    assert parse("--input-size", "6", "--kernel-size", "3,2").input_size == (6, 6)
    assert parse("--dim", "1").input_size == (5,)
    assert parse("--padding", "1:2,0:1").padding == ((1, 2), (0, 1))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--input-size", "5,5,5"], "1-D or 2-D"),
        (["--kernel-size", "3,3,3"], "1-D or 2-D"),
        (["--input-size", "0"], "positive"),
        (["--input-size", "five"], "--input-size expects"),
        (["--input-size", "3,3", "--kernel-size", "5"], "Kernel size can't be greater"),
        (["--input-size", "3", "--padding", "1", "--kernel-size", "6"], "Kernel size can't"),
        (["--input-size", "4,4", "--dim", "1"], "--dim is 1"),
        (["--transposed", "--padding", "same"], "not defined for transposed"),
        (["--output-padding", "1"], "only applies with --transposed"),
        (["--padding", "9", "--padding-mode", "reflect"], "padding"),
        (["--input-size", "64"], "too large"),
        (["--gallery", "--stride", "2"], "drop --stride"),
        (["--fps", "0"], "--fps"),
        (["--name", "../x"], "--name"),
    ],
)
def test_cli_bad_input_is_one_line(tmp_path, capsys, args, message):
    assert main(["animate", *args, "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("convscope animate: error:") and message in err


def test_cli_mp4_without_pyav_says_how_to_install(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "av", None)  # import av now raises ImportError
    assert main(["animate", "--format", "mp4", "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'convscope[video]'" in err
    assert not list(tmp_path.iterdir())


def test_demo_writes_a_few_gifs(tmp_path, capsys):
    animate_cli.demo(tmp_path / "animate")
    printed = capsys.readouterr().out
    for name in animate_cli.DEMO_SET:
        assert (tmp_path / "animate" / f"{name}.gif").is_file()
        assert f"{name}.gif" in printed


def test_import_convscope_does_not_load_pillow():
    code = (
        "import sys, convscope, convscope.viz.animation, convscope.cli.animate; "
        "assert 'PIL' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
