"""Several variants trained side by side, one worker process each (docs/performance.md): one small CNN keeps two
cores only partly busy, its ops too small to split well over threads. The nodes go to the workers in Kedro's order."""

from __future__ import annotations

import atexit
import gc
import logging
import multiprocessing
import os
import signal
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from typing import Any

from kedro.io import MemoryDataset, SharedMemoryDataset
from kedro.runner import ParallelRunner, SequentialRunner

from fashion_cnn.model.quiet_import import import_tensorflow
from fashion_cnn.runtime import lifecycle
from fashion_cnn.runtime.tracking import kedro_mlflow_hooks_active
from fashion_cnn.variants import is_training

logger = logging.getLogger(__name__)


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
    return f"{__name__}.SweepRunner", (f"{count} variants to train, {min(count, cores)} at a time (one worker "
                                       "process each). One at a time: --runner SequentialRunner")


# In a worker process: a node runs there now; the parent asked it to stop; the pool's two Events.
_task_running = _stopping = False
_node_failed: Any = None  # set by the first node that fails, in any worker
_pool_closing: Any = None  # set by the parent once the run's outcome is known (a failure reported)


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


def _run_task(task: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    global _task_running
    if _node_failed.is_set():  # queued here before the parent learnt of the failure: never starts,
        _pool_closing.wait()  # and fails only after it, lest Kedro report this instead of the failure
        raise RuntimeError("Not started: another node of this run failed.")
    try:
        _task_running = True
        return task(*args, **kwargs)
    except Exception:
        _node_failed.set()
        raise
    finally:
        _task_running = False
        if _stopping:  # a worker told to stop takes no further task
            os._exit(1)


def _start_worker(threads: str, node_failed: Any, pool_closing: Any) -> None:
    """Run first in each worker process, before any node's module (and so TensorFlow) is imported."""
    global _node_failed, _pool_closing
    _node_failed, _pool_closing = node_failed, pool_closing
    # Ctrl-C in a terminal reaches every process of the run: the parent alone stops the workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _stop_worker)
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", threads)  # the user's own (runtime.intra_op_threads) wins
    import_tensorflow()  # every worker trains
    atexit.register(gc.freeze)  # as `kedro run`: no final collections over TensorFlow's objects (1.2-1.5 s)
    # kedro-viz's dataset-statistics hook keeps its state in the parent: here it warns per dataset.
    logging.getLogger("kedro_viz.integrations.kedro.hooks").setLevel(logging.ERROR)


def _node_finished(future: Future) -> None:
    """The node's hooks ran in the worker: here this process learns it ended (an error here is only logged)."""
    if not future.cancelled() and future.exception() is None:
        lifecycle.node_finished_elsewhere(future.result())


class SweepExecutor(ProcessPoolExecutor):
    """Spawned workers with ``threads`` TensorFlow threads each, taking nodes in Kedro's order. Nothing new starts
    after a failure: the nodes still here are cancelled, those already in the workers' queue refuse to start (the
    pool passes up to one more node than it has workers). An interrupted run stops the workers at once."""

    STOP_GRACE_SECONDS = 20.0  # after SIGTERM (a running node stops, its save discarded), SIGKILL

    def __init__(self, max_workers: int, threads: str) -> None:
        # Children already there (ParallelRunner's shared-memory manager) are not the pool's workers.
        self._not_workers = {process.pid for process in multiprocessing.active_children()}
        # spawn: this process has TensorFlow loaded (the spec check), which a fork would copy half-made.
        context = multiprocessing.get_context("spawn")
        self._pool_closing = context.Event()
        super().__init__(max_workers, context, _start_worker, (threads, context.Event(), self._pool_closing))

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        future = super().submit(_run_task, fn, *args, **kwargs)
        future.add_done_callback(_node_finished)
        return future

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, traceback: Any) -> bool:
        if kind is not None and issubclass(kind, KeyboardInterrupt):
            self._stop_workers()
        self._pool_closing.set()
        # After a failure the nodes running finish (whole files); waits for the workers.
        self.shutdown(cancel_futures=kind is not None)
        return False

    def _stop_workers(self) -> None:
        workers = [process for process in multiprocessing.active_children() if process.pid not in self._not_workers]
        for process in workers:
            process.terminate()
        deadline = time.monotonic() + self.STOP_GRACE_SECONDS
        for process in workers:
            process.join(max(0.0, deadline - time.monotonic()))
            process.kill()  # nothing if it has exited


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
        return SweepExecutor(max_workers, threads)
