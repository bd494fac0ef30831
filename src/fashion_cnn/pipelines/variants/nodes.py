"""Build, train and evaluate one model variant (the notebook's model cells)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from fashion_cnn.model.architecture import compiled_model, make_callbacks, model_summary
from fashion_cnn.model.novelty import fit_reference
from fashion_cnn.pipelines import DataFrame


def build_model(variant: str, architecture: list[Any], settings: dict[str, Any], data: dict[str, Any]) -> str:
    """The compiled model's ``summary()`` (the notebook prints it before training)."""
    return model_summary(compiled_model(variant, architecture, settings, data))


def train_model(variant: str, architecture: list[Any], settings: dict[str, Any], data: dict[str, Any],
                model_inputs: Mapping[str, np.ndarray], callbacks: list[Any] | None = None) -> tuple[Any, DataFrame]:
    """The model fitted on the training images (Keras ``fit``), and its per-epoch history.

    Built here, not passed from ``build_model``: no Keras object crosses between nodes (ParallelRunner runs
    them in separate processes). ``callbacks`` come after the configured ones (tune's trials report to Optuna).
    """
    import keras
    import pandas as pd

    from fashion_cnn.model.callbacks import EpochTimer, SignalsBetweenSteps

    images, labels, validation = model_inputs["train_images"], model_inputs["train_labels"], None
    if settings["validation_split"]:  # hold out a seeded random share of the training set
        order = np.random.default_rng(settings["seed"]).permutation(len(images))
        held_out = max(1, round(len(images) * settings["validation_split"]))
        validation = images[order[:held_out]], labels[order[:held_out]]
        images, labels = images[order[held_out:]], labels[order[held_out:]]
    steps_per_epoch = -(-len(images) // settings["batch_size"])
    model = compiled_model(variant, architecture, settings, data, steps_per_epoch)
    if tuple(images.shape[1:]) != tuple(model.input_shape[1:]):
        raise ValueError(f"Model '{model.name}' expects images of shape {model.input_shape[1:]}, "
                         f"got {images.shape[1:]}; check `data.input_shape`.")
    keras.utils.set_random_seed(settings["seed"])
    timer = EpochTimer()
    start = time.perf_counter()
    with SignalsBetweenSteps() as signals:
        fit = model.fit(images, labels, batch_size=settings["batch_size"], epochs=settings["epochs"],
                        verbose=settings["verbose"], validation_data=validation, shuffle=True,
                        callbacks=[timer, signals, *make_callbacks(settings), *(callbacks or [])])
    history = pd.DataFrame(fit.history)
    history.insert(0, "epoch", np.arange(1, len(history) + 1))
    history["seconds"] = timer.seconds
    # The whole call, with Keras's input set-up and tear-down around the epochs (up to several
    # seconds here), as a script times `model.fit`; for benchmarks/timed_run.py, not written to the CSV.
    history.attrs["fit_seconds"] = time.perf_counter() - start
    return model, history


def validation_summary(history: DataFrame) -> dict[str, Any]:
    """The overfitting study's figures: best validation-loss epoch and the final train-validation gap."""
    if "val_loss" not in history:
        return {}
    best, last = history.loc[history["val_loss"].idxmin()], history.iloc[-1]
    summary = {
        "best_val_loss_epoch": int(best["epoch"]),
        "best_val_loss": round(float(best["val_loss"]), 4),
        "final_val_loss": round(float(last["val_loss"]), 4),
        "final_val_accuracy": round(float(last["val_accuracy"]), 4) if "val_accuracy" in history else None,
        "final_train_val_loss_gap": round(float(last["val_loss"] - last["loss"]), 4),
    }
    if "val_accuracy" in history and "accuracy" in history:
        summary["final_train_val_accuracy_gap"] = round(float(last["accuracy"] - last["val_accuracy"]), 4)
    return summary


def evaluate_model(model: Any, history: DataFrame, model_inputs: Mapping[str, np.ndarray], settings: dict[str, Any],
                   class_names: list[str]) -> tuple[dict[str, Any], DataFrame]:
    """Test-set metrics, and the per-image predictions and losses, from one forward pass: loss and accuracy
    computed as Keras's ``evaluate`` does (sparse categorical cross-entropy on clipped probabilities)."""
    import keras
    import pandas as pd

    images, labels = model_inputs["test_images"], model_inputs["test_labels"]
    probabilities = model.predict(images, batch_size=1000, verbose=0).astype(np.float64)
    predicted = probabilities.argmax(axis=1)
    correct = predicted == labels
    eps = keras.config.epsilon()
    true_class = np.clip(probabilities[np.arange(len(labels)), labels], eps, 1 - eps)
    losses = -np.log(true_class)  # each image's cross-entropy: the test loss is their mean
    per_class = {
        name: round(float(correct[labels == index].mean()), 4) if (labels == index).any() else None
        for index, name in enumerate(class_names)
    }
    last = history.iloc[-1]
    training_seconds = float(history["seconds"].sum())
    metrics = {
        "variant": model.name,
        "test_loss": round(float(losses.mean()), 4),
        "test_accuracy": round(float(correct.mean()), 4),
        "train_loss": round(float(last["loss"]), 4),
        "train_accuracy": round(float(last["accuracy"]), 4) if "accuracy" in history else None,
        "per_class_accuracy": per_class,
        "epochs_run": int(len(history)),
        "epochs_planned": int(settings["epochs"]),
        "stopped_early": bool(len(history) < settings["epochs"]),
        "training_seconds": round(training_seconds, 2),
        "seconds_per_epoch": round(training_seconds / len(history), 2),
        "parameter_count": int(model.count_params()),
        "test_images": int(len(labels)),
        **validation_summary(history),
    }
    names = np.asarray(class_names, dtype=object)
    predictions = pd.DataFrame({"label": labels, "label_name": names[labels], "predicted": predicted,
                                "predicted_name": names[predicted], "confidence": probabilities.max(axis=1).round(4),
                                "correct": correct, "loss": losses.round(6)})
    return metrics, predictions


def fit_novelty_reference(model: Any, model_inputs: Mapping[str, np.ndarray], settings: dict[str, Any],
                          test_share: float) -> dict[str, Any]:
    """What `predict` needs to flag an image unlike the training images, calibrated so that ``test_share``
    of this run's test images would be flagged (:mod:`fashion_cnn.model.novelty`)."""
    return fit_reference(model, model_inputs["train_images"], model_inputs["train_labels"],
                         model_inputs["test_images"], test_share, settings["seed"])
