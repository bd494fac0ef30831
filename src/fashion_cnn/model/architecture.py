"""Keras models built from the architecture specs in ``conf/base/parameters*.yml``: ordered lists of one-key
mappings, ``- Conv2D: {filters: 32, kernel_size: 3}``, a class of ``keras.layers`` and its keyword arguments.
Every problem is reported as :class:`SpecError` naming the variant and the layer, before any training starts.
Compiling with the training settings (plain dicts, checked by :mod:`fashion_cnn.parameters`) reports what only
Keras can find (an unknown optimizer or loss) the same way, naming the parameter (``cnn.training.optimizer``).
"""

from __future__ import annotations

import difflib
import inspect
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

SHRINK_HINT = "Remove a pooling/convolution layer, use a smaller kernel or pool size, or add `padding: same`."
SUMMARY_WIDTH = 100


class SpecError(ValueError):
    """A variant's architecture or training parameters are invalid."""


def parse_layer(variant: str, index: int, entry: Any) -> tuple[str, dict[str, Any]]:
    """``(layer type, kwargs)`` of one spec entry; a bare name has no arguments."""
    if isinstance(entry, str):
        return entry, {}
    where = f"Variant '{variant}', layer {index}"
    if not isinstance(entry, Mapping) or len(entry) != 1:
        raise SpecError(f"{where}: expected a one-key mapping such as `- Conv2D: {{filters: 32, kernel_size: 3}}`, "
                        f"got {entry!r}.")
    ((layer_type, kwargs),) = entry.items()
    if not isinstance(kwargs or {}, Mapping):
        raise SpecError(f"{where} ({layer_type}): arguments must be a mapping, got {kwargs!r}.")
    return str(layer_type), dict(kwargs or {})


def default_layer_name(layer_type: str, index: int) -> str:
    """A layer's name unless its spec gives one: ``conv2d_1``, ``max_pooling2d_2`` (1-based position)."""
    return f"{re.sub(r'(?<=[a-z])(?=[A-Z])', '_', layer_type).lower()}_{index}"


def build_model(variant: str, architecture: Sequence[Any], input_shape: Sequence[int], num_classes: int,
                precision: str = "float32"):
    """An uncompiled functional ``keras.Model`` of ``architecture``, or :class:`SpecError` naming the variant and
    the layer for an unknown layer type, bad arguments, a feature map that shrinks below 1x1, or a wrong output
    shape. With ``precision="mixed_bfloat16"`` every layer computes in bfloat16 and keeps float32 weights (Keras's
    dtype policy), except the last, whose probabilities stay float32; a layer given its own ``dtype`` keeps it."""
    import keras

    if not isinstance(architecture, Sequence) or isinstance(architecture, str) or not architecture:
        raise SpecError(f"Variant '{variant}': `architecture` must be a non-empty list of layers, "
                        f"got {architecture!r}.")
    known = [name for name, kind in inspect.getmembers(keras.layers, inspect.isclass)  # sorted
             if issubclass(kind, keras.layers.Layer) and name not in {"Layer", "InputLayer", "Input"}]
    x = inputs = keras.Input(shape=tuple(input_shape), name="images")
    for index, entry in enumerate(architecture, start=1):
        layer_type, kwargs = parse_layer(variant, index, entry)
        where = f"Variant '{variant}', layer {index} ({layer_type})"
        if layer_type not in known:
            close = difflib.get_close_matches(layer_type, known, n=3)
            hint = f" Did you mean {' or '.join(close)}?" if close else ""
            raise SpecError(f"Variant '{variant}', layer {index}: unknown layer type '{layer_type}'.{hint} "
                            f"Valid types are the classes of keras.layers: {', '.join(known)}.")
        # Stable, readable names (conv2d_1) that do not depend on Keras's global counters.
        kwargs.setdefault("name", default_layer_name(layer_type, index))
        if precision != "float32":
            kwargs.setdefault("dtype", "float32" if index == len(architecture) else precision)
        try:
            layer = getattr(keras.layers, layer_type)(**kwargs)
        except (TypeError, ValueError) as exc:
            raise SpecError(f"{where}: bad arguments {kwargs}: {exc}") from exc
        try:
            x = layer(x)
        except (TypeError, ValueError) as exc:  # x is still the layer's input
            if "zero or negative" in str(exc):
                raise SpecError(f"{where}: the feature map shrinks below 1x1 (input shape {tuple(x.shape)} is too "
                                f"small for this layer). {SHRINK_HINT}") from exc
            raise SpecError(f"{where}: cannot be applied to input of shape {tuple(x.shape)}: {exc}") from exc
        if any(dim is not None and dim < 1 for dim in x.shape[1:]):
            raise SpecError(f"{where}: the feature map shrinks below 1x1 (output shape {tuple(x.shape)}). "
                            f"{SHRINK_HINT}")
    if tuple(x.shape) != (None, num_classes):
        raise SpecError(f"Variant '{variant}': the last layer outputs shape {tuple(x.shape)}, but a classifier of "
                        f"the {num_classes} classes needs (None, {num_classes}); end with Flatten and "
                        f"`Dense: {{units: {num_classes}, activation: softmax}}`.")
    return keras.Model(inputs=inputs, outputs=x, name=variant)


