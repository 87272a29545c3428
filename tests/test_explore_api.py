"""`convscope explore`'s JSON API over real HTTP: a server on port 0 in a thread.

`/api/explain` must return byte for byte what `convscope explain --json` prints; what the page
draws (windows, working grid, output) is recomputed here and compared with PyTorch; every bad
request gets a 4xx JSON reply and the server keeps serving.
"""

from __future__ import annotations

import base64
import http.client
import io
import json
import signal
import socket
import struct
import subprocess
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
import zlib

import numpy as np
import pytest

import convscope as cs
from convscope import nn
from convscope.cli import main
from convscope.explore import make_server, network
from convscope.explore.options import MAX_TENSOR


def tiny_network() -> network.Network:
    """Conv-ReLU-Pool twice and a linear layer on 1x16x16 inputs, seeded random weights."""
    cs.manual_seed(3)
    model = nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(3, 4, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(4 * 4 * 4, 3),
    ).eval()
    rng = np.random.default_rng(0)
    samples = [(i, rng.integers(0, 256, (16, 16), dtype=np.uint8)) for i in range(3)]

    def prepare(image):
        from PIL import Image

        picture = image if isinstance(image, Image.Image) else Image.fromarray(image)
        gray = np.asarray(picture.convert("L").resize((16, 16)), dtype=np.float32) / 255
        return gray.reshape(1, 1, 16, 16)

    return network.Network("tiny", model, ("a", "b", "c"), samples, prepare)


@pytest.fixture(scope="module")
def server():
    net = tiny_network()
    network.configure(lambda: net)
    srv = make_server(port=0)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    srv.net = net
    yield srv
    srv.shutdown()
    srv.server_close()
    network.configure(None)


def get(server, path: str, params: dict | str = "") -> tuple[int, dict]:
    query = params if isinstance(params, str) else urllib.parse.urlencode(params)
    url = server.url.rstrip("/") + path + ("?" + query if query else "")
    try:
        with urllib.request.urlopen(url, timeout=60) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def raw(server, method: str, path: str, body: bytes | None = None, headers=None):
    host, port = server.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=60)
    conn.request(method, path, body=body, headers=headers or {})
    reply = conn.getresponse()
    data = reply.read()
    conn.close()
    return reply.status, reply.getheader("Content-Type"), data


def cli_json(capsys, *argv: str) -> str:
    assert main(list(argv)) == 0
    return capsys.readouterr().out


# ----------------------------------------------------------------------------- explain, shape
EXPLAIN_CASES = [
    {"kernel-size": "3", "stride": "2", "padding": "1", "input-size": "5,5", "at": "0,1,1,1"},
    {"transposed": "1", "kernel-size": "3", "stride": "2", "input-size": "3,3", "at": "0,0,2,2"},
    {
        "input": "[[1,2,0,3,1],[0,1,2,3,1],[1,2,1,0,0],[5,2,3,1,1],[2,1,0,1,1]]",
        "weight": "[[1,2,1],[0,1,0],[2,1,0]]",
        "no-bias": "true",
        "padding": "1",
        "at": "0,0,1,1",
    },
    {
        "dim": "1",
        "in-channels": "2",
        "out-channels": "3",
        "kernel-size": "5",
        "input-size": "6",
        "batch": "4",
        "at": "0,0,1",
    },
    {
        "groups": "2",
        "in-channels": "4",
        "out-channels": "4",
        "padding": "2",
        "padding-mode": "reflect",
        "at": "0,3,0,0",
        "seed": "7",
    },
    {"padding": "same", "dilation": "2", "input-size": "6,5", "dtype": "int64", "at": "0,1,2,4"},
    {"dim": "1", "padding": "causal", "dilation": "2", "input-size": "9", "at": "0,0,0"},
    {"padding": "1:2,0:1", "input-size": "4,4", "at": "0,0,4,2", "precision": "6"},
]


@pytest.mark.parametrize("case", EXPLAIN_CASES)
def test_explain_is_exactly_the_command_line_json(server, capsys, case):
    argv = ["explain", "--json"]
    for key, value in case.items():
        argv += [f"--{key}"] if value == "true" or key == "transposed" else [f"--{key}={value}"]
    expected = cli_json(capsys, *argv)
    url = server.url + "api/explain?" + urllib.parse.urlencode(case)
    with urllib.request.urlopen(url, timeout=60) as reply:
        assert reply.headers["Content-Type"].startswith("application/json")
        body = reply.read().decode()
    assert body == expected
    assert json.loads(body)["matches"] is True


