"""The JSON API of ``convscope explore``: every number the page draws comes from here.

:func:`handle` maps ``(method, path, query, body)`` to ``(status, JSON-able dict)``; it never
raises for a bad request (status 400/404/405/413 with ``{"error": ..., "type": ...}``).

- ``GET /api/explain?<convscope explain's options>``: what ``convscope explain --json`` prints;
- ``GET /api/shape?<convscope shape's options>``: what ``convscope shape --json`` prints;
- ``GET /api/taps?input-size=&kernel-size=&stride=&padding=&dilation=&padding-mode=
  &transposed=&output-padding=``: :func:`convscope.explain.tap_map` as lists;
- ``GET /api/layer?<explain's options>``: the layer explain builds, its input, weight, bias,
  output, output-size formulas and working grid (what the playground draws);
- ``GET /api/meta``: colours (those of ``convscope animate``), presets, the network's classes
  and samples; ``GET /api/network``, ``/api/network/field``, ``/api/network/layer``,
  ``/api/network/explain``, ``POST /api/upload``: see :mod:`.network`.

>>> status, body = handle("GET", "/api/taps", "input-size=4&kernel-size=3&padding=1")
>>> status, body["out_shape"], body["sources"][0]
(200, [4], [-1, 0, 1])
>>> handle("GET", "/api/shape", "input-size=2&kernel-size=3")[1]["type"]
'RuntimeError'
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

import numpy as np

from ..cli.common import UsageError
from .options import ApiError, check_layer_args, check_run, count, int_tuple, parse_query

Reply = tuple[int, dict[str, Any]]
#: the engine's random stream is global: one computation at a time keeps seeded values exact
COMPUTE = threading.Lock()
#: classic cases of Dumoulin & Visin's guide to convolution arithmetic (and a few more)
PRESETS: dict[str, dict[str, str]] = {
    "no padding, unit strides": {"input-size": "4,4", "kernel-size": "3", "padding": "0"},
    "arbitrary padding": {"input-size": "5,5", "kernel-size": "4", "padding": "2"},
    "half (same) padding": {"input-size": "5,5", "kernel-size": "3", "padding": "same"},
    "full padding": {"input-size": "5,5", "kernel-size": "3", "padding": "2"},
    "no padding, strides": {"input-size": "5,5", "kernel-size": "3", "stride": "2"},
    "padding, strides": {"input-size": "5,5", "kernel-size": "3", "stride": "2", "padding": "1"},
    "padding, strides (odd)": {
        "input-size": "6,6",
        "kernel-size": "3",
        "stride": "2",
        "padding": "1",
    },
    "dilation": {"input-size": "7,7", "kernel-size": "3", "dilation": "2"},
    "transposed, no padding": {"input-size": "2,2", "kernel-size": "3", "transposed": "1"},
    "transposed, strides": {
        "input-size": "2,2",
        "kernel-size": "3",
        "stride": "2",
        "transposed": "1",
    },
    "transposed, strides, padding": {
        "input-size": "3,3",
        "kernel-size": "3",
        "stride": "2",
        "padding": "1",
        "transposed": "1",
    },
    "transposed, output_padding": {
        "input-size": "3,3",
        "kernel-size": "3",
        "stride": "2",
        "padding": "1",
        "output-padding": "1",
        "transposed": "1",
    },
    "depthwise (groups)": {
        "input-size": "5,5",
        "in-channels": "3",
        "out-channels": "3",
        "groups": "3",
        "padding": "1",
    },
    "reflect padding": {"input-size": "4,4", "padding": "2", "padding-mode": "reflect"},
    "1-d causal, dilated": {
        "input-size": "10",
        "kernel-size": "3",
        "dilation": "2",
        "padding": "causal",
    },
    "1-d strided": {"input-size": "9", "kernel-size": "3", "stride": "2", "in-channels": "1"},
}


def _query(text: str) -> dict[str, list[str]]:
    try:
        return parse_qs(text, keep_blank_values=True, strict_parsing=False, max_num_fields=64)
    except ValueError as error:
        raise ApiError(f"bad query string: {error}") from None


def _lists(array: Any) -> Any:
    """Nested lists of Python numbers (NaN and infinities as strings JSON can hold)."""
    a = np.asarray(array)
    if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
        return np.where(np.isfinite(a), a, 0).tolist()
    return a.tolist()


# ----------------------------------------------------------------------------- conv endpoints
def _built(args: Any) -> tuple[Any, Any, tuple[int, ...]]:
    """explain's layer and input for ``args`` (a copy: explain_args builds them again)."""
    import copy

    from ..cli.explain import build
    from ..explain.shapes import run_shape

    check_layer_args(args)
    layer, x, _ = build(copy.copy(args))
    out = run_shape(layer, x.shape)
    check_run(layer, x.shape, out)
    return layer, x, out


