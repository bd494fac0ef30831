"""The model pipeline template and its instances, one namespace per configured variant."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import update_wrapper
from typing import Any

from kedro.pipeline import Pipeline, node, pipeline

from fashion_cnn.parameters import merge_training_settings
from fashion_cnn.variants import TRAINING_NODE, is_convolutional, load_variants

from .figures import (
    plot_confusion_matrix,
    plot_first_layer_kernels,
    plot_learning_curves,
    render_test_activation_grid,
    tabulate_per_class_accuracy,
)
from .interpretation import plot_top_losses, render_grad_cam, tabulate_most_confused
from .nodes import build_model, evaluate_model, fit_novelty_reference, train_model

# Parameters every variant shares (project-wide, not namespaced); the model inputs are shared too.
CLASSES = "params:data.class_names"
SHARED_PARAMETERS = {"params:data", CLASSES, "params:training_defaults", "params:activation_grid",
                     "params:interpretation", "params:novelty.test_share", "params:runtime.precision"}


class ForVariant:
    """A node function with the variant's name bound as its first argument. A class rather than
    ``functools.partial``: its name and docstring survive pickling into ParallelRunner's worker processes (a
    partial arrives there as ``<partial>``)."""

    def __init__(self, func: Callable, variant: str) -> None:
        update_wrapper(self, func)
        self.func, self.variant = func, variant

    def __call__(self, *args: Any) -> Any:
        return self.func(self.variant, *args)


def training(variant: str) -> Pipeline:
    settings = ["params:architecture", "training_settings", "params:data"]
    return pipeline([
        node(ForVariant(merge_training_settings, variant), ["params:training_defaults", "params:training",
             "params:runtime.precision"], "training_settings", name="resolve_training_settings"),
        node(ForVariant(build_model, variant), settings, "model_summary", name="build_model"),
        node(ForVariant(train_model, variant), [*settings, "model_inputs"], ["model", "training_history"],
             name=TRAINING_NODE),
        node(evaluate_model, ["model", "training_history", "model_inputs", "training_settings", CLASSES],
             ["metrics", "test_predictions"], name="evaluate_model"),
        node(fit_novelty_reference, ["model", "model_inputs", "training_settings", "params:novelty.test_share"],
             "novelty_reference", name="fit_novelty_reference"),
    ])


def reporting() -> Pipeline:
    return pipeline([
        node(plot_confusion_matrix, ["test_predictions", CLASSES], "confusion_matrix", name="plot_confusion_matrix"),
        node(tabulate_per_class_accuracy, ["test_predictions", CLASSES], "per_class_accuracy",
             name="tabulate_per_class_accuracy"),
        node(plot_learning_curves, "training_history", "learning_curves", name="plot_learning_curves"),
        node(plot_top_losses, ["test_predictions", "model_inputs", "params:interpretation", CLASSES], "top_losses",
             name="plot_top_losses"),
        node(tabulate_most_confused, ["test_predictions", CLASSES], "most_confused", name="tabulate_most_confused"),
    ])


def convolution_reporting() -> Pipeline:
    return pipeline([
        node(render_test_activation_grid, ["model", "model_inputs", "params:activation_grid", CLASSES],
             "activation_grid", name="render_activation_grid"),
        node(plot_first_layer_kernels, "model", "first_layer_kernels", name="plot_first_layer_kernels"),
        node(render_grad_cam, ["model", "model_inputs", "test_predictions", "params:activation_grid",
                               "params:interpretation", CLASSES], "grad_cam", name="render_grad_cam"),
    ])


def variant_pipeline(variant: str, spec: Mapping[str, Any]) -> Pipeline:
    """build -> train -> evaluate -> report as the namespace ``variant``, tagged with its name and configured tags.
    Convolutional variants also get the activation grid, learned kernels, Grad-CAM and the tag `convolutional`."""
    convolutional = is_convolutional(spec)
    template = training(variant) + reporting() + (convolution_reporting() if convolutional else Pipeline([]))
    return pipeline(
        template,
        namespace=variant,
        inputs={"model_inputs"},
        parameters=SHARED_PARAMETERS & template.inputs(),
        tags=[variant, *spec.get("tags", []), *(["convolutional"] if convolutional else [])],
    )


def create_pipeline(variants: Mapping[str, Mapping[str, Any]] | None = None, **kwargs) -> Pipeline:
    """Every configured variant (``parameters*.yml`` blocks with an ``architecture``)."""
    variants = load_variants() if variants is None else variants
    return sum((variant_pipeline(name, spec) for name, spec in variants.items()), Pipeline([]))
