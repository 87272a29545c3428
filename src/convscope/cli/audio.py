"""``convscope audio``: a spectrogram through two Conv2d layers, or a waveform through Conv1d."""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..apps import audio
from ..random import manual_seed
from .batch import (
    FILE_ERRORS,
    FileOutcome,
    add_cluster_arguments,
    check_cluster_arguments,
    report_skipped,
    worker_count_note,
)
from .common import UsageError
from .conv_options import add_conv_arguments, conv_kwargs, parse_int_tuple, parse_padding
from .staging import created_folders_removed, staged_outputs

EXAMPLES = """examples:
  convscope audio                      # bundled speech, 1.5-4.5 s, spectrogram -> 2 x Conv2d
  convscope audio song.flac --start 10 --end 13 -o out/song
  convscope audio --n-fft 1024 --hop-length 128 --out-channels 4 --kernel-size 3,9
  convscope audio --layers 1 --kernel-size 7 --padding same --padding-mode reflect
  convscope audio --conv1d --kernel-size 31 --padding same     # Conv1d on the waveform
  convscope audio --tensorboard runs/audio                      # also log to TensorBoard
  convscope audio clips/ -o out/clips  # every file of a folder, into out/clips/<name>/
  convscope audio clips/ --scheduler local --workers 2          # the folder as Dask tasks

The convolution options configure the Conv1d layer, or the first Conv2d layer; the second
shares --out-channels, --stride, --dilation, --padding-mode and --no-bias, takes
--kernel-size-2 and --padding-2, and is where --groups applies (conv1 sees one channel).

Spectrogram mode writes spectrogram.png and conv<L>_channel_<C>.png for every feature map
(layers conv1, conv2; channels numbered from 0, as in PyTorch); --conv1d writes waveforms.png,
input.wav and conv1d_channel_<C>.wav (peak-normalised).
A folder gives those files per audio file in <output>/<file name>/; files that cannot be
used are skipped (one line each on stderr, exit code 1).
"""

#: longest excerpt analysed; longer ranges are shortened with a warning
MAX_EXCERPT_SECONDS = 60.0
#: largest spectrogram (frequency rows x frames) fed to the layers
MAX_SPECTROGRAM_CELLS = 4_000_000
MAX_N_FFT = 65536


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    parser = sub.add_parser(
        name,
        help="convolve a spectrogram (Conv2d) or a waveform (Conv1d) and plot the results",
        description=(
            "Load audio as 16 kHz mono, take a time range, compute the STFT magnitude in dB\n"
            "(librosa's formulas: periodic Hann window, centred frames with zero padding,\n"
            "ref=1, amin=1e-5, top_db=80) and run it through the tutorial's two Conv2d layers,\n"
            "printing every weight, bias and output shape and saving every feature map as PNG.\n"
            "With --conv1d, run Conv1d over the waveform instead and save the outputs as WAV."
        ),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "input",
        nargs="?",
        help="WAV, FLAC or OGG file, or a folder of them (default: the bundled speech sample)",
    )
    parser.add_argument(
        "-o",
        "--output",
        default="convscope-output/audio",
        help="output folder (convscope-output/audio)",
    )
    parser.add_argument(
        "--start", type=float, default=audio.START, help=f"start in seconds ({audio.START})"
    )
    parser.add_argument(
        "--end", type=float, default=audio.END, help=f"end in seconds ({audio.END})"
    )
    parser.add_argument("--n-fft", type=int, default=audio.N_FFT, help=f"STFT size ({audio.N_FFT})")
    parser.add_argument(
        "--hop-length",
        type=int,
        default=audio.HOP_LENGTH,
        help=f"samples between STFT frames ({audio.HOP_LENGTH})",
    )
    parser.add_argument(
        "--conv1d", action="store_true", help="apply Conv1d to the waveform instead"
    )
    parser.add_argument(
        "--layers", type=int, choices=(1, 2), default=2, help="Conv2d layers to run (2)"
    )
    parser.add_argument(
        "--kernel-size-2", default="5", help="kernel size of the second Conv2d layer (5)"
    )
    parser.add_argument("--padding-2", default="2", help="padding of the second Conv2d layer (2)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the weights (0)")
    parser.add_argument(
        "--tensorboard", metavar="DIR", help="also log the pictures to a TensorBoard folder"
    )
    add_conv_arguments(parser, out_channels=2, kernel_size="3", padding="1")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (folders)")
    add_cluster_arguments(parser, "files of a folder")


