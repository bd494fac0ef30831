"""Every check of the parameters (``conf/*/parameters*.yml`` and ``--params``), in one place: their
values, then what they mean for the data the run reads and for each variant's model (built once).

Each check raises :class:`SpecError` naming the parameter and what to do. The run's checks
(:func:`fashion_cnn.runtime.checks.check_run`) call them all before the first node; the few nodes
that can also run outside a Kedro session (the data nodes, in notebooks) call theirs again.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fashion_cnn.model.architecture import SpecError

VARIANT_KEYS = {"architecture", "description", "tags", "training"}
PIXEL_DTYPES = ("float32", "float64")
PRECISIONS = ("float32", "mixed_bfloat16", "auto")
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo: AVX-512 bf16 or AMX units
THRESHOLD_MODES = ("below", "above")
SPLITS = ("train", "test")
# `runtime` parameters and the environment variables TensorFlow reads once, when it is imported.
RUNTIME_VARIABLES = {
    "onednn": "TF_ENABLE_ONEDNN_OPTS",
    "intra_op_threads": "TF_NUM_INTRAOP_THREADS",
    "inter_op_threads": "TF_NUM_INTEROP_THREADS",
}


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _positive_whole(value: Any) -> bool:
    return _whole(value) and value > 0


# ---- model variants: the top-level blocks with an `architecture`


def partition_variants(parameters: Mapping[str, Any]) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """The variant blocks in ``parameters`` (file order), and ``{name: problem}`` for those that
    cannot become a pipeline; one broken block must not take the others' pipelines down."""
    variants, broken = {}, {}
    for name, block in parameters.items():
        if isinstance(block, Mapping) and "architecture" in block:
            problem = variant_block_problem(name, block)
            if problem:
                broken[name] = problem
            else:
                variants[name] = dict(block)
    return variants, broken


def variant_block_problem(name: str, block: Mapping[str, Any]) -> str | None:
    unknown = sorted(set(block) - VARIANT_KEYS)
    if unknown:
        return f"Variant '{name}': unknown key(s) {unknown}; a variant block may hold {sorted(VARIANT_KEYS)}."
    if "training" not in block:
        return (f"Variant '{name}': no `training:` block; write `training: {{}}` to use "
                "`training_defaults` as they are.")
    if "." in name:
        return f"Variant '{name}': a variant name may not contain '.', it is a namespace."
    if not isinstance(block.get("tags", []), list):
        return f"Variant '{name}': `tags` must be a list, got {block['tags']!r}."
    return None


