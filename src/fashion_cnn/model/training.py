"""Training settings: merging a variant's overrides into the defaults, validating and compiling.

Settings are plain dicts from parameters; everything a user can get wrong is reported as
:class:`SpecError` with the variant and the parameter's full name (``cnn.training.epochs``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fashion_cnn.model.architecture import SpecError, build_model

THRESHOLD_MODES = ("below", "above")


def merge_training_settings(
    variant: str, defaults: Mapping[str, Any], overrides: Mapping[str, Any] | None, precision: str = "float32"
) -> dict[str, Any]:
    """Return ``defaults`` updated with ``overrides``, after checking every value, and the run's
    numeric ``precision`` (``runtime.precision`` as resolved for the machine)."""
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(defaults))
    if unknown:
        raise SpecError(
            f"Variant '{variant}': unknown training setting(s) {unknown} in `{variant}.training`. "
            f"Valid settings (see `training_defaults`): {sorted(defaults)}."
        )
    settings = {**defaults, **overrides}
    validate_training_settings(variant, settings)
    return {**settings, "precision": precision}


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def validate_training_settings(variant: str, settings: Mapping[str, Any]) -> None:
    """Raise :class:`SpecError` for values Keras would reject, or reject late."""

    def fail(key: str, problem: str) -> None:
        raise SpecError(f"Variant '{variant}': `{variant}.training.{key}` {problem}, got {settings.get(key)!r}.")

    for key in ("epochs", "batch_size", "steps_per_execution"):
        if not _positive_int(settings.get(key)):
            fail(key, "must be a positive whole number")
    if not isinstance(settings.get("seed"), int) or isinstance(settings.get("seed"), bool):
        fail("seed", "must be a whole number")
    split = settings.get("validation_split")
    if not isinstance(split, int | float) or isinstance(split, bool) or not 0 <= split < 1:
        fail("validation_split", "must be a fraction in [0, 1)")
    rate = settings.get("learning_rate")
    if rate is not None and (not isinstance(rate, int | float) or isinstance(rate, bool) or rate <= 0):
        fail("learning_rate", "must be a positive number, or null for the optimizer's default")
    if settings.get("learning_rate_decay") not in (None, "cosine"):
        fail("learning_rate_decay", "must be null (constant rate) or cosine")
    if settings.get("verbose") not in (0, 1, 2, "auto"):
        fail("verbose", "must be 0 (silent), 1 (progress bar), 2 (one line per epoch) or auto")
    stop = settings.get("stop_at_threshold")
    if stop is not None:
        if not isinstance(stop, Mapping) or set(stop) != {"monitor", "threshold", "mode"}:
            fail("stop_at_threshold", "must be null or {monitor: loss, threshold: 0.4, mode: below}")
        if stop["mode"] not in THRESHOLD_MODES or not isinstance(stop["threshold"], int | float):
            fail("stop_at_threshold", f"needs a numeric threshold and a mode in {THRESHOLD_MODES}")
    early = settings.get("early_stopping")
    if early is not None and not isinstance(early, Mapping):
        fail("early_stopping", "must be null or keyword arguments of keras.callbacks.EarlyStopping")
    monitors = [(early or {}).get("monitor", "val_loss")] if early else []
    monitors += [stop["monitor"]] if stop else []
    for monitor in monitors:
        if str(monitor).startswith("val_") and not split:
            fail("validation_split", f"must be above 0 to monitor '{monitor}'")


def learning_rate(settings: Mapping[str, Any], steps_per_epoch: int) -> Any:
    """The configured rate, or a cosine decay from it to 0 over all training steps."""
    import keras

    rate = settings.get("learning_rate")
    if settings.get("learning_rate_decay") == "cosine":
        return keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=rate if rate is not None else 0.001,
            decay_steps=max(1, steps_per_epoch * settings["epochs"]),
        )
    return rate


def compile_model(variant: str, model, settings: Mapping[str, Any], steps_per_epoch: int = 1):
    """Compile ``model`` in place with the optimizer, loss and metrics of ``settings``."""
    import keras

    optimizer_config: dict[str, Any] = {}
    rate = learning_rate(settings, steps_per_epoch)
    if rate is not None:
        optimizer_config["learning_rate"] = rate
    try:
        optimizer = keras.optimizers.get({"class_name": settings["optimizer"], "config": optimizer_config})
    except (TypeError, ValueError) as exc:
        raise SpecError(
            f"Variant '{variant}': `{variant}.training.optimizer` {settings['optimizer']!r} is not a Keras "
            f"optimizer (for example adam, sgd, rmsprop): {exc}"
        ) from exc
    try:
        loss = keras.losses.get(settings["loss"])
    except (TypeError, ValueError) as exc:
        raise SpecError(f"Variant '{variant}': `{variant}.training.loss` is not a Keras loss: {exc}") from exc
    model.compile(
        optimizer=optimizer,
        loss=loss,
        metrics=list(settings["metrics"]),
        steps_per_execution=settings["steps_per_execution"],
    )
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


def compiled_model(
    variant: str, architecture: list[Any], settings: dict[str, Any], data: dict[str, Any], steps_per_epoch: int = 1
) -> Any:
    """The variant's Keras model, compiled, with seeded initial weights (the same on every call)."""
    import keras

    keras.utils.set_random_seed(settings["seed"])
    model = build_model(variant, architecture, data["input_shape"], len(data["class_names"]),
                        precision=settings.get("precision", "float32"))
    return compile_model(variant, model, settings, steps_per_epoch)
