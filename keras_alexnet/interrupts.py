"""Ctrl-C and SIGTERM during training: finish the step, save a checkpoint, stop cleanly.

A run killed between checkpoints loses the steps since the last one, and a traceback tells the
user nothing about how to go on. While `StopSignals` is active, the first SIGINT or SIGTERM
only sets a flag that the training loop reads at the next step boundary; it then saves and
raises `TrainingInterrupted`, whose message says how to resume. A second signal stops at once
(the default behaviour), for a step that never ends.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType

from absl import logging

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on a signal, after saving a checkpoint; the message says how to resume."""


class StopSignals:
    """A context manager: SIGINT/SIGTERM ask the loop to stop at the next step boundary.

    Signal handlers can only be set from the main thread; elsewhere (or with `enabled=False`)
    it does nothing and signals keep their usual effect.
    """

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.received: str | None = None  # the signal's name, once one arrived
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopSignals:
        if self.enabled:
            self._previous = {s: signal.signal(s, self._handle) for s in _SIGNALS}
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self._restore()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.received is not None:
            self._restore()
            raise KeyboardInterrupt(f"{name} again: stopped without saving.")
        self.received = name
        logging.warning("%s: saving a checkpoint after this step, then stopping (send it "
                        "again to stop at once, unsaved).", name)

    def _restore(self) -> None:
        for s, handler in self._previous.items():
            if handler is not None:  # None: set from C, not restorable from Python
                signal.signal(s, handler)
        self._previous = {}
