"""Hand a just-saved object to the same process's later loads instead of reading the file back."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from fashion_cnn.datasets.read_only_arrays import ReadOnlyArrays, read_only_view


class KeepSavedMixin:
    """Mixin for a file dataset of kedro-datasets (versioned or not): a load of the version this
    dataset object has just saved returns the saved object itself.

    The file is still written, so ``--from-nodes``, ``--namespaces``, ParallelRunner workers and
    later sessions read it as usual. Within a run this also means that a node reads what this run
    wrote, never the file of another run that saved the same dataset meanwhile. A later load gets a
    copy (arrays: a read-only view), so a node cannot change what the next node loads. The object
    is dropped when Kedro releases the dataset after its last use.
    """

    _kept: tuple[Any, Any] | None = None

    def save(self, data: Any) -> None:
        super().save(data)  # type: ignore[misc]
        kept = read_only_view(data) if isinstance(data, np.ndarray) else data
        self._kept = (self.resolve_save_version(), kept)  # type: ignore[attr-defined]

    def load(self) -> Any:
        if self._kept is not None:
            version, data = self._kept
            if version == self.resolve_load_version():  # type: ignore[attr-defined]
                return self._handover(data)
        return super().load()  # type: ignore[misc]

    def _handover(self, data: Any) -> Any:
        """What a later load gets of the saved ``data``."""
        if isinstance(data, np.ndarray | ReadOnlyArrays):  # read-only already
            return data
        return copy.deepcopy(data)

    def _release(self) -> None:
        super()._release()  # type: ignore[misc]
        self._kept = None

    def __getstate__(self) -> dict[str, Any]:
        # Pickled to ParallelRunner's workers: the object stays here, they read the file.
        return {**self.__dict__, "_kept": None}
