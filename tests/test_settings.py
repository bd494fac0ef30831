"""settings.py only declares settings."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import os, sys, signal, warnings
# The libraries it imports may do what they like (NumPy adds warning filters); the project adds nothing.
import kedro.config, kedro.framework.hooks, kedro.framework.session.store, kedro.io, numpy
before = (list(sys.meta_path), dict(os.environ), list(warnings.filters), signal.getsignal(signal.SIGINT))
import fashion_cnn.settings
after = (list(sys.meta_path), dict(os.environ), list(warnings.filters), signal.getsignal(signal.SIGINT))
assert before == after, [b for b, a in zip(before, after) if b != a]
assert "tensorflow" not in sys.modules
print(len(fashion_cnn.settings.HOOKS))
"""


def test_importing_the_settings_changes_nothing_in_the_process():
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "2"  # the run's lifecycle, and the MLflow runs per variant
