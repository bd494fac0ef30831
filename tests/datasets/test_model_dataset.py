"""KerasModelDataset and ModelInputsDataset: a saved object is reused by the same dataset's later loads, and only then."""

from __future__ import annotations

import pickle

import numpy as np
from kedro.io import Version

from fashion_cnn.model.architecture import build_model
from fashion_cnn.datasets import KerasModelDataset

TINY = ["Flatten", {"Dense": {"units": 10, "activation": "softmax"}}]


def dataset(tmp_path, load=None, save=None):
    return KerasModelDataset(filepath=str(tmp_path / "model.keras"), version=Version(load, save))


def test_a_load_after_a_save_returns_the_saved_model_and_the_file_is_written(tmp_path):
    model = build_model("tiny", TINY, (28, 28, 1), 10)
    saving = dataset(tmp_path, save="2026-01-01T00.00.00.000Z")
    saving.save(model)
    assert saving.load() is model
    assert (tmp_path / "model.keras/2026-01-01T00.00.00.000Z/model.keras").is_file()

    from_file = dataset(tmp_path).load()  # another session: reads the file
    assert from_file is not model
    for ours, theirs in zip(model.get_weights(), from_file.get_weights(), strict=True):
        np.testing.assert_array_equal(ours, theirs)

    worker_copy = pickle.loads(pickle.dumps(saving))  # as ParallelRunner sends it to a worker
    assert worker_copy.load() is not model


def test_a_load_of_another_version_reads_that_file(tmp_path):
    first = build_model("tiny", TINY, (28, 28, 1), 10)
    dataset(tmp_path, save="2026-01-01T00.00.00.000Z").save(first)
    second = build_model("tiny", TINY, (28, 28, 1), 10)
    saving = KerasModelDataset(filepath=str(tmp_path / "model.keras"),
                               version=Version("2026-01-01T00.00.00.000Z", "2026-01-02T00.00.00.000Z"))
    saving.save(second)
    loaded = saving.load()
    assert loaded is not second
    for ours, theirs in zip(first.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(ours, theirs)


def test_model_inputs_saved_in_a_run_are_handed_on_read_only_and_written_for_other_runs(tmp_path):
    from fashion_cnn.datasets import ModelInputsDataset

    images = np.arange(12, dtype=np.float32).reshape(3, 2, 2, 1) / 12
    inputs = {"train_images": images, "train_labels": np.arange(3, dtype=np.uint8),
              "test_images": images[:2], "test_labels": np.arange(2, dtype=np.uint8)}
    saving = ModelInputsDataset(filepath=str(tmp_path / "model_inputs.npz"))
    saving.save(inputs)
    handed_on = saving.load()["train_images"]
    assert np.shares_memory(handed_on, images) and not handed_on.flags.writeable
    assert images.flags.writeable  # the node's own array is left as it was

    for reader in (ModelInputsDataset(filepath=str(tmp_path / "model_inputs.npz")),  # a later run
                   pickle.loads(pickle.dumps(saving))):  # a ParallelRunner worker
        from_file = reader.load()["train_images"]
        assert not np.shares_memory(from_file, images)
        np.testing.assert_array_equal(from_file, images)

    saving.release()  # Kedro releases a dataset after its last use in the run
    assert not np.shares_memory(saving.load()["train_images"], images)
