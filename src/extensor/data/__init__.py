"""Data: datasets, samplers, `random_split`, and the `DataLoader` that yields `Batch(input, target)`.

Built-in datasets live in `extensor.data.datasets` (Digits, Spirals, MNIST-format IDX files).
This package depends only on NumPy and `extensor.core`.
"""

from extensor.data.collate import collate
from extensor.data.dataset import Dataset, Subset, TensorDataset
from extensor.data.loader import Batch, DataLoader
from extensor.data.sampler import RandomSampler, Sampler, SequentialSampler, epoch_permutation
from extensor.data.split import random_split

__all__ = [
    "Batch",
    "DataLoader",
    "Dataset",
    "RandomSampler",
    "Sampler",
    "SequentialSampler",
    "Subset",
    "TensorDataset",
    "collate",
    "epoch_permutation",
    "random_split",
]
