"""Sweeps that use the machine: several variants trained side by side, one worker process each.

One small CNN keeps two cores only partly busy (its ops are too small to split well over
threads), so two trainings with one TensorFlow thread each finish sooner than the same two one
after the other with two threads each. :class:`SweepRunner` is Kedro's ParallelRunner sized for
that: at most one worker per core and per variant to train, each worker's TensorFlow given its
share of the cores. ``kedro run`` picks it for a pipeline with several variants to train
(:func:`default_runner`, used by ``fashion_cnn.cli``); measured in docs/performance.md.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import gc
import heapq
import itertools
import logging
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any

from kedro.runner import ParallelRunner

from fashion_cnn.runtime import run_guard
from fashion_cnn.runtime.tracking import kedro_mlflow_hooks_active

logger = logging.getLogger(__name__)

TRAINING_NODE = "train_model"  # a variant's training node, `<variant>.train_model`
SWEEP_RUNNER = f"{__name__}.SweepRunner"


def usable_cores() -> int:
    """The cores this process may run on (a container's or taskset's limit, not the machine's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def is_training(node_name: str) -> bool:
    """Whether the node is a variant's training node."""
    return node_name.rsplit(".", 1)[-1] == TRAINING_NODE


def trainings(node_names: Iterable[str]) -> int:
    """How many variants the nodes train."""
    return sum(map(is_training, node_names))


def default_runner(node_names: Iterable[str]) -> tuple[str | None, str]:
    """The runner for a ``kedro run`` given no ``--runner``: :class:`SweepRunner` for a sweep, else
    None (Kedro's SequentialRunner); and why, in a sentence for the log."""
    count, cores = trainings(node_names), usable_cores()
    if count < 2:
        return None, ""
    if cores < 2:
        return None, f"{count} variants to train, one core: one after the other."
    if kedro_mlflow_hooks_active():
        return None, (
            f"{count} variants to train one after the other, because MLflow tracking (kedro-mlflow) is "
            "installed and every variant keeps its own MLflow run only in one process. Side by side, "
            f"without per-variant runs: --runner {SWEEP_RUNNER}"
        )
    workers = min(count, cores)
    return SWEEP_RUNNER, (
        f"{count} variants to train, {workers} at a time (one worker process each). "
        "One at a time: --runner SequentialRunner"
    )


def worker_threads(cores: int, workers: int) -> int:
    """TensorFlow threads per worker: the cores shared out, at least one."""
    return max(1, cores // workers)


_task_running = False  # in a worker process: whether a node is running there now
_stopping = False  # in a worker process: the parent asked it to stop


def _stop_worker(signum: int, frame: Any) -> None:
    """SIGTERM from the parent: a running node stops as on Ctrl-C (its save under way is discarded,
    see datasets.whole_files), and the worker then exits; an idle worker exits at once."""
    global _stopping
    _stopping = True
    if not _task_running:
        os._exit(1)
    # The parent prints what the run kept; what the interrupted node prints on its way out (often a
    # TensorFlow error around the KeyboardInterrupt) would only bury that line.
    logging.disable(logging.CRITICAL)
    quiet_output = os.open(os.devnull, os.O_WRONLY)
    os.dup2(quiet_output, 1)
    os.dup2(quiet_output, 2)
    raise KeyboardInterrupt("the sweep was interrupted")


def _run_task(task: Callable[[], Any]) -> Any:
    """A node's task in a worker; a worker told to stop takes no further task from the queue."""
    global _task_running
    if _stopping:
        os._exit(1)
    _task_running = True
    try:
        return task()
    finally:
        _task_running = False
        if _stopping:
            os._exit(1)


def _start_worker(environment: dict[str, str]) -> None:
    """Run first in each worker process, before any node's module (and so TensorFlow) is imported."""
    # Ctrl-C in a terminal reaches every process of the run: the parent alone stops the workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _stop_worker)
    for variable, value in environment.items():
        os.environ.setdefault(variable, value)  # the user's own setting (runtime.*_threads) wins
    from fashion_cnn.runtime import quiet

    quiet.install()
    # The pool ends its workers after the run; they exit without Python's final garbage collections
    # over TensorFlow's objects (1.2-1.5 s, which the run would wait for), as `kedro run` does.
    atexit.register(gc.freeze)
    # Plugin hooks that keep their state in the parent: in a worker, kedro-viz's dataset statistics
    # have no catalog (a warning per dataset), and kedro-mlflow has no run, so it would open a stray
    # one for each node's parameters.
    logging.getLogger("kedro_viz.integrations.kedro.hooks").setLevel(logging.ERROR)
    if kedro_mlflow_hooks_active():
        from kedro_mlflow.framework.hooks.mlflow_hook import mlflow_hook

        mlflow_hook._is_mlflow_enabled = False


class SweepExecutor(ProcessPoolExecutor):
    """A process pool that hands each worker one node at a time, those leading to the longest
    trainings first, stops at once when the run is interrupted, and starts nothing new after a
    failure.

    Kedro submits every node that is ready; the pool keeps them here and gives a free worker the
    one with the highest ``priorities`` entry (node name -> seconds of the longest training it
    leads to), so that the longest trainings start first and do not end up last, one core busy
    and the other idle. Nodes after the trainings (evaluation, figures) come last.
    """

    STOP_GRACE_SECONDS = 20.0

    def __init__(self, *args: Any, priorities: dict[str, float] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._priorities = priorities or {}
        self._waiting: list[tuple[float, int, Future, Callable[[], Any]]] = []  # a heap
        self._order = itertools.count()
        self._free = self._max_workers
        self._scheduling = threading.Lock()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        future: Future = Future()
        name = getattr(getattr(fn, "node", None), "name", "")
        task = functools.partial(fn, *args, **kwargs)
        with self._scheduling:
            heapq.heappush(self._waiting, (-self._priorities.get(name, 0.0), next(self._order), future, task))
        self._dispatch()
        return future

    def _dispatch(self) -> None:
        while True:
            with self._scheduling:
                if not self._free or not self._waiting:
                    return
                *_, future, task = heapq.heappop(self._waiting)
                if not future.set_running_or_notify_cancel():
                    continue
                self._free -= 1
            try:
                started = super().submit(_run_task, task)
            except BaseException as error:  # noqa: BLE001 - the pool is broken or shut down: the node fails
                self._finished(future, error=error)
                continue
            started.add_done_callback(lambda done, future=future: self._relay(done, future))

    def _relay(self, done: Future, future: Future) -> None:
        if done.cancelled():
            self._finished(future, error=KeyboardInterrupt("cancelled"))
        elif done.exception() is not None:
            self._finished(future, error=done.exception())
        else:
            self._finished(future, result=done.result())

    def _finished(self, future: Future, result: Any = None, error: BaseException | None = None) -> None:
        with self._scheduling:
            self._free += 1
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)
        self._dispatch()

    def _cancel_waiting(self) -> None:
        with self._scheduling:
            waiting, self._waiting = self._waiting, []
        for *_, future, _task in waiting:
            future.cancel()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, traceback: Any) -> bool:
        if kind is not None:  # a node failed (the others running finish: whole files) or an interrupt
            self._cancel_waiting()
        if kind is not None and issubclass(kind, KeyboardInterrupt):
            self._stop_workers()
        self.shutdown(wait=True, cancel_futures=kind is not None)
        return False

    def _stop_workers(self) -> None:
        """SIGTERM to each worker (a running node stops and discards its save), then SIGKILL to any
        still there after the grace period."""
        processes = list((self._processes or {}).values())
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.STOP_GRACE_SECONDS
        for process in processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()


def training_costs(pipeline: Any, catalog: Any) -> dict[str, float]:
    """Each training node's expected seconds: its variant's seconds per epoch in its last saved
    metrics times this run's epochs. Operation counts mislead here (a large dense layer costs more
    time than its share of operations), so the last run's clock decides; a variant without one
    counts as the longest."""
    from fashion_cnn.model.training import merge_training_settings

    parameters = catalog.load("parameters") if catalog.exists("parameters") else {}
    costs = {}
    for node in pipeline.nodes:
        variant = node.namespace
        if not variant or not is_training(node.name):
            continue
        try:
            settings = merge_training_settings(variant, parameters["training_defaults"], parameters[variant]["training"])
            metrics = catalog.get(f"{variant}.metrics").load()  # the latest version, without a log line
            costs[node.name] = float(metrics["seconds_per_epoch"]) * settings["epochs"]
        except Exception:  # noqa: BLE001 - never run, or unreadable: only the order depends on it
            costs[node.name] = math.inf
    return costs


def node_priorities(pipeline: Any, costs: dict[str, float]) -> dict[str, float]:
    """Each node's priority: the cost of the longest training it leads to (itself included), so
    that the data processing and a long variant's set-up run before a short variant's training."""
    parents = {node.name: [parent.name for parent in found] for node, found in pipeline.node_dependencies.items()}
    priorities: dict[str, float] = {}
    for training, cost in costs.items():
        stack = [training]
        while stack:
            name = stack.pop()
            if priorities.get(name, -1.0) >= cost:
                continue
            priorities[name] = cost
            stack.extend(parents.get(name, []))
    return priorities


class SweepRunner(ParallelRunner):
    """Kedro's ParallelRunner with one worker per variant to train, at most one per core.

    Each worker's TensorFlow gets ``cores // workers`` threads (``TF_NUM_INTRAOP_THREADS``, unless
    ``runtime.intra_op_threads`` or the environment sets it). With one variant to train, or one
    core, every node runs in this process, hooks included, as with SequentialRunner.

    Like ParallelRunner, the workers run no project hooks: no per-variant MLflow runs, and the
    timing line gives the wall time only.
    """

    def __init__(self, max_workers: int | None = None, is_async: bool = False) -> None:
        super().__init__(max_workers=max_workers or usable_cores(), is_async=is_async)
        self._priorities: dict[str, float] = {}  # node name -> priority, for the run under way

    def _run(self, pipeline: Any, catalog: Any, hook_manager: Any = None, run_id: str | None = None) -> None:
        self._priorities = node_priorities(pipeline, training_costs(pipeline, catalog))
        super()._run(pipeline, catalog, hook_manager, run_id)

    def _release_datasets(self, node: Any, catalog: Any, load_counts: dict, pipeline: Any) -> None:
        # Called here, in the parent, as each node completes: the one place that learns it (node hooks
        # run in the workers), told to the interruption summary.
        run_guard.node_finished_elsewhere(node)
        super()._release_datasets(node, catalog, load_counts, pipeline)

    def _get_required_workers_count(self, pipeline: Any) -> int:
        return max(1, min(self._max_workers, trainings(node.name for node in pipeline.nodes)))

    def _get_executor(self, max_workers: int) -> Executor | None:
        if max_workers < 2:
            return None  # the base runner then runs every node here, in order
        threads = str(worker_threads(usable_cores(), max_workers))
        environment = {"TF_NUM_INTRAOP_THREADS": threads}
        logger.info("Training side by side: %d worker processes, %s TensorFlow thread(s) each.", max_workers,
                    os.environ.get("TF_NUM_INTRAOP_THREADS", threads))
        # spawn: this process has TensorFlow loaded (the spec check), which a fork would copy half-made.
        return SweepExecutor(max_workers=max_workers, mp_context=get_context("spawn"), initializer=_start_worker,
                             initargs=(environment,), priorities=self._priorities)
