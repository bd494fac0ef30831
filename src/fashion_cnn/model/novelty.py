"""How unlike the training images an image is: the score behind `predict`'s flag "not something I know".

The Mahalanobis detector of Lee, Lee, Lee and Shin (NeurIPS 2018) without its input preprocessing, and with its
layers standardised on the test set and counted equally, having no out-of-distribution examples to fit the paper's
weights on; docs/predict.md ("Not something I know") gives the method step by step.
"""

from __future__ import annotations

from typing import Any

import numpy as np

FIT_IMAGES = 10_000  # training images the class means and covariances are fitted on (a seeded subset)
METHOD = "Mahalanobis distance to the nearest class mean, per layer, standardised and summed (Lee et al. 2018)"
# A reference's key in the `novelty_references` partitions (the files `{variant}.novelty_reference` writes).
REFERENCE_PARTITION = "{variant}/novelty_reference.json/{version}/novelty_reference"


def layer_features(model: Any, images: np.ndarray) -> list[np.ndarray]:
    """Each feature layer's features of ``images``: every feature-map layer's channel means, then the
    input of the last layer (float64, one row per image)."""
    import keras

    means = [keras.layers.GlobalAveragePooling2D()(layer.output) for layer in model.layers
             if len(layer.output.shape) == 4 and type(layer).__name__ != "InputLayer"]
    found = keras.Model(model.inputs, [*means, model.layers[-1].input]).predict(images, batch_size=256, verbose=0)
    return [np.asarray(features, np.float64).reshape(len(images), -1)
            for features in (found if isinstance(found, list) else [found])]  # one output (Dense only): an array


def distances(features: np.ndarray, layer: dict[str, Any]) -> np.ndarray:
    """Squared Mahalanobis distance of each row of ``features`` to the nearest class mean of ``layer``."""
    means, precision = np.asarray(layer["class_means"]), np.asarray(layer["precision"])
    projected = features @ precision
    to_means = (projected * features).sum(axis=1)[:, None] - 2 * projected @ means.T
    return (to_means + np.einsum("ci,ij,cj->c", means, precision, means)).min(axis=1)


def combined(features: list[np.ndarray], layers: list[dict[str, Any]]) -> np.ndarray:
    return sum((distances(found, layer) - layer["test_mean"]) / layer["test_std"]
               for found, layer in zip(features, layers, strict=True))


def fit_reference(model: Any, train_images: np.ndarray, train_labels: np.ndarray, test_images: np.ndarray,
                  test_share: float, seed: int) -> dict[str, Any]:
    """The class means, shared precision matrix and test-set standardisation of each feature layer, and
    the score above which ``test_share`` of the test images lie: a JSON-ready dict."""
    subset = np.sort(np.random.default_rng(seed).permutation(len(train_images))[:FIT_IMAGES])
    labels = np.asarray(train_labels)[subset]
    classes = np.unique(labels)
    # One forward pass for both sets; each layer's features are then split into the two.
    found = [np.split(features, [len(subset)]) for features in
             layer_features(model, np.concatenate([train_images[subset], test_images]))]
    layers = []
    for fitted, tested in found:
        means = np.stack([fitted[labels == label].mean(axis=0) for label in classes])
        centred = fitted - means[np.searchsorted(classes, labels)]
        precision = np.linalg.pinv(centred.T @ centred / len(fitted), hermitian=True)
        layer = {"class_means": means.tolist(), "precision": precision.tolist()}  # as JSON will give them back
        test = distances(tested, layer)
        layers.append({**layer, "test_mean": float(test.mean()), "test_std": float(max(test.std(), 1e-12))})
    threshold = float(np.quantile(combined([tested for _, tested in found], layers), 1 - test_share))
    return {"method": METHOD, "test_share": test_share, "threshold": threshold, "fit_images": len(subset),
            "test_images": len(test_images), "layers": layers}


def novelty_scores(model: Any, images: np.ndarray, reference: dict[str, Any]) -> np.ndarray:
    """Each image's score (0 is a typical test image; above ``reference["threshold"]``: flagged)."""
    if not len(images):
        return np.zeros(0)
    return combined(layer_features(model, images), reference["layers"])
