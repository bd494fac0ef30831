"""Which layers' feature maps the notebook's activation grid shows, and checks of its settings."""

from __future__ import annotations

from typing import Any


def model_layers(model: Any) -> list[Any]:
    """The model's layers without the input layer, indexed as the notebook's ``model.layers``."""
    return [layer for layer in model.layers if type(layer).__name__ != "InputLayer"]


def select_activation_layers(model: Any, layers: int | list[int | str]) -> list[Any]:
    """The layers to show: the first ``layers`` feature-map layers, or the listed names/indices."""
    all_layers = model_layers(model)
    feature_maps = [layer for layer in all_layers if len(layer.output.shape) == 4]
    if isinstance(layers, int) and not isinstance(layers, bool):
        if layers < 1:
            raise ValueError(f"`activation_grid.layers` must be at least 1, got {layers}.")
        return feature_maps[:layers]
    chosen = []
    by_name = {layer.name: layer for layer in all_layers}
    for key in layers:
        if isinstance(key, str):
            if key not in by_name:
                raise ValueError(f"`activation_grid.layers`: model '{model.name}' has no layer '{key}'; "
                                 f"its layers are {list(by_name)}.")
            layer = by_name[key]
        elif 0 <= key < len(all_layers):
            layer = all_layers[key]
        else:
            raise ValueError(f"`activation_grid.layers`: index {key} is outside model '{model.name}' "
                             f"(layers 0..{len(all_layers) - 1}).")
        if layer not in feature_maps:
            raise ValueError(f"`activation_grid.layers`: layer '{layer.name}' of model '{model.name}' outputs "
                             f"{tuple(layer.output.shape)}, not a feature map (batch, height, width, channels).")
        chosen.append(layer)
    return chosen


def check_activation_settings(model: Any, settings: dict[str, Any], test_images: int | None) -> list[Any]:
    """Raise a clear error for image indices outside the test set (when its size is known) or a
    filter index a chosen layer does not have; return the chosen layers."""
    bad = [i for i in settings["image_indices"] if not 0 <= i < (test_images or float("inf"))]
    if bad:
        raise ValueError(
            f"`activation_grid.image_indices`: {bad} outside the {test_images} test images this run uses "
            f"(0..{test_images - 1}); choose other images, or raise `data.test_limit` if it is set."
        )
    layers = select_activation_layers(model, settings["layers"])
    if not layers:
        raise ValueError(f"Model '{model.name}' has no feature-map layers to show.")
    for layer in layers:
        channels = layer.output.shape[-1]
        if not 0 <= settings["filter_index"] < channels:
            raise ValueError(
                f"`activation_grid.filter_index` {settings['filter_index']} is not below the {channels} "
                f"channels of layer '{layer.name}' in model '{model.name}'."
            )
    return layers
