"""Classify the user's own pictures with a trained model variant.

The images reach the nodes as lazy loaders (one per file, from the partitioned ``predict_images`` dataset, or one
per row of a request to the served MLflow model), so they are prepared one after another and a file that cannot
be used is listed with its reason instead of stopping the run.
"""

from __future__ import annotations

import base64
import binascii
import io
import logging
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import numpy as np

from fashion_cnn.datasets import ReadOnlyArrays
from fashion_cnn.datasets.image_files import UnusableImageError, open_image
from fashion_cnn.model.choice import choose_model
from fashion_cnn.model.novelty import REFERENCE_PARTITION, novelty_scores
from fashion_cnn.pipelines import DataFrame, Figure

from .preparation import NoItemFound, fashion_mnist_image

logger = logging.getLogger(__name__)


def choose_model_to_predict(trained_models: Mapping[str, Callable[[], Any]],
                            novelty_references: Mapping[str, Callable[[], Any]], variant: str,
                            model_version: str | None) -> tuple[Any, dict[str, str], dict[str, Any]]:
    """The model ``predict.variant`` and ``predict.model_version`` name (null: the newest), loaded,
    which one it is, and its novelty reference (empty for a model trained before they existed)."""
    variant, version, load = choose_model(trained_models, variant, model_version, "predict")
    logger.info("Classifying with variant '%s', model version %s.", variant, version)
    reference = novelty_references.get(REFERENCE_PARTITION.format(variant=variant, version=version))
    if reference is None:
        logger.warning("Model version %s of '%s' has no novelty reference (it was trained before they existed): "
                       "the column `unfamiliar` stays empty. To get the flag, train it again: kedro run "
                       "--pipelines %s", version, variant, variant)
    return load(), {"variant": variant, "version": version}, reference() if reference else {}


def prepare_images(images: Mapping[str, Callable[[], Any]], input_shape: list[int]) -> ReadOnlyArrays:
    """Every image, prepared as Fashion-MNIST's were (:func:`.preparation.fashion_mnist_image`): ``files`` (every
    name, in order), ``problems`` (why each file was skipped; empty for the usable ones) and ``images`` (the usable
    ones, ``(n, height, width, 1)`` float32 in [0, 1])."""
    size = (int(input_shape[0]), int(input_shape[1]))
    problems, prepared = [], []
    for name, load in images.items():
        try:
            prepared.append(fashion_mnist_image(load(), size))
            problems.append("")
        except (UnusableImageError, NoItemFound) as exc:
            problems.append(exc.reason if isinstance(exc, UnusableImageError) else str(exc))
            logger.warning("Skipped %s: %s.", name, problems[-1])
    if images and not prepared:
        logger.warning("None of the %d file(s) is a usable image.", len(images))
    return ReadOnlyArrays({
        "files": np.array(list(images), dtype=str),
        "problems": np.array(problems, dtype=str),
        "images": np.stack(prepared)[..., np.newaxis] if prepared else np.zeros((0, *size, 1), np.float32),
    })


def decoded_image(encoded: Any, name: str) -> Any:
    """The base64-encoded image file ``encoded`` (a request's ``image`` cell), opened."""
    if not isinstance(encoded, str) or not encoded:
        raise UnusableImageError(name, "no image: the `image` column must hold the file's bytes in base64")
    try:
        content = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise UnusableImageError(name, "the `image` value is not base64 text") from None
    return open_image(io.BytesIO(content), name, len(content))  # refuses it if too large


def prepare_request_images(request: DataFrame, input_shape: list[int]) -> ReadOnlyArrays:
    """:func:`prepare_images` for a request to the served model: a table with a column ``image``
    (each image file's bytes, base64-encoded) and, optionally, ``file`` (a name to report)."""
    if "image" not in request:
        raise ValueError(f"The request needs a column `image` (image files in base64); it has {list(request.columns)}.")
    names = list(request["file"]) if "file" in request else [None] * len(request)
    loaders = {}
    for index, (name, encoded) in enumerate(zip(names, request["image"], strict=True)):
        name = str(name) if isinstance(name, str) and name else f"image {index + 1}"
        if name in loaders:
            name = f"{name} ({index + 1})"
        loaders[name] = partial(decoded_image, encoded, name)  # decoded when prepared, one after another
    return prepare_images(loaders, input_shape)


