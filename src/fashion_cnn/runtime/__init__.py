"""Run-time plumbing, registered in ``settings.py``: the run's lifecycle (``lifecycle.py`` says what happens in a
run and in which order), its checks, run records, MLflow runs per variant and the sweep's runner. It uses the layers
below (model, datasets, parameters, variants) and never a node module."""
