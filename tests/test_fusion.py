"""The fused inference path (conv -> BatchNorm -> residual -> activation in one in-place pass)
equals the layers run one by one, and PyTorch; it steps aside whenever fusing could be seen."""

from __future__ import annotations

import numpy as np
import pytest

import convscope as cs
import convscope.nn as nn
from convscope.nn import fusion
from convscope.ops import epilogue, jit

torch = pytest.importorskip("torch")


def _copy(ours: nn.Module, theirs) -> None:
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})


def _randomise_bn(theirs) -> None:
    gen = torch.Generator().manual_seed(0)
    for module in theirs.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            c = module.num_features
            module.running_mean.copy_(torch.randn(c, generator=gen) * 0.5)
            module.running_var.copy_(torch.rand(c, generator=gen) + 0.5)
            if module.affine:
                module.weight.data.copy_(torch.randn(c, generator=gen))
                module.bias.data.copy_(torch.randn(c, generator=gen))


@pytest.fixture
def spy(monkeypatch):
    calls = []
    original = epilogue.apply

    def recording(out, **kwargs):
        calls.append(kwargs.get("activation"))
        return original(out, **kwargs)

    monkeypatch.setattr(epilogue, "apply", recording)
    return calls


ACTIVATIONS = ["ReLU", "ReLU6", "Sigmoid", "Tanh", "GELU", "SiLU", "Hardswish", "Hardsigmoid", None]


def _layers(lib, dims, transposed, bias, affine, activation):
    conv = getattr(lib, f"Conv{'Transpose' if transposed else ''}{dims}d")
    bn = getattr(lib, f"BatchNorm{dims}d")
    layers = [
        conv(4, 6, 3, stride=2 if transposed else 1, padding=1, bias=bias),
        bn(6, affine=affine),
    ]
    if activation is not None:
        layers.append(getattr(lib, activation)())
    return lib.Sequential(*layers)


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize(
    ("dims", "transposed", "bias", "affine"),
    [
        (2, False, True, True),
        (1, False, False, True),
        (3, False, True, False),
        (2, True, True, True),
    ],
)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fused_sequential_equals_torch_and_the_unfused_layers(
    activation, dims, transposed, bias, affine, dtype, spy
):
    if activation is not None and not hasattr(nn, activation):
        pytest.skip(f"nn.{activation} not available")
    theirs = _layers(torch.nn, dims, transposed, bias, affine, activation).eval()
    _randomise_bn(theirs)
    ours = _layers(nn, dims, transposed, bias, affine, activation).eval()
    _copy(ours, theirs)
    if dtype == "float64":
        theirs, ours = theirs.double(), ours.double()
    shape = (2, 4) + (5,) * dims
    x = np.random.default_rng(1).standard_normal(shape).astype(dtype)
    with cs.no_grad():
        fused = ours(cs.tensor(x)).numpy()
        separate = x
        for layer in ours:
            separate = layer(cs.tensor(separate)).numpy()
    name = fusion.activation_name(ours[-1]) if activation else None
    expect_fused = activation is None or name is not None
    assert spy == ([name] if expect_fused else [])
    with torch.no_grad():
        reference = theirs(torch.from_numpy(x)).numpy()
    tol = 1e-5 if dtype == "float32" else 1e-12
    scale = np.abs(reference).max()
    assert np.abs(fused - reference).max() <= tol * scale
    assert np.abs(separate - reference).max() <= tol * scale
    assert fused.dtype == np.dtype(dtype)


