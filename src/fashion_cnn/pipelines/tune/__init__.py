"""`tune`: an Optuna search over a template variant's architecture and training settings (docs/tuning.md)."""

from .pipeline import create_pipeline  # NOQA
