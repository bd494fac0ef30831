"""Load, check, subset and normalise Fashion-MNIST."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
