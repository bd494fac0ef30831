"""``.keras`` model files: read in Keras's safe mode, written whole, without TensorFlow at import.

kedro-datasets' ``TensorFlowModelDataset`` imports TensorFlow with its module and goes through a
``/tmp/kedro_tensorflow_tmp*`` folder both ways (a killed save left it behind, and a failed load
named that temporary file). Plain catalog entries are instantiated whenever the catalog is
(kedro-mlflow does so in every session), and a partitioned dataset imports its partition class
then: these classes import Keras only to load or save a model, so commands that never use a model
stay free of TensorFlow, and a local file is read and written in place.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from kedro.io import DatasetError
from kedro.io.core import Version

from fashion_cnn.datasets.fsspec_file import FsspecFileDataset
from fashion_cnn.datasets.keep_saved import KeepSavedMixin
from fashion_cnn.datasets.whole_files import WholeFileMixin


class KerasFile(FsspecFileDataset[Any, Any]):
    """One ``.keras`` file, read in Keras's safe mode (no code from the file runs). Local files are
    read and written in place; remote ones go through a temporary local copy and one upload."""

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
        super().__init__(filepath=filepath, version=version, credentials=credentials, fs_args=fs_args, metadata=metadata)
        self._load_args = {"safe_mode": True, **(load_args or {})}
        self._save_args = dict(save_args or {})

    def _describe(self) -> dict[str, Any]:
        return {**super()._describe(), "load_args": self._load_args, "save_args": self._save_args}

    def load(self) -> Any:
        import keras

        path = self._load_path()
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

        path = self._save_path()
        if self._protocol == "file":
            keras.saving.save_model(data, path, **self._save_args)
        else:
            with tempfile.TemporaryDirectory(prefix="fashion_cnn_keras_") as folder:
                local = str(Path(folder) / "model.keras")
                keras.saving.save_model(data, local, **self._save_args)
                self._fs.put(local, path)
        self._invalidate_cache()


class KerasModelDataset(KeepSavedMixin, WholeFileMixin, KerasFile):
    """Versioned ``.keras`` models that appear whole or not at all, load in Keras's safe mode, and
    whose trained model object goes straight to the same run's later nodes (evaluation, figures)
    instead of being read back. Loads of any other version, and loads in other processes
    (ParallelRunner workers, a later session), read the file.

    Example catalog entry::

        "{variant}.model":
          type: fashion_cnn.datasets.KerasModelDataset
          filepath: data/06_models/{variant}/model.keras
          versioned: true
    """

    def _handover(self, data: Any) -> Any:
        return data  # the model itself: nodes only predict with it
