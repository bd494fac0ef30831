"""Model files, written whole and without TensorFlow at import: ``.keras`` files, read in Keras's safe
mode, and TensorFlow SavedModel folders, for serving without this project's code or Keras.

Not kedro-datasets' ``TensorFlowModelDataset``, which imports TensorFlow with its module (the catalog,
partition classes included, is built in every session) and goes through ``/tmp/kedro_tensorflow_tmp*``
both ways (a killed save left it behind, a failed load named it); these read and write in place."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kedro.io import DatasetError

from fashion_cnn.datasets.fsspec_file import FsspecFileDataset, KeepSavedMixin
from fashion_cnn.datasets.whole_files import WholeFileMixin
from fashion_cnn.model.quiet_import import import_tensorflow


class KerasFile(FsspecFileDataset):
    """One ``.keras`` file, read in Keras's safe mode (no code from the file runs). Remote files go
    through a temporary local copy and one upload."""

    def load(self) -> Any:
        import_tensorflow()  # a notebook's or kedro-viz's first model: without TensorFlow's CUDA probe
        import keras

        source = self._load_path()
        try:
            with self._local_copy(source) as path:
                return keras.saving.load_model(path, safe_mode=True)
        except FileNotFoundError:
            raise
        except Exception as exc:  # Keras raises many types for a damaged or foreign file
            raise DatasetError(f"{source} is not a loadable Keras model: {exc}") from exc

    def save(self, data: Any) -> None:
        with self._local_copy(self._save_path(), upload=True) as path:
            data.save(path)


class KerasModelDataset(KeepSavedMixin, WholeFileMixin, KerasFile):
    """Versioned ``.keras`` models, saved whole or not at all and loaded in safe mode; the trained model
    object goes straight to the same run's later nodes (evaluation, figures) instead of being read back."""

    def _handover(self, data: Any) -> Any:
        return data  # the model itself: nodes only predict with it


class SavedModelFolder(FsspecFileDataset):
    """Saves a Keras model with ``model.export(format="tf_saved_model")``; loads the folder with
    ``tf.saved_model.load`` (a TensorFlow graph, no Python code from the folder runs; call its ``serve``
    signature). Remote folders go through a temporary local copy."""

    def load(self) -> Any:
        import tensorflow as tf

        source = self._load_path()
        with self._local_copy(source) as path:
            if not Path(path, "saved_model.pb").is_file():
                raise DatasetError(f"{source} is not a SavedModel folder (no saved_model.pb in it).")
            try:
                return tf.saved_model.load(path)
            except Exception as exc:  # TensorFlow raises many types for a damaged folder
                raise DatasetError(f"{source} is not a loadable SavedModel: {exc}") from exc

    def save(self, data: Any) -> None:
        if not hasattr(data, "export"):
            raise DatasetError(f"SavedModelDataset saves Keras models (model.export), got {type(data).__name__}.")
        with self._local_copy(self._save_path(), upload=True) as path:
            data.export(path, format="tf_saved_model", verbose=False)

    def _exists(self) -> bool:
        return self._fs.exists(f"{self._load_path()}/saved_model.pb")


class SavedModelDataset(WholeFileMixin, SavedModelFolder):
    """:class:`SavedModelFolder`, saved whole or not at all (an earlier export there is replaced by two
    renames); ``filepath: .../saved_model/<version number>``, as TensorFlow Serving lays models out."""
