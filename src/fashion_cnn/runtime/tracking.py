"""One nested MLflow run per model variant under kedro-mlflow's run of a ``kedro run``; docs/tracking.md says what
each holds and what logs it. A variant's run is active from a node of it until a node of another starts, so through
the saves, which Kedro does after ``after_node_run``."""

from __future__ import annotations

import fcntl
import importlib.metadata
import json
import logging
import math
import os
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl

from fashion_cnn.parameters import partition_variants
from fashion_cnn.variants import is_convolutional, variant_of, variants_in

logger = logging.getLogger(__name__)

TRACKING_CATALOG = "tracking_catalog"  # config key of conf/<env>/tracking_catalog*.yml
MAX_PARAM_LENGTH = 6000  # MLflow's limit on a parameter value
# What Airflow exports to the environment of a running task, as MLflow tags.
AIRFLOW_CONTEXT_TAGS = {"AIRFLOW_CTX_DAG_ID": "airflow_dag_id", "AIRFLOW_CTX_DAG_RUN_ID": "airflow_dag_run_id",
                        "AIRFLOW_CTX_TASK_ID": "airflow_task_id", "AIRFLOW_CTX_TRY_NUMBER": "airflow_try_number"}


def kedro_mlflow_hooks_active() -> bool:
    """Whether kedro-mlflow's hooks run in this project's sessions (installed, not disabled in settings)."""
    from kedro.framework.project import settings

    disabled = {name.lower().replace("_", "-") for name in settings.DISABLE_HOOKS_FOR_PLUGINS}
    return "kedro-mlflow" not in disabled and any(  # read from the entry points: imports nothing
        entry.dist is not None and entry.dist.name.lower().replace("_", "-") == "kedro-mlflow"
        for entry in importlib.metadata.entry_points(group="kedro.hooks"))


def describe_architecture(architecture: Any) -> str:
    """One line: ``Conv2D(filters=32, kernel_size=3) > MaxPooling2D(pool_size=2) > ...``."""
    return " > ".join(
        f"{next(iter(entry))}({', '.join(f'{k}={v}' for k, v in (next(iter(entry.values())) or {}).items())})"
        if isinstance(entry, Mapping) and len(entry) == 1 else str(entry) for entry in architecture or [])


