"""Every check of a run before its first node (:func:`check_run`), so that a bad setting fails in seconds, with
every problem of the variants in one message: the parameters (:mod:`fashion_cnn.parameters`), what they mean for
this run's data (the labels' sizes and classes, from the raw files' or the saved model inputs' headers), every
variant's spec built once, the trained models a run uses, and the folders and disks it writes to."""

from __future__ import annotations

import logging
import math
import os
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from kedro.io import DatasetError

from fashion_cnn import parameters as checked
from fashion_cnn.datasets.whole_files import LOCAL_PROTOCOLS, existing_ancestor, unwritable_folders
from fashion_cnn.model.architecture import SpecError
from fashion_cnn.model.choice import check_model_use
from fashion_cnn.tuning import check_tuning
from fashion_cnn.variants import is_convolutional, variant_of, variants_in

logger = logging.getLogger(__name__)

# Keras's .keras file holds the weights and Adam's two moment estimates per weight, plus a little.
MODEL_FILE_BYTES_PER_PARAMETER = 3 * 4
MODEL_FILE_OVERHEAD = 200_000
OTHER_FILE_BYTES = 400_000  # a figure (about 60 kB), the test predictions (35 bytes an image), a JSON file
DISK_MARGIN = 1.25


class NotEnoughDiskError(RuntimeError):
    """The run would fill a disk it writes to, or cannot write to a folder at all."""


def check_run(run_params: Mapping[str, Any], pipeline: Any, catalog: Any) -> None:
    """Raise for anything that would stop this run after its first node; log what is only odd."""
    parameters = catalog.load("parameters")
    variants, broken = checked.partition_variants(parameters)
    checked.check_broken_variants(broken, parameters, run_params.get("pipeline_names"))
    data = parameters["data"]
    checked.check_data_parameters(data)
    if "params:novelty.test_share" in pipeline.inputs():
        checked.check_novelty(parameters.get("novelty"))
    precision = catalog.load("params:runtime.precision") if "params:runtime.precision" in catalog else "float32"
    if precision == "mixed_bfloat16" and not checked.cpu_has_bf16():
        import tensorflow as tf

        checked.check_precision(precision, False, len(tf.config.list_physical_devices("GPU")))
    check_model_use(parameters, variants, pipeline, catalog, run_params["project_path"])  # predict, export
    facts = data_facts(catalog, pipeline)
    if facts is not None:
        checked.check_class_names(data["class_names"], facts)
        used = facts.images_used(data)
    else:  # the raw files are still to be downloaded: their sizes are known once loaded
        used = {split: data.get(f"{split}_limit") for split in checked.SPLITS}
    in_run = [name for name in variants_in(pipeline.nodes) if name in variants]
    problems, parameter_counts, settings = [], {}, {}
    for name in in_run:
        try:
            parameter_counts[name], settings[name] = checked.check_variant(name, variants[name], parameters,
                                                                           used["test"], precision)
        except SpecError as exc:
            problems.append(str(exc))
    if problems:
        raise SpecError("Invalid model variant parameters:\n  - " + "\n  - ".join(problems))
    if "tune_storage" in pipeline.inputs():  # the tune pipeline: its search space, before the first trial
        check_tuning(parameters, used["test"], precision, catalog.load("tune_storage"))
    for warning in [*(checked.limit_warnings(facts, data) if facts else []),
                    *checked.batch_size_warnings(used["train"], settings)]:
        logger.warning(warning)
    writes = planned_writes(catalog, pipeline, parameter_counts, used, data)
    problems = unwritable_folders(folder for folder, _ in writes) or disk_shortfalls(writes)
    if problems:
        raise NotEnoughDiskError("\n".join(problems))
    if in_run:
        logger.info("Checked the specs of %d variant(s): %s", len(in_run), ", ".join(in_run))
    flat = [name for name in in_run if not is_convolutional(variants[name])]
    if flat:  # their pipelines have no such nodes, which therefore cannot say so themselves
        logger.info("No convolution in %s: no activation grid, kernels or Grad-CAM.", ", ".join(flat))


def data_facts(catalog: Any, pipeline: Any) -> checked.DataFacts | None:
    """Sizes and classes of the data the run reads: the raw files, else the saved model inputs."""
    inputs = pipeline.inputs()
    raw = catalog.get("fashion_mnist") if "fashion_mnist" in inputs else None
    if hasattr(raw, "label_arrays"):
        found = raw.label_arrays()  # None: still to be downloaded
        return None if found is None else checked.DataFacts.from_labels(f"the Fashion-MNIST files in {found[0]}",
                                                                        found[1], subset_applied=False)
    saved = catalog.get("model_inputs") if "model_inputs" in inputs else None
    if not hasattr(saved, "label_arrays"):
        return None
    path = str(getattr(saved, "_filepath", "model_inputs"))
    try:
        labels = saved.label_arrays()
    except (FileNotFoundError, DatasetError) as exc:
        if saved.exists():
            raise
        raise DatasetError(f"No model inputs at {path}: this run starts from them. Write them first with `kedro run "
                           "--namespaces data_processing` (or run a pipeline that includes the data processing, such "
                           "as `kedro run --pipelines cnn`).") from exc
    return checked.DataFacts.from_labels(path, labels, subset_applied=True)


def planned_writes(catalog: Any, pipeline: Any, parameter_counts: Mapping[str, int], used: Mapping[str, Any],
                   data: Mapping[str, Any]) -> list[tuple[Path, int]]:
    """The folders on local disks that the run saves into, and about how many bytes each save writes."""
    planned = []
    image_bytes = (8 if data.get("pixel_dtype") == "float64" else 4) * math.prod(data.get("input_shape") or [28, 28, 1])
    for name in sorted(pipeline.all_outputs()):
        dataset = catalog.get(name)
        # A file dataset's path, or a partitioned dataset's folder (the export's SavedModels).
        path = getattr(dataset, "_filepath", None) or getattr(dataset, "_path", None)
        if path is None or getattr(dataset, "_protocol", "file") not in LOCAL_PROTOCOLS:
            continue
        # A versioned file and a partitioned dataset are folders of their own; another file goes beside others.
        folder = Path(str(path)) if getattr(dataset, "_version", None) or hasattr(dataset, "_path") \
            else Path(str(path)).parent
        variant = variant_of(name)
        if variant and name == f"{variant}.model":
            size = parameter_counts.get(variant, 0) * MODEL_FILE_BYTES_PER_PARAMETER + MODEL_FILE_OVERHEAD
        elif name == "model_inputs" and any(used.values()):
            size = sum(count * (image_bytes + 1) for count in used.values() if count)  # the images and a label byte
        else:
            size = OTHER_FILE_BYTES
        planned.append((folder, size))
    return planned


def disk_shortfalls(planned: Iterable[tuple[Path, int]]) -> list[str]:
    """For each disk the run writes to, a message when its free space is below what is planned."""
    per_disk: dict[int, list[Any]] = {}
    for path, size in planned:
        existing = existing_ancestor(path.absolute())
        per_disk.setdefault(os.stat(existing).st_dev, [existing, 0])[1] += size
    return [f"This run writes about {size / 1e6:.0f} MB to the disk of {folder}, which has {free / 1e6:.0f} MB free. "
            "Free some space there (older versions under data/06_models/ and data/08_reporting/ can go) and run "
            "again; nothing has been trained or written."
            for folder, size in per_disk.values() if size * DISK_MARGIN > (free := shutil.disk_usage(folder).free)]
