"""``convscope.models`` against torchvision's own model definitions.

Every architecture is built by torchvision (random weights, then random BatchNorm/LayerNorm
statistics and affine parameters, and ``layer_scale``), its ``state_dict`` is copied into the
convscope model, and both must agree: state_dict keys, shapes and dtypes, module names and
reprs, eval-mode outputs (fused and layer by layer), summaries against torchinfo; float64
training steps (gradients, running statistics); stochastic depth; the default initialisation
(same seed, same weights); the builders' arguments and the refusal of ``weights``.
"""

from __future__ import annotations

import contextlib
import sys
import types
from collections.abc import Iterator
from unittest import mock

import numpy as np
import pytest

import convscope as cs
from convscope import models
from convscope.models import _blocks

try:
    import torch
except ImportError:  # pragma: no cover - conftest makes this a hard failure in CI
    torch = None

VIDEO = {"r3d_18", "mc3_18", "r2plus1d_18"}

# the architectures of the issue: name -> (small input for the output comparison, kwargs)
ARCHS = {
    "resnet18": ((2, 3, 64, 64), {}),
    "resnet34": ((1, 3, 64, 64), {}),
    "resnet50": ((2, 3, 64, 64), {"num_classes": 10}),
    "mobilenet_v2": ((2, 3, 64, 64), {}),
    "mobilenet_v3_small": ((2, 3, 64, 64), {}),
    "mobilenet_v3_large": ((2, 3, 64, 64), {"num_classes": 10}),
    "efficientnet_b0": ((2, 3, 64, 64), {}),
    "convnext_tiny": ((2, 3, 64, 64), {}),
    "vgg11_bn": ((1, 3, 32, 32), {"num_classes": 10}),
    "vgg16": ((1, 3, 32, 32), {}),
    "r3d_18": ((1, 3, 4, 32, 32), {}),
}
SUMMARY_INPUT = {"r3d_18": (1, 3, 16, 112, 112)}  # others: (1, 3, 224, 224)

# other builders and arguments of the same classes: (id, builder, input, kwargs)
VARIANTS = [
    ("resnext50_32x4d", "resnext50_32x4d", (1, 3, 64, 64), {"num_classes": 7}),
    ("resnet50_dilated", "resnet50", (1, 3, 64, 64), {"replace_stride_with_dilation": [0, 1, 1]}),
    ("mobilenet_v2_half", "mobilenet_v2", (2, 3, 64, 64), {"width_mult": 0.5, "num_classes": 7}),
    ("mnv3_large_tail", "mobilenet_v3_large", (1, 3, 64, 64), {"reduced_tail": 1, "dilated": 1}),
    ("efficientnet_b1", "efficientnet_b1", (1, 3, 64, 64), {"num_classes": 7}),
    ("efficientnet_v2_s", "efficientnet_v2_s", (1, 3, 64, 64), {"num_classes": 7}),
    ("convnext_tiny_scaled", "convnext_tiny", (1, 3, 64, 64), {"layer_scale": 0.5}),
    ("mc3_18", "mc3_18", (1, 3, 4, 32, 32), {"num_classes": 5}),
    ("r2plus1d_18", "r2plus1d_18", (1, 3, 4, 32, 32), {"num_classes": 5}),
]


# ------------------------------------------------------------------ helpers
def _torchvision():
    if torch is None:
        pytest.skip("torch (the reference) is not installed")
    sys.modules.setdefault(
        "torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations")
    )
    return pytest.importorskip("torchvision")


def _builders(name: str) -> tuple:
    tv = _torchvision()
    if name in VIDEO:
        return getattr(tv.models.video, name), getattr(models.video, name)
    return getattr(tv.models, name), getattr(models, name)


@contextlib.contextmanager
def _skip_init() -> Iterator[None]:
    """Zeros instead of random draws while building a convscope model whose weights are
    overwritten right after (the default initialisation has tests of its own below); the
    random stream is the slow part of building VGG's 100M-parameter layers."""

    def fill(tensor, *args, **kwargs):
        tensor.data[...] = 0
        return tensor

    with (
        mock.patch.object(cs.nn.init, "uniform_", fill),
        mock.patch.object(cs.nn.init, "normal_", fill),
        mock.patch.object(cs.nn.init, "trunc_normal_", fill),
    ):
        yield


def _perturb(model) -> None:
    """Non-trivial statistics and affine parameters for every norm layer, and a layer scale
    that lets ConvNeXt's branches count (1e-6 by default)."""
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                n = module.num_features
                module.running_mean.copy_(torch.randn(n, generator=gen) * 0.2)
                module.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
                module.num_batches_tracked.fill_(7)
            if isinstance(module, (torch.nn.modules.batchnorm._BatchNorm, torch.nn.LayerNorm)):
                module.weight.copy_(torch.rand(module.weight.shape, generator=gen) + 0.5)
                module.bias.copy_(torch.randn(module.bias.shape, generator=gen) * 0.1)
        for name, param in model.named_parameters():
            if name.endswith("layer_scale"):
                param.copy_(torch.rand(param.shape, generator=gen) * 0.5 + 0.25)


