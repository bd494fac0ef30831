"""`export`: a trained variant as a TensorFlow SavedModel (not part of `__default__`).

    kedro run --pipelines export --params export.variant=cnn
"""

from __future__ import annotations

from kedro.pipeline import Pipeline, node, pipeline

from .nodes import export_for_serving


def create_pipeline(**kwargs) -> Pipeline:
    inputs = ["trained_models", "params:export.variant", "params:export.model_version"]
    return pipeline([node(export_for_serving, inputs, "saved_models", name="export_for_serving")], tags="export")
