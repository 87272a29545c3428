"""Float32 training gradients of a whole network are as accurate as PyTorch's own.

ResNet-18 (torchvision's weights copied into ``convscope.models.resnet18``) in training mode:
both libraries compute float32 parameter gradients of a cross-entropy loss, and each is
compared with a float64 reference.  The reference takes the float32 run's own ReLU and
max-pool decisions (which inputs were positive, which input of each window was largest): a
pre-activation within rounding of zero may change sign in float32, and one such flip in a small
layer moves a whole channel's BatchNorm statistics and every gradient before it by up to 10%; two
inputs of a pooling window within rounding of each other send the stem's gradient to different
pixels (seen once: the stem's weight gradient 1e-2 off) -- a matter of luck that hits either
library, not of how sums are accumulated.  With the decisions fixed, the error left is the
arithmetic's.

Also: the input gradient of strided 3x3 layers and a training BatchNorm's gradients are as
accurate as PyTorch's, and the unfold weight gradient is right in tiles and with groups.
"""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

import convscope as cs
from convscope import models
from convscope.ops.conv import conv_general_backward

try:
    import torch
except ImportError:  # pragma: no cover - conftest makes this a hard failure in CI
    torch = None

#: convscope's median relative error (and a single layer's) may exceed PyTorch's by this
#: factor at most (measured over seeds 0-7: 1.07-1.33 for the median)
FACTOR = 1.5
#: the worst of the 62 parameters varies more from seed to seed (0.95-1.58x PyTorch's over
#: seeds 0-7; 0.87-1.87x before BatchNorm's statistics and backward sums were taken in
#: float64, a shift within the seed-to-seed noise).  What is left comes from the float32 GEMMs
#: of the unfold convolutions, forward and stride-1 input gradients (alone 1.1-2.5x PyTorch's
#: error at ResNet-18's shapes; every other layer is as accurate as PyTorch's or better):
#: OpenBLAS adds up to ~300 products of each output in one float32 running sum, where oneDNN's
#: direct convolution adds blocks of 16 channels' taps and then the blocks.  Splitting the
#: GEMMs' reduction into blocks of 64 brings the worst to 0.45-0.95x and the median to
#: 0.63-0.73x PyTorch's, but costs 6-17% of a 3x3 convolution's time at one thread (ResNet-18,
#: batch 8, 224x224), so it is not done.  The 'shifted' algorithm (one GEMM per kernel tap, the
#: taps' sums added) has such short sums but is slower than unfold on ResNet's layers at two
#: threads, so it runs when asked for (``cs.conv_algorithm("shifted")``): by default the
#: factors are as above (re-measured over seeds 0-7: worst 0.95-1.58, median 1.12-1.30);
#: with it (the test below), worst 0.69-1.25, median 0.84-1.03
WORST_FACTOR = 1.75
#: the worst factor with every stride-1 convolution as 'shifted' GEMMs
SHIFTED_WORST_FACTOR = 1.5


def _torchvision():
    if torch is None:
        pytest.skip("torch (the reference) is not installed")
    sys.modules.setdefault(
        "torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations")
    )
    return pytest.importorskip("torchvision")


def _relu_modules(model, relu_class) -> list[tuple[object, str]]:
    """(parent, attribute) of every ReLU module of ``model``."""
    found = []
    for module in model.modules():
        for name, child in list(module.named_children()):
            if isinstance(child, relu_class):
                found.append((module, name))
    return found


def _torch_gradients(tv, state, x, labels, dtype, masks=None):
    """Parameter gradients (float64 arrays) of a torchvision ResNet-18 with ``state`` and its
    ReLU and max-pool decisions: recorded into a new list (returned) or, with ``masks``,
    replayed in call order (``y = x * mask``; the pool gathers the recorded argmax)."""

    class Relu(torch.nn.Module):
        def __init__(self, record: list, replay: list | None) -> None:
            super().__init__()
            self.record, self.replay = record, replay

        def forward(self, value):
            if self.replay is None:
                self.record.append((value > 0).numpy())
                return torch.relu(value)
            mask = self.replay[len(self.record)]
            self.record.append(mask)
            return value * torch.from_numpy(mask).to(value.dtype)

    class Pool(Relu):
        def forward(self, value):
            if self.replay is None:
                out, where = torch.nn.functional.max_pool2d(value, 3, 2, 1, return_indices=True)
                self.record.append(where.numpy())
                return out
            where = torch.from_numpy(self.replay[len(self.record)])
            self.record.append(where.numpy())
            picked = value.flatten(2).gather(2, where.flatten(2))
            return picked.reshape(where.shape)

    model = tv.models.resnet18()
    model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
    record: list = []
    for parent, name in _relu_modules(model, torch.nn.ReLU):
        setattr(parent, name, Relu(record, masks))
    model.maxpool = Pool(record, masks)
    model = model.to(dtype).train()
    out = model(torch.from_numpy(x).to(dtype))
    torch.nn.functional.cross_entropy(out, torch.from_numpy(labels)).backward()
    assert masks is None or len(record) == len(masks)
    grads = {k: p.grad.double().numpy() for k, p in model.named_parameters()}
    return grads, record


