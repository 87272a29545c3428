"""``convscope explain``: one output element of a convolution layer, written out with numbers.

The layer and its input are random (seeded) unless given with ``--input`` / ``--weight`` /
``--bias``: a ``.npy`` or text file, or a literal such as ``"[[1,2,0],[0,1,2]]"``.  An array
without batch and channel dimensions is one sample with one channel.

With ``--model`` the layer is ``--layer`` of a trained network (``fashion``: the TinyVGG that
ships with convscope; or a ``convscope.models`` name with ``--weights``) and its input is the
real activation reaching that layer when the network runs on ``--image`` (default: a bundled
picture), caught by a forward pre-hook.
"""

from __future__ import annotations

import argparse
import ast
import json
import shutil
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from .common import UsageError, check_elements, output_dir, write_atomically
from .conv_options import add_conv_arguments, conv_kwargs, parse_int_tuple

EXAMPLES = """examples:
  # seed 004: Conv1d(2, 3, 5) on rand(4, 2, 6), element y[0, 0, 1]
  convscope explain --dim 1 --in-channels 2 --out-channels 3 --kernel-size 5 \\
      --input-size 6 --batch 4 --at 0,0,1
  # seed 003: the integer 5x5 input and 3x3 kernel, padding 1
  convscope explain --input "[[1,2,0,3,1],[0,1,2,3,1],[1,2,1,0,0],[5,2,3,1,1],[2,1,0,1,1]]" \\
      --weight "[[1,2,1],[0,1,0],[2,1,0]]" --no-bias --padding 1 --at 0,0,1,1
  convscope explain --transposed --kernel-size 3 --stride 2 --input-size 3,3 --at 0,0,2,2
  convscope explain --groups 2 --in-channels 4 --out-channels 4 --padding 2 \\
      --padding-mode reflect --at 0,3,0,0
  convscope explain --dim 3 --input-size 3,4,4 --padding 1 --json
  # a trained layer: conv2_1 of the bundled Fashion-MNIST network on a bundled ankle boot
  convscope explain --model fashion --layer conv2_1 --at 0,5,7,7
  convscope explain --model fashion --layer conv1_1 --image shoe.png
"""