@dataclass
class Excerpt:
    """Audio samples with where they came from."""

    name: str
    samples: np.ndarray
    sr: int
    start: float
    end: float
    duration: float

    @property
    def title(self) -> str:
        """File name and range, short enough for a plot title."""
        return f"{Path(self.name).name}, {self.start:g}-{self.end:g} s"


def warn(message: str) -> None:
    print(f"convscope audio: warning: {message}", file=sys.stderr)


def check_times(start: float, end: float) -> None:
    """One-line ``UsageError`` for negative, infinite or empty time ranges."""
    if not (math.isfinite(start) and math.isfinite(end)):
        raise UsageError(f"--start and --end must be finite numbers, got {start} and {end}")
    if start < 0:
        raise UsageError(f"--start must be 0 s or later, got {start:g} s")
    if end <= start:
        raise UsageError(f"--start ({start:g} s) must be before --end ({end:g} s)")


def load_excerpt(path: str | None, start: float, end: float) -> Excerpt:
    """Seconds ``[start, end)`` of ``path`` (or the bundled sample) at 16 kHz mono, with the
    range clamped to the clip and to ``MAX_EXCERPT_SECONDS`` (warnings on stderr)."""
    check_times(start, end)
    source = audio.sample_path() if path is None else Path(path)
    info = audio.audio_info(source)
    name = f"{source.name} (bundled)" if path is None else str(source)
    if start >= info.duration:
        raise UsageError(f"--start {start:g} s is past the end of {name} ({info.duration:.2f} s)")
    if end > info.duration:
        warn(f"{name} is only {info.duration:.2f} s long; using {start:g}-{info.duration:.2f} s")
        end = info.duration
    if end - start > MAX_EXCERPT_SECONDS:
        warn(
            f"analysing at most {MAX_EXCERPT_SECONDS:g} s: using {start:g}-"
            f"{start + MAX_EXCERPT_SECONDS:g} s"
        )
        end = start + MAX_EXCERPT_SECONDS
    samples, sr = audio.load_audio(source, audio.SAMPLE_RATE, start=start, end=end)
    if samples.size == 0:
        raise UsageError(f"{start:g}-{end:g} s of {name} holds no samples at {sr} Hz")
    return Excerpt(name, samples, sr, start, end, info.duration)


def _shape(array: Any) -> str:
    return str(tuple(np.shape(array)))


def _describe(layer: Any, output: np.ndarray, label: str) -> None:
    bias = "none" if layer.bias is None else _shape(layer.bias)
    print(f"{label}: {layer}")
    print(f"  weight {_shape(layer.weight)}  bias {bias}  output {_shape(output)}")


Writer = Callable[[str], None]


def _png(figure: Any) -> Writer:
    return lambda tmp: figure.savefig(tmp, format="png")