def explain(query: dict[str, list[str]]) -> dict[str, Any]:
    """``convscope explain --json`` for these options, as a dict (the same code path)."""
    from ..cli.explain import explain_args

    args = parse_query("explain", query)
    with COMPUTE:
        _built(args)
        return explain_args(args).to_dict()


def shape(query: dict[str, list[str]]) -> dict[str, Any]:
    """``convscope shape --json`` for these options, as a dict."""
    from ..cli.shape import answer

    args = parse_query("shape", query)
    check_layer_args(_shape_limits(args))
    return answer(args).to_dict()


def _shape_limits(args: Any) -> Any:
    """The sizes ``shape`` would build, as explain's options for :func:`check_layer_args`."""
    import argparse

    for text in (args.input_size, args.target_size, args.restore):
        if text and any(v > 1 << 20 for v in int_tuple(text, "input-size")):
            raise ApiError(f"sizes above {1 << 20} are beyond the page's limit", status=413)
    return argparse.Namespace(
        batch=None,
        in_channels=args.in_channels,
        out_channels=args.out_channels,
        groups=args.groups,
        input_size=None,
        kernel_size=args.kernel_size,
    )


TAP_OPTIONS = (
    "input-size",
    "kernel-size",
    "stride",
    "padding",
    "dilation",
    "padding-mode",
    "transposed",
    "output-padding",
)


def _tap_map(layer: Any, spatial: Any) -> Any:
    """The tap map of ``layer`` over one channel of ``spatial`` size (the layer's arguments)."""
    from ..explain import tap_map

    return tap_map(
        spatial,
        layer.kernel_size,
        layer.stride,
        layer.padding,
        layer.dilation,
        padding_mode=layer.padding_mode,
        transposed=layer.transposed,
        output_padding=layer.output_padding,
    )


def taps(query: dict[str, list[str]]) -> dict[str, Any]:
    """The tap map of a convolution over one channel of ``input-size``."""
    unknown = [k for k in query if k.replace("_", "-") not in TAP_OPTIONS]
    if unknown:
        raise ApiError(f"unknown option {unknown[0]!r} for taps; options: {', '.join(TAP_OPTIONS)}")
    if "input-size" not in {k.replace("_", "-") for k in query}:
        raise ApiError("taps needs input-size (e.g. 5,5)")
    args = parse_query("explain", query)
    args.in_channels = args.out_channels = 1
    with COMPUTE:
        layer, x, _ = _built(args)  # the layer's own checks and errors first
    m = _tap_map(layer, x.shape[2:])
    positions = count(m.out_shape)
    return {
        "input_shape": list(m.input_shape),
        "out_shape": list(m.out_shape),
        "grid_shape": list(m.grid_shape),
        "pads": [list(p) for p in m.pads],
        "input_dilation": list(m.input_dilation),
        "kernel_size": list(layer.kernel_size),
        "grid": m.grid.reshape(positions, -1).tolist(),
        "sources": m.sources.reshape(positions, -1).tolist(),
        "padded": m.padded.reshape(positions, -1).tolist(),
    }


def grid_cells(m: Any, transposed: bool) -> tuple[list[int], list[str]]:
    """For each working-grid cell: the input cell it shows (-1: a zero, -2: never read) and
    its kind (``input``, ``copy``, ``padding``, ``inserted``, ``unread``), from a tap map."""
    cells = count(m.grid_shape)
    source = np.full(cells, -2, dtype=np.int64)
    padded = np.zeros(cells, dtype=bool)
    source[m.grid.reshape(-1)] = m.sources.reshape(-1)
    padded[m.grid.reshape(-1)] = m.padded.reshape(-1)
    kinds = np.where(padded, np.where(source >= 0, "copy", "padding"), "input").astype(object)
    kinds[source == -2] = "unread"
    if transposed:
        coords = np.indices(m.grid_shape).reshape(len(m.grid_shape), -1)
        inserted = np.zeros(cells, dtype=bool)
        inside = np.ones(cells, dtype=bool)
        for a, ((lo, _), step, size) in enumerate(
            zip(m.pads, m.input_dilation, m.input_shape, strict=True)
        ):
            at = coords[a] - lo
            inside &= (at >= 0) & (at <= (size - 1) * step)
            inserted |= at % step != 0
        kinds[(source == -1) & inside & inserted] = "inserted"
    return source.tolist(), kinds.tolist()


