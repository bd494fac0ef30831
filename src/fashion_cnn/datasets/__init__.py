"""Custom Kedro datasets of the project."""

from fashion_cnn.datasets.fashion_mnist_dataset import FashionMNISTDataset

__all__ = ["FashionMNISTDataset"]
