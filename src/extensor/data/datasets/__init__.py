"""Built-in datasets: `Digits` (bundled), `Spirals` (synthetic), and MNIST-format IDX files on disk."""

from extensor.data.datasets.digits import Digits
from extensor.data.datasets.idx import read_idx, write_idx
from extensor.data.datasets.mnist import MNIST, FashionMNIST, IDXDataset
from extensor.data.datasets.spirals import Spirals

__all__ = ["MNIST", "Digits", "FashionMNIST", "IDXDataset", "Spirals", "read_idx", "write_idx"]
