"""kedro-datasets' file datasets, with saves that appear whole or not at all.

Those that later nodes read (JSON, CSV, text) also hand what they saved to the same run's later
loads, so a node never reads a file that another run has saved meanwhile.
"""

from __future__ import annotations

from kedro_datasets.json import JSONDataset as _JSONDataset
from kedro_datasets.matplotlib import MatplotlibDataset as _MatplotlibDataset
from kedro_datasets.pandas import CSVDataset as _CSVDataset
from kedro_datasets.text import TextDataset as _TextDataset

from fashion_cnn.datasets.keep_saved import KeepSavedMixin
from fashion_cnn.datasets.whole_files import WholeFileMixin


class JSONDataset(KeepSavedMixin, WholeFileMixin, _JSONDataset):
    """``json.JSONDataset``, whole or nothing."""


class CSVDataset(KeepSavedMixin, WholeFileMixin, _CSVDataset):
    """``pandas.CSVDataset``, whole or nothing."""


class TextDataset(KeepSavedMixin, WholeFileMixin, _TextDataset):
    """``text.TextDataset``, whole or nothing."""


class MatplotlibDataset(WholeFileMixin, _MatplotlibDataset):
    """``matplotlib.MatplotlibDataset`` (one figure per file), whole or nothing."""
