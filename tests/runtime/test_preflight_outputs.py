"""A folder the run cannot write stops a real `kedro run` before any node, in one line naming it
(a read-only tmpfs over the copy's data/06_models; root needed, as CI has)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from support import QUICK, copy_project, tmpfs


def test_a_read_only_models_folder_stops_the_run_before_any_node(tmp_path: Path, real_data_dir: Path) -> None:
    project = copy_project(tmp_path / "project")
    models = project / "data/06_models"
    params = {**QUICK, "cnn.training.epochs": 1, "cnn.training.verbose": 2}
    # Ample size, so that the free-space check cannot be what stops the run; a tmpfs takes no memory empty.
    with tmpfs(models, "ro,size=1g"):
        run = subprocess.run(
            [sys.executable, "-m", "kedro", "run", "--pipelines", "cnn",
             "--params", ",".join(f"{key}={value}" for key, value in params.items())],
            cwd=project, capture_output=True, text=True, timeout=600,
            env={**os.environ, "COLUMNS": "250", "TF_CPP_MIN_LOG_LEVEL": "2"},
        )
    console = run.stdout + run.stderr
    assert run.returncode != 0, console[-3000:]
    assert "Running node" not in console and "Epoch 1/1" not in console, console[-3000:]
    assert not (project / "data/05_model_input/model_inputs.npz").exists()  # not even the first node's output
    named = [line for line in console.splitlines() if "data/06_models" in line and "read-only" in line]
    assert len(named) == 1, console[-3000:]
    assert "Traceback" not in console, console[-3000:]