def make_callbacks(settings: Mapping[str, Any]) -> list:
    """Keras callbacks asked for in ``settings``: threshold stop, then early stopping."""
    import keras

    from fashion_cnn.model.callbacks import StopAtThreshold

    kinds = {"stop_at_threshold": StopAtThreshold, "early_stopping": keras.callbacks.EarlyStopping}
    return [kind(**settings[key]) for key, kind in kinds.items() if settings.get(key)]


def compiled_model(variant: str, architecture: list[Any], settings: dict[str, Any], data: dict[str, Any],
                   steps_per_epoch: int = 1) -> Any:
    """The variant's Keras model with seeded initial weights (the same on every call), compiled with the optimizer,
    loss and metrics of ``settings`` at the configured learning rate (null: the optimizer's default) or a cosine
    decay from it to 0 over all training steps."""
    import keras

    keras.utils.set_random_seed(settings["seed"])
    model = build_model(variant, architecture, data["input_shape"], len(data["class_names"]),
                        precision=settings.get("precision", "float32"))
    rate = settings.get("learning_rate")
    if settings.get("learning_rate_decay") == "cosine":
        rate = keras.optimizers.schedules.CosineDecay(initial_learning_rate=0.001 if rate is None else rate,
                                                      decay_steps=max(1, steps_per_epoch * settings["epochs"]))
    try:
        optimizer = keras.optimizers.get({"class_name": settings["optimizer"],
                                          "config": {} if rate is None else {"learning_rate": rate}})
    except (TypeError, ValueError) as exc:
        raise SpecError(f"Variant '{variant}': `{variant}.training.optimizer` {settings['optimizer']!r} is not a "
                        f"Keras optimizer (for example adam, sgd, rmsprop): {exc}") from exc
    try:
        loss = keras.losses.get(settings["loss"])
    except (TypeError, ValueError) as exc:
        raise SpecError(f"Variant '{variant}': `{variant}.training.loss` is not a Keras loss: {exc}") from exc
    # More steps per call than an epoch has would make Keras's progress bar count past the epoch's end
    # (`100/32` on a subset); the maths is the same either way.
    model.compile(optimizer=optimizer, loss=loss, metrics=list(settings["metrics"]),
                  steps_per_execution=min(settings["steps_per_execution"], steps_per_epoch))
    return model


def model_summary(model) -> str:
    """``model.summary()`` as plain text: the whole table (layer, output shape, parameters) and the totals."""
    lines: list[str] = []
    # Keras draws the table on a rich console as wide as the terminal (80 columns without one),
    # which crops the columns past that: the `Param #` column went missing.
    columns = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(SUMMARY_WIDTH + 20)
    try:
        model.summary(print_fn=lambda line, **_: lines.append(line), line_length=SUMMARY_WIDTH)
    finally:
        if columns is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = columns
    return "\n".join(lines) + "\n"
