"""`kedro run` with a line at the end saying where its time went: ``python timed_run.py ARGS``.

    python benchmarks/timed_run.py --pipelines cnn --env fast   # any `kedro run` options

It runs Kedro's own CLI (``kedro.framework.cli.main``, the `kedro` command) with ``run ARGS`` in
this process, the project's `run` command and every plugin included, plus :class:`RunTimingsHook`.
The hook joins the project's ``settings.HOOKS`` through public Kedro APIs only: a CLI hook
(``before_command_run``, registered on ``get_cli_hook_manager()``) adds it with ``settings.set``
once Kedro has configured the project and before the run's session reads the setting. The line::

    Run timings: wall 97.8 s = start-up 2.4 s + TensorFlow import 5.4 s + checks 1.0 s + data 0.7 s
    + training 83.9 s (fit 83.6 s) + evaluation 1.0 s + reporting 0.3 s + loading 1.0 s + saving 1.9 s
    + hooks 0.1 s; overhead 7.8 s (the wall time less the TensorFlow import, the fit and the evaluation)

* wall: from this script's first line to the end of the run (``after_pipeline_run``). Python's
  own start before that line (about 0.1 s) and the process's exit are outside it; a benchmark
  that times the process sees them (benchmarks/compare.py).
* start-up: from this script's first line to ``before_pipeline_run``: importing Kedro, its CLI
  and plugins, configuration, catalog. A clock of this process's own, so a shell that ran
  something else first (``bash -c 'pip install -e . && exec ...'``) cannot add its time.
* TensorFlow import: timed here, when the run trains, before the project's checks need it (the
  notebook pays it too); as the project imports it, without its CUDA-probe lines.
* checks: the rest of ``before_pipeline_run`` (the project's checks and run record, tracking's
  run) up to the first node, including the runner creating the run's datasets.
* data / training / evaluation / reporting: node time of the data-processing nodes, the
  ``train_model`` nodes (fit = Keras's ``fit`` call), the ``evaluate_model`` nodes, and the
  rest (figures, tables, the comparison). With ThreadRunner node times overlap and add up to
  more than the wall time. Nodes run in worker processes (ParallelRunner, SweepRunner with
  several variants) run no hooks: the line then gives the wall time and start-up only.
* loading / saving: the catalog's loads and saves between nodes.
* hooks: the remainder, mostly other hooks (MLflow logging) and the runner's bookkeeping.

The overhead leaves out what any script that trains and tests the model needs (importing
TensorFlow, the fit, one pass over the test set), so that it can be compared with the
notebook's own code, whose overhead is then Python's start, the data load and ``/ 255.0``.

Environment: ``KEDRO_WITHOUT=dist,...`` hides those distributions' plugins (benchmarks/kedro_without.py),
here and in spawned worker processes, which import this script; ``TIMED_RUN_JSON=path`` also writes
the figures unrounded to that file, as JSON.
"""

import time

STARTED = time.perf_counter()  # first: the start-up is measured from here

import json  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

if os.environ.get("KEDRO_WITHOUT"):
    import kedro_without  # noqa: F401 - hides those plugins before Kedro looks for any

from kedro.framework.cli.hooks import cli_hook_impl  # noqa: E402
from kedro.framework.hooks import hook_impl  # noqa: E402

from fashion_cnn.variants import DATA_NAMESPACE  # noqa: E402

PHASES = ("start-up", "TensorFlow import", "checks", "data", "training", "evaluation", "reporting",
          "loading", "saving", "hooks")
LINE = re.compile(r"Run timings: wall ([\d.]+) s = (.*?); overhead ([\d.]+) s")


def phase_of(node: Any) -> str:
    if node.namespace == DATA_NAMESPACE:
        return "data"
    name = node.name.rsplit(".", 1)[-1]
    function = getattr(node.func, "__name__", "")
    if "train_model" in (function, name):
        return "training"
    if "evaluate_model" in (function, name):
        return "evaluation"
    return "reporting"


def fit_seconds(outputs: dict[str, Any]) -> float:
    """The seconds of Keras's ``fit`` call, from a ``training_history`` output (its
    ``attrs["fit_seconds"]``, else the sum of its ``seconds`` column: the epochs alone)."""
    total = 0.0
    for name, value in outputs.items():
        if name.rsplit(".", 1)[-1] == "training_history" and "seconds" in getattr(value, "columns", ()):
            total += float(value.attrs.get("fit_seconds", value["seconds"].sum()))
    return total