def test_explain_option_spellings_and_ignored_terminal_options(server, capsys):
    expected = cli_json(capsys, "explain", "--json", "--kernel-size", "2", "--stride", "2")
    for query in ("kernel_size=2&stride=2", "kernel-size=2&stride=2&json=1&width=40&narrow=yes"):
        status, body = get(server, "/api/explain", query)
        assert status == 200
        assert json.dumps(body, indent=1) + "\n" == expected


def test_shape_is_the_command_line_json(server, capsys):
    for argv in (
        ["--input-size", "32,32", "--kernel-size", "3", "--stride", "2", "--padding", "1"],
        ["--transposed", "--input-size", "8,8", "--kernel-size", "2", "--stride", "2"],
        ["--input-size", "28,28", "--kernel-size", "4", "--stride", "2", "--target-size", "14"],
    ):
        expected = json.loads(cli_json(capsys, "shape", "--json", *argv))
        params = {}
        for option, value in zip(argv, [*argv[1:], ""], strict=True):
            if option.startswith("--"):
                params[option[2:]] = "1" if value.startswith("--") or not value else value
        assert get(server, "/api/shape", params) == (200, expected)


# ----------------------------------------------------------------------------- layer, taps
def _torch_layer(torch, params: dict, p: dict):
    """The payload's layer in torch: same arguments (ints only here), the payload's weights."""
    n, transposed = p["dims"], p["transposed"]
    kwargs = {
        "stride": int(params.get("stride", "1")),
        "padding": int(params.get("padding", "0")),
        "dilation": int(params.get("dilation", "1")),
        "groups": p["groups"],
    }
    if transposed:
        kwargs["output_padding"] = int(params.get("output-padding", "0"))
        cls = getattr(torch.nn, f"ConvTranspose{n}d")
    else:
        kwargs["padding_mode"] = params.get("padding-mode", "zeros")
        cls = getattr(torch.nn, f"Conv{n}d")
    layer = cls(p["in_channels"], p["out_channels"], tuple(p["kernel_size"]), **kwargs)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(np.array(p["weight"]), dtype=torch.float32))
        layer.bias.copy_(torch.tensor(np.array(p["bias"]), dtype=torch.float32))
    return layer


@pytest.mark.parametrize(
    "params",
    [
        {
            "input-size": "6,5",
            "kernel-size": "3",
            "stride": "2",
            "padding": "1",
            "in-channels": "2",
            "out-channels": "2",
        },
        {"input-size": "5,5", "padding": "2", "padding-mode": "reflect", "dilation": "2"},
        {"input-size": "4,4", "padding": "1", "padding-mode": "circular", "kernel-size": "3,2"},
        {"dim": "1", "input-size": "9", "kernel-size": "3", "stride": "2", "in-channels": "1"},
        {
            "input-size": "3,3",
            "kernel-size": "3",
            "stride": "2",
            "padding": "1",
            "output-padding": "1",
            "transposed": "1",
        },
        {
            "dim": "1",
            "input-size": "4",
            "kernel-size": "4",
            "stride": "3",
            "dilation": "2",
            "transposed": "1",
            "groups": "2",
            "in-channels": "2",
            "out-channels": "4",
        },
    ],
)
def test_layer_payload_recomputes_to_torch(server, reference, params):
    """Sum input[grid source of each window tap] * weight over taps: the drawn windows are
    the ones the engine (and torch) computes with."""
    status, p = get(server, "/api/layer", params)
    assert status == 200, p
    x, w = np.array(p["input"], dtype=np.float64), np.array(p["weight"], dtype=np.float64)
    y = np.array(p["output"])
    source = np.array(p["grid"]["source"])
    windows = np.array(p["windows"])  # (output positions, taps) -> grid cell
    groups, transposed = p["groups"], p["transposed"]
    cin, cout = p["in_channels"] // groups, p["out_channels"] // groups
    taps = np.prod(p["kernel_size"])
    flat_x = x.reshape(x.shape[0], x.shape[1], -1)
    recomputed = np.zeros((*y.shape[:2], windows.shape[0]))
    for c in range(p["out_channels"]):
        g = c // cout
        for ci in range(g * cin, g * cin + cin):
            kernel = (w[ci, c - g * cout] if transposed else w[c, ci - g * cin]).reshape(taps)
            cells = source[windows]  # input cell per (position, tap), -1: zero
            values = np.where(cells >= 0, flat_x[:, ci][:, np.maximum(cells, 0)], 0.0)
            recomputed[:, c] += (values * kernel).sum(-1)
        if p["bias"] is not None:
            recomputed[:, c] += p["bias"][c]
    np.testing.assert_allclose(recomputed.reshape(y.shape), y, rtol=1e-5, atol=1e-5)
    # and the output itself is torch's for the same weights
    torch = reference
    with torch.no_grad():
        expected = _torch_layer(torch, params, p)(torch.tensor(x, dtype=torch.float32)).numpy()
    assert list(expected.shape) == p["shape"]["output_shape"]
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)


