"""Project hooks: a quiet TensorFlow, and every variant's spec checked before anything trains."""

from __future__ import annotations

import logging
import os
from typing import Any

from kedro.framework.hooks import hook_impl

from fashion_cnn.architecture import SpecError
from fashion_cnn.variants import find_variants, is_convolutional

logger = logging.getLogger(__name__)


class TensorFlowRuntimeHook:
    """Environment TensorFlow reads once, at import, set before any node or the catalog imports it.

    Quiet C++ INFO lines (`TF_CPP_MIN_LOG_LEVEL=1`) and oneDNN kernels as `runtime.onednn` says;
    a user's own environment variables win. The CUDA-probe filter (:mod:`fashion_cnn.quiet`) is
    installed by ``settings.py``, which every Kedro command imports.
    """

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
        runtime = context.params.get("runtime") or {}
        if "onednn" in runtime:
            os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1" if runtime["onednn"] else "0")


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
