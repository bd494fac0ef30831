"""``.keras`` model files: read in Keras's safe mode, written whole, without TensorFlow at import.

Not kedro-datasets' ``TensorFlowModelDataset``, which imports TensorFlow with its module (the catalog,
partition classes included, is built in every session) and goes through ``/tmp/kedro_tensorflow_tmp*``
both ways (a killed save left it behind, a failed load named it); these read and write in place."""

from __future__ import annotations

import tempfile
from typing import Any

from kedro.io import DatasetError
from kedro.io.core import Version

from fashion_cnn.datasets.fsspec_file import FsspecFileDataset, KeepSavedMixin
from fashion_cnn.datasets.whole_files import WholeFileMixin
from fashion_cnn.model.quiet_import import import_tensorflow


class KerasFile(FsspecFileDataset[Any, Any]):
    """One ``.keras`` file, read in Keras's safe mode (no code from the file runs). Remote files go
    through a temporary local copy and one upload."""

    def __init__(self, *, filepath: str, version: Version | None = None, load_args: dict[str, Any] | None = None,
                 save_args: dict[str, Any] | None = None, credentials: dict[str, Any] | None = None,
                 fs_args: dict[str, Any] | None = None, metadata: dict[str, Any] | None = None) -> None:
        super().__init__(filepath=filepath, version=version, credentials=credentials, fs_args=fs_args,
                         metadata=metadata)
        self._load_args = {"safe_mode": True, **(load_args or {})}
        self._save_args = dict(save_args or {})

    def _describe(self) -> dict[str, Any]:
        return {**super()._describe(), "load_args": self._load_args, "save_args": self._save_args}

    def load(self) -> Any:
        import_tensorflow()  # a notebook's or kedro-viz's first model: without TensorFlow's CUDA probe
        import keras

        path = self._load_path()
        try:
            if self._protocol == "file":
                return keras.saving.load_model(path, **self._load_args)
            with tempfile.TemporaryDirectory(prefix="fashion_cnn_keras_") as folder:
                self._fs.get(path, f"{folder}/model.keras")
                return keras.saving.load_model(f"{folder}/model.keras", **self._load_args)
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
                keras.saving.save_model(data, f"{folder}/model.keras", **self._save_args)
                self._fs.put(f"{folder}/model.keras", path)
        self._invalidate_cache()


class KerasModelDataset(KeepSavedMixin, WholeFileMixin, KerasFile):
    """Versioned ``.keras`` models, saved whole or not at all and loaded in safe mode; the trained model
    object goes straight to the same run's later nodes (evaluation, figures) instead of being read back."""

    def _handover(self, data: Any) -> Any:
        return data  # the model itself: nodes only predict with it
