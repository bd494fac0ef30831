"""Custom Kedro datasets of the project."""

from fashion_cnn.datasets.fashion_mnist_dataset import FashionMNISTDataset
from fashion_cnn.datasets.read_only_arrays import ReadOnlyArrays

__all__ = ["FashionMNISTDataset", "ReadOnlyArrays"]
