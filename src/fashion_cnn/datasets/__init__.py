"""Custom Kedro datasets of the project. kedro-datasets' own (``JSONDataset``, ``CSVDataset``, ...,
with whole-file saves) are imported on first use: pandas and matplotlib are slow to import, and most
CLI commands never need them. ``KerasModelDataset`` imports Keras only to load or save a model."""

from __future__ import annotations

import importlib
from typing import Any

from fashion_cnn.datasets.idx import FashionMNISTDataset
from fashion_cnn.datasets.keras_model_dataset import KerasModelDataset
from fashion_cnn.datasets.model_inputs_dataset import ModelInputsDataset, ReadOnlyArrays

_FILE_DATASETS = ("CSVDataset", "JSONDataset", "MatplotlibDataset", "OptionalPartitionedDataset", "TextDataset")

__all__ = ["FashionMNISTDataset", "KerasModelDataset", "ModelInputsDataset", "ReadOnlyArrays", *_FILE_DATASETS]


def __getattr__(name: str) -> Any:
    if name in _FILE_DATASETS:
        return getattr(importlib.import_module("fashion_cnn.datasets.file_datasets"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
