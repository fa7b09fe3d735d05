"""Progress for the long passes after training: a bar with ETA per batch, a line per phase.

Evaluation, ten-crop, feature extraction and export take minutes on a CPU; the commands show
these, the library stays quiet unless asked (`progress=True`).
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

import keras

# Seconds between a bar's updates when stdout is no terminal (a log file, a pipe): there every
# update is a new line, and Keras' default (0.05 s) would write thousands.
PIPE_INTERVAL = 10.0

T = TypeVar("T")


def known_batches(dataset: Any) -> int | None:
    """The number of batches of a tf.data.Dataset or a sized iterable, None when unknown."""
    cardinality = getattr(dataset, "cardinality", None)
    if cardinality is not None:
        n = int(cardinality())
        return n if n >= 0 else None  # tf.data's INFINITE (-1) and UNKNOWN (-2)
    return len(dataset) if hasattr(dataset, "__len__") else None


def batch_bar(num_batches: int | None, enabled: bool = True) -> keras.utils.Progbar | None:
    """A Keras bar over `num_batches` batches (ETA shown when the number is known), or None.

    Args:
      num_batches: the batches expected; None shows a count and the time per batch only.
      enabled: False returns None (the caller skips its updates).
    """
    if not enabled:
        return None
    interval = 0.05 if sys.stdout.isatty() else PIPE_INTERVAL
    return keras.utils.Progbar(num_batches, interval=interval, unit_name="batch")


class BudgetBar:
    """Progress of a run that a time budget ends: steps done, the time left, the latest values.

    Where the budget, not an epoch, ends the run, an epoch bar has no target it will reach
    (Keras' bar shows "230/Unknown"); this line counts the steps and the minutes left instead.
    `update(n, values)` has `keras.utils.Progbar`'s form, so the loop drives either.
    """

    def __init__(self, deadline: float, *, interval: float | None = None) -> None:
        self.deadline = deadline  # time.monotonic() at which the budget ends
        self.interval = interval if interval is not None else (
            0.05 if sys.stdout.isatty() else PIPE_INTERVAL)
        self._last = -float("inf")

    def update(self, n: int, values: list[tuple[str, float]] | None = None) -> None:
        now = time.monotonic()
        if now - self._last < self.interval:
            return
        self._last = now
        left = max(self.deadline - now, 0.0)
        shown = "".join(f" - {name}: {value:.4g}" for name, value in values or [])
        end = "\r" if sys.stdout.isatty() else "\n"
        sys.stdout.write(f"{n} steps - {left / 60:.1f} min left{shown}{end}")
        sys.stdout.flush()


def tracked(batches: Iterable[T], num_batches: int | None, enabled: bool = True
            ) -> Iterator[T]:
    """Yields `batches` unchanged, advancing a `batch_bar` after each (when `enabled`).

    The bar's line is ended when the batches run out, also short of `num_batches`.
    """
    bar = batch_bar(num_batches, enabled)
    done = 0
    for batch in batches:
        yield batch
        done += 1
        if bar is not None:
            bar.update(done)
    if bar is not None and (bar.target is None or done < bar.target):
        bar.update(done, finalize=True)


@contextlib.contextmanager
def phase(label: str, enabled: bool = True) -> Iterator[None]:
    """Writes `<label>... done in 12 s` on stdout around a step without a batch count.

    The label comes first, so a slow step shows what it is doing; "failed" ends the line when
    the step raises (the error is the caller's to report).
    """
    if not enabled:
        yield
        return
    sys.stdout.write(f"{label}... ")
    sys.stdout.flush()
    start = time.monotonic()
    try:
        yield
    except BaseException:
        sys.stdout.write("failed\n")
        sys.stdout.flush()
        raise
    sys.stdout.write(f"done in {time.monotonic() - start:.0f} s\n")
    sys.stdout.flush()