DTYPES = ("float32", "float64", "int64")


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    parser = sub.add_parser(
        name,
        help="write out one output element of a convolution with real numbers",
        description="Explain one output element y[n, c, i, ...] of a convolution layer: the "
        "layer's parameters and output-size formula, the element's group, input window, kernel "
        "slice, every product, each channel's dot product, the bias and the sum - and check it "
        "against the layer's own output.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    layer = parser.add_argument_group("layer and input")
    layer.add_argument("--dim", type=int, choices=(1, 2, 3), help="spatial dimensions (2)")
    layer.add_argument("--transposed", action="store_true", help="ConvTranspose instead of Conv")
    layer.add_argument("--in-channels", type=int, help="input channels (2)")
    layer.add_argument("--input-size", help="spatial input size, e.g. 5,5 (5 per dimension)")
    layer.add_argument("--batch", type=int, help="batch size (1)")
    layer.add_argument("--output-padding", default="0", help="transposed only, e.g. 1 (0)")
    layer.add_argument(
        "--input", help="input array: .npy/.txt file or a literal like [[1,2],[3,4]]"
    )
    layer.add_argument("--weight", help="weight array (file or literal), e.g. [[1,0],[0,1]]")
    layer.add_argument("--bias", help="bias values (file or literal), e.g. [0.5, -1]")
    layer.add_argument("--seed", type=int, default=0, help="random seed (0)")
    layer.add_argument(
        "--dtype", choices=DTYPES, help="float32 (default), float64 or int64 (exact integers)"
    )
    add_conv_arguments(parser, out_channels=2, kernel_size="3", padding="0")
    parser.set_defaults(out_channels=None, kernel_size=None)
    trained = parser.add_argument_group("a layer of a trained network (instead of the above)")
    trained.add_argument(
        "--model",
        help="fashion (the bundled trained TinyVGG) or a convscope.models name with --weights",
    )
    trained.add_argument(
        "--layer", help="its conv layer, a named_modules() name (default: the first conv layer)"
    )
    trained.add_argument("--weights", metavar="FILE", help="state dict for --model")
    trained.add_argument(
        "--image",
        help="image the network runs on (default: a bundled picture; for fashion a test image, "
        "inverted when its background is light)",
    )
    show = parser.add_argument_group("what to show")
    show.add_argument(
        "--at",
        help="output element n,c,i[,j[,k]] (default: the first; with --model the centre of "
        "channel 0)",
    )
    show.add_argument("--json", action="store_true", help="print JSON instead of text")
    show.add_argument(
        "--narrow", action="store_true", help="one line per kernel tap (auto for wide kernels)"
    )
    show.add_argument("--width", type=int, help="terminal width (detected)")
    show.add_argument("--precision", type=int, default=4, help="decimals shown (4)")


# ----------------------------------------------------------------------------- arrays
def read_array(text: str, option: str) -> np.ndarray:
    """An array from a literal (``[[1, 2], [3, 4]]``) or a ``.npy`` / text file."""
    text = text.strip()
    if text[:1] in "[(-0123456789.":
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError) as error:
            raise UsageError(f"{option}: not a valid array literal: {error}") from None
        try:
            array = np.array(value)
        except ValueError as error:
            raise UsageError(f"{option}: {error}") from None
        if array.dtype.kind not in "iuf" or array.dtype == object:
            raise UsageError(f"{option}: expected numbers, got {array.dtype} values")
        return array.astype(np.float32) if array.dtype.kind == "f" else array.astype(np.int64)
    path = Path(text)
    if not path.is_file():
        raise UsageError(f"{option}: no such file: {path}")
    try:
        if path.suffix == ".npy":
            array = np.load(path, allow_pickle=False)
        else:
            array = np.loadtxt(path, delimiter="," if path.suffix == ".csv" else None, ndmin=1)
    except (ValueError, OSError) as error:
        raise UsageError(f"{option}: cannot read {path}: {error}") from None
    if array.dtype.kind not in "iuf":
        raise UsageError(f"{option}: {path} holds {array.dtype} values, not numbers")
    return array.astype(np.int64) if array.dtype.kind in "iu" else array


def _cast(array: np.ndarray, dtype: np.dtype, option: str) -> np.ndarray:
    whole = np.all(np.isfinite(array)) and np.all(array == np.round(array))
    if dtype.kind == "i" and array.dtype.kind == "f" and not whole:
        raise UsageError(f"{option}: --dtype int64 needs whole numbers")
    return array.astype(dtype)


def _infer_dim(args: argparse.Namespace, x: np.ndarray | None, w: np.ndarray | None) -> int:
    if args.dim:
        return args.dim
    if args.input_size:
        size = parse_int_tuple(args.input_size, "input-size")
        return 1 if isinstance(size, int) else len(size)
    for array in (w, x):
        if array is not None:
            return array.ndim - 2 if array.ndim >= 3 else array.ndim
    return 2


def _input_shape(args: argparse.Namespace, dim: int, in_default: int) -> tuple[int, ...]:
    size = parse_int_tuple(args.input_size or "5", "input-size")
    spatial = (size,) * dim if isinstance(size, int) else size
    if len(spatial) != dim:
        raise UsageError(f"--input-size has {len(spatial)} values for a {dim}-d convolution")
    batch = 1 if args.batch is None else args.batch
    channels = in_default if args.in_channels is None else args.in_channels
    if batch < 1 or channels < 1 or min(spatial) < 1:
        raise UsageError("--batch, --in-channels and --input-size must be positive")
    shape = (batch, channels, *spatial)
    check_elements(shape, "the input")
    return shape


