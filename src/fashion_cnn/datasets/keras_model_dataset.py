"""A ``.keras`` model dataset that hands the model it saved to the same process's later loads.

Not exported from :mod:`fashion_cnn.datasets`: kedro-datasets' TensorFlow module imports
TensorFlow, which must wait until the project's hooks have set its runtime environment.
"""

from __future__ import annotations

from typing import Any

from kedro_datasets.tensorflow import TensorFlowModelDataset


class KerasModelDataset(TensorFlowModelDataset):
    """``tensorflow.TensorFlowModelDataset`` (versioned ``.keras`` files), plus: a load that would
    read the version this dataset object has just saved returns the saved model object instead.

    A variant's evaluation and figure nodes then use the trained model without reading and
    deserialising the file three times. Loads of any other version, and loads in other
    processes (ParallelRunner workers, a later session), read the file as usual.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._just_saved: tuple[str | None, Any] | None = None

    def save(self, data: Any) -> None:
        super().save(data)
        self._just_saved = (self.resolve_save_version(), data)

    def load(self) -> Any:
        if self._just_saved is not None:
            version, model = self._just_saved
            if version == self.resolve_load_version():
                return model
        return super().load()

    def __getstate__(self) -> dict[str, Any]:
        # Pickled to ParallelRunner's workers: the model stays here, they read the file.
        return {**self.__dict__, "_just_saved": None}
