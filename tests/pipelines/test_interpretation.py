"""Why a variant errs (pipelines/variants/interpretation.py): a slice of the variant pipeline run on an
in-memory catalog, a small CNN and a Dense model trained for one epoch on a subset of the real data."""

from __future__ import annotations

import functools
import operator
import re

import numpy as np
import pytest
from kedro.io import MemoryDataset
from support import run_session

from fashion_cnn.model.architecture import SpecError
from fashion_cnn.parameters import Interpretation
from fashion_cnn.variants import load_parameters

PARAMETERS = load_parameters()
CLASSES = PARAMETERS["data"]["class_names"]
VARIANTS = {
    "small_cnn": [
        {"Conv2D": {"filters": 8, "kernel_size": 3, "activation": "relu"}}, {"MaxPooling2D": {"pool_size": 2}},
        {"Conv2D": {"filters": 8, "kernel_size": 3, "activation": "relu"}}, {"MaxPooling2D": {"pool_size": 2}},
        "Flatten", {"Dense": {"units": 10, "activation": "softmax"}},
    ],
    "small_dense": ["Flatten", {"Dense": {"units": 10, "activation": "softmax"}}],
}
TOP = 12


class KeptMemoryDataset(MemoryDataset):
    """Keeps its data when the runner releases it (once no later node needs it), for the tests."""

    def _release(self) -> None:
        pass


@pytest.fixture(scope="module")
def run(real_data_dir):
    """The slice of the two variants' pipelines that makes the interpretation outputs, run by Kedro's
    SequentialRunner; every dataset in memory (models and figures handed on as they are, not copied)."""
    from kedro.io import DataCatalog
    from kedro.pipeline import Pipeline
    from kedro.validation import ParameterValidator
    from kedro.runner import SequentialRunner

    from fashion_cnn.datasets import FashionMNISTDataset
    from fashion_cnn.pipelines.data_processing.nodes import normalise_images
    from fashion_cnn.pipelines.variants.pipeline import variant_pipeline

    raw = FashionMNISTDataset(path=str(real_data_dir)).load()
    inputs = {"train_images": normalise_images(raw["train_images"][:1000]), "train_labels": raw["train_labels"][:1000],
              "test_images": normalise_images(raw["test_images"][:300]), "test_labels": raw["test_labels"][:300]}
    pipeline = sum((variant_pipeline(name, {"architecture": spec}) for name, spec in VARIANTS.items()), Pipeline([]))
    # The slice that makes the outputs under test: training, evaluation, these nodes.
    made = [f"{name}.{output}" for name in VARIANTS for output in ("top_losses", "most_confused")]
    pipeline = pipeline.to_outputs(*made, "small_cnn.grad_cam")
    catalog = DataCatalog({name: KeptMemoryDataset(copy_mode="assign") for name in pipeline.datasets()})
    catalog["model_inputs"] = inputs
    # The project's parameters, typed as a session types them (Kedro's own validator), for every
    # `params:` input of the pipeline.
    raw = {**PARAMETERS, **{name: {"architecture": spec, "training": {}} for name, spec in VARIANTS.items()},
           "training_defaults": {**PARAMETERS["training_defaults"], "epochs": 1, "verbose": 0},
           "interpretation": {**PARAMETERS["interpretation"], "top_losses": TOP},
           "runtime": {**PARAMETERS["runtime"], "precision": "float32"}}
    typed = ParameterValidator({"variants": pipeline}).validate_raw_params(raw)
    for name in pipeline.inputs() - {"model_inputs"}:
        catalog[name] = functools.reduce(operator.getitem, name.removeprefix("params:").split("."), typed)
    SequentialRunner().run(pipeline, catalog)
    return pipeline, catalog, inputs


def shown(figure) -> list[tuple[int, str, np.ndarray]]:
    """Each image of a tiled figure: the test index in its title, the title, and its pixels (cut at the title)."""
    mosaic = figure.axes[0].images[0].get_array()
    found = []
    for text in figure.axes[0].texts:
        match = re.match(r"test (?:image )?(\d+)", text.get_text())
        if match:
            x, y = text.get_position()
            left, top = round(x - 13.5), round(y + 1)
            found.append((int(match.group(1)), text.get_text(), np.asarray(mosaic[top:top + 28, left:left + 28, 0])))
    return found


