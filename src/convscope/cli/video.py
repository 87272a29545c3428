"""``convscope video``: Conv3d over the first frames of a clip; a comparison picture and one
video per output channel.  Needs the optional PyAV (``pip install "convscope[video]"``)."""

from __future__ import annotations

import argparse

from ..apps import video
from ..io.video import MAX_FRAMES, require_av
from ..random import manual_seed
from .common import UsageError, write_all
from .conv_options import add_conv_arguments, conv_kwargs

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


def run(args: argparse.Namespace) -> int:
    require_av()
    if not 1 <= args.frames <= MAX_FRAMES:
        raise UsageError(f"--frames must be 1-{MAX_FRAMES}, got {args.frames}")
    if not 8 <= args.max_size <= 4096:
        raise UsageError(f"--max-size must be 8-4096 pixels, got {args.max_size}")
    if args.frame is not None and args.frame < 0:
        raise UsageError(f"--frame must be 0 or more, got {args.frame}")
    conv = conv_kwargs(args)
    manual_seed(args.seed)
    clip, fps = video.load_clip(args.input, args.frames, max_side=args.max_size)
    name = f"{video.SAMPLE} (bundled)" if args.input is None else args.input
    depth = clip.shape[2]
    print(f"input: {name}, {depth} frames at {fps:g} fps -> {tuple(clip.shape)} in [0, 1]")
    if depth < args.frames:
        print(f"(the clip has only {depth} of the {args.frames} frames asked for)")
    frame = depth // 2 if args.frame is None else args.frame
    if frame >= depth:
        raise UsageError(f"--frame {frame} is past the last frame read ({depth - 1})")
    try:
        layer, out = video.video_conv(clip, conv)
    except ValueError as error:  # the layer's own checks (groups, padding strings, ...)
        raise UsageError(f"bad convolution options for Conv3d: {error}") from None
    bias = "none" if layer.bias is None else tuple(layer.bias.shape)
    print(f"layer: {layer}")
    print(f"  weight {tuple(layer.weight.shape)}  bias {bias}  output {tuple(out.shape)}")
    figure = video.comparison_figure(clip, out, layer=layer, frame=frame, fps=fps)
    (d_scale, _), *_ = video.map_positions([layer], clip.shape[2:])[0]
    out_fps = fps / d_scale
    files = {"comparison.png": lambda tmp: figure.savefig(tmp, format="png")}
    for channel in range(out.shape[1]):
        frames = video.channel_frames(out[0, channel])
        files[f"output_channel_{channel}.mp4"] = lambda tmp, f=frames: video.write_video(
            tmp, f, out_fps
        )
    folder = write_all(args.output, files)
    print(f"wrote {len(files)} files to {folder}: {', '.join(files)}")
    return 0