def _shape_given_input(args: argparse.Namespace, x: np.ndarray, dim: int) -> np.ndarray:
    if x.ndim == dim:
        x = x.reshape(1, 1, *x.shape)
    elif x.ndim not in (dim + 1, dim + 2):
        raise UsageError(
            f"--input has {x.ndim} dimensions; a {dim}-d convolution takes {dim} (one sample, one "
            f"channel), {dim + 1} (channels first) or {dim + 2} (batch, channels, ...)"
        )
    spatial, channels = tuple(x.shape[-dim:]), x.shape[-dim - 1]
    batch = x.shape[0] if x.ndim == dim + 2 else 1
    for option, given, actual in (
        ("--input-size", args.input_size, spatial),
        ("--in-channels", args.in_channels, (channels,)),
        ("--batch", args.batch, (batch,)),
    ):
        if given is not None and _as_tuple(given, option, len(actual)) != actual:
            raise UsageError(f"{option} {given} does not match the --input array {list(x.shape)}")
    return x


def _as_tuple(value: Any, option: str, n: int) -> tuple[int, ...]:
    parsed = parse_int_tuple(str(value), option.lstrip("-"))
    return (parsed,) * n if isinstance(parsed, int) else parsed


def _weight(w: np.ndarray, dim: int) -> np.ndarray:
    if w.ndim == dim:
        return w.reshape(1, 1, *w.shape)
    if w.ndim != dim + 2:
        raise UsageError(
            f"--weight has {w.ndim} dimensions; a {dim}-d convolution takes {dim} (one kernel) "
            f"or {dim + 2}"
        )
    return w


# ----------------------------------------------------------------------------- the layer
def build(args: argparse.Namespace) -> tuple[Any, Any, tuple[int, ...]]:
    """The layer, its input and the output index the options describe."""
    import convscope as cs

    from ..explain.shapes import build_layer

    x_given = read_array(args.input, "--input") if args.input else None
    w_given = read_array(args.weight, "--weight") if args.weight else None
    b_given = read_array(args.bias, "--bias").reshape(-1) if args.bias else None
    dim = _infer_dim(args, x_given, w_given)
    if w_given is not None:
        w_given = _weight(w_given, dim)
    given = [a for a in (x_given, w_given) if a is not None]
    if args.dtype:
        dtype = np.dtype(args.dtype)
    elif given and all(a.dtype.kind == "i" for a in given):
        dtype = np.dtype(np.int64)
    else:
        dtype = np.dtype(max((a.dtype for a in given if a.dtype.kind == "f"), default=np.float32))
    if args.no_bias and b_given is not None:
        raise UsageError("--bias and --no-bias exclude each other")
    groups = args.groups
    in_default = 2 if groups <= 2 else groups
    if w_given is not None:
        kernel = tuple(int(k) for k in w_given.shape[2:])
        out = w_given.shape[1] * groups if args.transposed else w_given.shape[0]
        for option, given_value, actual in (
            ("--kernel-size", args.kernel_size, kernel),
            ("--out-channels", args.out_channels, (out,)),
        ):
            if given_value is not None and _as_tuple(given_value, option, len(actual)) != actual:
                raise UsageError(f"{option} {given_value} does not match the --weight array")
        args.kernel_size, args.out_channels = ",".join(map(str, kernel)), out
        in_default = w_given.shape[0] if args.transposed else w_given.shape[1] * groups
    else:
        args.kernel_size = args.kernel_size or "3"
        args.out_channels = args.out_channels or (2 if groups <= 2 else groups)
    kwargs = conv_kwargs(args)
    in_channels = x_given.shape[-dim - 1] if x_given is not None and x_given.ndim > dim else None
    if in_channels is None:
        in_channels = in_default if args.in_channels is None else args.in_channels
    cs.manual_seed(args.seed)
    layer = build_layer(
        dim,
        in_channels,
        transposed=args.transposed,
        output_padding=parse_int_tuple(args.output_padding, "output-padding"),
        **kwargs,
    )
    _set_parameters(layer, dtype, w_given, b_given)
    if x_given is not None:
        x = _cast(_shape_given_input(args, x_given, dim), dtype, "--input")
    else:
        shape = _input_shape(args, dim, in_channels)
        x = (
            cs.randint(0, 5, size=shape).numpy()
            if dtype.kind == "i"
            else cs.rand(*shape, dtype=dtype).numpy()
        )
    return layer, cs.tensor(x), dim


