"""``convscope explore``: a local page with a layer playground and a network view.

The page (``convscope/explore/static``) draws what the JSON API answers; the API runs the
engine (``/api/explain`` prints what ``convscope explain --json`` prints).  The server binds
127.0.0.1 unless ``--host`` says otherwise; Ctrl-C stops it.
"""

from __future__ import annotations

import argparse
import signal
import threading
import webbrowser
from pathlib import Path

from .common import UsageError

EXAMPLES = """examples:
  convscope explore                      # the bundled Fashion-MNIST TinyVGG
  convscope explore convscope-output/train/model.cs --no-browser
  convscope explore --model resnet18 --weights resnet18.pth --port 8800
"""


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    parser = sub.add_parser(
        name,
        help="interactive page: any convolution step by step, and a network's activations",
        description="Start a local web server with two views: a layer playground (every "
        "argument of Conv1d/Conv2d and ConvTranspose1d/2d, the sliding window, any output "
        "element explained with its numbers) and a network view (every layer's channels, class "
        "probabilities, receptive fields).  All numbers come from the engine.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "checkpoint",
        nargs="?",
        metavar="CHECKPOINT",
        help="a convscope train checkpoint (model.cs) for the network view",
    )
    parser.add_argument(
        "--model", help="'fashion' (the bundled network, default) or a convscope.models name"
    )
    parser.add_argument(
        "--weights", metavar="FILE", help="state dict for --model (safetensors for fashion)"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port (8765; 0: any free port)")
    parser.add_argument("--no-browser", action="store_true", help="do not open a browser")
    parser.add_argument("--verbose", action="store_true", help="log every request")


def load_network(args: argparse.Namespace):  # -> explore.network.Network
    """The network the options name (checked now, so a bad file fails before serving)."""
    from ..explore import network

    if args.checkpoint and (args.model or args.weights):
        raise UsageError("give a CHECKPOINT or --model/--weights, not both")
    if args.checkpoint:
        path = Path(args.checkpoint)
        if not path.is_file():
            raise UsageError(f"no such checkpoint: {path}")
        return network.checkpoint_network(path)
    if args.model in (None, "fashion"):
        if args.weights and not Path(args.weights).is_file():
            raise UsageError(f"no such weights file: {args.weights}")
        return network.fashion_network(args.weights)
    return network.models_network(args.model, args.weights)


def run(args: argparse.Namespace) -> int:
    from ..explore import make_server, network

    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be in 0..65535, got {args.port}")
    net = load_network(args)
    network.configure(lambda: net)
    server = make_server(args.host, args.port)
    server.verbose = args.verbose
    # "Ctrl-C stops" holds even when SIGINT was ignored at start-up (inherited from the parent:
    # background jobs of a shell; intermittently under the test suite, cause not found)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)
    print(f"convscope explore: serving {net.name} at {server.url} (Ctrl-C stops)", flush=True)
    if not args.no_browser:
        threading.Thread(target=webbrowser.open, args=(server.url,), daemon=True).start()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("\nconvscope explore: stopped", flush=True)
    finally:
        server.server_close()
    return 0