def _convscope_gradients(state, x, labels):
    """convscope's float32 parameter gradients and its ReLU and max-pool decisions in call
    order."""
    model = models.resnet18()
    model.load_state_dict(state)
    model.train()
    record: list = []
    for parent, name in _relu_modules(model, cs.nn.ReLU):
        getattr(parent, name).register_forward_hook(
            lambda module, args, out: record.append(out.numpy() > 0)
        )

    def pool_decisions(module, args, out):
        with cs.no_grad():
            _, where = cs.nn.functional.max_pool2d(args[0], 3, 2, 1, return_indices=True)
        record.append(where.numpy())

    model.maxpool.register_forward_hook(pool_decisions)
    out = model(cs.tensor(x.astype(np.float32)))
    cs.nn.functional.cross_entropy(out, cs.tensor(labels)).backward()
    grads = {k: p.grad.numpy().astype(np.float64) for k, p in model.named_parameters()}
    return grads, record


def _errors(got: dict, want: dict) -> np.ndarray:
    """Per parameter: max |got - want| / max |want|."""
    return np.array([np.abs(got[k] - want[k]).max() / np.abs(want[k]).max() for k in sorted(want)])


def network_errors(batch: int = 4, size: int = 64, seed: int = 0) -> dict[str, np.ndarray]:
    """Relative errors of every ResNet-18 parameter gradient, torch's and convscope's float32
    against float64 references with the same ReLU and max-pool decisions."""
    tv = _torchvision()
    torch.manual_seed(seed)
    state = {k: v.numpy().copy() for k, v in tv.models.resnet18().state_dict().items()}
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, 3, size, size))
    labels = rng.integers(0, 1000, batch)
    ours, our_masks = _convscope_gradients(state, x, labels)
    theirs, their_masks = _torch_gradients(tv, state, x, labels, torch.float32)
    assert len(our_masks) == len(their_masks) == 18  # stem, pool, 2 per basic block
    ref_ours, _ = _torch_gradients(tv, state, x, labels, torch.float64, our_masks)
    ref_theirs, _ = _torch_gradients(tv, state, x, labels, torch.float64, their_masks)
    return {"convscope": _errors(ours, ref_ours), "torch": _errors(theirs, ref_theirs)}


def test_resnet18_float32_gradients_as_accurate_as_torch():
    errors = network_errors()
    ours, theirs = errors["convscope"], errors["torch"]
    assert ours.size == theirs.size == 62
    assert np.median(theirs) > 0  # the comparison is not one of exact results
    assert np.median(ours) <= FACTOR * np.median(theirs), (np.median(ours), np.median(theirs))
    assert ours.max() <= WORST_FACTOR * theirs.max(), (ours.max(), theirs.max())


def test_resnet18_float32_gradients_with_shifted_gemms():
    """Every stride-1 convolution -- forwards, input gradients, the strided layers' input
    gradients by phases -- as one GEMM per kernel tap ('shifted', what a user asks for when
    float32 accuracy matters more than speed): the worst parameter within 1.5x PyTorch's
    error."""
    with cs.conv_algorithm("shifted"), cs.record_conv_algorithms() as used:
        errors = network_errors()
    assert sum(name == "shifted" for name, _ in used) >= 40
    ours, theirs = errors["convscope"], errors["torch"]
    assert np.median(ours) <= FACTOR * np.median(theirs), (np.median(ours), np.median(theirs))
    assert ours.max() <= SHIFTED_WORST_FACTOR * theirs.max(), (ours.max(), theirs.max())


@pytest.mark.parametrize(
    ("shape", "out_channels", "stride"),
    [
        ((4, 64, 16, 16), 128, 2),
        ((4, 128, 8, 8), 256, 2),
        ((2, 256, 6, 6), 512, 2),
        ((2, 32, 9, 9), 48, 3),
    ],
)
def test_strided_3x3_input_gradient_as_accurate_as_torch(shape, out_channels, stride):
    """Strided layers' input gradients go through fold (GEMM over the output channels, then
    the taps added): as accurate as PyTorch's."""
    if torch is None:
        pytest.skip("torch (the reference) is not installed")
    rng = np.random.default_rng(3)
    x = rng.standard_normal(shape)
    w = rng.standard_normal((out_channels, shape[1], 3, 3)) / np.sqrt(9 * shape[1])
    size = (shape[2] - 1) // stride + 1
    g = rng.standard_normal((shape[0], out_channels, size, size))

    def torch_grad(dtype):
        xt = torch.from_numpy(x).to(dtype).requires_grad_()
        out = torch.nn.functional.conv2d(
            xt, torch.from_numpy(w).to(dtype), stride=stride, padding=1
        )
        out.backward(torch.from_numpy(g).to(dtype))
        return xt.grad.double().numpy()

    want = torch_grad(torch.float64)
    got, _ = conv_general_backward(
        x.astype(np.float32),
        w.astype(np.float32),
        g.astype(np.float32),
        stride=(stride, stride),
        padding=((1, 1), (1, 1)),
        dilation=(1, 1),
        needs=(True, False),
    )
    scale = np.abs(want).max()
    ours = np.abs(got - want).max() / scale
    theirs = np.abs(torch_grad(torch.float32) - want).max() / scale
    assert ours <= FACTOR * theirs, (ours, theirs)


