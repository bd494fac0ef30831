"""A quiet TensorFlow import: drops the known, harmless lines TensorFlow 2.21 prints on a machine without a GPU
(the absl preamble, "Could not find cuda drivers", the ``cuInit`` failure of the first device listing, and the
oneDNN notice when ``TF_CPP_MIN_LOG_LEVEL`` hides the other INFO lines); every other line reaches stderr, in order.

TensorFlow writes them from C++ straight to file descriptor 2 before its logging is set up, out of reach of
``TF_CPP_MIN_LOG_LEVEL`` and Python's ``logging``: so the import and the first device listing run with descriptor
2 captured in an unlinked temporary file. A ``cuInit`` failure goes only after TensorFlow said there is no driver:
on a machine with one, it is a real problem.
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

LOG_LINE = rb"[IWE]\d{4} [\d:.]+ +\d+ "
PREAMBLE = re.compile(rb"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR\s*")
NO_DRIVER = re.compile(LOG_LINE + rb"cudart_stub\.cc:\d+\] Could not find cuda drivers on your machine, GPU will "
                                  rb"not be used\.\s*")
CUINIT_FAILED = re.compile(LOG_LINE + rb"cuda_platform\.cc:\d+\] failed call to cuInit: .*")
ONEDNN_NOTICE = re.compile(LOG_LINE + rb"port\.cc:\d+\] oneDNN custom operations are on\. .*")


def info_hidden() -> bool:
    """Whether ``TF_CPP_MIN_LOG_LEVEL`` (1 or more) hides TensorFlow's INFO lines."""
    with contextlib.suppress(ValueError):
        return int(os.environ.get("TF_CPP_MIN_LOG_LEVEL") or 0) >= 1
    return False


def noise(lines: list[bytes], hide_info: bool) -> list[bool]:
    """Which ``lines`` (without their newline) to drop; a preamble goes with the line after it."""
    no_driver = any(NO_DRIVER.fullmatch(line) for line in lines)
    known = [bool(NO_DRIVER.fullmatch(line) or (no_driver and CUINIT_FAILED.fullmatch(line))
                  or (hide_info and ONEDNN_NOTICE.fullmatch(line))) for line in lines]
    return [drop or (following and PREAMBLE.fullmatch(line) is not None)
            for line, drop, following in zip(lines, known, [*known[1:], False])]


def _flush_python_stderr() -> None:
    for stream in (sys.stderr, sys.__stderr__):
        with contextlib.suppress(Exception):  # None, or closed
            stream.flush()


@contextlib.contextmanager
def filtered_stderr() -> Iterator[list[bytes]]:
    """Capture file descriptor 2 until exit, then write it without the known lines, which the yielded list
    receives; an unfinished last line is written as it is. Where descriptor 2 cannot be redirected, only yields."""
    dropped: list[bytes] = []
    _flush_python_stderr()
    try:
        saved = os.dup(2)
    except OSError:
        yield dropped
        return
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield dropped
        finally:
            _flush_python_stderr()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            *lines, unfinished = captured.read().split(b"\n")
            drops = noise(lines, info_hidden())
            dropped.extend(line for line, drop in zip(lines, drops, strict=True) if drop)
            data = b"".join(line + b"\n" for line, drop in zip(lines, drops, strict=True) if not drop) + unfinished
            with contextlib.suppress(OSError), open(2, "wb", closefd=False) as stderr:  # never breaks the import
                stderr.write(data)


def import_tensorflow() -> Any:
    """``import tensorflow``; the first time in the process, without the known lines above. Called where a run, a
    dataset or a sweep worker first needs TensorFlow (an explicit call, not an import hook: importing the project
    changes nothing). ``FASHION_CNN_TF_NOISE=1`` shows everything."""
    if "tensorflow" in sys.modules or os.environ.get("FASHION_CNN_TF_NOISE") == "1":
        return importlib.import_module("tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")  # TensorFlow's C++ INFO lines; a user's value wins
    with filtered_stderr():
        import tensorflow

        with contextlib.suppress(Exception):  # the first listing prints the cuInit failure: here, filtered
            tensorflow.config.list_physical_devices()
    return tensorflow
