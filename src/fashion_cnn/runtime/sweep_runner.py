"""Several variants trained side by side, one worker process each (docs/performance.md): one small
CNN keeps two cores only partly busy, its ops too small to split well over threads."""

from __future__ import annotations

import atexit
import functools
import gc
import heapq
import itertools
import logging
import math
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from typing import Any

from kedro.io import MemoryDataset, SharedMemoryDataset
from kedro.runner import ParallelRunner, SequentialRunner

from fashion_cnn.model.quiet_import import import_tensorflow
from fashion_cnn.runtime import lifecycle
from fashion_cnn.runtime.tracking import kedro_mlflow_hooks_active
from fashion_cnn.variants import is_training, variant_of

logger = logging.getLogger(__name__)

SWEEP_RUNNER = f"{__name__}.SweepRunner"


def usable_cores() -> int:
    """The cores this process may run on (a container's or taskset's limit, not the machine's)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def trainings(node_names: Iterable[str]) -> int:
    return sum(map(is_training, node_names))


def worker_threads(cores: int, workers: int) -> int:
    return max(1, cores // workers)


def default_runner(node_names: Iterable[str]) -> tuple[str | None, str]:
    """The runner for a ``kedro run`` given no ``--runner`` (None: Kedro's SequentialRunner), and why."""
    count, cores = trainings(node_names), usable_cores()
    if count < 2:
        return None, ""
    if cores < 2:
        return None, f"{count} variants to train, one core: one after the other."
    if kedro_mlflow_hooks_active():
        return None, (f"{count} variants to train one after the other, because MLflow tracking (kedro-mlflow) is "
                      "installed and every variant keeps its own MLflow run only in one process. Side by side: "
                      "without the `tracking` extra")
    return SWEEP_RUNNER, (f"{count} variants to train, {min(count, cores)} at a time (one worker process each). "
                          "One at a time: --runner SequentialRunner")


_task_running = _stopping = False  # in a worker process: a node runs there now; the parent asked it to stop


def _stop_worker(signum: int, frame: Any) -> None:
    """SIGTERM from the parent: an idle worker exits at once; a running node stops as on Ctrl-C (its
    save under way discarded, see datasets.whole_files) and quietly, for the parent prints what the run
    kept, which the node's last words (often a TensorFlow error) would bury. The worker then exits."""
    global _stopping
    _stopping = True
    if not _task_running:
        os._exit(1)
    logging.disable(logging.CRITICAL)
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    os.dup2(1, 2)
    raise KeyboardInterrupt("the sweep was interrupted")


def _run_task(task: Callable[[], Any]) -> Any:
    global _task_running
    try:
        _task_running = True
        return task()
    finally:
        _task_running = False
        if _stopping:  # a worker told to stop takes no further task
            os._exit(1)


def _start_worker(threads: str) -> None:
    """Run first in each worker process, before any node's module (and so TensorFlow) is imported."""
    # Ctrl-C in a terminal reaches every process of the run: the parent alone stops the workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _stop_worker)
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", threads)  # the user's own (runtime.intra_op_threads) wins
    import_tensorflow()  # every worker trains
    atexit.register(gc.freeze)  # as `kedro run`: no final collections over TensorFlow's objects (1.2-1.5 s)
    # kedro-viz's dataset-statistics hook keeps its state in the parent: here it warns per dataset.
    logging.getLogger("kedro_viz.integrations.kedro.hooks").setLevel(logging.ERROR)


class SweepExecutor(ProcessPoolExecutor):
    """A process pool that runs nodes by ``priorities`` (the seconds of the longest training each leads to),
    not as submitted: they wait here, behind futures of their own, for a free worker, so that the longest
    trainings do not end up last, one core busy and the other idle. Nothing new starts after a failure;
    an interrupted run stops the workers at once."""

    STOP_GRACE_SECONDS = 20.0  # after SIGTERM (a running node stops, its save discarded), SIGKILL

    def __init__(self, max_workers: int, priorities: dict[str, float], **kwargs: Any) -> None:
        # Children already there (ParallelRunner's shared-memory manager) are not the pool's workers.
        self._not_workers = {process.pid for process in multiprocessing.active_children()}
        super().__init__(max_workers=max_workers, **kwargs)
        self._priorities, self._free, self._stopped = priorities, max_workers, False
        self._waiting: list[tuple[float, int, Future, Callable[[], Any]]] = []  # a heap
        self._order, self._lock = itertools.count(), threading.Lock()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        future: Future = Future()
        priority = -self._priorities.get(getattr(getattr(fn, "node", None), "name", ""), 0.0)
        with self._lock:
            heapq.heappush(self._waiting, (priority, next(self._order), future, functools.partial(fn, *args, **kwargs)))
        self._dispatch()
        return future

    def _dispatch(self) -> None:
        while True:
            with self._lock:
                if self._stopped or not self._free or not self._waiting:
                    return
                *_, future, task = heapq.heappop(self._waiting)
                if not future.set_running_or_notify_cancel():
                    continue
                self._free -= 1
            try:
                started = super().submit(_run_task, task)
            except BaseException as error:  # noqa: BLE001 - the pool is broken or shut down: the node fails
                started = Future()
                started.set_exception(error)
            started.add_done_callback(functools.partial(self._relay, future))

    def _relay(self, future: Future, done: Future) -> None:
        error = KeyboardInterrupt("cancelled") if done.cancelled() else done.exception()
        with self._lock:
            self._free += 1
            self._stopped = self._stopped or error is not None  # nothing new after a failure
        try:  # the node hooks ran in the worker: this is where this process learns the node ended
            if error is None:
                lifecycle.node_finished_elsewhere(done.result())
        finally:  # an error there is only logged (by concurrent.futures): the run goes on
            if error is None:
                future.set_result(done.result())
            else:
                future.set_exception(error)
            self._dispatch()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, traceback: Any) -> bool:
        if kind is not None:  # a node failed (the others running finish: whole files), or an interrupt
            self._stopped = True
            if issubclass(kind, KeyboardInterrupt):
                self._stop_workers()
        return super().__exit__(kind, error, traceback)  # waits for the workers

    def _stop_workers(self) -> None:
        workers = [process for process in multiprocessing.active_children() if process.pid not in self._not_workers]
        for process in workers:
            process.terminate()
        deadline = time.monotonic() + self.STOP_GRACE_SECONDS
        for process in workers:
            process.join(max(0.0, deadline - time.monotonic()))
            process.kill()  # nothing if it has exited


