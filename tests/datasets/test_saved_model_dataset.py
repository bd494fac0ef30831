"""SavedModelDataset on a real full disk (a small tmpfs; root needed, as CI has): whichever layer
finds the disk full, Python or TensorFlow, the export ends in the project's one disk-full message,
leaves nothing under its name nor a temporary folder, and a previous export stays intact."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from kedro.io import DatasetError
from kedro.io.core import Version
from support import copy_project, tmpfs

from fashion_cnn.datasets.keras_model_dataset import SavedModelDataset

VERSION = "2026-01-01T00.00.00.001Z"


def disk_full(final: Path) -> str:
    """The project's disk-full message for ``final``, as a pattern."""
    return rf"No space left on the disk while saving {re.escape(str(final))} \(\d+\.\d MB free\)\. Nothing was written"


def dense_model(inputs: int, units: int):
    import keras

    return keras.Sequential([keras.Input((inputs,)), keras.layers.Dense(units)])


def outputs_of_export(folder: Path, inputs: int) -> tuple[int, ...]:
    loaded = SavedModelDataset(filepath=str(folder)).load()
    return tuple(loaded.serve(np.zeros((1, inputs), np.float32)).shape)


def test_a_full_disk_seen_by_tensorflow_gives_the_disk_full_message_and_keeps_the_previous_export(tmp_path):
    with tmpfs(tmp_path / "disk", "size=1m") as disk:
        final = disk / "cnn/saved_model/1"
        SavedModelDataset(filepath=str(final)).save(dense_model(3, 2))  # the previous export: it fits
        with pytest.raises(DatasetError, match=disk_full(final)) as error:
            SavedModelDataset(filepath=str(final)).save(dense_model(600, 600))  # 1.4 MB of weights
        assert type(error.value.__cause__).__name__ == "ResourceExhaustedError"  # TensorFlow's writer saw it
        assert sorted(p.name for p in final.parent.iterdir()) == ["1"]  # no temporary folder left
        assert outputs_of_export(final, 3) == (1, 2)  # the previous export, whole


def test_a_full_disk_seen_by_python_gives_the_same_message(tmp_path):
    with tmpfs(tmp_path / "disk", "size=1m,nr_inodes=2") as disk:  # room for one folder, not two
        final = disk / "cnn/saved_model/1"
        with pytest.raises(DatasetError, match=disk_full(final)) as error:
            SavedModelDataset(filepath=str(final)).save(dense_model(3, 2))
        assert isinstance(error.value.__cause__, OSError)  # creating the folders, before TensorFlow writes
        assert [p.name for p in disk.rglob("*") if p.name != "cnn"] == []


def test_other_tensorflow_errors_while_exporting_are_not_called_a_full_disk(tmp_path):
    with tmpfs(tmp_path / "disk", "ro,size=1m") as disk:  # a folder that exists, on a read-only disk
        with pytest.raises(DatasetError, match="Read-only file system") as error:
            SavedModelDataset(filepath=str(disk / "1")).save(dense_model(3, 2))
        assert type(error.value.__cause__).__name__ == "PermissionDeniedError"  # TensorFlow's, left as it is
        assert "No space left" not in str(error.value)


def test_kedro_run_export_on_a_full_disk_ends_in_one_line_and_keeps_the_previous_export(tmp_path):
    import keras

    from fashion_cnn.datasets import KerasModelDataset
    from fashion_cnn.pipelines.export.nodes import serving_version

    project = copy_project(tmp_path / "project")
    trained = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(460),
                                keras.layers.Dense(10, activation="softmax")], name="cnn")  # 1.4 MB of weights
    KerasModelDataset(filepath=str(project / "data/06_models/cnn/model.keras"), version=Version(None, VERSION)).save(
        trained)
    with tmpfs(project / "data/06_models/cnn/saved_model", "size=1m") as exports:
        final = exports / str(serving_version(VERSION))
        SavedModelDataset(filepath=str(final)).save(dense_model(3, 2))  # an earlier export under that number
        run = subprocess.run([sys.executable, "-m", "kedro", "run", "--pipelines", "export"], cwd=project,
                             capture_output=True, text=True, timeout=600,
                             env={**os.environ, "COLUMNS": "250", "TF_CPP_MIN_LOG_LEVEL": "2"})
        console = run.stdout + run.stderr
        assert run.returncode != 0, console[-3000:]
        assert "Traceback" not in console and "ResourceExhaustedError" not in console, console[-5000:]
        (line,) = [line for line in console.splitlines() if "No space left" in line]
        assert re.search(disk_full(final), line), line
        assert [p.name for p in exports.iterdir()] == [final.name]
        assert outputs_of_export(final, 3) == (1, 2)
