"""Models in MLflow, with the ``tracking`` extra (kedro-mlflow).

* Every variant's trained model is logged to the variant's MLflow run as an MLflow model of the
  Keras flavour (:func:`log_trained_model`, called by :class:`fashion_cnn.runtime.tracking.MlflowVariantRunsHook`),
  so that the tracking server keeps each model beside its metrics: ``mlflow.keras.load_model``
  or ``mlflow.pyfunc.load_model`` on ``runs:/<variant run id>/model``.
* The prediction path itself, image preparation and model, is logged as one MLflow model by
  kedro-mlflow ("serve pipelines, not models"): :func:`with_serving_model` makes the ``predict``
  pipeline a ``PipelineML`` whose inference part turns a request (a table of base64-encoded
  image files) into the same table as ``predictions.csv``. After each tracked ``predict`` run,
  kedro-mlflow logs that inference pipeline with the model it used as ``image_classifier``, which
  ``mlflow models serve`` answers raw images with.

Without kedro-mlflow nothing here imports MLflow, and the ``predict`` pipeline is a plain one.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from pathlib import Path
from typing import Any

from kedro.pipeline import Pipeline

SERVING_INPUT = "serving_request"
SERVING_MODEL_NAME = "image_classifier"
TRAINED_MODEL_NAME = "model"
# What the served pipeline imports; pinned to this environment's versions.
SERVING_DISTRIBUTIONS = ("tensorflow", "keras", "kedro", "kedro-datasets", "kedro-mlflow", "mlflow", "pillow",
                         "numpy", "pandas", "fsspec")


def kedro_mlflow_installed() -> bool:
    """Whether the ``tracking`` extra (kedro-mlflow) is importable, without importing it."""
    try:
        return importlib.util.find_spec("kedro_mlflow") is not None
    except (ImportError, ValueError):  # ValueError: a module entry of None in sys.modules
        return False


def pip_requirements(distributions: tuple[str, ...]) -> list[str]:
    """``name==version`` of each installed distribution. Given to MLflow so that it does not infer
    them by loading the model in a subprocess (seconds of TensorFlow start-up per logged model)."""
    pinned = []
    for name in distributions:
        try:
            pinned.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    return pinned


def log_trained_model(run_id: str, variant: str, model: Any) -> None:
    """Log ``model`` (Keras) to the MLflow run ``run_id`` as an MLflow model named ``model``."""
    import mlflow
    import mlflow.keras
    import numpy as np
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    signature = ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, *model.input_shape[1:]), "images")]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, *model.output_shape[1:]), "probabilities")]),
    )
    active = mlflow.active_run()
    nested = active is None or active.info.run_id != run_id
    if nested:
        mlflow.start_run(run_id=run_id, nested=active is not None)
    try:
        mlflow.keras.log_model(model, name=TRAINED_MODEL_NAME, signature=signature,
                               pip_requirements=pip_requirements(("tensorflow", "keras")), tags={"variant": variant})
    finally:
        if nested:
            mlflow.end_run()


def serving_signature() -> Any:
    """A request is a table: ``image`` (an image file, base64-encoded) and, optionally, ``file``."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    return ModelSignature(inputs=Schema([ColSpec("string", "image"), ColSpec("string", "file", required=False)]))


def serving_input_example() -> Any:
    """A request of one drawn picture (a pair of trousers, dark on white, 60x90 pixels): MLflow keeps
    it with the model as ``serving_input_example.json``, a body ready to post to ``/invocations``."""
    import base64
    import io

    import pandas as pd
    from PIL import Image, ImageDraw

    picture = Image.new("RGB", (60, 90), "white")
    draw = ImageDraw.Draw(picture)
    draw.rectangle((14, 8, 46, 24), fill=(40, 40, 60))
    draw.polygon([(14, 20), (29, 20), (27, 84), (16, 84)], fill=(40, 40, 60))
    draw.polygon([(31, 20), (46, 20), (44, 84), (33, 84)], fill=(40, 40, 60))
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return pd.DataFrame({"image": [base64.b64encode(buffer.getvalue()).decode("ascii")], "file": ["trousers.png"]})


def with_serving_model(training: Pipeline, inference: Pipeline) -> Pipeline:
    """``training`` as kedro-mlflow's ``PipelineML``: after each tracked run of it, ``inference``
    and its inputs from that run (the model file, the parameters) are logged as one MLflow model;
    ``training`` itself when kedro-mlflow is not installed."""
    if not kedro_mlflow_installed():
        return training
    from kedro_mlflow.pipeline import pipeline_ml_factory

    import fashion_cnn

    return pipeline_ml_factory(
        training=training,
        inference=inference,
        input_name=SERVING_INPUT,
        kpm_kwargs={"copy_mode": "assign"},  # the model and arrays are passed on, never changed
        log_model_kwargs={
            "name": SERVING_MODEL_NAME,
            "signature": serving_signature(),
            "input_example": serving_input_example(),
            "pip_requirements": pip_requirements(SERVING_DISTRIBUTIONS),
            # The served pipeline's nodes and datasets are this package's: ship its code with the
            # model, so that serving does not depend on the project checkout being there.
            "code_paths": [str(Path(fashion_cnn.__file__).parent)],
        },
    )
