"""What the project adds to a ``kedro run``, in the order it happens (docs/extending.md):

1. ``after_catalog_created``: TensorFlow's process settings from the ``runtime`` parameters (the environment
   variables it reads once, at import; a user's own win), and ``runtime.precision: auto`` resolved for this CPU.
2. ``before_pipeline_run``, before any plugin's (``tryfirst``: kedro-mlflow opens its run there, and a run
   stopped by its checks must leave nothing behind):
   a. TensorFlow imported without its CUDA-probe noise, when the run builds or loads models;
   b. every check before the first node (:func:`fashion_cnn.runtime.checks.check_run`);
   c. the run's record claimed in ``data/.runs/`` (:mod:`fashion_cnn.runtime.runs`), other runs under way named;
   d. Ctrl-C and SIGTERM noted as an interruption (where Python's defaults are in force).
3. Each node and save (in a worker process: when SweepRunner learns it ended): which variants have finished,
   and whose model is saved, for the line an interrupted run ends with; each variant's metrics, for the scores.
4. ``after_pipeline_run``, after every plugin's (``trylast``): the record says ``succeeded``, and the score
   table is printed, the run's last lines. ``on_pipeline_error``: the record says ``failed``.
5. At exit, a run still open was interrupted (Kedro calls no hook for a KeyboardInterrupt): one line saying
   what was kept, and the shell's exit code for the signal.

The MLflow runs per variant (:mod:`fashion_cnn.runtime.tracking`) are a second hook, because they go around
kedro-mlflow's run, which opens after 2 and closes before 4.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl
from kedro.io import DatasetError

from fashion_cnn.model.quiet_import import import_tensorflow
from fashion_cnn.parameters import cpu_has_bf16, resolve_precision, runtime_environment
from fashion_cnn.runtime import runs
from fashion_cnn.runtime.checks import check_run
from fashion_cnn.variants import variant_of, variants_in

logger = logging.getLogger(__name__)

SCORE_COLUMNS = ("variant", "test accuracy", "test loss", "epochs", "training s")

_current: RunLifecycle | None = None  # the lifecycle of the run under way in this process


def node_finished_elsewhere(node: Any) -> None:
    """A node of this process's run finished in a worker process (SweepRunner tells), where its hooks ran."""
    if _current is not None:
        _current.after_node_run(node)
        for name in node.outputs:  # saved there, whole
            _current.note_saved(name, None)


