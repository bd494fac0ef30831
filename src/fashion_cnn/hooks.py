"""Project hooks: a quiet TensorFlow, and every variant's spec checked before anything trains."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from typing import Any

from kedro.framework.hooks import hook_impl

from fashion_cnn.architecture import SpecError
from fashion_cnn.variants import find_variants, is_convolutional

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
    """Build every variant of the run once before the first node, so a bad spec fails in
    seconds, with all problems in one message, instead of after other variants trained."""

    # tryfirst: before plugin hooks (kedro-mlflow opens its MLflow run here), so that a bad spec
    # leaves no run open (Kedro calls no on_pipeline_error for a failing before_pipeline_run).
    @hook_impl(tryfirst=True)
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        parameters = catalog.load("parameters")
        variants = find_variants(parameters)
        in_run = sorted({n.namespace.split(".")[0] for n in pipeline.nodes if n.namespace} & set(variants))
        if not in_run:
            return
        problems = []
        for name in in_run:
            try:
                check_variant(name, variants[name], parameters)
            except SpecError as exc:
                problems.append(str(exc))
        if problems:
            raise SpecError("Invalid model variant parameters:\n  - " + "\n  - ".join(problems))
        logger.info("Checked the specs of %d variant(s): %s", len(in_run), ", ".join(in_run))


def check_variant(name: str, spec: dict[str, Any], parameters: dict[str, Any]) -> None:
    """Raise :class:`SpecError` unless the variant builds, compiles and gets its callbacks."""
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
            check_activation_settings(model, parameters["activation_grid"], data.get("test_limit"))
        except ValueError as exc:
            raise SpecError(f"Variant '{name}': {exc}") from exc