def _set_parameters(layer: Any, dtype: np.dtype, w: np.ndarray | None, b: np.ndarray | None):
    import convscope as cs

    params = [("weight", layer.weight, w), ("bias", layer.bias, b)]
    for name, param, given in params:
        if param is None:
            continue
        if given is not None:
            if given.shape != param.shape:
                raise RuntimeError(
                    f"size mismatch for {name}: the --{name} array has shape {tuple(given.shape)}, "
                    f"the layer's {name} has shape {tuple(param.shape)}"
                )
            param.data = _cast(given, dtype, f"--{name}")
        elif dtype.kind == "i":  # small integers keep every product readable and exact
            param.data = cs.randint(-2, 3, size=param.shape).numpy()
        else:
            param.data = param.data.astype(dtype)


def _index(args: argparse.Namespace, output_shape: tuple[int, ...], centre: bool) -> tuple:
    if args.at is None:
        if centre:  # the first element of a trained layer is often all padding: take the middle
            return (0, 0, *(size // 2 for size in output_shape[2:]))
        return (0,) * len(output_shape)
    value = parse_int_tuple(args.at, "at")
    return (value,) if isinstance(value, int) else value


#: options that describe the layer or its input themselves, refused with --model
_OWN_LAYER = {
    "--dim": ("dim", None),
    "--transposed": ("transposed", False),
    "--in-channels": ("in_channels", None),
    "--input-size": ("input_size", None),
    "--batch": ("batch", None),
    "--output-padding": ("output_padding", "0"),
    "--input": ("input", None),
    "--weight": ("weight", None),
    "--bias": ("bias", None),
    "--dtype": ("dtype", None),
    "--out-channels": ("out_channels", None),
    "--kernel-size": ("kernel_size", None),
    "--stride": ("stride", "1"),
    "--padding": ("padding", "0"),
    "--dilation": ("dilation", "1"),
    "--groups": ("groups", 1),
    "--padding-mode": ("padding_mode", "zeros"),
    "--no-bias": ("no_bias", False),
    "--seed": ("seed", 0),
}


class TrainedLayer(NamedTuple):
    """A conv layer of a trained network and the activation it receives from an image."""

    model: str
    name: str
    layer: Any
    input: Any
    image: str


def trained_layer(args: argparse.Namespace) -> TrainedLayer:
    """``--layer`` of ``--model`` and its real input when the network runs on ``--image``."""
    from ..apps import classify
    from ..nn.conv import _ConvNd

    changed = [o for o, (a, d) in _OWN_LAYER.items() if getattr(args, a, d) != d]
    if changed:
        raise UsageError(f"{', '.join(changed)}: --model explains its own layer on its own input")
    network = classify.load_model(args.model, args.weights)
    convs = classify.layer_names(network.model, _ConvNd)
    if not convs:
        raise UsageError(f"{args.model} has no convolution layer")
    name = args.layer if args.layer is not None else convs[0]
    layer = classify.find_layer(network.model, name, args.model, _ConvNd, "convolution")
    if args.image is not None:
        image = Path(args.image)
        if not image.is_file():
            raise UsageError(f"--image: no such file: {image}")
    elif network.inputs == classify.FASHION:
        from ..apps.fashion import default_sample

        image = default_sample()
    else:
        from ..samples import path

        image = path("photo.jpg")
    batch = classify.prepare_inputs(network, [image])
    return TrainedLayer(
        args.model, name, layer, layer_input(network.model, layer, batch), image.name
    )


def layer_input(model: Any, layer: Any, batch: np.ndarray) -> Any:
    """The tensor ``layer`` receives when ``model`` (in eval mode, under ``no_grad``) runs on
    ``batch``, caught by a forward pre-hook."""
    import convscope as cs

    caught: list[Any] = []
    handle = layer.register_forward_pre_hook(lambda module, inputs: caught.append(inputs[0]))
    try:
        with cs.no_grad():
            model.eval()(cs.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)))
    finally:
        handle.remove()
    if not caught:
        raise UsageError("the layer is not used by the network's forward pass")
    return cs.tensor(np.array(caught[0].numpy(), copy=True))


