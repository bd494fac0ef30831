"""fashion_cnn.model.quiet_import: TensorFlow's CUDA probe lines go, every other stderr line stays.

The quiet import is tested with a stand-in `tensorflow` package that writes TensorFlow's exact
lines (and genuine ones) to file descriptor 2. Real `kedro run`s with the real TensorFlow, one
of them failing, are checked in test_viz.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fashion_cnn.model.quiet_import import filtered_stderr, info_hidden, noise

PREAMBLE = b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
NO_DRIVER = (b"I0000 00:00:1795816287.435509    8997 cudart_stub.cc:31] Could not find cuda drivers on your "
             b"machine, GPU will not be used.")
CUINIT = (b"E0000 00:00:1795816292.305422    8997 cuda_platform.cc:52] failed call to cuInit: INTERNAL: "
          b"CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)")
ONEDNN = (b"I0000 00:00:1795819561.475481    9434 port.cc:153] oneDNN custom operations are on. You may see "
          b"slightly different numerical results due to floating-point round-off errors from different computation "
          b"orders. To turn them off, set the environment variable `TF_ENABLE_ONEDNN_OPTS=0`.")
GENUINE = b"E0000 00:00:1795816290.000001    8997 op_kernel.cc:1857] OP_REQUIRES failed: a genuine error"


def run_filter(lines: list[bytes], hide_info: bool = True) -> list[bytes]:
    return [line for line, drop in zip(lines, noise(lines, hide_info)) if not drop]


def test_the_known_lines_go_and_the_preamble_goes_with_them():
    assert run_filter([PREAMBLE, NO_DRIVER, b"hello", PREAMBLE, NO_DRIVER, CUINIT]) == [b"hello"]


def test_cuinit_failures_stay_unless_tensorflow_said_there_is_no_driver():
    assert run_filter([CUINIT]) == [CUINIT]  # a machine with a driver: a real problem, shown
    assert run_filter([NO_DRIVER, CUINIT]) == []


def test_the_onednn_notice_goes_when_tensorflows_info_lines_are_off(monkeypatch):
    lines = [PREAMBLE, ONEDNN, NO_DRIVER]
    assert run_filter(lines, hide_info=True) == []
    assert run_filter(lines, hide_info=False) == [PREAMBLE, ONEDNN]
    for level, hidden in (("1", True), ("3", True), ("0", False), ("", False), ("x", False)):
        monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", level)
        assert info_hidden() is hidden


def test_a_preamble_before_a_genuine_line_stays_in_order():
    assert run_filter([PREAMBLE, GENUINE, PREAMBLE]) == [PREAMBLE, GENUINE, PREAMBLE]
    assert run_filter([b"x", PREAMBLE, PREAMBLE, NO_DRIVER]) == [b"x", PREAMBLE]


def test_the_filter_passes_through_file_descriptor_2(capfd):
    stderr = sys.__stderr__  # the stream on file descriptor 2 (pytest swaps `sys.stderr`)
    print("python before", file=stderr)
    with filtered_stderr() as dropped:
        os.write(2, PREAMBLE + b"\n" + NO_DRIVER + b"\n" + GENUINE + b"\n")
        print("python inside", file=stderr)
        os.write(2, b"unfinished")
    print("python after", file=stderr)
    assert capfd.readouterr().err.splitlines() == [
        "python before", GENUINE.decode(), "python inside", "unfinishedpython after"  # no newline added
    ]
    assert dropped == [PREAMBLE, NO_DRIVER]


# A stand-in `tensorflow` that writes from "C++" (file descriptor 2) like TensorFlow 2.21 does.
FAKE_TENSORFLOW = """
import os
def _say(*lines):
    os.write(2, b"".join(line + b"\\n" for line in lines))
_say({preamble!r})
if os.environ.get("FAKE_NO_DRIVER") == "1":
    _say({no_driver!r})
_say({genuine!r})
class config:
    listed = False
    @classmethod
    def list_physical_devices(cls, device_type=None):
        if not cls.listed:  # the first listing probes CUDA, as TensorFlow's does
            cls.listed = True
            _say({cuinit!r})
        return []
"""

SCRIPT = """
import importlib, importlib.resources, os, sys
assert "tensorflow" not in sys.modules
import fashion_cnn.settings  # importing the project's settings changes nothing: no import hook
assert "tensorflow" not in sys.modules
from fashion_cnn.model.quiet_import import import_tensorflow
os.write(2, b"before\\n")
tensorflow = import_tensorflow()
assert importlib.resources.files("tensorflow").joinpath("__init__.py").is_file()
if os.environ.get("FAKE_NO_DRIVER") != "1":
    tensorflow.config.list_physical_devices()  # the user's own listing, after the import
assert import_tensorflow() is tensorflow  # a second call does nothing more
os.write(2, b"after\\n")
"""


@pytest.fixture
def fake_tensorflow(tmp_path: Path) -> Path:
    package = tmp_path / "fake" / "tensorflow"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(textwrap.dedent(FAKE_TENSORFLOW.format(
        preamble=PREAMBLE, no_driver=NO_DRIVER, genuine=GENUINE, cuinit=CUINIT
    )))
    return package.parent


def run_script(fake: Path, **env: str) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": f"{fake}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", **env},
    )
    assert result.returncode == 0, result.stderr
    return result.stderr.splitlines()


def test_no_gpu_driver_every_known_line_goes(fake_tensorflow):
    assert run_script(fake_tensorflow, FAKE_NO_DRIVER="1") == ["before", GENUINE.decode(), "after"]


def test_with_a_gpu_driver_a_cuinit_failure_is_shown(fake_tensorflow):
    assert run_script(fake_tensorflow, FAKE_NO_DRIVER="0") == [
        "before", PREAMBLE.decode(), GENUINE.decode(), CUINIT.decode(), "after"
    ]


def test_fashion_cnn_tf_noise_1_shows_everything(fake_tensorflow):
    assert run_script(fake_tensorflow, FAKE_NO_DRIVER="1", FASHION_CNN_TF_NOISE="1") == [
        "before", PREAMBLE.decode(), NO_DRIVER.decode(), GENUINE.decode(), "after"
    ]
