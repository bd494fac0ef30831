"""A trained variant as a TensorFlow SavedModel for serving: `kedro run --pipelines export`."""

from .pipeline import create_pipeline  # NOQA
