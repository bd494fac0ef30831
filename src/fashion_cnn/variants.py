"""The model variants: where their names come from, and which variant a node or dataset belongs to.

A variant is any top-level parameter block with an ``architecture`` key. The pipeline registry reads them here,
so a variant added in YAML gets its pipelines without Python. Every variant is a namespace of the same pipeline,
so its nodes and datasets are named ``<variant>.<name>``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from fashion_cnn.parameters import partition_variants

DATA_NAMESPACE = "data_processing"
TRAINING_NODE = "train_model"  # a variant's training node: `<variant>.train_model`
SEARCH_NODE = "search"  # a worker of the tune pipeline's search, `tuned.search_<n>`: it trains trials
CONVOLUTION_LAYERS = ("Conv1D", "Conv2D", "Conv3D", "SeparableConv2D", "DepthwiseConv2D")


def variant_of(name_or_node: Any) -> str | None:
    """The variant of a node or of a node's or dataset's name (``cnn.train_model``, ``cnn.metrics`` ->
    ``cnn``); None for the data processing, the shared datasets, parameters and the comparison."""
    name = getattr(name_or_node, "name", name_or_node)
    head, dot, _ = name.partition(".")
    return head if dot and head != DATA_NAMESPACE and not name.startswith("params:") else None


def variants_in(nodes: Iterable[Any]) -> list[str]:
    """The variants whose nodes are among ``nodes`` (a pipeline's), sorted: a run's variants."""
    return sorted({variant for node in nodes if (variant := variant_of(node))})


def is_training(node_name: str) -> bool:
    step = node_name.rpartition(".")[2]
    return variant_of(node_name) is not None and (step == TRAINING_NODE or step.startswith(SEARCH_NODE + "_"))


def is_convolutional(spec: Mapping[str, Any]) -> bool:
    """Whether the variant's architecture has a convolution layer (and so activation maps)."""
    return any((entry if isinstance(entry, str) else next(iter(entry), None)) in CONVOLUTION_LAYERS
               for entry in spec.get("architecture") or [] if isinstance(entry, str | Mapping))


def load_parameters(env: str | None = None) -> dict[str, Any]:
    """The parameter files of the base environment and of ``env`` (``KEDRO_ENV``, else ``local``), merged as the
    project's config loader merges them, without resolving interpolations.

    For the pipeline registry, which runs outside the session's config loader: a second ``OmegaConfigLoader``
    would replace the session's process-wide resolvers (``runtime_params``) with its own. A run checks the
    session's own parameters, ``--params`` included, before its first node.
    """
    from kedro.framework.project import settings
    from kedro.utils import find_kedro_project
    from omegaconf import OmegaConf

    project = find_kedro_project(Path.cwd()) or Path(__file__).resolve().parents[2]  # else this package's checkout
    conf = project / settings.CONF_SOURCE
    environments = ["base", env or os.environ.get("KEDRO_ENV") or "local"]
    merged = OmegaConf.create()
    for folder in (conf / name for name in environments):
        files = {*folder.glob("parameters*"), *folder.glob("parameters*/**/*"), *folder.glob("**/parameters*")}
        for file in sorted(f for f in files if f.is_file() and f.suffix in (".yml", ".yaml")):
            merged = OmegaConf.merge(merged, OmegaConf.load(file))
    return OmegaConf.to_container(merged, resolve=False)  # type: ignore[return-value]


def load_variants(env: str | None = None) -> dict[str, dict[str, Any]]:
    """The variants configured in the project's parameters (broken blocks left out)."""
    return partition_variants(load_parameters(env))[0]
