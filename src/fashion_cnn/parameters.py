"""Every check of the parameters (``conf/*/parameters*.yml`` and ``--params``), in one place: their values,
then what they mean for the data the run reads and for each variant's model (built once).

Each check raises :class:`SpecError` naming the parameter and what to do. The run's checks
(:func:`fashion_cnn.runtime.checks.check_run`) call them all before the first node; the data nodes, which
also run outside a Kedro session (in notebooks), call theirs again.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import numpy as np

from fashion_cnn.model.architecture import SpecError

VARIANT_KEYS = {"architecture", "description", "tags", "training"}
PIXEL_DTYPES = ("float32", "float64")
PRECISIONS = ("float32", "mixed_bfloat16", "auto")
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo: AVX-512 bf16 or AMX units
THRESHOLD_MODES = ("below", "above")
SPLITS = ("train", "test")
# `runtime` parameters and the environment variables TensorFlow reads once, when it is imported.
RUNTIME_VARIABLES = {"onednn": "TF_ENABLE_ONEDNN_OPTS", "intra_op_threads": "TF_NUM_INTRAOP_THREADS",
                     "inter_op_threads": "TF_NUM_INTEROP_THREADS"}


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _positive_whole(value: Any) -> bool:
    return _whole(value) and value > 0


def _require(ok: Any, parameter: str, wanted: str, value: Any) -> None:
    if not ok:
        raise SpecError(f"Parameter `{parameter}` must be {wanted}, got {value!r}.")


# ---- model variants: the top-level blocks with an `architecture`


def partition_variants(parameters: Mapping[str, Any]) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """The variant blocks in ``parameters`` (file order), and ``{name: problem}`` for those that cannot become a
    pipeline; one broken block must not take the others' pipelines down."""
    variants, broken = {}, {}
    for name, block in parameters.items():
        if isinstance(block, Mapping) and "architecture" in block:
            if problem := variant_block_problem(name, block):
                broken[name] = problem
            else:
                variants[name] = dict(block)
    return variants, broken


def variant_block_problem(name: str, block: Mapping[str, Any]) -> str | None:
    unknown = sorted(set(block) - VARIANT_KEYS)
    problems = [  # the first that applies
        (unknown, f"unknown key(s) {unknown}; a variant block may hold {sorted(VARIANT_KEYS)}."),
        ("training" not in block, "no `training:` block; write `training: {}` to use `training_defaults` as they are."),
        ("." in name, "a variant name may not contain '.', it is a namespace."),
        (not isinstance(block.get("tags", []), list), f"`tags` must be a list, got {block.get('tags')!r}."),
    ]
    return next((f"Variant '{name}': {problem}" for applies, problem in problems if applies), None)


def check_broken_variants(broken: Mapping[str, str], parameters: Mapping[str, Any],
                          pipeline_names: list[str] | None) -> None:
    """Fail a run whose pipelines would hold a variant block that cannot become a pipeline."""
    names = set(pipeline_names or ["__default__"])
    tags = {variant: parameters[variant].get("tags") for variant in broken}
    hit = "".join(f"\n  - {problem}" for variant, problem in broken.items()
                  if names & {variant, "__default__", "compare"}
                  or ("exercises" in names and isinstance(tags[variant], list) and "exercise" in tags[variant]))
    if hit:
        raise SpecError(f"This run's pipelines include broken model variant blocks (conf/base/parameters*.yml):{hit}"
                        "\nFix or remove them; pipelines without them still run (`kedro registry list`).")


# ---- training settings: `training_defaults` and each variant's `training:`


def merge_training_settings(variant: str, defaults: Mapping[str, Any], overrides: Mapping[str, Any] | None,
                            precision: str = "float32") -> dict[str, Any]:
    """``defaults`` updated with ``overrides``, every value checked, and the run's numeric
    ``precision`` (``runtime.precision`` as resolved for the machine)."""
    settings = {**defaults, **dict(overrides or {})}
    unknown = sorted(set(settings) - set(defaults))
    if unknown:
        raise SpecError(f"Variant '{variant}': unknown training setting(s) {unknown} in `{variant}.training`. "
                        f"Valid settings (see `training_defaults`): {sorted(defaults)}.")
    check_training_settings(variant, settings)
    return {**settings, "precision": precision}


