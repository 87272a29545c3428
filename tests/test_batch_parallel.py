"""Batch-parallel inference (``convscope.nn.batch_parallel``): when a network may be cut into
shares of its batch, that the shares run on separate threads with one thread each, that the
joined output equals the unsplit one, that errors still name the whole input, and how the
timed choice between the two ways is made."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import convscope as cs
import convscope.nn as nn
from convscope.nn import batch_parallel
from convscope.ops import threads


@pytest.fixture
def always(batch_split_runs):
    """Split whenever allowed, however small the input; the shapes that were split."""
    return batch_split_runs


def small_net(*extra: nn.Module) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.MaxPool2d(2),
        *extra,
    ).eval()


def x4() -> cs.Tensor:
    return cs.tensor(np.random.default_rng(0).standard_normal((4, 3, 16, 16)).astype(np.float32))


class Recorder(nn.Module):
    """Notes the batch, thread and thread count each call sees."""

    independent_samples = True

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.seen: list[tuple] = []

    def forward(self, x):
        self.seen.append((x.shape[0], threading.get_ident(), cs.get_num_threads()))
        return self.conv(x)


def test_shares_run_on_their_own_threads_with_one_thread_each(always):
    net = Recorder().eval()
    x = x4()
    with cs.num_threads(2), cs.no_grad():
        got = net(x)
    assert always == [(4, 3, 16, 16)]
    assert sorted(b for b, _, _ in net.seen) == [2, 2]
    assert len({t for _, t, _ in net.seen}) == 2
    assert [n for _, _, n in net.seen] == [1, 1]
    assert cs.get_num_threads() == 2 and not threads.sharing()
    with cs.num_threads(1), cs.no_grad():
        want = net(x)
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-6)
    assert got.dtype == want.dtype and got.shape == (4, 4, 14, 14)


@pytest.mark.parametrize("dtype", [np.float64, np.int64])
def test_split_output_equals_unsplit(always, dtype):
    net = nn.Sequential(nn.Conv2d(3, 5, 3, stride=2), nn.ReLU(), nn.Flatten()).eval()
    if dtype == np.int64:
        for p in net.parameters():
            p.data = np.round(p.data * 10).astype(dtype)
        x = cs.tensor(np.arange(6 * 3 * 9 * 9).reshape(6, 3, 9, 9) % 7)
    else:
        net = net.double()
        x = cs.tensor(np.random.default_rng(1).standard_normal((6, 3, 9, 9)))
    with cs.num_threads(3), cs.no_grad():
        got = net(x)
    assert always == [(6, 3, 9, 9)]
    with cs.num_threads(1), cs.no_grad():
        want = net(x)
    assert got.dtype == want.dtype == dtype
    if dtype == np.int64:
        np.testing.assert_array_equal(got.numpy(), want.numpy())
    else:
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-12, atol=1e-12)


def test_tuple_outputs_are_joined(always):
    class TwoHeads(nn.Module):
        independent_samples = True

        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Conv2d(3, 2, 1), nn.Conv2d(3, 1, 3)

        def forward(self, x):
            return self.a(x), self.b(x)

    net = TwoHeads().eval()
    with cs.num_threads(2), cs.no_grad():
        first, second = net(x4())
    assert always and first.shape == (4, 2, 16, 16) and second.shape == (4, 1, 14, 14)


def test_error_names_the_whole_input(always):
    net = small_net()
    bad = cs.zeros(4, 5, 16, 16)
    with cs.num_threads(1), cs.no_grad(), pytest.raises(RuntimeError) as unsplit:
        net(bad)
    with cs.num_threads(2), cs.no_grad(), pytest.raises(RuntimeError) as split:
        net(bad)
    assert always == [(4, 5, 16, 16)]
    assert str(split.value) == str(unsplit.value) and "[4, 5, 16, 16]" in str(split.value)


def _not_splittable_cases():
    class Mixer(nn.Module):  # no declaration: may mix samples
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 1)

        def forward(self, x):
            return self.conv(x) - self.conv(x).mean(0)

    class OwnForward(nn.Conv2d):  # a declared class's subclass with its own forward
        def forward(self, input):
            return super().forward(input) - super().forward(input).mean(0)

    no_stats = nn.BatchNorm2d(3, track_running_stats=False)
    hooked = small_net()
    hooked[0].register_forward_hook(lambda m, i, o: None)
    wrapped = small_net()
    wrapped[2].forward = lambda x: x
    return {
        "training": (small_net().train(), x4()),
        "one sample per thread is not there": (small_net(), x4()[:1]),
        "unbatched input": (nn.Sequential(nn.Conv2d(3, 2, 3), nn.ReLU()).eval(), x4()[0]),
        "undeclared user module": (Mixer().eval(), x4()),
        "subclass with its own forward": (nn.Sequential(OwnForward(3, 3, 1)).eval(), x4()),
        "batch statistics in eval": (nn.Sequential(nn.Conv2d(3, 3, 1), no_stats).eval(), x4()),
        "softmax over the batch": (small_net(nn.Softmax(dim=0)), x4()),
        "flatten from the batch": (small_net(nn.Flatten(0)), x4()),
        "hook": (hooked, x4()),
        "instance forward": (wrapped, x4()),
        "mixed convolution ranks": (
            nn.Sequential(nn.Conv2d(3, 2, 1), nn.Flatten(2), nn.Conv1d(2, 2, 1)).eval(),
            x4(),
        ),
        "a single layer": (nn.Conv2d(3, 2, 1).eval(), x4()),
    }


@pytest.mark.parametrize("case", list(_not_splittable_cases()))
def test_not_split_when_something_could_tell(always, case):
    net, x = _not_splittable_cases()[case]
    with cs.num_threads(2), cs.no_grad():
        net(x)
    assert always == []
    with cs.no_grad():
        assert not batch_parallel.splittable(net, x, threads=2)


def test_not_split_while_a_graph_is_recorded(always):
    net = small_net()
    with cs.num_threads(2):
        out = net(x4())  # parameters require gradients: a graph is recorded
        assert out.requires_grad and always == []
        for p in net.parameters():
            p.requires_grad_(False)
        net(x4())  # nothing to record: may split
    assert always == [(4, 3, 16, 16)]


def test_declared_conditions(always):
    with cs.no_grad():
        assert batch_parallel.splittable(small_net(nn.Softmax(dim=1), nn.Flatten(1)), x4(), 2)
        assert not batch_parallel.splittable(small_net(), x4(), 1)
    assert nn.Unflatten(1, (2, 4)).independent_samples
    assert not nn.Unflatten(0, (2, 2)).independent_samples
    assert not nn.MSELoss().independent_samples


def test_off_never_splits(always, monkeypatch):
    monkeypatch.setattr(batch_parallel, "MODE", "off")
    with cs.num_threads(2), cs.no_grad():
        small_net()(x4())
    assert always == []


def test_auto_times_both_ways_then_keeps_the_faster(monkeypatch):
    monkeypatch.setattr(batch_parallel, "SPLIT_FROM_ELEMENTS", 0)
    ways = []
    real = batch_parallel._run_split
    monkeypatch.setattr(batch_parallel, "_run_split", lambda m, x: ways.append(1) or real(m, x))
    released = []
    monkeypatch.setattr(batch_parallel.allocator, "release", lambda: released.append(len(ways)))
    net, x = small_net(), x4()
    calls = 2 * (batch_parallel.TIMED_CALLS + 1)
    with cs.num_threads(2), cs.no_grad():
        for _ in range(calls + 3):
            net(x)
    trial = batch_parallel._trials[net][(x.shape, x.dtype, 2)]
    assert trial.split is not None and all(np.isfinite(trial.best))
    # what the unsplit calls freed goes back to the system once, before the first split call
    assert released == [0]
    # unsplit first, then split, then the kept way
    assert len(ways) == calls // 2 + (3 if trial.split else 0)


@pytest.mark.parametrize(
    ("unsplit", "split", "kept"), [(1.0, 0.5, True), (1.0, 0.95, False), (0.5, 1.0, False)]
)
def test_trial_choice(unsplit, split, kept):
    trial = batch_parallel._Trial()
    warm = batch_parallel.TIMED_CALLS + 1
    for i in range(2 * warm):
        way = trial.next_way()
        assert way == (i >= warm)
        # warm-up calls are slow and must not count
        trial.record(way, 100.0 if i % warm == 0 else (split if way else unsplit))
    assert trial.split is kept and trial.next_way() is kept


def test_thread_settings_made_inside_a_share_restore_the_global_count():
    def inside(_):
        with cs.num_threads(3):
            pass
        return cs.get_num_threads()

    with cs.num_threads(2):
        assert threads.parallel_map(inside, range(2)) == [1, 1]
        assert cs.get_num_threads() == 2


def test_shares_know_how_many_run_side_by_side():
    assert threads.concurrent_shares() == 1
    with cs.num_threads(3):
        seen = threads.parallel_map(lambda _: threads.concurrent_shares(), range(3))
    assert seen == [3, 3, 3] and threads.concurrent_shares() == 1


def test_split_holds_no_more_memory_at_once(always):
    """The shares divide the working sets sized for one thread (unfold's and Winograd's tiles)
    among them: the traced peak of a split forward stays at the unsplit one's."""
    import tracemalloc

    from convscope import models

    net = models.resnet18(num_classes=10).eval()
    x = cs.tensor(np.random.default_rng(0).standard_normal((4, 3, 320, 320)).astype(np.float32))

    def peak(split: bool) -> int:
        batch_parallel.MODE = "on" if split else "off"
        with cs.num_threads(2), cs.no_grad():
            net(x)  # plans and compiled code first
            tracemalloc.start()
            try:
                net(x)
                return tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()

    unsplit, split = peak(False), peak(True)
    assert always == [(4, 3, 320, 320)] * 2
    assert split <= 1.15 * unsplit, (split, unsplit)
