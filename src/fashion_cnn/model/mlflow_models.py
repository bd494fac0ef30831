"""Models in MLflow, with the ``tracking`` extra (kedro-mlflow); without it nothing here imports MLflow. How to
load and serve them: docs/predict.md.

Each variant's trained model is logged by :class:`fashion_cnn.runtime.tracking.MlflowVariantRunsHook`, not by a
kedro-mlflow dataset: ``MlflowModelTrackingDataset`` would log the model instead of saving the local versioned
``.keras`` file that ``predict`` and ``export`` read, and ``MlflowModelLocalFileSystemDataset`` saves an MLflow
model folder in its place.
"""

from __future__ import annotations

import base64
import contextlib
import importlib.metadata
import io
from pathlib import Path
from typing import Any

from kedro.pipeline import Pipeline

SERVING_INPUT = "serving_request"
# What the served pipeline imports; pinned to this environment's versions.
SERVING_DISTRIBUTIONS = ("tensorflow", "keras", "kedro", "kedro-datasets", "kedro-mlflow", "mlflow", "pillow",
                         "numpy", "pandas", "fsspec")


def pip_requirements(distributions: tuple[str, ...]) -> list[str]:
    """``name==version`` of each installed distribution. Given to MLflow so that it does not infer them by
    loading the model in a subprocess (seconds of TensorFlow start-up per logged model)."""
    pinned = []
    for name in distributions:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            pinned.append(f"{name}=={importlib.metadata.version(name)}")
    return pinned


def log_trained_model(variant: str, model: Any) -> None:
    """Log ``model`` (Keras) to the active MLflow run, the variant's, as an MLflow model named ``model``."""
    import mlflow.keras
    import numpy as np
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    signature = ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, *model.input_shape[1:]), "images")]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, *model.output_shape[1:]), "probabilities")]),
    )
    mlflow.keras.log_model(model, name="model", signature=signature,
                           pip_requirements=pip_requirements(("tensorflow", "keras")), tags={"variant": variant})


def serving_input_example() -> Any:
    """A request of one drawn picture (a pair of trousers, dark on white, 60x90 pixels): MLflow keeps it with the
    model as ``serving_input_example.json``, a body ready to post to ``/invocations``."""
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
    """``training`` as kedro-mlflow's ``PipelineML``: after each tracked run of it, ``inference`` and its inputs
    from that run (the model file, the parameters) are logged as one MLflow model; ``training`` itself when
    kedro-mlflow is not installed."""
    try:
        from kedro_mlflow.pipeline import pipeline_ml_factory
    except ModuleNotFoundError as missing:
        if (missing.name or "").partition(".")[0] != "kedro_mlflow":  # a dependency of it: say so
            raise
        return training
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    import fashion_cnn

    return pipeline_ml_factory(
        training=training, inference=inference, input_name=SERVING_INPUT,
        kpm_kwargs={"copy_mode": "assign"},  # the model and arrays are passed on, never changed
        log_model_kwargs={
            "name": "image_classifier",
            # A request is a table: `image` (an image file, base64-encoded) and, optionally, `file`.
            "signature": ModelSignature(inputs=Schema([ColSpec("string", "image"),
                                                       ColSpec("string", "file", required=False)])),
            "input_example": serving_input_example(),
            "pip_requirements": pip_requirements(SERVING_DISTRIBUTIONS),
            # The served pipeline's nodes and datasets are this package's: ship its code with the model, so that
            # serving does not depend on the project checkout being there.
            "code_paths": [str(Path(fashion_cnn.__file__).parent)],
        },
    )
