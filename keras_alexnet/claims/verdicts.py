"""Each claim's verdict, judged from its record by the one rule (`stats.verdict`).

The verdict is recomputed from a record's numbers whenever a record is written or the table is
generated, so published records are judged by the current rule without training again. The
paper's size of an effect is its effect relative to its own error rate, scaled to our
baseline's error (e.g. LRN's 1.4 of 37.5 points, times our baseline's error).
"""

from __future__ import annotations

from typing import Any

from keras_alexnet.claims import stats
from keras_alexnet.claims.registry import get_claim


def judge(record: dict[str, Any]) -> dict[str, Any]:
    """{"verdict", "bound"} of a claim's record: the outcome, and the text of its 95% interval,
    half-width and (where the paper gives a number) the paper's size here.

    A claim of several effects (`depth`) gets each effect's outcome under "by_variant" and the
    least favourable of them as its verdict.
    """
    claim = get_claim(record["claim"])
    effects = _effects(record)
    judged = {name: _judge_one(claim, effect, baseline)
              for name, (effect, baseline) in effects.items()}
    if len(judged) == 1:
        (only,) = judged.values()
        return {"verdict": only["verdict"], "bound": only["text"]}
    return {"verdict": stats.all_verdicts([j["verdict"] for j in judged.values()]),
            "bound": "; ".join(f"{name}: {j['verdict']}, {j['text']}"
                               for name, j in judged.items())}


def judged(record: dict[str, Any]) -> dict[str, Any]:
    """`record` with its verdict and bound (`judge`)."""
    return {**record, **judge(record)}


def paper_size(claim: Any, baseline_error: float | None) -> float | None:
    """The paper's effect (an error fraction) scaled to `baseline_error`; None where the paper
    gives no number or no error rate to scale by."""
    if claim.paper_value is None or claim.paper_error is None or baseline_error is None:
        return None
    # paper_value is in percentage points, paper_error a fraction.
    return claim.paper_value / 100 / claim.paper_error * baseline_error


def _effects(record: dict[str, Any]) -> dict[str, tuple[dict[str, Any], float | None]]:
    """{effect name: (its summary over seeds, our baseline's error for the paper's size)}."""
    summary, name = record["summary"], record["claim"]
    if name == "features":  # trained fc7 - raw pixels, paired by seed
        diff = stats.summarize([r["trained"] - r["raw_pixels"] for r in record["runs"]])
        return {name: ({**diff, "points": True}, None)}
    if name == "lrn_small":
        return {name: (summary, (summary.get("with_lrn") or {}).get("mean"))}
    by = summary.get("by_variant") or {name: summary}
    return {v: ({**e, "points": summary.get("points", False)},
                (e.get("baseline") or {}).get("mean")) for v, e in by.items()}


def _judge_one(claim: Any, effect: dict[str, Any], baseline: float | None) -> dict[str, Any]:
    size = paper_size(claim, baseline)
    outcome = stats.verdict(effect, +1, null=claim.effect_null, paper_size=size)
    bounds = stats.interval(effect, claim.effect_null)
    scale, unit = (100, " points") if effect.get("points") else (1, "")
    if bounds is None:
        text = f"no interval (n={effect.get('n', 0)}: two seeds are needed)"
    else:
        # A ratio's interval reads as ratios (Figure 1: around 1), a difference's as one.
        lo, hi = (scale * (b + claim.effect_null) for b in bounds)
        sign = "+" if scale == 100 else ""
        text = (f"95% interval [{lo:{sign}.2f}, {hi:{sign}.2f}]{unit} "
                f"(half-width {(hi - lo) / 2:.2f}, n={effect['n']})")
    if size is not None:
        text += (f"; the paper's effect here {100 * size:.2f} points (paper: "
                 f"{claim.paper_value:g} of {100 * claim.paper_error:g} points, scaled to our "
                 f"baseline's {100 * baseline:.2f}%)")
    return {"verdict": outcome, "text": text}
