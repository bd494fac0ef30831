"""Runs that share a project folder without colliding, and a Ctrl-C that says what was kept."""

from __future__ import annotations

import atexit
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl

from fashion_cnn.runtime import runs
from fashion_cnn.variants import variant_of

logger = logging.getLogger(__name__)

_current: RunGuardHook | None = None  # the guard of the run under way in this process


def node_finished_elsewhere(node: Any) -> None:
    """A node of this process's run finished in a worker process, where the node hooks ran instead of
    here (SweepRunner tells it), for the interruption summary."""
    if _current is not None:
        _current.node_finished(node)


class RunGuardHook:
    """Claims the run's save version (:mod:`fashion_cnn.runtime.runs`), names the project's other active
    runs, and ends an interrupted run with one line: the variants finished and saved, and that
    nothing partial was kept (saves are whole or nothing, see ``datasets.whole_files``).

    SIGTERM (a scheduler stopping a task) is handled like Ctrl-C, so that the interrupted save is
    cleaned up and the line printed; a kill (SIGKILL) cannot be, and the next save sweeps up.
    """

    def __init__(self) -> None:
        self._record: Path | None = None
        self._pending: dict[str, set[str]] = {}
        self._models_saved: set[str] = set()
        self._previous_handlers: dict[int, Any] = {}
        self._interrupted = False
        self._signal = signal.SIGINT
        atexit.register(self._at_exit)

    def _interrupt(self, signum: int, frame: Any) -> None:
        self._interrupted, self._signal = True, signal.Signals(signum)
        raise KeyboardInterrupt(signal.Signals(signum).name)

    def _install_signal_handlers(self) -> None:
        """Ctrl-C and SIGTERM raise KeyboardInterrupt, noted as an interruption; only where Python's
        defaults are in force (a host such as Airflow keeps its own handlers)."""
        if threading.current_thread() is not threading.main_thread():
            return
        for signum, default in ((signal.SIGINT, signal.default_int_handler), (signal.SIGTERM, signal.SIG_DFL)):
            if signal.getsignal(signum) == default:
                self._previous_handlers[signum] = signal.signal(signum, self._interrupt)

    # tryfirst, but registered before the spec check, which pluggy then calls first: a run that
    # fails its checks claims nothing.
    @hook_impl(tryfirst=True)
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        project = Path(run_params["project_path"])
        if self._record is not None:  # an earlier run in this process was stopped by another hook
            runs.finish(self._record, "failed")
        self._record = runs.claim(project, run_params["run_id"], run_params.get("pipeline_names"))
        for other in runs.active_runs(project, besides=self._record):
            logger.warning("Another run of this project is under way (%s). Each run saves its own versions; "
                           "files without versions (tables, summaries) hold whichever run writes them last.",
                           runs.describe(other))
        self._pending, self._models_saved = {}, set()
        for node in pipeline.nodes:
            variant = variant_of(node)
            if variant:
                self._pending.setdefault(variant, set()).add(node.name)
        self._interrupted = False
        self._install_signal_handlers()
        global _current
        _current = self

    @hook_impl
    def after_dataset_saved(self, dataset_name: str, data: Any, node: Any) -> None:
        variant, _, local = dataset_name.partition(".")
        if variant in self._pending and local == "model":
            self._models_saved.add(variant)
        self._stop_if_interrupted()

    @hook_impl
    def before_node_run(self) -> None:
        self._stop_if_interrupted()

    def _stop_if_interrupted(self) -> None:
        """Library code sometimes absorbs the KeyboardInterrupt that a signal raised in it (Keras's
        model saving does, now and then): the run then stops here, at the next save or node."""
        if self._interrupted and self._record is not None:
            raise KeyboardInterrupt("interrupted earlier; the exception was absorbed where it was raised")

    @hook_impl
    def after_node_run(self, node: Any) -> None:
        variant = variant_of(node)
        if variant in self._pending:
            self._pending[variant].discard(node.name)

    def node_finished(self, node: Any) -> None:
        """``after_node_run`` for a node that ran in another process: its outputs are saved."""
        self.after_node_run(node)
        variant = variant_of(node)
        if variant in self._pending and f"{variant}.model" in node.outputs:
            self._models_saved.add(variant)

    @hook_impl
    def after_pipeline_run(self) -> None:
        self._end("succeeded")

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

    def interruption_summary(self) -> str:
        finished = [variant for variant, left in self._pending.items() if not left]
        unfinished = [
            f"{variant} (model saved)" if variant in self._models_saved else variant
            for variant, left in self._pending.items() if left
        ]
        parts = [f"finished and saved: {', '.join(finished) or 'none'}"]
        if unfinished:
            parts.append(f"not finished: {', '.join(unfinished)}")
        return ("Interrupted; " + "; ".join(parts) + ". Nothing partial was kept: every file written is whole, "
                "and the save under way, if any, was discarded.")

    def _at_exit(self) -> None:
        """A run still open at exit was interrupted (Kedro calls no hook for a KeyboardInterrupt,
        and its CLI prints only 'Aborted!'), or stopped by another hook before it started.

        An interrupted process ends right after the summary, with the shell's code for the signal
        (130 for Ctrl-C, 143 for SIGTERM): TensorFlow stopped mid-step can corrupt its heap, and the
        interpreter's teardown then aborted now and then (glibc's "free(): invalid next size") after
        the summary, which is not the last line then. Everything the run keeps is written by now."""
        if self._record is None:
            return
        try:
            runs.finish(self._record, "interrupted" if self._interrupted else "failed")
        except OSError:
            pass
        self._record = None
        if self._interrupted:
            print(self.interruption_summary(), file=sys.stderr, flush=True)
            logging.shutdown()
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except (OSError, ValueError):
                    pass
            os._exit(128 + self._signal)
