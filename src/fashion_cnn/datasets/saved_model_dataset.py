"""A TensorFlow SavedModel folder, for serving without this project's code or Keras, saved whole as
:mod:`fashion_cnn.datasets.whole_files` saves a file: ``model.export`` writes a temporary folder beside
the target, flushed to disk and then renamed into place."""

from __future__ import annotations

import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

import fsspec
from kedro.io import AbstractDataset, DatasetError
from kedro.io.core import get_filepath_str, get_protocol_and_path

from fashion_cnn.datasets.whole_files import LOCAL_PROTOCOLS, whole_save


class SavedModelDataset(AbstractDataset[Any, Any]):
    """Saves a Keras model with ``model.export(format="tf_saved_model")``; loads the folder with
    ``tf.saved_model.load`` (a TensorFlow graph, no Python code from the folder runs; call its
    ``serve`` signature). TensorFlow is imported only to save or load. In the catalog: ``type:
    fashion_cnn.datasets.saved_model_dataset.SavedModelDataset``, ``filepath: .../saved_model/1``."""

    def __init__(self, *, filepath: str, credentials: dict[str, Any] | None = None,
                 fs_args: dict[str, Any] | None = None, metadata: dict[str, Any] | None = None) -> None:
        self._protocol, path = get_protocol_and_path(filepath)
        self._filepath = PurePosixPath(path)
        self._path = get_filepath_str(self._filepath, self._protocol)
        self._fs = fsspec.filesystem(self._protocol, **(credentials or {}), **(fs_args or {}))
        self.metadata = metadata

    def _describe(self) -> dict[str, Any]:
        return {"filepath": self._filepath, "protocol": self._protocol}

    def load(self) -> Any:
        import tensorflow as tf

        path = self._path
        if self._protocol not in LOCAL_PROTOCOLS:  # loaded from a local copy
            with tempfile.TemporaryDirectory(prefix="fashion_cnn_saved_model_") as folder:
                self._fs.get(path, folder, recursive=True)
                return SavedModelDataset(filepath=folder).load()
        if not Path(path, "saved_model.pb").is_file():
            raise DatasetError(f"{path} is not a SavedModel folder (no saved_model.pb in it).")
        try:
            return tf.saved_model.load(path)
        except Exception as exc:  # TensorFlow raises many types for a damaged folder
            raise DatasetError(f"{path} is not a loadable SavedModel: {exc}") from exc

    def save(self, data: Any) -> None:
        if not hasattr(data, "export"):
            raise DatasetError(f"SavedModelDataset saves Keras models (model.export), got {type(data).__name__}.")
        if self._protocol not in LOCAL_PROTOCOLS:
            with tempfile.TemporaryDirectory(prefix="fashion_cnn_saved_model_") as folder:
                data.export(f"{folder}/model", format="tf_saved_model", verbose=False)
                self._fs.put(f"{folder}/model", self._path, recursive=True)
            return
        final = Path(self._path)  # an earlier export there is replaced by two renames (see commit)
        with whole_save(final, final.parent) as temp:
            data.export(str(temp), format="tf_saved_model", verbose=False)

    def _exists(self) -> bool:
        return self._fs.exists(f"{self._path}/saved_model.pb")

