"""Project hooks: a quiet TensorFlow, and every variant's spec checked before anything trains."""

from __future__ import annotations

import logging
import math
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl
from kedro.io import DatasetError

from fashion_cnn import preflight
from fashion_cnn.architecture import SpecError
from fashion_cnn.model_choice import check_model_use
from fashion_cnn.variants import is_convolutional, partition_variants

logger = logging.getLogger(__name__)


# `runtime` parameters and the environment variables TensorFlow reads once, when it is imported.
RUNTIME_VARIABLES = {
    "onednn": "TF_ENABLE_ONEDNN_OPTS",
    "intra_op_threads": "TF_NUM_INTRAOP_THREADS",
    "inter_op_threads": "TF_NUM_INTEROP_THREADS",
}


def runtime_environment(runtime: Mapping[str, Any] | None) -> dict[str, str]:
    """The environment variables for the ``runtime`` parameters; :class:`SpecError` for bad values."""
    runtime = dict(runtime or {})
    unknown = sorted(set(runtime) - set(RUNTIME_VARIABLES))
    if unknown:
        raise SpecError(f"Unknown `runtime` setting(s) {unknown}; valid: {sorted(RUNTIME_VARIABLES)}.")
    environment = {}
    onednn = runtime.get("onednn")
    if onednn is not None:
        if not isinstance(onednn, bool):
            raise SpecError(f"`runtime.onednn` must be true, false or null (TensorFlow's default), got {onednn!r}.")
        environment[RUNTIME_VARIABLES["onednn"]] = "1" if onednn else "0"
    for key in ("intra_op_threads", "inter_op_threads"):
        threads = runtime.get(key)
        if threads is None:
            continue
        if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
            raise SpecError(f"`runtime.{key}` must be a positive whole number, or null for TensorFlow's "
                            f"default (one thread per core), got {threads!r}.")
        environment[RUNTIME_VARIABLES[key]] = str(threads)
    return environment


class TensorFlowRuntimeHook:
    """Environment TensorFlow reads once, at import, set before any node or dataset imports it.

    Quiet C++ INFO lines (`TF_CPP_MIN_LOG_LEVEL=1`), and oneDNN kernels and thread pools as the
    ``runtime`` parameters say; a user's own environment variables win. The CUDA-probe filter
    (:mod:`fashion_cnn.quiet`) is installed by ``settings.py``, which every Kedro command imports.
    """

    # The catalog's parameters, already loaded and merged with --params: reading
    # `context.params` earlier would load and validate them once more (about a second).
    @hook_impl(tryfirst=True)
    def after_catalog_created(self, catalog: Any, parameters: dict[str, Any]) -> None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
        wanted = runtime_environment(parameters.get("params:runtime"))
        if "tensorflow" in sys.modules:
            differs = {k: v for k, v in wanted.items() if k not in os.environ}  # else the user's value rules
            if differs:
                logger.warning("TensorFlow was imported before this Kedro session, so the `runtime` "
                               "parameters (%s) do not apply to it; restart the Python process.",
                               ", ".join(f"{k}={v}" for k, v in differs.items()))
            return
        for variable, value in wanted.items():
            os.environ.setdefault(variable, value)


class ValidateVariantsHook:
    """Every check of a run before its first node: broken variant blocks, the data parameters
    against the real data (sizes, classes), every variant's spec built once, the activation grid
    against the test set actually used, and the free disk space; so a bad setting fails in
    seconds, with all problems in one message, instead of after other variants trained."""

    # tryfirst: before plugin hooks (kedro-mlflow opens its MLflow run here), so that a bad spec
    # leaves no run open (Kedro calls no on_pipeline_error for a failing before_pipeline_run).
    @hook_impl(tryfirst=True)
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        parameters = catalog.load("parameters")
        variants, broken = partition_variants(parameters)
        check_broken_variants(broken, parameters, run_params.get("pipeline_names"))
        in_run = sorted(variant_namespaces(pipeline) & set(variants))
        data = parameters["data"]
        preflight.check_data_parameters(data)
        check_model_use(parameters, variants, pipeline, catalog, run_params["project_path"])  # predict, export
        facts = data_facts(catalog, pipeline)
        if facts is not None:
            preflight.check_class_names(data["class_names"], facts)
            used = preflight.images_used(facts, data)
        else:  # the raw files are still to be downloaded: their sizes are known once loaded
            used = {split: data.get(f"{split}_limit") for split in preflight.SPLITS}
        problems, parameter_counts, settings = [], {}, {}
        for name in in_run:
            try:
                parameter_counts[name], settings[name] = check_variant(name, variants[name], parameters, used["test"])
            except SpecError as exc:
                problems.append(str(exc))
        if problems:
            raise SpecError("Invalid model variant parameters:\n  - " + "\n  - ".join(problems))
        warnings = preflight.limit_warnings(facts, data) if facts else []
        if used["train"]:
            warnings += preflight.batch_size_warnings(used["train"], settings)
        for warning in warnings:
            logger.warning(warning)
        shortfalls = preflight.disk_shortfalls(planned_writes(catalog, pipeline, parameter_counts, used, data))
        if shortfalls:
            raise preflight.NotEnoughDiskError("\n".join(shortfalls))
        if in_run:
            logger.info("Checked the specs of %d variant(s): %s", len(in_run), ", ".join(in_run))


