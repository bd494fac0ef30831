"""The model pipeline template and its instances, one namespace per configured variant."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial, update_wrapper
from typing import Any

from kedro.pipeline import Pipeline, node, pipeline

from fashion_cnn.variants import is_convolutional, load_variants

from .nodes import build_model, evaluate_model, resolve_training_settings, train_model

# Inputs every variant shares: the model inputs and the project-wide parameters.
SHARED_INPUTS = {"train_images", "train_labels", "test_images", "test_labels"}
SHARED_PARAMETERS = {"params:data", "params:data.class_names", "params:training_defaults"}


def for_variant(func: Callable, variant: str) -> Callable:
    """Bind the variant name (for error messages and the model's name), keeping the function's identity."""
    return update_wrapper(partial(func, variant), func)


def template(variant: str) -> Pipeline:
    """build -> train -> evaluate, with dataset names relative to the variant's namespace."""
    return pipeline(
        [
            node(
                for_variant(resolve_training_settings, variant),
                inputs=["params:training_defaults", "params:training"],
                outputs="training_settings",
                name="resolve_training_settings",
            ),
            node(
                for_variant(build_model, variant),
                inputs=["params:architecture", "training_settings", "params:data"],
                outputs=["compiled_model", "model_summary"],
                name="build_model",
            ),
            node(
                train_model,
                inputs=["compiled_model", "train_images", "train_labels", "training_settings"],
                outputs=["model", "training_history"],
                name="train_model",
            ),
            node(
                evaluate_model,
                inputs=[
                    "model",
                    "training_history",
                    "test_images",
                    "test_labels",
                    "training_settings",
                    "params:data.class_names",
                ],
                outputs=["metrics", "test_predictions"],
                name="evaluate_model",
            ),
        ]
    )


def variant_tags(variant: str, spec: Mapping[str, Any]) -> list[str]:
    """Kedro tags of a variant: its name, its configured tags, and `convolutional` where it applies."""
    tags = [variant, *spec.get("tags", [])]
    return tags + ["convolutional"] if is_convolutional(spec) else tags


def variant_pipeline(variant: str, spec: Mapping[str, Any]) -> Pipeline:
    """The template as the namespace ``variant``."""
    return pipeline(
        template(variant),
        namespace=variant,
        inputs=SHARED_INPUTS,
        parameters=SHARED_PARAMETERS,
        tags=variant_tags(variant, spec),
    )


def create_pipeline(variants: Mapping[str, Mapping[str, Any]] | None = None, **kwargs) -> Pipeline:
    """Every configured variant (``parameters*.yml`` blocks with an ``architecture``)."""
    variants = load_variants() if variants is None else variants
    return sum((variant_pipeline(name, spec) for name, spec in variants.items()), Pipeline([]))
