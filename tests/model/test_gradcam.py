"""Grad-CAM (fashion_cnn.model.gradcam): where a model finds evidence for a class, on a tiny model
trained in seconds on generated images whose class is decided by pixels the test knows."""

from __future__ import annotations

import numpy as np
import pytest

from fashion_cnn.model.architecture import build_model
from fashion_cnn.model.gradcam import cell_centres, grad_cam, grad_cam_layer

SQUARE = 7


def squares(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Noise with a bright diagonal line in every image; class 1 also has a bright square somewhere.
    The square's pixels decide the class; the line is as bright and decides nothing."""
    rng = np.random.default_rng(seed)
    images = rng.random((n, 28, 28, 1), dtype=np.float32) * 0.3
    labels = np.arange(n) % 2
    corners = rng.integers(0, 28 - SQUARE + 1, (n, 2))
    for image, label, (y, x) in zip(images, labels, corners, strict=True):
        line_y, line_x = (y + 14) % 22, (x + 11) % 22  # away from the square
        image[line_y + np.arange(7), line_x + np.arange(7), 0] = 1.0
        if label:
            image[y:y + SQUARE, x:x + SQUARE, 0] = 1.0
    return images, labels, corners


@pytest.fixture(scope="module")
def square_finder():
    import keras

    model = build_model("square_finder", [
        {"Conv2D": {"filters": 8, "kernel_size": 3, "activation": "relu"}},
        {"MaxPooling2D": {"pool_size": 2}},
        {"Conv2D": {"filters": 8, "kernel_size": 3, "activation": "relu"}},
        "Flatten",
        {"Dense": {"units": 2, "activation": "softmax"}},
    ], (28, 28, 1), 2)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    keras.utils.set_random_seed(0)
    images, labels, _ = squares(1000, seed=0)
    model.fit(images, labels, epochs=5, batch_size=32, verbose=0)
    return model


def test_the_heatmap_is_largest_on_the_pixels_that_decide_the_class(square_finder):
    images, labels, corners = squares(100, seed=1)
    assert (square_finder.predict(images, verbose=0).argmax(axis=1) == labels).mean() >= 0.95  # it learned
    with_square, corners = images[labels == 1], corners[labels == 1]
    count = len(with_square)
    heatmaps = grad_cam(square_finder, np.concatenate([with_square, with_square]), np.repeat([1, 0], count))
    assert heatmaps.shape == (2 * count, 28, 28) and heatmaps.min() >= 0 and heatmaps.max() <= 1
    square = [(slice(y, y + SQUARE), slice(x, x + SQUARE)) for y, x in corners]
    for_square = heatmaps[:count]
    on_top = [np.isclose(heatmap[box].max(), heatmap.max()) for heatmap, box in zip(for_square, square, strict=True)]
    assert np.mean(on_top) >= 0.96, f"the maximum is in the square in only {sum(on_top)} of {count} images"
    # For the other class the square is evidence against: Grad-CAM keeps only evidence for a class.
    inside = [heatmap[box].mean() for heatmap, box in zip(heatmaps, square * 2, strict=True)]
    assert np.mean(inside[:count]) > 0.4 > 0.05 > np.mean(inside[count:])


def test_cells_are_centred_on_their_receptive_fields():
    """Against each cell's receptive field found by gradients, in linear models (so every pixel of
    the field has a gradient), with valid and same padding and strides."""
    import keras
    import tensorflow as tf

    for architecture in (
        [{"Conv2D": {"filters": 2, "kernel_size": 3}}, {"AveragePooling2D": {"pool_size": 2}},
         {"Conv2D": {"filters": 2, "kernel_size": 3}}],
        [{"Conv2D": {"filters": 2, "kernel_size": 5, "padding": "same", "strides": 2}},
         {"AveragePooling2D": {"pool_size": 2}}, {"Conv2D": {"filters": 2, "kernel_size": 3, "padding": "same"}}],
    ):
        model = build_model("probe", [*architecture, "Flatten", {"Dense": {"units": 2}}], (28, 28, 1), 2)
        layer = model.layers[len(architecture)]
        rows, columns = cell_centres(model, layer)
        probe = keras.Model(model.inputs, layer.output)
        image = tf.ones((1, 28, 28, 1))
        for i, j in [(2, 2), (2, len(columns) - 3), (len(rows) // 2, len(columns) // 2)]:  # fields inside the image
            with tf.GradientTape() as tape:
                tape.watch(image)
                cell = probe(image)[0, i, j, 0]
            field_rows, field_columns = np.nonzero(tape.gradient(cell, image).numpy()[0, :, :, 0])
            assert rows[i] == (field_rows.min() + field_rows.max()) / 2
            assert columns[j] == (field_columns.min() + field_columns.max()) / 2


def test_the_layer_is_the_last_convolution_or_the_one_named():
    cnn = build_model("cnn", [
        {"Conv2D": {"filters": 4, "kernel_size": 3}}, {"MaxPooling2D": {"pool_size": 2}},
        {"Conv2D": {"filters": 4, "kernel_size": 3}}, {"MaxPooling2D": {"pool_size": 2}},
        "Flatten", {"Dense": {"units": 10, "activation": "softmax"}},
    ], (28, 28, 1), 10)
    assert grad_cam_layer(cnn, None).name == "conv2d_3"
    assert grad_cam_layer(cnn, "max_pooling2d_2").name == "max_pooling2d_2"
    with pytest.raises(ValueError, match=r"`interpretation\.grad_cam_layer`: model 'cnn' has no feature-map layer "
                                         r"'flatten_5'; its feature maps are \['conv2d_1', 'max_pooling2d_2'"):
        grad_cam_layer(cnn, "flatten_5")
    dense = build_model("dense", ["Flatten", {"Dense": {"units": 10, "activation": "softmax"}}], (28, 28, 1), 10)
    with pytest.raises(ValueError, match="Model 'dense' has no convolution for Grad-CAM"):
        grad_cam_layer(dense, None)
