"""Project pipelines: the folders' (``find_pipelines``), and for each model variant in the parameters (a namespace
of the ``variants`` pipeline) a pipeline of its own name with the data processing in front of it."""

from __future__ import annotations

import logging

from kedro.framework.project import find_pipelines, pipelines
from kedro.pipeline import Pipeline

from fashion_cnn.parameters import partition_variants
from fashion_cnn.variants import load_parameters, variants_in

logger = logging.getLogger(__name__)

# Pipelines that use what training made (a trained model, the user's images), or search (`tune`, with the
# data processing in front of it): run on request, never part of `__default__`.
ON_REQUEST = ("predict", "export", "tune")


def register_pipelines() -> dict[str, Pipeline]:
    # Kedro 1.7 imports only `pipelines/<name>` for `kedro run --pipeline <name>`; variant pipelines are composed
    # from several folders, so always discover all of them (cheap: no TensorFlow import at module level).
    pipelines.set_requested(None)
    found = find_pipelines(raise_errors=True)
    on_request = {name: found.pop(name) for name in ON_REQUEST if name in found}
    data = found["data_processing"]
    variants = found.pop("variants")

    registry = found | {name: data + variants.only_nodes_with_namespaces([name])
                        for name in variants_in(variants.nodes)}
    registry["exercises"] = data + variants.only_nodes_with_tags("exercise")
    registry["compare"] = data + variants + found["compare"]
    registry["__default__"] = sum(registry.values(), Pipeline([]))
    registry.update(on_request, tune=data + on_request["tune"])
    # A broken variant block gets no nodes; its own name still runs, so that the spec check (runtime.checks.check_run)
    # can stop it before anything trains, naming the problem.
    for name, problem in partition_variants(load_parameters())[1].items():
        logger.warning("%s Runs of the pipelines that include it (%s, __default__, compare) stop before "
                       "training; the other pipelines work.", problem, name)
        registry.setdefault(name, data)
    return registry
