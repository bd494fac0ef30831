"""Data processing nodes: checks, subsets and normalisation."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
from kedro.io import MemoryDataset

from fashion_cnn.datasets import ReadOnlyArrays
from fashion_cnn.pipelines.data_processing.nodes import (
    normalise_images,
    prepare_model_inputs,
    select_subset,
    validate_dataset,
)

CLASSES = [f"class {i}" for i in range(10)]


def test_normalise_is_float32_in_unit_range_with_a_channel_axis():
    images = np.array([[[0, 51], [128, 255]]], dtype=np.uint8)
    normalised = normalise_images(images)
    assert normalised.dtype == np.float32
    assert normalised.shape == (1, 2, 2, 1)
    # Exactly the float32 values of the notebook's float64 `images / 255.0`.
    np.testing.assert_array_equal(normalised[..., 0], (images / 255.0).astype(np.float32))


def test_normalise_in_float32_matches_the_notebooks_float64_for_every_pixel_value():
    every_value = np.arange(256, dtype=np.uint8).reshape(1, 16, 16)
    ours, notebook = normalise_images(every_value, "float32"), normalise_images(every_value, "float64")
    assert notebook.dtype == np.float64
    np.testing.assert_array_equal(notebook[..., 0], every_value / 255.0)
    np.testing.assert_array_equal(ours, notebook.astype(np.float32))


def test_normalise_names_a_bad_pixel_dtype():
    with pytest.raises(ValueError, match=r"`data\.pixel_dtype` must be one of \['float32', 'float64'\], got 'float16'"):
        normalise_images(np.zeros((1, 2, 2), dtype=np.uint8), "float16")


def test_subset_keeps_the_first_examples(idx_arrays):
    subset = select_subset(idx_arrays, 12, None)
    assert subset["train_images"].shape == (12, 28, 28)
    assert subset["train_labels"].tolist() == idx_arrays["train_labels"][:12].tolist()
    assert len(subset["test_images"]) == len(subset["test_labels"]) == 10


def test_model_inputs_are_the_normalised_images_and_the_labels(idx_arrays):
    inputs = prepare_model_inputs(select_subset(idx_arrays, 12, 4))
    assert isinstance(inputs, ReadOnlyArrays)
    train_x, train_y, test_x, test_y = (inputs[key] for key in ("train_images", "train_labels", "test_images",
                                                               "test_labels"))
    assert train_x.shape == (12, 28, 28, 1) and test_x.shape == (4, 28, 28, 1)
    np.testing.assert_array_equal(test_x, normalise_images(idx_arrays["test_images"][:4]))
    assert train_y.tolist() == idx_arrays["train_labels"][:12].tolist()
    assert test_y.tolist() == idx_arrays["test_labels"][:4].tolist()


def test_the_checked_data_passes_through_memory_datasets_without_copies_and_cannot_be_changed(idx_arrays):
    checked, _ = validate_dataset(idx_arrays, CLASSES)
    assert isinstance(checked, ReadOnlyArrays) and dict(checked).keys() == idx_arrays.keys()
    memory = MemoryDataset()  # what Kedro puts between nodes; it deep-copies a plain dict on save and load
    memory.save(checked)
    assert memory.load() is checked and copy.deepcopy(checked) is checked
    assert np.shares_memory(checked["train_images"], idx_arrays["train_images"])
    with pytest.raises(ValueError, match="read-only"):
        checked["train_labels"][0] = 3
    sent = pickle.loads(pickle.dumps(checked))  # as ParallelRunner sends it to a worker
    assert sent is not checked
    np.testing.assert_array_equal(sent["train_images"], idx_arrays["train_images"])


@pytest.mark.parametrize("limit", [0, -5, 2.5, "all", True])
def test_subset_rejects_bad_limits(idx_arrays, limit):
    with pytest.raises(ValueError, match=r"Parameter `data\.test_limit` must be a positive whole number or null"):
        select_subset(idx_arrays, None, limit)


def test_validation_summarises_classes(idx_arrays):
    data, summary = validate_dataset(idx_arrays, CLASSES)
    assert all(data[name] is not array and np.array_equal(data[name], array) for name, array in idx_arrays.items())
    assert summary["train"]["images"] == 30
    assert summary["train"]["images_per_class"]["class 0"] == 3


def test_validation_rejects_labels_outside_the_classes(idx_arrays):
    idx_arrays["train_labels"][7] = 12
    with pytest.raises(ValueError, match=r"train labels: 1 label\(s\) outside 0\.\.9, the first at index 7 \(value 12\)"):
        validate_dataset(idx_arrays, CLASSES)
