"""A ``.keras`` model dataset: whole files, read in place, and the saved model handed to the same run.

Not exported from :mod:`fashion_cnn.datasets`: kedro-datasets' TensorFlow module imports
TensorFlow, which must wait until the project's hooks have set its runtime environment.
"""

from __future__ import annotations

from typing import Any

from kedro.io import DatasetError
from kedro.io.core import get_filepath_str
from kedro_datasets.tensorflow import TensorFlowModelDataset

from fashion_cnn.datasets.keep_saved import KeepSavedMixin
from fashion_cnn.datasets.whole_files import WholeFileMixin


class LocalKerasFileDataset(TensorFlowModelDataset):
    """``tensorflow.TensorFlowModelDataset`` that reads and writes a local ``.keras`` file in place.

    kedro-datasets' own goes through a ``/tmp/kedro_tensorflow_tmp*`` folder both ways (a killed
    save leaves it behind, and a failed load names that temporary file). Remote paths keep that
    route: there the upload is one put.
    """

    def load(self) -> Any:
        if self._protocol != "file":
            return super().load()
        import keras

        path = get_filepath_str(self._get_load_path(), self._protocol)
        load_args = {k: v for k, v in self._load_args.items() if k != "tf_device"}
        try:
            return keras.saving.load_model(path, **load_args)
        except Exception as exc:  # Keras raises many types for a damaged or foreign file
            raise DatasetError(f"{path} is not a loadable Keras model: {exc}") from exc

    def save(self, data: Any) -> None:
        if self._protocol != "file" or self._is_h5:
            return super().save(data)
        import keras

        keras.saving.save_model(data, get_filepath_str(self._get_save_path(), self._protocol), **self._save_args)
        return None


class KerasModelDataset(KeepSavedMixin, WholeFileMixin, LocalKerasFileDataset):
    """Versioned ``.keras`` models that appear whole or not at all, load in Keras's safe mode (no
    code from the file runs), and whose trained model object goes straight to the same run's
    evaluation and figure nodes instead of being read back three times.

    Loads of any other version, and loads in other processes (ParallelRunner workers, a later
    session), read the file.
    """

    def _handover(self, data: Any) -> Any:
        return data  # the model itself: nodes only predict with it
