"""Keras callbacks of the project (imported only where Keras is already loaded)."""

from __future__ import annotations

import signal
import threading
import time
from typing import Any

import keras


class StopAtThreshold(keras.callbacks.Callback):
    """Stop training once ``monitor`` is ``below`` (or ``above``) ``threshold`` at an epoch's end: the course's
    previous lesson ("stop when the loss falls below 0.4"). Unlike EarlyStopping, which waits for a metric to
    stop improving, this stops as soon as a target is reached. Its settings are checked in parameters.py."""

    def __init__(self, monitor: str = "loss", threshold: float = 0.4, mode: str = "below") -> None:
        super().__init__()
        self.monitor, self.threshold, self.mode = monitor, threshold, mode

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self.monitor not in (logs := logs or {}):
            raise KeyError(f"StopAtThreshold monitors '{self.monitor}', which training does not report; "
                           f"available: {sorted(logs)}")
        value = float(logs[self.monitor])
        if (value < self.threshold) if self.mode == "below" else (value > self.threshold):
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


class SignalsBetweenSteps(keras.callbacks.Callback):
    """Within ``with SignalsBetweenSteps() as callback: model.fit(..., callbacks=[callback])``, Ctrl-C and SIGTERM
    take effect between two training (or validation) steps: the handler in place before (the run guard's,
    Python's KeyboardInterrupt, a scheduler's) is called from the next step's end.

    Python raises KeyboardInterrupt wherever the main thread happens to be, and inside TensorFlow's Python
    layers that sometimes left its heap corrupt: about one Ctrl-C in ten during training ended in glibc's
    "free(): invalid next size" abort instead of the run's summary. A second signal before the step ends is
    handled at once. Ignored and default dispositions are left alone (and only the main thread has handlers)."""

    def __init__(self) -> None:
        super().__init__()
        self._previous: dict[int, Any] = {}
        self._pending: int | None = None

    def __enter__(self) -> SignalsBetweenSteps:
        if threading.current_thread() is threading.main_thread():
            self._previous = {signum: signal.signal(signum, self._note) for signum in (signal.SIGINT, signal.SIGTERM)
                              if callable(signal.getsignal(signum))}
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, traceback: Any) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        if kind is None:
            self._deliver()  # a signal during fit's last moments
        self._previous = {}

    def _note(self, signum: int, frame: Any) -> None:
        if self._pending is not None:
            self._previous[signum](signum, frame)
        self._pending = signum

    def _deliver(self, *_: Any, **__: Any) -> None:
        signum, self._pending = self._pending, None
        if signum is not None:
            self._previous[signum](signum, None)

    # Keras calls these with (batch or epoch, logs).
    on_train_batch_end = on_test_batch_end = on_epoch_end = _deliver
