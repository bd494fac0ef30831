"""Reporting nodes of a variant: the notebook's activation grid, and what it did not show (confusion matrix,
per-class accuracy, learned kernels, learning curves).

Figures are built with ``matplotlib.figure.Figure`` (no pyplot state) and saved by the catalog's
``MatplotlibDataset``. Their margins are fixed, in inches: a layout engine ("constrained") draws every figure
twice, which made saving the four of them take twice as long (about 1.3 s instead of 0.7 s).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from fashion_cnn.model.gradcam import check_activation_settings
from fashion_cnn.parameters import ActivationGrid
from fashion_cnn.pipelines import DataFrame, Figure


def margined_figure(width: float, height: float, left: float, right: float, top: float, bottom: float,
                    wspace: float = 0.0, hspace: float = 0.0) -> Figure:
    """A ``width`` x ``height`` inch figure, its subplots placed by margins in inches (gaps: fractions of an axes)."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height))
    figure.subplots_adjust(left=left / width, right=1 - right / width, top=1 - top / height, bottom=bottom / height,
                           wspace=wspace, hspace=hspace)
    return figure


def render_activation_grid(model: Any, images: np.ndarray, labels: np.ndarray,
                           settings: ActivationGrid | Mapping[str, Any], class_names: list[str]) -> Figure:
    """The notebook's grid: filter ``filter_index`` of each chosen layer (columns) for each image (rows), from one
    batched forward pass of a model built on ``model.inputs`` (the notebook ran ``predict`` per image and layer)."""
    import keras

    settings = ActivationGrid.of(settings)
    layers = check_activation_settings(model, settings, len(images))
    indices, filter_index = list(settings.image_indices), settings.filter_index
    activation_model = keras.Model(inputs=model.inputs, outputs=[layer.output for layer in layers])
    activations = activation_model.predict_on_batch(images[indices])
    if len(layers) == 1:
        activations = [activations]

    figure = margined_figure(2.2 * len(layers) + 1.0, 2.2 * len(indices) + 1.0, left=0.8, right=0.2, top=0.8,
                             bottom=0.2, wspace=0.1, hspace=0.1)
    axes = figure.subplots(len(indices), len(layers), squeeze=False)
    for row, image_index in enumerate(indices):
        for col, layer in enumerate(layers):
            ax = axes[row, col]
            # float32: a mixed_bfloat16 model's feature maps are bfloat16, which matplotlib cannot draw
            ax.imshow(np.asarray(activations[col], dtype=np.float32)[row, :, :, filter_index], cmap=settings.cmap)
            ax.set(xticks=[], yticks=[])
            if row == 0:
                ax.set_title(f"{layer.name}\n{tuple(layer.output.shape[1:])}", fontsize=9)
            if col == 0:
                ax.set_ylabel(f"image {image_index}\n{class_names[labels[image_index]]}", fontsize=9)
    figure.suptitle(f"{model.name}: filter {filter_index} of each layer ({settings.cmap})")
    return figure


def render_test_activation_grid(model: Any, model_inputs: Mapping[str, np.ndarray], settings: ActivationGrid,
                                class_names: list[str]) -> Figure:
    """:func:`render_activation_grid` for the run's test images."""
    images, labels = model_inputs["test_images"], model_inputs["test_labels"]
    return render_activation_grid(model, images, labels, settings, class_names)


