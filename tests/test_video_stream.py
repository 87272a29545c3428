"""Conv3d chunk by chunk along time (convscope.apps.video_stream): every chunk size gives the
whole convolution's values (bit for bit in one chunk; shorter chunks change the GEMM's shape,
so the last bit may differ), input frames are pulled lazily, the layer's own errors come
before anything is computed, and chunks fit the budget."""

from __future__ import annotations

import numpy as np
import pytest

import convscope as cs
from convscope import nn
from convscope.apps import video_stream

CASES = [
    ({"kernel_size": 3, "padding": 1}, "zeros"),
    ({"kernel_size": (3, 3, 5), "padding": (2, 1, 2), "stride": (2, 1, 2)}, "reflect"),
    ({"kernel_size": (5, 3, 3), "padding": (4, 1, 1)}, "circular"),  # head reads the last frames
    ({"kernel_size": 3, "padding": (2, 1, 1)}, "reflect"),  # reflects frames ahead of the start
    ({"kernel_size": 3, "padding": "same", "dilation": (2, 1, 1)}, "replicate"),
    ({"kernel_size": (2, 3, 3), "stride": (3, 1, 1), "groups": 3}, "zeros"),  # skips frames
    ({"kernel_size": (1, 3, 3), "padding": (0, 1, 1), "bias": False}, "circular"),
]


def _layer(conv, mode, out_channels=6):
    cs.manual_seed(3)
    return nn.Conv3d(3, out_channels, padding_mode=mode, **conv)


def _whole(layer, clip):
    with cs.no_grad():
        return layer(cs.from_numpy(clip)).numpy()[0]


class Frames:
    """The clip's frames one at a time, counting how many were pulled."""

    def __init__(self, clip):
        self.clip, self.pulled = clip, 0

    def __iter__(self):
        for frame in self.clip[0].transpose(1, 0, 2, 3):
            self.pulled += 1
            yield frame


def _run(steps, clip):
    frames = Frames(clip)
    early = {i: clip[0, :, i] for i in steps.early()}
    parts = []
    for j0, out in video_stream.convolve(steps, frames, early):
        assert j0 == sum(p.shape[1] for p in parts)
        parts.append(out)
    return np.concatenate(parts, axis=1), frames


@pytest.mark.parametrize(("conv", "mode"), CASES, ids=[f"{m}-{c}" for c, m in CASES])
def test_every_chunk_length_gives_the_whole_convolution(conv, mode):
    clip = np.random.default_rng(0).standard_normal((1, 3, 13, 7, 9), dtype=np.float32)
    layer = _layer(conv, mode)
    whole = _whole(layer, clip)
    steps = video_stream.plan(layer, clip.shape)
    assert steps.out_shape == (1, *whole.shape)
    steps.chunk = whole.shape[1]
    got, _ = _run(steps, clip)
    assert np.array_equal(got, whole)
    for chunk in (1, 2, 5):
        steps.chunk = chunk
        got, _ = _run(steps, clip)
        np.testing.assert_allclose(got, whole, rtol=1e-5, atol=1e-6)


def test_frames_are_pulled_lazily_and_the_early_ones_are_named():
    clip = np.random.default_rng(1).random((1, 3, 40, 5, 6), dtype=np.float32)
    layer = _layer({"kernel_size": 3, "padding": 1}, "zeros")
    steps = video_stream.plan(layer, clip.shape)
    steps.chunk = 4
    frames = Frames(clip)
    chunks = video_stream.convolve(steps, frames)
    j0, first = next(chunks)
    assert (j0, first.shape[1]) == (0, 4)
    assert frames.pulled <= 6  # outputs 0-3 read frames 0-4 (and one frame of lookahead)
    assert steps.early() == []
    circular = video_stream.plan(_layer({"kernel_size": 5, "padding": 2}, "circular"), clip.shape)
    assert circular.early() == [38, 39]  # the first outputs wrap around to the last frames
    with pytest.raises(ValueError, match="ended after 3 of its 40 frames"):
        list(video_stream.convolve(steps, iter(clip[0, :, :3].transpose(1, 0, 2, 3))))


def test_layer_errors_come_first_and_as_pytorch_words_them():
    shape = (1, 3, 4, 8, 8)
    with pytest.raises(RuntimeError, match="Kernel size can't be greater"):
        video_stream.plan(_layer({"kernel_size": (9, 3, 3)}, "zeros"), shape)
    with pytest.raises(RuntimeError, match="Padding size should be less"):
        video_stream.plan(_layer({"kernel_size": 3, "padding": (5, 1, 1)}, "reflect"), shape)


def test_chunks_fit_a_share_of_the_budget_or_are_refused():
    layer = _layer({"kernel_size": 3, "padding": 1}, "zeros", out_channels=4)
    steps = video_stream.plan(layer, (1, 3, 64, 96, 128))
    budget = 8 << 20
    steps.fit(budget)
    assert 1 < steps.chunk < 64
    assert steps.chunk_bytes(steps.chunk) <= budget // video_stream.CHUNK_SHARE
    assert steps.chunk_bytes(steps.chunk + 1) > budget // video_stream.CHUNK_SHARE
    assert steps.fit(1 << 40).chunks() == [(0, 64)]  # a large budget: one chunk
    with pytest.raises(video_stream.BudgetError, match="one output frame needs about"):
        steps.fit(steps.chunk_bytes(1) - 1)
