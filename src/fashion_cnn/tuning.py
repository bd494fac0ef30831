"""The search of the ``tune`` pipeline (``tune`` in conf/base/parameters_tune.yml, docs/tuning.md): its
space as Optuna distributions, checked before the first trial, and each trial's variant spec.

A trial varies a template variant: arguments of its layers (by type, ``Conv2D``, or by the name the
layer has in the template's ``model_summary.txt``, ``conv2d_3``), the number of its convolution blocks
(a convolution and the layers after it up to the next one or to ``Flatten``: the first ones kept, the
last repeated), a ``Dropout`` before its last layer, and any ``training_defaults`` setting. A parameter
is asked of Optuna only when the trial uses it (a layer of a dropped block is not).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping
from typing import Any

from fashion_cnn.model.architecture import SpecError, default_layer_name, parse_layer
from fashion_cnn.parameters import check_variant, partition_variants
from fashion_cnn.variants import CONVOLUTION_LAYERS

TUNED = "tuned"  # the variant name of the search's best model: data/06_models/tuned/, `predict.variant=tuned`
TUNE_KEYS = {"study_name", "template", "n_trials", "validation_split", "sampler", "pruner", "space"}
SPACE_KEYS = ("conv_blocks", "dropout", "layers", "training")
RANGE_KEYS = {"low", "high", "step", "log"}
EXAMPLE = "{choices: [32, 64]} or {low: 0.0001, high: 0.01, log: true}"


def import_optuna() -> Any:
    """Optuna, its log lines going through Kedro's logging (one line per trial) instead of its own handler."""
    import optuna

    optuna.logging.disable_default_handler()
    optuna.logging.enable_propagation()
    return optuna


def distribution(name: str, spec: Any) -> Any:
    """The Optuna distribution of ``tune.space.<name>``: ``{choices: [...]}``, or ``{low, high}`` (whole
    numbers: integers) with optional ``step`` and ``log``; :class:`SpecError` naming the key."""
    optuna = import_optuna()
    where = f"`tune.space.{name}`"
    if not isinstance(spec, Mapping):
        raise SpecError(f"{where} must be a range or choices, such as {EXAMPLE}; got {spec!r}.")
    try:
        if set(spec) == {"choices"}:
            choices = spec["choices"]
            if not isinstance(choices, list) or not all(c is None or isinstance(c, bool | int | float | str)
                                                        for c in choices):
                raise ValueError(f"`choices` must be a list of numbers, strings, booleans or null, got {choices!r}")
            return optuna.distributions.CategoricalDistribution(choices)
        if not {"low", "high"} <= set(spec) <= RANGE_KEYS:
            raise ValueError(f"expected `choices`, or `low` and `high` with optional `step` and `log`; got keys "
                             f"{sorted(spec)}")
        numbers = [spec[key] for key in ("low", "high", "step") if spec.get(key) is not None]
        if not all(isinstance(n, int | float) and not isinstance(n, bool) and math.isfinite(n) for n in numbers):
            raise ValueError(f"`low`, `high` and `step` must be numbers, got {spec!r}")
        if all(isinstance(n, int) for n in numbers):
            return optuna.distributions.IntDistribution(spec["low"], spec["high"], log=bool(spec.get("log")),
                                                        step=spec.get("step") or 1)
        return optuna.distributions.FloatDistribution(spec["low"], spec["high"], log=bool(spec.get("log")),
                                                      step=spec.get("step"))
    except ValueError as exc:  # Optuna's own checks: an empty range, log with a step or from 0, no choices
        raise SpecError(f"{where}: {str(exc).rstrip('.')}. Write it as {EXAMPLE}.") from None


