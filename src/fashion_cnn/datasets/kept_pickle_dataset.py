"""A pickle dataset that hands the object it saved to the same process's later loads."""

from __future__ import annotations

from kedro_datasets.pickle import PickleDataset

from fashion_cnn.datasets.keep_saved import KeepSavedMixin


class KeptPickleDataset(KeepSavedMixin, PickleDataset):
    """``pickle.PickleDataset``, plus: a load that would read what this dataset object has just
    saved returns the saved object (arrays as read-only views) instead.

    The model inputs (188 MB of float32 training images) are written for later runs and other
    processes, but the same run's training and evaluation nodes do not read them back.
    """