def check_training_settings(variant: str, settings: Mapping[str, Any]) -> None:
    """Values Keras would reject, or reject late."""

    def require(ok: Any, key: str, problem: str) -> None:
        if not ok:
            raise SpecError(f"Variant '{variant}': `{variant}.training.{key}` {problem}, got {settings.get(key)!r}.")

    for key in ("epochs", "batch_size", "steps_per_execution"):
        require(_positive_whole(settings.get(key)), key, "must be a positive whole number")
    require(_whole(settings.get("seed")), "seed", "must be a whole number")
    split, rate = settings.get("validation_split"), settings.get("learning_rate")
    require(isinstance(split, int | float) and not isinstance(split, bool) and 0 <= split < 1, "validation_split",
            "must be a fraction in [0, 1)")
    require(rate is None or (isinstance(rate, int | float) and not isinstance(rate, bool) and rate > 0),
            "learning_rate", "must be a positive number, or null for the optimizer's default")
    require(settings.get("learning_rate_decay") in (None, "cosine"), "learning_rate_decay",
            "must be null (constant rate) or cosine")
    require(settings.get("verbose") in (0, 1, 2, "auto"), "verbose",
            "must be 0 (silent), 1 (progress bar), 2 (one line per epoch) or auto")
    stop, early = settings.get("stop_at_threshold"), settings.get("early_stopping")
    require(stop is None or (isinstance(stop, Mapping) and set(stop) == {"monitor", "threshold", "mode"}),
            "stop_at_threshold", "must be null or {monitor: loss, threshold: 0.4, mode: below}")
    require(stop is None or (stop["mode"] in THRESHOLD_MODES and isinstance(stop["threshold"], int | float)),
            "stop_at_threshold", f"needs a numeric threshold and a mode in {THRESHOLD_MODES}")
    require(early is None or isinstance(early, Mapping), "early_stopping",
            "must be null or keyword arguments of keras.callbacks.EarlyStopping")
    monitors = [early.get("monitor", "val_loss")] if early else []
    monitors += [stop["monitor"]] if stop else []
    for monitor in monitors:
        require(split or not str(monitor).startswith("val_"), "validation_split",
                f"must be above 0 to monitor '{monitor}'")


# ---- data


def check_limit(name: str, limit: Any) -> None:
    _require(limit is None or _positive_whole(limit), f"data.{name}", "a positive whole number or null (all)", limit)


def check_pixel_dtype(dtype: Any) -> None:
    _require(dtype in PIXEL_DTYPES, "data.pixel_dtype", f"one of {list(PIXEL_DTYPES)}", dtype)


def check_data_parameters(data: Mapping[str, Any]) -> None:
    check_limit("train_limit", data.get("train_limit"))
    check_limit("test_limit", data.get("test_limit"))
    check_pixel_dtype(data.get("pixel_dtype", "float32"))
    names = data.get("class_names")
    _require(isinstance(names, list) and names and all(isinstance(n, str) and n for n in names), "data.class_names",
             "a list of class names", names)


# ---- runtime: TensorFlow's process settings and the numeric precision


