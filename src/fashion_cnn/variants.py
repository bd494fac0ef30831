"""Finding the model variants in the parameters.

A variant is any top-level parameter block with an ``architecture`` key. The pipeline
registry reads them here, so a variant added in YAML gets its pipelines without Python.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fashion_cnn.model.architecture import SpecError

VARIANT_KEYS = {"architecture", "description", "tags", "training"}
CONVOLUTION_LAYERS = ("Conv1D", "Conv2D", "Conv3D", "SeparableConv2D", "DepthwiseConv2D")


def find_variants(parameters: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Return ``{name: spec}`` for every variant block in ``parameters``, in file order;
    :class:`SpecError` for the first block that cannot be a variant."""
    variants, broken = partition_variants(parameters)
    if broken:
        raise SpecError(next(iter(broken.values())))
    return variants


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


DATA_NAMESPACE = "data_processing"


def namespace_of(node: Any) -> str | None:
    """The top-level namespace of a Kedro node (a variant's name, or ``data_processing``)."""
    return node.namespace.split(".")[0] if node.namespace else None


def variant_of(node: Any) -> str | None:
    """The model variant a node belongs to, or None (data processing, comparison)."""
    namespace = namespace_of(node)
    return None if namespace == DATA_NAMESPACE else namespace


def is_convolutional(spec: Mapping[str, Any]) -> bool:
    """Whether the variant's architecture has a convolution layer (and so activation maps)."""
    return any(
        (entry if isinstance(entry, str) else next(iter(entry), None)) in CONVOLUTION_LAYERS
        for entry in spec.get("architecture") or []
        if isinstance(entry, str | Mapping)
    )


def project_path() -> Path:
    """The Kedro project in use: the working directory's, else this package's checkout."""
    from kedro.utils import find_kedro_project

    return find_kedro_project(Path.cwd()) or Path(__file__).resolve().parents[2]


_read_cache: dict[tuple[Any, ...], dict[str, Any]] = {}


def load_parameters(env: str | None = None) -> dict[str, Any]:
    """The project's parameters through its configured config loader (base + ``env``).

    The pipeline registry asks twice per command (the variants and the comparison pipelines);
    a second read of unchanged files comes from a cache keyed by every YAML file's mtime and size.
    """
    from kedro.framework.project import settings

    conf_source = project_path() / settings.CONF_SOURCE
    env = env or os.environ.get("KEDRO_ENV")
    files = sorted(conf_source.rglob("*.y*ml")) if conf_source.is_dir() else []
    stats = [(str(f), f.stat()) for f in files]
    key = (str(conf_source), env, tuple((name, stat.st_mtime_ns, stat.st_size) for name, stat in stats))
    if key not in _read_cache:
        _read_cache.clear()
        _read_cache[key] = _read_parameters(conf_source, env)
    return copy.deepcopy(_read_cache[key])


def _read_parameters(conf_source: Path, env: str | None) -> dict[str, Any]:
    from kedro.framework.project import settings
    from omegaconf.basecontainer import BaseContainer

    # A config loader registers OmegaConf's `globals`/`runtime_params` resolvers process-wide;
    # keep the session's own (with its --env and --params) in force after this read.
    resolvers = dict(BaseContainer._resolvers)
    try:
        loader = settings.CONFIG_LOADER_CLASS(
            conf_source=str(conf_source),
            env=env,
            **settings.CONFIG_LOADER_ARGS,
        )
        return dict(loader["parameters"])
    finally:
        BaseContainer._resolvers.clear()
        BaseContainer._resolvers.update(resolvers)


def load_variants(env: str | None = None) -> dict[str, dict[str, Any]]:
    """The variants configured in the project's parameters (broken blocks left out)."""
    return partition_variants(load_parameters(env))[0]
