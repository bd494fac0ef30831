"""Custom Kedro datasets of the project.

``JSONDataset``, ``CSVDataset``, ``TextDataset`` and ``MatplotlibDataset`` are kedro-datasets' own,
with saves that appear whole or not at all (:mod:`fashion_cnn.datasets.whole_files`). They are
imported on first use (pandas and matplotlib are slow to import, and most CLI commands never
need them). ``KerasModelDataset`` imports Keras only when it loads or saves a model.
"""

from __future__ import annotations

import importlib
from typing import Any

from fashion_cnn.datasets.fashion_mnist_dataset import FashionMNISTDataset
from fashion_cnn.datasets.keras_model_dataset import KerasModelDataset
from fashion_cnn.datasets.model_inputs_dataset import ModelInputsDataset
from fashion_cnn.datasets.read_only_arrays import ReadOnlyArrays

_FILE_DATASETS = ("CSVDataset", "JSONDataset", "MatplotlibDataset", "TextDataset")

__all__ = ["FashionMNISTDataset", "KerasModelDataset", "ModelInputsDataset", "ReadOnlyArrays", *_FILE_DATASETS]


def __getattr__(name: str) -> Any:
    if name in _FILE_DATASETS:
        return getattr(importlib.import_module("fashion_cnn.datasets.file_datasets"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
