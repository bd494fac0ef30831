"""Every configured variant trains (lightning-hydra-template's sweep test), the threshold
callback stops training, and a variant added only in YAML runs and is compared."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from support import run_session

from fashion_cnn.variants import load_variants

VARIANTS = load_variants()
TINY = {"data.train_limit": 300, "data.test_limit": 100}


def tiny_params(variants, epochs: int = 1) -> dict:
    params = dict(TINY)
    for name in variants:
        params[f"{name}.training.epochs"] = epochs
        params[f"{name}.training.verbose"] = 0
    return params


def metrics_of(project, variant: str) -> dict:
    paths = sorted((project / f"data/08_reporting/{variant}/metrics.json").glob("*/metrics.json"))
    assert paths, f"no metrics for {variant}"
    return json.loads(paths[-1].read_text())


def test_the_exercises_cover_the_notebook():
    exercises = {name for name, spec in VARIANTS.items() if "exercise" in spec.get("tags", [])}
    assert {"filters_16", "filters_64", "no_final_conv", "more_convs", "first_conv_only", "conv_32_64",
            "stop_at_loss"} <= exercises
    assert {"dense", "cnn", "overfitting"} <= set(VARIANTS)


def add_yaml_variant(project) -> str:
    """Append a variant to the project copy's exercises file, as a team member would."""
    with (project / "conf/base/parameters_exercises.yml").open("a") as f:
        f.write(yaml.safe_dump({"filters_8_dropout": {
            "description": "Added in YAML only",
            "tags": ["exercise"],
            "architecture": [
                {"Conv2D": {"filters": 8, "kernel_size": 3, "activation": "relu"}},
                {"MaxPooling2D": {"pool_size": 2}},
                {"Flatten": {}},
                {"Dropout": {"rate": 0.2}},
                {"Dense": {"units": 10, "activation": "softmax"}},
            ],
            "training": {"batch_size": 64},
        }}))
    return "filters_8_dropout"


def test_every_variant_trains_and_is_compared_including_one_added_in_yaml(project):
    from kedro.framework.project import pipelines
    from kedro.framework.startup import bootstrap_project

    added = add_yaml_variant(project)
    bootstrap_project(project)
    assert added in pipelines  # `kedro run --pipeline filters_8_dropout`
    assert f"{added}.train_model" in {n.name for n in pipelines["exercises"].nodes}
    every = [*VARIANTS, added]

    run_session(project, ["compare"], tiny_params(every))

    comparison = pd.read_csv(project / "data/08_reporting/comparison.csv")
    assert comparison["variant"].tolist() == ["cnn", *sorted(set(every) - {"cnn"})]
    assert (comparison["epochs_run"] == 1).all()
    assert (comparison["test_accuracy"].between(0, 1)).all()
    table = comparison.set_index("variant")
    assert table.loc["cnn", "test_accuracy_vs_cnn"] == 0
    markdown = (project / "data/08_reporting/comparison.md").read_text()
    assert markdown.count("\n") == len(every) + 2 and "| filters_64 |" in markdown
    assert list((project / "data/08_reporting/comparison.png").glob("*/comparison.png"))
    # Parameter counts follow from the architectures: 16 filters < 32 < 64.
    counts = table["parameters"]
    assert counts["filters_16"] < counts["cnn"] < counts["filters_64"]
    assert counts["overfitting"] == counts["cnn"]
    assert counts[added] == 8 * 10 + 13 * 13 * 8 * 10 + 10
    assert list((project / f"data/08_reporting/{added}/activation_grid.png").glob("*/*.png"))
    settings = json.loads((project / f"data/05_model_input/{added}/training_settings.json").read_text())
    assert settings["batch_size"] == 64
    # The overfitting study reports on its validation split.
    overfitting = metrics_of(project, "overfitting")
    assert overfitting["best_val_loss_epoch"] == 1 and "final_train_val_accuracy_gap" in overfitting
    history = pd.read_csv(project / "data/07_model_output/overfitting/training_history.csv")
    assert {"val_loss", "val_accuracy"} <= set(history.columns)


def test_stop_at_threshold_ends_training_early(project):
    params = {**TINY, "stop_at_loss.training.epochs": 5, "stop_at_loss.training.verbose": 0,
              # Reachable on the first epoch: the loss starts near ln(10) = 2.3.
              "stop_at_loss.training.stop_at_threshold": {"monitor": "loss", "threshold": 2.5, "mode": "below"}}
    run_session(project, ["stop_at_loss"], params)
    metrics = metrics_of(project, "stop_at_loss")
    assert metrics["epochs_run"] == 1 and metrics["epochs_planned"] == 5 and metrics["stopped_early"]


@pytest.mark.parametrize(("mode", "threshold", "epochs_run"), [("below", 0.0, 3), ("above", 0.0, 1), ("above", 1.1, 3)])
def test_stop_at_threshold_callback(mode, threshold, epochs_run):
    import keras

    from fashion_cnn.model.callbacks import StopAtThreshold

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x, y = np.random.default_rng(0).random((32, 4), dtype=np.float32), np.arange(32) % 2
    history = model.fit(x, y, epochs=3, verbose=0,
                        callbacks=[StopAtThreshold(monitor="accuracy", threshold=threshold, mode=mode)])
    assert len(history.epoch) == epochs_run


@pytest.mark.slow
@pytest.mark.parametrize("runner", ["SweepRunner", "ParallelRunner"])
def test_exercises_run_in_worker_processes(project, runner):
    """`kedro run --pipeline exercises` (SweepRunner on two cores), and with `--runner ParallelRunner`."""
    from kedro.runner import ParallelRunner

    from fashion_cnn.runtime.sweep_runner import SweepRunner

    exercises = [n for n, s in VARIANTS.items() if "exercise" in s.get("tags", [])]
    runner_object = SweepRunner(max_workers=2) if runner == "SweepRunner" else ParallelRunner(max_workers=2)
    run_session(project, ["exercises"], tiny_params(exercises), runner=runner_object)
    for name in exercises:
        assert metrics_of(project, name)["epochs_run"] == 1
    assert np.isfinite([metrics_of(project, n)["test_loss"] for n in exercises]).all()
