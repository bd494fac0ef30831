"""One reusable build -> train -> evaluate pipeline; each model variant is a namespace of it."""

from .pipeline import create_pipeline  # NOQA
