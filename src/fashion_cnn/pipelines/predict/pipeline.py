"""`predict`: the user's own images classified by a trained variant (not part of `__default__`).

    kedro run --pipelines predict --params predict.images=path/to/photos

With the `tracking` extra, the pipeline is also kedro-mlflow's ``PipelineML``: its inference part
(a request of base64-encoded image files -> the predictions table) is logged with the chosen model
as one MLflow model at the end of each tracked run (:mod:`fashion_cnn.model.mlflow_models`).
"""

from __future__ import annotations

from kedro.pipeline import Pipeline, node, pipeline

from fashion_cnn.model.mlflow_models import SERVING_INPUT, with_serving_model

from .nodes import (
    choose_model_to_predict,
    plot_contact_sheet,
    predict_top_classes,
    prepare_images,
    prepare_request_images,
    tabulate_predictions,
)

CLASSIFY_INPUTS = ["chosen_novelty_reference", "params:data.class_names", "params:predict.top_k"]


def classify_images() -> Pipeline:
    """The trained model chosen by the parameters, the images of `predict.images`, the table and the contact sheet."""
    return pipeline([
        node(choose_model_to_predict, ["trained_models", "novelty_references", "params:predict.variant",
                                       "params:predict.model_version"],
             ["chosen_model", "chosen_model_info", "chosen_novelty_reference"], name="choose_model_to_predict"),
        node(prepare_images, ["predict_images", "params:data.input_shape"], "prepared_images", name="prepare_images"),
        node(predict_top_classes, ["chosen_model", "prepared_images", *CLASSIFY_INPUTS], "top_classes",
             name="predict_top_classes"),
        node(tabulate_predictions, ["top_classes", "prepared_images"], "predictions", name="tabulate_predictions"),
        node(plot_contact_sheet,
             ["prepared_images", "predictions", "chosen_model_info", "params:predict.contact_sheet"],
             "prediction_contact_sheet", name="plot_contact_sheet"),
    ], tags="predict")


def serve_request() -> Pipeline:
    """What the served MLflow model runs on each request: the same preparation and table."""
    return pipeline([
        node(prepare_request_images, [SERVING_INPUT, "params:data.input_shape"], "request_images",
             name="prepare_request_images"),
        node(predict_top_classes, ["chosen_model", "request_images", *CLASSIFY_INPUTS], "request_top_classes",
             name="predict_request_top_classes"),
        node(tabulate_predictions, ["request_top_classes", "request_images"], "request_predictions",
             name="tabulate_request_predictions"),
    ], tags="serve")


def create_pipeline(**kwargs) -> Pipeline:
    return with_serving_model(classify_images(), serve_request())
