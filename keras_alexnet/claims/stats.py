"""Summary statistics of a claim's runs, and the verdict rule.

An effect is judged by its 95% confidence interval over seeds (Student's t; ablations paired by
seed), which answers two questions: its direction (does the interval leave out zero?) and its
size (does it leave out the paper's effect, scaled to our error rate?). The interval's
half-width is the smallest effect the protocol resolves. With one seed there is no standard
error, so no interval and no verdict.
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

# The outcomes, from the most to the least favourable to the paper's claim.
REPRODUCED = "reproduced"  # the paper's direction, and the interval reaches its size
REPRODUCED_SMALLER = "reproduced, smaller"  # the paper's direction, wholly below its size
SMALLER_HERE = "smaller here"  # holds zero, but wholly below the paper's size
INCONCLUSIVE = "inconclusive"  # holds both zero and the paper's size
OPPOSITE = "opposite"  # leaves out zero on the other side
OUTCOMES = (REPRODUCED, REPRODUCED_SMALLER, SMALLER_HERE, INCONCLUSIVE, OPPOSITE)


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


def interval(summary: dict, null: float = 0.0) -> tuple[float, float] | None:
    """The 95% interval of `summary`'s mean - `null` (mean ± t * stderr), or None with fewer
    than two values."""
    mean, stderr, n = summary.get("mean"), summary.get("stderr"), summary.get("n", 0)
    if mean is None or stderr is None or n < 2:
        return None
    half = t_quantile_975(n - 1) * stderr
    return mean - null - half, mean - null + half


def verdict(summary: dict, expected_sign: int, null: float = 0.0,
            paper_size: float | None = None) -> str:
    """The verdict on an effect the paper says has sign `expected_sign` (+1 or -1).

    Args:
      summary: the effect over seeds (`summarize`'s mean, stderr, n).
      expected_sign: the paper's direction of (mean - null).
      null: the value of no effect (0 for a difference, 1 for a ratio).
      paper_size: the paper's effect (> 0, in the paper's direction, in the summary's unit,
        scaled to our error rate); None judges the direction only.
    Returns:
      One of OUTCOMES. In the paper's direction, the 95% interval [lo, hi] of the effect:
      lo > 0 is REPRODUCED if hi reaches `paper_size`, else REPRODUCED_SMALLER; hi < 0 is
      OPPOSITE; an interval holding 0 is SMALLER_HERE if hi < `paper_size`, else INCONCLUSIVE.
      Without a size, lo > 0 is REPRODUCED. Fewer than two seeds: INCONCLUSIVE.
    """
    if expected_sign not in (1, -1):
        raise ValueError(f"expected_sign={expected_sign} must be +1 or -1.")
    if paper_size is not None and not paper_size > 0:
        raise ValueError(f"paper_size={paper_size} must be positive (or None).")
    bounds = interval(summary, null)
    if bounds is None:
        return INCONCLUSIVE
    lo, hi = sorted(expected_sign * b for b in bounds)
    if hi < 0:
        return OPPOSITE
    below = paper_size is not None and hi < paper_size
    if lo > 0:
        return REPRODUCED_SMALLER if below else REPRODUCED
    return SMALLER_HERE if below else INCONCLUSIVE


def all_verdicts(verdicts: Sequence[str]) -> str:
    """The verdict on a claim made of several effects that must all hold (e.g. removing *any*
    middle layer costs): the least favourable of theirs (OUTCOMES' order)."""
    if not verdicts:
        return INCONCLUSIVE
    return max(verdicts, key=OUTCOMES.index)


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