def spectrogram_outputs(
    excerpt: Excerpt,
    model: Any,
    *,
    n_fft: int,
    hop_length: int,
) -> tuple[dict[str, Writer], dict[str, np.ndarray]]:
    """Compute the spectrogram and the feature maps, print shapes; return the files to write
    and the arrays (for TensorBoard)."""
    bins, frames = 1 + n_fft // 2, 1 + len(excerpt.samples) // hop_length
    if bins * frames > MAX_SPECTROGRAM_CELLS:
        raise UsageError(
            f"the spectrogram would have {bins} x {frames} cells (limit {MAX_SPECTROGRAM_CELLS}); "
            "use a larger --hop-length, a smaller --n-fft or a shorter range"
        )
    db = audio.spectrogram(excerpt.samples, n_fft=n_fft, hop_length=hop_length)
    x = db[None, None]
    print(
        f"spectrogram: STFT n_fft={n_fft}, hop_length={hop_length}, periodic Hann, centred "
        f"(zero padding) -> dB (ref=1, amin=1e-5, top_db=80): {_shape(x)}, "
        f"{db.min():.1f} to {db.max():.1f} dB"
    )
    names, layers = zip(*model.named_children(), strict=True)
    maps = audio.feature_maps(layers, x)
    files: dict[str, Writer] = {
        "spectrogram.png": _png(
            audio.spectrogram_figure(
                db,
                sr=excerpt.sr,
                n_fft=n_fft,
                hop_length=hop_length,
                start=excerpt.start,
                title=f"Spectrogram of {excerpt.title}",
            )
        )
    }
    arrays = {"spectrogram": db}
    positions = audio.map_positions(layers, db.shape)
    frame_seconds, bin_hz = hop_length / excerpt.sr, excerpt.sr / n_fft
    for name, layer, out, affine in zip(names, layers, maps, positions, strict=True):
        _describe(layer, out, name)
        (f_scale, f_offset), (t_scale, t_offset) = affine
        times = excerpt.start + (t_scale * np.arange(out.shape[3]) + t_offset) * frame_seconds
        freqs = (f_scale * np.arange(out.shape[2]) + f_offset) * bin_hz
        arrays[name] = out[0]
        for channel in range(out.shape[1]):
            files[f"{name}_channel_{channel}.png"] = _png(
                audio.feature_map_figure(
                    out[0, channel],
                    times,
                    freqs,
                    title=f"{name} ({type(layer).__name__}), channel {channel}",
                    colorbar_label="activation (weighted sum of dB)",
                )
            )
    return files, arrays


def conv1d_outputs(
    excerpt: Excerpt, conv: dict[str, Any]
) -> tuple[dict[str, Writer], dict[str, np.ndarray]]:
    """Run Conv1d over the waveform, print shapes; return the files to write."""
    try:
        layer, out = audio.waveform_conv(excerpt.samples, conv)
    except ValueError as error:  # the layer's own checks (groups, padding strings, ...)
        raise UsageError(f"bad convolution options for Conv1d: {error}") from None
    print(f"waveform: {_shape(excerpt.samples[None, None])} at {excerpt.sr} Hz")
    _describe(layer, out, "layer")
    ((scale, offset),) = audio.map_positions([layer], [len(excerpt.samples)])[0]
    out_sr = max(1, round(excerpt.sr / scale))
    figure = audio.waveform_figure(
        excerpt.samples,
        out[0],
        sr=excerpt.sr,
        start=excerpt.start,
        out_positions=(scale, offset),
        title=f"{layer} on {excerpt.title}",
    )
    files: dict[str, Writer] = {
        "waveforms.png": _png(figure),
        "input.wav": lambda tmp: audio.save_wav(tmp, excerpt.samples, excerpt.sr),
    }
    for channel, signal in enumerate(out[0]):
        files[f"conv1d_channel_{channel}.wav"] = lambda tmp, s=signal: audio.save_wav(
            tmp, s, out_sr
        )
    if out_sr != excerpt.sr:
        print(f"output channels are written at {out_sr} Hz (stride {scale})")
    return files, {"waveforms": audio.figure_to_rgb(figure)}


def write_files(
    folder: Path,
    files: dict[str, Writer],
    *,
    then: Callable[[], None] | None = None,
    within: Path | None = None,
) -> Path:
    """All of ``files`` or, when one fails (or ``then``, called once they are written and
    before they are moved into place), none, and no folder made for them up to ``within``
    (see ``staging.staged_outputs``)."""
    with staged_outputs(folder, within=within) as stage:
        for name, write in files.items():
            write(str(stage.path(name)))
        if then is not None:
            then()
    return Path(folder)


