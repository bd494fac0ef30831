"""Fixtures: small generated IDX files, the real data set, and throwaway project copies.
Helpers the tests import are in support.py."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from support import copy_project, find_real_data, make_arrays, write_idx_folder

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "true")


@pytest.fixture
def idx_arrays() -> dict[str, np.ndarray]:
    return make_arrays()


@pytest.fixture
def idx_folder(tmp_path: Path, idx_arrays: dict[str, np.ndarray]) -> Path:
    return write_idx_folder(tmp_path / "idx", idx_arrays)


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    folder = find_real_data()
    if folder is None:
        pytest.fail(
            "The real Fashion-MNIST files are neither in data/01_raw/fashion-mnist/ nor where the Debian "
            "package puts them (/usr/share/datasets/fashion-mnist/): the README's test command installs the "
            "package, or run `kedro run --pipelines data_processing` once to download them (the tests never do)."
        )
    return folder


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, real_data_dir: Path) -> Path:
    """A throwaway project copy, as the working directory, reading the real data set."""
    path = copy_project(tmp_path / "project")
    monkeypatch.chdir(path)
    return path
