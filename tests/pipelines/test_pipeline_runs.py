"""Real Kedro sessions on a small subset of the real data: artifacts, reloading, reruns, errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import yaml
from support import QUICK, run_session

from fashion_cnn.model.architecture import SpecError
from fashion_cnn.pipelines.data_processing.nodes import normalise_images

CNN_QUICK = {"data.train_limit": 2000, "data.test_limit": 500, "cnn.training.epochs": 1, "cnn.training.verbose": 0}


def latest(path_pattern, project):
    matches = sorted(project.glob(path_pattern))
    assert matches, f"nothing matches {path_pattern}"
    return matches[-1]


def test_cnn_run_persists_everything_and_the_model_reloads(project):
    catalog = run_session(project, ["cnn"], CNN_QUICK)

    metrics = json.loads(latest("data/08_reporting/cnn/metrics.json/*/metrics.json", project).read_text())
    assert metrics["variant"] == "cnn" and metrics["epochs_run"] == 1 and metrics["test_images"] == 500
    assert metrics["parameter_count"] == 113_386
    assert 0.5 < metrics["test_accuracy"] <= 1  # one epoch on 2,000 images already beats chance (0.1)
    assert set(metrics["per_class_accuracy"]) == {
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    }
    history = pd.read_csv(project / "data/07_model_output/cnn/training_history.csv")
    assert list(history.columns) == ["epoch", "accuracy", "loss", "seconds"] and len(history) == 1
    assert "Total params: 113,386" in (project / "data/08_reporting/cnn/model_summary.txt").read_text()
    assert latest("data/06_models/cnn/model.keras/*/model.keras", project).stat().st_size > 100_000
    summary = json.loads((project / "data/08_reporting/data_summary.json").read_text())
    assert summary["train"]["images"] == 60000  # the checks run on the whole set, before subsetting

    # The saved model reloads through the catalog and reproduces the reported test accuracy.
    model = catalog.load("cnn.model")
    raw = catalog.load("fashion_mnist")
    test_images = normalise_images(raw["test_images"][:500])
    test_labels = raw["test_labels"][:500]
    assert test_images.shape == (500, 28, 28, 1) and test_images.dtype == np.float32
    predicted = model.predict(test_images, verbose=0).argmax(axis=1)
    assert round(float((predicted == test_labels).mean()), 4) == metrics["test_accuracy"]


def test_a_rerun_gives_the_same_metrics(project):
    params = {**QUICK, "dense.training.epochs": 1, "dense.training.verbose": 0}
    results = []
    for _ in range(2):
        run_session(project, ["dense"], params)
        metrics = json.loads(latest("data/08_reporting/dense/metrics.json/*/metrics.json", project).read_text())
        results.append({k: metrics[k] for k in ("test_loss", "test_accuracy", "train_loss", "per_class_accuracy")})
    assert len(list(project.glob("data/08_reporting/dense/metrics.json/*"))) == 2  # versioned, both kept
    assert results[0] == results[1]


def test_a_bad_spec_fails_before_any_training(project):
    params_file = project / "conf/base/parameters_baselines.yml"
    variants = yaml.safe_load(params_file.read_text())
    variants["cnn"]["architecture"][2] = {"Conv2d": {"filters": 32, "kernel_size": 3}}
    params_file.write_text(yaml.safe_dump(variants))
    with pytest.raises(SpecError, match=r"Variant 'cnn', layer 3: unknown layer type 'Conv2d'\. Did you mean Conv2D"):
        run_session(project, ["cnn"], QUICK)
    assert not (project / "data/06_models/cnn").exists()
    assert not (project / "data/08_reporting/data_summary.json").exists()  # not even the data nodes ran


def test_a_bad_data_limit_names_the_parameter(project):
    with pytest.raises(ValueError, match=r"Parameter `data\.train_limit` must be a positive whole number or null"):
        run_session(project, ["dense"], {"data.train_limit": -1})


@pytest.mark.parametrize(("change", "message"), [
    ({"activation_grid.filter_index": -1}, r"`activation_grid\.filter_index` must be the index of a channel"),
    ({"activation_grid.layers": "four"}, r"`activation_grid\.layers` must be a number of feature-map layers"),
])
def test_a_bad_activation_grid_is_refused_by_kedros_typed_parameters_before_the_run(project, change, message):
    from kedro.validation.exceptions import ParameterValidationError

    with pytest.raises(ParameterValidationError, match=r"(?s)Parameter 'activation_grid'.*" + message):
        run_session(project, ["cnn"], {**CNN_QUICK, **change})
    assert not list((project / "data").rglob("*.json")), "nothing ran: not even the run's record"


def test_runtime_parameters_are_set_before_tensorflow_is_imported(project):
    """In a fresh process, as `kedro run` starts: the catalog's `runtime` parameters (with --params)
    become the environment TensorFlow reads at import; oneDNN is then really on (TensorFlow leaves
    it off on AMD CPUs such as this machine's)."""
    script = textwrap.dedent(
        """
        import json, os, sys
        from pathlib import Path
        from kedro.framework.session import KedroSession
        from kedro.framework.startup import bootstrap_project

        bootstrap_project(Path.cwd())
        params = {"runtime": {"intra_op_threads": 1, "inter_op_threads": 2}}
        with KedroSession.create(project_path=Path.cwd(), runtime_params=params) as session:
            session.load_context().catalog
        assert "tensorflow" not in sys.modules
        from tensorflow.python.util import _pywrap_util_port

        names = ("TF_ENABLE_ONEDNN_OPTS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")
        print(json.dumps({**{name: os.environ.get(name) for name in names}, "onednn": _pywrap_util_port.IsMklEnabled()}))
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_ENABLE_ONEDNN", "TF_NUM_"))}
    result = subprocess.run([sys.executable, "-c", script], cwd=project, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {
        "TF_ENABLE_ONEDNN_OPTS": "1",
        "TF_NUM_INTRAOP_THREADS": "1",
        "TF_NUM_INTEROP_THREADS": "2",
        "onednn": True,
    }


def test_a_bad_runtime_parameter_fails_before_the_run(project):
    with pytest.raises(SpecError, match=r"`runtime\.intra_op_threads` must be a positive whole number"):
        run_session(project, ["data_processing"], {"runtime.intra_op_threads": 0})
    assert not (project / "data/08_reporting/data_summary.json").exists()


def test_precision_auto_is_resolved_for_this_cpu_and_recorded(project):
    from fashion_cnn.parameters import cpu_has_bf16, resolve_precision

    catalog = run_session(project, ["cnn"], {**CNN_QUICK, "runtime.precision": "auto"})
    expected = resolve_precision("auto", cpu_has_bf16())
    settings = json.loads((project / "data/05_model_input/cnn/training_settings.json").read_text())
    assert settings["precision"] == expected
    model = catalog.load("cnn.model")
    assert [layer.dtype_policy.name for layer in model.layers[1:-1]] == [expected] * (len(model.layers) - 2)
    assert model.layers[-1].dtype_policy.name == "float32"
    assert list(project.glob("data/08_reporting/cnn/activation_grid.png/*/activation_grid.png"))
