"""A ``.keras`` model file whose dataset class can be imported without importing TensorFlow.

:mod:`fashion_cnn.datasets.keras_model_dataset` builds on kedro-datasets' ``TensorFlowModelDataset``,
whose module imports TensorFlow. That is fine behind a dataset factory (``{variant}.model``), which
is only instantiated when a run uses it; but plain catalog entries are instantiated whenever the
catalog is (kedro-mlflow does so in every session), and a partitioned dataset imports its
partition class then. The datasets here import Keras only to load or save a model, so
``kedro run --pipelines data_processing`` and ``kedro catalog`` commands stay free of TensorFlow.
"""

from __future__ import annotations

import tempfile
from copy import deepcopy
from pathlib import Path, PurePosixPath
from typing import Any

import fsspec
from kedro.io import DatasetError
from kedro.io.core import AbstractVersionedDataset, Version, get_filepath_str, get_protocol_and_path

from fashion_cnn.datasets.keep_saved import KeepSavedMixin
from fashion_cnn.datasets.whole_files import WholeFileMixin


class KerasFile(AbstractVersionedDataset[Any, Any]):
    """One ``.keras`` file, read in Keras's safe mode (no code from the file runs). Local files are
    read and written in place; remote ones go through a temporary local copy."""

    def __init__(
        self,
        *,
        filepath: str,
        version: Version | None = None,
        load_args: dict[str, Any] | None = None,
        save_args: dict[str, Any] | None = None,
        credentials: dict[str, Any] | None = None,
        fs_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        protocol, path = get_protocol_and_path(filepath, version)
        fs_args = deepcopy(fs_args) or {}
        if protocol == "file":
            fs_args.setdefault("auto_mkdir", True)
        self._protocol = protocol
        self._fs = fsspec.filesystem(protocol, **(deepcopy(credentials) or {}), **fs_args)
        self._load_args = {"safe_mode": True, **(load_args or {})}
        self._save_args = dict(save_args or {})
        self.metadata = metadata
        super().__init__(filepath=PurePosixPath(path), version=version, exists_function=self._fs.exists,
                         glob_function=self._fs.glob)

    def _describe(self) -> dict[str, Any]:
        return {"filepath": self._filepath, "protocol": self._protocol, "version": self._version,
                "load_args": self._load_args}

    def load(self) -> Any:
        import keras

        path = get_filepath_str(self._get_load_path(), self._protocol)
        try:
            if self._protocol == "file":
                return keras.saving.load_model(path, **self._load_args)
            with tempfile.TemporaryDirectory(prefix="fashion_cnn_keras_") as folder:
                local = str(Path(folder) / "model.keras")
                self._fs.get(path, local)
                return keras.saving.load_model(local, **self._load_args)
        except FileNotFoundError:
            raise
        except Exception as exc:  # Keras raises many types for a damaged or foreign file
            raise DatasetError(f"{path} is not a loadable Keras model: {exc}") from exc

    def save(self, data: Any) -> None:
        import keras

        path = get_filepath_str(self._get_save_path(), self._protocol)
        if self._protocol == "file":
            keras.saving.save_model(data, path, **self._save_args)
        else:
            with tempfile.TemporaryDirectory(prefix="fashion_cnn_keras_") as folder:
                local = str(Path(folder) / "model.keras")
                keras.saving.save_model(data, local, **self._save_args)
                self._fs.put(local, path)
        self._fs.invalidate_cache(get_filepath_str(self._filepath, self._protocol))

    def _exists(self) -> bool:
        try:
            path = get_filepath_str(self._get_load_path(), self._protocol)
        except DatasetError:
            return False
        return self._fs.exists(path)


class KerasFileDataset(KeepSavedMixin, WholeFileMixin, KerasFile):
    """:class:`KerasFile` whose saves are whole or nothing, and whose saved model goes to the same
    run's later nodes instead of being read back.

    Example catalog entry::

        chosen_model:
          type: fashion_cnn.datasets.keras_file.KerasFileDataset
          filepath: data/06_models/predict/model.keras
    """

    def _handover(self, data: Any) -> Any:
        return data  # the model itself: nodes only predict with it
