"""The tune pipeline's datasets: the Optuna storage its studies live in, and the best model's metrics for
``compare``, which has none before a first search."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kedro.io import AbstractDataset, DatasetError

from fashion_cnn.datasets.file_datasets import JSONDataset


class OptunaStorageDataset(AbstractDataset[None, Any]):
    """An Optuna storage, which holds studies by name: a journal file (``filepath``; Optuna's
    ``JournalFileBackend``, safe for processes on one machine or one shared disk) or, for a team, a database
    (``credentials: {url: postgresql://...}`` from credentials.yml; ``RDBStorage`` with heartbeats, so that a
    trial whose worker died is failed). Read-only: the study writes its trials through it itself."""

    def __init__(self, *, filepath: str | None = None, credentials: dict[str, Any] | None = None,
                 heartbeat_interval: int = 60, metadata: dict[str, Any] | None = None) -> None:
        self._url = (credentials or {}).get("url")
        if not (self._url or filepath):
            raise DatasetError("OptunaStorageDataset needs a `filepath` (a journal file) or credentials with a `url`.")
        self._filepath = None if self._url else Path(filepath)
        self._heartbeat = heartbeat_interval
        self.metadata = metadata

    def _describe(self) -> dict[str, Any]:  # never the URL: it may hold a password
        return {"filepath": str(self._filepath) if self._filepath else None, "database": bool(self._url)}

    def _exists(self) -> bool:
        return self._url is not None or self._filepath.is_file()

    def load(self) -> Any:
        from optuna.storages import JournalStorage, RDBStorage
        from optuna.storages.journal import JournalFileBackend

        if self._url:
            return RDBStorage(self._url, heartbeat_interval=self._heartbeat, grace_period=2 * self._heartbeat)
        try:
            self._filepath.parent.mkdir(parents=True, exist_ok=True)
            return JournalStorage(JournalFileBackend(str(self._filepath)))
        except OSError as exc:
            raise DatasetError(f"Cannot open the Optuna journal {self._filepath}: {exc}") from exc

    def save(self, data: Any) -> None:
        raise DatasetError("OptunaStorageDataset is read-only: a study writes its trials through the storage.")


class JSONDatasetIfAny(JSONDataset):
    """A versioned JSON file that loads as None while it has no version (``compare`` before a first search)."""

    def load(self) -> Any:
        return super().load() if self.exists() else None
