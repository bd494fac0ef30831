"""TensorFlow's process-wide settings (oneDNN, thread pools, log level), set before it is imported."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from typing import Any

from kedro.framework.hooks import hook_impl

from fashion_cnn.model.architecture import SpecError
from fashion_cnn.preflight import PRECISIONS, cpu_has_bf16, resolve_precision

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
    known = {*RUNTIME_VARIABLES, "timings", "precision"}
    unknown = sorted(set(runtime) - known)
    if unknown:
        raise SpecError(f"Unknown `runtime` setting(s) {unknown}; valid: {sorted(known)}.")
    if runtime.get("precision", "float32") not in PRECISIONS:
        raise SpecError(f"`runtime.precision` must be one of {list(PRECISIONS)}, got {runtime['precision']!r}.")
    if not isinstance(runtime.get("timings", True), bool):
        raise SpecError(f"`runtime.timings` must be true or false, got {runtime['timings']!r}.")
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
    (:mod:`fashion_cnn.runtime.quiet`) is installed by ``settings.py``, which every Kedro command imports.
    """

    # The catalog's parameters, already loaded and merged with --params: reading
    # `context.params` earlier would load and validate them once more (about a second).
    @hook_impl(tryfirst=True)
    def after_catalog_created(self, catalog: Any, parameters: dict[str, Any]) -> None:
        runtime = parameters.get("params:runtime") or {}
        if runtime.get("precision") == "auto":  # the nodes get what it means on this machine
            resolved = resolve_precision("auto", cpu_has_bf16())
            catalog.save("params:runtime.precision", resolved)
            logger.info("runtime.precision auto: %s on this CPU.", resolved)
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
