"""The claims framework: Figure 1's arithmetic, the statistics and verdict, the CLAIMS.md table,
the JSON records, resumability, and every claim end to end at a tiny size."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from test_scripts import _run_no_tf

from keras_alexnet.claims import CLAIMS, run_claim, stats, table, thresholds
from keras_alexnet.claims.full_claims import ABLATION_DIR, BASELINE, VARIANTS
from keras_alexnet.claims.records import CLAIM_FIELDS
from keras_alexnet.claims.registry import FULL
from keras_alexnet.claims.verdicts import judge

_PUBLISHED_NO_LRN = Path(__file__).resolve().parent.parent / "docs" / "claims" / "no_lrn.json"


def _hits_for(errors_per_step, batch_size):
    """Per-step hit counts whose step errors are `errors_per_step` (exact multiples)."""
    return [round((1 - e) * batch_size) for e in errors_per_step]


def test_block_errors_and_steps_to_threshold_on_a_synthetic_curve():
    # Error falls by 0.1 every 10 steps from 0.9: blocks of 10 steps give 0.9, 0.8, ..., 0.1.
    batch, window = 20, 10
    curve = np.repeat(np.arange(0.9, 0.0, -0.1), window)
    hits = _hits_for(curve, batch)
    np.testing.assert_allclose(thresholds.block_errors(hits, batch, window),
                               np.arange(0.9, 0.0, -0.1), atol=1e-12)
    # 0.25: the first block at or below it is the 8th (0.2), which ends at step 80.
    assert thresholds.steps_to_threshold(hits, batch, window, 0.25) == 80
    assert thresholds.steps_to_threshold(hits, batch, window, 0.3) == 70  # equal counts
    assert thresholds.steps_to_threshold(hits, batch, window, 0.05) is None
    # A trailing partial block is not a block.
    assert len(thresholds.block_errors(hits[:-3], batch, window)) == 8


def test_speedup_ratio_and_lower_bound():
    # ReLU reaches 25% at step 100, tanh at 600: the paper's 6x.
    assert thresholds.speedup(100, 600, 1000) == (6.0, False)
    # tanh never got there in its 1000-step budget: at least 10x.
    assert thresholds.speedup(100, None, 1000) == (10.0, True)
    assert thresholds.speedup(None, 600, 1000) == (None, False)


def test_summarize_matches_numpy():
    values = [0.12, 0.15, 0.11, 0.2]
    s = stats.summarize(values)
    assert s["n"] == 4
    assert s["mean"] == pytest.approx(np.mean(values))
    assert s["std"] == pytest.approx(np.std(values, ddof=1))
    assert s["stderr"] == pytest.approx(np.std(values, ddof=1) / 2)
    assert stats.summarize([0.3]) == {"mean": 0.3, "std": None, "stderr": None, "n": 1}


def test_verdict_rule():
    # An effect smaller than its standard error is no result, whatever its sign.
    def effect(values):
        return stats.summarize(values)

    # n=5: mean 0.03, stderr 0.005, t(4) = 2.776: the interval 0.03 ± 0.014 leaves out 0.
    clear = [0.02, 0.025, 0.03, 0.035, 0.04]
    assert stats.verdict(effect(clear), +1) == stats.REPRODUCED
    assert stats.verdict(effect([-v for v in clear]), +1) == stats.OPPOSITE
    assert stats.verdict(effect([-v for v in clear]), -1) == stats.REPRODUCED
    # An effect smaller than its standard error is no result, whatever its sign.
    assert stats.verdict(effect([-0.01, 0.03]), +1) == stats.INCONCLUSIVE
    # Two seeds that agree in sign are not enough: 0 and -0.03 points (mean -0.015, stderr
    # 0.015) were non_overlapping_pool's; the 95% interval is -0.015 ± 0.19.
    assert stats.verdict(effect([0.0, -0.0003]), +1) == stats.INCONCLUSIVE
    assert stats.verdict(effect([0.015, 0.016]), +1) == stats.REPRODUCED  # 31 stderrs
    assert stats.verdict(effect([0.03]), +1) == stats.INCONCLUSIVE  # one seed
    # A ratio's null is 1: 3.1x and 2.3x over two seeds (figure1) is 2.7 ± 5.0.
    assert stats.verdict(effect([3.12, 2.34]), +1, null=1.0) == stats.INCONCLUSIVE
    assert stats.verdict(effect([3.12, 2.34, 2.9, 2.5, 2.8]), +1, null=1.0) == stats.REPRODUCED


def test_t_quantiles_match_scipy():
    scipy_stats = pytest.importorskip("scipy.stats")
    for df in range(1, 200):
        assert stats.t_quantile_975(df) == pytest.approx(scipy_stats.t.ppf(0.975, df), abs=1e-3)
    with pytest.raises(ValueError, match="df=0"):
        stats.t_quantile_975(0)


def _ablation_runs(errors):
    return [{"name": f"{v}_seed{s}", "variant": v, "seed": s, "test_top1_error": e}
            for v, by_seed in errors.items() for s, e in by_seed.items()]


def test_a_finished_run_is_read_back_only_with_its_settings(tmp_path):
    from keras_alexnet.claims.records import cached_run

    calls = []

    def measure(work_dir):
        calls.append(work_dir)
        time.sleep(0.2)
        return {"error": 0.1}

    settings = {"data": "fashion_mnist", "budget_steps": 1500, "thresholds": (0.3, 0.2)}
    (tmp_path / "claim" / "run_seed0").mkdir(parents=True)  # an interrupted earlier sitting
    first = cached_run(tmp_path, "claim", "run_seed0", measure, settings)
    assert 0.2 <= first.pop("wall_seconds") < 60
    assert first == {"name": "run_seed0", "settings": {**settings, "thresholds": [0.3, 0.2]},
                     "error": 0.1, "resumed": True}
    again = cached_run(tmp_path, "claim", "run_seed0", measure, settings)
    assert again.pop("wall_seconds") >= 0.2 and again == first
    assert calls == [tmp_path / "claim" / "run_seed0"]  # measured once
    with pytest.raises(ValueError, match=r"^\S+run_seed0\.json is a finished run with other "
                       r"settings \(data='fashion_mnist' there, 'folder:/x' now; "
                       r"budget_steps=1500 there, 3000 now\): use another --out_dir, or delete "
                       r"that file and its work dir to run it again\.$"):
        cached_run(tmp_path, "claim", "run_seed0", measure,
                   {**settings, "budget_steps": 3000, "data": "folder:/x"})
    assert len(calls) == 1
    assert cached_run(tmp_path, "claim", "run_seed1", measure, settings)["resumed"] is False


def test_ablation_effect_is_paired_by_seed():
    from keras_alexnet.claims.full_claims import ablation_summary

    # Seed 1 is harder for both networks by 4 points; the variant costs 1.5 points in both.
    # Paired by seed the effect is clear; the unpaired standard error (sqrt(se_v^2 + se_b^2),
    # 2.9 points) would have called it inconclusive.
    errors = {"baseline": {0: 0.10, 1: 0.14}, "no_lrn": {0: 0.115, 1: 0.156}}
    s = ablation_summary(_ablation_runs(errors), ["no_lrn"], "test_top1_error")
    diffs = [errors["no_lrn"][k] - errors["baseline"][k] for k in (0, 1)]
    assert s["mean"] == pytest.approx(np.mean(diffs))
    assert s["std"] == pytest.approx(np.std(diffs, ddof=1))
    assert s["stderr"] == pytest.approx(np.std(diffs, ddof=1) / np.sqrt(2))
    assert stats.verdict(s, +1) == stats.REPRODUCED and s["n"] == 2
    assert s["baseline"]["mean"] == pytest.approx(0.12)
    assert s["variant"]["mean"] == pytest.approx(0.1355)


def test_depth_judges_each_removed_layer_alone():
    from keras_alexnet.claims.full_claims import ablation_summary

    # Without conv3 +4 points, without conv4 -0.5: pooled, +1.8 would look like the paper's
    # "any middle layer costs ~2 points"; judged alone, conv4's removal did not cost.
    errors = {"baseline": {0: 0.10, 1: 0.12}, "no_conv3": {0: 0.14, 1: 0.161},
              "no_conv4": {0: 0.095, 1: 0.1149}}
    s = ablation_summary(_ablation_runs(errors), ["no_conv3", "no_conv4"], "test_top1_error")
    by = s["by_variant"]
    judged = judge({"claim": "depth", "runs": [], "summary": {**s, "points": True}})
    # conv3's +4.05 ± 0.64 points reaches the paper's 2 of 37.5 points scaled to our 11%
    # baseline (0.59); conv4's removal lowered the error: the claim is the least favourable.
    assert judged["verdict"] == stats.OPPOSITE
    assert judged["bound"].startswith("no_conv3: reproduced, 95% interval [+3.41, +4.69] points")
    assert "no_conv4: opposite, 95% interval [-0.57, -0.44] points" in judged["bound"]
    assert s["mean"] == pytest.approx(by["no_conv4"]["mean"]) == pytest.approx(-0.00505)
    text = table.measured_text({**s, "unit": "of test top-1 error", "points": True})
    assert text.startswith("no_conv3: +4.05 ± ") and "; no_conv4: -0.50 ± " in text
    assert text.endswith(" points (n=2) of test top-1 error")


def test_a_run_at_chance_learned_nothing():
    # 10 balanced classes: a constant prediction scores exactly 90% error.
    assert stats.at_chance(0.9, 10) and stats.at_chance(0.897, 10)
    assert stats.at_chance(float("nan"), 10) and stats.at_chance(1.0, 10)
    assert not stats.at_chance(0.85, 10) and not stats.at_chance(0.12, 10)
    assert stats.at_chance(0.5, 2) and not stats.at_chance(0.45, 2)
    with pytest.raises(ValueError, match="num_classes=1"):
        stats.at_chance(0.5, 1)
    # The reason a note gives; smoke tests (num_classes=None) judge only the loss.
    assert stats.why_not_trained(0.12, 10) is None
    assert stats.why_not_trained(0.9, 10) == "stayed at chance (90.0% test error)"
    assert stats.why_not_trained(float("nan"), 10) == "no finite test error"
    assert stats.why_not_trained(0.12, 10, diverged=True) == "diverged (non-finite loss)"
    assert stats.why_not_trained(0.9, None) is None


def _lrn_run(use_lrn, seed, error, diverged=False):
    return {"name": f"{'lrn' if use_lrn else 'no_lrn'}_seed{seed}", "use_lrn": use_lrn,
            "seed": seed, "final_test_error": error, "diverged": diverged}


def test_lrn_small_compares_only_seeds_where_both_networks_learned():
    from keras_alexnet.claims.small_claims import lrn_summary

    # Seed 0 overflowed without LRN, seed 2 stayed at chance without it (a finite loss):
    # both are left out; seeds 1 and 3 are compared, paired.
    with_lrn = {0: 0.12, 1: 0.14, 2: 0.13, 3: 0.11}
    without = {0: 0.9, 1: 0.17, 2: 0.9, 3: 0.12}
    runs = ([_lrn_run(True, s, e) for s, e in with_lrn.items()]
            + [_lrn_run(False, s, e, diverged=s == 0) for s, e in without.items()])
    summary, note = lrn_summary(runs, [0, 1, 2, 3], 10)
    diffs = [without[s] - with_lrn[s] for s in (1, 3)]
    assert summary["seeds_compared"] == [1, 3] and summary["n"] == 2
    assert summary["mean"] == pytest.approx(np.mean(diffs))
    assert summary["std"] == pytest.approx(np.std(diffs, ddof=1))
    assert summary["without_lrn"]["mean"] == pytest.approx(np.mean([0.17, 0.12]))
    assert summary["did_not_train_count"] == {"with_lrn": 0, "without_lrn": 2}
    assert set(summary["did_not_train"]) == {"no_lrn_seed0", "no_lrn_seed2"}
    assert "did not train: 2 of 4 runs without LRN, 0 of 4 with" in note
    assert "no_lrn_seed0 diverged" in note and "no_lrn_seed2 stayed at chance" in note
    # Smoke tests (num_classes=None) drop only the overflowed run.
    assert lrn_summary(runs, [0, 1, 2, 3], None)[0]["seeds_compared"] == [1, 2, 3]


def test_ablations_compare_only_seeds_where_every_run_learned():
    from keras_alexnet.claims.full_claims import trained_seeds

    runs = [{"name": f"{v}_seed{s}", "variant": v, "seed": s, "test_top1_error": e}
            for v, s, e in (("baseline", 0, 0.11), ("baseline", 1, 0.12), ("baseline", 2, 0.9),
                            ("no_lrn", 0, 0.13), ("no_lrn", 1, 0.899), ("no_lrn", 2, 0.14))]
    kept, failures = trained_seeds(runs, 10)
    assert {r["seed"] for r in kept} == {0} and len(kept) == 2
    assert failures == {"baseline_seed2": "stayed at chance (90.0% test error)",
                        "no_lrn_seed1": "stayed at chance (89.9% test error)"}
    assert trained_seeds(runs, None) == (runs, {})  # smoke tests keep every run
    # A run whose loss overflowed is a finished run with no errors; its seed is left out too.
    runs[3] = {**runs[3], "diverged": True, "test_top1_error": None}
    kept, failures = trained_seeds(runs, 10)
    assert kept == [] and failures["no_lrn_seed0"] == "diverged (non-finite loss)"


KNOWN = {
    "claim": "no_lrn", "title": "LRN lowers the error", "section": "3.3",
    "paper_figure": "text", "paper": {"text": "LRN lowers top-1 by 1.4 points", "value": 1.4},
    "settings": {"data": "fashion_mnist", "network": "AlexNet", "budget": "1500 steps per run",
                 "seeds": [0, 1], "precision": "mixed_bfloat16"},
    "runs": [], "summary": {"mean": 0.012, "std": 0.004, "stderr": 0.003, "n": 2,
                            "unit": "points"},
    "measured": "0.012 ± 0.004 (n=2) points", "verdict": "reproduced",
    "verdict_note": "a | b", "differences": "Fashion-MNIST.",
    "command": "python scripts/reproduce.py --claim=no_lrn --seeds=0,1",
    "figure": "no_lrn.png", "smoke": False,
}


def test_table_generator_turns_known_json_into_markdown():
    expected = (table.HEADER +
                "| `no_lrn`: LRN lowers the error | Section 3.3, text | LRN lowers top-1 by "
                "1.4 points | fashion_mnist; AlexNet; 1500 steps per run; seeds 0,1; "
                "mixed_bfloat16 | 0.012 ± 0.004 (n=2) points | **inconclusive**: 95% interval "
                "[-0.03, 0.05] (half-width 0.04, n=2); a \\| b | "
                "`python scripts/reproduce.py --claim=no_lrn --seeds=0,1` |\n")
    # The table judges each record by today's rule: the record's stale "reproduced" is not
    # what 0.012 ± 12.7 * 0.003 says.
    assert table.claims_table([KNOWN]) == expected
    # The small claims' records name no precision: they trained in float32.
    fp32 = {**KNOWN, "settings": {k: v for k, v in KNOWN["settings"].items()
                                  if k != "precision"}}
    assert "seeds 0,1; float32 |" in table.claims_table([fp32])
    assert table.measured_text(KNOWN["summary"]) == "0.012 ± 0.004 (n=2) points"
    # Differences of error fractions read in signed points, as the paper gives its effects.
    assert table.measured_text({"mean": -0.00065, "std": 0.00474, "n": 2, "points": True,
                                "unit": "of test error"}) == (
        "-0.07 ± 0.47 points (n=2) of test error")
    assert table.measured_text({"mean": 0.0296, "std": None, "n": 1, "points": True}) == (
        "+2.96 points (one run) (n=1)")
    assert table.measured_text({"mean": 2.0, "std": None, "n": 1, "lower_bound": True}) == (
        ">= 2 (one run: no spread) (n=1)")


def test_write_claims_markdown_reads_the_json_files(tmp_path):
    (tmp_path / "no_lrn.json").write_text(json.dumps(KNOWN))
    text = table.write_claims_markdown(tmp_path, tmp_path / "CLAIMS.md").read_text()
    assert table.claims_table([KNOWN]) in text
    assert "![no_lrn](claims/no_lrn.png)" in text
    assert "`figure1`" in text  # listed as not run yet


def _check_record(record, name):
    assert set(CLAIM_FIELDS) <= set(record)
    assert record["claim"] == name and record["smoke"] is True
    assert {"mean", "std", "n"} <= set(record["summary"])
    assert record["verdict"] in stats.OUTCOMES and record["bound"]
    assert record["runs"]


def _summary_tags(log_dir):
    import tensorflow as tf

    return {v.tag for f in log_dir.glob("events.out.tfevents.*")
            for e in tf.compat.v1.train.summary_iterator(str(f)) for v in e.summary.value}


def test_published_runs_are_read_back_with_their_settings_only(tmp_path):
    from keras_alexnet.claims.records import cached_run, stage_published

    docs = tmp_path / "docs"
    docs.mkdir()
    settings = {"data": "fashion_mnist", "budget_steps": 1500}
    published = {"name": "base_seed0", "settings": settings, "error": 0.12,
                 "model_path": str(tmp_path / "gone.keras")}
    record = {"claim": "a", "smoke": False, "runs": [published]}
    (docs / "a.json").write_text(json.dumps(record))
    (docs / "tiny.json").write_text(json.dumps({**record, "claim": "t", "smoke": True, "runs": [
        {**published, "name": "base_seed1"}]}))
    assert stage_published(docs, tmp_path / "out") == 1  # smoke records are no results
    calls = []

    def measure(work_dir):
        calls.append(work_dir.name)
        return {"error": 0.5, "model_path": None}

    # Read back in place of the run, under the claim's own runs, without a work dir.
    assert cached_run(tmp_path / "out", "shared", "base_seed0", measure, settings) == published
    assert json.loads((tmp_path / "out/shared/runs/base_seed0.json").read_text()) == published
    assert not (tmp_path / "out/shared/base_seed0").exists() and calls == []
    # Never in place of a run with other settings, nor of one that needs what it lacks.
    assert cached_run(tmp_path / "out2", "shared", "base_seed0", measure,
                      {**settings, "budget_steps": 3000})["error"] == 0.5
    stage_published(docs, tmp_path / "out3")
    assert cached_run(tmp_path / "out3", "shared", "base_seed0", measure, settings,
                      usable=lambda r: Path(r["model_path"]).is_file())["error"] == 0.5
    # A finished local record that is no longer usable is measured again, too.
    again = cached_run(tmp_path / "out", "shared", "base_seed0", measure, settings,
                       usable=lambda r: r["model_path"] is None)
    assert again["error"] == 0.5 and calls == ["base_seed0"] * 3
    (docs / "notes.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"^\S+notes\.json is not a claim record \(reproduce "
                       r"writes them\): move it out of that directory or publish the claim "
                       r"again\.$"):
        stage_published(docs, tmp_path / "out")


def test_a_published_claim_is_regenerated_from_its_records_without_training(tmp_path):
    # A fresh clone has the published records and none of the run records or work dirs.
    docs = tmp_path / "claims"
    docs.mkdir()
    published = json.loads(_PUBLISHED_NO_LRN.read_text())
    (docs / "no_lrn.json").write_text(json.dumps(published))
    record = run_claim("no_lrn", published["settings"]["seeds"], "fashion_mnist",
                       tmp_path / "out", published=docs,
                       precision=published["settings"]["precision"])
    assert record["runs"] == published["runs"]
    assert record["summary"] == published["summary"]
    assert record["verdict"] == published["verdict"]
    # No work dir: nothing trained (beside the run records, the HParams config's event file).
    assert [p.name for p in (tmp_path / "out" / ABLATION_DIR).iterdir() if p.is_dir()] == [
        "runs"]


@pytest.mark.slow
def test_figure1_tiny_end_to_end_and_rerun_skips_finished_runs(tmp_path):
    record = run_claim("figure1", [0], "fashion_mnist", tmp_path, tiny=True)
    _check_record(record, "figure1")
    on_disk = json.loads((tmp_path / "figure1.json").read_text())
    assert on_disk["summary"] == record["summary"]
    assert (tmp_path / "figure1.png").stat().st_size > 0
    for run in record["runs"]:
        assert run["steps_done"] == len(run["block_errors"]) * 2  # window 2, whole blocks
    # TensorBoard's HParams dashboard: the claim's config at its root, each run's settings.
    assert "_hparams_/experiment" in _summary_tags(tmp_path / "figure1")
    run_logs = tmp_path / "figure1" / record["runs"][0]["name"] / "logs"
    assert "_hparams_/session_start_info" in _summary_tags(run_logs)
    assert "top1_error" in _summary_tags(run_logs / "train")
    # A finished run is read back, not trained again: without its work dir it still counts.
    runs_dir = tmp_path / "figure1" / "runs"
    before = {p.name: p.read_text() for p in runs_dir.iterdir()}
    for run in record["runs"]:
        for f in (tmp_path / "figure1" / run["name"] / "checkpoints").iterdir():
            f.unlink()
    again = run_claim("figure1", [0], "fashion_mnist", tmp_path, tiny=True)
    assert {p.name: p.read_text() for p in runs_dir.iterdir()} == before
    assert again["summary"] == record["summary"]


@pytest.mark.slow
def test_small_cnn_resumes_an_interrupted_run(tmp_path):
    from keras_alexnet.claims.small_cnn import SmallRun, train_small
    from keras_alexnet.data import open_source

    source = open_source("fashion_mnist", image_size=32)
    run = SmallRun(batch_size=8, steps_per_epoch=3, eval_batches=1, epochs=1)
    first = train_small(run, source, tmp_path)
    assert first["epochs_done"] == 1 and len(first["step_hits"]) == 3
    # The same run with a longer budget continues from the checkpoint, keeping epoch 1.
    second = train_small(SmallRun(**{**run.__dict__, "epochs": 2}), source, tmp_path)
    assert second["epochs_done"] == 2 and len(second["step_hits"]) == 6
    assert second["step_hits"][:3] == first["step_hits"]
    assert len(second["test_error"]) == 2


@pytest.mark.slow
def test_small_cnn_records_a_diverged_run_instead_of_raising(tmp_path):
    from keras_alexnet.claims.small_cnn import SmallRun, train_small
    from keras_alexnet.data import open_source

    source = open_source("fashion_mnist", image_size=32)
    # A rate that overflows the network within its first epoch (its outputs at validation).
    run = SmallRun(batch_size=8, steps_per_epoch=3, eval_batches=1, epochs=1,
                   learning_rate=1e8)
    r = train_small(run, source, tmp_path)
    assert r["diverged"] is True and r["test_error"] == [] and not r["stopped_early"]
    assert len(r["step_hits"]) == 3  # the steps before it are kept


# Two seeds where the statistics are checked (the small claim; the first full-network claim,
# whose two baseline runs the later ones reuse): the spread, the paired differences and the
# verdict need two. One seed elsewhere: each full-network run costs seconds even at the tiny
# size, and a further seed would exercise no other code.
_SEEDS = {"lrn_small": [0, 1], "no_lrn": [0, 1]}


@pytest.mark.slow
def test_every_claim_tiny_end_to_end_sharing_the_baseline(tmp_path, subtests):
    # One test, one out_dir, as a user's: the full-network claims share the baseline's runs.
    # (Separate tests would land on different xdist workers and train the baseline in each.)
    records = {}
    for name in CLAIMS:
        if name == "figure1":  # tested on its own above
            continue
        with subtests.test(claim=name):
            seeds = _SEEDS.get(name, [0])
            # Explicit: "auto" would pick bf16 on some CI machines and float32 on others.
            options = {} if CLAIMS[name].kind != FULL else {"precision": "float32"}
            records[name] = run_claim(name, seeds, "fashion_mnist", tmp_path, tiny=True,
                                      **options)
            record = records[name]
            _check_record(record, name)
            assert record["settings"]["seeds"] == seeds
            on_disk = json.loads((tmp_path / f"{name}.json").read_text())
            assert on_disk["summary"] == record["summary"]
            assert (tmp_path / f"{name}.png").stat().st_size > 0
            if len(seeds) == 2:
                assert record["summary"]["n"] == 2 and record["summary"]["std"] is not None
            if name in ("no_dropout", "no_augmentation"):  # overfitting: the errors behind
                runs = {r["variant"]: r for r in record["runs"] if r["seed"] == 0}
                assert f"test / train error: {name} {100 * runs[name]['test_top1_error']:.2f}% / " \
                       f"{100 * runs[name]['train_top1_error']:.2f}%, baseline " \
                       in record["verdict_note"]
            if name in ("no_pca_lighting", "no_lrn"):  # the paper's effect, in words
                paper = {"no_pca_lighting": "paper: 1 point", "no_lrn": "paper: 1.4 points"}
                assert record["verdict_note"].endswith(paper[name])
            if CLAIMS[name].kind == FULL:
                assert record["settings"]["precision"] == "float32"
                assert "--precision=float32" in record["command"]
                assert all(r.get("precision", "float32") == "float32" for r in record["runs"])
    full = [n for n in CLAIMS if CLAIMS[n].kind == FULL]
    assert set(full) <= set(records)
    runs_dir = tmp_path / ABLATION_DIR / "runs"
    # Each variant and seed trained once; the baseline's runs are every claim's.
    assert {p.stem for p in runs_dir.iterdir()} == (
        {f"{BASELINE}_seed{s}" for s in (0, 1)} | {"no_lrn_seed1"}
        | {f"{v}_seed0" for v in VARIANTS if v != BASELINE})
    shared = {r["name"]: r for r in records["no_lrn"]["runs"] if r["variant"] == BASELINE}
    for name in full:
        for run in records[name]["runs"]:
            if run.get("variant") == BASELINE:
                assert run == shared[run["name"]], name
    # A finished run is read back, not trained again: without its checkpoints it still counts.
    before = {p.name: p.read_text() for p in runs_dir.iterdir()}
    for ckpt in (tmp_path / ABLATION_DIR).glob("*/checkpoints/*"):
        ckpt.unlink()
    again = run_claim("no_lrn", [0, 1], "fashion_mnist", tmp_path, tiny=True,
                      precision="float32")
    assert {p.name: p.read_text() for p in runs_dir.iterdir()} == before
    assert again["summary"] == records["no_lrn"]["summary"]
    # ... but a finished run made with other settings is never read back as this one.
    with pytest.raises(ValueError, match=r"baseline_seed0\.json is a finished run with other "
                       r"settings \(budget_steps=2 there, 4 now\): use another --out_dir"):
        run_claim("no_lrn", [0, 1], "fashion_mnist", tmp_path, tiny=True,
                  precision="float32", budget_steps=4)


def test_runs_of_another_precision_are_other_runs():
    from keras_alexnet.claims.full_claims import _protocol, run_name
    from keras_alexnet.precision import PRECISIONS

    # A bf16 claim never reads back (or resumes) a float32 run of the same variant and seed.
    assert run_name("baseline", 0, "float32") == "baseline_seed0"
    assert run_name("baseline", 0, "mixed_bfloat16") == "baseline_seed0_bf16"
    # "auto" is resolved once, before any run is named.
    assert _protocol(True, None, "auto").precision in set(PRECISIONS) - {"auto"}
    assert _protocol(True, 6, "mixed_bfloat16").precision == "mixed_bfloat16"


def test_list_prints_every_claim_without_tensorflow():
    out, _, code = _run_no_tf("reproduce", "--list")
    assert code == 0
    for name in CLAIMS:
        assert name in out


def test_variant_configs_change_one_switch_each():
    from helpers import TINY_MODEL

    from keras_alexnet.claims.full_claims import BASELINE, VARIANTS, variant_config
    from keras_alexnet.config import ABLATIONS
    from keras_alexnet.presets import PRESETS

    base = PRESETS["fashion_mnist_demo"]
    for variant in VARIANTS:
        changed = variant_config(variant, base)
        diffs = {k for k, v in changed.to_dict().items() if v != base.to_dict()[k]}
        expected = {BASELINE: set(), "no_augmentation": {"crops_and_flips"},
                    "no_pca_lighting": {"pca_lighting"}}.get(variant, {"model"})
        assert diffs == expected, variant
    half = variant_config("one_tower_half", base).model
    assert half == base.model.replace(**ABLATIONS["one_tower_half"])
    # A smaller base is halved the same way (conv5 and the fc layers kept, footnote 2).
    tiny = variant_config("one_tower_half", base.replace(model=TINY_MODEL)).model
    assert tiny.num_towers == 1 and tiny.conv_filters == (4, 8, 8, 8, 16)


def test_pca_lighting_switch_keeps_crops_and_flips():
    from keras_alexnet.data import open_source

    source = open_source("fashion_mnist", image_size=40)
    on, y_on = next(iter(source.train_dataset(8, 32, seed=5, epoch=1)))
    off, y_off = next(iter(source.train_dataset(8, 32, seed=5, epoch=1, pca_lighting=False)))
    np.testing.assert_array_equal(y_on, y_off)
    # Section 4.1's lighting adds one RGB vector to every pixel of an image: the same crops and
    # flips differ by a per-image constant, and nothing else.
    shift = (on - off).numpy()
    np.testing.assert_allclose(shift, np.broadcast_to(shift[:, :1, :1, :], shift.shape),
                               atol=1e-3)
    assert np.abs(shift[:, 0, 0, :]).max() > 0
    plain = next(iter(source.train_dataset(8, 32, seed=5, epoch=1, augment=False)))[0]
    assert not np.allclose(plain, off)  # crops/flips are still on without lighting


def test_crops_and_flips_switch_keeps_the_lighting():
    """no_augmentation's switch (Section 4.1's first form) leaves the second form on."""
    from keras_alexnet.data import open_source

    source = open_source("fashion_mnist", image_size=40)

    def batch(**switches):
        return next(iter(source.train_dataset(8, 32, seed=5, epoch=1, **switches)))[0].numpy()

    plain = batch(augment=False)
    # Both forms off is the plain center crop, image for image.
    np.testing.assert_array_equal(batch(crops_and_flips=False, pca_lighting=False), plain)
    # Lighting alone: the center crop plus the same per-image RGB shift the full pipeline adds.
    shift = batch(crops_and_flips=False) - plain
    np.testing.assert_allclose(shift, batch() - batch(pca_lighting=False), atol=1e-3)
    assert np.abs(shift).max() > 0
