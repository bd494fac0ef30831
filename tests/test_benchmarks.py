"""benchmarks/timed_run.py: a real `kedro run` on a small subset, started as benchmarks/compare.py
starts it, and the "Run timings" line it prints, read back with compare.py's own parser."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from support import PROJECT_ROOT

sys.path.insert(0, str(PROJECT_ROOT / "benchmarks"))
import compare  # noqa: E402 - a script folder, not a package

SLEEP = 2  # seconds the shell spends before it execs the run
CNN_SMALL = "data.train_limit=2000,data.test_limit=500,cnn.training.epochs=1,cnn.training.verbose=0"


def timed_run(project: Path, tmp_path: Path, arguments: str,
              sleep: float = 0) -> tuple[subprocess.CompletedProcess, float, Path]:
    """Run compare.py's timed `kedro run` command (this environment, extras' plugins hidden) through
    ``bash -c 'sleep ... && exec ...'``; the result, its seconds as seen from here, and the JSON file
    of its unrounded figures."""
    command, hidden = compare.timed_run()
    figures = tmp_path / "timings.json"
    env = compare.benchmark_env(**hidden, TIMED_RUN_JSON=str(figures))
    # exec: the run then is the shell's process, started before the sleep, as when a shell execs `kedro`.
    script = f"sleep {sleep} && exec {shlex.join(command)} {arguments}"
    started = time.perf_counter()
    result = subprocess.run(["bash", "-c", script], cwd=project, env=env, capture_output=True, text=True, timeout=900)
    elapsed = time.perf_counter() - started
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return result, elapsed, figures


def test_the_timing_line_adds_up_and_leaves_out_the_shells_time(project, tmp_path):
    result, elapsed, figures = timed_run(project, tmp_path, f"--pipelines cnn --params {CNN_SMALL}", sleep=SLEEP)
    timings = json.loads(figures.read_text())

    # The clock starts at the script's first line: the shell's sleep before the exec is not start-up.
    # A clock from the process's start (/proc, as the project's hook had) counts it, and the wall
    # then exceeds this. (Start-up itself is about 2-7 s here, by plugins and load: too close to the
    # sleep to tell apart on its own, so the wall, measured from outside too, decides.)
    assert timings["wall"] + SLEEP < elapsed
    assert 0 < timings["start-up"] < timings["wall"]

    output = result.stdout + result.stderr
    assert output.count("Run timings: wall") == 1
    assert result.stdout.rstrip().splitlines()[-1].startswith("Run timings: wall")  # the last line
    log = tmp_path / "run.log"
    log.write_text(output)
    printed = compare.run_timings(log)
    assert printed.keys() == timings.keys()
    assert all(printed[key] == pytest.approx(timings[key], abs=0.051) for key in timings)  # the line, rounded

    phases = [name for name in timings if name not in ("wall", "fit", "overhead")]
    assert phases == ["start-up", "TensorFlow import", "checks", "data", "training", "evaluation", "reporting",
                      "loading", "saving", "hooks"]
    assert all(timings[name] >= 0 for name in phases)
    assert sum(timings[name] for name in phases) == pytest.approx(timings["wall"], abs=0.01)
    # fit: Keras's whole fit call, so at least the epochs it ran and less than the node around it.
    history = pd.read_csv(project / "data/07_model_output/cnn/training_history.csv")
    assert len(history) == 1
    assert 0 < history["seconds"].sum() <= timings["fit"] < timings["training"]
    assert timings["TensorFlow import"] > 0  # imported by the timing hook, before the project's checks
    assert timings["data"] > 0 and timings["evaluation"] > 0 and timings["saving"] > 0 and timings["loading"] > 0
    assert timings["overhead"] == pytest.approx(
        timings["wall"] - timings["TensorFlow import"] - timings["fit"] - timings["evaluation"]
    )


def test_nodes_in_worker_processes_give_the_wall_time_only(project, tmp_path):
    # Spawned workers import timed_run.py again (as __mp_main__), hiding the same plugins; their nodes
    # run no hooks here, so the phases are unknown.
    result, _, figures = timed_run(project, tmp_path, "--pipelines data_processing --runner ParallelRunner "
                                   "--params data.train_limit=300,data.test_limit=100")
    last = result.stdout.rstrip().splitlines()[-1]
    assert re.fullmatch(r"Run timings: wall [\d.]+ s, start-up [\d.]+ s; (\d+) of \1 nodes ran in other processes\.",
                        last), last
    assert set(json.loads(figures.read_text())) == {"wall", "start-up"}
    log = tmp_path / "run.log"
    log.write_text(result.stdout)
    with pytest.raises(SystemExit, match="no 'Run timings' line"):  # compare.py reads no phases from it
        compare.run_timings(log)
