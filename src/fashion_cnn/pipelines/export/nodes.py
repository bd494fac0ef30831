"""A trained model as a TensorFlow SavedModel, laid out for TensorFlow Serving."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any

from kedro.io.core import VERSION_FORMAT

from fashion_cnn.model.choice import choose_model

logger = logging.getLogger(__name__)


def serving_version(version: str) -> int:
    """A Kedro version (``2026-11-28T10.15.02.123Z``) as the whole number TensorFlow Serving wants
    for a version folder: the milliseconds since 1970, so that newer models get larger numbers."""
    try:
        moment = datetime.strptime(version, VERSION_FORMAT).replace(tzinfo=timezone.utc)
    except ValueError:
        raise ValueError(f"Model version {version!r} is not a Kedro version (such as 2026-11-28T10.15.02.123Z), "
                         "so it has no serving version number.") from None
    return int(moment.timestamp() * 1000)


def export_for_serving(trained_models: Mapping[str, Callable[[], Any]], variant: str,
                       model_version: str | None) -> dict[str, Any]:
    """The model `export.variant` and `export.model_version` name, as the partition
    ``<variant>/saved_model/<serving version>`` (TensorFlow Serving's model base path and version)."""
    variant, version, load = choose_model(trained_models, variant, model_version, "export")
    partition = f"{variant}/saved_model/{serving_version(version)}"
    logger.info("Exporting variant '%s', model version %s, as `saved_models` partition %s.", variant, version,
                partition)
    return {partition: load()}