def layer_payload(layer: Any, x: np.ndarray) -> dict[str, Any]:
    """What the playground draws for ``layer`` on the batched input ``x``."""
    from ..autograd import no_grad
    from ..explain import output_shape
    from ..tensor import Tensor

    with no_grad():
        y = layer(Tensor(x)).numpy()
    n = len(layer.kernel_size)
    m = _tap_map(layer, x.shape[2:])
    source, kinds = grid_cells(m, layer.transposed)
    return {
        "layer": repr(layer),
        "transposed": bool(layer.transposed),
        "dims": n,
        "dtype": str(y.dtype),
        "groups": int(layer.groups),
        "in_channels": int(layer.in_channels),
        "out_channels": int(layer.out_channels),
        "kernel_size": list(layer.kernel_size),
        "shape": output_shape(layer, x.shape).to_dict(),
        "input": _lists(x),
        "weight": _lists(layer.weight.data),
        "bias": None if layer.bias is None else _lists(layer.bias.data),
        "output": _lists(y),
        "grid": {
            "shape": list(m.grid_shape),
            "pads": [list(p) for p in m.pads],
            "input_dilation": list(m.input_dilation),
            "source": source,
            "kind": kinds,
        },
        "windows": m.grid.reshape(count(m.out_shape), -1).tolist(),
    }


def layer(query: dict[str, list[str]]) -> dict[str, Any]:
    """explain's layer and input for these options, run, with everything the page draws."""
    args = parse_query("explain", query, skip=("at", "precision"))
    with COMPUTE:
        built, x, _ = _built(args)
        return layer_payload(built, x.numpy())


def meta(_: dict[str, list[str]]) -> dict[str, Any]:
    """Colours, padding modes, presets and the network's classes and samples."""
    from ..cli.conv_options import PADDING_MODES
    from ..viz import animation_draw as draw
    from . import network

    colours = {
        name.lower(): "#{:02x}{:02x}{:02x}".format(*getattr(draw, name))
        for name in dir(draw)
        if name.isupper()
        and isinstance(getattr(draw, name), tuple)
        and len(getattr(draw, name)) == 3
    }
    colours["footprint"] = {
        k: "#{:02x}{:02x}{:02x}".format(*draw.footprint_fill(k)) for k in draw.CELL_STYLES
    }
    try:
        described, problem = network.current().describe(), None
    except (ImportError, OSError, ValueError, RuntimeError) as error:  # the page still works
        described, problem = None, f"the network could not be loaded: {error}"
    return {
        "colours": colours,
        "padding_modes": list(PADDING_MODES),
        "presets": PRESETS,
        "network": described,
        "network_error": problem,
    }


GET: dict[str, Callable[[dict[str, list[str]]], dict[str, Any]]] = {
    "/api/meta": meta,
    "/api/explain": explain,
    "/api/shape": shape,
    "/api/taps": taps,
    "/api/layer": layer,
}


def _network_routes() -> dict[str, Callable[..., dict[str, Any]]]:
    from . import network

    return {
        "/api/network": network.activations_endpoint,
        "/api/network/field": network.field_endpoint,
        "/api/network/layer": network.layer_endpoint,
        "/api/network/explain": network.explain_endpoint,
    }


def error_reply(error: BaseException) -> Reply:
    """The HTTP status and JSON body for an exception a request raised."""
    if isinstance(error, ApiError):
        return error.status, {"error": str(error), "type": error.kind}
    if isinstance(error, UsageError):
        text = str(error)
        kind, sep, rest = text.partition(": ")  # `shape` names PyTorch's class first
        if sep and kind in ("ValueError", "RuntimeError", "TypeError"):
            return 400, {"error": rest, "type": kind}
        return 400, {"error": text, "type": "UsageError"}
    if isinstance(error, (ValueError, RuntimeError, TypeError, IndexError, OverflowError)):
        return 400, {
            "error": str(error).split("\n")[0] or repr(error),
            "type": type(error).__name__,
        }
    if isinstance(error, (MemoryError, RecursionError)):
        return 413, {"error": "request too large for this server", "type": type(error).__name__}
    return 500, {
        "error": f"internal error: {type(error).__name__}: {error}",
        "type": "InternalError",
    }


def handle(method: str, path: str, query: str = "", body: bytes | None = None) -> Reply:
    """Answer one API request; never raises (bad requests get a 4xx status and a message)."""
    try:
        if path == "/api/upload":
            if method != "POST":
                raise ApiError("upload images with POST", status=405)
            from . import network

            return 200, network.upload(body or b"")
        routes = {**GET, **_network_routes()}
        if path not in routes:
            raise ApiError(f"no such endpoint: {path}", status=404)
        if method != "GET":
            raise ApiError(f"{path} answers GET requests", status=405)
        return 200, routes[path](_query(query))
    except Exception as error:  # every failure becomes a reply: the server keeps serving
        return error_reply(error)


def dumps(payload: dict[str, Any]) -> str:
    """The response text: ``json.dumps(payload, indent=1)`` and a newline, as the CLI prints."""
    return json.dumps(payload, indent=1) + "\n"