def variant_namespaces(pipeline: Any) -> set[str]:
    return {n.namespace.split(".")[0] for n in pipeline.nodes if n.namespace}


def check_broken_variants(broken: dict[str, str], parameters: dict[str, Any], pipeline_names: list[str] | None) -> None:
    """Fail a run whose pipelines would hold a variant block that cannot become a pipeline."""
    names = set(pipeline_names or ["__default__"])
    hit = [
        problem
        for variant, problem in broken.items()
        if names & {variant, "__default__", "compare"}
        or ("exercises" in names and "exercise" in _tags(parameters.get(variant)))
    ]
    if hit:
        raise SpecError(
            "This run's pipelines include broken model variant blocks (conf/base/parameters*.yml):\n  - "
            + "\n  - ".join(hit)
            + "\nFix or remove them; pipelines without them still run (`kedro registry list`)."
        )


def _tags(block: Any) -> list[Any]:
    tags = block.get("tags") if isinstance(block, dict) else None
    return tags if isinstance(tags, list) else []


def data_facts(catalog: Any, pipeline: Any) -> preflight.DataFacts | None:
    """Sizes and classes of the data the run reads: the raw files, else the saved model inputs."""
    inputs = pipeline.inputs()
    raw = catalog.get("fashion_mnist") if "fashion_mnist" in inputs else None
    if raw is not None and hasattr(raw, "label_arrays"):
        found = raw.label_arrays()
        if found is None:
            return None
        folder, labels = found
        return preflight.DataFacts.from_labels(f"the Fashion-MNIST files in {folder}", labels, subset_applied=False)
    saved = catalog.get("model_inputs") if "model_inputs" in inputs else None
    if saved is not None and hasattr(saved, "label_arrays"):
        try:
            labels = saved.label_arrays()
        except (FileNotFoundError, DatasetError) as exc:
            if saved.exists():
                raise
            raise DatasetError(
                f"No model inputs at {getattr(saved, '_filepath', 'model_inputs')}: this run starts from them. "
                "Write them first with `kedro run --namespaces data_processing` (or run a pipeline that "
                "includes the data processing, such as `kedro run --pipelines cnn`)."
            ) from exc
        return preflight.DataFacts.from_labels(str(getattr(saved, "_filepath", "model_inputs")), labels,
                                               subset_applied=True)
    return None


def planned_writes(catalog: Any, pipeline: Any, parameter_counts: dict[str, int], used: dict[str, Any],
                   data: dict[str, Any]) -> list[tuple[Path, int]]:
    """Where the run saves files on local disks, and about how many bytes each."""
    planned = []
    images = {split: count for split, count in used.items() if count}
    pixel_bytes = 8 if data.get("pixel_dtype") == "float64" else 4
    pixels = math.prod(data.get("input_shape") or [28, 28, 1])
    for name in sorted(pipeline.all_outputs()):
        dataset = catalog.get(name)
        filepath = getattr(dataset, "_filepath", None)
        if filepath is None or getattr(dataset, "_protocol", "file") not in ("file", "local"):
            continue
        variant, _, local = name.partition(".")
        kind = "model" if local == "model" else name
        size = preflight.planned_bytes(Path(str(filepath)), kind, parameter_counts.get(variant, 0), images,
                                       pixel_bytes, pixels)
        planned.append((Path(str(filepath)), size))
    return planned


def check_variant(name: str, spec: dict[str, Any], parameters: dict[str, Any],
                  test_images: int | None = None) -> tuple[int, dict[str, Any]]:
    """Raise :class:`SpecError` unless the variant builds, compiles and gets its callbacks, and its
    activation grid fits ``test_images``; return its parameter count and training settings."""
    from fashion_cnn.pipelines.variants.figures import check_activation_settings
    from fashion_cnn.pipelines.variants.nodes import compiled_model
    from fashion_cnn.training import make_callbacks, merge_training_settings

    settings = merge_training_settings(name, parameters["training_defaults"], spec["training"])
    data = parameters["data"]
    model = compiled_model(name, spec["architecture"], settings, data)
    try:
        make_callbacks(settings)
    except (TypeError, ValueError) as exc:
        raise SpecError(f"Variant '{name}': bad callback settings in `{name}.training`: {exc}") from exc
    if is_convolutional(spec):
        try:
            check_activation_settings(model, parameters["activation_grid"], test_images)
        except ValueError as exc:
            raise SpecError(f"Variant '{name}': {exc}") from exc
    return int(model.count_params()), settings
