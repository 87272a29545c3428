"""``convscope video``: Conv3d over the first frames of a clip; a comparison picture and one
video per output channel.  Needs the optional PyAV (``pip install "convscope[video]"``)."""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

from .. import nn
from ..apps import video, video_stream
from ..io.video import MAX_FRAMES, VideoReader, require_av
from ..ops.workspace import get_workspace_budget
from ..random import manual_seed
from .common import UsageError, check_elements
from .conv_options import add_conv_arguments, conv_kwargs
from .staging import staged_outputs

EXAMPLES = """examples:
  convscope video                          # bundled clip, 16 frames, Conv3d(3, 4, 3, 1, 1)
  convscope video walk.mp4 --frames 8 -o out/walk
  convscope video --kernel-size 3,1,1 --padding 1,0,0     # a kernel that only looks in time
  convscope video --stride 1,2,2 --out-channels 6 --frame 5

Writes comparison.png (an input frame next to every output channel) and
output_channel_<C>.mp4 (each channel in grey, scaled by its range over the clip; channels
numbered from 0, as in PyTorch).
"""


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    parser = sub.add_parser(
        name,
        help="apply Conv3d to a video clip and save the output channels as videos",
        description=(
            "Read up to --frames frames of a video as (1, 3, D, H, W) in [0, 1], apply Conv3d,\n"
            "print the shapes, save a picture comparing an input frame with the output channels\n"
            "and write every output channel as an MP4.\n"
            'Needs PyAV: pip install "convscope[video]".'
        ),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("input", nargs="?", help="video file (default: the bundled clip)")
    parser.add_argument(
        "-o",
        "--output",
        default="convscope-output/video",
        help="output folder (convscope-output/video)",
    )
    parser.add_argument(
        "--frames",
        type=int,
        default=video.FRAMES,
        help=f"frames to read, 1-{MAX_FRAMES} ({video.FRAMES})",
    )
    parser.add_argument(
        "--frame", type=int, help="input frame shown in comparison.png (default: the middle one)"
    )
    parser.add_argument(
        "--max-size",
        type=int,
        default=video.MAX_SIDE,
        help=f"scale frames down so the larger side is at most this ({video.MAX_SIDE})",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed of the weights (0)")
    add_conv_arguments(parser, out_channels=4, kernel_size="3", padding="1")


def _check_weight(conv: dict) -> None:
    """Refuse a Conv3d weight too large to build before building it."""
    kernel = conv["kernel_size"]
    kernel = kernel if isinstance(kernel, tuple) else (kernel,) * 3
    groups = conv["groups"] if conv["groups"] >= 1 else 1
    check_elements((conv["out_channels"], max(1, 3 // groups), *kernel), "the Conv3d weight")


def run(args: argparse.Namespace) -> int:
    require_av()
    if not 1 <= args.frames <= MAX_FRAMES:
        raise UsageError(f"--frames must be 1-{MAX_FRAMES}, got {args.frames}")
    if not 8 <= args.max_size <= 4096:
        raise UsageError(f"--max-size must be 8-4096 pixels, got {args.max_size}")
    if args.frame is not None and args.frame < 0:
        raise UsageError(f"--frame must be 0 or more, got {args.frame}")
    conv = conv_kwargs(args)
    _check_weight(conv)
    names = ["comparison.png"] + [f"output_channel_{c}.mp4" for c in range(conv["out_channels"])]
    source = video.sample_path() if args.input is None else args.input
    if Path(source).resolve() in {(Path(args.output) / name).resolve() for name in names}:
        raise UsageError(f"the outputs in {args.output} would overwrite the input {source}")
    manual_seed(args.seed)
    reader = VideoReader(source, args.frames, max_side=args.max_size)
    depth, height, width = reader.size()
    fps = reader.fps
    shape = (1, 3, depth, height, width)
    name = f"{video.SAMPLE} (bundled)" if args.input is None else args.input
    print(f"input: {name}, {depth} frames at {fps:g} fps -> {shape} in [0, 1]")
    if depth < args.frames:
        print(f"(the clip has only {depth} of the {args.frames} frames asked for)")
    frame = depth // 2 if args.frame is None else args.frame
    if frame >= depth:
        raise UsageError(f"--frame {frame} is past the last frame read ({depth - 1})")
    try:
        layer = nn.Conv3d(3, **conv)
    except ValueError as error:  # the layer's own checks (groups, padding strings, ...)
        raise UsageError(f"bad convolution options for Conv3d: {error}") from None
    steps = video_stream.plan(layer, shape)
    out_shape = steps.out_shape
    budget = get_workspace_budget()
    encoder = video.encoder_bytes(*out_shape[3:])
    try:
        steps.fit(budget - encoder)
    except video_stream.BudgetError as error:
        raise UsageError(
            f"{error} (the workspace budget of {budget / 2**20:.0f} MiB less one video "
            f"encoder's {encoder / 2**20:.0f} MiB): use a smaller --max-size or fewer "
            "--out-channels, or raise CONVSCOPE_WORKSPACE_BYTES"
        ) from None
    bias = "none" if layer.bias is None else tuple(layer.bias.shape)
    print(f"layer: {layer}")
    print(f"  weight {tuple(layer.weight.shape)}  bias {bias}  output {out_shape}")
    chunks = len(steps.chunks())
    encoders = max(1, budget // video_stream.CHUNK_SHARE // encoder)
    if chunks > 1:
        print(
            f"streaming {chunks} chunks of {steps.chunk} output frames within the workspace "
            f"budget of {budget / 2**20:.0f} MiB, writing up to {encoders} videos per pass"
        )
    out_frame, _ = video.output_frame(layer, shape, frame)
    scan = video.scan_output(reader, steps, out_frame)
    picture = video.frame_array(next(itertools.islice(reader, frame, None)))
    figure = video.frame_comparison_figure(
        picture,
        scan.shown,
        layer=layer,
        clip_shape=shape,
        out_shape=out_shape,
        frame=frame,
        fps=fps,
    )
    (d_scale, _), *_ = video.map_positions([layer], shape[2:])[0]
    with staged_outputs(args.output) as stage:
        paths = [stage.path(name) for name in names]
        figure.savefig(paths[0], format="png")
        video.write_channel_videos(reader, steps, scan, paths[1:], fps / d_scale, encoders=encoders)
    print(f"wrote {len(names)} files to {args.output}: {', '.join(names)}")
    return 0
