"""Run-time plumbing, registered in ``settings.py``: the run's lifecycle (``lifecycle.py``, which says
what happens in a run and in which order), the checks it makes before the first node, run records,
MLflow runs per variant, and the runner that trains a sweep's variants side by side. It uses the
layers below (model, datasets, parameters, variants) and never a node module."""