def log_tensorboard(logger: Any, arrays: dict[str, np.ndarray]) -> None:
    """Spectrogram and feature maps (flipped so low frequencies are at the bottom, as in the
    PNGs), or the waveform plot.  The logger scales values for display."""
    for name, array in arrays.items():
        if name == "waveforms":
            logger.add_image("audio/conv1d_waveforms", array / 255)
        elif name == "spectrogram":
            logger.add_image("audio/spectrogram", np.flipud(array))
        else:
            logger.add_feature_maps(f"audio/{name}", array[:, ::-1, :])


def build_stack(args: argparse.Namespace, conv: dict[str, Any]) -> Any:
    first = dict(conv, groups=1)
    second = dict(
        conv,
        kernel_size=parse_int_tuple(args.kernel_size_2, "kernel-size-2"),
        padding=parse_padding(args.padding_2),
    )
    try:
        return audio.spectrogram_stack(first, second, layers=args.layers)
    except (ValueError, RuntimeError, TypeError) as error:
        raise UsageError(f"bad convolution options for the Conv2d layers: {error}") from None


#: audio files a folder contributes (by name ending)
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".aif", ".aiff", ".mp3")


def audio_files(folder: Path) -> list[Path]:
    """The audio files directly inside ``folder`` (not hidden), sorted by name."""
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES and not p.name.startswith(".")
    )


@dataclass
class FolderSettings:
    """What every file of a folder goes through (picklable: sent to the workers)."""

    start: float
    end: float
    n_fft: int
    hop_length: int
    conv1d: bool
    conv: dict[str, Any]
    model: Any
    seed: int


def audio_file(task: tuple[int, Path, Path, FolderSettings]) -> FileOutcome:
    """One file of a folder (a dask task with ``--scheduler``): the single-file run into its
    own folder, all files or none; a file that cannot be used becomes a skipped outcome."""
    index, path, target, settings = task
    warnings = io.StringIO()  # shown on the file's line (a cluster's workers have no terminal)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(warnings):
            excerpt = load_excerpt(str(path), settings.start, settings.end)
            manual_seed(settings.seed)  # every file gets the weights a single-file run gets
            if settings.conv1d:
                files, _ = conv1d_outputs(excerpt, settings.conv)
            else:
                files, _ = spectrogram_outputs(
                    excerpt, settings.model, n_fft=settings.n_fft, hop_length=settings.hop_length
                )
        write_files(target, files, within=target.parent)  # others may write there
    except FILE_ERRORS as error:
        return FileOutcome(index, path, error=str(error))
    message = f"{path.name} ({excerpt.start:g}-{excerpt.end:g} s) -> {target}: {len(files)} files"
    notes = [line.removeprefix("convscope audio: ") for line in warnings.getvalue().splitlines()]
    message += "".join(f" ({note})" for note in notes)
    return FileOutcome(index, path, [target / name for name in files], message)


def _run_folder(args: argparse.Namespace, conv: dict[str, Any], model: Any) -> int:
    from ..dask.folders import run_tasks

    folder, out = Path(args.input), Path(args.output)
    files = audio_files(folder)
    if not files:
        raise UsageError(f"no {', '.join(AUDIO_SUFFIXES)} files in folder {folder}")
    names: list[str] = []
    for path in files:
        name, k = path.stem, 2
        while name in names:
            name, k = f"{path.stem}_{k}", k + 1
        names.append(name)
    inputs = {path.resolve() for path in files}
    if any(out.resolve() / name in {p.parent for p in inputs} for name in names):
        raise UsageError(f"the outputs in {out} would mix with the input folder {folder}")
    settings = FolderSettings(
        args.start, args.end, args.n_fft, args.hop_length, args.conv1d, conv, model, args.seed
    )
    tasks = [
        (i, path, out / name, settings)
        for i, (path, name) in enumerate(zip(files, names, strict=True))
    ]
    what = (
        "Conv1d on the waveform"
        if args.conv1d
        else f"{args.layers} Conv2d layer(s) on the spectrogram"
    )
    where = worker_count_note(args.scheduler, args.workers)
    print(f"{len(files)} audio files in {folder}: {what}{where}")
    skipped: list[tuple[Path, str]] = []
    written: list[Path] = []
    bar = None
    if not args.no_progress and len(files) > 1:
        from tqdm import tqdm

        bar = tqdm(total=len(files), unit="file", leave=False, file=sys.stderr)
    say = bar.write if bar is not None else print

    def done(outcome: FileOutcome) -> None:
        if outcome.skipped:
            skipped.append((outcome.path, outcome.error))
        else:
            written.extend(outcome.written)
            say(outcome.message)
        if bar is not None:
            bar.update()

    try:
        with created_folders_removed(out, always=True):  # if every file failed
            run_tasks(tasks, audio_file, scheduler=args.scheduler, workers=args.workers, done=done)
    finally:
        if bar is not None:
            bar.close()
    print(f"{len(files) - len(skipped)} file(s), {len(written)} files written to {out}")
    return report_skipped("audio", skipped)


