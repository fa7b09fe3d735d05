"""The verdict rule on known numbers, one case per outcome, and the claims judged from their
records (pure Python: no TensorFlow)."""

import json
from pathlib import Path

import pytest

from keras_alexnet.claims import stats
from keras_alexnet.claims.registry import CLAIMS, PAPER_TOP1_ERROR
from keras_alexnet.claims.table import summary_line
from keras_alexnet.claims.verdicts import judge, paper_size

DOCS_CLAIMS = Path(__file__).resolve().parents[1] / "docs" / "claims"


def _effect(mean, stderr, n=3):
    # A summary as stats.summarize gives it; n=3: t(2) = 4.303, the half-width 4.303 stderr.
    return {"mean": mean, "stderr": stderr, "n": n}


@pytest.mark.parametrize("mean, stderr, expected", [
    # The paper's size is 1.0: intervals (mean ± 4.303 * stderr) against 0 and 1.0.
    (1.5, 0.2, stats.REPRODUCED),  # [0.64, 2.36]: leaves out 0, reaches 1
    (0.5, 0.1, stats.REPRODUCED_SMALLER),  # [0.07, 0.93]: leaves out 0, wholly below 1
    (0.1, 0.1, stats.SMALLER_HERE),  # [-0.33, 0.53]: holds 0, wholly below 1
    (0.3, 0.2, stats.INCONCLUSIVE),  # [-0.56, 1.16]: holds 0 and 1
    (-0.5, 0.1, stats.OPPOSITE),  # [-0.93, -0.07]: leaves out 0 on the other side
])
def test_each_outcome_of_the_rule(mean, stderr, expected):
    assert stats.verdict(_effect(mean, stderr), +1, paper_size=1.0) == expected
    # The paper's direction negative: the same intervals, mirrored.
    assert stats.verdict(_effect(-mean, stderr), -1, paper_size=1.0) == expected


def test_rule_edges_direction_only_and_one_seed():
    lo, hi = stats.interval(_effect(0.5, 0.1))
    assert (lo, hi) == pytest.approx((0.5 - 0.4303, 0.5 + 0.4303))
    assert stats.interval(_effect(0.5, None, n=1)) is None
    # Without the paper's size, only the direction is judged.
    assert stats.verdict(_effect(0.5, 0.1), +1) == stats.REPRODUCED
    assert stats.verdict(_effect(0.1, 0.1), +1) == stats.INCONCLUSIVE
    assert stats.verdict(_effect(0.5, None, n=1), +1, paper_size=1.0) == stats.INCONCLUSIVE
    # A ratio's null is 1 (Figure 1).
    assert stats.verdict(_effect(2.6, 0.15, n=5), +1, null=1.0) == stats.REPRODUCED
    with pytest.raises(ValueError, match="paper_size=0"):
        stats.verdict(_effect(0.5, 0.1), +1, paper_size=0)
    # A claim of several effects is the least favourable of its effects' outcomes.
    assert stats.all_verdicts([stats.REPRODUCED, stats.REPRODUCED_SMALLER]) == (
        stats.REPRODUCED_SMALLER)
    assert stats.all_verdicts([stats.REPRODUCED, stats.INCONCLUSIVE, stats.OPPOSITE]) == (
        stats.OPPOSITE)
    assert stats.all_verdicts([]) == stats.INCONCLUSIVE


def test_the_papers_size_is_scaled_to_our_baseline_error():
    # LRN: 1.4 of the paper's 37.5 points; at our 12% baseline error that is 0.448 points.
    assert paper_size(CLAIMS["no_lrn"], 0.12) == pytest.approx(0.014 / PAPER_TOP1_ERROR * 0.12)
    assert paper_size(CLAIMS["no_lrn"], 0.12) == pytest.approx(0.00448)
    assert paper_size(CLAIMS["no_dropout"], 0.12) is None  # no number in the paper


def test_an_ablation_record_is_judged_with_its_bound():
    # Three seeds, variant - baseline: +0.9, +1.0, +1.1 points; baseline 12% error.
    summary = {**stats.summarize([0.009, 0.010, 0.011]), "points": True,
               "baseline": {"mean": 0.12}}
    judged = judge({"claim": "no_lrn", "summary": summary, "runs": []})
    # [0.75, 1.25] points: leaves out 0 and reaches the paper's 0.45 points.
    assert judged["verdict"] == stats.REPRODUCED
    assert judged["bound"] == (
        "95% interval [+0.75, +1.25] points (half-width 0.25, n=3); the paper's effect here "
        "0.45 points (paper: 1.4 of 37.5 points, scaled to our baseline's 12.00%)")


def test_published_records_are_judged_and_counted():
    records = [json.loads((DOCS_CLAIMS / f"{name}.json").read_text()) for name in CLAIMS
               if (DOCS_CLAIMS / f"{name}.json").is_file()]
    assert records
    for r in records:
        judged = judge(r)
        assert judged["verdict"] in stats.OUTCOMES and judged["bound"]
        assert r["verdict"] == judged["verdict"]  # the published verdicts are today's rule's
    line = summary_line(records)
    assert line.startswith(f"**{len(records)} claims:** ")
    assert "hours of wall time" in line
