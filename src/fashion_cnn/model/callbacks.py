"""Keras callbacks of the project (imported only where Keras is already loaded)."""

from __future__ import annotations

import time

import keras


class StopAtThreshold(keras.callbacks.Callback):
    """Stop training once ``monitor`` is ``below`` (or ``above``) ``threshold`` at an epoch's end.

    The course's previous lesson: "stop when the loss falls below 0.4". Unlike EarlyStopping,
    which waits for a metric to stop improving, this stops as soon as a target is reached.
    """

    def __init__(self, monitor: str = "loss", threshold: float = 0.4, mode: str = "below") -> None:
        super().__init__()
        if mode not in ("below", "above"):
            raise ValueError(f"mode must be 'below' or 'above', got {mode!r}")
        self.monitor, self.threshold, self.mode = monitor, threshold, mode
        self.stopped_epoch: int | None = None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        if self.monitor not in logs:
            raise KeyError(
                f"StopAtThreshold monitors '{self.monitor}', which training does not report; "
                f"available: {sorted(logs)}"
            )
        value = float(logs[self.monitor])
        reached = value < self.threshold if self.mode == "below" else value > self.threshold
        if reached:
            self.stopped_epoch = epoch + 1
            print(f"\nStopping: {self.monitor} = {value:.4f} is {self.mode} {self.threshold} after epoch {epoch + 1}.")
            self.model.stop_training = True


class EpochTimer(keras.callbacks.Callback):
    """Record each epoch's wall time, so histories and comparisons report seconds per epoch."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.seconds.append(time.perf_counter() - self._start)
