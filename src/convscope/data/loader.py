"""``TensorDataset`` and a minimal ``DataLoader`` with PyTorch's names and batching rules.

>>> import convscope as cs
>>> from convscope.data import DataLoader, TensorDataset
>>> data = TensorDataset(cs.arange(10).reshape(5, 2), cs.arange(5))
>>> [tuple(y.tolist()) for _, y in DataLoader(data, batch_size=2)]
[(0, 1), (2, 3), (4,)]
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from ..tensor import Tensor


class Dataset:
    """Anything with ``__len__`` and ``__getitem__`` returning a sample."""

    def __len__(self) -> int:
        raise NotImplementedError

    def __getitem__(self, index: int) -> Any:
        raise NotImplementedError


class TensorDataset(Dataset):
    """Samples are rows of equally long tensors (or arrays): ``dataset[i] = (t[i] for t)``."""

    def __init__(self, *tensors: Any) -> None:
        if not tensors:
            raise ValueError("TensorDataset needs at least one tensor")
        self.tensors = tuple(t if isinstance(t, Tensor) else Tensor(np.asarray(t)) for t in tensors)
        sizes = {t.shape[0] for t in self.tensors}
        if len(sizes) != 1:
            raise ValueError(f"Size mismatch between tensors: first dimensions {sorted(sizes)}")

    def __len__(self) -> int:
        return self.tensors[0].shape[0]

    def __getitem__(self, index: Any) -> tuple[Tensor, ...]:
        return tuple(Tensor(t.data[index]) for t in self.tensors)


class DataLoader:
    """Iterate over a dataset in batches, optionally shuffled with a seeded generator.

    ``TensorDataset`` batches are gathered with one fancy-indexing call per tensor; other
    datasets are collated sample by sample (tuples of arrays/tensors/numbers are stacked).
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int = 1,
        shuffle: bool = False,
        drop_last: bool = False,
        generator: np.random.Generator | int | None = None,
    ) -> None:
        if not isinstance(batch_size, int) or batch_size <= 0:
            raise ValueError(
                f"batch_size should be a positive integer value, but got batch_size={batch_size}"
            )
        self.dataset, self.batch_size = dataset, batch_size
        self.shuffle, self.drop_last = shuffle, drop_last
        self.generator = (
            generator
            if isinstance(generator, np.random.Generator)
            else np.random.default_rng(generator)
        )

    def __len__(self) -> int:
        count = len(self.dataset)
        return count // self.batch_size if self.drop_last else -(-count // self.batch_size)

    def _order(self) -> np.ndarray:
        count = len(self.dataset)
        return self.generator.permutation(count) if self.shuffle else np.arange(count)

    def __iter__(self) -> Iterator[Any]:
        order = self._order()
        for batch in range(len(self)):
            index = order[batch * self.batch_size : (batch + 1) * self.batch_size]
            if isinstance(self.dataset, TensorDataset):
                yield tuple(Tensor(t.data[index]) for t in self.dataset.tensors)
            else:
                yield collate([self.dataset[int(i)] for i in index])


def collate(samples: Sequence[Any]) -> Any:
    """Stack a list of samples (tuples/lists/dicts of tensors, arrays or numbers) into a batch."""
    first = samples[0]
    if isinstance(first, tuple | list):
        return type(first)(collate([s[i] for s in samples]) for i in range(len(first)))
    if isinstance(first, dict):
        return {key: collate([s[key] for s in samples]) for key in first}
    arrays = [s.data if isinstance(s, Tensor) else np.asarray(s) for s in samples]
    return Tensor(np.stack(arrays))
