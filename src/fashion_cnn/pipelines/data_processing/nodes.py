"""Nodes that turn the raw IDX arrays into model inputs (the notebook's first cell)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from fashion_cnn.datasets import ReadOnlyArrays
from fashion_cnn.parameters import check_limit, check_pixel_dtype
from fashion_cnn.pipelines import DataFrame


def validate_dataset(raw: Mapping[str, np.ndarray], class_names: list[str]) -> tuple[ReadOnlyArrays, dict[str, Any]]:
    """Check labels and classes beyond the file format; return the data (read-only, so that Kedro passes it on
    without copying) and a summary of it."""
    summary: dict[str, Any] = {"classes": list(class_names)}
    for split in ("train", "test"):
        images, labels = raw[f"{split}_images"], raw[f"{split}_labels"]
        if images.dtype != np.uint8 or labels.dtype != np.uint8:
            raise ValueError(f"{split} images and labels must be uint8, got {images.dtype} and {labels.dtype}.")
        out_of_range = np.flatnonzero(labels >= len(class_names))
        if out_of_range.size:
            raise ValueError(f"{split} labels: {out_of_range.size} label(s) outside 0..{len(class_names) - 1}, the "
                             f"first at index {out_of_range[0]} (value {labels[out_of_range[0]]}). "
                             f"`data.class_names` lists {len(class_names)} classes.")
        counts = np.bincount(labels, minlength=len(class_names))
        summary[split] = {"images": int(len(images)), "shape": list(images.shape[1:]),
                          "pixel_mean": round(float(images.mean(dtype=np.float64)) / 255, 4),
                          "images_per_class": dict(zip(class_names, counts.tolist(), strict=True))}
    return ReadOnlyArrays(raw), summary


def select_subset(raw: Mapping[str, np.ndarray], train_limit: int | None, test_limit: int | None) -> ReadOnlyArrays:
    """Keep the first ``train_limit``/``test_limit`` examples (null keeps all) for quick runs."""
    check_limit("train_limit", train_limit)
    check_limit("test_limit", test_limit)
    limits = {"train": train_limit, "test": test_limit}
    return ReadOnlyArrays({name: array[: limits[name.split("_")[0]]] for name, array in raw.items()})


def normalise_images(images: np.ndarray, dtype: str = "float32") -> np.ndarray:
    """Scale uint8 pixels to [0, 1] and add a channel axis: (n, 28, 28, 1).

    float32 (the default) divides in float32: exactly the float32 values Keras trains on after the notebook's
    float64 ``/ 255.0``, without a float64 copy of the data set. float64 is the notebook's own array, for
    comparisons (Keras then converts every batch it trains on).
    """
    check_pixel_dtype(dtype)
    return np.divide(images[..., np.newaxis], 255, dtype=dtype)


def prepare_model_inputs(data: Mapping[str, np.ndarray], dtype: str = "float32") -> ReadOnlyArrays:
    """The model inputs: normalised train and test images with their labels, as one set."""
    keys = ("train_images", "train_labels", "test_images", "test_labels")
    return ReadOnlyArrays({k: normalise_images(data[k], dtype) if k.endswith("_images") else data[k] for k in keys})


def tabulate_first_test_labels(data: Mapping[str, np.ndarray], class_names: list[str], count: int,
                               highlighted: list[int]) -> tuple[DataFrame, str]:
    """The notebook's ``print(test_labels[:100])``: a table with class names, and the printout with the activation
    grid's images called out (the notebook's 0, 23 and 28 are all 9)."""
    import pandas as pd

    all_labels = data["test_labels"]
    labels = all_labels[:count]
    table = pd.DataFrame({"index": np.arange(len(labels)), "label": labels,
                          "class": np.asarray(class_names, dtype=object)[labels],
                          "in_activation_grid": np.isin(np.arange(len(labels)), highlighted)})
    shown = [i for i in highlighted if i < len(all_labels)]
    lines = [
        f"First {len(labels)} test labels (print(test_labels[:{count}])):",
        np.array2string(labels, max_line_width=80),
        "",
        "Images in the activation grid (`activation_grid.image_indices`):",
        *(f"  test image {i}: label {all_labels[i]} ({class_names[all_labels[i]]})" for i in shown),
    ]
    if shown and len({int(all_labels[i]) for i in shown}) == 1:
        lines.append(f"All {len(shown)} are class {all_labels[shown[0]]}, so their activations can be compared.")
    return table, "\n".join(lines) + "\n"

