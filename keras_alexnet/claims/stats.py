"""Summary statistics of a claim's runs, and the verdict rule.

A difference is a result only if it is at least its standard error: smaller differences are
"inconclusive" whatever their sign. With one seed there is no standard error, so no verdict.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

# A run whose test error is within half a point of chance's (1 - 1/classes: what a constant
# prediction scores on balanced classes) did not learn: seen in lrn_small, where runs without
# LRN either overflowed or stopped at exactly 90.0% with a finite loss.
CHANCE_MARGIN = 0.005

REPRODUCED = "reproduced"
NOT_REPRODUCED = "not reproduced"
INCONCLUSIVE = "inconclusive"


def summarize(values: Sequence[float]) -> dict[str, float | int | None]:
    """{"mean", "std" (sample, n-1), "stderr" (std / sqrt(n)), "n"}; std is None for n < 2."""
    values = [float(v) for v in values]
    n = len(values)
    if not n:
        return {"mean": None, "std": None, "stderr": None, "n": 0}
    mean = sum(values) / n
    if n < 2:
        return {"mean": mean, "std": None, "stderr": None, "n": n}
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return {"mean": mean, "std": std, "stderr": std / math.sqrt(n), "n": n}


def verdict(effect: float | None, stderr: float | None, expected_sign: int) -> str:
    """The verdict on an effect the paper says has sign `expected_sign` (+1 or -1).

    "inconclusive" when there is no effect or standard error (fewer than 2 runs), or when
    |effect| < stderr; otherwise "reproduced" if the sign is the paper's, else "not reproduced".
    The size of the effect is reported beside the verdict, not judged by it.
    """
    if expected_sign not in (1, -1):
        raise ValueError(f"expected_sign={expected_sign} must be +1 or -1.")
    if effect is None or stderr is None or abs(effect) < stderr:
        return INCONCLUSIVE
    return REPRODUCED if effect * expected_sign > 0 else NOT_REPRODUCED


def all_verdicts(verdicts: Sequence[str]) -> str:
    """The verdict on a claim made of several effects that must all hold (e.g. removing *any*
    middle layer costs): reproduced if every one is, not reproduced if any is not, else
    inconclusive."""
    if verdicts and all(v == REPRODUCED for v in verdicts):
        return REPRODUCED
    return NOT_REPRODUCED if NOT_REPRODUCED in verdicts else INCONCLUSIVE


def at_chance(error: float, num_classes: int) -> bool:
    """Whether a test `error` (a fraction) says the network learned nothing."""
    if num_classes < 2:
        raise ValueError(f"num_classes={num_classes} must be >= 2.")
    return not math.isfinite(error) or error >= 1 - 1 / num_classes - CHANCE_MARGIN


def why_not_trained(error: float, num_classes: int | None, diverged: bool = False) -> str | None:
    """Why a run did not learn (its note's words), or None if it did.

    Args:
      error: its final test error (a fraction).
      num_classes: the task's classes; None checks only `diverged` (smoke tests, whose few
        steps leave every run near chance).
      diverged: whether its training loss overflowed.
    """
    if diverged:
        return "diverged (non-finite loss)"
    if num_classes is None or not at_chance(error, num_classes):
        return None
    if not math.isfinite(error):
        return "no finite test error"
    return f"stayed at chance ({100 * error:.1f}% test error)"
