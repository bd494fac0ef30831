"""The common part of the project's own file datasets: a path on any fsspec file system, versioned
or not, as kedro-datasets' datasets set it up."""

from __future__ import annotations

from copy import deepcopy
from pathlib import PurePosixPath
from typing import Any, Generic, TypeVar

import fsspec
from kedro.io.core import AbstractVersionedDataset, DatasetError, Version, get_filepath_str, get_protocol_and_path

_DI = TypeVar("_DI")
_DO = TypeVar("_DO")


class FsspecFileDataset(AbstractVersionedDataset[_DI, _DO], Generic[_DI, _DO]):
    """A file at ``filepath`` (local, ``s3://``, ``gs://``, ...); subclasses read and write it
    through ``self._fs`` at ``self._load_path()`` / ``self._save_path()``."""

    def __init__(
        self,
        *,
        filepath: str,
        version: Version | None = None,
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
        self.metadata = metadata
        super().__init__(
            filepath=PurePosixPath(path), version=version, exists_function=self._fs.exists, glob_function=self._fs.glob
        )

    def _describe(self) -> dict[str, Any]:
        return {"filepath": self._filepath, "protocol": self._protocol, "version": self._version}

    def _load_path(self) -> str:
        return get_filepath_str(self._get_load_path(), self._protocol)

    def _save_path(self) -> str:
        return get_filepath_str(self._get_save_path(), self._protocol)

    def _invalidate_cache(self) -> None:
        self._fs.invalidate_cache(get_filepath_str(self._filepath, self._protocol))

    def _exists(self) -> bool:
        try:
            path = self._load_path()
        except DatasetError:
            return False
        return self._fs.exists(path)
