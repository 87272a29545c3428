"""Hostile or odd checkpoints: expanded (stride-0) views load as read-only views, not as
copies many times the file's size."""

from __future__ import annotations

import numpy as np
import pytest

import convscope as cs

torch = pytest.importorskip("torch")


def test_expanded_view_stays_a_view(tmp_path):
    path = tmp_path / "expanded.pt"
    torch.save({"w": torch.arange(3.0).reshape(3, 1).expand(3, 2**30)}, path)
    assert path.stat().st_size < 4096
    loaded = cs.load_torch(path)["w"].numpy()  # 3 * 2**30 float32 = 12 GiB if copied
    assert loaded.shape == (3, 2**30) and not loaded.flags.writeable
    assert loaded[2, 123456789] == 2.0 and loaded[0, -1] == 0.0 and loaded[1, 0] == 1.0


def test_ordinary_views_are_copies(tmp_path):
    path = tmp_path / "views.pt"
    base = torch.arange(12.0).reshape(3, 4)
    torch.save({"t": base.t(), "row": base[1]}, path)
    loaded = cs.load_torch(path)
    np.testing.assert_array_equal(loaded["t"].numpy(), base.t().numpy())
    assert loaded["t"].numpy().flags.writeable and loaded["row"].tolist() == [4.0, 5.0, 6.0, 7.0]


def test_state_dict_with_expanded_buffer_loads_into_a_module(tmp_path):
    path = tmp_path / "bn.pt"
    bn = torch.nn.BatchNorm1d(4)
    state = bn.state_dict()
    state["running_var"] = torch.full((1,), 2.0).expand(4)
    torch.save(state, path)
    ours = cs.nn.BatchNorm1d(4)
    ours.load_state_dict(cs.load_torch(path))
    assert ours.running_var.tolist() == [2.0] * 4 and ours.running_var.numpy().flags.writeable