def predict_top_classes(model: Any, prepared: Mapping[str, np.ndarray], novelty_reference: dict[str, Any],
                        class_names: list[str], top_k: int) -> DataFrame:
    """The ``top_k`` most probable classes of each usable image, with their probabilities; its
    ``novelty_score`` and whether that flags it as ``unfamiliar`` (None without a novelty reference)."""
    import pandas as pd

    usable, images = prepared["problems"] == "", prepared["images"]
    probabilities = (model.predict(images, batch_size=256, verbose=0) if len(images) else
                     np.zeros((0, len(class_names)))).astype(np.float64)
    if probabilities.shape[1] != len(class_names):
        raise ValueError(f"The model has {probabilities.shape[1]} outputs but `data.class_names` names "
                         f"{len(class_names)} classes; the model was trained with other classes.")
    order = np.argsort(-probabilities, axis=1, kind="stable")[:, :top_k]
    names = np.asarray(class_names, dtype=object)
    chosen = np.take_along_axis(probabilities, order, axis=1).round(4)
    table = {"file": prepared["files"][usable]}
    for rank in range(top_k):
        table[f"class_{rank + 1}"] = names[order[:, rank]]
        table[f"probability_{rank + 1}"] = chosen[:, rank]
    scores = novelty_scores(model, images, novelty_reference) if novelty_reference else None
    table["novelty_score"] = None if scores is None else scores.round(2)
    table["unfamiliar"] = None if scores is None else scores > novelty_reference["threshold"]
    return pd.DataFrame(table)


def tabulate_predictions(top_classes: DataFrame, prepared: Mapping[str, np.ndarray]) -> DataFrame:
    """One row per input, in input order: its top classes, or why it was skipped. A skipped file's classes and
    probabilities are None, not NaN: empty cells in the CSV file, ``null`` in the served model's JSON answer."""
    import pandas as pd

    rows = pd.DataFrame({"file": prepared["files"], "skipped_because": prepared["problems"]})
    table = rows.merge(top_classes, on="file", how="left", validate="one_to_one")
    table = table[[*top_classes.columns, "skipped_because"]]
    for column in top_classes.columns.drop("file"):
        table[column] = table[column].astype(object).where(table[column].notna(), None)
    return table


def plot_contact_sheet(prepared: Mapping[str, np.ndarray], predictions: DataFrame, model: Mapping[str, str],
                       settings: Mapping[str, int]) -> Figure:
    """Each image as the model saw it (28x28, light on black), with its predicted class and the probability, in a
    red frame if unlike the training images; the skipped files are listed underneath."""
    from fashion_cnn.pipelines.variants.figures import margined_figure

    usable = predictions[prepared["problems"] == ""]
    skipped = [(f, p) for f, p in zip(prepared["files"], prepared["problems"], strict=True) if p]
    shown = min(len(usable), settings["max_images"])
    columns = max(1, min(settings["columns"], shown))
    rows = -(-shown // columns)
    lines = [f"skipped {_shorten(file, 40)}: {problem}" for file, problem in skipped[:8]]
    if len(skipped) > 8:
        lines.append(f"... and {len(skipped) - 8} more skipped file(s), listed in predictions.csv")
    if not shown:
        lines.insert(0, "No usable image.")
    elif usable["unfamiliar"].isna().all():
        lines.insert(0, "No novelty flag: this model was trained before it existed (train it again).")
    elif flagged := int(usable["unfamiliar"].sum()):
        lines.insert(0, f"Red frame, 'unfamiliar': unlike the images the model was trained on ({flagged} of "
                        f"{len(usable)}).")
    # Inches: a cell, the title above the grid, and below it the file names and the skipped files.
    cell_width, cell_height, header, footer = 1.5, 1.85, 0.7, 0.3 + 0.2 * len(lines)
    # No image, no axes: no header margin, which would leave no room between the margins.
    figure = margined_figure(max(columns * cell_width, 5.0), rows * cell_height + header + footer, left=0.1, right=0.1,
                             top=header if shown else 0.0, bottom=footer, wspace=0.15, hspace=0.55)
    title = f"{model['variant']} (model version {model['version']}): {len(usable)} image(s) as the model saw them"
    if shown < len(usable):
        title += f", the first {shown} shown"
    figure.suptitle(title, fontsize=10, y=1 - 0.25 / figure.get_figheight())
    if shown:
        axes = figure.subplots(rows, columns, squeeze=False).ravel()
        for ax, (index, row) in zip(axes, enumerate(usable.itertuples(index=False))):
            ax.imshow(prepared["images"][index, :, :, 0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            label = f"{row.class_1}\n{row.probability_1:.0%}"
            if unfamiliar := row.unfamiliar is not None and bool(row.unfamiliar):
                label = f"unfamiliar\n({row.class_1} {row.probability_1:.0%})"
                ax.spines[:].set(color="red", linewidth=3)
            ax.set_title(label, fontsize=9, pad=3, color="red" if unfamiliar else "black")
            ax.set_xlabel(_shorten(row.file, 20), fontsize=7, labelpad=2)
            ax.set(xticks=[], yticks=[])
        for ax in axes[shown:]:
            ax.set_axis_off()
    for number, line in enumerate(lines):
        figure.text(0.1 / figure.get_figwidth(), (footer - 0.45 - 0.2 * number) / figure.get_figheight(), line,
                    fontsize=8, va="bottom", color="dimgray" if shown else "black")
    return figure


def _shorten(text: str, length: int) -> str:
    return text if len(text) <= length else "..." + text[-(length - 3):]
