"""Benchmark: `kedro run --pipelines tune` on the full data (docs/tuning.md, docs/results.md).

    python benchmarks/tune_search.py                       # the parameters' search: 30 trials of 5 epochs
    python benchmarks/tune_search.py --params tune.n_trials=4,data.train_limit=3000,data.test_limit=500 \\
        --runners --rounds 2                               # the quick command, side by side against one at a time

Each run is a fresh study in a throwaway copy of the project, in this environment with the `tracking` and
`airflow` extras' entry points hidden as the README's main install has them (benchmarks/kedro_without.py;
with kedro-mlflow active the search stays in one process). It prints the wall time, the trials by state,
the best trial, the tuned model's test accuracy, the epochs that pruning saved, and the winning block.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import pandas as pd
from compare import benchmark_env, clean_up, cpu_description, kedro_command, keras_home, project_copy, run

RUNNERS = {"side by side": [], "one at a time": ["--runner", "SequentialRunner"]}


def report(project: Path) -> str:
    trials = pd.read_csv(project / "data/08_reporting/tune/trials.csv")
    (metrics_file,) = sorted((project / "data/08_reporting/tuned/metrics.json").glob("*/metrics.json"))[-1:]
    metrics = json.loads(metrics_file.read_text())
    states = trials["state"].value_counts().to_dict()
    pruned = trials[trials["state"] == "PRUNED"]
    planned = int(trials["epochs_planned"].sum())
    saved = int((pruned["epochs_planned"] - pruned["epochs_run"]).sum())
    best = trials.loc[trials["validation_accuracy"].where(trials["state"] == "COMPLETE").idxmax()]
    return (f"trials {dict(sorted(states.items()))}; epochs run {int(trials['epochs_run'].sum())} of {planned} "
            f"planned: pruning saved {saved} ({saved / planned:.0%}); trial seconds {trials['seconds'].sum():.0f}\n"
            f"best trial {int(best['number'])}: validation accuracy {best['validation_accuracy']:.4f}; tuned model "
            f"(all training images): test accuracy {metrics['test_accuracy']:.4f}, {metrics['epochs_run']} epochs, "
            f"{metrics['training_seconds']:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", help="kedro run --params (e.g. tune.n_trials=20)")
    parser.add_argument("--runners", action="store_true", help="also one at a time (--runner SequentialRunner)")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the work folder with the logs")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="fashion_cnn_tune_"))
    env = benchmark_env(KERAS_HOME=str(keras_home(root)))
    params = ["--params", args.params] if args.params else []
    print(cpu_description(), flush=True)
    for round_number in range(1, args.rounds + 1):
        for label, runner in RUNNERS.items() if args.runners else [("side by side", [])]:
            name = f"{label.replace(' ', '_')}_{round_number}"
            project = project_copy(root / name)
            log = root / f"{name}.log"
            wall, rss = run([*kedro_command(), "run", "--pipelines", "tune", *runner, *params], project, env, log)
            print(f"\nround {round_number}, {label}: `kedro run --pipelines tune {' '.join(runner + params)}` wall "
                  f"{wall:.1f} s, peak RSS {rss:.2f} GB (largest process)\n{report(project)}", flush=True)
    print("\nThe last run's best block:\n" + (project / "data/08_reporting/tune/best_variant.yml").read_text())
    clean_up(root, args.keep)


if __name__ == "__main__":
    main()
