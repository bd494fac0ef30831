"""kedro-datasets' file datasets, with saves that appear whole or not at all; those that later nodes
read also hand what they saved to the same run's later loads (``fsspec_file.KeepSavedMixin``). And a
partitioned dataset that may have no partitions yet (the models' novelty references)."""

from __future__ import annotations

from typing import Any

from kedro_datasets.json import JSONDataset as _JSONDataset
from kedro_datasets.matplotlib import MatplotlibDataset as _MatplotlibDataset
from kedro_datasets.pandas import CSVDataset as _CSVDataset
from kedro_datasets.partitions import PartitionedDataset
from kedro_datasets.text import TextDataset as _TextDataset

from fashion_cnn.datasets.fsspec_file import KeepSavedMixin
from fashion_cnn.datasets.whole_files import WholeFileMixin


class JSONDataset(KeepSavedMixin, WholeFileMixin, _JSONDataset):
    """``json.JSONDataset``, whole or nothing."""


class CSVDataset(KeepSavedMixin, WholeFileMixin, _CSVDataset):
    """``pandas.CSVDataset``, whole or nothing."""


class TextDataset(KeepSavedMixin, WholeFileMixin, _TextDataset):
    """``text.TextDataset``, whole or nothing."""


class MatplotlibDataset(WholeFileMixin, _MatplotlibDataset):
    """``matplotlib.MatplotlibDataset`` (one figure per file), whole or nothing."""


class OptionalPartitionedDataset(PartitionedDataset):
    """``partitions.PartitionedDataset`` that loads as no partitions, where kedro-datasets' own fails."""

    def load(self) -> dict[str, Any]:
        return super().load() if self.exists() else {}
