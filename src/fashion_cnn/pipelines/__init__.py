"""The project's pipelines, one folder each; see ``pipeline_registry.py`` for how they combine."""
