"""Built-in datasets: `Digits` and `TinyShakespeare` (bundled), `Spirals` (synthetic), and MNIST-format
IDX files on disk."""

from extensor.data.datasets.digits import Digits
from extensor.data.datasets.idx import read_idx, write_idx
from extensor.data.datasets.mnist import MNIST, FashionMNIST, IDXDataset
from extensor.data.datasets.shakespeare import CharVocabulary, TinyShakespeare
from extensor.data.datasets.spirals import Spirals

__all__ = [
    "MNIST",
    "CharVocabulary",
    "Digits",
    "FashionMNIST",
    "IDXDataset",
    "Spirals",
    "TinyShakespeare",
    "read_idx",
    "write_idx",
]
