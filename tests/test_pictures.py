"""Pixel facts of the pictures convscope draws: contact sheets (raw values, diverging scale
centred on 0, titles inside the figure, output size after a stride), audio feature maps and
the sliding-kernel GIFs (readable tap numbers, a kernel that is never all zeros)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from convscope.apps import audio
from convscope.apps import image as image_app
from convscope.apps.filters import filter_conv
from convscope.cli import main
from convscope.viz import contact_sheet
from convscope.viz.sheets import choose_scale, feature_sheet


def _agg(figure):
    """The figure's Agg canvas (one is attached when the figure has none)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    if not isinstance(figure.canvas, FigureCanvasAgg):
        FigureCanvasAgg(figure)
    figure.canvas.draw()
    return figure.canvas


def _rgb(figure) -> np.ndarray:
    """The figure rendered by Agg as an ``(H, W, 3)`` float array in [0, 1]."""
    return np.asarray(_agg(figure).buffer_rgba())[..., :3].astype(np.float64) / 255


def _panel(figure, rgb: np.ndarray, index: int) -> np.ndarray:
    """The pixels of the image drawn in axes ``index`` (inside its frame, rows from the top)."""
    box = figure.axes[index].get_window_extent()
    height = rgb.shape[0]
    top, bottom = int(np.ceil(height - box.y1)) + 1, int(np.floor(height - box.y0)) - 1
    return rgb[top:bottom, int(np.ceil(box.x0)) + 1 : int(np.floor(box.x1)) - 1]


def _luma(rgb: np.ndarray) -> np.ndarray:
    return rgb @ np.array([0.299, 0.587, 0.114])


def _test_image(size: int = 48) -> np.ndarray:
    """(3, H, W) in [0, 1]: a black-to-white ramp with a black and a white square."""
    ramp = np.tile(np.linspace(0.0, 1.0, size), (size, 1))
    ramp[4:14, 4:14], ramp[30:40, 30:40] = 0.0, 1.0
    return np.stack([ramp] * 3).astype(np.float32)


def _texts_inside(figure) -> None:
    """Every visible text of ``figure`` lies inside the figure's own pixel box."""
    renderer = _agg(figure).get_renderer()
    width, height = figure.bbox.width, figure.bbox.height
    texts = [figure._suptitle] if figure._suptitle is not None else []
    for ax in figure.axes:
        texts += [ax.title, ax.xaxis.label, ax.yaxis.label]
    for text in texts:
        if not text.get_visible() or not text.get_text():
            continue
        box = text.get_window_extent(renderer)
        assert box.x0 >= -0.5 and box.x1 <= width + 0.5, (text.get_text(), box, width)
        assert box.y0 >= -0.5 and box.y1 <= height + 0.5, (text.get_text(), box, height)


# ---------------------------------------------------------------- contact sheets
def test_identity_filter_keeps_the_input_contrast():
    image = _test_image()
    conv = filter_conv(["identity"], padding=1)
    raw = image_app.feature_maps(image, conv, activation="none")
    sigmoid = image_app.activate(raw, "sigmoid")
    figure = feature_sheet(image, raw, activation="sigmoid", activated=sigmoid, title="identity")
    rgb = _rgb(figure)
    shown_in, shown_out = _luma(_panel(figure, rgb, 0)), _luma(_panel(figure, rgb, 1))
    spread_in = shown_in.max() - shown_in.min()
    assert spread_in > 0.95
    assert shown_out.max() - shown_out.min() > 0.95 * spread_in  # sigmoid gave 0.5 .. 0.73
    # the same pixels, up to the averaging of the display: dark stays dark, light stays light
    assert abs(float(shown_out.mean()) - float(shown_in.mean())) < 0.05
    # asked for, the sheet shows the channel files' sigmoid on the fixed 0..1 grey
    faded = feature_sheet(image, raw, activation="sigmoid", activated=sigmoid, scale="activation")
    pixels = _luma(_panel(faded, _rgb(faded), 1))
    assert pixels.min() > 0.45 and pixels.max() < 0.8