def build_pair(name: str, kwargs: dict, perturb: bool = True) -> tuple:
    """(convscope model, torchvision model) with the same weights, both in eval mode."""
    theirs_fn, ours_fn = _builders(name)
    torch.manual_seed(0)
    theirs = theirs_fn(**kwargs)
    if perturb:
        _perturb(theirs)
    with _skip_init():
        ours = ours_fn(**kwargs)
    result = ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    assert result.missing_keys == result.unexpected_keys == []
    return ours.eval(), theirs.eval()


def rel_err(got, want) -> float:
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-300))


def _input(shape, dtype=np.float32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def assert_eval_outputs_match(ours, theirs, shape) -> None:
    x = _input(shape)
    with torch.no_grad():
        want = theirs(torch.from_numpy(x)).numpy()
    with cs.no_grad():
        fused = ours(cs.tensor(x)).numpy()
    plain = ours(cs.tensor(x)).numpy()  # recording a graph: every layer on its own
    for got in (fused, plain):
        assert got.shape == want.shape and got.dtype == np.float32
        assert rel_err(got, want) <= 1e-4
        np.testing.assert_array_equal(got.argmax(1), want.argmax(1))


# ------------------------------------------------------------------ the architectures
@pytest.fixture(scope="module", params=list(ARCHS))
def pair(request):
    """One (ours, theirs, small input shape, name) per architecture, shared by the tests below
    (pytest runs all tests of one architecture before building the next)."""
    name = request.param
    shape, kwargs = ARCHS[name]
    ours, theirs = build_pair(name, kwargs)
    yield ours, theirs, shape, name


def test_state_dict_modules_and_repr_match(pair):
    ours, theirs, _, _ = pair
    mine, want = ours.state_dict(), theirs.state_dict()
    assert list(mine) == list(want)
    assert [(v.shape, v.dtype) for v in mine.values()] == [
        (tuple(v.shape), v.numpy().dtype) for v in want.values()
    ]
    assert [(n, type(m).__name__) for n, m in ours.named_modules()] == [
        (n, type(m).__name__) for n, m in theirs.named_modules()
    ]
    assert repr(ours) == repr(theirs)


def test_eval_outputs_match(pair):
    ours, theirs, shape, _ = pair
    assert_eval_outputs_match(ours, theirs, shape)


def test_batch_parallel_outputs_match(pair, batch_split_runs):
    """Eval-mode inference cut into shares of the batch (one per thread) gives torchvision's
    outputs: every architecture declares that its samples are independent."""
    ours, theirs, shape, _ = pair
    shape = (4, *shape[1:])
    x = _input(shape)
    with torch.no_grad():
        want = theirs(torch.from_numpy(x)).numpy()
    with cs.num_threads(2), cs.no_grad():
        got = ours(cs.tensor(x)).numpy()
    assert batch_split_runs == [shape]
    assert got.shape == want.shape and got.dtype == np.float32
    assert rel_err(got, want) <= 1e-4


def test_summary_matches_torchinfo(pair):
    torchinfo = pytest.importorskip("torchinfo")
    ours, theirs, _, name = pair
    size = SUMMARY_INPUT.get(name, (1, 3, 224, 224))
    want = torchinfo.summary(theirs, size, verbose=0)
    got = cs.summary(ours, size)
    assert (got.total_params, got.trainable_params, got.total_mult_adds) == (
        want.total_params,
        want.trainable_params,
        want.total_mult_adds,
    )


@pytest.mark.parametrize(
    ("builder", "shape", "kwargs"), [v[1:] for v in VARIANTS], ids=[v[0] for v in VARIANTS]
)
def test_variants_match(builder, shape, kwargs):
    ours, theirs = build_pair(builder, kwargs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert repr(ours) == repr(theirs)
    assert_eval_outputs_match(ours, theirs, shape)


@pytest.mark.parametrize(
    ("name", "shape"), [("resnet18", (1, 3, 224, 224)), ("mobilenet_v2", (1, 3, 96, 96))]
)
def test_torch_save_file_loads_strictly(tmp_path, name, shape):
    """The user's path: ``torch.save(state_dict)``, then ``cs.load_torch`` without torch."""
    theirs_fn, ours_fn = _builders(name)
    torch.manual_seed(0)
    theirs = theirs_fn()
    _perturb(theirs)
    torch.save(theirs.eval().state_dict(), tmp_path / f"{name}.pth")
    ours = ours_fn()
    ours.load_state_dict(cs.load_torch(tmp_path / f"{name}.pth"))  # strict
    assert_eval_outputs_match(ours.eval(), theirs, shape)


# ------------------------------------------------------------------ training
@pytest.mark.parametrize(("name", "kwargs"), [("resnet18", {}), ("mobilenet_v2", {"dropout": 0.0})])
def test_training_step_matches_torch_float64(name, kwargs):
    ours, theirs = build_pair(name, kwargs)
    ours.double().train()
    theirs.double().train()
    x = _input((2, 3, 64, 64), np.float64)
    weights = _input((2, 1000), np.float64, seed=1)
    out_t = theirs(torch.from_numpy(x))
    (out_t * torch.from_numpy(weights)).sum().backward()
    out = ours(cs.tensor(x))
    (out * cs.tensor(weights)).sum().backward()
    assert out.dtype == np.float64
    assert rel_err(out.numpy(), out_t.detach().numpy()) <= 1e-10
    grads = {key: p.grad.numpy() for key, p in theirs.named_parameters()}
    # a few gradients are zero but for rounding (a BatchNorm bias before a 1x1 convolution
    # and a training-mode BatchNorm): relative to the largest gradient there
    floor = 1e-6 * max(np.abs(g).max() for g in grads.values())
    for key, param in ours.named_parameters():
        got, want = param.grad.numpy(), grads[key]
        assert np.abs(got - want).max() <= 1e-8 * max(np.abs(want).max(), floor), key
    buffers = dict(theirs.named_buffers())
    for key, buf in ours.named_buffers():
        assert buf.dtype == buffers[key].numpy().dtype
        assert rel_err(buf.numpy(), buffers[key].numpy()) <= 1e-10, key


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("efficientnet_b0", {"stochastic_depth_prob": 0.0, "dropout": 0.0, "num_classes": 10}),
        ("convnext_tiny", {"stochastic_depth_prob": 0.0, "num_classes": 10}),
    ],
)
def test_training_mode_without_stochastic_depth_matches_torch(name, kwargs):
    ours, theirs = build_pair(name, kwargs)
    ours.train()
    theirs.train()
    x = _input((2, 3, 64, 64))
    want = theirs(torch.from_numpy(x)).detach().numpy()
    got = ours(cs.tensor(x)).numpy()
    assert rel_err(got, want) <= 1e-4
    if name == "convnext_tiny":  # no BatchNorm: training mode changes nothing at p = 0
        with cs.no_grad():
            np.testing.assert_allclose(ours.eval()(cs.tensor(x)).numpy(), got, rtol=1e-5)


