"""Load, check, subset and normalise Fashion-MNIST."""

from .pipeline import create_pipeline  # NOQA