def runtime_environment(runtime: Mapping[str, Any] | None) -> dict[str, str]:
    """The environment variables for the ``runtime`` parameters, after checking them all."""
    runtime = dict(runtime or {})
    known = {*RUNTIME_VARIABLES, "precision"}
    unknown = sorted(set(runtime) - known)
    if unknown:
        raise SpecError(f"Unknown `runtime` setting(s) {unknown}; valid: {sorted(known)}.")
    precision = runtime.get("precision", "float32")
    _require(precision in PRECISIONS, "runtime.precision", f"one of {list(PRECISIONS)}", precision)
    onednn = runtime.get("onednn")
    _require(onednn is None or isinstance(onednn, bool), "runtime.onednn", "true, false or null (TensorFlow's default)",
             onednn)
    for key in ("intra_op_threads", "inter_op_threads"):
        _require(runtime.get(key) is None or _positive_whole(runtime[key]), f"runtime.{key}",
                 "a positive whole number, or null for TensorFlow's default (one thread per core)", runtime.get(key))
    # int(): onednn true/false becomes 1/0.
    return {variable: str(int(runtime[key]))
            for key, variable in RUNTIME_VARIABLES.items() if runtime.get(key) is not None}


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
    if precision == "mixed_bfloat16" and not bf16 and not gpus:
        raise SpecError("`runtime.precision: mixed_bfloat16` needs a CPU with bfloat16 units (AVX-512 BF16 or AMX; "
                        f"none of {list(BF16_CPU_FLAGS)} in /proc/cpuinfo) or a GPU; without them bf16 is emulated "
                        "and slower. Use `float32`, or `auto` to get bf16 only where the CPU has it.")


# ---- reporting: blocks that their nodes take as these types, so Kedro's typed parameter validation builds them
# from the YAML before the run starts (a node gets one, not a dict); what depends on a model (a layer name, a
# filter index below its channels) is checked with each variant's spec.


class _Settings:
    @classmethod
    def of(cls, settings: Self | Mapping[str, Any]) -> Self:
        """``settings`` as checked by Kedro, or a plain mapping of them (a notebook, a test)."""
        return settings if isinstance(settings, cls) else cls(**settings)


@dataclass(frozen=True)
class ActivationGrid(_Settings):
    """``activation_grid`` (conf/base/parameters_reporting.yml): the notebook's activation cell."""

    image_indices: list[int]
    filter_index: int
    layers: int | list[int | str]
    cmap: str = "inferno"

    def __post_init__(self) -> None:
        indices, layers = self.image_indices, self.layers
        _require(isinstance(indices, list) and indices and all(map(_whole, indices)), "activation_grid.image_indices",
                 "a list of test-image indices, such as [0, 23, 28]", indices)
        _require(_whole(self.filter_index) and self.filter_index >= 0, "activation_grid.filter_index",
                 "the index of a channel (0, 1, ...)", self.filter_index)
        listed = isinstance(layers, list) and layers and all(_whole(key) or (isinstance(key, str) and key)
                                                             for key in layers)
        _require(_positive_whole(layers) or listed, "activation_grid.layers",
                 "a number of feature-map layers (4 shows the first four), or a list of layer names or indices", layers)
        _require(isinstance(self.cmap, str) and self.cmap, "activation_grid.cmap",
                 "the name of a matplotlib colour map, such as inferno", self.cmap)


@dataclass(frozen=True)
class Interpretation(_Settings):
    """``interpretation`` (conf/base/parameters_reporting.yml): the top-loss figure and Grad-CAM."""

    top_losses: int = 16
    grad_cam_layer: str | None = None

    def __post_init__(self) -> None:
        _require(_positive_whole(self.top_losses), "interpretation.top_losses", "a positive whole number",
                 self.top_losses)
        layer = self.grad_cam_layer
        _require(layer is None or (isinstance(layer, str) and layer), "interpretation.grad_cam_layer",
                 "a layer name such as conv2d_3, or null for the last convolution", layer)


# ---- predict and export


def settings_block(parameters: Mapping[str, Any], block: str) -> Mapping[str, Any]:
    settings = parameters.get(block)
    _require(isinstance(settings, Mapping), block, "a block of settings (conf/base/parameters_predict.yml)", settings)
    return settings


def check_model_choice(variant: Any, version: Any, block: str) -> None:
    """The types of ``<block>.variant`` and ``<block>.model_version``; :func:`.choice.choose_model` checks values."""
    _require(isinstance(variant, str) and variant, f"{block}.variant", "the name of a model variant", variant)
    _require(version is None or isinstance(version, str), f"{block}.model_version",
             "a version folder name such as 2026-11-28T10.15.02.123Z, or null for the newest", version)


