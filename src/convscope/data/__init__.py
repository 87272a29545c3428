"""Data: ``TensorDataset``, ``DataLoader`` and offline datasets (digits, IDX files)."""

from .datasets import DatasetError, load_digits, load_idx_dataset, read_idx, split
from .loader import DataLoader, Dataset, TensorDataset, collate

__all__ = [
    "DataLoader",
    "Dataset",
    "DatasetError",
    "TensorDataset",
    "collate",
    "load_digits",
    "load_idx_dataset",
    "read_idx",
    "split",
]