class RunTimingsHook:
    """Times the phases of one run started at ``started`` (``time.perf_counter()``)."""

    def __init__(self, started: float) -> None:
        self.started = started
        self.last: dict[str, float] | None = None  # the run's figures, once it has ended
        self.line: str | None = None
        self._lock = threading.Lock()
        self._times = dict.fromkeys(PHASES, 0.0)
        self._fit = 0.0
        self._open: dict[tuple[Any, ...], float] = {}
        self._nodes_here = self._nodes_planned = 0
        self._checks_start: float | None = None

    def _begin(self, *key: Any) -> None:
        # Keyed by thread too: under ThreadRunner one dataset can load in two threads at once.
        self._open[(*key, threading.get_ident())] = time.perf_counter()

    def _end(self, phase: str, *key: Any) -> None:
        start = self._open.pop((*key, threading.get_ident()), None)
        if start is not None:
            with self._lock:
                self._times[phase] += time.perf_counter() - start

    # tryfirst and registered after the project's hooks, so pluggy calls it before their checks.
    @hook_impl(tryfirst=True)
    def before_pipeline_run(self, pipeline: Any) -> None:
        now = time.perf_counter()
        self._times["start-up"] = now - self.started
        self._nodes_planned = len(pipeline.nodes)
        if any(phase_of(node) == "training" for node in pipeline.nodes) and "keras" not in sys.modules:
            from fashion_cnn.model.quiet_import import import_tensorflow

            import_tensorflow()  # as the project's own hook would, next
            import keras  # noqa: F401 - the checks need it next

            self._times["TensorFlow import"] = time.perf_counter() - now
        self._checks_start = time.perf_counter()

    @hook_impl(trylast=True)  # after other hooks' set-up (tracking starts its runs there)
    def before_node_run(self, node: Any) -> None:
        if self._checks_start is not None:
            self._times["checks"] = time.perf_counter() - self._checks_start
            self._checks_start = None
        self._begin("node", node.name)

    @hook_impl(tryfirst=True)
    def after_node_run(self, node: Any, outputs: dict[str, Any]) -> None:
        self._end(phase_of(node), "node", node.name)
        fit = fit_seconds(outputs)
        with self._lock:
            self._fit += fit
            self._nodes_here += 1

    @hook_impl(trylast=True)
    def before_dataset_loaded(self, dataset_name: str) -> None:
        self._begin("load", dataset_name)

    @hook_impl(tryfirst=True)
    def after_dataset_loaded(self, dataset_name: str) -> None:
        self._end("loading", "load", dataset_name)

    @hook_impl(trylast=True)
    def before_dataset_saved(self, dataset_name: str) -> None:
        self._begin("save", dataset_name)

    @hook_impl(tryfirst=True)
    def after_dataset_saved(self, dataset_name: str) -> None:
        self._end("saving", "save", dataset_name)

    @hook_impl(trylast=True)  # after tracking has finished its runs
    def after_pipeline_run(self) -> None:
        wall = time.perf_counter() - self.started
        times = dict(self._times)
        if self._nodes_here < self._nodes_planned:  # some nodes ran, and were timed, in worker processes
            self.last = {"wall": wall, "start-up": times["start-up"]}
            self.line = (f"Run timings: wall {wall:.1f} s, start-up {times['start-up']:.1f} s; "
                         f"{self._nodes_planned - self._nodes_here} of {self._nodes_planned} nodes ran in "
                         "other processes.")
            return
        times["hooks"] = max(0.0, wall - sum(times.values()))  # its own 0.0 included
        overhead = wall - times["TensorFlow import"] - self._fit - times["evaluation"]
        self.last = {"wall": wall, **times, "fit": self._fit, "overhead": overhead}
        parts = " + ".join(f"{key} {value:.1f} s" + (f" (fit {self._fit:.1f} s)" if key == "training" else "")
                           for key, value in times.items())
        self.line = (f"Run timings: wall {wall:.1f} s = {parts}; overhead {overhead:.1f} s (the wall time "
                     "less the TensorFlow import, the fit and the evaluation)")


def parse_line(text: str) -> dict[str, float] | None:
    """The figures of the line in ``text`` (a log; line breaks allowed), as
    ``{"wall": 97.8, "start-up": 2.4, ..., "fit": 83.6, "overhead": 7.8}``; None without one."""
    match = LINE.search(re.sub(r"\s+", " ", text))
    if match is None:
        return None
    figures = {"wall": float(match[1])}
    for part in match[2].split(" + "):
        name, seconds = re.match(r"(.+?) ([\d.]+) s", part).groups()
        figures[name] = float(seconds)
        if fit := re.search(r"\(fit ([\d.]+) s\)", part):
            figures["fit"] = float(fit[1])
    figures["overhead"] = float(match[3])
    return figures


class AddToSettings:
    """A Kedro CLI hook: puts ``hook`` into the project's ``settings.HOOKS`` before the command runs,
    after Kedro has configured the project (which resets the settings from settings.py)."""

    def __init__(self, hook: RunTimingsHook) -> None:
        self.hook = hook

    @cli_hook_impl
    def before_command_run(self) -> None:
        from kedro.framework.project import settings

        settings.set("HOOKS", (*settings.HOOKS, self.hook))


def main() -> None:
    from kedro.framework.cli import main as kedro
    from kedro.framework.cli.hooks import get_cli_hook_manager

    hook = RunTimingsHook(STARTED)
    get_cli_hook_manager().register(AddToSettings(hook))
    sys.argv = ["kedro", "run", *sys.argv[1:]]
    try:
        kedro()  # exits, with the run's exit code
    finally:
        if hook.line:  # printed last, after the run's own last lines; a failed run has none
            print(hook.line, flush=True)
        if hook.last and os.environ.get("TIMED_RUN_JSON"):
            Path(os.environ["TIMED_RUN_JSON"]).write_text(json.dumps(hook.last))


if __name__ == "__main__":
    main()