def test_conv_bn_act_with_residual_matches_torch(spy):
    tconv, tbn = torch.nn.Conv2d(8, 8, 3, padding=1, bias=False), torch.nn.BatchNorm2d(8)
    tbn.eval()
    _randomise_bn(tbn)
    conv, bn = nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8).eval()
    _copy(conv, tconv)
    _copy(bn, tbn)
    x = np.random.default_rng(2).standard_normal((2, 8, 7, 7)).astype(np.float32)
    with cs.no_grad():
        ours = fusion.conv_bn_act(cs.tensor(x), conv, bn, nn.ReLU(), residual=cs.tensor(x))
    with torch.no_grad():
        t = torch.from_numpy(x)
        theirs = torch.relu(tbn(tconv(t)) + t).numpy()
    np.testing.assert_allclose(ours.numpy(), theirs, rtol=1e-5, atol=1e-5)
    assert spy == ["relu"]
    # the unbatched form goes through the same path
    with cs.no_grad():
        single = fusion.conv_bn_act(
            cs.tensor(x[0]), conv, None, nn.ReLU(), residual=cs.tensor(x[0])
        )
    with torch.no_grad():
        t0 = torch.from_numpy(x[0])
        np.testing.assert_allclose(
            single.numpy(), torch.relu(tconv(t0) + t0).numpy(), rtol=1e-5, atol=1e-5
        )


def _block() -> nn.Sequential:
    block = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
    block[1].running_mean.data[:] = [0.1, -0.2, 0.3, 0.0]
    return block.eval()


def test_hooks_training_gradients_and_summaries_see_every_layer(spy):
    x = cs.rand(1, 3, 6, 6)
    block = _block()
    seen = []
    with block[0].register_forward_hook(lambda m, a, out: seen.append(out.shape)), cs.no_grad():
        block(x)
    assert seen == [(1, 4, 4, 4)] and spy == []

    block(x)  # gradients recorded: layer by layer, with a graph
    assert spy == []

    block.train()
    before = block[1].running_mean.numpy().copy()
    with cs.no_grad():
        block(x)
    assert spy == [] and not np.array_equal(before, block[1].running_mean.numpy())

    block = _block()
    with cs.no_grad():
        cs.summary(block, (1, 3, 6, 6))
    assert spy == []
    with cs.no_grad():
        block(x)
    assert spy == ["relu"]


def test_numpy_path_fuses_in_place_activations_only(monkeypatch, spy):
    monkeypatch.setattr(jit, "BACKEND", "numpy")
    block = _block()
    x = cs.rand(2, 3, 6, 6)
    with cs.no_grad():
        fused = block(x).numpy()
    assert spy == ["relu"]
    separate = block[2](block[1](block[0](x))).detach().numpy()
    np.testing.assert_allclose(fused, separate, rtol=1e-6, atol=1e-6)
    if hasattr(nn, "SiLU"):
        silu = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.SiLU()).eval()
        assert fusion.activation_name(silu[2]) is None
        with cs.no_grad():
            silu(x)
        assert spy == ["relu", None]  # conv + BatchNorm fused, SiLU run as a layer


def test_float16_runs_layer_by_layer(spy):
    block = _block().half()
    with cs.no_grad():
        y = block(cs.rand(1, 3, 6, 6).half())
    assert y.dtype == np.float16 and spy == []


