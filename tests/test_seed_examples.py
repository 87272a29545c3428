"""The worked examples of the SPEC, with their literal acceptance numbers."""

from __future__ import annotations

import re

import numpy as np
import pytest

import convscope as cs
import convscope.nn as nn
import convscope.nn.functional as F

IMAGE = [[1, 2, 0, 3, 1], [0, 1, 2, 3, 1], [1, 2, 1, 0, 0], [5, 2, 3, 1, 1], [2, 1, 0, 1, 1]]
KERNEL = [[1, 2, 1], [0, 1, 0], [2, 1, 0]]


def image_and_kernel():
    return cs.tensor(IMAGE).reshape(1, 1, 5, 5), cs.tensor(KERNEL).reshape(1, 1, 3, 3)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, [[10, 12, 12], [18, 16, 16], [13, 9, 3]]),
        ({"stride": 2}, [[10, 12], [13, 3]]),
        (
            {"padding": 1},
            [
                [1, 3, 4, 10, 8],
                [5, 10, 12, 12, 6],
                [7, 18, 16, 16, 8],
                [11, 13, 9, 3, 4],
                [14, 13, 9, 7, 4],
            ],
        ),
    ],
    ids=["stride1", "stride2", "padding1"],
)
def test_integer_conv2d(kwargs, expected):
    x, w = image_and_kernel()
    assert x.dtype == cs.int64 and w.dtype == cs.int64
    y = F.conv2d(x, w, **kwargs)
    assert isinstance(y, cs.Tensor)
    assert y.dtype == cs.int64
    expected = np.array(expected)
    assert y.shape == (1, 1, *expected.shape)
    np.testing.assert_array_equal(y.numpy()[0, 0], expected)


def test_two_dimensional_input_is_rejected():
    _, w = image_and_kernel()
    with pytest.raises(RuntimeError) as info:
        F.conv2d(cs.tensor(IMAGE), w)
    message = str(info.value)
    assert "conv2d" in message
    assert re.search(r"3-?D \(unbatched\) or 4-?D \(batched\)", message), message
    assert "[5, 5]" in message


def test_conv1d_by_hand():
    conv = nn.Conv1d(2, 3, 5)
    assert conv.weight.shape == (3, 2, 5)
    assert conv.bias.shape == (3,)
    x = cs.rand(4, 2, 6)
    y = conv(x)
    assert y.shape == (4, 3, 2)
    xa, w, b = x.numpy(), conv.weight.numpy(), conv.bias.numpy()
    for t in (0, 1):
        window = slice(t, t + 5)
        by_hand = xa[0, 0, window] @ w[0, 0] + xa[0, 1, window] @ w[0, 1] + b[0]
        np.testing.assert_allclose(y.numpy()[0, 0, t], by_hand, rtol=1e-5, atol=1e-6)


def output_shape(layer, *input_shape):
    return layer(cs.rand(*input_shape)).shape


def test_layer_shapes():
    assert output_shape(nn.Conv2d(3, 16, 3, padding=1), 4, 3, 32, 32) == (4, 16, 32, 32)

    grouped = nn.Conv2d(16, 32, 3, groups=4)
    assert grouped.weight.shape == (32, 4, 3, 3)
    assert output_shape(grouped, 2, 16, 8, 8) == (2, 32, 6, 6)

    depthwise, pointwise = nn.Conv2d(16, 16, 3, groups=16), nn.Conv2d(16, 32, 1)
    assert depthwise.weight.shape == (16, 1, 3, 3)
    assert pointwise.weight.shape == (32, 16, 1, 1)
    assert pointwise(depthwise(cs.rand(2, 16, 10, 12))).shape == (2, 32, 8, 10)

    text = nn.Conv1d(256, 100, 3)
    assert text.weight.shape == (100, 256, 3)
    assert output_shape(text, 2, 256, 20) == (2, 100, 18)

    volume = nn.Conv3d(1, 32, (3, 3, 3))
    assert volume.weight.shape == (32, 1, 3, 3, 3)
    assert output_shape(volume, 2, 1, 6, 7, 8) == (2, 32, 4, 5, 6)

    up = nn.ConvTranspose2d(16, 8, 2, stride=2)
    assert up.weight.shape == (16, 8, 2, 2)
    assert output_shape(up, 2, 16, 5, 7) == (2, 8, 10, 14)

    assert output_shape(nn.Conv2d(3, 6, 3), 64, 3, 32, 32) == (64, 6, 30, 30)


def test_spectrogram_stack():
    first = nn.Conv2d(1, 2, (3, 3), padding=1)
    second = nn.Conv2d(2, 2, (5, 5), padding=2)
    assert first.weight.shape == (2, 1, 3, 3)
    assert second.weight.shape == (2, 2, 5, 5)
    assert first.bias.shape == second.bias.shape == (2,)
    hidden = first(cs.rand(1, 1, 257, 188))
    assert hidden.shape == (1, 2, 257, 188)
    assert second(hidden).shape == (1, 2, 257, 188)


def test_print(capsys):
    layer = nn.Conv2d(3, 16, 3, padding=1)
    expected = "Conv2d(3, 16, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))"
    assert repr(layer) == expected
    print(layer)
    assert capsys.readouterr().out == expected + "\n"