def _param(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= MAX_PARAM_LENGTH else text[: MAX_PARAM_LENGTH - 3] + "..."


def _flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, Mapping) and value:
        for key, item in value.items():
            yield from _flatten(item, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, value


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


class MlflowVariantRunsHook:
    """One nested MLflow run per model variant under kedro-mlflow's run of the ``kedro run``."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:  # one hook object serves every session of the process
        self._parent_id: str | None = None
        self._catalog: Any = None
        self._runs: dict[str, str] = {}  # variant -> its run id
        self._pending: dict[str, set[str]] = {}  # variant -> its nodes not yet run
        self._failed: set[str] = set()

    # Before kedro-mlflow's own, which reads mlflow.yml.
    @hook_impl(tryfirst=True)
    def after_context_created(self, context: Any) -> None:
        if not kedro_mlflow_hooks_active():
            return
        from omegaconf import OmegaConf

        # mlflow.yml's SQLite path, absolute: MLflow caches stores by URI, so a relative one would
        # follow the working directory into another project's store.
        path = Path(context.project_path).resolve().as_posix()
        OmegaConf.register_new_resolver("fashion_cnn.project_path", lambda: path, replace=True)
        # Merged here: Kedro refuses two files of one environment that define the same name.
        loader = context.config_loader
        loader.config_patterns.setdefault(TRACKING_CATALOG, [f"{TRACKING_CATALOG}*"])
        loader["catalog"] = {**loader["catalog"], **loader[TRACKING_CATALOG]}
        create_sqlite_store_once(context)

    # After kedro-mlflow's own, which opens the run to nest in.
    @hook_impl(trylast=True)
    def before_pipeline_run(self, pipeline: Any, catalog: Any) -> None:
        self._reset()
        mlflow = sys.modules.get("mlflow")  # imported by kedro-mlflow's hooks when they are active
        if mlflow is None or not kedro_mlflow_hooks_active():
            return
        if (parent := mlflow.active_run()) is None:  # tracking is disabled for this pipeline
            _stop_logging(pipeline, catalog)
            return
        airflow_tags = {tag: os.environ[name] for name, tag in AIRFLOW_CONTEXT_TAGS.items() if os.environ.get(name)}
        mlflow.set_tags(airflow_tags)  # every Airflow task's run, variants or not
        self._parent_id, self._catalog = parent.info.run_id, catalog
        variants = partition_variants(catalog.load("parameters"))[0]
        self._pending = {variant: {node.name for node in pipeline.nodes if variant_of(node) == variant}
                         for variant in variants_in(pipeline.nodes) if variant in variants}
        for variant in sorted(self._pending):
            spec, description = variants[variant], variants[variant].get("description") or ""
            tags = [*spec.get("tags", []), *(["convolutional"] if is_convolutional(spec) else [])]
            with mlflow.start_run(run_name=variant, nested=True, description=description,
                                  tags={"variant": variant, "variant_tags": ",".join(tags), **airflow_tags}) as run:
                mlflow.log_params({"architecture": _param(describe_architecture(spec["architecture"])),
                                   "layers": len(spec["architecture"] or []), "description": _param(description)})
                mlflow.log_dict({"name": variant, **spec}, "variant.json")
            self._runs[variant] = run.info.run_id
        if self._runs:
            logger.info("MLflow: one run per variant under run %s: %s", self._parent_id, ", ".join(self._runs))

    # Before kedro-mlflow's own, so that the node's parameters land in the variant's run.
    @hook_impl(tryfirst=True)
    def before_node_run(self, node: Any) -> None:
        if not self._runs:
            return
        import mlflow

        wanted, active = self._runs.get(variant_of(node) or ""), mlflow.active_run()
        if active is not None and active.info.run_id == wanted:
            return
        if active is not None and active.info.run_id in self._runs.values():
            mlflow.end_run()  # its node and saves are done (this thread); the final status comes at the end
        if wanted:
            if mlflow.active_run() is None:  # a runner thread: resume the parent first, as kedro-mlflow does
                mlflow.start_run(run_id=self._parent_id)
            mlflow.start_run(run_id=wanted, nested=True)

    @hook_impl
    def after_node_run(self, node: Any, outputs: dict[str, Any]) -> None:
        """What the files cannot be in MLflow, into the variant's (active) run."""
        if (variant := variant_of(node)) not in self._runs:
            return
        import mlflow

        for name, value in outputs.items():
            output = name.removeprefix(variant + ".")
            if output == "training_settings":
                mlflow.log_params({f"training.{key}": _param(item) for key, item in _flatten(value)})
            elif output == "metrics":
                mlflow.log_metrics({key: float(item) for key, item in _flatten(value) if _is_number(item)})
                mlflow.set_tags({key: str(item).lower() for key, item in _flatten(value) if isinstance(item, bool)})
            elif output == "training_history":  # step = epoch
                steps = value["epoch"] if "epoch" in value else range(1, len(value) + 1)
                for step, (_, row) in zip(steps, value.drop(columns="epoch", errors="ignore").iterrows(), strict=True):
                    history = {f"history/{key}": float(item) for key, item in row.items() if _is_number(item)}
                    mlflow.log_metrics(history, step=int(step))
            elif output == "model":  # no kedro-mlflow dataset logs a model and keeps the local .keras file
                from fashion_cnn.model.mlflow_models import log_trained_model

                log_trained_model(variant, value)
        self._pending[variant].discard(node.name)

    @hook_impl
    def after_dataset_saved(self, dataset_name: str) -> None:
        """Log a versioned file that the tracking catalog marks ``mlflow:`` once the catalog saved it
        (kedro-mlflow's MlflowArtifactDataset cannot keep the run's save version)."""
        dataset = self._catalog.get(dataset_name) if self._catalog is not None else None
        if "mlflow" not in (metadata := getattr(dataset, "metadata", None) or {}):
            return
        import mlflow

        filepath = Path(self._catalog.config_resolver.resolve_pattern(dataset_name)["filepath"])
        saved = filepath / dataset.resolve_save_version() / filepath.name  # Kedro's layout of versions
        if saved.is_file():
            mlflow.log_artifact(str(saved), (metadata["mlflow"] or {}).get("artifact_path"))
        else:
            logger.warning("MLflow: %s is not a local file, not logged.", saved)

    @hook_impl
    def on_node_error(self, node: Any) -> None:
        if (variant := variant_of(node)) in self._runs:
            self._failed.add(variant)

    # Both before kedro-mlflow's own, which ends the parent run.
    @hook_impl(tryfirst=True)
    def after_pipeline_run(self) -> None:
        self._close_runs(failed=False)

    @hook_impl(tryfirst=True)
    def on_pipeline_error(self) -> None:
        self._close_runs(failed=True)

    def _close_runs(self, failed: bool) -> None:
        """Each variant run ends FINISHED if all its nodes ran, FAILED if one failed (or the saving of
        its outputs: its run is then the active one), else KILLED."""
        if not self._runs:
            return
        import mlflow

        while (active := mlflow.active_run()) is not None and active.info.run_id in self._runs.values():
            if failed:
                self._failed.update(variant for variant, run_id in self._runs.items() if run_id == active.info.run_id)
            mlflow.end_run()
        client = mlflow.MlflowClient()
        for variant, run_id in self._runs.items():
            client.set_terminated(run_id, "FAILED" if variant in self._failed else
                                  "KILLED" if self._pending[variant] else "FINISHED")
        self._reset()


def _stop_logging(pipeline: Any, catalog: Any) -> None:
    """Tracking is off for this run: no dataset of the tracking catalog may open a run of its own,
    nor kedro-mlflow's hook resume the run of an earlier session of this process."""
    from kedro_mlflow.framework.hooks.mlflow_hook import mlflow_hook
    from kedro_mlflow.io.catalog.switch_catalog_logging import switch_catalog_logging

    for name in pipeline.datasets():
        catalog.get(name)  # kedro-mlflow switches off the datasets made so far, not factories' yet to come
    switch_catalog_logging(catalog, False)
    # kedro-mlflow 2.0.3 never forgets the last tracked session's run id (its hook is one object per
    # process) and resumes that run before each node; it offers no other way to reset it.
    mlflow_hook.run_id = None


def create_sqlite_store_once(context: Any) -> None:
    """Create a SQLite tracking store under a file lock, before kedro-mlflow first opens it: two runs
    that start at once on a new store would both create its tables, and one would fail."""
    patterns = context.config_loader.config_patterns
    patterns.setdefault("mlflow", ["mlflow*", "mlflow*/**", "**/mlflow*"])  # kedro-mlflow's, set after this hook
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
            from mlflow import MlflowClient

            MlflowClient(tracking_uri=uri).search_experiments(max_results=1)  # creates the tables
