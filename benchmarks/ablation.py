"""Benchmark: what each speed setting of the default `cnn` pipeline is worth, one at a time.

    python benchmarks/ablation.py                      # 2 rounds, 2 epochs per run
    python benchmarks/ablation.py --rounds 3 --epochs 3

Every configuration is `kedro run --pipelines cnn` on the full data with the default parameters
and one setting changed back (or to a thread count), through `--params`, in a throwaway copy of
the project (extras hidden as in benchmarks/compare.py). Configurations are interleaved in
each round. For each it prints the best and the median epoch time over all rounds, the best
relative to the defaults' (above 1 = slower without the setting), the train loss and test
accuracy after the last epoch (the same maths gives the same or nearly the same numbers), and
the peak RSS.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
from pathlib import Path

import pandas as pd
from compare import (
    benchmark_env,
    clean_up,
    kedro_command,
    latest_metrics,
    project_copy,
    run,
)

CONFIGURATIONS = {
    "defaults": {},
    "float64 pixels (the notebook's / 255.0)": {"data.pixel_dtype": "float64"},
    "steps_per_execution 1 (Keras's default)": {"training_defaults.steps_per_execution": 1},
    "oneDNN off (TensorFlow's default here)": {"runtime.onednn": False},
    "inter-op threads 1": {"runtime.inter_op_threads": 1},
    "intra-op threads 1, inter-op threads 2": {"runtime.intra_op_threads": 1, "runtime.inter_op_threads": 2},
    "all three off (the notebook's settings)": {
        "data.pixel_dtype": "float64", "training_defaults.steps_per_execution": 1, "runtime.onednn": False,
    },
}


def measure(project: Path, env: dict[str, str], params: dict, epochs: int) -> dict:
    settings = {**params, "cnn.training.epochs": epochs}
    option = ",".join(f"{key}={str(value).lower() if isinstance(value, bool) else value}"
                      for key, value in settings.items())
    command = [*kedro_command(), "run", "--pipelines", "cnn", "--params", option]
    _, rss = run(command, project, env, project / f"ablation_{len(os.listdir(project))}.log")
    history = pd.read_csv(project / "data/07_model_output/cnn/training_history.csv")
    metrics = latest_metrics(project, "cnn")
    return {"epochs": history["seconds"].tolist(), "train_loss": float(history["loss"].iloc[-1]),
            "test_accuracy": metrics["test_accuracy"], "rss": rss}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="keep the work folder with the logs")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="fashion_cnn_ablation_"))
    project = project_copy(root)
    env = benchmark_env()
    results: dict[str, list[dict]] = {}
    for round_number in range(1, args.rounds + 1):
        for name, params in CONFIGURATIONS.items():
            result = measure(project, env, params, args.epochs)
            results.setdefault(name, []).append(result)
            seconds = ", ".join(f"{value:.2f}" for value in result["epochs"])
            print(f"round {round_number}: {name:<42} epochs {seconds} s, train loss {result['train_loss']:.4f}, "
                  f"test acc {result['test_accuracy']:.4f}, RSS {result['rss']:.2f} GB", flush=True)

    def epochs(name: str) -> list[float]:
        return [value for r in results[name] for value in r["epochs"]]

    def median(name: str, key: str) -> float:
        return statistics.median(r[key] for r in results[name])

    # This VM's neighbours slow single epochs down by up to 2x: the best epoch is the steadier
    # figure of what a setting can do, the median what a run got. (The first epoch also traces.)
    print(f"\n{args.rounds} interleaved round(s) of {args.epochs} epochs; "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs")
    print(f"{'configuration':<42} {'best epoch':>10} {'vs defaults':>11} {'median epoch':>12} "
          f"{'train loss':>10} {'test acc':>8} {'RSS GB':>6}")
    base = min(epochs("defaults"))
    for name in CONFIGURATIONS:
        print(f"{name:<42} {min(epochs(name)):8.2f} s {min(epochs(name)) / base:10.2f}x "
              f"{statistics.median(epochs(name)):10.2f} s {median(name, 'train_loss'):10.4f} "
              f"{median(name, 'test_accuracy'):8.4f} {median(name, 'rss'):6.2f}")
    clean_up(root, args.keep)


if __name__ == "__main__":
    main()
