"""The project's `kedro run` command, invoked in-process on a throwaway project copy."""

from __future__ import annotations

import gc

from click.testing import CliRunner
from kedro.framework.startup import bootstrap_project

from fashion_cnn.cli import run


def test_after_a_run_the_objects_left_are_frozen_so_that_the_process_exits_without_collecting_them(project):
    bootstrap_project(project)
    gc.unfreeze()
    try:
        result = CliRunner().invoke(run, ["--pipelines", "cnn", "--nodes", "cnn.resolve_training_settings"])
        assert result.exit_code == 0, result.output[-3000:]
        assert gc.get_freeze_count() > 10_000  # Kedro's, Keras's, the run's: exit skips them
    finally:
        gc.unfreeze()