def find_variants(parameters: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``{name: spec}`` for every variant block; :class:`SpecError` for the first broken one."""
    variants, broken = partition_variants(parameters)
    if broken:
        raise SpecError(next(iter(broken.values())))
    return variants


def check_broken_variants(broken: Mapping[str, str], parameters: Mapping[str, Any],
                          pipeline_names: list[str] | None) -> None:
    """Fail a run whose pipelines would hold a variant block that cannot become a pipeline."""
    names = set(pipeline_names or ["__default__"])

    def tags(block: Any) -> list[Any]:
        found = block.get("tags") if isinstance(block, Mapping) else None
        return found if isinstance(found, list) else []

    hit = [problem for variant, problem in broken.items()
           if names & {variant, "__default__", "compare"}
           or ("exercises" in names and "exercise" in tags(parameters.get(variant)))]
    if hit:
        raise SpecError(
            "This run's pipelines include broken model variant blocks (conf/base/parameters*.yml):\n  - "
            + "\n  - ".join(hit)
            + "\nFix or remove them; pipelines without them still run (`kedro registry list`)."
        )


# ---- training settings: `training_defaults` and each variant's `training:`


def merge_training_settings(
    variant: str, defaults: Mapping[str, Any], overrides: Mapping[str, Any] | None, precision: str = "float32"
) -> dict[str, Any]:
    """``defaults`` updated with ``overrides``, every value checked, and the run's numeric
    ``precision`` (``runtime.precision`` as resolved for the machine)."""
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(defaults))
    if unknown:
        raise SpecError(
            f"Variant '{variant}': unknown training setting(s) {unknown} in `{variant}.training`. "
            f"Valid settings (see `training_defaults`): {sorted(defaults)}."
        )
    settings = {**defaults, **overrides}
    check_training_settings(variant, settings)
    return {**settings, "precision": precision}


def check_training_settings(variant: str, settings: Mapping[str, Any]) -> None:
    """Values Keras would reject, or reject late."""

    def fail(key: str, problem: str) -> None:
        raise SpecError(f"Variant '{variant}': `{variant}.training.{key}` {problem}, got {settings.get(key)!r}.")

    for key in ("epochs", "batch_size", "steps_per_execution"):
        if not _positive_whole(settings.get(key)):
            fail(key, "must be a positive whole number")
    if not _whole(settings.get("seed")):
        fail("seed", "must be a whole number")
    split = settings.get("validation_split")
    if not isinstance(split, int | float) or isinstance(split, bool) or not 0 <= split < 1:
        fail("validation_split", "must be a fraction in [0, 1)")
    rate = settings.get("learning_rate")
    if rate is not None and (not isinstance(rate, int | float) or isinstance(rate, bool) or rate <= 0):
        fail("learning_rate", "must be a positive number, or null for the optimizer's default")
    if settings.get("learning_rate_decay") not in (None, "cosine"):
        fail("learning_rate_decay", "must be null (constant rate) or cosine")
    if settings.get("verbose") not in (0, 1, 2, "auto"):
        fail("verbose", "must be 0 (silent), 1 (progress bar), 2 (one line per epoch) or auto")
    stop = settings.get("stop_at_threshold")
    if stop is not None:
        if not isinstance(stop, Mapping) or set(stop) != {"monitor", "threshold", "mode"}:
            fail("stop_at_threshold", "must be null or {monitor: loss, threshold: 0.4, mode: below}")
        if stop["mode"] not in THRESHOLD_MODES or not isinstance(stop["threshold"], int | float):
            fail("stop_at_threshold", f"needs a numeric threshold and a mode in {THRESHOLD_MODES}")
    early = settings.get("early_stopping")
    if early is not None and not isinstance(early, Mapping):
        fail("early_stopping", "must be null or keyword arguments of keras.callbacks.EarlyStopping")
    monitors = [(early or {}).get("monitor", "val_loss")] if early else []
    monitors += [stop["monitor"]] if stop else []
    for monitor in monitors:
        if str(monitor).startswith("val_") and not split:
            fail("validation_split", f"must be above 0 to monitor '{monitor}'")


# ---- data


def check_limit(name: str, limit: Any) -> None:
    if limit is not None and not _positive_whole(limit):
        raise SpecError(f"Parameter `data.{name}` must be a positive whole number or null (all), got {limit!r}.")


def check_pixel_dtype(dtype: Any) -> None:
    if dtype not in PIXEL_DTYPES:
        raise SpecError(f"Parameter `data.pixel_dtype` must be one of {list(PIXEL_DTYPES)}, got {dtype!r}.")


def check_data_parameters(data: Mapping[str, Any]) -> None:
    check_limit("train_limit", data.get("train_limit"))
    check_limit("test_limit", data.get("test_limit"))
    check_pixel_dtype(data.get("pixel_dtype", "float32"))
    names = data.get("class_names")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
        raise SpecError(f"Parameter `data.class_names` must be a list of class names, got {names!r}.")


# ---- runtime: TensorFlow's process settings and the numeric precision


def runtime_environment(runtime: Mapping[str, Any] | None) -> dict[str, str]:
    """The environment variables for the ``runtime`` parameters, after checking them all."""
    runtime = dict(runtime or {})
    known = {*RUNTIME_VARIABLES, "precision"}
    unknown = sorted(set(runtime) - known)
    if unknown:
        raise SpecError(f"Unknown `runtime` setting(s) {unknown}; valid: {sorted(known)}.")
    if runtime.get("precision", "float32") not in PRECISIONS:
        raise SpecError(f"`runtime.precision` must be one of {list(PRECISIONS)}, got {runtime['precision']!r}.")
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
        if not _positive_whole(threads):
            raise SpecError(f"`runtime.{key}` must be a positive whole number, or null for TensorFlow's "
                            f"default (one thread per core), got {threads!r}.")
        environment[RUNTIME_VARIABLES[key]] = str(threads)
    return environment


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
    """bfloat16 maths only where there are units for it."""
    if precision == "mixed_bfloat16" and not bf16 and not gpus:
        raise SpecError(
            "`runtime.precision: mixed_bfloat16` needs a CPU with bfloat16 units (AVX-512 BF16 or AMX; "
            f"none of {list(BF16_CPU_FLAGS)} in /proc/cpuinfo) or a GPU; without them bf16 is emulated and slower. "
            "Use `float32`, or `auto` to get bf16 only where the CPU has it."
        )


# ---- reporting


@dataclass(frozen=True)
class ActivationGrid:
    """``activation_grid`` (conf/base/parameters_reporting.yml): the notebook's activation cell.

    The node that draws the grid takes this type, so Kedro's typed parameter validation builds it
    from the YAML before the run starts (and a node gets it, not a dict); what depends on a model
    (a layer name, a filter index below its channels) is checked with the variant's spec.
    """

    image_indices: list[int]
    filter_index: int
    layers: int | list[int | str]
    cmap: str = "inferno"

    def __post_init__(self) -> None:
        def fail(key: str, wanted: str) -> None:
            raise SpecError(f"`activation_grid.{key}` must be {wanted}, got {getattr(self, key)!r}.")

        if not isinstance(self.image_indices, list) or not self.image_indices \
                or not all(map(_whole, self.image_indices)):
            fail("image_indices", "a list of test-image indices, such as [0, 23, 28]")
        if not _whole(self.filter_index) or self.filter_index < 0:
            fail("filter_index", "the index of a channel (0, 1, ...)")
        listed = isinstance(self.layers, list) and self.layers and all(
            _whole(key) or (isinstance(key, str) and key) for key in self.layers)
        if not (_positive_whole(self.layers) or listed):
            fail("layers", "a number of feature-map layers (4 shows the first four), or a list of layer names "
                           "or indices")
        if not isinstance(self.cmap, str) or not self.cmap:
            fail("cmap", "the name of a matplotlib colour map, such as inferno")

    @classmethod
    def of(cls, settings: ActivationGrid | Mapping[str, Any]) -> ActivationGrid:
        """``settings`` as checked by Kedro, or a plain mapping of them (a notebook, a test)."""
        return settings if isinstance(settings, cls) else cls(**settings)


@dataclass(frozen=True)
class Interpretation:
    """``interpretation`` (conf/base/parameters_reporting.yml): the top-loss figure and Grad-CAM, checked
    as :class:`ActivationGrid` is; the layer against each convolutional variant's model."""

    top_losses: int = 16
    grad_cam_layer: str | None = None

    def __post_init__(self) -> None:
        if not _positive_whole(self.top_losses):
            raise SpecError(f"`interpretation.top_losses` must be a positive whole number, got {self.top_losses!r}.")
        if self.grad_cam_layer is not None and not (isinstance(self.grad_cam_layer, str) and self.grad_cam_layer):
            raise SpecError("`interpretation.grad_cam_layer` must be a layer name such as conv2d_3, or null for the "
                            f"last convolution, got {self.grad_cam_layer!r}.")

    @classmethod
    def of(cls, settings: Interpretation | Mapping[str, Any]) -> Interpretation:
        return settings if isinstance(settings, cls) else cls(**settings)


# ---- predict and export


def settings_block(parameters: Mapping[str, Any], block: str) -> Mapping[str, Any]:
    settings = parameters.get(block)
    if not isinstance(settings, Mapping):
        raise SpecError(f"Parameter `{block}` must be a block of settings (conf/base/parameters_predict.yml), "
                        f"got {settings!r}.")
    return settings


def check_model_choice(variant: Any, version: Any, block: str) -> None:
    """``<block>.variant`` and ``<block>.model_version`` have the right types (their values are
    checked against the trained models by :func:`fashion_cnn.model.choice.choose_model`)."""
    if not isinstance(variant, str) or not variant:
        raise SpecError(f"Parameter `{block}.variant` must be the name of a model variant, got {variant!r}.")
    if version is not None and not isinstance(version, str):
        raise SpecError(f"Parameter `{block}.model_version` must be a version folder name such as "
                        f"2026-11-28T10.15.02.123Z, or null for the newest, got {version!r}.")


def check_predict_settings(settings: Mapping[str, Any], classes: int) -> None:
    top_k = settings.get("top_k")
    if not _whole(top_k) or not 1 <= top_k <= classes:
        raise SpecError(f"Parameter `predict.top_k` must be a whole number from 1 to {classes} (the number of "
                        f"classes), got {top_k!r}.")
    sheet = settings.get("contact_sheet")
    if not isinstance(sheet, Mapping):
        raise SpecError(f"Parameter `predict.contact_sheet` must be a block with `max_images` and `columns`, "
                        f"got {sheet!r}.")
    for key in ("max_images", "columns"):
        if not _positive_whole(sheet.get(key)):
            raise SpecError(f"Parameter `predict.contact_sheet.{key}` must be a positive whole number, "
                            f"got {sheet.get(key)!r}.")


def check_novelty(settings: Any) -> None:
    share = settings.get("test_share") if isinstance(settings, Mapping) else None
    if not isinstance(share, int | float) or isinstance(share, bool) or not 0 < share < 1:
        raise SpecError("Parameter `novelty.test_share` must be a fraction between 0 and 1 (the share of test images "
                        f"that `predict` would flag as unlike the training images, e.g. 0.05), got {share!r}.")


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
        if self.subset_applied:
            return dict(self.images)
        return {split: min(self.images[split], data.get(f"{split}_limit") or math.inf) for split in SPLITS}


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


def limit_warnings(facts: DataFacts, data: Mapping[str, Any]) -> list[str]:
    if facts.subset_applied:
        return []
    return [
        f"`data.{split}_limit` is {data[f'{split}_limit']}, more than the {facts.images[split]} {split} images in "
        f"{facts.source}: all {facts.images[split]} are used."
        for split in SPLITS
        if data.get(f"{split}_limit") and data[f"{split}_limit"] > facts.images[split]
    ]


def batch_size_warnings(training_images: int | None, settings: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """One warning for the variants whose batch is larger than their training set."""
    large = {}
    for variant, values in settings.items() if training_images else ():
        fitted = training_images - round(training_images * values["validation_split"])
        if values["batch_size"] > fitted:
            large[variant] = (values["batch_size"], fitted)
    if not large:
        return []
    listed = ", ".join(f"{name} ({batch} > {fitted})" for name, (batch, fitted) in large.items())
    return [f"Batch size larger than the training images for {listed}: each epoch is a single step over all "
            f"of them. Lower `training_defaults.batch_size` (or the variant's) or raise `data.train_limit`."]


def check_variant(name: str, spec: Mapping[str, Any], parameters: Mapping[str, Any],
                  test_images: int | None = None, precision: str = "float32") -> tuple[int, dict[str, Any]]:
    """Raise :class:`SpecError` unless the variant builds, compiles and gets its callbacks, and its
    activation grid fits ``test_images`` and its Grad-CAM layer exists; return its parameter count and
    training settings."""
    from fashion_cnn.model.activations import check_activation_settings
    from fashion_cnn.model.gradcam import grad_cam_layer
    from fashion_cnn.model.training import compiled_model, make_callbacks
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
