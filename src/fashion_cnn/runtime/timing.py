"""Where the time of a ``kedro run`` goes: one log line at its end, for users and the benchmarks.

    Run timings: wall 97.8 s = start-up 2.4 s + TensorFlow import 5.4 s + checks 1.0 s + data 0.7 s
    + training 83.9 s (fit 83.6 s) + evaluation 1.0 s + reporting 0.3 s + loading 1.0 s + saving 1.9 s
    + hooks 0.1 s; overhead 7.8 s (the wall time less the TensorFlow import, the fit and the evaluation)

* start-up: from the start of the ``kedro`` process (on Linux; else from the session's
  context) to ``before_pipeline_run``: Kedro's CLI and plugins, configuration, catalog. In a
  notebook or another Python process, from the session's context.
* TensorFlow import: timed here, before the spec check needs it (the notebook pays it too).
* checks: the rest of ``before_pipeline_run`` (the spec check, tracking's run) up to the first
  node, including the runner creating the run's datasets (which imports pandas and matplotlib).
* data / training / evaluation / reporting: node time of the data-processing nodes, the
  ``train_model`` nodes (fit = Keras's ``fit`` call), the ``evaluate_model`` nodes, and the
  rest (figures, tables, the comparison). With ThreadRunner node times overlap and add up to
  more than the wall time; under ParallelRunner nodes run in other processes and only the
  start-up and the total are known.
* loading / saving: the catalog's loads and saves between nodes.
* hooks: the remainder, mostly other hooks (MLflow logging) and the runner's bookkeeping.

The overhead leaves out what any script that trains and tests the model needs (importing
TensorFlow, the fit, one pass over the test set), so that it can be compared with the
notebook's own code, whose overhead is then Python's start, the data load and ``/ 255.0``.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl

from fashion_cnn.variants import DATA_NAMESPACE, namespace_of

logger = logging.getLogger(__name__)

PHASES = ("start-up", "TensorFlow import", "checks", "data", "training", "evaluation", "reporting",
          "loading", "saving", "hooks")


def process_age() -> float | None:
    """Seconds since this process started (Linux ``/proc``), or None where that is unknown."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return max(0.0, uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK"))  # field 22: start time
    except (OSError, ValueError, IndexError):
        return None


def phase_of(node: Any) -> str:
    if namespace_of(node) == DATA_NAMESPACE:
        return "data"
    function = getattr(node.func, "__name__", "") or type(node.func).__name__
    name = node.name.rsplit(".", 1)[-1]
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
    """Time the phases of each run and log them once, after the pipeline ran."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.last: dict[str, float] | None = None  # the last run's figures, for tests and notebooks
        self._process_start: float | None = None  # set by after_context_created
        self._enabled = True  # `runtime.timings`
        self._reset()

    def _reset(self) -> None:
        self._times = dict.fromkeys(PHASES, 0.0)
        self._fit = 0.0
        self._started: dict[tuple[Any, ...], float] = {}
        self._running = False
        self._first_node: float | None = None
        self._nodes = 0

    @staticmethod
    def _key(*key: Any) -> tuple[Any, ...]:
        return (*key, threading.get_ident())  # ThreadRunner: the same node or dataset name per thread

    def _begin(self, *key: Any) -> None:
        if self._running:  # off with `runtime.timings: false`: every hook is then a no-op
            self._started[self._key(*key)] = time.perf_counter()

    def _end(self, phase: str, *key: Any) -> None:
        start = self._started.pop(self._key(*key), None)
        if start is not None:
            with self._lock:
                self._times[phase] += time.perf_counter() - start

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        now = time.perf_counter()
        # A `kedro run` command: its start-up is the process's. In a notebook or a test, the
        # process is older than the session, and the session's context is the start.
        import click

        from_cli = click.get_current_context(silent=True) is not None
        age = process_age() if from_cli else None
        self._process_start = now - (age or 0.0)

    @hook_impl
    def after_catalog_created(self, parameters: dict[str, Any]) -> None:
        self._enabled = (parameters.get("params:runtime") or {}).get("timings", True) is not False

    # tryfirst, and registered after the spec check so that pluggy calls it before that check.
    @hook_impl(tryfirst=True)
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        self._reset()
        if not self._enabled:
            return
        now = time.perf_counter()
        self._running = True
        if self._process_start is None:  # a session without a context hook call: start here
            self._process_start = now
        self._times["start-up"] = now - self._process_start
        trains = any(phase_of(node) == "training" for node in pipeline.nodes)
        if trains and "keras" not in sys.modules:
            import keras  # noqa: F401 - imported here to time it; the spec check needs it next

            self._times["TensorFlow import"] = time.perf_counter() - now
        self._checks_start = time.perf_counter()

    @hook_impl(trylast=True)  # after other hooks' set-up (tracking starts its runs there)
    def before_node_run(self, node: Any) -> None:
        if self._running and self._first_node is None:
            self._first_node = time.perf_counter()
            self._times["checks"] = self._first_node - self._checks_start
        self._begin("node", node.name)

    @hook_impl(tryfirst=True)
    def after_node_run(self, node: Any, outputs: dict[str, Any]) -> None:
        self._end(phase_of(node), "node", node.name)
        fit = fit_seconds(outputs)
        with self._lock:
            self._fit += fit
            self._nodes += 1

    @hook_impl(tryfirst=True)
    def on_node_error(self, node: Any) -> None:
        self._started.pop(self._key("node", node.name), None)

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
        if not self._running:
            return
        wall = time.perf_counter() - self._process_start
        times = dict(self._times)
        self._running = False
        if not self._nodes:  # ParallelRunner: the nodes ran, and were timed, in its worker processes
            self.last = {"wall": wall, "start-up": times["start-up"], "TensorFlow import": times["TensorFlow import"]}
            logger.info("Run timings: wall %.1f s, start-up %.1f s; the nodes ran in other processes.",
                        wall, times["start-up"])
            return
        accounted = sum(value for key, value in times.items() if key not in ("start-up", "hooks"))
        times["hooks"] = max(0.0, wall - times["start-up"] - accounted)
        overhead = wall - times["TensorFlow import"] - self._fit - times["evaluation"]
        self.last = {"wall": wall, **times, "fit": self._fit, "overhead": overhead}
        parts = " + ".join(
            f"{key} {value:.1f} s" + (f" (fit {self._fit:.1f} s)" if key == "training" else "")
            for key, value in times.items()
        )
        logger.info(
            "Run timings: wall %.1f s = %s; overhead %.1f s (the wall time less the TensorFlow import, "
            "the fit and the evaluation)", wall, parts, overhead,
        )
