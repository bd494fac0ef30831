"""Which trained model a run uses (``predict.variant`` and ``predict.model_version``, or the same keys of
``export``): one of the lazily loaded partitions of ``trained_models``, as docs/predict.md explains (Kedro chooses
versions from ``--load-versions``, not parameters). :func:`check_model_use` makes the same choice before the first
node, from the file names alone, so a wrong name fails in a second, naming the parameter.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

from fashion_cnn.model.architecture import SpecError
from fashion_cnn.parameters import check_model_choice, check_predict_settings, settings_block

# A partition of `trained_models` (<variant>/model.keras/<version>/model.keras, its suffix removed); anything
# else under data/06_models (temporary files of a save under way, exports, the predict run's copy) is not one.
MODEL_PARTITION = re.compile(r"^(?P<variant>[^/]+)/model\.keras/(?P<version>[^/.][^/]*)/model$")
MODELS_DATASET = "trained_models"
IMAGES_DATASET = "predict_images"
SHOWN_VERSIONS = 5


def choose_model(partitions: Mapping[str, Callable[[], Any]], variant: Any, version: Any, block: str,
                 configured: Collection[str] = ()) -> tuple[str, str, Callable[[], Any]]:
    """``(variant, version, load)`` of the model that ``<block>.variant`` and ``<block>.model_version``
    name (null version: the newest); :class:`SpecError` naming the parameter otherwise."""
    check_model_choice(variant, version, block)
    versions: dict[str, dict[str, Callable[[], Any]]] = {}
    for match in filter(None, map(MODEL_PARTITION.match, partitions)):
        versions.setdefault(match["variant"], {})[match["version"]] = partitions[match.string]
    if variant not in versions:
        if variant in configured:
            raise SpecError(f"Parameter `{block}.variant`: variant '{variant}' has no trained model yet (nothing in "
                            f"data/06_models/{variant}/model.keras/). Train it first: kedro run --pipelines {variant}")
        trained = ", ".join(sorted(versions)) or "none yet"
        raise SpecError(f"Parameter `{block}.variant`: there is no variant '{variant}'. Variants with a trained "
                        f"model: {trained}; configured variants: {', '.join(configured) or 'none'}.")
    if version is None:
        version = max(versions[variant])
    elif version not in versions[variant]:
        newest = sorted(versions[variant], reverse=True)
        more = f" ({len(newest)} in all)" if len(newest) > SHOWN_VERSIONS else ""
        raise SpecError(f"Parameter `{block}.model_version`: variant '{variant}' has no model version '{version}'. "
                        f"Its versions, newest first: {', '.join(newest[:SHOWN_VERSIONS])}{more}. Leave it null for "
                        "the newest.")
    return variant, version, versions[variant][version]


def check_model_use(parameters: Mapping[str, Any], configured: Collection[str], pipeline: Any, catalog: Any,
                    project_path: str | os.PathLike) -> None:
    """Before a run that uses a trained model or the user's images: the same choices its nodes will
    make, from file names only; :class:`SpecError` naming the parameter at fault."""
    inputs = pipeline.inputs()
    for block in ("predict", "export"):
        if f"params:{block}.variant" in inputs and MODELS_DATASET in inputs:
            trained_here = sorted(name for name in pipeline.all_outputs() if name.endswith(".model"))
            if trained_here:
                raise SpecError(f"This run trains models ({', '.join(trained_here)}) and runs `{block}`, which reads "
                                f"the saved models and would not wait for these: run `kedro run --pipelines {block}` "
                                "on its own, after the training run.")
            models = catalog.get(MODELS_DATASET)
            partitions = models.load() if models.exists() else {}  # exists: a .keras file under data/06_models
            settings = settings_block(parameters, block)
            choose_model(partitions, settings.get("variant"), settings.get("model_version"), block, configured)
    if IMAGES_DATASET in inputs:
        check_images(settings_block(parameters, "predict").get("images"), catalog.get(IMAGES_DATASET), project_path)
    if any(name.startswith("params:predict.") for name in inputs):
        check_predict_settings(settings_block(parameters, "predict"), len(parameters["data"]["class_names"]))


def check_images(images: Any, dataset: Any, project_path: str | os.PathLike) -> None:
    """``predict.images`` names at least one file, and is the path the catalog's dataset reads
    (Kedro makes the catalog's relative paths absolute, from the project folder)."""
    example = "kedro run --pipelines predict --params predict.images=path/to/photos"
    if not isinstance(images, str) or not images:
        raise SpecError(f"Parameter `predict.images` must be a folder, a glob pattern or a file, got {images!r}: "
                        f"{example}")
    if images.startswith("~"):
        raise SpecError(f"Parameter `predict.images`: {images!r} starts with '~', which is not expanded here "
                        "(Kedro reads relative paths from the project folder). Give the full path, e.g. "
                        "--params predict.images=$HOME/photos (the shell expands $HOME).")
    requested = getattr(dataset, "requested_path", images)
    if requested not in (images, (Path(project_path) / images).as_posix()):
        raise SpecError(f"Parameter `predict.images` is {images!r} but the catalog's `{IMAGES_DATASET}` reads "
                        f"{requested!r}: the catalog takes it from the command line only. Give it there: "
                        + example.replace("path/to/photos", images))
    if not dataset.exists():
        raise SpecError(f"Parameter `predict.images`: no files match {images!r} (relative paths start from the "
                        f"project folder; hidden files are left out). {example}")
