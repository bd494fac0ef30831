"""A sweep's variants trained side by side: `kedro run` picks SweepRunner for several variants, the
results match one-at-a-time training, and Ctrl-C or SIGTERM stops the workers at once.

The runs hide the `tracking` and `airflow` extras as the README's main install has them
(benchmarks/kedro_without.py): with kedro-mlflow active a sweep stays in one process
(tests/runtime/test_tracking.py)."""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import FIRST_COMPLETED, wait
from pathlib import Path

import pytest
from support import PROJECT_ROOT, QUICK

from fashion_cnn.runtime.sweep_runner import (SweepExecutor, default_runner, trainings, usable_cores,
                                              worker_threads)

VARIANTS = ["filters_16", "filters_64"]
QUICK_SWEEP = {**QUICK, "training_defaults.epochs": 1, "training_defaults.verbose": 0}


def kedro_run_without_extras(project: Path, *args: str, **env: str) -> subprocess.Popen:
    command = [sys.executable, str(PROJECT_ROOT / "benchmarks/kedro_without.py"), "kedro-mlflow", "kedro-airflow",
               "--", "run", *args]
    return subprocess.Popen(command, cwd=project, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env={**os.environ, "COLUMNS": "250", "KEDRO_DISABLE_TELEMETRY": "true", **env},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def params_arg(params: dict) -> str:
    return ",".join(f"{key}={value}" for key, value in params.items())


def latest_metrics(project: Path, variant: str) -> dict:
    return json.loads(sorted(project.glob(f"data/08_reporting/{variant}/metrics.json/*/metrics.json"))[-1].read_text())


def alive(pids: list[int], within: float) -> list[int]:
    """The processes of ``pids`` still running (not exited, not zombies) after up to ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        running = [pid for pid in pids if Path(f"/proc/{pid}").exists()
                   and Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"]
        if not running or time.monotonic() > deadline:
            return running
        time.sleep(0.2)


def test_the_runner_is_chosen_by_the_variants_to_train():
    assert trainings(["cnn.train_model", "cnn.evaluate_model", "dense.train_model", "train_model_report"]) == 2
    assert default_runner(["cnn.train_model", "cnn.evaluate_model"]) == (None, "")  # one variant: Kedro's default
    assert default_runner([]) == (None, "")
    assert worker_threads(cores=8, workers=3) == 2 and worker_threads(cores=2, workers=2) == 1
    assert worker_threads(cores=1, workers=2) == 1


def stand_in_node(marker: Path, fail: bool = False) -> None:
    """A node's stand-in for the pool's own test (importable in a spawned worker): ``marker``'s files
    say it started and finished; failing, it first waits for the node beside it to start."""
    marker.with_suffix(".started").touch()
    if fail:
        while not (marker.parent / "running.started").exists():
            time.sleep(0.05)
        raise ValueError("the node failed")
    time.sleep(2)
    marker.with_suffix(".done").touch()


def test_after_a_node_fails_the_one_running_finishes_and_nothing_new_starts(tmp_path):
    """More nodes than workers, as Kedro hands out a sweep's ready nodes: after the failure, the node
    running beside it finishes (whole files) and neither the queued nodes nor the one the pool already
    passed to a worker start; the run reports the failure itself."""
    with pytest.raises(ValueError, match="the node failed"), SweepExecutor(2, "1") as pool:
        futures = {pool.submit(functools.partial(stand_in_node, tmp_path / "failing", fail=True)),
                   pool.submit(functools.partial(stand_in_node, tmp_path / "running"))}
        futures |= {pool.submit(functools.partial(stand_in_node, tmp_path / f"queued_{i}")) for i in range(3)}
        while futures:  # as Kedro's ParallelRunner waits: the first failure ends the run
            done, futures = wait(futures, return_when=FIRST_COMPLETED)
            for future in done:
                future.result()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["failing.started", "running.done", "running.started"]


@pytest.mark.skipif(usable_cores() < 2, reason="side by side needs two cores")
def test_a_sweep_trains_side_by_side_with_the_results_of_one_at_a_time(project):
    pipelines = ",".join(VARIANTS)
    side_by_side = kedro_run_without_extras(project, "--pipelines", pipelines, "--params", params_arg(QUICK_SWEEP))
    output = side_by_side.communicate(timeout=600)[0]
    assert side_by_side.returncode == 0, output[-3000:]
    flat = " ".join(output.split())
    assert "2 variants to train, 2 at a time (one worker process each). One at a time: --runner SequentialRunner" in flat
    assert "Training side by side: 2 worker processes, 1 TensorFlow thread(s) each." in flat
    # The workers start as quietly as the parent: no TensorFlow start-up lines, no plugin warnings.
    for noise in ("cudart_stub", "absl::InitializeLog", "DatasetStatsHook"):
        assert noise not in output, noise
    parallel = {variant: latest_metrics(project, variant) for variant in VARIANTS}

    # The same variants one at a time, with the workers' one TensorFlow thread: the same numbers.
    one_at_a_time = kedro_run_without_extras(project, "--pipelines", pipelines, "--runner", "SequentialRunner",
                                             "--params", params_arg(QUICK_SWEEP), TF_NUM_INTRAOP_THREADS="1")
    output = one_at_a_time.communicate(timeout=600)[0]
    assert one_at_a_time.returncode == 0, output[-3000:]
    assert "variants to train" not in output and "side by side" not in output
    for variant in VARIANTS:
        sequential = latest_metrics(project, variant)
        assert sequential["epochs_run"] == parallel[variant]["epochs_run"] == 1
        assert sequential["test_accuracy"] == pytest.approx(parallel[variant]["test_accuracy"], abs=0.011), variant


@pytest.mark.skipif(usable_cores() < 2, reason="side by side needs two cores")
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_every_worker_at_once_and_keeps_only_whole_files(project, signum):
    params = {**QUICK_SWEEP, "data.train_limit": 60000, "training_defaults.epochs": 30, "training_defaults.verbose": 2}
    run = kedro_run_without_extras(project, "--pipelines", ",".join(VARIANTS), "--params", params_arg(params))
    seen: list[str] = []
    deadline = time.monotonic() + 300
    while sum("Epoch 1/30" in line for line in seen) < 2:  # both variants training, in two workers
        line = run.stdout.readline()
        assert line and time.monotonic() < deadline, "".join(seen[-40:])
        seen.append(line)
    workers = [int(pid) for pid in Path(f"/proc/{run.pid}/task/{run.pid}/children").read_text().split()]
    assert len(workers) >= 2, workers

    started = time.monotonic()
    run.send_signal(signum)
    rest = run.communicate(timeout=120)[0]
    stopped_after = time.monotonic() - started
    assert run.returncode == 128 + signum, rest[-3000:]  # the shell's code for the signal
    # Well before one more variant could have trained: the workers were stopped, not waited for.
    assert stopped_after < 30, f"{stopped_after:.0f} s to stop:\n{rest[-3000:]}"
    assert not alive(workers, within=10), "a worker outlived the run"
    assert "Traceback" not in rest and "Error" not in rest, rest[-3000:]  # only the line below
    assert rest.strip().splitlines()[-1] == (
        "Interrupted; finished and saved: none; not finished: filters_16, filters_64. Nothing partial was kept: "
        "every file written is whole, and the save under way, if any, was discarded.")
    assert list(project.glob("data/06_models/*/model.keras/*/*")) == []
    assert [path for path in project.rglob("*") if ".tmp." in path.name] == []
    (record,) = (project / "data/.runs").glob("*.json")
    assert json.loads(record.read_text())["outcome"] == "interrupted"
