"""The notebook's ``model.evaluate`` line, for every variant a run trained, as one table at its end.

    Test scores (the notebook's model.evaluate), 2 variants:
      variant   test accuracy   test loss   epochs   training s
      cnn              0.9063      0.2622      4/4         32.6
      dense            0.8743      0.3481      4/4          3.2

(``kedro run --pipelines cnn,dense --env fast``; epochs run/planned, seconds of the epochs.)
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any

from kedro.framework.hooks import hook_impl
from kedro.io import DatasetError

logger = logging.getLogger(__name__)

METRICS = "metrics"
COLUMNS = ("variant", "test accuracy", "test loss", "epochs", "training s")


def score_row(metrics: Mapping[str, Any]) -> tuple[str, ...]:
    """One line of the table, from a variant's ``metrics`` output."""
    epochs = f"{metrics.get('epochs_run', '?')}/{metrics.get('epochs_planned', '?')}"
    return (
        str(metrics.get("variant", "?")),
        f"{metrics['test_accuracy']:.4f}",
        f"{metrics['test_loss']:.4f}",
        epochs,
        f"{metrics.get('training_seconds', float('nan')):.1f}",
    )


def render_scores(rows: list[tuple[str, ...]]) -> str:
    """The table: the variant column left-aligned, the numbers right-aligned."""
    widths = [max(len(column), *(len(row[index]) for row in rows)) for index, column in enumerate(COLUMNS)]

    def line(cells: tuple[str, ...]) -> str:
        first = cells[0].ljust(widths[0])
        numbers = (cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True))
        return "  " + "   ".join([first, *numbers])

    title = f"Test scores (the notebook's model.evaluate), {len(rows)} variant{'s' if len(rows) > 1 else ''}:"
    return "\n".join([title, line(COLUMNS), *(line(row) for row in rows)])


class ScoreTableHook:
    """Collects each variant's ``<variant>.metrics`` as the catalog saves it, and logs one table
    after a successful run. Metrics saved in other processes (ParallelRunner) are read back from
    the catalog at the end instead."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.last: list[tuple[str, ...]] | None = None  # the last table's rows, for tests and notebooks
        self._reset()

    def _reset(self) -> None:
        self._expected: list[str] = []
        self._metrics: dict[str, Mapping[str, Any]] = {}

    @hook_impl
    def before_pipeline_run(self, pipeline: Any) -> None:
        self._reset()
        self._expected = sorted(name for name in pipeline.all_outputs() if _is_metrics(name))

    @hook_impl
    def after_dataset_saved(self, dataset_name: str, data: Any) -> None:
        if dataset_name in self._expected and isinstance(data, Mapping):
            with self._lock:
                self._metrics[dataset_name] = data

    # trylast, and registered after RunTimingsHook: the very last lines of a run.
    @hook_impl(trylast=True)
    def after_pipeline_run(self, catalog: Any) -> None:
        if not self._expected:
            return
        rows = []
        for name in self._expected:
            metrics = self._metrics.get(name)
            if metrics is None:
                try:
                    metrics = catalog.load(name)
                except DatasetError as exc:
                    logger.warning("No test scores for %s: %s", name, exc)
                    continue
            rows.append(score_row(metrics))
        self._reset()
        if rows:
            self.last = rows
            logger.info(render_scores(rows))

    @hook_impl
    def on_pipeline_error(self) -> None:
        self._reset()


def _is_metrics(name: str) -> bool:
    variant, _, local = name.partition(".")
    return bool(variant) and local == METRICS
