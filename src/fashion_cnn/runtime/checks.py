"""Every check of a run before its first node (a hook that uses the model layer and preflight)."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl
from kedro.io import DatasetError

from fashion_cnn import preflight
from fashion_cnn.datasets.whole_files import LOCAL_PROTOCOLS
from fashion_cnn.model.architecture import SpecError
from fashion_cnn.model.choice import check_model_use
from fashion_cnn.variants import is_convolutional, partition_variants, variant_of

logger = logging.getLogger(__name__)


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
        precision = catalog.load("params:runtime.precision") if "params:runtime.precision" in catalog else "float32"
        if precision == "mixed_bfloat16" and not preflight.cpu_has_bf16():
            import tensorflow as tf

            preflight.check_precision(precision, False, len(tf.config.list_physical_devices("GPU")))
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
                parameter_counts[name], settings[name] = check_variant(name, variants[name], parameters, used["test"],
                                                                       precision)
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
    return {variant for node in pipeline.nodes if (variant := variant_of(node))}


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
        if filepath is None or getattr(dataset, "_protocol", "file") not in LOCAL_PROTOCOLS:
            continue
        variant, _, local = name.partition(".")
        kind = "model" if local == "model" else name
        size = preflight.planned_bytes(kind, parameter_counts.get(variant, 0), images, pixel_bytes, pixels)
        planned.append((Path(str(filepath)), size))
    return planned


def check_variant(name: str, spec: dict[str, Any], parameters: dict[str, Any],
                  test_images: int | None = None, precision: str = "float32") -> tuple[int, dict[str, Any]]:
    """Raise :class:`SpecError` unless the variant builds, compiles and gets its callbacks, and its
    activation grid fits ``test_images``; return its parameter count and training settings."""
    from fashion_cnn.model.activations import check_activation_settings
    from fashion_cnn.model.training import compiled_model, make_callbacks, merge_training_settings

    settings = merge_training_settings(name, parameters["training_defaults"], spec["training"], precision)
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
