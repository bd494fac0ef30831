"""Which layers' feature maps the notebook's activation grid shows: the checks of its settings that
need the model (the others are :class:`fashion_cnn.parameters.ActivationGrid`'s)."""

from __future__ import annotations

from typing import Any

from fashion_cnn.parameters import ActivationGrid


def check_activation_settings(model: Any, settings: ActivationGrid, test_images: int | None) -> list[Any]:
    """The layers to show: the first ``settings.layers`` feature-map layers, or the listed names or
    indices (of the layers without the input layer, as the notebook's ``model.layers``). ValueError for
    an image index outside the test set (when its size is known), a layer the model lacks or that is not
    a feature map, or a filter index a chosen layer does not have."""
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
