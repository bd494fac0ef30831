"""Compare every trained variant: the project's answer to the notebook's exercises."""

from .pipeline import create_pipeline  # NOQA
