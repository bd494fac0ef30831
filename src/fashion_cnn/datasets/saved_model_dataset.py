"""A TensorFlow SavedModel folder, for serving without this project's code or Keras.

A SavedModel is a folder (``saved_model.pb``, ``variables/``, ``assets/``, ``fingerprint.pb``), so the
whole-or-nothing rule of :mod:`fashion_cnn.datasets.whole_files` is applied to the folder: Keras's
``model.export`` writes into a temporary folder beside the target, every file is flushed to disk,
and only then does the folder take its final name. Nothing ever sees a half-written model under
that name; a re-export of the same model replaces the old folder by two renames (in between, for
an instant, there is no folder at all, never a partial one).
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

import fsspec
from kedro.io import AbstractDataset, DatasetError
from kedro.io.core import get_filepath_str, get_protocol_and_path

from fashion_cnn.datasets.whole_files import (
    LOCAL_PROTOCOLS,
    _fsync,
    _remove,
    disk_full_error,
    sweep_stale_temps,
    temp_path_for,
)


def _fsync_tree(folder: Path) -> None:
    for directory, _, files in os.walk(folder):
        for name in files:
            _fsync(Path(directory) / name)
        _fsync(Path(directory))


class SavedModelDataset(AbstractDataset[Any, Any]):
    """Saves a Keras model with ``model.export(format="tf_saved_model")``; loads the folder with
    ``tf.saved_model.load`` (a TensorFlow graph, no Python code from the folder runs; call its
    ``serve`` signature). TensorFlow is imported only to save or load.

    Example catalog entry::

        cnn_saved_model:
          type: fashion_cnn.datasets.saved_model_dataset.SavedModelDataset
          filepath: data/06_models/cnn/saved_model/1
    """

    def __init__(self, *, filepath: str, credentials: dict[str, Any] | None = None,
                 fs_args: dict[str, Any] | None = None, metadata: dict[str, Any] | None = None) -> None:
        protocol, path = get_protocol_and_path(filepath)
        self._protocol = protocol
        self._filepath = PurePosixPath(path)
        self._fs = fsspec.filesystem(protocol, **(credentials or {}), **(fs_args or {}))
        self.metadata = metadata

    def _describe(self) -> dict[str, Any]:
        return {"filepath": self._filepath, "protocol": self._protocol}

    def _path(self) -> str:
        return get_filepath_str(self._filepath, self._protocol)

    def load(self) -> Any:
        import tensorflow as tf

        path = self._path()
        if self._protocol not in LOCAL_PROTOCOLS:
            with tempfile.TemporaryDirectory(prefix="fashion_cnn_saved_model_") as folder:
                self._fs.get(path, folder, recursive=True)
                return self._load_local(tf, folder)
        return self._load_local(tf, path)

    @staticmethod
    def _load_local(tf: Any, path: str) -> Any:
        if not Path(path, "saved_model.pb").is_file():
            raise DatasetError(f"{path} is not a SavedModel folder (no saved_model.pb in it).")
        try:
            return tf.saved_model.load(path)
        except Exception as exc:  # TensorFlow raises many types for a damaged folder
            raise DatasetError(f"{path} is not a loadable SavedModel: {exc}") from exc

    def save(self, data: Any) -> None:
        if self._protocol not in LOCAL_PROTOCOLS:
            with tempfile.TemporaryDirectory(prefix="fashion_cnn_saved_model_") as folder:
                _export(data, Path(folder) / "model")
                self._fs.put(str(Path(folder) / "model"), self._path(), recursive=True)
            return
        final = Path(self._path())
        final.parent.mkdir(parents=True, exist_ok=True)
        sweep_stale_temps(final.parent)
        temp = temp_path_for(final, final.parent)
        old = None
        try:
            _export(data, temp)
            _fsync_tree(temp)
            if final.exists():
                old = temp_path_for(final, final.parent)
                os.rename(final, old)
            os.rename(temp, final)
            _fsync(final.parent)
        except OSError as exc:
            if old is not None and not final.exists():
                os.rename(old, final)  # the previous export goes back in place
                old = None
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise disk_full_error(final, exc) from exc
            raise
        finally:
            for leftover in (temp, old):
                if leftover is not None:
                    _remove(leftover)

    def _exists(self) -> bool:
        return self._fs.exists(f"{self._path()}/saved_model.pb")


def _export(model: Any, folder: Path) -> None:
    if not hasattr(model, "export"):
        raise DatasetError(f"SavedModelDataset saves Keras models (model.export), got {type(model).__name__}.")
    model.export(str(folder), format="tf_saved_model", verbose=False)
