"""Full-size runs on the real data (minutes each): `pytest -m slow`."""

from __future__ import annotations

import json

import pytest
from support import run_session

pytestmark = pytest.mark.slow


def latest_metrics(project, variant):
    path = sorted((project / f"data/08_reporting/{variant}/metrics.json").glob("*/metrics.json"))[-1]
    return json.loads(path.read_text())


@pytest.mark.parametrize(("variant", "minimum"), [("dense", 0.86), ("cnn", 0.89)])
def test_notebook_accuracy_on_the_full_data(project, variant, minimum):
    run_session(project, [variant], {f"{variant}.training.verbose": 2})
    metrics = latest_metrics(project, variant)
    assert metrics["test_images"] == 10_000 and metrics["epochs_run"] == 5
    assert metrics["test_accuracy"] >= minimum


def test_fast_environment_reaches_090(project):
    run_session(project, ["cnn"], {"cnn.training.verbose": 2}, env="fast")
    assert latest_metrics(project, "cnn")["test_accuracy"] >= 0.90
