"""Checkpoints: convscope's own format, safetensors, and PyTorch ``.pt`` files - all without pickle.

* :func:`save` / :func:`load` (also ``cs.save`` / ``cs.load``): nested dicts, lists and tuples
  of tensors, NumPy arrays, numbers and strings, in a zip of JSON and raw little-endian array
  bytes (format in :mod:`convscope.io.checkpoint`).
* :func:`save_safetensors` / :func:`load_safetensors`: flat name -> tensor files in the
  safetensors format.
* :func:`load_torch` (also ``cs.load_torch``): files written by ``torch.save``, read without
  torch and without running anything from the file (:mod:`convscope.io.torch_pt`).

Loading never executes code from a file.  A file that cannot be loaded raises
:class:`CheckpointError` (a ``RuntimeError``) naming the file and the problem; a PyTorch pickle
that asks for anything but tensors and plain containers raises :class:`UnsafeCheckpointError`
(a ``CheckpointError`` and a ``pickle.UnpicklingError``).

Loading is also bounded by the file's size, so that a small crafted file can neither crash
Python nor exhaust memory or time: array data allocated is at most ``max(64 MiB, 16 x file
size)`` bytes (zip bombs, one storage viewed many times), containers nest at most 1000 deep,
dicts and sets take at most 32 keys sharing a hash; anything beyond is a ``CheckpointError``.

>>> import io
>>> import convscope as cs
>>> buffer = io.BytesIO()
>>> cs.save({"step": 3, "weights": [cs.zeros(2), cs.ones(1)]}, buffer)
>>> cs.load(buffer)
{'step': 3, 'weights': [tensor([0., 0.]), tensor([1.])]}
"""

from ._common import CheckpointError, UnsafeCheckpointError
from .checkpoint import load, save
from .safetensors import load_safetensors, save_safetensors
from .torch_pt import load_torch

__all__ = [
    "CheckpointError",
    "UnsafeCheckpointError",
    "load",
    "load_safetensors",
    "load_torch",
    "save",
    "save_safetensors",
]
