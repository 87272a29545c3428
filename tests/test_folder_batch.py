"""Folder runs of ``convscope image`` and ``convscope audio`` (issue 13): bad files are skipped
(one line each, exit 1, nothing half-written) and ``--scheduler`` runs the files as dask tasks
on a distributed cluster with the same outputs as the run without it."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import distributed
import numpy as np
import pytest
import soundfile as sf
import tifffile
from PIL import Image

from convscope.cli import image as image_cli
from convscope.cli import main


def run_cli(args: list, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = main([str(a) for a in args])
    except SystemExit as stop:
        code = stop.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative name -> bytes), hidden temporaries included."""
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def png_header(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0"))


def image_folder(folder: Path) -> dict[str, Path]:
    """Two good images of different sizes and every kind of bad one."""
    folder.mkdir()
    rng = np.random.default_rng(0)
    paths = {}
    for name, size in (("a", (12, 16)), ("b", (9, 11)), ("c", (12, 16))):
        paths[name] = folder / f"{name}.png"
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(paths[name])
    paths["corrupt"] = folder / "corrupt.png"
    paths["corrupt"].write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    paths["text"] = folder / "notes.jpg"
    paths["text"].write_text("this is not a JPEG\n")
    paths["truncated"] = folder / "truncated.png"
    paths["truncated"].write_bytes(paths["a"].read_bytes()[:-60])
    paths["huge"] = folder / "huge.png"
    paths["huge"].write_bytes(png_header(20_000, 20_000))
    paths["tiny"] = folder / "tiny.png"  # smaller than --kernel-size 5 with no padding
    Image.fromarray(np.zeros((3, 3, 3), dtype=np.uint8)).save(paths["tiny"])
    return paths


BAD_IMAGES = ("corrupt", "text", "truncated", "huge", "tiny")
IMAGE_OPTIONS = ["--kernel-size", "5", "--padding", "0", "--no-progress", "--batch-size", "2"]


def test_bad_images_in_a_folder_are_skipped_one_line_each_exit_1(tmp_path, capsys):
    paths = image_folder(tmp_path / "in")
    before = tree(tmp_path / "in")
    out = tmp_path / "out"
    code, stdout, stderr = run_cli(["image", tmp_path / "in", "-o", out, *IMAGE_OPTIONS], capsys)
    assert code == 1
    lines = stderr.splitlines()
    assert len(lines) == len(BAD_IMAGES), stderr
    for name in BAD_IMAGES:
        assert sum(str(paths[name]) in line for line in lines) == 1, (name, stderr)
    assert all(line.startswith("convscope image: skipped ") for line in lines)
    assert "Traceback" not in stderr
    expected = {f"{s}_channel_{i}.png" for s in "abc" for i in range(4)}
    expected |= {f"{s}_sheet.png" for s in "abc"}
    assert set(tree(out)) == expected  # no outputs, not even temporaries, for the bad files
    assert "3 image(s), 15 files written" in stdout
    assert tree(tmp_path / "in") == before


def test_named_bad_files_still_stop_the_command(tmp_path, capsys):
    """Only files a folder contributes are skipped; a file named on the command line that
    cannot be used is an error (exit 2, nothing written)."""
    paths = image_folder(tmp_path / "in")
    out = tmp_path / "out"
    code, _, stderr = run_cli(["image", paths["a"], paths["corrupt"], "-o", out], capsys)
    assert code == 2 and "corrupt.png: not an image" in stderr
    assert tree(out) == {}


def test_an_image_failing_half_way_through_its_outputs_leaves_none(tmp_path, capsys, monkeypatch):
    image_folder(tmp_path / "in")
    real = image_cli.write_image

    def flaky(path, array, format=None):
        if "b_channel_2" in str(path):
            raise OSError("disk full")
        return real(path, array, format=format)

    monkeypatch.setattr(image_cli, "write_image", flaky)
    out = tmp_path / "out"
    code, _, stderr = run_cli(["image", tmp_path / "in", "-o", out, *IMAGE_OPTIONS], capsys)
    assert code == 1 and "b.png: disk full" in stderr
    assert not any(name.startswith(("b_", ".b_")) for name in tree(out))
    assert {f"a_channel_{i}.png" for i in range(4)} <= set(tree(out))


def test_scheduler_local_gives_the_same_files(tmp_path, capsys):
    image_folder(tmp_path / "in")
    args = ["image", tmp_path / "in", *IMAGE_OPTIONS, "--seed", "3"]
    code, _, plain_err = run_cli([*args, "-o", tmp_path / "plain"], capsys)
    assert code == 1
    code, stdout, stderr = run_cli(
        [*args, "-o", tmp_path / "cluster", "--scheduler", "local", "--workers", "2"], capsys
    )
    assert code == 1, stderr
    assert "on a local Dask cluster of 2 worker processes" in stdout
    assert sorted(stderr.splitlines()) == sorted(plain_err.splitlines())
    plain, cluster = tree(tmp_path / "plain"), tree(tmp_path / "cluster")
    assert len(plain) == 15 and cluster == plain


CLUSTER_ERRORS = [
    (["image", "--workers", "2"], "give --scheduler local too"),
    (["image", "--scheduler", "local", "--workers", "0"], "--workers must be at least 1"),
    (["image", "--scheduler", "local", "--tensorboard", "{tmp}/tb"], "leave out --scheduler"),
    (["image", "--scheduler", "local", "--model", "resnet18"], "leave out --scheduler"),
    (["audio", "--scheduler", "local"], "give a folder as input"),
    (["audio", "{tmp}", "--tensorboard", "{tmp}/tb"], "give a file, not a folder"),
]


@pytest.mark.parametrize(("args", "expected"), CLUSTER_ERRORS)
def test_cluster_option_errors_are_one_line_exit_2(args, expected, tmp_path, capsys):
    code, _, stderr = run_cli([a.format(tmp=tmp_path) for a in args], capsys)
    assert code == 2 and len(stderr.splitlines()) == 1 and expected in stderr, stderr
    assert "Traceback" not in stderr


def audio_folder(folder: Path) -> None:
    folder.mkdir()
    rng = np.random.default_rng(1)
    for name, seconds in (("one", 1.2), ("two", 0.8)):
        sf.write(folder / f"{name}.wav", 0.3 * rng.standard_normal(int(seconds * 8000)), 8000)
    (folder / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" * 10)
    (folder / "notes.ogg").write_text("not audio")
    sf.write(folder / "short.flac", np.zeros(400), 8000)  # 0.05 s: --start 0.5 is past its end


AUDIO_OPTIONS = ["--start", "0.5", "--end", "1", "--no-progress"]


def test_audio_folder_writes_each_file_into_its_own_folder_and_skips_bad_ones(tmp_path, capsys):
    audio_folder(tmp_path / "in")
    out = tmp_path / "out"
    code, stdout, stderr = run_cli(["audio", tmp_path / "in", "-o", out, *AUDIO_OPTIONS], capsys)
    assert code == 1
    lines = stderr.splitlines()
    assert len(lines) == 3 and all(line.startswith("convscope audio: skipped ") for line in lines)
    for name in ("corrupt.wav", "notes.ogg", "short.flac"):
        assert sum(name in line for line in lines) == 1, stderr
    files = tree(out)
    assert {name.split("/")[0] for name in files} == {"one", "two"}
    assert {name.split("/")[1] for name in files if name.startswith("one/")} == {
        "spectrogram.png",
        "conv1_channel_0.png",
        "conv1_channel_1.png",
        "conv2_channel_0.png",
        "conv2_channel_1.png",
    }
    assert "2 file(s), 10 files written" in stdout
    assert "two.wav (0.5-0.8 s) -> " in stdout and "(warning: " in stdout  # shorter than --end


def test_audio_folder_matches_the_single_file_run(tmp_path, capsys):
    """Each file gets the weights the single-file command gives it (same seed), so its
    outputs are the same bytes."""
    audio_folder(tmp_path / "in")
    args = ["--conv1d", "--kernel-size", "5", "--seed", "4", *AUDIO_OPTIONS]
    code, _, _ = run_cli(["audio", tmp_path / "in", "-o", tmp_path / "all", *args], capsys)
    assert code == 1
    for name in ("one", "two"):
        single = tmp_path / f"single-{name}"
        code, _, _ = run_cli(
            ["audio", tmp_path / "in" / f"{name}.wav", "-o", single, *args], capsys
        )
        assert code == 0
        assert tree(single) == tree(tmp_path / "all" / name)


def test_audio_folder_on_a_scheduler_address(tmp_path, capsys):
    audio_folder(tmp_path / "in")
    args = ["audio", tmp_path / "in", "--conv1d", "--kernel-size", "3", *AUDIO_OPTIONS]
    code, _, _ = run_cli([*args, "-o", tmp_path / "plain"], capsys)
    assert code == 1
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    ) as cluster:
        code, stdout, stderr = run_cli(
            [*args, "-o", tmp_path / "cluster", "--scheduler", cluster.scheduler_address], capsys
        )
    assert code == 1 and len(stderr.splitlines()) == 3, stderr
    assert f"on the Dask scheduler at {cluster.scheduler_address}" in stdout
    assert tree(tmp_path / "cluster") == tree(tmp_path / "plain") != {}


TILE_OPTIONS = [
    [],
    ["--filters", "sobel-x,laplacian", "--activation", "minmax", "--stride", "2"],
    ["--kernel-size", "5", "--padding", "0", "--stride", "3", "--activation", "none"],
    ["--padding-mode", "reflect", "--dilation", "2", "--padding", "2", "--out-channels", "3"],
]


@pytest.mark.parametrize("options", TILE_OPTIONS)
def test_tile_writes_the_pixels_of_the_ordinary_run(options, tmp_path, capsys):
    """A TIFF through --tile (lazily read, convscope.dask, tiled TIFF per channel) gives the
    pixels the in-memory command gives."""
    picture = np.random.default_rng(2).integers(0, 256, (70, 90, 3), dtype=np.uint8)
    source = tmp_path / "x.tif"
    tifffile.imwrite(source, picture, tile=(32, 32), compression="zlib")
    code, _, _ = run_cli(
        ["image", source, "-o", tmp_path / "plain", "--format", "tiff", "--no-sheet", *options],
        capsys,
    )
    assert code == 0
    code, stdout, stderr = run_cli(
        ["image", source, "-o", tmp_path / "tiled", "--tile", "32", "--no-progress", *options],
        capsys,
    )
    assert code == 0, stderr
    assert "in 32x32 blocks" in stdout
    plain = sorted((tmp_path / "plain").iterdir())
    assert sorted(tree(tmp_path / "tiled")) == [p.name[:-1] for p in plain]  # .tiff -> .tif
    for path in plain:
        with Image.open(path) as expected:
            got = tifffile.imread(tmp_path / "tiled" / path.name[:-1])
            np.testing.assert_array_equal(got, np.asarray(expected))


TILE_ERRORS = [
    (["{tif}", "--tile", "40"], "multiple of 16"),
    (["{png}", "--tile", "32"], "one TIFF image"),
    (["{tif}", "{tif}", "--tile", "32"], "one TIFF image"),
    (["{tif}", "--tile", "32", "--scheduler", "local"], "leave out --scheduler"),
    (["{tif}", "--tile", "32", "--kernel-size", "99"], "Kernel size can't be greater"),
    (["{bad}", "--tile", "32"], "not a readable TIFF"),
]


@pytest.mark.parametrize(("args", "expected"), TILE_ERRORS)
def test_tile_errors_are_one_line_exit_2(args, expected, tmp_path, capsys):
    tifffile.imwrite(tmp_path / "x.tif", np.zeros((20, 20, 3), np.uint8))
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(tmp_path / "x.png")
    (tmp_path / "bad.tif").write_bytes(b"II*\x00garbage")
    names = {"tif": tmp_path / "x.tif", "png": tmp_path / "x.png", "bad": tmp_path / "bad.tif"}
    out = tmp_path / "out"
    code, _, stderr = run_cli(
        ["image", *[a.format(**names) for a in args], "-o", out, "--no-progress"], capsys
    )
    assert code == 2 and len(stderr.splitlines()) == 1 and expected in stderr, stderr
    assert tree(out) == {}
