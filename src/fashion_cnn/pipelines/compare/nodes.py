"""Nodes that put the variants' metrics side by side."""

from __future__ import annotations

from typing import Any

import numpy as np

from fashion_cnn.pipelines import DataFrame, Figure

# The table's columns: metric -> column name.
COLUMNS = {"parameter_count": "parameters", **{key: key for key in (
    "epochs_run", "training_seconds", "seconds_per_epoch", "train_accuracy", "test_accuracy", "test_loss")}}


def compare_variants(reference: str, **metrics: dict[str, Any] | None) -> DataFrame:
    """One row per variant (keyword = variant name; None: no metrics, left out): the ``reference``
    variant (the notebook's CNN) first, the others by name, with the accuracy difference and the time
    ratio against it; ``source`` says which came from the tune pipeline's search."""
    import pandas as pd

    order = sorted((name for name in metrics if metrics[name] is not None), key=lambda name: (name != reference, name))
    table = pd.DataFrame(
        [{"variant": name, **{column: metrics[name].get(key) for key, column in COLUMNS.items()},
          "source": "tuned (search; test set used once)" if "search" in metrics[name] else "hand-written"}
         for name in order]
    )
    if reference in metrics:
        ref = table.set_index("variant").loc[reference]
        table[f"test_accuracy_vs_{reference}"] = (table["test_accuracy"] - ref["test_accuracy"]).round(4)
        table[f"seconds_per_epoch_vs_{reference}"] = (table["seconds_per_epoch"] / ref["seconds_per_epoch"]).round(2)
    return table


def to_markdown(table: DataFrame) -> str:
    """A GitHub-flavoured Markdown table (no extra dependency)."""
    def cell(value: Any) -> str:
        if isinstance(value, float | np.floating):
            return f"{value:,.4f}".rstrip("0").rstrip(".") if abs(value) < 10 else f"{value:,.1f}"
        if isinstance(value, int | np.integer):
            return f"{value:,}"
        return str(value)

    header = "| " + " | ".join(table.columns) + " |"
    rule = "|" + "|".join("---" if table[c].dtype == object else "---:" for c in table.columns) + "|"
    rows = ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([header, rule, *rows]) + "\n"


def plot_comparison(table: DataFrame) -> Figure:
    """Bar charts of test accuracy and seconds per epoch, one bar per variant."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(12, 4.5), layout="constrained")
    positions = np.arange(len(table))
    for ax, column, colour in zip(figure.subplots(1, 2), ("test_accuracy", "seconds_per_epoch"),
                                  ("tab:blue", "tab:orange"), strict=True):
        bars = ax.bar(positions, table[column], color=colour)
        ax.bar_label(bars, fmt="%.4f" if column == "test_accuracy" else "%.1f", fontsize=8)
        ax.set_xticks(positions, table["variant"], rotation=40, ha="right")
        ax.set_title(column.replace("_", " "))
        if column == "test_accuracy":
            ax.set_ylim(max(0.0, float(table[column].min()) - 0.05), 1.0)
    return figure

