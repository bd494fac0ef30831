"""Keras models built from the architecture specs in ``conf/base/parameters*.yml``.

A spec is an ordered list of one-key mappings, ``- Conv2D: {filters: 32, kernel_size: 3}``;
the key is a class of ``keras.layers`` and the mapping its keyword arguments. Every
problem is reported as :class:`SpecError` naming the variant and the layer, before any
training starts. Keras is imported inside the functions so that the Kedro CLI stays fast.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any


class SpecError(ValueError):
    """A variant's architecture or training parameters are invalid."""


def parse_layer(variant: str, index: int, entry: Any) -> tuple[str, dict[str, Any]]:
    """Return ``(layer type, kwargs)`` for one spec entry, or raise :class:`SpecError`."""
    where = f"Variant '{variant}', layer {index}"
    if isinstance(entry, str):
        return entry, {}
    if not isinstance(entry, Mapping) or len(entry) != 1:
        raise SpecError(
            f"{where}: expected a one-key mapping such as `- Conv2D: {{filters: 32, kernel_size: 3}}`, "
            f"got {entry!r}."
        )
    ((layer_type, kwargs),) = entry.items()
    if kwargs is None:
        kwargs = {}
    if not isinstance(kwargs, Mapping):
        raise SpecError(f"{where} ({layer_type}): arguments must be a mapping, got {kwargs!r}.")
    return str(layer_type), dict(kwargs)


def layer_types() -> list[str]:
    """Names of every layer class in ``keras.layers``."""
    import keras

    return sorted(
        name
        for name in dir(keras.layers)
        if isinstance(getattr(keras.layers, name), type)
        and issubclass(getattr(keras.layers, name), keras.layers.Layer)
        and name not in {"Layer", "InputLayer", "Input"}
    )


def default_layer_name(layer_type: str, index: int) -> str:
    """Stable, readable names (``conv2d_1``) that do not depend on Keras's global counters."""
    snake = re.sub(r"(?<=[a-z])(?=[A-Z])", "_", layer_type).lower()
    return f"{snake}_{index}"


def build_model(
    variant: str,
    architecture: Sequence[Any],
    input_shape: Sequence[int],
    num_classes: int,
    precision: str = "float32",
):
    """Build an uncompiled functional ``keras.Model`` from ``architecture``.

    With ``precision="mixed_bfloat16"`` every layer computes in bfloat16 and keeps float32
    weights (Keras's dtype policy), except the last, whose probabilities stay float32; a layer
    given its own ``dtype`` in the spec keeps it.

    Raises :class:`SpecError` naming the variant and the layer for an unknown layer type,
    bad arguments, a feature map that shrinks below 1x1, or a wrong output shape.
    """
    import keras

    if not isinstance(architecture, Sequence) or isinstance(architecture, str) or not architecture:
        raise SpecError(
            f"Variant '{variant}': `architecture` must be a non-empty list of layers, got {architecture!r}."
        )
    known = layer_types()
    inputs = keras.Input(shape=tuple(input_shape), name="images")
    x = inputs
    for index, entry in enumerate(architecture, start=1):
        layer_type, kwargs = parse_layer(variant, index, entry)
        where = f"Variant '{variant}', layer {index} ({layer_type})"
        if layer_type not in known:
            close = difflib.get_close_matches(layer_type, known, n=3)
            hint = f" Did you mean {' or '.join(close)}?" if close else ""
            raise SpecError(
                f"Variant '{variant}', layer {index}: unknown layer type '{layer_type}'.{hint} "
                f"Valid types are the classes of keras.layers: {', '.join(known)}."
            )
        kwargs.setdefault("name", default_layer_name(layer_type, index))
        if precision != "float32":
            kwargs.setdefault("dtype", "float32" if index == len(architecture) else precision)
        try:
            layer = getattr(keras.layers, layer_type)(**kwargs)
        except (TypeError, ValueError) as exc:
            raise SpecError(f"{where}: bad arguments {kwargs}: {exc}") from exc
        shrink_hint = (
            "Remove a pooling/convolution layer, use a smaller kernel or pool size, or add `padding: same`."
        )
        try:
            y = layer(x)
        except (TypeError, ValueError) as exc:
            if "zero or negative" in str(exc):
                raise SpecError(
                    f"{where}: the feature map shrinks below 1x1 (input shape {tuple(x.shape)} is too "
                    f"small for this layer). {shrink_hint}"
                ) from exc
            raise SpecError(f"{where}: cannot be applied to input of shape {tuple(x.shape)}: {exc}") from exc
        if any(dim is not None and dim < 1 for dim in y.shape[1:]):
            raise SpecError(
                f"{where}: the feature map shrinks below 1x1 (output shape {tuple(y.shape)}). {shrink_hint}"
            )
        x = y
    if tuple(x.shape) != (None, num_classes):
        raise SpecError(
            f"Variant '{variant}': the last layer outputs shape {tuple(x.shape)}, but a classifier "
            f"of the {num_classes} classes needs (None, {num_classes}); end with Flatten and "
            f"`Dense: {{units: {num_classes}, activation: softmax}}`."
        )
    return keras.Model(inputs=inputs, outputs=x, name=variant)


def forward_flops(model) -> int:
    """Floating-point operations of one image's forward pass through the convolutions and dense
    layers (two per multiply-add); training costs about three times this per image (the forward
    pass and the backward pass's two products)."""
    flops = 0
    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "Conv2D":
            kernel_height, kernel_width, channels_in, channels_out = layer.kernel.shape
            _, height, width, _ = layer.output.shape
            flops += 2 * height * width * kernel_height * kernel_width * channels_in * channels_out
        elif kind == "Dense":
            flops += 2 * layer.kernel.shape[0] * layer.kernel.shape[1]
    return int(flops)


SUMMARY_WIDTH = 100


def model_summary(model) -> str:
    """``model.summary()`` as plain text: the whole table (layer, output shape, parameters) and
    the totals."""
    lines: list[str] = []
    # Keras draws the table on a rich console as wide as the terminal (80 columns without one),
    # which crops the columns past that: the `Param #` column went missing.
    with _environment(COLUMNS=str(SUMMARY_WIDTH + 20)):
        model.summary(print_fn=lambda line, **_: lines.append(line), line_length=SUMMARY_WIDTH)
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def _environment(**variables: str) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
