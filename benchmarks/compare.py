"""Benchmark: the notebook's own code against `kedro run`, interleaved, on the same data.

    python benchmarks/compare.py                          # cnn and dense, 2 rounds
    python benchmarks/compare.py --venv .venv-readme --fast --tracking   # the figures in docs/performance.md
    python benchmarks/compare.py --models cnn --fast --precision mixed_bfloat16   # bf16 against float32

For each job it prints wall seconds, seconds per epoch (the `fit` call over its epochs, for
both), test accuracy, peak RSS, the overhead (the wall time less the TensorFlow import, the fit
and the test-set evaluation, which any script that trains this model needs) and the ratio
pipeline / notebook (below 1 = faster). It measures this machine's matrix-multiply rate
(TensorFlow, float32 and bfloat16) and prints each job's epoch time as a multiple of the time
that rate bounds the model's training FLOPs to.
For `kedro run`, run through benchmarks/timed_run.py, it also prints where the rest went (the
phases of that script's "Run timings" line).

The notebook scripts read the data through keras.datasets from a private KERAS_HOME filled
from the local copy, so nothing is downloaded. `kedro run` runs in a throwaway copy of the
project with default parameters.

Both should run as installed by the README's main command (`pip install -e .`). `--venv DIR`
does exactly that: the notebook scripts and `kedro run` (timed_run.py) use the Python of DIR, a
virtual environment made with that command (created on first use: about 2 minutes and 2.5 GB).
Without it they use this environment with the `tracking` and `airflow` extras' entry points
hidden (benchmarks/kedro_without.py, through KEDRO_WITHOUT); packages of the other extras stay
importable here (sqlalchemy, pandas-gbq), which made a small run's start-up and checks 1.8-2.6 s
longer.
`--tracking` also times `kedro run` with kedro-mlflow active, in this environment.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent
DATA_FOLDERS = (PROJECT / "data/01_raw/fashion-mnist", Path("/usr/share/datasets/fashion-mnist"))
FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
         "t10k-labels-idx1-ubyte.gz")
EXTRAS = ("kedro-mlflow", "kedro-airflow")


def benchmark_env(**extra: str) -> dict[str, str]:
    """This environment for the timed jobs: no telemetry, a console wide enough that Rich does not
    wrap log lines, and no TensorFlow variables of the user's (the parameters decide)."""
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true", "COLUMNS": "1000", **extra}
    for variable in ("TF_ENABLE_ONEDNN_OPTS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
        env.pop(variable, None)
    return env


def kedro_command() -> list[str]:
    """`kedro` as the README's main command installs it, in this environment: the extras hidden
    (for ablation.py and sweep.py, which need no timing line)."""
    return [sys.executable, str(HERE / "kedro_without.py"), *EXTRAS, "--"]


def timed_run(tracking: bool = False, venv: Path | None = None) -> tuple[list[str], dict[str, str]]:
    """`kedro run` through timed_run.py (which prints the run's timing line), and the environment
    variables it needs: with the Python of ``venv``, else of this environment, the extras' plugins
    hidden unless ``tracking``."""
    python = str(venv / "bin/python") if venv else sys.executable
    hidden = {} if tracking or venv else {"KEDRO_WITHOUT": ",".join(EXTRAS)}
    return [python, str(HERE / "timed_run.py")], hidden


def readme_venv(venv: Path) -> Path:
    """``venv``, created with the README's main install command if it has no `kedro` yet."""
    if not (venv / "bin/kedro").is_file():
        print(f"creating {venv}: python -m venv, then pip install -e {PROJECT}", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin/python"), "-m", "pip", "install", "-q", "-e", str(PROJECT)], check=True)
    return venv


def latest_metrics(project: Path, model: str) -> dict:
    """The metrics of the variant's latest run (versioned JSON)."""
    return json.loads(max((project / f"data/08_reporting/{model}/metrics.json").glob("*/metrics.json")).read_text())


def clean_up(root: Path, keep: bool) -> None:
    if keep:
        print(f"\nlogs: {root}")
    else:
        shutil.rmtree(root)


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


def notebook(model: str, workdir: Path, env: dict[str, str], python: str = sys.executable) -> dict:
    log = workdir / f"notebook_{model}.log"
    wall, rss = run([python, str(HERE / f"notebook_{model}.py")], workdir, env, log)
    line = next(line for line in log.read_text().splitlines() if line.startswith("BENCHMARK "))
    result = json.loads(line.removeprefix("BENCHMARK "))
    fit = result["fit_seconds"]
    return {"wall": wall, "rss": rss, "per_epoch": fit / result["epochs"], "fit": fit,
            "test_accuracy": result["test_accuracy"],
            "overhead": wall - result["import_seconds"] - fit - result["evaluate_seconds"]}


def run_timings(log: Path) -> dict[str, float]:
    """The figures of timed_run.py's line: {"wall": 97.8, "start-up": 2.1, ..., "fit": 80.3, "overhead": 7.0}."""
    from timed_run import parse_line  # here: importing Kedro at the top would log amid --help

    phases = parse_line(log.read_text())
    if phases is None:
        sys.exit(f"no 'Run timings' line in {log}")
    return phases


def pipeline(model: str, project: Path, env: dict[str, str], kedro_env: str | None = None,
             tracking: bool = False, venv: Path | None = None, precision: str | None = None) -> dict:
    command, hidden = timed_run(tracking, venv)
    command += ["--pipelines", model] + (["--env", kedro_env] if kedro_env else [])
    command += ["--params", f"runtime.precision={precision}"] if precision else []
    log = project / f"kedro_{model}_{kedro_env or 'base'}{'_tracking' if tracking else ''}_{precision or 'default'}.log"
    wall, rss = run(command, project, {**env, **hidden}, log)
    metrics = latest_metrics(project, model)
    phases = run_timings(log)
    # The line's clock runs from the script's first line to the end of the run: Python's start
    # before it and the process's exit after it are the rest of this wall time.
    phases["start and exit"] = wall - phases["wall"]
    overhead = wall - phases["TensorFlow import"] - phases["fit"] - phases["evaluation"]
    # Per epoch as for the notebook: Keras's whole fit call (input set-up and tear-down included)
    # over the epochs; the metrics' seconds_per_epoch count the epochs alone.
    return {"wall": wall, "rss": rss, "per_epoch": phases["fit"] / metrics["epochs_run"], "fit": phases["fit"],
            "test_accuracy": metrics["test_accuracy"], "epochs": metrics["epochs_run"], "overhead": overhead,
            "phases": phases}


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


MATMUL_PROBE = """
import json, time, tensorflow as tf
n, repeats, rates = 2048, 10, {}
for name, dtype in (("float32", tf.float32), ("bfloat16", tf.bfloat16)):
    a = tf.cast(tf.random.normal((n, n)), dtype)
    b = tf.cast(tf.random.normal((n, n)), dtype)
    step = tf.function(lambda: tf.reduce_sum(tf.cast(tf.matmul(a, b), tf.float32)))
    step().numpy()
    times = []
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(repeats):
            step().numpy()
        times.append((time.perf_counter() - start) / repeats)
    rates[name] = 2 * n ** 3 / min(times) / 1e9
print(json.dumps(rates))
"""


def cpu_description() -> str:
    """The CPU model, its bf16 units, cores and Python, for the record beside the figures."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = re.search(r"^model name\s*:\s*(.+)$", info, re.M)
    flags = set((re.search(r"^flags\s*:\s*(.+)$", info, re.M) or [None, ""])[1].split())
    units = [flag for flag in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if flag in flags]
    return (f"{model[1] if model else platform.processor() or platform.machine()} ({', '.join(units) or 'no AVX2'}), "
            f"{os.cpu_count()} CPUs, Python {platform.python_version()}")


def matmul_gflops(python: str, env: dict[str, str], root: Path) -> dict[str, float]:
    """This machine's TensorFlow matrix-multiply rate (GFLOP/s, best of 3), float32 and bfloat16,
    with the benchmark's own TensorFlow settings: what bounds a training step from below."""
    log = root / "matmul.log"
    run([python, "-c", MATMUL_PROBE], root, env, log)
    return json.loads(log.read_text().strip().splitlines()[-1])


def forward_flops(model: Any) -> int:
    """Floating-point operations of one image's forward pass through the convolutions and dense layers (two per
    multiply-add); training costs about three times this per image (forward, and backward's two products)."""
    flops = 0
    for layer in model.layers:
        if type(layer).__name__ in ("Conv2D", "Dense"):
            positions = math.prod(layer.output.shape[1:3]) if type(layer).__name__ == "Conv2D" else 1
            flops += 2 * positions * math.prod(layer.kernel.shape)
    return int(flops)


def training_flops_per_epoch(model_name: str, images: int = 60_000) -> float:
    """Floating-point operations of one training epoch of a baseline model: three times its forward
    pass (the backward pass's two products), times the training images."""
    import warnings

    from fashion_cnn.model.architecture import build_model
    from fashion_cnn.model.quiet_import import import_tensorflow
    from fashion_cnn.variants import load_parameters

    import_tensorflow()  # without TensorFlow's start-up lines, which would land amid the figures
    warnings.filterwarnings("ignore", message=r"register_new_resolver\(\) is deprecated")  # as cli.py does

    parameters = load_parameters()
    model = build_model(model_name, parameters[model_name]["architecture"], parameters["data"]["input_shape"],
                        len(parameters["data"]["class_names"]))
    return 3 * forward_flops(model) * images


def median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def summary(label: str, runs: list[dict], reference: list[dict] | None) -> str:
    text = (f"{label:<44} wall {median(runs, 'wall'):6.1f} s  per epoch {median(runs, 'per_epoch'):5.2f} s  "
            f"overhead {median(runs, 'overhead'):4.1f} s  test acc {median(runs, 'test_accuracy'):.4f}  "
            f"peak RSS {median(runs, 'rss'):.2f} GB")
    if reference:
        text += (f"\n{'':<44} ratio to the notebook: wall {median(runs, 'wall') / median(reference, 'wall'):.2f}, "
                 f"per epoch {median(runs, 'per_epoch') / median(reference, 'per_epoch'):.2f}; overhead "
                 f"{median(runs, 'overhead') - median(reference, 'overhead'):+.1f} s")
    if runs[0].get("phases"):
        names = [name for name in runs[0]["phases"] if name not in ("wall", "overhead")]
        phases = ", ".join(f"{name} {statistics.median(r['phases'][name] for r in runs):.1f}" for name in names)
        text += f"\n{'':<44} where the time went (s, medians): {phases}"
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--models", nargs="+", default=["cnn", "dense"], choices=["cnn", "dense"])
    parser.add_argument("--fast", action="store_true", help="also time `kedro run --pipelines cnn --env fast`")
    parser.add_argument("--tracking", action="store_true", help="also time `kedro run` with kedro-mlflow active")
    parser.add_argument("--precision", nargs="+", choices=["mixed_bfloat16", "auto"],
                        help="also time `kedro run` with runtime.precision set so (with --fast: also --env fast)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder with the logs")
    parser.add_argument("--venv", type=Path, help="run in this README-installed virtual environment "
                        "(created if missing) instead of this one")
    args = parser.parse_args()
    venv = readme_venv(args.venv.resolve()) if args.venv else None
    python = str(venv / "bin/python") if venv else sys.executable

    root = Path(tempfile.mkdtemp(prefix="fashion_cnn_bench_"))
    env = benchmark_env(KERAS_HOME=str(keras_home(root)))
    project = project_copy(root)
    rates = matmul_gflops(python, env, root)
    results: dict[str, list[dict]] = {}
    labels: dict[str, list[str]] = {}  # model -> its job labels, notebook first
    imports: list[float] = []
    for round_number in range(1, args.rounds + 1):
        imports.append(run([python, "-c", "import tensorflow, keras"], root, env, root / "import.log")[0])
        for model in args.models:
            jobs = [(f"notebook {model}", lambda m=model: notebook(m, root, env, python)),
                    (f"kedro run --pipelines {model}", lambda m=model: pipeline(m, project, env, venv=venv))]
            if args.fast and model == "cnn":
                jobs.append(("kedro run --pipelines cnn --env fast",
                             lambda: pipeline("cnn", project, env, "fast", venv=venv)))
            for precision in args.precision or ():
                jobs.append((f"kedro run --pipelines {model} (precision {precision})",
                             lambda m=model, p=precision: pipeline(m, project, env, venv=venv, precision=p)))
                if args.fast and model == "cnn":
                    jobs.append((f"kedro run --pipelines cnn --env fast (precision {precision})",
                                 lambda p=precision: pipeline("cnn", project, env, "fast", venv=venv, precision=p)))
            if args.tracking:
                jobs.append((f"kedro run --pipelines {model} (MLflow tracking)",
                             lambda m=model: pipeline(m, project, env, tracking=True)))
            labels[model] = [label for label, _ in jobs]
            for label, job in jobs:
                result = job()
                results.setdefault(label, []).append(result)
                print(f"round {round_number}: {label:<46} wall {result['wall']:6.1f} s, "
                      f"per epoch {result['per_epoch']:5.2f} s, overhead {result['overhead']:4.1f} s, "
                      f"test acc {result['test_accuracy']:.4f}, RSS {result['rss']:.2f} GB", flush=True)

    print(f"\nMedians over {args.rounds} interleaved round(s); {cpu_description()}; "
          + (f"notebook and kedro from {venv} (README install)" if venv else
             f"this environment ({sys.prefix}), extras hidden"))
    print(f"`python -c 'import tensorflow, keras'` alone: {statistics.median(imports):.1f} s")
    print(f"matrix multiply here: {rates['float32']:.0f} GFLOP/s float32, {rates['bfloat16']:.0f} GFLOP/s bfloat16 "
          f"(TensorFlow, 2048x2048, best of 3)")
    for model in args.models:
        flops = training_flops_per_epoch(model)
        bound = flops / (rates["float32"] * 1e9)
        print(f"\n{model}: {flops / 1e12:.2f} TFLOP per training epoch, so at least {bound:.2f} s per epoch in float32 "
              f"({flops / (rates['bfloat16'] * 1e9):.2f} s in bfloat16)")
        reference, *others = labels[model]
        for label in (reference, *others):
            text = summary(label, results[label], None if label == reference else results[reference])
            print(text + f"\n{'':<44} per epoch = {median(results[label], 'per_epoch') / bound:.1f}x the float32 bound")
    clean_up(root, args.keep)


if __name__ == "__main__":
    main()
