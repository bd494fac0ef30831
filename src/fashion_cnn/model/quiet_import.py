"""A quiet TensorFlow import: drop the known, harmless lines it prints on a machine without a GPU
(the absl preamble, "Could not find cuda drivers", the ``cuInit`` failure and the oneDNN notice; the
patterns below match TensorFlow 2.21's exact lines).

TensorFlow writes these from C++ straight to file descriptor 2, before its logging is set up, so
neither ``TF_CPP_MIN_LOG_LEVEL`` nor Python's ``logging``/``warnings`` can reach them.
:func:`import_tensorflow` imports it with file descriptor 2 captured in an unlinked temporary file,
and afterwards writes every line to the real stderr, in order, except those. Only if TensorFlow said
it found no CUDA driver are its devices then listed once, captured the same way, because that is when
the ``cuInit`` failure is printed; on a machine with a driver, a ``cuInit`` failure is never dropped.
The oneDNN notice is dropped when ``TF_CPP_MIN_LOG_LEVEL`` (the project's default: 1) hides
TensorFlow's other INFO lines, which it is printed too early to obey.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

ABSL_PREAMBLE = re.compile(rb"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR\s*")
NO_CUDA_DRIVERS = re.compile(
    rb"[IWE]\d{4} [\d:.]+ +\d+ cudart_stub\.cc:\d+\] Could not find cuda drivers on your machine, GPU will not be used\.\s*"
)
CUINIT_FAILED = re.compile(rb"[EWI]\d{4} [\d:.]+ +\d+ cuda_platform\.cc:\d+\] failed call to cuInit: .*")
ONEDNN_NOTICE = re.compile(rb"[IWE]\d{4} [\d:.]+ +\d+ port\.cc:\d+\] oneDNN custom operations are on\. .*")


class NoiseFilter:
    """Decides which captured lines (bytes, without their newline) reach stderr; an absl preamble
    goes with the line after it when that line goes."""

    def __init__(self, no_cuda_drivers: bool = False, hide_info: bool | None = None) -> None:
        self.no_cuda_drivers = no_cuda_drivers
        if hide_info is None:  # TF_CPP_MIN_LOG_LEVEL 1 or more hides TensorFlow's INFO lines
            with contextlib.suppress(ValueError):
                hide_info = int(os.environ.get("TF_CPP_MIN_LOG_LEVEL") or 0) >= 1
        self.hide_info = bool(hide_info)
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
        for line, is_noise, next_is_noise in zip(lines, noise, [*noise[1:], False]):
            (self.dropped if is_noise or (next_is_noise and ABSL_PREAMBLE.fullmatch(line)) else kept).append(line)
        return kept


def _flush_python_stderr() -> None:
    for stream in (sys.stderr, sys.__stderr__):
        with contextlib.suppress(Exception):  # None, or closed
            stream.flush()


@contextlib.contextmanager
def filtered_stderr(noise: NoiseFilter | None = None) -> Iterator[NoiseFilter]:
    """Capture file descriptor 2 until exit, then write it through ``noise`` (a new :class:`NoiseFilter`
    by default); an unfinished last line is written as it is. Where file descriptor 2 cannot be
    redirected, only yields the filter."""
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


def import_tensorflow() -> Any:
    """``import tensorflow``; the first time in the process, without the known lines above. Called where a
    run, a dataset or a sweep worker first needs TensorFlow (an explicit call, not an import hook:
    importing the project changes nothing). ``FASHION_CNN_TF_NOISE=1`` shows everything."""
    if "tensorflow" in sys.modules or os.environ.get("FASHION_CNN_TF_NOISE") == "1":
        return importlib.import_module("tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")  # TensorFlow's C++ INFO lines; a user's value wins
    with filtered_stderr() as noise:
        import tensorflow
    if noise.no_cuda_drivers:
        # No driver: the first device listing prints the cuInit failure; do it now, filtered.
        with filtered_stderr(NoiseFilter(no_cuda_drivers=True)), contextlib.suppress(Exception):
            tensorflow.config.list_physical_devices()
    return tensorflow
