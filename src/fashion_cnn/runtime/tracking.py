"""Experiment tracking with kedro-mlflow: one MLflow run per model variant.

kedro-mlflow (``pip install -e ".[tracking]"``, configured in ``conf/base/mlflow.yml``) opens one
MLflow run per ``kedro run`` and logs the parameters of every node into it. A sweep over several
variants in one ``kedro run`` would then be a single run, with ``cnn.architecture`` and
``dense.architecture`` side by side. :class:`MlflowVariantRunsHook` adds, under that run, one
nested (child) run per variant of the run, named and tagged after the variant:

* before the pipeline runs: the child runs are created, with the variant's description,
  tags and architecture;
* around each node of a variant's namespace: the variant's run is the active MLflow run, so
  whatever kedro-mlflow logs for that node (its parameters, any ``Mlflow*Dataset`` of the
  catalog) goes into the variant's run, and not into the parent;
* after each node: the node's outputs are logged to the variant's run by what they are:
  ``training_settings`` as parameters ``training.<key>``, ``metrics`` as metrics (the numbers;
  ``per_class_accuracy.<class>``), ``training_history`` as per-epoch metrics
  ``history/<column>`` (step = epoch), ``model_summary`` as ``model_summary.txt``, ``model`` as an
  MLflow model of the Keras flavour named ``model`` (:mod:`fashion_cnn.model.mlflow_models`);
* after each matplotlib figure is saved (activation grid, confusion matrix, kernels, learning
  curves, ...): the PNG file the catalog just wrote, as ``figures/<name>.png`` (rendering it
  again would cost as much as the catalog's own save). Figures of nodes outside any variant
  (the comparison) go to the parent run.

Run as an Airflow task (the DAG of ``kedro airflow create``), each task is its own ``kedro run``
and so its own MLflow run: the hook tags it, and its variant runs, with the Airflow DAG run and
task (``airflow_dag_run_id``, ``airflow_task_id``, ...), from the variables Airflow sets for a
running task, so that one search finds every MLflow run of one DAG run.

Without kedro-mlflow installed, or with tracking disabled for the pipeline in ``mlflow.yml``
(kedro-mlflow then opens no run), every method returns at once: MLflow is never imported by
this hook (it only uses MLflow when kedro-mlflow has imported it and opened a run).
Tracking follows the thread of each node, so it works with the Sequential and Thread runners;
the worker processes of ParallelRunner and SweepRunner do not share the parent's MLflow state, so
with kedro-mlflow installed ``kedro run`` keeps a sweep in one process (see docs/tracking.md).
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import math
import os
import posixpath
import sys
import threading
import time
from collections.abc import Iterator, Mapping
import fcntl
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl

from fashion_cnn.model.mlflow_models import log_trained_model
from fashion_cnn.variants import is_convolutional, partition_variants, variant_of

logger = logging.getLogger(__name__)

VARIANT_TAG = "variant"
MAX_PARAM_LENGTH = 6000  # MLflow's limit on a parameter value
# What Airflow exports to the environment of a running task (AIRFLOW_CTX_*), as MLflow tags.
AIRFLOW_CONTEXT_TAGS = {
    "AIRFLOW_CTX_DAG_ID": "airflow_dag_id",
    "AIRFLOW_CTX_DAG_RUN_ID": "airflow_dag_run_id",
    "AIRFLOW_CTX_TASK_ID": "airflow_task_id",
    "AIRFLOW_CTX_TRY_NUMBER": "airflow_try_number",
}


def kedro_mlflow_hooks_active() -> bool:
    """Whether kedro-mlflow's hooks run in this project's sessions: its distribution is installed
    (its entry point is there) and not in settings.DISABLE_HOOKS_FOR_PLUGINS. Read from the
    entry points, importing nothing."""
    from kedro.framework.project import settings

    disabled = {name.lower().replace("_", "-") for name in settings.DISABLE_HOOKS_FOR_PLUGINS}
    return "kedro-mlflow" not in disabled and any(
        (entry_point.dist.name if entry_point.dist else "").lower().replace("_", "-") == "kedro-mlflow"
        for entry_point in importlib.metadata.entry_points(group="kedro.hooks")
    )


def airflow_context_tags() -> dict[str, str]:
    """The Airflow DAG run and task this run belongs to; empty outside an Airflow task."""
    return {tag: os.environ[variable] for variable, tag in AIRFLOW_CONTEXT_TAGS.items() if os.environ.get(variable)}


def describe_architecture(architecture: Any) -> str:
    """A one-line architecture, ``Conv2D(filters=32, kernel_size=3) > MaxPooling2D(pool_size=2) > ...``."""
    layers = []
    for entry in architecture or []:
        if isinstance(entry, Mapping) and len(entry) == 1:
            ((layer_type, kwargs),) = entry.items()
            arguments = ", ".join(f"{key}={value}" for key, value in (kwargs or {}).items())
            layers.append(f"{layer_type}({arguments})")
        else:
            layers.append(str(entry))
    return " > ".join(layers)


def _param_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= MAX_PARAM_LENGTH else text[: MAX_PARAM_LENGTH - 3] + "..."


def _flatten(prefix: str, value: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(value, Mapping) and value:
        for key, item in value.items():
            yield from _flatten(f"{prefix}.{key}", item)
    else:
        yield prefix, value


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _figures(name: str, value: Any) -> Iterator[tuple[str, Any]]:
    """``(artifact path, figure)`` for a matplotlib Figure, or a dict or list of them."""
    if type(value).__module__.startswith("matplotlib") and hasattr(value, "savefig"):
        yield f"figures/{name}.png", value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _figures(f"{name}/{key}", item)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _figures(f"{name}/{index}", item)


class MlflowVariantRunsHook:
    """One nested MLflow run per model variant under kedro-mlflow's run of the ``kedro run``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self._parent_id: str | None = None
        self._runs: dict[str, str] = {}  # variant -> MLflow run id
        self._pending: dict[str, set[str]] = {}  # variant -> names of its nodes not yet done
        self._failed: set[str] = set()
        self._catalog: Any = None

    def _variant_of(self, node: Any) -> str | None:
        variant = variant_of(node)
        return variant if variant in self._runs else None

    @staticmethod
    def _client() -> Any:
        from mlflow.tracking import MlflowClient

        return MlflowClient()

    # Before kedro-mlflow reads mlflow.yml (in its own after_context_created).
    @hook_impl(tryfirst=True)
    def after_context_created(self, context: Any) -> None:
        """``${fashion_cnn.project_path:}`` in mlflow.yml: this project's absolute path.

        The SQLite store's URI must be absolute: a relative ``sqlite:///mlflow.db`` follows the
        working directory, and MLflow caches its stores by URI, so a second project in the same
        process (a notebook, the tests) would write into the first one's database.
        """
        if not kedro_mlflow_hooks_active():
            return
        from omegaconf import OmegaConf

        path = Path(context.project_path).resolve().as_posix()
        OmegaConf.register_resolver("fashion_cnn.project_path", lambda: path, replace=True)
        create_sqlite_store_once(context)


    # The spec check (ValidateVariantsHook, tryfirst) and kedro-mlflow's run come first.
    @hook_impl(trylast=True)
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        self._reset()
        # kedro-mlflow imports mlflow when its hooks are active: no import here, no run to nest in.
        mlflow = sys.modules.get("mlflow")
        if mlflow is None or not kedro_mlflow_hooks_active():
            return
        from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NOTE

        parent = mlflow.active_run()
        if parent is None:  # tracking is disabled for this pipeline, or kedro-mlflow's hooks are
            _forget_previous_kedro_mlflow_run()
            return
        airflow_tags = airflow_context_tags()
        if airflow_tags:
            mlflow.set_tags(airflow_tags)  # on kedro-mlflow's run: every task's run, variants or not
        runner = str(run_params.get("runner", ""))
        if "ParallelRunner" in runner or "SweepRunner" in runner:
            logger.warning(
                "MLflow: no per-variant runs with %s (its worker processes do not share this process's "
                "MLflow runs); without --runner, or with SequentialRunner or ThreadRunner, every variant "
                "gets its own run.", "SweepRunner" if "SweepRunner" in runner else "ParallelRunner"
            )
            return
        variants = partition_variants(catalog.load("parameters"))[0]
        pending: dict[str, set[str]] = {}
        for node in pipeline.nodes:
            variant = variant_of(node)
            if variant in variants:
                pending.setdefault(variant, set()).add(node.name)
        # Figures outside any variant go to this run, with or without variants in it (an Airflow
        # task of the comparison alone is a run of its own).
        self._parent_id = parent.info.run_id
        self._catalog = catalog
        if not pending:
            return

        from mlflow.entities import Param

        client = self._client()
        for variant in sorted(pending):
            spec = variants[variant]
            tags = [*spec.get("tags", []), *(["convolutional"] if is_convolutional(spec) else [])]
            run = client.create_run(
                experiment_id=parent.info.experiment_id,
                run_name=variant,
                tags={
                    MLFLOW_PARENT_RUN_ID: self._parent_id,
                    VARIANT_TAG: variant,
                    "variant_tags": ",".join(tags),
                    MLFLOW_RUN_NOTE: spec.get("description") or "",
                    **airflow_tags,
                },
            )
            run_id = run.info.run_id
            client.log_batch(
                run_id,
                params=[
                    Param("architecture", _param_value(describe_architecture(spec["architecture"]))),
                    Param("layers", str(len(spec["architecture"] or []))),
                    Param("description", _param_value(spec.get("description") or "")),
                ],
            )
            client.log_dict(run_id, {"name": variant, **spec}, "variant.json")
            self._runs[variant] = run_id
        self._pending = pending
        logger.info("MLflow: one run per variant under run %s: %s", self._parent_id, ", ".join(sorted(pending)))

    # Before kedro-mlflow logs the node's parameters, so that they land in the variant's run.
    @hook_impl(tryfirst=True)
    def before_node_run(self, node: Any, catalog: Any, inputs: dict[str, Any], is_async: bool) -> None:
        variant = self._variant_of(node)
        if variant is None:
            return
        import mlflow

        if mlflow.active_run() is None:  # a runner thread: resume the parent first, as kedro-mlflow does
            mlflow.start_run(run_id=self._parent_id)
        mlflow.start_run(run_id=self._runs[variant], nested=True)

    def _end_variant_run(self, variant: str, status: str = "FINISHED") -> None:
        import mlflow

        active = mlflow.active_run()
        if active is not None and active.info.run_id == self._runs[variant]:
            mlflow.end_run(status)

    @hook_impl
    def after_node_run(
        self, node: Any, catalog: Any, inputs: dict[str, Any], outputs: dict[str, Any], is_async: bool
    ) -> None:
        variant = self._variant_of(node)
        if variant is None:
            return
        try:
            self._log_outputs(self._runs[variant], variant, outputs)
        finally:
            self._end_variant_run(variant)
            with self._lock:
                self._pending[variant].discard(node.name)

    @hook_impl
    def after_dataset_saved(self, dataset_name: str, data: Any, node: Any) -> None:
        """A figure output goes to its variant's run (else the parent run) once the catalog saved it."""
        if self._parent_id is None:
            return
        variant = self._variant_of(node)
        run_id = self._runs[variant] if variant else self._parent_id
        figures = list(_figures(_local_name(dataset_name, variant), data))
        if not figures:
            return
        client = self._client()
        saved = _saved_file(self._catalog, dataset_name) if len(figures) == 1 else None
        for artifact_file, figure in figures:
            if saved is not None and saved.name == posixpath.basename(artifact_file):
                client.log_artifact(run_id, str(saved), posixpath.dirname(artifact_file))
            else:  # kept in memory, remote, or a dict of figures: render it for MLflow
                client.log_figure(run_id, figure, artifact_file)

    @hook_impl
    def on_node_error(
        self, error: Exception, node: Any, catalog: Any, inputs: dict[str, Any], is_async: bool
    ) -> None:
        variant = self._variant_of(node)
        if variant is not None:
            with self._lock:
                self._failed.add(variant)
            self._end_variant_run(variant, "FAILED")

    # Before kedro-mlflow ends the parent run.
    @hook_impl(tryfirst=True)
    def after_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        self._close_runs()

    @hook_impl(tryfirst=True)
    def on_pipeline_error(self, error: Exception, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        self._close_runs()

    def _close_runs(self) -> None:
        """Every variant run ends FINISHED if all its nodes ran, FAILED if one failed, else KILLED."""
        if not self._runs:
            self._reset()
            return
        import mlflow

        variant_ids = set(self._runs.values())
        while (active := mlflow.active_run()) is not None and active.info.run_id in variant_ids:
            mlflow.end_run("KILLED")  # only after an error; statuses are set right below
        client = self._client()
        for variant, run_id in self._runs.items():
            if variant in self._failed:
                status = "FAILED"
            elif self._pending.get(variant):
                status = "KILLED"
            else:
                status = "FINISHED"
            client.set_terminated(run_id, status)
        self._reset()

    # ---- what gets logged ----
    def _log_outputs(self, run_id: str, variant: str, outputs: dict[str, Any]) -> None:
        import pandas as pd
        from mlflow.entities import Metric, Param

        client = self._client()
        now = int(time.time() * 1000)
        params: list[Param] = []
        metrics: list[Metric] = []
        tags: dict[str, str] = {}
        for name, value in outputs.items():
            local = _local_name(name, variant)
            if local == "training_settings" and isinstance(value, Mapping):
                params += [Param(key, _param_value(item)) for key, item in _flatten("training", value)]
                client.log_dict(run_id, dict(value), "training_settings.json")
            elif local == "metrics" and isinstance(value, Mapping):
                for key, item in _flatten("", value):
                    key = key.lstrip(".")
                    if _is_number(item):
                        metrics.append(Metric(key, float(item), now, 0))
                    elif isinstance(item, bool):
                        tags[key] = str(item).lower()
                client.log_dict(run_id, dict(value), "metrics.json")
            elif local == "training_history" and isinstance(value, pd.DataFrame):
                steps = value["epoch"] if "epoch" in value else pd.Series(range(1, len(value) + 1))
                for column in value.columns.drop("epoch", errors="ignore"):
                    metrics += [
                        Metric(f"history/{column}", float(item), now, int(step))
                        for step, item in zip(steps, value[column], strict=True)
                        if _is_number(item)
                    ]
                client.log_text(run_id, value.to_csv(index=False), "training_history.csv")
            elif local == "model_summary" and isinstance(value, str):
                client.log_text(run_id, value, "model_summary.txt")
            elif local == "model" and hasattr(value, "predict"):  # the trained Keras model
                log_trained_model(run_id, variant, value)
        for start in range(0, len(metrics), 1000):  # MLflow's batch limit
            client.log_batch(run_id, metrics=metrics[start : start + 1000])
        if params or tags:
            client.log_batch(run_id, params=params, tags=[_tag(key, item) for key, item in tags.items()])


def _local_name(dataset_name: str, variant: str | None) -> str:
    """``cnn.metrics`` -> ``metrics`` for variant ``cnn``; names outside a variant stay whole."""
    return dataset_name.removeprefix(variant + ".") if variant else dataset_name


def _saved_file(catalog: Any, dataset_name: str) -> Path | None:
    """The local file a catalog dataset has just saved, if it is one.

    Versioned datasets save to ``<filepath>/<save version>/<file name>`` (Kedro's layout)."""
    try:
        dataset = catalog.get(dataset_name)
    except Exception:  # noqa: BLE001 - not resolvable: the caller renders the figure instead
        return None
    filepath = getattr(dataset, "_filepath", None)
    if filepath is None or getattr(dataset, "_protocol", None) != "file":
        return None
    path = Path(str(filepath))
    version = dataset.resolve_save_version() if hasattr(dataset, "resolve_save_version") else None
    if version:
        path = path / version / path.name
    return path if path.is_file() else None


def _forget_previous_kedro_mlflow_run() -> None:
    """Work around kedro-mlflow 2.0.3 in a process that runs several sessions (a notebook, tests).

    Its hook is one module-level object that keeps the run id of the last tracked session; in a
    later session with tracking disabled it still resumes that run before every node: the old run
    flips back to RUNNING, or the node fails with "Run ... not found" if the store changed.
    """
    try:
        from kedro_mlflow.framework.hooks.mlflow_hook import mlflow_hook
    except ImportError:
        return
    mlflow_hook.run_id = None


def _tag(key: str, value: str) -> Any:
    from mlflow.entities import RunTag

    return RunTag(key, value)


def create_sqlite_store_once(context: Any) -> None:
    """Create a SQLite tracking store under a file lock, before kedro-mlflow first opens it.

    Two runs that start at once on a new store both create its tables, and one fails ("table
    experiments already exists"); the lock lets the first create them and the second find them.
    """
    patterns = context.config_loader.config_patterns
    patterns.setdefault("mlflow", ["mlflow*", "mlflow*/**", "**/mlflow*"])
    try:
        uri = str(context.config_loader["mlflow"]["server"]["mlflow_tracking_uri"] or "")
    except (KeyError, TypeError):
        return
    if not uri.startswith("sqlite:///"):
        return
    database = Path(uri.removeprefix("sqlite:///"))
    database.parent.mkdir(parents=True, exist_ok=True)
    with open(database.with_name(database.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not database.exists():
            from mlflow.tracking import MlflowClient

            MlflowClient(tracking_uri=uri).search_experiments(max_results=1)  # creates the tables