def space_distributions(tune: Mapping[str, Any], template: Mapping[str, Any],
                        defaults: Mapping[str, Any]) -> dict[str, Any]:
    """``{parameter name: distribution}`` of ``tune.space``, each key checked against the template."""
    space = tune.get("space")
    if not isinstance(space, Mapping) or not space:
        raise SpecError(f"`tune.space` must be a block of {list(SPACE_KEYS)}, got {space!r}.")
    unknown = sorted(set(space) - set(SPACE_KEYS))
    if unknown:
        raise SpecError(f"`tune.space` has unknown key(s) {unknown}; valid: {list(SPACE_KEYS)}.")
    layers = template_layers(tune["template"], template["architecture"])
    targets = {kind for kind, _, _ in layers} | {name for _, _, name in layers}
    found: dict[str, Any] = {}
    for key in ("conv_blocks", "dropout"):
        if key in space:
            found[key] = distribution(key, space[key])
    if "conv_blocks" in space and not conv_blocks(layers)[1]:
        raise SpecError(f"`tune.space.conv_blocks`: the template '{tune['template']}' has no convolution block.")
    for group, allowed, hint in (("layers", targets, "a layer type or a layer name of the template, "
                                  + ", ".join(f"{name} ({kind})" for kind, _, name in layers)),
                                 ("training", set(defaults), "a key of `training_defaults`")):
        block = space.get(group) or {}
        if not isinstance(block, Mapping):
            raise SpecError(f"`tune.space.{group}` must be a block, got {block!r}.")
        for key, spec in block.items():
            if key not in allowed:
                raise SpecError(f"`tune.space.{group}.{key}`: unknown; expected {hint}.")
            if group == "training":
                found[f"training.{key}"] = distribution(f"training.{key}", spec)
                continue
            if not isinstance(spec, Mapping) or not spec:
                raise SpecError(f"`tune.space.layers.{key}` must be a block of layer arguments, such as "
                                f"{{filters: {EXAMPLE}}}; got {spec!r}.")
            for argument, values in spec.items():
                found[f"layers.{key}.{argument}"] = distribution(f"layers.{key}.{argument}", values)
    if not found:
        raise SpecError("`tune.space` holds no parameter to search.")
    return found


def template_layers(name: str, architecture: Any) -> list[tuple[str, dict[str, Any], str]]:
    """``(type, arguments, name)`` of each layer of the template, named as ``build_model`` names them."""
    parsed = [parse_layer(name, index, entry) for index, entry in enumerate(architecture or [], start=1)]
    return [(kind, kwargs, kwargs.get("name") or default_layer_name(kind, index))
            for index, (kind, kwargs) in enumerate(parsed, start=1)]


def conv_blocks(layers: list[tuple[str, Any, Any]]) -> tuple[int, list[tuple[int, int]]]:
    """Where the convolution blocks end, and each block's ``(start, end)`` in ``layers``."""
    kinds = [layer[0] for layer in layers]
    starts = [i for i, kind in enumerate(kinds) if kind in CONVOLUTION_LAYERS]
    if not starts:
        return len(kinds), []
    stop = next((i for i in range(starts[0], len(kinds)) if kinds[i] == "Flatten" or kinds[i].startswith("Global")),
                len(kinds))
    starts = [i for i in starts if i < stop]
    return stop, list(zip(starts, [*starts[1:], stop], strict=True))


def trial_spec(template: Mapping[str, Any], template_name: str, names: Mapping[str, Any],
               value: Callable[[str], Any]) -> dict[str, Any]:
    """``{"architecture", "training"}`` of one trial varying the parameters ``names`` (the others keep the
    template's values): ``value(name)`` gives each one it uses (Optuna's suggestion in a search; a fixed
    value in a check or for the best trial)."""
    layers = [(kind, copy.deepcopy(kwargs), name) for kind, kwargs, name in
              template_layers(template_name, template["architecture"])]
    stop, blocks = conv_blocks(layers)
    if "conv_blocks" in names and blocks:
        count = value("conv_blocks")
        kept = blocks[:count]
        layers = (layers[:blocks[0][0]] + [layer for start, end in kept for layer in layers[start:end]]
                  + [*[layer for _ in range(count - len(kept)) for layer in layers[slice(*blocks[-1])]]]
                  + layers[stop:])
    for name in names:
        if name.startswith("layers."):
            _, target, argument = name.split(".", 2)
            chosen = [kwargs for kind, kwargs, layer_name in layers if target in (kind, layer_name)]
            if chosen:
                setting = value(name)
                for kwargs in chosen:
                    kwargs[argument] = setting
    architecture = [{kind: copy.deepcopy(kwargs)} for kind, kwargs, _ in layers]  # repeated blocks: no aliases
    if "dropout" in names and (rate := value("dropout")):
        architecture.insert(len(architecture) - 1, {"Dropout": {"rate": rate}})
    training = {name.removeprefix("training."): value(name) for name in names if name.startswith("training.")}
    return {"architecture": architecture, "training": {**(template.get("training") or {}), **training}}


