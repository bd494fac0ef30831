"""The model pipeline template and its instances, one namespace per configured variant."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import update_wrapper
from typing import Any

from kedro.pipeline import Pipeline, node, pipeline

from fashion_cnn.variants import is_convolutional, load_variants

from .figures import (
    plot_confusion_matrix,
    plot_first_layer_kernels,
    plot_learning_curves,
    render_test_activation_grid,
    tabulate_per_class_accuracy,
)
from .nodes import build_model, evaluate_model, resolve_training_settings, train_model

# Inputs every variant shares: the model inputs and the project-wide parameters.
SHARED_INPUTS = {"model_inputs"}
SHARED_PARAMETERS = {"params:data", "params:data.class_names", "params:training_defaults", "params:activation_grid",
                     "params:runtime.precision"}


class ForVariant:
    """A node function with the variant's name bound as its first argument.

    A class rather than ``functools.partial``: its name and docstring survive pickling into
    ParallelRunner's worker processes (a partial arrives there as ``<partial>``).
    """

    def __init__(self, func: Callable, variant: str) -> None:
        update_wrapper(self, func)
        self.func, self.variant = func, variant

    def __call__(self, *args: Any) -> Any:
        return self.func(self.variant, *args)


def template(variant: str, convolutional: bool) -> Pipeline:
    """build -> train -> evaluate -> report, with dataset names relative to the variant's namespace.

    Convolutional variants also get the notebook's activation grid and their learned kernels.
    """
    return training(variant) + reporting() + (convolution_reporting() if convolutional else Pipeline([]))


def training(variant: str) -> Pipeline:
    return pipeline(
        [
            node(
                ForVariant(resolve_training_settings, variant),
                inputs=["params:training_defaults", "params:training", "params:runtime.precision"],
                outputs="training_settings",
                name="resolve_training_settings",
            ),
            node(
                ForVariant(build_model, variant),
                inputs=["params:architecture", "training_settings", "params:data"],
                outputs="model_summary",
                name="build_model",
            ),
            node(
                ForVariant(train_model, variant),
                inputs=["params:architecture", "training_settings", "params:data", "model_inputs"],
                outputs=["model", "training_history"],
                name="train_model",
            ),
            node(
                evaluate_model,
                inputs=[
                    "model",
                    "training_history",
                    "model_inputs",
                    "training_settings",
                    "params:data.class_names",
                ],
                outputs=["metrics", "test_predictions"],
                name="evaluate_model",
            ),
        ]
    )


def reporting() -> Pipeline:
    return pipeline(
        [
            node(
                plot_confusion_matrix,
                inputs=["test_predictions", "params:data.class_names"],
                outputs="confusion_matrix",
                name="plot_confusion_matrix",
            ),
            node(
                tabulate_per_class_accuracy,
                inputs=["test_predictions", "params:data.class_names"],
                outputs="per_class_accuracy",
                name="tabulate_per_class_accuracy",
            ),
            node(plot_learning_curves, "training_history", "learning_curves", name="plot_learning_curves"),
        ]
    )


def convolution_reporting() -> Pipeline:
    return pipeline(
        [
            node(
                render_test_activation_grid,
                inputs=["model", "model_inputs", "params:activation_grid", "params:data.class_names"],
                outputs="activation_grid",
                name="render_activation_grid",
            ),
            node(plot_first_layer_kernels, "model", "first_layer_kernels", name="plot_first_layer_kernels"),
        ]
    )


def variant_tags(variant: str, spec: Mapping[str, Any]) -> list[str]:
    """Kedro tags of a variant: its name, its configured tags, and `convolutional` where it applies."""
    tags = [variant, *spec.get("tags", [])]
    return tags + ["convolutional"] if is_convolutional(spec) else tags


def variant_pipeline(variant: str, spec: Mapping[str, Any]) -> Pipeline:
    """The template as the namespace ``variant``."""
    variant_template = template(variant, is_convolutional(spec))
    return pipeline(
        variant_template,
        namespace=variant,
        inputs=SHARED_INPUTS,
        parameters=SHARED_PARAMETERS & variant_template.inputs(),
        tags=variant_tags(variant, spec),
    )


def create_pipeline(variants: Mapping[str, Mapping[str, Any]] | None = None, **kwargs) -> Pipeline:
    """Every configured variant (``parameters*.yml`` blocks with an ``architecture``)."""
    variants = load_variants() if variants is None else variants
    return sum((variant_pipeline(name, spec) for name, spec in variants.items()), Pipeline([]))