def test_working_grid_kinds(server):
    status, p = get(
        server,
        "/api/layer",
        {"input-size": "2,2", "kernel-size": "3", "stride": "2", "padding": "1", "transposed": "1"},
    )
    assert status == 200
    kinds = np.array(p["grid"]["kind"]).reshape(p["grid"]["shape"])
    # (2-1)*2+1 = 3 zero-inserted cells, padded by k-1-p = 1 on each side: 5x5
    assert kinds.shape == (5, 5)
    assert kinds[1, 1] == kinds[1, 3] == kinds[3, 3] == "input"
    assert kinds[2, 2] == kinds[1, 2] == "inserted"
    assert (kinds[0] == "padding").all() and (kinds[:, 4] == "padding").all()
    status, p = get(
        server,
        "/api/layer",
        {"input-size": "4", "dim": "1", "padding": "2", "padding-mode": "replicate"},
    )
    assert p["grid"]["kind"] == ["copy", "copy", "input", "input", "input", "input", "copy", "copy"]
    assert p["grid"]["source"] == [0, 0, 0, 1, 2, 3, 3, 3]


def test_taps_endpoint(server):
    status, body = get(server, "/api/taps", "input-size=5&kernel-size=3&stride=2&padding=1")
    assert status == 200
    assert body["out_shape"] == [3]
    # output i reads input i*2 - 1 + t
    assert body["sources"] == [[-1, 0, 1], [1, 2, 3], [3, 4, -1]]
    assert body["padded"][0] == [True, False, False]
    status, body = get(server, "/api/taps", "input-size=3&kernel-size=3&stride=2&transposed=1")
    assert status == 200 and body["out_shape"] == [7] and body["input_dilation"] == [2]
    status, body = get(server, "/api/taps", "kernel-size=3")
    assert status == 400 and "input-size" in body["error"]
    status, body = get(server, "/api/taps", "input-size=5&groups=2")
    assert status == 400 and "unknown option 'groups'" in body["error"]


# ----------------------------------------------------------------------------- errors
def test_pytorch_errors_in_pytorch_words(server, reference):
    torch = reference
    cases = [
        (
            {"groups": "3", "in-channels": "4", "out-channels": "3"},
            lambda: torch.nn.Conv2d(4, 3, 3, groups=3),
        ),
        (
            {"kernel-size": "9", "input-size": "3,3"},
            lambda: torch.nn.Conv2d(2, 2, 9)(torch.zeros(1, 2, 3, 3)),
        ),
        (
            {"padding-mode": "reflect", "transposed": "1"},
            lambda: torch.nn.ConvTranspose2d(2, 2, 3, padding_mode="reflect"),
        ),
        ({"groups": "0"}, lambda: torch.nn.Conv2d(2, 2, 3, groups=0)),
    ]
    for params, make in cases:
        with pytest.raises((ValueError, RuntimeError)) as caught:
            make()
        status, body = get(server, "/api/explain", params)
        assert status == 400, params
        assert body["type"] == type(caught.value).__name__
        assert body["error"] == str(caught.value).split("\n")[0], params