def check_predict_settings(settings: Mapping[str, Any], classes: int) -> None:
    top_k = settings.get("top_k")
    _require(_whole(top_k) and 1 <= top_k <= classes, "predict.top_k",
             f"a whole number from 1 to {classes} (the number of classes)", top_k)
    sheet = settings.get("contact_sheet")
    _require(isinstance(sheet, Mapping), "predict.contact_sheet", "a block with `max_images` and `columns`", sheet)
    for key in ("max_images", "columns"):
        _require(_positive_whole(sheet.get(key)), f"predict.contact_sheet.{key}", "a positive whole number",
                 sheet.get(key))


def check_novelty(settings: Any) -> None:
    share = settings.get("test_share") if isinstance(settings, Mapping) else None
    _require(isinstance(share, int | float) and not isinstance(share, bool) and 0 < share < 1, "novelty.test_share",
             "a fraction between 0 and 1 (the share of test images that `predict` would flag as unlike the "
             "training images, e.g. 0.05)", share)


# ---- against the data and the models: the run's checks call these with what they found


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

    def images_used(self, data: Mapping[str, Any]) -> dict[str, int]:
        limits = {} if self.subset_applied else data
        return {split: min(self.images[split], limits.get(f"{split}_limit") or math.inf) for split in SPLITS}


def check_class_names(class_names: list[str], facts: DataFacts) -> None:
    """The names must match the classes in the labels; the model's output size follows from them."""
    count = len(class_names)
    # A subset in saved model inputs can lack the last classes; the raw files have them all.
    if count < facts.classes or (count > facts.classes and not facts.subset_applied):
        raise SpecError(f"`data.class_names` lists {count} names, but the labels in {facts.source} run "
                        f"0..{facts.classes - 1} ({facts.classes} classes). List one name per class, in label order, "
                        f"in `data.class_names` (conf/base/parameters.yml); every model's last layer then gets "
                        f"{facts.classes} units by itself.")


def limit_warnings(facts: DataFacts, data: Mapping[str, Any]) -> list[str]:
    return [f"`data.{split}_limit` is {data[f'{split}_limit']}, more than the {facts.images[split]} {split} images in "
            f"{facts.source}: all {facts.images[split]} are used."
            for split in SPLITS
            if not facts.subset_applied and data.get(f"{split}_limit") and data[f"{split}_limit"] > facts.images[split]]


def batch_size_warnings(training_images: int | None, settings: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """One warning for the variants whose batch is larger than their training set."""
    large = []
    for variant, values in settings.items() if training_images else ():
        fitted = training_images - round(training_images * values["validation_split"])
        if values["batch_size"] > fitted:
            large.append(f"{variant} ({values['batch_size']} > {fitted})")
    if not large:
        return []
    return [f"Batch size larger than the training images for {', '.join(large)}: each epoch is a single step over "
            "all of them. Lower `training_defaults.batch_size` (or the variant's) or raise `data.train_limit`."]


def check_variant(name: str, spec: Mapping[str, Any], parameters: Mapping[str, Any],
                  test_images: int | None = None, precision: str = "float32") -> tuple[int, dict[str, Any]]:
    """Raise :class:`SpecError` unless the variant builds, compiles and gets its callbacks, its activation grid fits
    ``test_images`` and its Grad-CAM layer exists; return its parameter count and training settings."""
    from fashion_cnn.model.architecture import compiled_model, make_callbacks
    from fashion_cnn.model.gradcam import check_activation_settings, grad_cam_layer
    from fashion_cnn.variants import is_convolutional

    settings = merge_training_settings(name, parameters["training_defaults"], spec["training"], precision)
    model = compiled_model(name, spec["architecture"], settings, parameters["data"])
    try:
        make_callbacks(settings)
    except (TypeError, ValueError) as exc:
        raise SpecError(f"Variant '{name}': bad callback settings in `{name}.training`: {exc}") from exc
    if is_convolutional(spec):
        try:
            check_activation_settings(model, ActivationGrid.of(parameters["activation_grid"]), test_images)
            grad_cam_layer(model, Interpretation.of(parameters["interpretation"]).grad_cam_layer)
        except ValueError as exc:
            raise SpecError(f"Variant '{name}': {exc}") from exc
    return int(model.count_params()), settings
