"""Helpers the tests share: generated IDX files, throwaway project copies, real Kedro sessions, and
a static HTTP server on 127.0.0.1. Fixtures live in conftest.py."""

from __future__ import annotations

import contextlib
import functools
import gzip
import io
import subprocess
import shutil
import struct
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

from fashion_cnn.datasets.idx import UBYTE

PROJECT_ROOT = Path(__file__).resolve().parents[1]
IDX_NAMES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
QUICK = {"data.train_limit": 600, "data.test_limit": 200}


def make_arrays(n_train: int = 30, n_test: int = 10, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "train_images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train_labels": (np.arange(n_train) % 10).astype(np.uint8),
        "test_images": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "test_labels": (np.arange(n_test) % 10).astype(np.uint8),
    }


def write_idx(path: Path, array: np.ndarray, compress: bool | None = None) -> None:
    """Write a uint8 ``array`` as an IDX file; gzip it when ``compress`` (default: name ends in .gz)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    content = struct.pack(f">HBB{array.ndim}I", 0, UBYTE, array.ndim, *array.shape) + array.tobytes()
    if compress if compress is not None else path.suffix == ".gz":
        content = gzip.compress(content, compresslevel=6)
    path.write_bytes(content)


def write_idx_folder(folder: Path, arrays: dict[str, np.ndarray], gz: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for key, array in arrays.items():
        write_idx(folder / (IDX_NAMES[key] + (".gz" if gz else "")), array)
    return folder


def find_real_data() -> Path | None:
    """The real Fashion-MNIST folder, found as the project's catalog finds it (data/01_raw/ of this
    checkout, then the Debian package's folder); the tests never download it."""
    import yaml

    from fashion_cnn.datasets import FashionMNISTDataset

    entry = yaml.safe_load((PROJECT_ROOT / "conf/base/catalog.yml").read_text())["fashion_mnist"]
    dataset = FashionMNISTDataset(path=str(PROJECT_ROOT / entry["path"]), fallback_paths=entry["fallback_paths"])
    return dataset.folder()


def copy_project(target: Path) -> Path:
    """A copy of the project's configuration with an empty data/ tree, to run sessions in; its
    data/01_raw/fashion-mnist links to the real data wherever :func:`find_real_data` found it."""
    for item in ("conf", "pyproject.toml", ".telemetry"):
        source = PROJECT_ROOT / item
        if source.is_dir():
            shutil.copytree(source, target / item, ignore=shutil.ignore_patterns("credentials*"))
        elif source.exists():
            shutil.copy2(source, target / item)
    (target / "src").mkdir()  # bootstrap_project wants a source folder; the package is installed
    for layer in ("01_raw", "05_model_input", "06_models", "07_model_output", "08_reporting"):
        (target / "data" / layer).mkdir(parents=True, exist_ok=True)
    raw_data = find_real_data()
    if raw_data is not None:
        (target / "data/01_raw/fashion-mnist").symlink_to(raw_data)
    return target


@contextlib.contextmanager
def tmpfs(mount_point: Path, options: str):
    """A real tmpfs (``options``: ``size=3m``, ``ro,size=1m``, ...) mounted at ``mount_point`` for the
    block, unmounted afterwards; root needed, as CI has."""
    import pytest

    mount_point.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount_point)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (root needed): {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def nest(params: dict) -> dict:
    """``{"a.b": 1}`` -> ``{"a": {"b": 1}}``, as `kedro run --params a.b=1` passes them."""
    nested: dict = {}
    for dotted, value in params.items():
        *parents, leaf = dotted.split(".")
        node = nested
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return nested


def run_session(project_path: Path, pipelines: list[str], params: dict | None = None, env: str | None = None,
                stdout: io.StringIO | None = None, **run_kwargs):
    """Run pipelines in a real KedroSession of ``project_path``; return the session's catalog. With
    ``stdout``, what the run alone prints there (Kedro's log, the score table) goes into it."""
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(project_path)
    with KedroSession.create(project_path=project_path, runtime_params=nest(params or {}), env=env) as session:
        with contextlib.redirect_stdout(stdout) if stdout is not None else contextlib.nullcontext():
            session.run(pipeline_names=pipelines, **run_kwargs)
        return session.load_context().catalog


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        pass


@contextlib.contextmanager
def serve_folder(folder: Path, handler: type[SimpleHTTPRequestHandler] = QuietHandler):
    """A static HTTP server for ``folder`` on a free 127.0.0.1 port, in a thread of this process."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