BAD = [
    ("/api/explain", "foo=1", 400, "unknown option 'foo'"),
    ("/api/explain", "stride=two", 400, "expects an integer"),
    ("/api/explain", "kernel-size=3&kernel-size=4", 400, "given 2 times"),
    ("/api/explain", "transposed=maybe", 400, "a flag takes true or false"),
    ("/api/explain", "input=/etc/passwd", 400, "not file names"),
    ("/api/explain", "weight=../../secret.npy", 400, "not file names"),
    ("/api/explain", "input=" + "[" * 50 + "1" + "]" * 50, 400, "nested"),
    ("/api/explain", "input=[1,2,", 400, "not a valid array literal"),
    ("/api/explain", "input=['a']", 400, "array literals of numbers"),
    ("/api/explain", "input=[[1,2],[3]]", 400, "inhomogeneous"),
    ("/api/explain", "at=9,9,9,9", 400, "out of bounds"),
    ("/api/explain", "dim=4", 400, "invalid choice"),
    ("/api/explain", "padding-mode=mirror", 400, "invalid choice"),
    ("/api/explain", "help=1", 400, "unknown option 'help'"),
    ("/api/explain", "precision=99", 400, "precision"),
    ("/api/explain", "input-size=100000,100000", 413, "limit"),
    ("/api/explain", "input-size=600,600", 413, "limit"),
    ("/api/explain", "out-channels=4096&in-channels=4096", 413, "limit"),
    ("/api/explain", "transposed=1&stride=4096&input-size=200,200", 413, "limit"),
    ("/api/explain", "kernel-size=4096,4096", 413, "limit"),
    ("/api/layer", "input-size=0,3", 400, "positive"),
    ("/api/layer", "dilation=-1", 400, "dilation"),
    ("/api/shape", "input-size=2&kernel-size=3", 400, "Kernel size can't be greater"),
    ("/api/shape", "input-size=99999999999", 413, "limit"),
    ("/api/nothing", "", 404, "no such endpoint"),
    ("/api/network", "sample=99", 400, "out of range"),
    ("/api/network", "image=u999", 400, "no uploaded image"),
    ("/api/network", "sample=x", 400, "integer"),
    ("/api/network/field", "layer=1", 400, "at is needed"),
    ("/api/network/field", "layer=1&at=0,99,0", 400, "out of bounds"),
    ("/api/network/field", "layer=0&at=0,0,0", 400, "input"),
    ("/api/network/field", "layer=1&at=0,0,0&path=/etc", 400, "unknown option"),
    ("/api/network/layer", "layer=2", 400, "not a convolution"),
    ("/api/network/layer", "layer=50", 400, "out of range"),
    ("/api/network/explain", "layer=1&at=7,0,0", 400, "out of bounds"),
]


@pytest.mark.parametrize(("path", "query", "status", "text"), BAD)
def test_bad_requests_get_json_errors(server, path, query, status, text):
    got, body = get(server, path, urllib.parse.quote(query, safe="=&"))
    assert got == status, body
    assert text in body["error"], body
    assert set(body) == {"error", "type"}