def training_costs(pipeline: Any, catalog: Any) -> dict[str, float]:
    """Each training node's expected seconds, from its variant's last saved seconds per epoch (operation
    counts mislead: a large dense layer costs more time than its share); a variant never run counts
    as the longest."""
    parameters = catalog.load("parameters") if catalog.exists("parameters") else {}
    costs = {}
    for name in filter(is_training, (node.name for node in pipeline.nodes)):
        try:
            variant = variant_of(name)
            epochs = {**parameters["training_defaults"], **(parameters[variant].get("training") or {})}["epochs"]
            metrics = catalog.get(f"{variant}.metrics").load()  # the latest version, without a log line
            costs[name] = float(metrics["seconds_per_epoch"]) * epochs
        except Exception:  # noqa: BLE001 - never run, or unreadable: only the order depends on it
            costs[name] = math.inf
    return costs


def node_priorities(pipeline: Any, costs: dict[str, float]) -> dict[str, float]:
    """Each node's priority: the cost of the longest training it leads to (itself included), so
    that the data processing and a long variant's set-up run before a short variant's training."""
    priorities: dict[str, float] = {}
    for training, cost in sorted(costs.items(), key=lambda item: item[1]):  # the longest last, to win
        priorities.update(dict.fromkeys((node.name for node in pipeline.to_nodes(training).nodes), cost))
    return priorities


class SweepRunner(ParallelRunner):
    """Kedro's ParallelRunner with one worker per variant to train, at most one per core, each with ``cores
    // workers`` TensorFlow threads; the workers run no project hooks. With one variant to train, one
    core, or kedro-mlflow active, every node runs in this process, hooks included."""

    def __init__(self, max_workers: int | None = None, is_async: bool = False) -> None:
        self._most_workers, self._asynchronous = max_workers or usable_cores(), is_async
        super().__init__(max_workers=self._most_workers, is_async=is_async)

    def run(self, pipeline: Any, catalog: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        tracking = kedro_mlflow_hooks_active()
        if self._get_required_workers_count(pipeline) > 1 and not tracking:
            self._priorities = node_priorities(pipeline, training_costs(pipeline, catalog))
            try:
                return super().run(pipeline, catalog, *args, **kwargs)
            except KeyboardInterrupt:
                # An interrupted run ends in os._exit (runtime/lifecycle.py), where no __del__ stops
                # ParallelRunner's manager process: it was left running, holding the run's stdout.
                self._manager.shutdown()
                raise
        if tracking:  # in a worker, without the parent's MLflow run, its hooks would open stray runs
            logger.warning("MLflow tracking (kedro-mlflow) is active: training one variant after the other, "
                           "in this process, so that every variant keeps its own MLflow run.")
        # Every node here, with the session's hooks (ParallelRunner passes none on) and unshared memory datasets.
        for name in pipeline.datasets():
            if name not in catalog or isinstance(catalog.get(name), SharedMemoryDataset):
                catalog[name] = MemoryDataset()
        return SequentialRunner(is_async=self._asynchronous).run(pipeline, catalog, *args, **kwargs)

    def _get_required_workers_count(self, pipeline: Any) -> int:
        return max(1, min(self._most_workers, trainings(node.name for node in pipeline.nodes)))

    def _get_executor(self, max_workers: int) -> Executor:
        threads = str(worker_threads(usable_cores(), max_workers))
        logger.info("Training side by side: %d worker processes, %s TensorFlow thread(s) each.", max_workers,
                    os.environ.get("TF_NUM_INTRAOP_THREADS", threads))
        # spawn: this process has TensorFlow loaded (the spec check), which a fork would copy half-made.
        return SweepExecutor(max_workers, self._priorities, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_start_worker, initargs=(threads,))
