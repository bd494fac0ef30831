"""Run-time plumbing, registered in ``settings.py``: TensorFlow's process settings and its quiet
import, the checks before a run, run records and Ctrl-C, MLflow runs per variant, and the timing
line. It uses the layers below (model, datasets, variants, preflight) and never a node module."""
