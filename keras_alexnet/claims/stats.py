"""Summary statistics of a claim's runs, and the verdict rule.

An effect is a result only if its 95% confidence interval (Student's t over the seeds) leaves
out zero; otherwise it is "inconclusive", whatever its sign. So a difference smaller than its
standard error never is a result (t >= 1), and two seeds need an effect of 12.7 standard
errors: with 2 seeds, "at least one standard error" of paired differences would only ask that
both differences have the same sign, a coin toss when there is no effect. With one seed there
is no standard error, so no verdict.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

# A run whose test error is within half a point of chance's (1 - 1/classes: what a constant
# prediction scores on balanced classes) did not learn: seen in lrn_small, where runs without
# LRN either overflowed or stopped at exactly 90.0% with a finite loss.
CHANCE_MARGIN = 0.005

# Student's t, two-sided 95% (the 0.975 quantile), by degrees of freedom (n - 1).
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
         2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
         2.060, 2.056, 2.052, 2.048, 2.045, 2.042)

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


def t_quantile_975(df: int) -> float:
    """Student's t 0.975 quantile with `df` degrees of freedom (a 95% interval's half-width
    in standard errors); beyond the table, the Cornish-Fisher expansion (error < 0.001)."""
    if df < 1:
        raise ValueError(f"df={df} must be >= 1.")
    if df <= len(_T975):
        return _T975[df - 1]
    z = 1.959964
    return z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df ** 2)


def verdict(summary: dict, expected_sign: int, null: float = 0.0) -> str:
    """The verdict on an effect the paper says has sign `expected_sign` (+1 or -1).

    Args:
      summary: the effect over seeds (`summarize`'s mean, stderr, n).
      expected_sign: the paper's direction of (mean - null).
      null: the value of no effect (0 for a difference, 1 for a ratio).
    Returns:
      "inconclusive" with fewer than 2 seeds or when the 95% interval mean ± t * stderr holds
      `null`; otherwise "reproduced" if mean - null has the paper's sign, else "not
      reproduced". The size of the effect is reported beside the verdict, not judged by it.
    """
    if expected_sign not in (1, -1):
        raise ValueError(f"expected_sign={expected_sign} must be +1 or -1.")
    mean, stderr, n = summary.get("mean"), summary.get("stderr"), summary.get("n", 0)
    if mean is None or stderr is None or n < 2:
        return INCONCLUSIVE
    effect = mean - null
    if abs(effect) <= t_quantile_975(n - 1) * stderr:
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


def failures_text(failures: dict[str, str]) -> str:
    """{run: why_not_trained's reason} as a note lists them: "run reason, run reason"."""
    return ", ".join(f"{name} {why}" for name, why in failures.items())
