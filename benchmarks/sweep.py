"""Benchmark: a sweep one variant at a time against side by side, interleaved, on the same data.

    python benchmarks/sweep.py                                   # exercises, 2 rounds, 5 epochs
    python benchmarks/sweep.py --pipeline compare --rounds 1

Each round runs ``kedro run --pipelines <pipeline> --runner SequentialRunner`` (how every sweep
ran before SweepRunner) and ``kedro run --pipelines <pipeline>`` (today's default: SweepRunner
on a machine with several cores), in a throwaway copy of the project, in this environment with
the `tracking` and `airflow` extras' entry points hidden as the README's main install has them
(benchmarks/kedro_without.py; with kedro-mlflow active a sweep stays sequential). It prints each
run's wall time, the ratio side by side / one at a time, and each variant's test accuracy in both.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from compare import benchmark_env, clean_up, cpu_description, kedro_command, keras_home, project_copy, run

JOBS = {"one at a time": ["--runner", "SequentialRunner"], "side by side": []}


def variant_accuracies(project: Path) -> dict[str, float]:
    """Each variant's test accuracy in its latest run (versioned metrics.json)."""
    accuracies = {}
    for folder in sorted((project / "data/08_reporting").iterdir()):
        versions = sorted((folder / "metrics.json").glob("*/metrics.json"))
        if versions:
            accuracies[folder.name] = json.loads(versions[-1].read_text())["test_accuracy"]
    return accuracies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pipeline", default="exercises")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--epochs", type=int, help="training_defaults.epochs (default: the parameters' 5)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder with the logs")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="fashion_cnn_sweep_"))
    env = benchmark_env(KERAS_HOME=str(keras_home(root)))
    project = project_copy(root)
    params = ["--params", f"training_defaults.epochs={args.epochs}"] if args.epochs else []
    walls: dict[str, list[float]] = {label: [] for label in JOBS}
    accuracies: dict[str, list[dict[str, float]]] = {label: [] for label in JOBS}
    for round_number in range(1, args.rounds + 1):
        for label, runner in JOBS.items():
            command = [*kedro_command(), "run", "--pipelines", args.pipeline, *runner, *params]
            log = root / f"{args.pipeline}_{label.replace(' ', '_')}_{round_number}.log"
            wall, rss = run(command, project, env, log)
            walls[label].append(wall)
            accuracies[label].append(variant_accuracies(project))
            print(f"round {round_number}: {label:<14} wall {wall:6.1f} s, peak RSS {rss:.2f} GB (largest process)",
                  flush=True)

    sequential, parallel = (statistics.median(walls[label]) for label in JOBS)
    print(f"\n`kedro run --pipelines {args.pipeline}`{' ' + ' '.join(params) if params else ''}, medians over "
          f"{args.rounds} interleaved round(s); {cpu_description()}")
    print(f"one at a time {sequential:.1f} s, side by side {parallel:.1f} s: ratio {parallel / sequential:.2f}")
    print(f"{'variant':<18} test accuracy one at a time / side by side (per round)")
    for variant in sorted(accuracies["one at a time"][0]):
        cells = "  ".join(f"{one[variant]:.4f} / {two[variant]:.4f}"
                          for one, two in zip(*accuracies.values(), strict=True))
        print(f"{variant:<18} {cells}")
    clean_up(root, args.keep)


if __name__ == "__main__":
    main()