@pytest.mark.parametrize("compiled", [True, False])
@pytest.mark.parametrize("shape", [(4, 64, 16, 16), (4, 512, 2, 2), (8, 64, 56, 56)])
def test_batch_norm_training_gradients_as_accurate_as_torch(shape, compiled, monkeypatch):
    """A float32 training-mode BatchNorm's input, weight and bias gradients, against float64,
    are as close as PyTorch's float32 ones (channels with offsets and spreads of their own, as
    a convolution's outputs have), with the compiled kernels and with the NumPy path."""
    if torch is None:
        pytest.skip("torch (the reference) is not installed")
    from convscope.ops import jit

    if compiled and jit.kernels() is None:
        pytest.skip("numba is not installed")
    if not compiled:
        monkeypatch.setattr(jit, "BACKEND", "numpy")
    rng = np.random.default_rng(0)
    channels = shape[1]
    x = rng.standard_normal(shape) * rng.uniform(0.2, 2.0, (1, channels, 1, 1))
    x = (x + rng.normal(0, 2, (1, channels, 1, 1))).astype(np.float32)
    g = (rng.standard_normal(shape) * 1e-3).astype(np.float32)
    weight = rng.uniform(0.5, 1.5, channels).astype(np.float32)
    bias = rng.normal(0, 0.1, channels).astype(np.float32)

    def torch_grads(dtype):
        bn = torch.nn.BatchNorm2d(channels).to(dtype).train()
        with torch.no_grad():
            bn.weight.copy_(torch.from_numpy(weight))
            bn.bias.copy_(torch.from_numpy(bias))
        xt = torch.from_numpy(x).to(dtype).requires_grad_()
        bn(xt).backward(torch.from_numpy(g).to(dtype))
        return [a.double().numpy() for a in (xt.grad, bn.weight.grad, bn.bias.grad)]

    bn = cs.nn.BatchNorm2d(channels).train()
    bn.weight.data[...] = weight
    bn.bias.data[...] = bias
    xc = cs.tensor(x, requires_grad=True)
    bn(xc).backward(cs.tensor(g))
    ours = [a.numpy().astype(np.float64) for a in (xc.grad, bn.weight.grad, bn.bias.grad)]
    wants, theirs = torch_grads(torch.float64), torch_grads(torch.float32)
    # the weight and bias gradients are float64 sums in the compiled kernel (0.07-0.35x
    # PyTorch's error here) and pairwise float32 sums in the NumPy path (einsum's running sums
    # made the weight's 2x PyTorch's at 56x56); the input gradient rounds after each of its
    # five steps in the NumPy path's order (0.5-1.7x PyTorch's over seeds)
    for name, got, want, their, factor in zip(
        ("input", "weight", "bias"), ours, wants, theirs, (2.0, FACTOR, FACTOR), strict=True
    ):
        scale = np.abs(want).max()
        ours_err = np.abs(got - want).max() / scale
        their_err = np.abs(their - want).max() / scale
        assert ours_err <= factor * their_err, (name, ours_err, their_err)


@pytest.mark.parametrize("budget", [1 << 12, 1 << 16, 1 << 26])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_unfold_weight_gradient_tiles_and_groups(budget, dtype):
    """The unfold weight gradient (one GEMM per group and tile, samples side by side) in
    tiles of a few positions, with groups, stride and dilation, against torch in float64."""
    if torch is None:
        pytest.skip("torch (the reference) is not installed")
    from convscope.ops import tiling
    from convscope.ops.unfold_gemm import weight_gradient

    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 6, 11, 9))
    w = rng.standard_normal((4, 3, 3, 2))
    kwargs = {"stride": (2, 1), "padding": (1, 2), "dilation": (1, 2), "groups": 2}
    xt = torch.from_numpy(x)
    wt = torch.from_numpy(w).requires_grad_()
    out = torch.nn.functional.conv2d(xt, wt, **kwargs)
    g = rng.standard_normal(tuple(out.shape))
    out.backward(torch.from_numpy(g))
    want = wt.grad.numpy()
    geom = tiling.ConvGeometry(
        input_shape=x.shape,
        kernel_size=(3, 2),
        stride=(2, 1),
        pads=((1, 1), (2, 2)),
        dilation=(1, 2),
        input_dilation=(1, 1),
        output_size=tuple(out.shape[2:]),
    )
    got = weight_gradient(x.astype(dtype), g.astype(dtype), geom, 2, budget)
    assert got.dtype == dtype and got.shape == want.shape
    tol = 1e-12 if dtype == np.float64 else 1e-5
    assert np.abs(got - want).max() <= tol * np.abs(want).max()