@pytest.mark.parametrize(
    ("name", "kwargs", "size", "lr", "steps"),
    [
        ("efficientnet_b0", {"num_classes": 3, "dropout": 0.0}, 64, 1e-4, 5),
        (
            "convnext_tiny",
            {"num_classes": 3, "layer_scale": 0.1, "stochastic_depth_prob": 0.5},
            32,
            1e-3,
            3,
        ),
    ],
)
def test_stochastic_depth_trains(name, kwargs, size, lr, steps):
    cs.manual_seed(0)
    model = models.get_model(name, **kwargs).train()
    x = cs.tensor(_input((4, 3, size, size)))
    labels = cs.tensor(np.array([0, 1, 2, 1]))
    loss_fn = cs.nn.CrossEntropyLoss()

    def loss_with_fixed_draws() -> float:
        cs.manual_seed(123)  # the same branches dropped at each measurement
        with cs.no_grad():
            return loss_fn(model(x), labels).item()

    # branches dropped at random: two training-mode passes differ (dropout is off)
    first, second = model(x).numpy(), model(x).numpy()
    assert rel_err(first, second) > 1e-4
    with cs.no_grad():
        model.eval()
        assert rel_err(model(x).numpy(), model(x).numpy()) == 0.0
    model.train()
    before = loss_with_fixed_draws()
    opt = cs.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    for _ in range(steps):
        opt.zero_grad()
        loss_fn(model(x), labels).backward()
        opt.step()
    assert loss_with_fixed_draws() < 0.5 * before


# ------------------------------------------------------------------ stochastic depth
def test_stochastic_depth_layer_as_torchvision():
    ops = _torchvision().ops
    assert repr(models.StochasticDepth(0.1, "row")) == repr(ops.StochasticDepth(0.1, "row"))
    for p, mode in [(-0.1, "row"), (1.5, "batch"), (0.5, "column")]:
        with pytest.raises(ValueError) as theirs:
            ops.stochastic_depth(torch.ones(2, 2), p, mode)
        with pytest.raises(ValueError, match=str(theirs.value).replace("(", r"\(")):
            models.stochastic_depth(cs.ones(2, 2), p, mode)


