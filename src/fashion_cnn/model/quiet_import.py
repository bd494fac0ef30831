"""A quiet TensorFlow import: drop the known, harmless lines it prints on a machine without a GPU.

TensorFlow 2.21 writes these from C++ straight to file descriptor 2, before its logging is set
up, so neither ``TF_CPP_MIN_LOG_LEVEL`` nor Python's ``logging``/``warnings`` can reach them::

    WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
    I0000 00:00:1795816287.435509    8997 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.
    E0000 00:00:1795816292.305422    8997 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: ... (303)
    I0000 00:00:1795819561.475481    9434 port.cc:153] oneDNN custom operations are on. You may see ...

:func:`install` puts an import hook in front of ``import tensorflow`` (no TensorFlow import
itself, so it costs nothing to commands that never need it). While TensorFlow is first imported,
file descriptor 2 is captured in an unlinked temporary file, and afterwards every line is written
to the real stderr, in order, except the lines above. Only if TensorFlow said it found no CUDA
driver are its devices then listed once, captured the same way, because that is when the
``cuInit`` failure is printed; on a machine with a driver, a ``cuInit`` failure is never dropped.
The oneDNN notice is dropped when ``TF_CPP_MIN_LOG_LEVEL`` (the project's default: 1) hides
TensorFlow's other INFO lines, which it is printed too early to obey.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator
from typing import Any

ABSL_PREAMBLE = re.compile(rb"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR\s*")
NO_CUDA_DRIVERS = re.compile(
    rb"[IWE]\d{4} [\d:.]+ +\d+ cudart_stub\.cc:\d+\] Could not find cuda drivers on your machine, GPU will not be used\.\s*"
)
CUINIT_FAILED = re.compile(rb"[EWI]\d{4} [\d:.]+ +\d+ cuda_platform\.cc:\d+\] failed call to cuInit: .*")
ONEDNN_NOTICE = re.compile(rb"[IWE]\d{4} [\d:.]+ +\d+ port\.cc:\d+\] oneDNN custom operations are on\. .*")


def _tf_hides_info() -> bool:
    """Whether ``TF_CPP_MIN_LOG_LEVEL`` asks TensorFlow to hide its INFO lines (level 1 or more)."""
    try:
        return int(os.environ.get("TF_CPP_MIN_LOG_LEVEL") or 0) >= 1
    except ValueError:
        return False


class NoiseFilter:
    """Decides which captured lines (bytes, without their newline) reach stderr; an absl preamble
    goes with the line after it when that line goes."""

    def __init__(self, no_cuda_drivers: bool = False, hide_info: bool | None = None) -> None:
        self.no_cuda_drivers = no_cuda_drivers
        self.hide_info = _tf_hides_info() if hide_info is None else hide_info
        self.dropped: list[bytes] = []

    def _is_noise(self, line: bytes) -> bool:
        if NO_CUDA_DRIVERS.fullmatch(line):
            self.no_cuda_drivers = True
            return True
        if self.hide_info and ONEDNN_NOTICE.fullmatch(line):
            return True
        return self.no_cuda_drivers and CUINIT_FAILED.fullmatch(line) is not None

    def keep(self, lines: list[bytes]) -> list[bytes]:
        """The lines to write, in order."""
        noise = [not ABSL_PREAMBLE.fullmatch(line) and self._is_noise(line) for line in lines]
        kept = []
        for index, line in enumerate(lines):
            goes_with_next = ABSL_PREAMBLE.fullmatch(line) and index + 1 < len(lines) and noise[index + 1]
            (self.dropped if noise[index] or goes_with_next else kept).append(line)
        return kept


def _flush_python_stderr() -> None:
    for stream in {id(s): s for s in (sys.stderr, sys.__stderr__) if s is not None}.values():
        with contextlib.suppress(Exception):
            stream.flush()


@contextlib.contextmanager
def filtered_stderr(noise: NoiseFilter | None = None) -> Iterator[NoiseFilter]:
    """Capture file descriptor 2 until exit, then write it through ``noise`` (a new
    :class:`NoiseFilter` by default); an unfinished last line is written as it is.

    Does nothing (but still yields the filter) where file descriptor 2 cannot be redirected.
    """
    noise = noise or NoiseFilter()
    _flush_python_stderr()
    try:
        saved = os.dup(2)
    except OSError:
        yield noise
        return
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield noise
        finally:
            _flush_python_stderr()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            *lines, unfinished = captured.read().split(b"\n")
            data = b"".join(line + b"\n" for line in noise.keep(lines)) + unfinished
            with contextlib.suppress(OSError):  # a closed stderr must not break the import
                while data:
                    data = data[os.write(2, data):]


class _QuietLoader(importlib.abc.Loader):
    """TensorFlow's own loader, executing the package under :func:`filtered_stderr`."""

    def __init__(self, loader: Any, finder: _TensorFlowFinder) -> None:
        self._loader = loader
        self._finder = finder

    def __getattr__(self, name: str) -> Any:  # resource readers etc. of the real loader
        return getattr(self._loader, name)

    def create_module(self, spec: Any) -> Any:
        return self._loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        self._finder.remove()
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")  # TensorFlow's C++ INFO lines; a user's value wins
        with filtered_stderr() as noise:
            self._loader.exec_module(module)
        if noise.no_cuda_drivers:
            # No driver: the first device listing prints the cuInit failure; do it now, filtered.
            with filtered_stderr(NoiseFilter(no_cuda_drivers=True)), contextlib.suppress(Exception):
                module.config.list_physical_devices()


def _is_ours(finder: Any) -> bool:
    # By marker, not isinstance: Kedro's IPython extension re-imports the project's modules,
    # and a finder from the previous copy of this module must still be recognised.
    return getattr(finder, "_fashion_cnn_quiet_tensorflow", False) is True


class _TensorFlowFinder(importlib.abc.MetaPathFinder):
    """Hands out TensorFlow's spec with a :class:`_QuietLoader`, until the first import runs."""

    _fashion_cnn_quiet_tensorflow = True

    def __init__(self) -> None:
        self._searching = threading.local()

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname != "tensorflow" or getattr(self._searching, "active", False):
            return None  # another finder asking the meta path again (MLflow's import hooks do)
        self._searching.active = True
        try:
            for finder in list(sys.meta_path):
                find = getattr(finder, "find_spec", None)
                if _is_ours(finder) or find is None:
                    continue
                spec = find(fullname, path, target)
                if spec is not None:
                    if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                        spec.loader = _QuietLoader(spec.loader, self)
                    return spec
            return None
        finally:
            self._searching.active = False

    def remove(self) -> None:
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(self)


def install() -> bool:
    """Make the first ``import tensorflow`` of this process quiet; True if the hook is (now) in place.

    Cheap and idempotent; does nothing once TensorFlow is imported. ``FASHION_CNN_TF_NOISE=1``
    turns it off (to see TensorFlow's messages as they are).
    """
    if "tensorflow" in sys.modules or os.environ.get("FASHION_CNN_TF_NOISE") == "1":
        return False
    if not any(_is_ours(finder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _TensorFlowFinder())
    return True
