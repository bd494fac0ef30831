"""A ``.keras`` model dataset that hands the model it saved to the same process's later loads.

Not exported from :mod:`fashion_cnn.datasets`: kedro-datasets' TensorFlow module imports
TensorFlow, which must wait until the project's hooks have set its runtime environment.
"""

from __future__ import annotations

from kedro_datasets.tensorflow import TensorFlowModelDataset

from fashion_cnn.datasets.keep_saved import KeepSavedMixin


class KerasModelDataset(KeepSavedMixin, TensorFlowModelDataset):
    """``tensorflow.TensorFlowModelDataset`` (versioned ``.keras`` files), plus: a load that would
    read the version this dataset object has just saved returns the saved model object instead.

    A variant's evaluation and figure nodes then use the trained model without reading and
    deserialising the file three times. Loads of any other version, and loads in other
    processes (ParallelRunner workers, a later session), read the file as usual.
    """