def explain_args(args: argparse.Namespace) -> Any:
    """The :class:`~convscope.explain.Explanation` the options ask for."""
    return _explain(args)[0]


def _explain(args: argparse.Namespace) -> tuple[Any, TrainedLayer | None]:
    """The explanation and, with ``--model``, the trained layer it is about."""
    from ..explain import element
    from ..explain.shapes import run_shape

    model, found = getattr(args, "model", None), None
    if model is None:
        for option in ("layer", "weights", "image"):
            if getattr(args, option, None) is not None:
                raise UsageError(f"--{option} goes with --model")
        layer, x, _ = build(args)
    else:
        found = trained_layer(args)
        layer, x = found.layer, found.input
    index = _index(args, run_shape(layer, x.shape), centre=model is not None)
    if args.precision < 0 or args.precision > 17:
        raise UsageError("--precision must be between 0 and 17")
    try:
        return element(layer, x, index, precision=args.precision), found
    except IndexError as error:
        raise UsageError(f"--at {args.at}: {error}") from None


def run(args: argparse.Namespace) -> int:
    explanation, found = _explain(args)
    if found is not None and not args.json:
        print(
            f"{found.model}.{found.name}: the layer's own weights, on the activation "
            f"{tuple(found.input.shape)} it receives when the network sees {found.image}\n"
        )
    if args.json:
        print(json.dumps(explanation.to_dict(), indent=1))
        return 0
    width = args.width or shutil.get_terminal_size((100, 24)).columns
    print(explanation.to_text(width=width, narrow=True if args.narrow else None))
    return 0 if explanation.matches else 1


def demo(folder: Path) -> None:
    """Seed 004's Conv1d(2, 3, 5) element and an integer transposed example, text and JSON."""
    import convscope as cs
    from convscope import nn

    from ..explain import element

    folder = output_dir(folder)
    cs.manual_seed(4)
    conv = nn.Conv1d(2, 3, 5)
    x = cs.rand(4, 2, 6)
    first = element(conv, x, (0, 0, 1))
    print("Seed 004: Conv1d(2, 3, 5) on rand(4, 2, 6); y[0, 0, 1] reads the window 1:6")
    print(first.to_text(width=100))
    up = nn.ConvTranspose2d(1, 1, 3, stride=2, bias=False)
    up.weight.data = np.array([[[[1, 2, 1], [0, 1, 0], [2, 1, 0]]]])
    second = element(up, cs.tensor([[[[1, 2], [3, 4]]]]), (0, 0, 2, 2))
    print(
        "\nConvTranspose2d(1, 1, 3, stride=2) on a 2x2 integer input: four input cells meet "
        "at y[0, 0, 2, 2]"
    )
    print(second.to_text(width=100))
    for name, explanation in (("conv1d_seed004", first), ("conv_transpose2d", second)):
        path = folder / f"explain_{name}.json"
        text = json.dumps(explanation.to_dict(), indent=1)
        write_atomically(path, lambda tmp, text=text: Path(tmp).write_text(text))
    print(f"\nJSON written to {folder}")