def test_limits_are_what_they_say(server):
    side = int(np.sqrt(MAX_TENSOR // 2))  # two input channels by default
    assert get(server, "/api/shape", {"input-size": f"{side},{side}"})[0] == 200
    status, body = get(server, "/api/layer", {"input-size": f"{side + 2},{side + 2}"})
    assert status == 413 and str(MAX_TENSOR) in body["error"]
    status, body = get(server, "/api/explain", {"input": "[" + ",".join(["1"] * 40000) + "]"})
    assert status in (413, 414)


def test_paths_cannot_leave_the_page(server):
    for path in (
        "/../../etc/passwd",
        "/static/../api.py",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/server.py",
        "/static/index.html",
        "//etc/passwd",
        "/app.js/../../options.py",
        "/api/../server.py",
    ):
        status, kind, data = raw(server, "GET", path)
        assert status == 404, path
        assert kind.startswith("application/json") and b"root:" not in data


def _read_all(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(1 << 16):
        data += chunk
    return data


def test_methods_and_malformed_requests(server):
    assert raw(server, "POST", "/api/explain", b"x")[0] == 405
    assert raw(server, "GET", "/api/upload")[0] == 405
    assert raw(server, "DELETE", "/")[0] == 405
    host, port = server.server_address[:2]
    for junk in (
        b"GARBAGE\r\n\r\n",
        b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nContent-Length: x\r\nConnection: close\r\n\r\n",
        b"\x00\xff\r\n\r\n",
    ):
        with socket.create_connection((host, port), timeout=30) as sock:
            sock.sendall(junk)
            reply = _read_all(sock)
        assert b'"error"' in reply, junk[:20]
    # the server survived all of the above
    assert get(server, "/api/shape", "input-size=5")[0] == 200


def test_static_files(server):
    status, kind, data = raw(server, "GET", "/")
    assert status == 200 and kind.startswith("text/html")
    page = data.decode()
    assert 'src="app.js"' in page and "style.css" in page and "http" not in page.split("<body")[1]
    for path, mime in (("/app.js", "javascript"), ("/style.css", "text/css")):
        status, kind, data = raw(server, "GET", path)
        assert status == 200 and mime in kind and len(data) > 500
    # no CDN: nothing is fetched from another host
    for path in ("/", "/app.js", "/style.css"):
        text = raw(server, "GET", path)[2].decode()
        assert "//cdn" not in text and "https://" not in text


def test_meta(server):
    status, body = get(server, "/api/meta")
    assert status == 200
    from convscope.viz import animation_draw as draw

    assert body["colours"]["input_fill"] == "#{:02x}{:02x}{:02x}".format(*draw.INPUT_FILL)
    assert body["colours"]["output_current"] == "#{:02x}{:02x}{:02x}".format(*draw.OUTPUT_CURRENT)
    assert body["network"]["classes"] == ["a", "b", "c"]
    assert len(body["network"]["samples"]) == 3
    for name, preset in body["presets"].items():  # every preset is a valid layer
        assert get(server, "/api/layer", preset)[0] == 200, name


# ----------------------------------------------------------------------------- network
def test_network_activations(server):
    net = server.net
    status, body = get(server, "/api/network", {"sample": "1"})
    assert status == 200
    names = [c["name"] for c in body["layers"]]
    assert names == ["input", "0", "1", "2", "3", "4", "5"]
    x = net.prepare(net.samples[1][1])
    with cs.no_grad():
        maps = [x]
        h = cs.tensor(x)
        for module in list(net.model)[:6]:
            h = module(h)
            maps.append(h.numpy())
        logits = net.model(cs.tensor(x)).numpy()[0]
    for column, expected in zip(body["layers"], maps, strict=True):
        assert column["shape"] == list(expected.shape[1:])
        lo, hi = expected.min(), expected.max()
        assert column["min"] == pytest.approx(lo) and column["max"] == pytest.approx(hi)
        decoded = np.frombuffer(base64.b64decode(column["maps"][0]), dtype=np.uint8)
        scaled = np.round((expected[0, 0] - lo) / (hi - lo) * 255).reshape(-1)
        np.testing.assert_allclose(decoded, scaled, atol=1)
    p = np.exp(logits - logits.max())
    p /= p.sum()
    got = {entry["index"]: entry["p"] for entry in body["probabilities"]}
    np.testing.assert_allclose([got[i] for i in range(3)], p, rtol=1e-6)
    assert body["prediction"] == "abc"[int(np.argmax(p))]
    assert body["label"] == 1 and body["label_class"] == "b"


def _rf_box(layers, index_row: int) -> tuple[int, int]:
    """Receptive field of one row through (kernel, stride, padding) layers, the textbook way:
    the window [lo, hi] maps back to [lo*s - p, hi*s - p + k - 1], clipped to the input."""
    lo = hi = index_row
    for k, s, p, size in reversed(layers):
        lo, hi = max(lo * s - p, 0), min(hi * s - p + k - 1, size - 1)
    return lo, hi + 1


def test_receptive_field_matches_textbook_arithmetic(server):
    # shown columns: input, conv(16), relu, pool(8), conv(8), relu, pool(4)
    chain = [(3, 1, 1, 16), (1, 1, 0, 16), (2, 2, 0, 16), (3, 1, 1, 8), (1, 1, 0, 8), (2, 2, 0, 8)]
    for layer, (i, j) in ((6, (1, 2)), (4, (0, 7)), (3, (5, 5)), (1, (15, 0))):
        status, body = get(
            server, "/api/network/field", {"sample": "0", "layer": str(layer), "at": f"2,{i},{j}"}
        )
        assert status == 200, body
        fields = body["fields"]
        assert len(fields) == layer + 1
        for column in range(layer + 1):
            rows = _rf_box(chain[column:layer], i)
            cols = _rf_box(chain[column:layer], j)
            box = fields[column]["box"]
            assert box == [rows[0], rows[1], cols[0], cols[1]], (layer, column)
            cells = fields[column]["cells"]
            assert len(cells) == (rows[1] - rows[0]) * (cols[1] - cols[0])
    status, body = get(server, "/api/network", {"sample": "0"})
    maps = body["layers"]
    assert maps[6]["shape"] == [4, 4, 4]


def test_network_layer_and_explain(server, capsys):
    net = server.net
    status, p = get(server, "/api/network/layer", {"sample": "2", "layer": "4"})
    assert status == 200, p
    assert p["name"] == "3" and p["layer"] == repr(net.model[3])
    x = net.prepare(net.samples[2][1])
    with cs.no_grad():
        before = net.model[2](net.model[1](net.model[0](cs.tensor(x)))).numpy()
        after = net.model[3](cs.tensor(before)).numpy()
    np.testing.assert_array_equal(np.array(p["input"], dtype=np.float32), before)
    np.testing.assert_array_equal(
        np.array(p["weight"], dtype=np.float32), net.model[3].weight.numpy()
    )
    np.testing.assert_allclose(np.array(p["output"], dtype=np.float32), after, rtol=1e-6)
    status, e = get(server, "/api/network/explain", {"sample": "2", "layer": "4", "at": "3,5,6"})
    assert status == 200
    assert e["index"] == [0, 3, 5, 6] and e["matches"] is True
    assert e["actual"] == pytest.approx(float(after[0, 3, 5, 6]), rel=1e-6)
    assert len(e["channels"]) == 3 and len(e["channels"][0]["taps"]) == 9


def _png(width: int, height: int, pixels: bytes | None = None) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    data = zlib.compress(pixels) if pixels is not None else b""
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
    )


def test_upload(server):
    from PIL import Image

    rng = np.random.default_rng(5)
    picture = Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8))
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    status, _kind, data = raw(
        server, "POST", "/api/upload", buffer.getvalue(), {"Content-Type": "image/png"}
    )
    assert status == 200, data
    reply = json.loads(data)
    assert (reply["width"], reply["height"]) == (40, 30)
    status, body = get(server, "/api/network", {"image": reply["image"]})
    assert status == 200 and body["label"] is None
    x = server.net.prepare(picture)
    np.testing.assert_allclose(body["layers"][0]["min"], x.min(), rtol=1e-6)
    with cs.no_grad():
        logits = server.net.model(cs.tensor(x)).numpy()[0]
    assert body["prediction"] == "abc"[int(np.argmax(logits))]
    # bad uploads
    assert raw(server, "POST", "/api/upload", b"not an image")[0] == 400
    assert raw(server, "POST", "/api/upload", b"")[0] == 400
    status, _, data = raw(server, "POST", "/api/upload", _png(8000, 7000))  # 56 Mpx header
    assert status == 413 and b"pixels" in data
    status, _, data = raw(server, "POST", "/api/upload", _png(4, 4, b"\x00" * 3))  # truncated
    assert status == 400
    host, port = server.server_address[:2]
    with socket.create_connection((host, port), timeout=30) as sock:  # refused before reading
        sock.sendall(b"POST /api/upload HTTP/1.1\r\nContent-Length: 30000000\r\n\r\n" + b"x" * 100)
        reply = _read_all(sock)
    assert reply.startswith(b"HTTP/1.1 413") and b"limit" in reply
    assert raw(server, "POST", "/api/upload", b"x", {"Content-Length": "-5"})[0] == 400
    assert get(server, "/api/shape", "input-size=5")[0] == 200