def plot_first_layer_kernels(model: Any) -> Figure:
    """The first convolution's learned kernels (input channel 0), numbered, on one shared colour scale. One tiled
    image rather than one axes per filter: the same picture, drawn in a fraction of the time."""
    import matplotlib

    conv = next(layer for layer in model.layers if "Conv" in type(layer).__name__ and layer.get_weights()
                and np.ndim(layer.get_weights()[0]) == 4)
    kernels = np.asarray(conv.get_weights()[0])[:, :, 0, :]  # (height, width, filters)
    height, width, filters = kernels.shape
    columns = min(filters, 8)
    rows = -(-filters // columns)
    limit = float(np.abs(kernels).max()) or 1.0
    # The kernels tiled row by row into one image, a NaN row and column between tiles.
    tiles = np.full((rows * columns, height + 1, width + 1), np.nan)
    tiles[:filters, :height, :width] = kernels.transpose(2, 0, 1)
    mosaic = tiles.reshape(rows, columns, height + 1, width + 1).transpose(0, 2, 1, 3)
    mosaic = mosaic.reshape(rows * (height + 1), columns * (width + 1))[:-1, :-1]
    figure = margined_figure(1.1 * columns + 1.2, 1.1 * rows + 0.7, left=0.1, right=1.1, top=0.5, bottom=0.2)
    ax = figure.subplots()
    cmap = matplotlib.colormaps["coolwarm"].with_extremes(bad="white")
    image = ax.imshow(mosaic, cmap=cmap, vmin=-limit, vmax=limit)
    for index in range(filters):
        row, col = divmod(index, columns)
        ax.text(col * (width + 1) - 0.45, row * (height + 1) - 0.45, str(index), fontsize=7, va="top")
    ax.set_axis_off()
    inches = figure.get_figwidth()
    figure.colorbar(image, cax=figure.add_axes((1 - 0.9 / inches, 0.15, 0.15 / inches, 0.7)))
    figure.suptitle(f"{model.name}: {filters} learned {height}x{width} kernels of {conv.name}")
    return figure


def confusion_counts(predictions: DataFrame, classes: int) -> np.ndarray:
    """``counts[true, predicted]`` over the test set."""
    counts = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(counts, (predictions["label"].to_numpy(), predictions["predicted"].to_numpy()), 1)
    return counts


def plot_confusion_matrix(predictions: DataFrame, class_names: list[str]) -> Figure:
    """Test-set confusion matrix: rows are true classes, columns predicted classes."""
    counts = confusion_counts(predictions, len(class_names))
    figure = margined_figure(8, 7, left=1.3, right=1.3, top=0.5, bottom=1.3)
    ax = figure.subplots()
    image = ax.imshow(counts, cmap="Blues")
    figure.colorbar(image, ax=ax, shrink=0.8, pad=0.03)
    ticks = np.arange(len(class_names))
    ax.set_xticks(ticks, class_names, rotation=45, ha="right")
    ax.set_yticks(ticks, class_names)
    ax.set(xlabel="predicted", ylabel="true")
    threshold = counts.max() / 2
    for (true, pred), count in np.ndenumerate(counts):
        ax.text(pred, true, str(count), ha="center", va="center", fontsize=8,
                color="white" if count > threshold else "black")
    accuracy = np.trace(counts) / max(counts.sum(), 1)
    ax.set_title(f"Confusion matrix ({counts.sum()} test images, accuracy {accuracy:.4f})")
    return figure


def tabulate_per_class_accuracy(predictions: DataFrame, class_names: list[str]) -> DataFrame:
    """Per class: test images, correct, accuracy, and the class it is most often mistaken for."""
    import pandas as pd

    counts = confusion_counts(predictions, len(class_names))
    mistakes = counts.copy()
    np.fill_diagonal(mistakes, 0)
    images = counts.sum(axis=1)
    return pd.DataFrame({
        "class": class_names, "images": images, "correct": np.diag(counts),
        "accuracy": np.round(np.diag(counts) / np.maximum(images, 1), 4),
        "most_confused_with": [class_names[i] if mistakes[c, i] else "" for c, i in enumerate(mistakes.argmax(axis=1))],
        "times_confused": mistakes.max(axis=1),
    })


def plot_learning_curves(history: DataFrame) -> Figure:
    """Accuracy and loss per epoch, training against validation where a validation split was used."""
    figure = margined_figure(10, 4, left=0.6, right=0.2, top=0.4, bottom=0.6, wspace=0.2)
    for ax, metric in zip(figure.subplots(1, 2), ("accuracy", "loss"), strict=True):
        if metric in history:
            ax.plot(history["epoch"], history[metric], marker="o", label=f"train {metric}")
        if f"val_{metric}" in history:
            ax.plot(history["epoch"], history[f"val_{metric}"], marker="o", label=f"validation {metric}")
        if metric == "loss" and "val_loss" in history:
            best = history.loc[history["val_loss"].idxmin()]
            ax.axvline(best["epoch"], color="grey", linestyle="--",
                       label=f"best validation loss (epoch {int(best['epoch'])})")
        ax.set(xlabel="epoch", title=metric)
        ax.legend()
    return figure

