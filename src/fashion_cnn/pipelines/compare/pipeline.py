"""`compare`: a table, a Markdown table and a bar chart over every configured variant."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

from kedro.pipeline import Pipeline, node, pipeline

from fashion_cnn.tuning import TUNED
from fashion_cnn.variants import load_variants

from .nodes import compare_variants, plot_comparison, to_markdown


def create_pipeline(variants: Mapping[str, Mapping[str, Any]] | None = None, **kwargs) -> Pipeline:
    variants = load_variants() if variants is None else variants
    metrics = {name: f"{name}.metrics" for name in variants}
    metrics.setdefault(TUNED, f"{TUNED}.metrics")  # the tune pipeline's best model: None before a first search
    with warnings.catch_warnings():
        # Kedro warns about dotted dataset names outside their namespace; reading each
        # variant's `<variant>.metrics` from here is exactly what a comparison must do.
        warnings.filterwarnings("ignore", message="One or more dataset names contain '.'")
        return pipeline([
            node(compare_variants, {"reference": "params:comparison.reference", **metrics}, "comparison",
                 name="compare_variants"),
            node(to_markdown, "comparison", "comparison_markdown", name="write_comparison_markdown"),
            node(plot_comparison, "comparison", "comparison_chart", name="plot_comparison"),
        ], tags="compare")