# ----------------------------------------------------------------------------- command
def test_command_serves_prints_address_and_stops_on_ctrl_c(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "convscope", "explore", "--no-browser", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert "http://127.0.0.1:" in line and "fashion" in line, line + proc.stderr.read()
        url = line[line.index("http://") :].split()[0]
        with urllib.request.urlopen(url + "api/shape?input-size=9&stride=2", timeout=60) as r:
            assert json.load(r)["output_shape"] == [1, 1, 4]
        with urllib.request.urlopen(url, timeout=60) as r:
            assert b"convscope explore" in r.read()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "stopped" in out and "Traceback" not in err


def test_command_errors_are_one_line(server, tmp_path, capsys):
    assert main(["explore", str(tmp_path / "missing.cs"), "--no-browser"]) == 2
    assert (
        main(
            ["explore", "--model", "resnet18", "--weights", str(tmp_path / "w.pth"), "--no-browser"]
        )
        == 2
    )
    assert main(["explore", "--model", "nonet", "--no-browser"]) == 2
    assert main(["explore", "--port", "70000", "--no-browser"]) == 2
    assert main(["explore", "--weights", str(tmp_path / "none.safetensors"), "--no-browser"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 5 and "Traceback" not in err
    with socket.socket() as busy:  # a port in use is one line too
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        try:
            code = main(["explore", "--no-browser", "--port", str(port), "--model", "fashion"])
        finally:
            network.configure(lambda: server.net)  # the command configured the fashion network
    assert code == 2


def test_checkpoint_network(tmp_path):
    from convscope.apps import train
    from convscope.io import save

    cs.manual_seed(0)
    model = train.build_model(1, 4, 12, width=16)
    path = tmp_path / "model.cs"
    save(
        {
            "state_dict": model.state_dict(),
            "meta": {"in_channels": 1, "num_classes": 4, "image_size": 12},
        },
        path,
    )
    net = network.checkpoint_network(path)
    x = net.prepare(np.zeros((30, 30), dtype=np.uint8))
    assert x.shape == (1, 1, 12, 12)
    run = net.run(x)
    assert run.probabilities.shape == (4,)
    assert [type(r.module).__name__ for r in network.shown_layers(run)[1:]][:4] == [
        "Conv2d",
        "BatchNorm2d",
        "ReLU",
        "MaxPool2d",
    ]


def test_demo_closes_with_the_explore_command(tmp_path, capsys, monkeypatch):
    from convscope.cli import demo

    monkeypatch.setattr(demo, "TOOL_DEMOS", ())  # the tools' own demos are tested elsewhere
    assert main(["demo", "--output", str(tmp_path)]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert "convscope explore" in last


def test_models_network_resnet18(monkeypatch):
    """A cs.models architecture (random weights here): ImageNet preprocessing of the bundled
    photo, receptive fields through stem and blocks, big layers refused by the playground."""
    from convscope.explore import api

    net = network.models_network("resnet18", None)
    monkeypatch.setattr(network, "_current", net)
    status, body = api.handle("GET", "/api/network", "sample=0")
    assert status == 200, body
    names = [c["name"] for c in body["layers"]]
    assert names[:5] == ["input", "conv1", "bn1", "relu", "maxpool"]
    assert body["layers"][0]["shape"] == [3, 224, 224]
    assert body["layers"][1]["channels_shown"] == 16 and len(body["probabilities"]) == 10
    relu = names.index("relu")
    status, field = api.handle("GET", "/api/network/field", f"layer={relu}&at=0,20,20")
    assert status == 200
    # conv1 (7x7, stride 2, padding 3): output row 20 reads input rows 37..43
    assert field["fields"][0]["box"] == [37, 44, 37, 44]
    block = names.index("layer1.0.conv1")
    status, field = api.handle("GET", "/api/network/field", f"layer={block}&at=0,5,5")
    assert status == 200
    # layer1.0.conv1 (3x3, p1) row 5 reads maxpool rows 4..6; maxpool (3x3, s2, p1) reads
    # conv1 rows 4*2-1 .. 6*2-1+2 = 7..13; conv1 reads input rows 7*2-3 .. 13*2-3+6 = 11..29
    assert field["fields"][0]["box"] == [11, 30, 11, 30]
    assert field["fields"][names.index("maxpool")]["box"] == [4, 7, 4, 7]
    status, body = api.handle("GET", "/api/network/layer", "layer=1")
    assert status == 413 and "too large to draw" in body["error"]
    status, body = api.handle("GET", "/api/network/explain", "layer=1&at=0,3,4")
    assert status == 200 and body["matches"] is True


def test_parallel_requests_stay_consistent(server):
    """Requests from many threads at once: seeded values and network runs do not mix."""
    from concurrent.futures import ThreadPoolExecutor

    jobs = [("/api/explain", {"seed": str(s), "at": "0,1,2,2"}) for s in range(6)]
    jobs += [("/api/network", {"sample": str(s % 3)}) for s in range(6)]
    jobs += [("/api/network/field", {"sample": "1", "layer": "4", "at": "1,3,3"})] * 4
    once = [get(server, path, params) for path, params in jobs]
    assert network.current() is server.net
    server.net._runs.clear()  # the network runs again, from several threads
    with ThreadPoolExecutor(8) as pool:
        again = list(pool.map(lambda job: get(server, *job), jobs * 2))
    assert all(status == 200 for status, _ in once)
    assert again == once * 2