class RunLifecycle:
    """The project's one hook around a run's life; the steps are in the module's docstring."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._record: Path | None = None
        self._pending: dict[str, set[str]] = {}  # variant -> its nodes still to finish
        self._models_saved: set[str] = set()
        self._metrics: dict[str, Mapping[str, Any]] = {}
        self._previous_handlers: dict[int, Any] = {}
        self._signal: signal.Signals | None = None
        self.last_scores: list[tuple[str, ...]] | None = None  # the last table's rows, for tests and notebooks
        atexit.register(self._at_exit)

    # 1.
    @hook_impl
    def after_catalog_created(self, catalog: Any, parameters: dict[str, Any]) -> None:
        # The catalog's parameters, merged with --params: `context.params` would validate them again.
        runtime = parameters.get("params:runtime") or {}
        if runtime.get("precision") == "auto":  # the nodes get what it means on this machine
            resolved = resolve_precision("auto", cpu_has_bf16())
            catalog.save("params:runtime.precision", resolved)
            logger.info("runtime.precision auto: %s on this CPU.", resolved)
        unset = {k: v for k, v in runtime_environment(runtime).items() if k not in os.environ}  # a user's own wins
        if "tensorflow" not in sys.modules:
            os.environ.update(unset)
        elif unset:
            logger.warning("TensorFlow was imported before this Kedro session, so the `runtime` parameters "
                           "(%s) do not apply to it; restart the Python process.",
                           ", ".join(f"{k}={v}" for k, v in unset.items()))

    # 2.
    @hook_impl(tryfirst=True)
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        if variants_in(pipeline.nodes) or "trained_models" in pipeline.inputs():
            import_tensorflow()
        check_run(run_params, pipeline, catalog)
        project = Path(run_params["project_path"])
        if self._record is not None:  # an earlier run of this process was stopped by another hook
            runs.finish(self._record, "failed")
        self._record = runs.claim(project, run_params["run_id"], run_params.get("pipeline_names"))
        for other in runs.active_runs(project, besides=self._record):
            logger.warning("Another run of this project is under way (%s). Each run saves its own versions; "
                           "files without versions (tables, summaries) hold whichever run writes them last.",
                           runs.describe(other))
        self._pending = {variant: {node.name for node in pipeline.nodes if variant_of(node) == variant}
                         for variant in variants_in(pipeline.nodes)}
        self._models_saved, self._metrics, self._signal = set(), {}, None
        self._install_signal_handlers()
        global _current
        _current = self

    def _install_signal_handlers(self) -> None:
        """Only where Python's defaults are in force: a host such as Airflow keeps its own handlers."""
        if threading.current_thread() is threading.main_thread():
            for signum, default in ((signal.SIGINT, signal.default_int_handler), (signal.SIGTERM, signal.SIG_DFL)):
                if signal.getsignal(signum) == default:
                    self._previous_handlers[signum] = signal.signal(signum, self._interrupt)

    def _interrupt(self, signum: int, frame: Any) -> None:
        self._signal = signal.Signals(signum)
        raise KeyboardInterrupt(self._signal.name)

    # 3.
    @hook_impl
    def before_node_run(self) -> None:
        self._stop_if_interrupted()

    @hook_impl
    def after_node_run(self, node: Any) -> None:
        with self._lock:
            self._pending.get(variant_of(node), set()).discard(node.name)

    @hook_impl
    def after_dataset_saved(self, dataset_name: str, data: Any) -> None:
        self.note_saved(dataset_name, data)
        self._stop_if_interrupted()

    def note_saved(self, dataset_name: str, data: Any) -> None:
        """A variant's model saved, or its metrics (kept for the score table; in a worker: read back)."""
        variant = variant_of(dataset_name)
        if variant in self._pending:
            with self._lock:
                if dataset_name == f"{variant}.model":
                    self._models_saved.add(variant)
                elif dataset_name == f"{variant}.metrics" and isinstance(data, Mapping):
                    self._metrics[variant] = data

    def _stop_if_interrupted(self) -> None:
        """Library code sometimes absorbs the KeyboardInterrupt that a signal raised in it (Keras's
        model saving does, now and then): the run then stops here, at the next save or node."""
        if self._signal is not None and self._record is not None:
            raise KeyboardInterrupt("interrupted earlier; the exception was absorbed where it was raised")

    # 4.
    @hook_impl(trylast=True)
    def after_pipeline_run(self, pipeline: Any, catalog: Any) -> None:
        self._end("succeeded")
        rows = []
        for name in sorted(n for n in pipeline.all_outputs() if variant_of(n) and n.endswith(".metrics")):
            metrics = self._metrics.get(variant_of(name) or "")
            if metrics is None:  # saved in a worker process: read back
                try:
                    metrics = catalog.load(name)
                except DatasetError as exc:
                    logger.warning("No test scores for %s: %s", name, exc)
                    continue
            rows.append(score_row(metrics))
        if rows:
            self.last_scores = rows
            # Printed, not logged: a log handler wraps lines to the width left beside its time and level
            # columns (about 40 of 80), which breaks a table into fragments.
            for handler in logging.getLogger().handlers:
                handler.flush()
            print(render_scores(rows), flush=True)

    @hook_impl
    def on_pipeline_error(self) -> None:
        self._end("failed")

    def _end(self, outcome: str) -> None:
        global _current
        _current = None
        if self._record is not None:
            runs.finish(self._record, outcome)
            self._record = None
        for signum, handler in self._previous_handlers.items():
            signal.signal(signum, handler)
        self._previous_handlers = {}

    # 5.
    def interruption_summary(self) -> str:
        finished = ", ".join(variant for variant, left in self._pending.items() if not left) or "none"
        unfinished = ", ".join(f"{variant} (model saved)" if variant in self._models_saved else variant
                               for variant, left in self._pending.items() if left)
        return (f"Interrupted; finished and saved: {finished}{'; not finished: ' + unfinished if unfinished else ''}. "
                "Nothing partial was kept: every file written is whole, and the save under way, if any, was discarded.")

    def _at_exit(self) -> None:
        """A run still open at exit was interrupted, or stopped by another hook before it started. An interrupted
        process ends right after the summary, with the shell's code for the signal: TensorFlow stopped mid-step can
        corrupt its heap, and the interpreter's teardown then aborted now and then (glibc's "free(): invalid next
        size") after the summary. Every file kept is already written."""
        if self._record is None:
            return
        with contextlib.suppress(OSError):
            runs.finish(self._record, "interrupted" if self._signal else "failed")
        if self._signal is not None:
            print(self.interruption_summary(), file=sys.stderr, flush=True)
            logging.shutdown()
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(OSError, ValueError):
                    stream.flush()
            os._exit(128 + self._signal)


def score_row(metrics: Mapping[str, Any]) -> tuple[str, ...]:
    return (str(metrics.get("variant", "?")), f"{metrics['test_accuracy']:.4f}", f"{metrics['test_loss']:.4f}",
            f"{metrics.get('epochs_run', '?')}/{metrics.get('epochs_planned', '?')}",
            f"{metrics.get('training_seconds', float('nan')):.1f}")


def render_scores(rows: list[tuple[str, ...]]) -> str:
    """The notebook's ``model.evaluate`` line for every variant, names left, numbers right (docs/predict.md)."""
    table = [SCORE_COLUMNS, *rows]
    widths = [max(map(len, column)) for column in zip(*table)]
    lines = ["  " + "   ".join([row[0].ljust(widths[0]), *map(str.rjust, row[1:], widths[1:])]) for row in table]
    title = f"Test scores (the notebook's model.evaluate), {len(rows)} variant{'s' if len(rows) > 1 else ''}:"
    return "\n".join([title, *lines])