def run(args: argparse.Namespace) -> int:
    check_cluster_arguments(args, "tensorboard")
    folder = args.input is not None and Path(args.input).is_dir()
    if args.scheduler is not None and not folder:
        raise UsageError("--scheduler runs the files of a folder: give a folder as input")
    if not 1 <= args.n_fft <= MAX_N_FFT or args.hop_length < 1:
        raise UsageError(
            f"--n-fft must be 1-{MAX_N_FFT} and --hop-length >= 1, "
            f"got {args.n_fft} and {args.hop_length}"
        )
    check_times(args.start, args.end)
    if args.tensorboard and importlib.util.find_spec("tensorboardX") is None:
        from ..apps.tensorboard import INSTALL_HINT

        raise UsageError(f"--tensorboard needs tensorboardX (not installed): {INSTALL_HINT}")
    conv = conv_kwargs(args)
    manual_seed(args.seed)
    model = None if args.conv1d else build_stack(args, conv)
    if folder:
        if args.tensorboard:
            raise UsageError("--tensorboard logs one file: give a file, not a folder")
        return _run_folder(args, conv, model)
    excerpt = load_excerpt(args.input, args.start, args.end)
    print(
        f"input: {excerpt.name}, {excerpt.duration:.2f} s; using {excerpt.start:g}-"
        f"{excerpt.end:g} s = {len(excerpt.samples)} samples at {excerpt.sr} Hz mono"
    )
    if args.conv1d:
        files, arrays = conv1d_outputs(excerpt, conv)
    else:
        files, arrays = spectrogram_outputs(
            excerpt, model, n_fft=args.n_fft, hop_length=args.hop_length
        )
    then = None
    if args.tensorboard:
        from ..apps.tensorboard import open_logger

        def then() -> None:
            with created_folders_removed(args.tensorboard), open_logger(args.tensorboard) as log:
                log_tensorboard(log, arrays)

    folder = write_files(Path(args.output), files, then=then)
    if args.tensorboard:
        print(f"logged {', '.join(arrays)} to TensorBoard folder {args.tensorboard}")
    print(f"wrote {len(files)} files to {folder}: {', '.join(files)}")
    return 0


def demo(folder: Path) -> None:
    """The spectrogram stack and the Conv1d path on the bundled speech, into ``folder``."""
    excerpt = load_excerpt(None, audio.START, audio.END)
    print(f"input: {excerpt.name}, {excerpt.start:g}-{excerpt.end:g} s at {excerpt.sr} Hz")
    files, _ = spectrogram_outputs(
        excerpt, audio.spectrogram_stack(), n_fft=audio.N_FFT, hop_length=audio.HOP_LENGTH
    )
    more, _ = conv1d_outputs(excerpt, dict(audio.SEED_CONV1D))
    target = write_files(folder, {**files, **more})
    print(f"wrote {len(files) + len(more)} pictures and sounds to {target}")