def test_the_top_losses_are_the_highest_losses_recomputed(run):
    import keras

    _, catalog, inputs = run
    labels = inputs["test_labels"]
    probabilities = catalog.load("small_cnn.model").predict(inputs["test_images"], verbose=0)
    losses = keras.ops.convert_to_numpy(keras.losses.sparse_categorical_crossentropy(labels, probabilities))
    predictions = catalog.load("small_cnn.test_predictions")
    np.testing.assert_allclose(predictions["loss"], losses, atol=1e-5)
    expected = np.argsort(-losses, kind="stable")[:TOP]

    images = shown(catalog.load("small_cnn.top_losses"))
    assert [index for index, _, _ in images] == expected.tolist()
    for index, title, pixels in images:
        np.testing.assert_array_equal(pixels, inputs["test_images"][index, :, :, 0])  # the image itself
        predicted = probabilities[index].argmax()
        assert f"true: {CLASSES[labels[index]]} " in title and f"predicted: {CLASSES[predicted]} " in title
        assert f"loss {losses[index]:.2f}" in title
    assert shown(catalog.load("small_dense.top_losses"))  # every variant gets them


def test_most_confused_counts_every_mistake_once(run):
    _, catalog, _ = run
    predictions, table = catalog.load("small_cnn.test_predictions"), catalog.load("small_cnn.most_confused")
    mistakes = predictions[predictions["label"] != predictions["predicted"]]
    assert table["count"].sum() == len(mistakes) > 0
    assert table["count"].is_monotonic_decreasing and (table["true"] != table["predicted"]).all()
    pairs = mistakes.groupby(["label_name", "predicted_name"]).size()
    assert table["count"].iloc[0] == pairs.max()
    assert all(pairs[(row.true, row.predicted)] == row.count for row in table.itertuples())
    true_images = predictions["label_name"].value_counts()
    assert table["share_of_true_class"].tolist() == [round(row.count / true_images[row.true], 4)
                                                     for row in table.itertuples()]


def test_grad_cam_shows_the_grid_and_the_top_loss_images_of_convolutional_variants_only(run):
    pipeline, catalog, inputs = run
    figure = catalog.load("small_cnn.grad_cam")
    grid = PARAMETERS["activation_grid"]["image_indices"]
    top = catalog.load("small_cnn.test_predictions")["loss"].to_numpy().argsort(kind="stable")[::-1]
    images = shown(figure)
    assert [index for index, _, _ in images] == [*grid, *top[:TOP]]
    assert all(title.startswith(f"test {i} (grid)") for (_, title, _), i in zip(images, grid, strict=False))
    for index, _, pixels in images:
        np.testing.assert_array_equal(pixels, inputs["test_images"][index, :, :, 0])
    assert "Grad-CAM of conv2d_3" in figure.get_suptitle()
    assert len(figure.axes[0].texts) == 3 * len(images)  # the image, the predicted class, the true or runner-up
    names = {node.name for node in pipeline.nodes}
    assert {"small_cnn.render_grad_cam", "small_dense.plot_top_losses", "small_dense.tabulate_most_confused"} <= names
    assert "small_dense.render_grad_cam" not in names


@pytest.mark.parametrize(("settings", "message"), [
    ({"top_losses": 0}, r"`interpretation\.top_losses` must be a positive whole number"),
    ({"top_losses": True}, r"`interpretation\.top_losses` must be a positive whole number"),
    ({"grad_cam_layer": ""}, r"`interpretation\.grad_cam_layer` must be a layer name"),
])
def test_bad_interpretation_settings_name_the_parameter(settings, message):
    with pytest.raises(SpecError, match=message):
        Interpretation(**settings)


def test_a_grad_cam_layer_the_model_lacks_fails_before_any_training(project):
    params = {"data.train_limit": 500, "data.test_limit": 100, "interpretation.grad_cam_layer": "dense_6"}
    with pytest.raises(SpecError, match=r"Variant 'cnn': `interpretation\.grad_cam_layer`: model 'cnn' has no "
                                        r"feature-map layer 'dense_6'; its feature maps are \['conv2d_1'"):
        run_session(project, ["cnn"], params)
    assert not (project / "data/06_models/cnn").exists()
