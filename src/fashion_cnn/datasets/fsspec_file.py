"""What the project's own file datasets share: a path on any fsspec file system, versioned or not, set up as
kedro-datasets' set theirs up; and handing a just-saved object to the same process's later loads (no read back)."""

from __future__ import annotations

import contextlib
import copy
import posixpath
import tempfile
from collections.abc import Iterator
from pathlib import PurePosixPath
from typing import Any

import fsspec
from kedro.io.core import AbstractVersionedDataset, Version, get_filepath_str, get_protocol_and_path

from fashion_cnn.datasets.whole_files import LOCAL_PROTOCOLS


class FsspecFileDataset(AbstractVersionedDataset[Any, Any]):
    """A file at ``filepath`` (local, ``s3://``, ``gs://``, ...); subclasses read and write it
    through ``self._fs`` at ``self._load_path()`` / ``self._save_path()``."""

    def __init__(self, *, filepath: str, version: Version | None = None, credentials: dict[str, Any] | None = None,
                 fs_args: dict[str, Any] | None = None, metadata: dict[str, Any] | None = None) -> None:
        self._protocol, path = get_protocol_and_path(filepath, version)
        defaults = {"auto_mkdir": True} if self._protocol == "file" else {}
        self._fs = fsspec.filesystem(self._protocol, **(credentials or {}), **{**defaults, **(fs_args or {})})
        self.metadata = metadata
        super().__init__(filepath=PurePosixPath(path), version=version, exists_function=self._fs.exists,
                         glob_function=self._fs.glob)

    def _describe(self) -> dict[str, Any]:
        return {"filepath": self._filepath, "protocol": self._protocol, "version": self._version}

    def _load_path(self) -> str:
        return get_filepath_str(self._get_load_path(), self._protocol)

    def _save_path(self) -> str:
        return get_filepath_str(self._get_save_path(), self._protocol)

    def _invalidate_cache(self) -> None:
        self._fs.invalidate_cache(get_filepath_str(self._filepath, self._protocol))

    def _exists(self) -> bool:
        return self._fs.exists(self._load_path())  # no version yet: exists() answers False

    @contextlib.contextmanager
    def _local_copy(self, path: str, upload: bool = False) -> Iterator[str]:
        """``path`` itself on a local disk; elsewhere, for Keras and TensorFlow, which take local paths only, a
        temporary local copy of the file or folder: downloaded first, or with ``upload``, uploaded after."""
        if self._protocol in LOCAL_PROTOCOLS:
            yield path
            return
        with tempfile.TemporaryDirectory(prefix="fashion_cnn_") as folder:
            local = f"{folder}/{posixpath.basename(path)}"  # the same name: Keras checks the extension
            if not upload:
                self._fs.get(path, local, recursive=True)
            yield local
            if upload:
                self._fs.put(local, path, recursive=True)
                self._invalidate_cache()


class KeepSavedMixin:
    """Mixin for a file dataset (versioned or not): a load of the version this object has just saved gets the
    saved object, so a node reads what this run wrote, never another run's file saved meanwhile (the file is still
    written, for other processes). Kedro's release drops the object."""

    _kept: tuple[Any, Any] | None = None
    _handover = staticmethod(copy.deepcopy)  # what a load gets: a copy, so a node cannot change what the next loads

    def save(self, data: Any) -> None:
        super().save(data)  # type: ignore[misc]
        self._kept = (self.resolve_save_version(), data)  # type: ignore[attr-defined]

    def load(self) -> Any:
        if self._kept is not None and self._kept[0] == self.resolve_load_version():  # type: ignore[attr-defined]
            return self._handover(self._kept[1])
        return super().load()  # type: ignore[misc]

    def _release(self) -> None:
        super()._release()  # type: ignore[misc]
        self._kept = None

    def __getstate__(self) -> dict[str, Any]:
        # Pickled to ParallelRunner's workers: the object stays here, they read the file.
        return {**self.__dict__, "_kept": None}
