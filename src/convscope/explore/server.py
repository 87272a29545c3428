"""The HTTP server of ``convscope explore`` (the standard library's ``ThreadingHTTPServer``).

It serves the files of ``static/`` (a fixed list, never a path from the request) and the
JSON API of :mod:`.api`; it binds ``127.0.0.1`` unless told otherwise.  Bodies beyond
:data:`~.network.MAX_UPLOAD` bytes are refused with 413 before they are read.

>>> import threading, urllib.request, json
>>> server = make_server(port=0)
>>> thread = threading.Thread(target=server.serve_forever, daemon=True)
>>> thread.start()
>>> with urllib.request.urlopen(server.url + "api/shape?input-size=7&kernel-size=3") as reply:
...     json.load(reply)["output_shape"]
[1, 1, 5]
>>> server.shutdown(); server.server_close()
"""

from __future__ import annotations

import contextlib
import http.server
import mimetypes
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

from . import api
from .network import MAX_UPLOAD

#: the page's files: request path -> file name in ``static/``
STATIC = {
    "/": "index.html",
    "/index.html": "index.html",
    "/app.js": "app.js",
    "/style.css": "style.css",
}


def static_file(name: str) -> bytes:
    """The bytes of one of the page's files (``name`` from :data:`STATIC` only)."""
    if name not in STATIC.values():
        raise KeyError(name)
    return resources.files(__package__).joinpath("static", name).read_bytes()


class Handler(http.server.BaseHTTPRequestHandler):
    """One request: a static file, an API reply, or a JSON error."""

    server_version = "convscope-explore"
    protocol_version = "HTTP/1.1"
    timeout = 120  # seconds an idle or slow connection may hold its thread

    def log_message(self, format: str, *args: Any) -> None:
        if getattr(self.server, "verbose", False):
            super().log_message(format, *args)

    def _send(self, status: int, body: bytes, content_type: str, close: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, payload: dict[str, Any], close: bool = False) -> None:
        body = api.dumps(payload).encode("utf-8")
        self._send(status, body, "application/json; charset=utf-8", close)

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        if parts.path.startswith("/api/"):
            self._json(*api.handle("GET", parts.path, parts.query))
            return
        name = STATIC.get(parts.path)
        if name is None:
            self._json(404, {"error": f"no such page: {parts.path}", "type": "NotFound"})
            return
        kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
        if kind.startswith("text/") or kind.endswith("javascript"):
            kind += "; charset=utf-8"
        self._send(200, static_file(name), kind)

    do_HEAD = do_GET

    def do_POST(self) -> None:
        parts = urlsplit(self.path)
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            self._json(411, {"error": "Content-Length is required", "type": "UsageError"}, True)
            return
        try:
            length = int(length_text)
        except ValueError:
            length = -1
        if length < 0:
            self._json(400, {"error": "bad Content-Length", "type": "UsageError"}, True)
            return
        if length > MAX_UPLOAD:
            message = f"upload of {length} bytes; the limit is {MAX_UPLOAD}"
            self._json(413, {"error": message, "type": "UsageError"}, close=True)
            return
        body = self.rfile.read(length)
        self._json(*api.handle("POST", parts.path, parts.query, body))

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The standard library's own refusals (request line too long, bad syntax) in JSON."""
        text = message or self.responses.get(code, ("error",))[0]
        self.close_connection = True
        with contextlib.suppress(OSError):
            self._json(code, {"error": text, "type": "HTTPError"}, close=True)

    def _refuse(self) -> None:
        self._json(405, {"error": f"{self.command} is not supported", "type": "UsageError"})

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _refuse


class ExploreServer(http.server.ThreadingHTTPServer):
    """A threading HTTP server with its address as ``url``; ``verbose`` logs requests."""

    daemon_threads = True
    verbose = False

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        shown = f"[{host}]" if ":" in str(host) else host
        return f"http://{shown}:{port}/"


def make_server(host: str = "127.0.0.1", port: int = 8765) -> ExploreServer:
    """A server bound to ``host:port`` (port 0: any free port), not yet serving."""
    import socket

    cls = ExploreServer
    if ":" in host:
        cls = type("ExploreServer6", (ExploreServer,), {"address_family": socket.AF_INET6})
    return cls((host, port), Handler)
