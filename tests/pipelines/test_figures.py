"""The notebook's visual cells as nodes: activation grid, kernels, confusion matrix, labels."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from support import run_session

from fashion_cnn.model.architecture import build_model
from fashion_cnn.pipelines.data_processing.nodes import tabulate_first_test_labels
from fashion_cnn.pipelines.variants.figures import (
    plot_confusion_matrix,
    plot_first_layer_kernels,
    render_activation_grid,
    tabulate_per_class_accuracy,
)
from fashion_cnn.variants import load_parameters

CLASSES = load_parameters()["data"]["class_names"]
GRID = {"image_indices": [0, 23, 28], "filter_index": 1, "layers": 4, "cmap": "inferno"}
CNN = [
    {"Conv2D": {"filters": 8, "kernel_size": 3, "activation": "relu"}},
    {"MaxPooling2D": {"pool_size": 2}},
    {"Conv2D": {"filters": 4, "kernel_size": 3, "activation": "relu"}},
    {"MaxPooling2D": {"pool_size": 2}},
    "Flatten",
    {"Dense": {"units": 10, "activation": "softmax"}},
]


@pytest.fixture(scope="module")
def small_cnn():
    return build_model("small_cnn", CNN, (28, 28, 1), 10)


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(1)
    return rng.random((30, 28, 28, 1), dtype=np.float32), (np.arange(30) % 10).astype(np.uint8)


def test_activation_grid_is_three_by_four_with_each_layers_maps(small_cnn, images):
    import keras

    x, y = images
    figure = render_activation_grid(small_cnn, x, y, GRID, CLASSES)
    axes = figure.axes
    assert len(axes) == 12
    shapes = [ax.images[0].get_array().shape for ax in axes]
    assert shapes == [(26, 26), (13, 13), (11, 11), (5, 5)] * 3
    assert [ax.get_title().split("\n")[0] for ax in axes[:4]] == [
        "conv2d_1", "max_pooling2d_2", "conv2d_3", "max_pooling2d_4",
    ]
    assert axes[4].get_ylabel() == f"image 23\n{CLASSES[y[23]]}"
    assert all(ax.images[0].get_cmap().name == "inferno" for ax in axes)
    # Row 2, column 3 is filter 1 of conv2d_3 for image 28, as a direct forward pass gives it.
    layer = small_cnn.get_layer("conv2d_3")
    expected = keras.Model(small_cnn.inputs, layer.output).predict(x[28:29], verbose=0)[0, :, :, 1]
    np.testing.assert_allclose(axes[10].images[0].get_array(), expected, rtol=1e-5, atol=1e-6)


def test_activation_grid_layers_by_name(small_cnn, images):
    figure = render_activation_grid(small_cnn, *images, {**GRID, "layers": ["conv2d_3"]}, CLASSES)
    assert len(figure.axes) == 3


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"image_indices": [0, 30]}, r"`activation_grid\.image_indices`: \[30\] outside the 30 test images this run uses"),
        ({"image_indices": [-1]}, r"`activation_grid\.image_indices`: \[-1\] outside"),
        ({"filter_index": 4}, r"`activation_grid\.filter_index` 4 is not below the 4 channels of layer 'conv2d_3'"),
        ({"layers": ["flatten_5"]}, r"layer 'flatten_5' .* outputs \(None, 100\), not a feature map"),
        ({"layers": ["conv9"]}, r"model 'small_cnn' has no layer 'conv9'"),
    ],
)
def test_bad_grid_settings_fail_before_rendering(small_cnn, images, change, message):
    with pytest.raises(ValueError, match=message):
        render_activation_grid(small_cnn, *images, {**GRID, **change}, CLASSES)


def test_kernels_figure_shows_every_first_layer_filter(small_cnn):
    figure = plot_first_layer_kernels(small_cnn)
    mosaic = figure.axes[0].images[0].get_array()
    kernels = next(layer for layer in small_cnn.layers if layer.get_weights()).get_weights()[0][:, :, 0, :]  # 8 of 3x3
    assert mosaic.shape == (3, 8 * 4 - 1)
    for index in range(8):
        np.testing.assert_array_equal(mosaic[:, index * 4 : index * 4 + 3], kernels[:, :, index])
    assert [text.get_text() for text in figure.axes[0].texts] == [str(i) for i in range(8)]


@pytest.mark.parametrize("filters", [3, 8, 16, 32, 64])
def test_kernels_are_drawn_square(filters):
    import keras
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Conv2D(filters, 3)], name=f"filters_{filters}")
    figure = plot_first_layer_kernels(model)
    FigureCanvasAgg(figure).draw()  # the layout as saved
    (x0, y0), (x1, y1) = figure.axes[0].transData.transform([(0, 0), (1, 1)])
    assert abs(x1 - x0) == pytest.approx(abs(y1 - y0), rel=0.01)  # one kernel weight: as wide as high, in pixels
    assert abs(x1 - x0) > 10


def test_confusion_matrix_and_per_class_table():
    predictions = pd.DataFrame({"label": [0, 0, 0, 1, 9, 9], "predicted": [0, 0, 6, 1, 7, 9]})
    figure = plot_confusion_matrix(predictions, CLASSES)
    assert figure.axes[0].images[0].get_array()[0, 6] == 1
    assert "accuracy 0.6667" in figure.axes[0].get_title()
    table = tabulate_per_class_accuracy(predictions, CLASSES).set_index("class")
    assert table.loc["T-shirt/top", "accuracy"] == round(2 / 3, 4)
    assert table.loc["T-shirt/top", "most_confused_with"] == "Shirt"
    assert table.loc["Trouser", "most_confused_with"] == ""
    assert table.loc["Pullover", "images"] == 0


def test_first_test_labels_show_the_grids_images(real_data_dir):
    from fashion_cnn.datasets import FashionMNISTDataset

    data = FashionMNISTDataset(path=str(real_data_dir)).load()
    table, text = tabulate_first_test_labels(data, CLASSES, 100, [0, 23, 28])
    assert len(table) == 100 and table.loc[table["in_activation_grid"], "class"].tolist() == ["Ankle boot"] * 3
    assert "test image 23: label 9 (Ankle boot)" in text
    assert "All 3 are class 9" in text


def test_runs_write_figures_for_convolutional_variants_only(project, caplog):
    params = {"data.train_limit": 500, "data.test_limit": 100}
    params |= {f"{v}.training.{k}": val for v in ("dense", "cnn") for k, val in (("epochs", 1), ("verbose", 0))}
    run_session(project, ["dense", "cnn"], params)
    reporting = project / "data/08_reporting"
    for name in ("activation_grid", "first_layer_kernels", "confusion_matrix", "learning_curves", "top_losses",
                 "grad_cam"):
        pngs = list((reporting / "cnn" / f"{name}.png").glob("*/*.png"))
        assert len(pngs) == 1 and pngs[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert list((reporting / "dense/confusion_matrix.png").glob("*/*.png"))
    assert not (reporting / "dense/activation_grid.png").exists()  # no convolutions, no grid, no error
    assert not (reporting / "dense/grad_cam.png").exists()
    assert list((reporting / "dense/top_losses.png").glob("*/*.png"))
    assert "No convolution in dense: no activation grid, kernels or Grad-CAM." in caplog.text  # said once
    assert caplog.text.count("No convolution in") == 1
    wrong = pd.read_csv(project / "data/07_model_output/dense/test_predictions.csv").eval("label != predicted").sum()
    assert pd.read_csv(reporting / "dense/most_confused.csv")["count"].sum() == wrong
    assert pd.read_csv(reporting / "cnn/per_class_accuracy.csv")["images"].sum() == 100
    labels = pd.read_csv(reporting / "test_labels_first_100.csv")
    assert labels.loc[[0, 23, 28], "label"].tolist() == [9, 9, 9]
    metrics = json.loads(next((reporting / "cnn/metrics.json").glob("*/metrics.json")).read_text())
    assert metrics["test_images"] == 100
