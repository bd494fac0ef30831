"""Grad-CAM (Selvaraju et al. 2017) as in the Keras example "Grad-CAM class activation visualization": where in an
image a convolution's feature maps gave the model its evidence for a class. Also the checks against the model of
the feature-map layers it and the notebook's activation grid show (called before any training, too)."""

from __future__ import annotations

from typing import Any

import numpy as np

from fashion_cnn.parameters import ActivationGrid
from fashion_cnn.variants import CONVOLUTION_LAYERS


def grad_cam_layer(model: Any, name: str | None) -> Any:
    """The feature-map layer ``interpretation.grad_cam_layer`` names, else the last convolution; ValueError if none."""
    maps = [layer for layer in model.layers if len(layer.output.shape) == 4 and type(layer).__name__ != "InputLayer"]
    chosen = [layer for layer in maps if layer.name == name] if name else [
        layer for layer in maps if type(layer).__name__ in CONVOLUTION_LAYERS][-1:]
    if not chosen:
        raise ValueError(f"`interpretation.grad_cam_layer`: model '{model.name}' has no feature-map layer "
                         f"'{name}'; its feature maps are {[layer.name for layer in maps]}."
                         if name else f"Model '{model.name}' has no convolution for Grad-CAM.")
    return chosen[0]


def check_activation_settings(model: Any, settings: ActivationGrid, test_images: int | None) -> list[Any]:
    """The activation grid's layers: the first ``settings.layers`` feature-map layers, or the listed names or indices
    (of the layers without the input layer, as the notebook's ``model.layers``); ValueError naming the setting at
    fault. ``test_images``: the size of the test set, None when unknown."""
    bad = [i for i in settings.image_indices if not 0 <= i < (test_images or float("inf"))]
    if bad:
        raise ValueError(f"`activation_grid.image_indices`: {bad} outside the {test_images} test images this run "
                         f"uses (0..{test_images - 1}); choose other images, or raise `data.test_limit` if it is set.")
    all_layers = [layer for layer in model.layers if type(layer).__name__ != "InputLayer"]
    feature_maps = [layer for layer in all_layers if len(layer.output.shape) == 4]
    layers = feature_maps[:settings.layers] if isinstance(settings.layers, int) else [
        _listed_layer(model, all_layers, key) for key in settings.layers]
    if not layers:
        raise ValueError(f"Model '{model.name}' has no feature-map layers to show.")
    for layer in layers:
        if not 0 <= settings.filter_index < (channels := layer.output.shape[-1]):
            raise ValueError(f"`activation_grid.filter_index` {settings.filter_index} is not below the {channels} "
                             f"channels of layer '{layer.name}' in model '{model.name}'.")
    return layers


def _listed_layer(model: Any, all_layers: list[Any], key: int | str) -> Any:
    names = [layer.name for layer in all_layers]
    if isinstance(key, str) and key not in names:
        raise ValueError(f"`activation_grid.layers`: model '{model.name}' has no layer '{key}'; "
                         f"its layers are {names}.")
    if isinstance(key, int) and not 0 <= key < len(all_layers):
        raise ValueError(f"`activation_grid.layers`: index {key} is outside model '{model.name}' "
                         f"(layers 0..{len(all_layers) - 1}).")
    layer = all_layers[names.index(key) if isinstance(key, str) else key]
    if len(layer.output.shape) != 4:
        raise ValueError(f"`activation_grid.layers`: layer '{layer.name}' of model '{model.name}' outputs "
                         f"{tuple(layer.output.shape)}, not a feature map (batch, height, width, channels).")
    return layer


def cell_centres(model: Any, layer: Any) -> list[np.ndarray]:
    """Where in the image each row and each column of ``layer``'s maps is centred (its receptive field's
    centre), from the kernel or pool sizes, strides and padding of the layers up to it."""
    scale, offset = np.ones(2), np.zeros(2)
    for current in model.layers[:model.layers.index(layer) + 1]:
        size = getattr(current, "kernel_size", None) or getattr(current, "pool_size", None)
        if size is not None:
            size, strides = np.asarray(size), np.asarray(current.strides)
            before = np.maximum(size - strides, 0) // 2 if current.padding == "same" else 0
            offset += scale * ((size - 1) / 2 - before)
            scale *= strides
    return [scale[axis] * np.arange(layer.output.shape[1 + axis]) + offset[axis] for axis in (0, 1)]


def grad_cam(model: Any, images: np.ndarray, classes: np.ndarray, layer: str | None = None) -> np.ndarray:
    """Heatmaps ``(n, height, width)`` in [0, 1]: the layer's maps weighted by the mean gradient of the score
    of each image's class in ``classes``, positive part, interpolated between the cells' centres. The score
    is the input to the last layer's softmax, as in the paper and the example (a probability near 1 has no
    gradient left); the example stretches the map over the image, which on 28 pixels moves the last
    convolution's edges 3 pixels outwards."""
    import keras
    import tensorflow as tf

    head, chosen = model.layers[-1], grad_cam_layer(model, layer)
    logits = isinstance(head, keras.layers.Dense) and head.activation is keras.activations.softmax
    cam_model = keras.Model(model.inputs, [chosen.output, head.input if logits else model.output])
    with tf.GradientTape() as tape:
        maps, top = cam_model(tf.convert_to_tensor(images, tf.float32), training=False)
        top = tf.cast(top, tf.float32)
        if logits:
            top = keras.ops.matmul(top, head.kernel) + (head.bias if head.use_bias else 0)
        scores = tf.gather(top, np.asarray(classes, np.int32), batch_dims=1)
    weights = tf.reduce_mean(tf.cast(tape.gradient(scores, maps), tf.float32), axis=(1, 2), keepdims=True)
    cams = tf.nn.relu(tf.reduce_sum(weights * tf.cast(maps, tf.float32), axis=-1)).numpy()
    # Row k of each matrix: cell k's weights in the linear interpolation at every pixel of that axis.
    rows, columns = ([np.interp(np.arange(images.shape[1 + axis]), centres, unit) for unit in np.eye(len(centres))]
                     for axis, centres in enumerate(cell_centres(model, chosen)))
    cams = np.einsum("nij,iy,jx->nyx", cams, rows, columns)
    peaks = cams.max(axis=(1, 2), keepdims=True)
    return np.divide(cams, peaks, out=np.zeros_like(cams), where=peaks > 0)