@pytest.mark.parametrize("act", ["GELU", "ReLU", "SiLU", "Sigmoid", "Hardswish", "Tanh"])
def test_linear_then_activation_in_place_matches_layer_by_layer(act):
    """Sequential(Linear, act) under no_grad applies the activation on the Linear output in
    place; values equal the separate layers, the input is untouched, a graph still records."""
    import convscope as cs
    from convscope import nn

    model = nn.Sequential(nn.Linear(6, 8), getattr(nn, act)(), nn.Linear(8, 3)).eval()
    x = cs.randn(4, 5, 6)
    before = x.numpy().copy()
    with cs.no_grad():
        fused = model(x).numpy()
    separate = model[2](model[1](model[0](x))).detach().numpy()
    np.testing.assert_allclose(fused, separate, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(x.numpy(), before)
    y = model(x)
    assert y.requires_grad and y.grad_fn is not None


def test_linear_bias_and_gelu_in_one_pass_give_the_layers_bits():
    """Under no_grad a float32 Linear followed by GELU adds the bias inside the GELU pass:
    the same bits as the two layers one by one (product + bias rounded, then GELU)."""
    import convscope as cs
    from convscope import nn

    cs.manual_seed(3)
    first, act = nn.Linear(96, 384), nn.GELU()
    model = nn.Sequential(first, act).eval()
    x = cs.randn(1, 56, 56, 96)
    with cs.no_grad():
        fused = model(x).numpy()
        separate = act(first(x)).numpy()
    np.testing.assert_array_equal(fused, separate)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("parts", [(True, True, True), (False, False, False), (True, False, True)])
def test_batch_norm_affine_compiled_and_numpy_round_alike(monkeypatch, dtype, parts):
    """The fused layers' per-channel scale and shift: one compiled call, or NumPy's steps;
    the same float64 arithmetic, the same bits after rounding to the output dtype (weight,
    bias and the convolution's bias each present or not)."""
    rng = np.random.default_rng(7)
    c = 37
    var, mean = (rng.random(c) + 0.1).astype(np.float32), rng.standard_normal(c).astype(np.float32)
    optional = [rng.standard_normal(c).astype(np.float32) if p else None for p in parts]
    results = []
    for backend in ("auto", "numpy"):
        monkeypatch.setattr(jit, "BACKEND", backend)
        results.append(epilogue.batch_norm_affine(var, mean, 1e-3, *optional, np.dtype(dtype)))
    for got, want in zip(*results, strict=True):
        assert got.dtype == want.dtype == dtype
        np.testing.assert_array_equal(got, want)


def _torch_cn_block(block, x):
    """torchvision's CNBlock arithmetic with ``block``'s weights, in torch (float64)."""
    f = torch.nn.functional
    conv, norm = block.block[0], block.block[2]
    t = {k: torch.from_numpy(np.asarray(v.data, np.float64)) for k, v in block.state_dict().items()}
    channels = conv.in_channels
    y = f.conv2d(
        torch.from_numpy(x.astype(np.float64)),
        t["block.0.weight"],
        t["block.0.bias"],
        padding=3,
        groups=channels,
    )
    y = f.layer_norm(
        y.permute(0, 2, 3, 1), (channels,), t["block.2.weight"], t["block.2.bias"], norm.eps
    )
    y = f.linear(
        f.gelu(f.linear(y, t["block.3.weight"], t["block.3.bias"])),
        t["block.5.weight"],
        t["block.5.bias"],
    )
    return (
        torch.from_numpy(x.astype(np.float64)) + t["layer_scale"] * y.permute(0, 3, 1, 2)
    ).numpy()


@pytest.mark.parametrize(("dtype", "tolerance"), [(np.float32, 2e-5), (np.float64, 1e-12)])
@pytest.mark.parametrize("size", [9, 17])
def test_convnext_block_channels_first_matches_the_layers_and_torch(
    monkeypatch, dtype, tolerance, size
):
    """ConvNeXt's block for one sample at inference runs channels-first (LayerNorm over the
    channels in place, both Linear layers as W @ X, no permutes): the layers' values to
    rounding, and torch's; the LayerNorm2d of the downsampling layers likewise."""
    from convscope.models.convnext import CNBlock, LayerNorm2d

    rng = np.random.default_rng(11)
    block = CNBlock(16, 0.5, 0.0).eval()
    if dtype == np.float64:
        block = block.double()
    state = {k: rng.standard_normal(v.shape).astype(dtype) for k, v in block.state_dict().items()}
    block.load_state_dict(state)
    x = rng.standard_normal((1, 16, size, size)).astype(dtype)
    results = []
    real = fusion.channels_first_block
    monkeypatch.setattr(
        fusion, "channels_first_block", lambda *a: results.append(real(*a)) or results[-1]
    )
    with cs.no_grad():
        fast = block(cs.tensor(x)).numpy()
        assert results and results[0] is not None  # the channels-first path ran
        monkeypatch.setattr(fusion, "channels_first_block", lambda *a: None)
        layers = block(cs.tensor(x)).numpy()
    scale = np.abs(layers).max()
    assert np.abs(fast - layers).max() <= tolerance * scale
    assert np.abs(fast - _torch_cn_block(block, x)).max() <= tolerance * scale
    norm = LayerNorm2d(16, eps=1e-6)
    norm.load_state_dict(
        {k: rng.standard_normal(v.shape).astype(np.float32) for k, v in norm.state_dict().items()}
    )
    y = rng.standard_normal((2, 16, 5, 7)).astype(np.float32)
    with cs.no_grad():
        fast = norm(cs.tensor(y)).numpy()
    want = (
        torch.nn.functional.layer_norm(
            torch.from_numpy(y).permute(0, 2, 3, 1),
            (16,),
            torch.from_numpy(norm.weight.numpy()),
            torch.from_numpy(norm.bias.numpy()),
            1e-6,
        )
        .permute(0, 3, 1, 2)
        .numpy()
    )
    np.testing.assert_allclose(fast, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("act", "gate"), [("SiLU", "Sigmoid"), ("ReLU", "Hardsigmoid")])
def test_squeeze_excitation_at_inference_matches_the_layers(monkeypatch, dtype, act, gate):
    """The channel attention of EfficientNet (SiLU, sigmoid) and MobileNetV3 (ReLU,
    hard sigmoid) at inference as a few array operations: the layers' values to rounding,
    and torch's."""
    from convscope.models._blocks import SqueezeExcitation

    rng = np.random.default_rng(12)
    block = SqueezeExcitation(24, 6, getattr(nn, act), getattr(nn, gate)).eval()
    if dtype == np.float64:
        block = block.double()
    state = {k: rng.standard_normal(v.shape).astype(dtype) for k, v in block.state_dict().items()}
    block.load_state_dict(state)
    x = rng.standard_normal((3, 24, 5, 7)).astype(dtype)
    results = []
    real = fusion.squeeze_excitation
    monkeypatch.setattr(
        "convscope.models._blocks.squeeze_excitation",
        lambda *a: results.append(real(*a)) or results[-1],
    )
    with cs.no_grad():
        fast = block(cs.tensor(x)).numpy()
        assert results and results[0] is not None
        monkeypatch.setattr("convscope.models._blocks.squeeze_excitation", lambda *a: None)
        layers = block(cs.tensor(x)).numpy()
    tolerance = 1e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(fast, layers, rtol=tolerance, atol=tolerance)
    f = torch.nn.functional
    t = {k: torch.from_numpy(v.astype(np.float64)) for k, v in state.items()}
    s = f.adaptive_avg_pool2d(torch.from_numpy(x.astype(np.float64)), 1)
    s = getattr(f, act.lower())(f.conv2d(s, t["fc1.weight"], t["fc1.bias"]))
    s = getattr(f, gate.lower())(f.conv2d(s, t["fc2.weight"], t["fc2.bias"]))
    want = (s * torch.from_numpy(x.astype(np.float64))).numpy()
    np.testing.assert_allclose(fast, want, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-6)


class _OwnConstructor(nn.Conv3d):
    """torchvision's Conv3DSimple pattern: a constructor of its own, the layer's forward."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(cin, cout, kernel_size=3, padding=1, bias=False)


class _OwnForward(nn.Conv3d):
    def forward(self, input):
        return super().forward(input) * 2


@pytest.mark.parametrize(("kind", "fused"), [(_OwnConstructor, True), (_OwnForward, False)])
def test_convolution_subclasses_fuse_only_when_they_compute_as_the_layer(spy, kind, fused):
    """A Conv3d subclass that only sets its arguments (r3d_18's convolutions) takes the fused
    BatchNorm/ReLU epilogue; one with its own forward runs as written."""
    rng = np.random.default_rng(13)
    conv = kind(3, 4) if kind is _OwnConstructor else kind(3, 4, 3, padding=1, bias=False)
    bn = nn.BatchNorm3d(4).eval()
    bn.running_var.data[:] = rng.random(4) + 0.5
    x = cs.tensor(rng.standard_normal((1, 3, 4, 5, 6)).astype(np.float32))
    with cs.no_grad():
        got = nn.Sequential(conv, bn, nn.ReLU())(x).numpy()
        want = nn.ReLU()(bn(conv(x))).numpy()
    assert spy == (["relu"] if fused else [])
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
