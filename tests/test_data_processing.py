"""Data processing nodes: checks, subsets and normalisation."""

from __future__ import annotations

import numpy as np
import pytest

from fashion_cnn.pipelines.data_processing.nodes import normalise_images, select_subset, validate_dataset

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
    train_x, train_y, test_x, test_y = select_subset(idx_arrays, 12, None)
    assert train_x.shape == (12, 28, 28) and train_y.tolist() == idx_arrays["train_labels"][:12].tolist()
    assert len(test_x) == len(test_y) == 10


@pytest.mark.parametrize("limit", [0, -5, 2.5, "all", True])
def test_subset_rejects_bad_limits(idx_arrays, limit):
    with pytest.raises(ValueError, match=r"Parameter `data\.test_limit` must be a positive whole number or null"):
        select_subset(idx_arrays, None, limit)


def test_validation_summarises_classes(idx_arrays):
    data, summary = validate_dataset(idx_arrays, CLASSES)
    assert data is idx_arrays
    assert summary["train"]["images"] == 30
    assert summary["train"]["images_per_class"]["class 0"] == 3


def test_validation_rejects_labels_outside_the_classes(idx_arrays):
    idx_arrays["train_labels"][7] = 12
    with pytest.raises(ValueError, match=r"train labels: 1 label\(s\) outside 0\.\.9, the first at index 7 \(value 12\)"):
        validate_dataset(idx_arrays, CLASSES)
