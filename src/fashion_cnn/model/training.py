"""Compiling a model with its training settings (plain dicts, checked by :mod:`fashion_cnn.parameters`).
Errors only Keras can find (an unknown optimizer or loss) are reported as :class:`SpecError` with the
variant and the parameter's full name (``cnn.training.optimizer``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fashion_cnn.model.architecture import SpecError, build_model


def compile_model(variant: str, model, settings: Mapping[str, Any], steps_per_epoch: int = 1):
    """Compile ``model`` in place with the optimizer, loss and metrics of ``settings``, at the configured
    learning rate (null: the optimizer's default) or a cosine decay from it to 0 over all training steps."""
    import keras

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


def make_callbacks(settings: Mapping[str, Any]) -> list:
    """Keras callbacks asked for in ``settings``: threshold stop and early stopping."""
    import keras

    from fashion_cnn.model.callbacks import StopAtThreshold

    callbacks = []
    if settings.get("stop_at_threshold"):
        callbacks.append(StopAtThreshold(**settings["stop_at_threshold"]))
    if settings.get("early_stopping"):
        callbacks.append(keras.callbacks.EarlyStopping(**settings["early_stopping"]))
    return callbacks


def compiled_model(variant: str, architecture: list[Any], settings: dict[str, Any], data: dict[str, Any],
                   steps_per_epoch: int = 1) -> Any:
    """The variant's Keras model, compiled, with seeded initial weights (the same on every call)."""
    import keras

    keras.utils.set_random_seed(settings["seed"])
    model = build_model(variant, architecture, data["input_shape"], len(data["class_names"]),
                        precision=settings.get("precision", "float32"))
    return compile_model(variant, model, settings, steps_per_epoch)
