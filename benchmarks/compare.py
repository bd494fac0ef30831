"""Benchmark: the notebook's own code against `kedro run`, interleaved, on the same data.

    python benchmarks/compare.py                 # cnn and dense, 2 rounds
    python benchmarks/compare.py --rounds 3 --models cnn --fast

For each job it prints wall seconds, seconds per epoch, test accuracy and peak RSS, and the
ratio pipeline / notebook (below 1 = the pipeline is faster). The notebook scripts read the
data through keras.datasets from a private KERAS_HOME filled from the local copy, so nothing
is downloaded; the pipeline runs in a throwaway copy of the project with default parameters.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent
DATA_FOLDERS = (PROJECT / "data/01_raw/fashion-mnist", Path("/usr/share/datasets/fashion-mnist"))
FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
         "t10k-labels-idx1-ubyte.gz")


def run(command: list[str], cwd: Path, env: dict[str, str], log: Path) -> tuple[float, float]:
    """Run ``command``; return (wall seconds, peak RSS in GB of that process tree's largest process)."""
    start = time.perf_counter()
    with log.open("w") as out:
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{' '.join(command)} failed; see {log}")
    return wall, usage.ru_maxrss / 1e6  # Linux reports KB


def notebook(model: str, workdir: Path, env: dict[str, str]) -> dict:
    log = workdir / f"notebook_{model}.log"
    wall, rss = run([sys.executable, str(HERE / f"notebook_{model}.py")], workdir, env, log)
    line = next(line for line in log.read_text().splitlines() if line.startswith("BENCHMARK "))
    result = json.loads(line.removeprefix("BENCHMARK "))
    return {"wall": wall, "rss": rss, "per_epoch": result["fit_seconds"] / result["epochs"],
            "fit": result["fit_seconds"], "test_accuracy": result["test_accuracy"]}


def pipeline(model: str, project: Path, env: dict[str, str], kedro_env: str | None = None) -> dict:
    command = ["kedro", "run", "--pipeline", model] + (["--env", kedro_env] if kedro_env else [])
    wall, rss = run(command, project, env, project / f"kedro_{model}_{kedro_env or 'base'}.log")
    metrics_file = sorted((project / f"data/08_reporting/{model}/metrics.json").glob("*/metrics.json"))[-1]
    metrics = json.loads(metrics_file.read_text())
    return {"wall": wall, "rss": rss, "per_epoch": metrics["seconds_per_epoch"], "fit": metrics["training_seconds"],
            "test_accuracy": metrics["test_accuracy"], "epochs": metrics["epochs_run"]}


def project_copy(root: Path) -> Path:
    project = root / "project"
    for item in ("conf", "pyproject.toml", ".telemetry"):
        source = PROJECT / item
        if source.is_dir():
            shutil.copytree(source, project / item, ignore=shutil.ignore_patterns("credentials*", "local"))
        elif source.exists():
            shutil.copy2(source, project / item)
    (project / "conf/local").mkdir(exist_ok=True)
    (project / "src").mkdir()
    for layer in ("01_raw", "05_model_input", "06_models", "07_model_output", "08_reporting"):
        (project / "data" / layer).mkdir(parents=True)
    return project


def keras_home(root: Path) -> Path:
    """A KERAS_HOME where keras.datasets.fashion_mnist finds the files it would download."""
    source = next((folder for folder in DATA_FOLDERS if all((folder / f).is_file() for f in FILES)), None)
    if source is None:
        sys.exit(f"Fashion-MNIST .gz files not found in {', '.join(map(str, DATA_FOLDERS))}: "
                 "apt-get install dataset-fashion-mnist")
    target = root / "keras_home/datasets/fashion-mnist"
    target.mkdir(parents=True)
    for name in FILES:
        shutil.copy2(source / name, target / name)
    return target.parents[1]


def summary(label: str, runs: list[dict], reference: list[dict] | None) -> str:
    def median(key: str) -> float:
        return statistics.median(r[key] for r in runs)

    text = (f"{label:<34} wall {median('wall'):7.1f} s   per epoch {median('per_epoch'):6.2f} s   "
            f"overhead {median('wall') - median('fit'):5.1f} s (wall - fit)   test acc {median('test_accuracy'):.4f}   "
            f"peak RSS {median('rss'):.2f} GB")
    if reference:
        ref_wall = statistics.median(r["wall"] for r in reference)
        ref_epoch = statistics.median(r["per_epoch"] for r in reference)
        text += f"\n{'':<34} ratio to notebook: wall {median('wall') / ref_wall:.2f}, per epoch {median('per_epoch') / ref_epoch:.2f}"
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--models", nargs="+", default=["cnn", "dense"], choices=["cnn", "dense"])
    parser.add_argument("--fast", action="store_true", help="also time `kedro run --pipeline cnn --env fast`")
    parser.add_argument("--keep", action="store_true", help="keep the work folder with the logs")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="fashion_cnn_bench_"))
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true", "KERAS_HOME": str(keras_home(root))}
    project = project_copy(root)
    results: dict[str, list[dict]] = {}
    imports: list[float] = []
    for round_number in range(1, args.rounds + 1):
        imports.append(run([sys.executable, "-c", "import tensorflow, keras"], root, env, root / "import.log")[0])
        for model in args.models:
            jobs = [(f"notebook {model}", lambda m=model: notebook(m, root, env)),
                    (f"kedro run --pipeline {model}", lambda m=model: pipeline(m, project, env))]
            if args.fast and model == "cnn":
                jobs.append(("kedro run --pipeline cnn --env fast", lambda: pipeline("cnn", project, env, "fast")))
            for label, job in jobs:
                result = job()
                results.setdefault(label, []).append(result)
                print(f"round {round_number}: {label:<36} wall {result['wall']:6.1f} s, "
                      f"per epoch {result['per_epoch']:5.2f} s, test acc {result['test_accuracy']:.4f}, "
                      f"RSS {result['rss']:.2f} GB", flush=True)

    print(f"\nMedians over {args.rounds} interleaved round(s); {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, Python {platform.python_version()}")
    tf_import = statistics.median(imports)
    print(f"`python -c 'import tensorflow, keras'` alone: {tf_import:.1f} s (part of every job's overhead)")
    for model in args.models:
        reference = results[f"notebook {model}"]
        print(summary(f"notebook {model}", reference, None))
        print(summary(f"kedro run --pipeline {model}", results[f"kedro run --pipeline {model}"], reference))
        if args.fast and model == "cnn":
            print(summary("kedro run --pipeline cnn --env fast", results["kedro run --pipeline cnn --env fast"], reference))
    if args.keep:
        print(f"\nlogs: {root}")
    else:
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
