"""Figure 1's arithmetic: steps to a training-error threshold, and the tanh/ReLU ratio.

Figure 1 plots the training error of each epoch as training goes (cuda-convnet's running
error over the batches just trained on). We measure it at a finer grain: the error over
consecutive blocks of `window` steps; a run reaches a threshold at the end of the first block
whose error is at or below it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def block_errors(step_hits: Sequence[int], batch_size: int, window: int) -> np.ndarray:
    """Training error of each complete block of `window` steps (a trailing part is dropped).

    Args:
      step_hits: correct predictions in each step's batch, in step order.
      batch_size: images per step.
      window: steps per block.
    """
    if window < 1 or batch_size < 1:
        raise ValueError(f"window={window} and batch_size={batch_size} must be positive.")
    hits = np.asarray(step_hits, np.int64)
    blocks = len(hits) // window
    per_block = hits[:blocks * window].reshape(blocks, window).sum(axis=1)
    return 1.0 - per_block / (window * batch_size)


def steps_to_threshold(step_hits: Sequence[int], batch_size: int, window: int,
                       threshold: float) -> int | None:
    """Steps until the first block whose error is <= `threshold`; None if none is."""
    errors = block_errors(step_hits, batch_size, window)
    # Errors are ratios of counts: 1 - 140/200 is 0.30000000000000004 in floating point.
    reached = np.flatnonzero(errors <= threshold + 1e-12)
    return int((reached[0] + 1) * window) if len(reached) else None


def speedup(relu_steps: int | None, tanh_steps: int | None,
            tanh_budget: int) -> tuple[float | None, bool]:
    """The tanh/ReLU ratio of steps to a threshold, and whether it is only a lower bound.

    A tanh run that never reached the threshold in its `tanh_budget` steps gives the lower
    bound budget / relu_steps. A ReLU run that never reached it gives no ratio (None).
    """
    if relu_steps is None:
        return None, False
    if tanh_steps is None:
        return tanh_budget / relu_steps, True
    return tanh_steps / relu_steps, False