def test_stochastic_depth_draws():
    x = cs.ones(4000, 3)
    layer = models.StochasticDepth(0.3, "row")
    assert layer.eval()(x) is x
    assert models.stochastic_depth(x, 0.0, "row") is x
    cs.manual_seed(0)
    rows = layer.train()(x).numpy()
    assert set(np.unique(rows)) == {0.0, np.float32(1 / 0.7)}
    assert (rows == rows[:, :1]).all()  # whole rows
    assert abs((rows[:, 0] == 0).mean() - 0.3) < 0.03
    batches = [models.stochastic_depth(x, 0.5, "batch").numpy() for _ in range(40)]
    assert all(len(np.unique(b)) == 1 for b in batches)  # all or nothing
    assert {float(b[0, 0]) for b in batches} == {0.0, 2.0}
    assert (models.stochastic_depth(x, 1.0, "row").numpy() == 0).all()
    g = cs.tensor(np.ones((6, 2)), requires_grad=True)
    out = models.stochastic_depth(g, 0.5, "row")
    out.sum().backward()
    np.testing.assert_array_equal(g.grad.numpy(), out.numpy())  # d(x * noise)/dx = noise


# ------------------------------------------------------------------ initialisation
@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("resnet18", {"zero_init_residual": True}),
        ("mobilenet_v3_small", {}),
        ("efficientnet_b0", {}),
        ("mc3_18", {}),
    ],
)
def test_default_init_draws_torchvisions_values(name, kwargs):
    """Same seed, same weights: the layers' own initialisation then torchvision's, drawn in
    the same order from PyTorch's stream (normal draws agree to ~1e-6)."""
    theirs_fn, ours_fn = _builders(name)
    torch.manual_seed(5)
    want = theirs_fn(**kwargs).state_dict()
    cs.manual_seed(5)
    got = ours_fn(**kwargs).state_dict()
    for key, value in got.items():
        assert rel_err(value.numpy(), want[key].numpy()) <= 1e-5, key


def test_convnext_init():
    cs.manual_seed(0)
    setting = [models.convnext.CNBlockConfig(16, 32, 2), models.convnext.CNBlockConfig(32, None, 1)]
    model = models.ConvNeXt(setting, num_classes=5)
    for name, module in model.named_modules():
        if isinstance(module, cs.nn.Conv2d | cs.nn.Linear):
            w = module.weight.numpy()
            assert abs(w.std() - 0.02) < 0.1 * 0.02 or w.size < 500, name
            assert (module.bias.numpy() == 0).all()
    scales = [p.numpy() for n, p in model.named_parameters() if n.endswith("layer_scale")]
    assert len(scales) == 3 and all(
        s.shape[1:] == (1, 1) and (s == np.float32(1e-6)).all() for s in scales
    )
    probs = [
        b.stochastic_depth.p for b in model.modules() if isinstance(b, models.convnext.CNBlock)
    ]
    assert probs == [0.0, 0.0, 0.0]


# ------------------------------------------------------------------ builders and registry
def test_weights_are_refused_with_a_hint():
    with pytest.raises(ValueError, match=r"does not download weights.*cs\.load_torch"):
        models.resnet18(weights="IMAGENET1K_V1")
    with pytest.raises(ValueError, match="mobilenet_v2"):
        models.get_model("mobilenet_v2", weights="DEFAULT")
    with pytest.raises(ValueError, match="r3d_18"):
        models.video.r3d_18(pretrained=True)
    assert models.resnet18(pretrained=False, progress=False, num_classes=3).fc.out_features == 3


def test_registry_matches_torchvision():
    tv = _torchvision()
    names = models.list_models()
    assert set(ARCHS) | {v[1] for v in VARIANTS} <= set(names)
    assert set(names) <= set(tv.models.list_models())
    assert models.list_models(module=models.video) == ["mc3_18", "r2plus1d_18", "r3d_18"]
    assert models.list_models(include="vgg1*", exclude="*_bn") == [
        "vgg11",
        "vgg13",
        "vgg16",
        "vgg19",
    ]
    assert models.get_model_builder("ResNet18") is models.resnet18
    with pytest.raises(ValueError, match="Unknown model nope"):
        models.get_model("nope")
    with pytest.raises(ValueError, match="expected value 32 but got 8"):
        models.resnext50_32x4d(groups=8)
    assert isinstance(cs.models.get_model("r3d_18", num_classes=4), models.video.VideoResNet)


def test_block_helpers():
    assert [models._blocks._make_divisible(v, 8) for v in (3, 12, 20, 100.5)] == [8, 16, 24, 104]
    with pytest.raises(ValueError, match="BasicBlock only supports groups=1"):
        models.resnet18(groups=2)
    with pytest.raises(ValueError, match="replace_stride_with_dilation should be None"):
        models.resnet50(replace_stride_with_dilation=[True])
    with pytest.warns(UserWarning, match="Don't use ConvNormActivation directly"):
        _blocks.ConvNormActivation(1, 1)
