"""The training callbacks, on real Keras fits and real signals sent to this process."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest

from fashion_cnn.model.callbacks import SignalsBetweenSteps


@pytest.fixture(autouse=True)
def ctrl_c_raises_keyboard_interrupt():
    """Python's own Ctrl-C handler, whatever this process inherited: a test run started in the
    background by a script (CI runners, nohup, cron) inherits SIGINT ignored, and an ignored
    signal is, rightly, left ignored by the callback."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def fit_with_signals(signals_at: dict[int, int]) -> list[int]:
    """Fit a tiny model one image per step, sending this process ``signals_at[step]`` signals as each
    step begins; return the steps that ended."""
    import keras

    class SendSignals(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.ended: list[int] = []

        def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
            for _ in range(signals_at.get(batch, 0)):
                os.kill(os.getpid(), signal.SIGINT)

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            self.ended.append(batch)

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    sender = SendSignals()
    with pytest.raises(KeyboardInterrupt), SignalsBetweenSteps() as between_steps:
        model.fit(np.zeros((20, 4)), np.zeros((20, 2)), batch_size=1, epochs=1, verbose=0,
                  callbacks=[sender, between_steps])
    return sender.ended


def test_ctrl_c_during_training_takes_effect_when_the_step_under_way_ends():
    assert fit_with_signals({3: 1}) == [0, 1, 2, 3]  # without the callback: [0, 1, 2]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is back


def test_a_second_ctrl_c_takes_effect_at_once():
    assert fit_with_signals({3: 2}) == [0, 1, 2]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_ignored_signals_stay_ignored():
    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        with SignalsBetweenSteps():
            assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGTERM, previous)
