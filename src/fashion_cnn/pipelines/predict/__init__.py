"""Classify your own images with a trained variant: `kedro run --pipelines predict --params predict.images=...`."""

from .pipeline import create_pipeline  # NOQA
