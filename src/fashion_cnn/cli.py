"""Project commands: Kedro's own ``kedro run``, which trains a sweep's variants side by side.

Without ``--runner``, a run whose nodes train several variants (``compare``, ``exercises``, ``__default__``)
uses :class:`fashion_cnn.runtime.sweep_runner.SweepRunner`; every other run, and any run given ``--runner``,
is exactly Kedro's. Kedro loads this module for ``kedro run`` (``cli`` group) and ``python -m fashion_cnn`` (``run``).
"""

from __future__ import annotations

import gc
import logging
import os
from typing import Any

import click
from kedro.framework.cli.project import run as kedro_run
from kedro.io import DatasetError
from kedro.validation.exceptions import ParameterValidationError

from fashion_cnn.model.architecture import SpecError
from fashion_cnn.runtime.checks import NotEnoughDiskError
from fashion_cnn.runtime.runs import RunCollisionError
from fashion_cnn.runtime.sweep_runner import default_runner

logger = logging.getLogger(__name__)


def _nodes_to_run(options: dict[str, Any]) -> list[str]:
    """The names of the nodes ``kedro run`` will run with these options, as the session selects them."""
    from kedro.framework.project import pipelines
    from kedro.pipeline import Pipeline

    names = [options["pipeline"]] if options.get("pipeline") else list(options.get("pipelines") or [])
    selected = sum((pipelines[name] for name in names or ["__default__"]), Pipeline([]))
    # `Pipeline.filter`'s arguments, named as `kedro run`'s options but for `namespaces`.
    filters = {name: options.get(name) or None
               for name in ("tags", "from_nodes", "to_nodes", "node_names", "from_inputs", "to_outputs")}
    selected = selected.filter(**filters, node_namespaces=options.get("namespaces") or None)
    return [node.name for node in selected.nodes]


@click.group(name="fashion_cnn")
def cli() -> None:
    """Project commands."""


@cli.command(name="run", params=kedro_run.params, help=kedro_run.help, context_settings=kedro_run.context_settings)
def run(**options: Any) -> Any:
    # ParallelRunner's workers must not be forked from a process with TensorFlow loaded (the checks
    # import it before the run); spawned workers start clean. SweepRunner asks for spawn itself.
    os.environ.setdefault("KEDRO_MP_CONTEXT", "spawn")
    if not options.get("runner"):
        try:
            nodes = _nodes_to_run(options)
        except Exception:  # noqa: BLE001 - an unknown pipeline or node: Kedro's own run names it
            nodes = []
        runner, reason = default_runner(nodes)
        if reason:
            logger.info(reason)
        options["runner"] = runner
    try:
        return kedro_run.callback(**options)
    except (SpecError, NotEnoughDiskError, RunCollisionError, DatasetError, ParameterValidationError) as error:
        # The checks before a run (Kedro's typed parameters' too) and the datasets raise these for what a user can
        # fix, naming the parameter, file or folder at fault and what to do; a traceback of the hooks and nodes it
        # passed through (about 200 lines) would only bury the message.
        raise click.ClickException(str(error)) from None
    finally:
        # The run is over and the process exits next: Python's final garbage collections would traverse every
        # object TensorFlow and Keras created (1.2-1.5 s here, as long for a bare Keras script), but skip frozen
        # ones (the exit then takes about 0.15 s). Every file is written and closed by now.
        gc.freeze()
