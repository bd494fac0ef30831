"""Checks of a run's parameters against the real data and disk, before anything heavy runs.

The data's sizes and label range come from the raw files' labels (kilobytes) or the saved model
inputs' labels, so ``data.test_limit: null`` is checked against the 10,000 test images it means,
and ``data.class_names`` against the classes the labels really have. Everything here raises
:class:`SpecError` naming the parameter, or returns warnings; the disk check names the folder.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fashion_cnn.model.architecture import SpecError

PIXEL_DTYPES = ("float32", "float64")
PRECISIONS = ("float32", "mixed_bfloat16", "auto")
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo: AVX-512 bf16 or AMX units
SPLITS = ("train", "test")
# Keras's .keras file holds the weights and Adam's two moment estimates per weight, plus a little.
MODEL_FILE_BYTES_PER_PARAMETER = 3 * 4
MODEL_FILE_OVERHEAD = 200_000
OTHER_FILE_BYTES = 400_000  # a figure (about 60 kB), the test predictions (35 bytes an image), a JSON file
DISK_MARGIN = 1.25


class NotEnoughDiskError(RuntimeError):
    """The run would fill a disk it writes to."""


@dataclass(frozen=True)
class DataFacts:
    """What a run's data holds: images per split, and how many classes its labels span."""

    source: str
    images: Mapping[str, int]
    classes: int
    subset_applied: bool  # model inputs already hold the subset; the raw files do not

    @classmethod
    def from_labels(cls, source: str, labels: Mapping[str, np.ndarray], subset_applied: bool) -> DataFacts:
        top = max((int(labels[split].max()) for split in SPLITS if len(labels[split])), default=-1)
        return cls(source, {split: len(labels[split]) for split in SPLITS}, top + 1, subset_applied)


def check_limit(name: str, limit: Any) -> None:
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        raise SpecError(f"Parameter `data.{name}` must be a positive whole number or null (all), got {limit!r}.")


def check_pixel_dtype(dtype: Any) -> None:
    if dtype not in PIXEL_DTYPES:
        raise SpecError(f"Parameter `data.pixel_dtype` must be one of {list(PIXEL_DTYPES)}, got {dtype!r}.")


def cpu_has_bf16(cpuinfo: str | None = None) -> bool:
    """Whether this CPU has bfloat16 units (``/proc/cpuinfo``'s flags; False where it cannot tell)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
    flags = next((line.split(":", 1)[1].split() for line in cpuinfo.splitlines() if line.startswith("flags")), [])
    return any(flag in flags for flag in BF16_CPU_FLAGS)


def resolve_precision(requested: str, bf16: bool) -> str:
    """``auto``: mixed_bfloat16 on a CPU with bf16 units, else float32."""
    if requested == "auto":
        return "mixed_bfloat16" if bf16 else "float32"
    return requested


def check_precision(precision: str, bf16: bool, gpus: int) -> None:
    """bfloat16 maths only where there are units for it (the name itself is checked with the other
    ``runtime`` settings, when the catalog is created)."""
    if precision == "mixed_bfloat16" and not bf16 and not gpus:
        raise SpecError(
            "`runtime.precision: mixed_bfloat16` needs a CPU with bfloat16 units (AVX-512 BF16 or AMX; "
            f"none of {list(BF16_CPU_FLAGS)} in /proc/cpuinfo) or a GPU; without them bf16 is emulated and slower. "
            "Use `float32`, or `auto` to get bf16 only where the CPU has it."
        )


def check_data_parameters(data: Mapping[str, Any]) -> None:
    check_limit("train_limit", data.get("train_limit"))
    check_limit("test_limit", data.get("test_limit"))
    check_pixel_dtype(data.get("pixel_dtype", "float32"))
    names = data.get("class_names")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
        raise SpecError(f"Parameter `data.class_names` must be a list of class names, got {names!r}.")


def check_class_names(class_names: list[str], facts: DataFacts) -> None:
    """The names must match the classes in the labels; the model's output size follows from them."""
    count = len(class_names)
    too_few = count < facts.classes
    # A subset in saved model inputs can lack the last classes; the raw files have them all.
    too_many = count > facts.classes and not facts.subset_applied
    if too_few or too_many:
        raise SpecError(
            f"`data.class_names` lists {count} names, but the labels in {facts.source} run 0..{facts.classes - 1} "
            f"({facts.classes} classes). List one name per class, in label order, in `data.class_names` "
            f"(conf/base/parameters.yml); every model's last layer then gets {facts.classes} units by itself."
        )


def images_used(facts: DataFacts, data: Mapping[str, Any]) -> dict[str, int]:
    """Images per split the run trains and evaluates on."""
    if facts.subset_applied:
        return dict(facts.images)
    return {split: min(facts.images[split], data.get(f"{split}_limit") or math.inf) for split in SPLITS}


def limit_warnings(facts: DataFacts, data: Mapping[str, Any]) -> list[str]:
    if facts.subset_applied:
        return []
    return [
        f"`data.{split}_limit` is {data[f'{split}_limit']}, more than the {facts.images[split]} {split} images in "
        f"{facts.source}: all {facts.images[split]} are used."
        for split in SPLITS
        if data.get(f"{split}_limit") and data[f"{split}_limit"] > facts.images[split]
    ]


def batch_size_warnings(training_images: int, settings: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """One warning for the variants whose batch is larger than their training set."""
    large = {}
    for variant, values in settings.items():
        fitted = training_images - round(training_images * values["validation_split"])
        if values["batch_size"] > fitted:
            large[variant] = (values["batch_size"], fitted)
    if not large:
        return []
    listed = ", ".join(f"{name} ({batch} > {fitted})" for name, (batch, fitted) in large.items())
    return [f"Batch size larger than the training images for {listed}: each epoch is a single step over all "
            f"of them. Lower `training_defaults.batch_size` (or the variant's) or raise `data.train_limit`."]


def planned_bytes(kind: str, parameters: int = 0, images: Mapping[str, int] | None = None,
                  pixel_bytes: int = 4, pixels: int = 784) -> int:
    """About how many bytes a save of ``kind`` (``model``, ``model_inputs``, other) writes."""
    if kind == "model":
        return parameters * MODEL_FILE_BYTES_PER_PARAMETER + MODEL_FILE_OVERHEAD
    if kind == "model_inputs" and images:
        return sum(count * (pixels * pixel_bytes + 1) for count in images.values())
    return OTHER_FILE_BYTES


def disk_shortfalls(planned: Iterable[tuple[Path, int]]) -> list[str]:
    """For each disk the run writes to, a message when its free space is below what is planned."""
    per_disk: dict[int, list[Any]] = {}
    for path, size in planned:
        existing = _existing_ancestor(path)
        entry = per_disk.setdefault(os.stat(existing).st_dev, [existing, 0])
        entry[1] += size
    problems = []
    for folder, size in per_disk.values():
        free = shutil.disk_usage(folder).free
        if size * DISK_MARGIN > free:
            problems.append(
                f"This run writes about {size / 1e6:.0f} MB to the disk of {folder}, which has {free / 1e6:.0f} MB "
                f"free. Free some space there (older versions under data/06_models/ and data/08_reporting/ can go) "
                f"and run again; nothing has been trained or written."
            )
    return problems


def _existing_ancestor(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path
