"""Custom Kedro datasets of the project."""

from fashion_cnn.datasets.fashion_mnist_dataset import FashionMNISTDataset
from fashion_cnn.datasets.kept_pickle_dataset import KeptPickleDataset
from fashion_cnn.datasets.read_only_arrays import ReadOnlyArrays

__all__ = ["FashionMNISTDataset", "KeptPickleDataset", "ReadOnlyArrays"]
