"""Why a variant errs, as fastai's ``ClassificationInterpretation`` shows it: the highest-loss test images,
the pairs of classes it confuses, and where it looks (Grad-CAM, convolutional variants only)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from fashion_cnn.model.gradcam import grad_cam, grad_cam_layer
from fashion_cnn.parameters import ActivationGrid, Interpretation
from fashion_cnn.pipelines import DataFrame, Figure

from .figures import confusion_counts, margined_figure


def top_loss_indices(predictions: DataFrame, count: int) -> np.ndarray:
    """The ``count`` test images with the highest loss, highest first (equal losses: lower index first)."""
    return np.argsort(-predictions["loss"].to_numpy(), kind="stable")[:count]


def percent(probability: float) -> str:
    """12.3%, and a small probability to two significant digits (0.0054%) rather than 0.0%."""
    if probability >= 0.001:
        return f"{probability:.1%}"
    return np.format_float_positional(100 * probability, precision=2, fractional=False, trim="-") + "%"


def tiled_figure(tiles: np.ndarray, slots: Sequence[int], columns: int, band: int, inches_per_pixel: float,
                 right: float = 0.2) -> tuple[Figure, Any, list[tuple[float, float]]]:
    """``tiles`` (n, height, width, RGB) as one picture (an axes each took most of the time), at ``slots`` of a
    grid ``columns`` wide, ``band`` pixels above each row for titles; the figure, its axes, each tile's top."""
    height, width, gap = tiles.shape[1], tiles.shape[2], 6
    mosaic = np.ones(((max(slots) // columns + 1) * (height + band), columns * (width + gap) - gap, 3))
    tops = []
    for tile, (row, column) in zip(tiles, (divmod(slot, columns) for slot in slots), strict=True):
        y, x = row * (height + band) + band, column * (width + gap)
        mosaic[y:y + height, x:x + width] = tile
        tops.append((x + width / 2 - 0.5, y - 1.0))
    figure = margined_figure(max(mosaic.shape[1] * inches_per_pixel + 0.2 + right, 7.0),  # room for the title
                             mosaic.shape[0] * inches_per_pixel + 0.8, left=0.2, right=right, top=0.7, bottom=0.1)
    ax = figure.subplots()
    ax.imshow(mosaic, interpolation="nearest")
    ax.set_axis_off()
    return figure, ax, tops


def plot_top_losses(predictions: DataFrame, model_inputs: Mapping[str, np.ndarray], settings: Interpretation,
                    class_names: list[str]) -> Figure:
    """The highest-loss test images, each with its true class, the predicted one and their probabilities."""
    indices = top_loss_indices(predictions, settings.top_losses)
    tiles = np.repeat(model_inputs["test_images"][indices, :, :, :1], 3, axis=-1)
    figure, ax, tops = tiled_figure(tiles, range(len(indices)), min(len(indices), 4), band=9, inches_per_pixel=0.07)
    for (x, y), row in zip(tops, predictions.iloc[indices].itertuples(), strict=True):
        ax.text(x, y, f"test image {row.Index}, loss {row.loss:.2f}\ntrue: {class_names[row.label]} "
                      f"{percent(np.exp(-row.loss))}\npredicted: {class_names[row.predicted]} "
                      f"{percent(row.confidence)}", ha="center", va="bottom", fontsize=9)
    figure.suptitle(f"The {len(indices)} test images with the highest loss (of {len(predictions)})")
    return figure


def tabulate_most_confused(predictions: DataFrame, class_names: list[str]) -> DataFrame:
    """Every pair of a true class and another predicted one in the test set, most frequent first."""
    import pandas as pd

    counts = confusion_counts(predictions, len(class_names))
    images = counts.sum(axis=1)
    np.fill_diagonal(counts, 0)
    true, predicted = np.nonzero(counts)
    names = np.asarray(class_names, dtype=object)
    table = pd.DataFrame({"true": names[true], "predicted": names[predicted], "count": counts[true, predicted],
                          "share_of_true_class": np.round(counts[true, predicted] / images[true], 4)})
    return table.sort_values("count", ascending=False, kind="stable", ignore_index=True)


def plot_grad_cam(model: Any, images: np.ndarray, labels: Sequence[int], captions: Sequence[str],
                  class_names: list[str], layer: str | None = None, first_row: int = 0) -> Figure:
    """Each image, then Grad-CAM over it for the class the model predicts and for the true class if another
    (else the runner-up; ``labels`` -1: unknown), 4 to a row, the first ``first_row`` images on their own."""
    import matplotlib

    probabilities = np.asarray(model(images, training=False), dtype=np.float64)  # eager: nothing to trace
    ranked, labels = probabilities.argsort(axis=1)[:, ::-1], np.asarray(labels)
    other = np.where((labels >= 0) & (labels != ranked[:, 0]), labels, ranked[:, 1])
    heatmaps = grad_cam(model, np.concatenate([images, images]), np.concatenate([ranked[:, 0], other]), layer)
    grey = np.repeat(np.asarray(images, np.float64)[..., :1], 3, axis=-1)
    blends = 0.5 * grey + 0.5 * matplotlib.colormaps["jet"](heatmaps.reshape(2, *images.shape[:3]))[..., :3]
    gap, per_row = np.ones((*images.shape[:2], 1, 3)), min(4, len(images))
    slots = [index + (index >= first_row) * (-first_row % per_row) for index in range(len(images))]
    figure, ax, tops = tiled_figure(np.concatenate([grey, gap, blends[0], gap, blends[1]], axis=2), slots, per_row,
                                    band=9, inches_per_pixel=0.04, right=1.0)
    for index, (x, y) in enumerate(tops):
        role = "true" if other[index] == labels[index] else "runner-up"
        titles = [captions[index] + (f"\ntrue: {class_names[labels[index]]}" if labels[index] >= 0 else ""),
                  *(f"{class_names[c]}\n{r} {percent(probabilities[index, c])}"
                    for c, r in ((ranked[index, 0], "predicted"), (other[index], role)))]
        for panel, title in enumerate(titles):
            ax.text(x + (panel - 1) * (images.shape[2] + 1), y, title, ha="center", va="bottom", fontsize=8)
    scale, width = matplotlib.cm.ScalarMappable(matplotlib.colors.Normalize(0, 1), "jet"), figure.get_figwidth()
    figure.colorbar(scale, cax=figure.add_axes((1 - 0.65 / width, 0.2, 0.12 / width, 0.55)), label="Grad-CAM")
    name = grad_cam_layer(model, layer).name
    figure.suptitle(f"{model.name}: where it finds evidence for a class (Grad-CAM of {name})"
                    "\neach image, then for the class it predicts and for the true class (else the runner-up)")
    return figure


def render_grad_cam(model: Any, model_inputs: Mapping[str, np.ndarray], predictions: DataFrame,
                    grid: ActivationGrid, settings: Interpretation, class_names: list[str]) -> Figure:
    """:func:`plot_grad_cam` for the activation grid's test images (a row), then the top-loss ones."""
    top = top_loss_indices(predictions, settings.top_losses)
    indices = [*grid.image_indices, *top]
    captions = [*(f"test {i} (grid)" for i in grid.image_indices), *(f"test {i}" for i in top)]
    return plot_grad_cam(model, model_inputs["test_images"][indices], model_inputs["test_labels"][indices], captions,
                         class_names, settings.grad_cam_layer, first_row=len(grid.image_indices))