def probes(distributions: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Settings to build before the first trial, each with what to call it in a message: each parameter alone
    (the template's own values elsewhere) at its extremes (or each choice), then all at their first values,
    then all at their last."""
    def values(dist: Any) -> list[Any]:
        return list(dist.choices) if hasattr(dist, "choices") else [dist.low, dist.high]

    first = {name: values(dist)[0] for name, dist in distributions.items()}
    last = {name: values(dist)[-1] for name, dist in distributions.items()}
    return [*[(f"`tune.space.{name}` = {v!r}", {name: v}) for name, dist in distributions.items() for v in values(dist)],
            (f"`tune.space`: its first values together ({first})", first),
            (f"`tune.space`: its last values together ({last})", last)]


def check_tuning(parameters: Mapping[str, Any], test_images: int | None = None, precision: str = "float32",
                 storage: Any = None) -> dict[str, Any]:
    """Raise :class:`SpecError` naming the key unless ``tune`` is a search that can start: its settings,
    its space against the template, every trial shape it can take at its extremes built and compiled,
    and the same distributions as the study already in ``storage`` (if any). Returns the distributions."""
    optuna = import_optuna()
    tune = parameters.get("tune")
    if not isinstance(tune, Mapping):
        raise SpecError(f"Parameter `tune` must be a block (conf/base/parameters_tune.yml), got {tune!r}.")
    unknown = sorted(set(tune) - TUNE_KEYS)
    missing = sorted(TUNE_KEYS - set(tune))
    if unknown or missing:
        raise SpecError(f"`tune`: unknown key(s) {unknown}, missing key(s) {missing}; it holds {sorted(TUNE_KEYS)}.")
    if not isinstance(tune["study_name"], str) or not tune["study_name"]:
        raise SpecError(f"`tune.study_name` must be a name, got {tune['study_name']!r}.")
    if not isinstance(tune["n_trials"], int) or isinstance(tune["n_trials"], bool) or tune["n_trials"] < 1:
        raise SpecError(f"`tune.n_trials` must be a positive whole number (the study's total), got {tune['n_trials']!r}.")
    split = tune["validation_split"]
    if not isinstance(split, float) or not 0 < split < 1:
        raise SpecError(f"`tune.validation_split` must be a fraction in (0, 1): trials are scored on it, got {split!r}.")
    variants = partition_variants(parameters)[0]
    if tune["template"] not in variants:
        raise SpecError(f"`tune.template` must name a model variant, got {tune['template']!r}; variants: "
                        f"{', '.join(variants)}.")
    for key, kind in (("sampler", optuna.samplers.TPESampler), ("pruner", optuna.pruners.MedianPruner)):
        try:
            kind(**(tune[key] or {}))
        except (TypeError, ValueError) as exc:
            raise SpecError(f"`tune.{key}` must hold keyword arguments of {kind.__module__.split('.')[0]}."
                            f"{kind.__qualname__}: {exc}") from None
    defaults = parameters["training_defaults"]
    if "accuracy" not in defaults.get("metrics", []):
        raise SpecError("`training_defaults.metrics` must include accuracy: trials are scored on validation accuracy.")
    template = variants[tune["template"]]
    distributions = space_distributions(tune, template, defaults)
    for label, values in probes(distributions):
        try:
            check_variant(TUNED, trial_spec(template, tune["template"], values, values.__getitem__),
                          parameters, test_images, precision)
        except SpecError as exc:
            raise SpecError(f"{label} does not make a model that trains: {exc}") from None
    if storage is not None:
        check_study(storage, tune["study_name"], distributions)
    return distributions


def check_study(storage: Any, study_name: str, distributions: Mapping[str, Any]) -> None:
    """The space must be one the study's earlier trials were drawn from (a changed list of choices is not)."""
    optuna = import_optuna()
    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        return  # a new study
    if study.direction != optuna.study.StudyDirection.MAXIMIZE:
        raise SpecError(f"`tune.study_name`: study '{study_name}' minimises its objective; the tune pipeline "
                        "maximises validation accuracy. Choose another name.")
    for trial in study.get_trials(deepcopy=False):
        for name, old in trial.distributions.items():
            if name in distributions:
                try:
                    optuna.distributions.check_distribution_compatibility(old, distributions[name])
                except ValueError as exc:
                    raise SpecError(f"`tune.space.{name}` differs from what study '{study_name}' drew it from "
                                    f"({old}): {exc}. Start a new study (--params tune.study_name=<new name>) or "
                                    "put the space back.") from None