def test_diverging_scale_puts_zero_at_the_centre_colour():
    from matplotlib import colormaps

    maps = np.zeros((2, 20, 30))
    maps[0, :, 20:] = 3.0
    maps[1, :, 20:] = -1.0
    scale = choose_scale(maps)
    assert scale.cmap == "RdBu_r" and scale.limits == (-3.0, 3.0)
    figure = contact_sheet(np.zeros((3, 20, 30)), maps)
    rgb = _rgb(figure)
    centre = np.array(colormaps["RdBu_r"](0.5)[:3])
    for index, sign in ((1, 1), (2, -1)):
        image = figure.axes[index].images[0]
        assert image.get_cmap().name == "RdBu_r" and image.get_clim() == (-3.0, 3.0)
        panel = _panel(figure, rgb, index)
        zero = panel[:, : panel.shape[1] // 2]  # the zero half
        np.testing.assert_allclose(zero.reshape(-1, 3).mean(axis=0), centre, atol=2 / 255)
        signed = panel[:, -3:].reshape(-1, 3).mean(axis=0)  # red for +, blue for -
        assert (signed[0] - signed[2]) * sign > 0.2
    # maps of one sign: grey with 0 black (a ReLU output, an identity filter)
    assert choose_scale(np.abs(maps)) == choose_scale(np.abs(maps), "auto")
    assert choose_scale(np.abs(maps)).cmap == "gray" and choose_scale(np.abs(maps)).limits[0] == 0
    # one extreme value does not wash out the rest: it saturates, and the legend says so
    spiky = np.random.default_rng(0).normal(size=(1, 50, 50))
    spiky[0, 0, 0] = 1000.0
    scale = choose_scale(spiky)
    assert scale.saturated and scale.limits[1] < 5 and "saturated" in scale.legend


@pytest.mark.parametrize("channels", [1, 2, 9])
def test_titles_fit_inside_the_figure(channels):
    rng = np.random.default_rng(channels)
    title = "photo.jpg -> " + repr(filter_conv(["identity"] * channels, padding=1)) + " -> raw"
    titles = [f"a rather long filter name number {i} (R)" for i in range(channels)]
    figure = contact_sheet(
        rng.random((3, 40, 30)), rng.normal(size=(channels, 40, 30)), title=title, titles=titles
    )
    _texts_inside(figure)


def test_stride_labels_the_output_size(tmp_path, monkeypatch, capsys):
    import convscope.viz as viz

    figures = []
    original = viz.save_figure
    monkeypatch.setattr(
        viz,
        "save_figure",
        lambda figure, path, **k: (figures.append(figure), original(figure, path, **k)),
    )
    source = tmp_path / "in.png"
    Image.fromarray((_test_image(28)[0] * 255).astype(np.uint8)).save(source)
    args = ["image", str(source), "-o", str(tmp_path / "out"), "--filters", "sobel-x,identity"]
    assert main([*args, "--stride", "2", "--padding", "1", "--no-progress"]) == 0
    (figure,) = figures
    assert "in.png (28 x 28, H x W) -> 2 channels 14 x 14: " in capsys.readouterr().out
    heading = figure._suptitle.get_text()
    assert "output 14 x 14 (H x W) from input 28 x 28, stride 2" in heading
    assert "raw layer output (the channel files hold its sigmoid)" in heading
    assert figure.axes[0].get_title().startswith("input 28 x 28 (H x W)")
    # channels numbered from 0 as in PyTorch, as the files are: channel 0 is the first file
    assert figure.axes[1].get_title().startswith("channel 0: sobel-x")
    assert (tmp_path / "out" / "in_channel_0.png").is_file()
    assert not (tmp_path / "out" / "in_channel_2.png").exists()
    _texts_inside(figure)
    # the sheet's pixels hold the sign: red and blue edges of sobel-x on the ramp's squares
    with Image.open(tmp_path / "out" / "in_sheet.png") as sheet:
        rgb = np.asarray(sheet.convert("RGB")).astype(int)
    red = (rgb[..., 0] - rgb[..., 2] > 80).sum()
    blue = (rgb[..., 2] - rgb[..., 0] > 80).sum()
    assert red > 20 and blue > 20


def test_sheet_scale_option_is_checked(tmp_path, capsys):
    code = main(["image", "-o", str(tmp_path / "o"), "--sheet-scale", "sigmoid"])
    assert code == 2
    assert "--sheet-scale must be one of raw, per-map, activation" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


# ---------------------------------------------------------------- audio
def test_signed_audio_maps_are_diverging_and_the_spectrogram_is_not():
    times, freqs = np.arange(30) * 0.016, np.arange(20) * 31.25
    signed = np.random.default_rng(0).normal(size=(20, 30))
    figure = audio.feature_map_figure(signed, times, freqs, title="conv1 (Conv2d), channel 0")
    image = figure.axes[0].images[0]
    low, high = image.get_clim()
    assert image.get_cmap().name == "RdBu_r" and low == -high == -np.abs(signed).max()
    assert "white = 0" in figure.axes[1].get_ylabel()
    assert "20 x 30 (H x W" in figure.axes[0].get_title()
    db = -80 * np.random.default_rng(1).random((20, 30)) + 5  # a dB spectrogram: both signs
    spectrogram = audio.spectrogram_figure(db, n_fft=38, hop_length=256)
    assert spectrogram.axes[0].images[0].get_cmap().name == "inferno"
    _texts_inside(figure)
    _texts_inside(spectrogram)


def test_waveform_outputs_say_their_length_and_show_zero():
    y = np.sin(np.linspace(0, 20, 400)).astype(np.float32)
    outputs = np.stack([y[::2], y[::2] + 5])
    figure = audio.waveform_figure(y, outputs, sr=100, out_positions=(2, 0.0))
    assert figure.axes[1].get_title() == "output channel 0: 200 samples (stride 2)"
    zero_lines = [line for line in figure.axes[1].lines if list(line.get_ydata()) == [0, 0]]
    assert len(zero_lines) == 1
    assert not any(list(line.get_ydata()) == [0, 0] for line in figure.axes[2].lines)
    _texts_inside(figure)


# ---------------------------------------------------------------- animations
def _ink_rows(region: np.ndarray, colour, tolerance: float = 90.0) -> int:
    """Height in pixels of the pixels of ``region`` (H, W, 3) close to ``colour``."""
    close = np.sqrt(((region.astype(float) - np.array(colour)) ** 2).sum(axis=-1)) < tolerance
    rows = np.flatnonzero(close.any(axis=1))
    return 0 if rows.size == 0 else int(rows[-1] - rows[0] + 1)


def test_gif_tap_numbers_are_at_least_12_px_tall(tmp_path):
    from convscope.viz import animation as A
    from convscope.viz import animation_draw as D

    config = A.AnimationConfig((5, 5), 3, stride=2, padding=1)
    path = tmp_path / "a.gif"
    assert main(["animate", "--input-size", "5,5", "--stride", "2", "--padding", "1",
                 "--numbers", "-o", str(tmp_path), "--name", "a"]) == 0  # fmt: skip
    where = A.frame_layout(config, numbers=True)
    weights = A.numbers(config).kernel.reshape(-1)
    with Image.open(path) as gif:
        gif.seek(4)  # output[1, 1]: every tap on a real input cell
        frame = np.asarray(gif.convert("RGB"))
    window = A.frames_windows(config)[4]
    checked = 0
    for (row, col), weight in zip(window.grid_cells, weights, strict=True):
        x0, y0, x1, y1 = where.grid_box(row, col)
        cell = frame[y0:y1, x0:x1]
        _, _, right, bottom = D.value_box((0, 0, x1 - x0, y1 - y0))  # upper left of the cell
        corner = cell.copy()
        corner[:bottom, :right] = 0  # the weight lives outside the value's box
        assert _ink_rows(corner, D.WEIGHT_TEXT) >= 12, (row, col, weight)
        value = cell[:bottom, :right]
        assert _ink_rows(value, D.BACKGROUND, tolerance=60) >= 12, (row, col)
        assert _ink_rows(value, D.WEIGHT_TEXT) == 0  # apart: no weight pixels in the value box
        checked += 1
    assert checked == 9
    assert min(D._sizes(cell)[k] for cell in (16, 24, 44) for k in D._sizes(cell)) >= 12


def test_numbers_never_show_an_all_zero_kernel(tmp_path):
    from convscope.viz import animation as A

    for kernel in (1, (1, 1), 2, (1, 2)):
        size = (4,) if isinstance(kernel, int) else (4, 4)
        config = A.AnimationConfig(size, kernel)
        kernels = [A.numbers(config, seed).kernel for seed in range(40)]
        assert all(k.any() for k in kernels), kernel
        # deterministic: the same seed gives the same kernel
        np.testing.assert_array_equal(A.numbers(config, 0).kernel, kernels[0])
    # the command's default seed on a 1x1 kernel (whose first draw is 0): a non-zero weight
    assert main(["animate", "--numbers", "--kernel-size", "1", "--input-size", "3,3",
                 "-o", str(tmp_path), "--name", "k1"]) == 0  # fmt: skip
    steps = A._scene(A.AnimationConfig((3, 3), 1), True, 0, 44).steps
    assert not any("only zeros" in step for step in steps)
    assert {step.split(" = ")[1].split("*")[0] for step in steps} == {"2"}


@pytest.mark.parametrize("shape", [(1, 1, 3, 3), (2, 3, 5, 5), (16, 1, 5, 5)])
def test_kernel_grid_and_gallery_titles_fit(shape):
    from convscope import viz

    weight = np.random.default_rng(0).normal(size=shape)
    title = f"checkpoints/a-rather-long-name/model.pt: layer 'features.0.conv', weight {shape}"
    figure = viz.kernel_grid(weight, title=title)
    _texts_inside(figure)
    assert figure._suptitle.get_text().replace("\n", " ") == title
    gallery = viz.filter_gallery({"a": np.eye(3)}, title="classic 3x3 filters " * 4)
    _texts_inside(gallery)
