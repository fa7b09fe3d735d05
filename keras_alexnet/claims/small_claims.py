"""The small-network claims: `figure1` (ReLU vs tanh, Section 3.1) and `lrn_small` (3.3).

Protocols are fixed here, before any run (their numbers were not adjusted to the outcome).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from keras_alexnet.claims import conv_local, plots, stats
from keras_alexnet.claims.records import cached_run, write_hparams_config
from keras_alexnet.claims.registry import get_claim
from keras_alexnet.claims.small_cnn import CONV_LOCAL, SmallRun, train_small
from keras_alexnet.claims.table import measured_text
from keras_alexnet.claims.thresholds import block_errors, speedup, steps_to_threshold
from keras_alexnet.claims.verdicts import judged
from keras_alexnet.config import PAPER_MOMENTUM

# CIFAR-10's image size; Fashion-MNIST's 28x28 images are resized to it (bilinear).
SMALL_IMAGE_SIZE = 32


@dataclasses.dataclass(frozen=True)
class Figure1Protocol:
    """How `figure1` is measured.

    Threshold: 25% training error on CIFAR-10 is ~90% of the way from chance (90% error) to
    what cuda-convnet's CIFAR-10 network finally reaches (~18% test error): 90 - 0.9 * 72.
    Small CNNs reach ~9-10% test error on Fashion-MNIST, so the same fraction of the way is
    ~17%; 25/18 of the final error (the other reading) is ~13%. We take 15%, and report the
    ratio over 12-30% so no single choice carries the result.
    """

    thresholds: tuple[float, ...] = (0.30, 0.25, 0.20, 0.15, 0.12)
    threshold: float = 0.15
    # Chosen per network on the first seed's runs (fewest steps to `threshold`), as the
    # paper chose each network's rate "to make training as fast as possible".
    learning_rates: tuple[float, ...] = (0.003, 0.01, 0.03)
    window: int = 50  # steps per training-error block (6400 images)
    max_epochs: int = 3  # the budget of every run; a run stops early below min(thresholds)
    batch_size: int = 128
    steps_per_epoch: int | None = None
    eval_batches: int | None = 0  # test error is not part of Figure 1


@dataclasses.dataclass(frozen=True)
class LrnProtocol:
    """How `lrn_small` is measured, fixed before its runs: cuda-convnet's conv-local pair
    (claims.conv_local: with normalisation, the 11% network; without, the 13% one) with the
    files' learning settings, the same budget for both.

    Fashion-MNIST stands in for CIFAR-10: resized to CIFAR-10's 32x32 and repeated to RGB;
    cuda-convnet's CIFAR provider's random 24x24 crops and horizontal flips for training, the
    center 24x24 crop for testing. The files train ~350 epochs with two rate cuts (their
    methodology); this budget is 10 epochs at the files' first rate: ~50 minutes a run on a
    2-core AVX2 AMD EPYC (0.6 s a step, measured).
    """

    network: str = CONV_LOCAL
    image_size: int = SMALL_IMAGE_SIZE
    input_size: int = conv_local.INPUT_SIZE
    epochs: int = 10
    learning_rate: float = conv_local.LEARNING_RATE
    momentum: float = conv_local.MOMENTUM
    weight_decay: float = conv_local.WEIGHT_DECAY
    learning_rate_multipliers: tuple[tuple[str, float], ...] = conv_local.LEARNING_RATE_MULTIPLIERS
    weight_decays: tuple[tuple[str, float], ...] = conv_local.WEIGHT_DECAYS
    batch_size: int = 128
    steps_per_epoch: int | None = None
    eval_batches: int | None = None


TINY_FIGURE1 = Figure1Protocol(thresholds=(0.9, 0.8), threshold=0.9, learning_rates=(0.01,),
                               window=2, max_epochs=2, batch_size=16, steps_per_epoch=4)
TINY_LRN = LrnProtocol(epochs=1, batch_size=16, steps_per_epoch=4, eval_batches=2)


def _run_settings(p: Figure1Protocol | LrnProtocol, data: str) -> dict[str, Any]:
    """What a run's numbers depend on besides its name: records.cached_run reads back only a
    run made with the same."""
    return {"data": data, "image_size": SMALL_IMAGE_SIZE, **dataclasses.asdict(p)}


def _source(data: str) -> Any:
    from keras_alexnet.data import open_source

    return open_source(data, image_size=SMALL_IMAGE_SIZE)


def run_figure1(seeds: Sequence[int], data: str, out_dir: str | Path, *,
                tiny: bool = False) -> dict[str, Any]:
    """Runs (or reads back) figure1's runs; returns the claim's record (see records)."""
    p = TINY_FIGURE1 if tiny else Figure1Protocol()
    claim = get_claim("figure1")
    write_hparams_config(Path(out_dir) / claim.name,
                         {"activation": ["relu", "tanh"], "learning_rate": list(p.learning_rates),
                          "seed": None},
                         {"train/top1_error": "training error"})
    runs, chosen = _figure1_runs(p, seeds, data, out_dir)
    per_seed, failures = _figure1_per_seed(p, runs, chosen, seeds)
    summary, note = _figure1_summary(p, per_seed, failures, len(seeds))
    settings = {"data": data, "network": "4-layer CNN (3 conv + 1 fc, cuda-convnet's "
                "CIFAR-10 layout), LRN on, no dropout, no weight decay, no augmentation",
                "image_size": SMALL_IMAGE_SIZE, **dataclasses.asdict(p),
                "chosen_learning_rates": chosen, "seeds": list(seeds), "per_seed": per_seed}
    record = _claim_record(claim, settings, runs, summary, note, tiny, seeds, data,
                           differences=_figure1_differences(p))
    plots.figure1(record, Path(out_dir) / f"{claim.name}.png")
    return record


def _figure1_runs(p: Figure1Protocol, seeds: Sequence[int], data: str, out_dir: str | Path
                  ) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Each network's learning-rate grid on the first seed, then the chosen rate on the others;
    returns the runs' records and {activation: chosen rate}."""
    source = _source(data)
    lowest = min(p.thresholds)

    def stop(hits: list[int]) -> bool:
        # Below every threshold: the rest of the run would not change any number reported.
        return len(hits) % p.window == 0 and block_errors(
            hits[-p.window:], p.batch_size, p.window)[0] <= lowest

    def one(activation: str, lr: float, seed: int) -> dict[str, Any]:
        run = SmallRun(activation=activation, learning_rate=lr, weight_decay=0.0,
                       batch_size=p.batch_size, input_size=SMALL_IMAGE_SIZE,
                       epochs=p.max_epochs, steps_per_epoch=p.steps_per_epoch,
                       eval_batches=p.eval_batches, seed=seed)
        hparams = {"activation": activation, "learning_rate": lr, "seed": seed}

        def measure(work_dir: Path) -> dict[str, Any]:
            r = train_small(run, source, work_dir, data=data, stop=stop, hparams=hparams)
            return {**hparams, **_figure1_measures(p, r)}

        return cached_run(out_dir, "figure1", f"{activation}_lr{lr:g}_seed{seed}", measure,
                          _run_settings(p, data))

    def key(r: dict[str, Any]) -> tuple[float, float]:
        # Fewest steps to the threshold; if none reached it, the lowest last block error.
        steps = r["steps_to"][f"{p.threshold:g}"]
        return (math.inf if steps is None or r["diverged"] else steps,
                (r["block_errors"] or [1.0])[-1])

    runs, chosen = [], {}
    for activation in ("relu", "tanh"):
        grid = [one(activation, lr, seeds[0]) for lr in p.learning_rates]
        runs += grid
        chosen[activation] = min(grid, key=key)["learning_rate"]
    for seed in seeds[1:]:
        runs += [one(a, chosen[a], seed) for a in ("relu", "tanh")]
    return runs, chosen


def _figure1_measures(p: Figure1Protocol, r: dict[str, Any]) -> dict[str, Any]:
    """What a figure1 run's record keeps of its per-step training record."""
    return {"steps_per_epoch": r["steps_per_epoch"],
            "budget_steps": p.max_epochs * r["steps_per_epoch"],
            "steps_done": len(r["step_hits"]), "diverged": bool(r.get("diverged")),
            "block_errors": [round(float(e), 5) for e in
                             block_errors(r["step_hits"], p.batch_size, p.window)],
            "steps_to": {f"{t:g}": steps_to_threshold(r["step_hits"], p.batch_size, p.window, t)
                         for t in p.thresholds}}


def _figure1_per_seed(p: Figure1Protocol, runs: list[dict[str, Any]], chosen: dict[str, float],
                      seeds: Sequence[int]) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Each seed's speed-up ratios by threshold (at the chosen rates), and the failed runs."""
    per_seed, failures = [], {}
    for seed in seeds:
        relu, tanh = (next(r for r in runs if r["activation"] == a and r["seed"] == seed
                           and r["learning_rate"] == chosen[a]) for a in ("relu", "tanh"))
        for r in (relu, tanh):  # no test error here: only the loss is judged
            if why := stats.why_not_trained(math.nan, None, r["diverged"]):
                failures[r["name"]] = why
        ratios = {}
        for t in p.thresholds:
            # A seed where a run diverged is left out: its steps say nothing about speed.
            ratio, lower = (None, False) if relu["diverged"] or tanh["diverged"] else speedup(
                relu["steps_to"][f"{t:g}"], tanh["steps_to"][f"{t:g}"], tanh["budget_steps"])
            ratios[f"{t:g}"] = {"ratio": ratio, "lower_bound": lower}
        per_seed.append({"seed": seed, "relu_steps": relu["steps_to"][f"{p.threshold:g}"],
                         "tanh_steps": tanh["steps_to"][f"{p.threshold:g}"],
                         "steps_per_epoch": relu["steps_per_epoch"], "ratios": ratios})
    return per_seed, failures


def _figure1_summary(p: Figure1Protocol, per_seed: list[dict[str, Any]],
                     failures: dict[str, str], num_seeds: int) -> tuple[dict[str, Any], str]:
    """The ratio over seeds (at the threshold and by threshold) and the claim's note."""
    def over_seeds(t: float) -> dict[str, Any]:
        got = [r for s in per_seed if (r := s["ratios"][f"{t:g}"])["ratio"] is not None]
        return {**stats.summarize([g["ratio"] for g in got]),
                "lower_bound": any(g["lower_bound"] for g in got)}

    summary = {**over_seeds(p.threshold), "unit": "x (tanh steps / ReLU steps)",
               "by_threshold": {f"{t:g}": over_seeds(t) for t in p.thresholds},
               "did_not_train": failures}
    bound = ">= " if summary["lower_bound"] else ""
    ladder = ", ".join(f"{float(t):.0%}: {'>= ' if v['lower_bound'] else ''}{v['mean']:.2f}x"
                       + (f" (n={v['n']})" if v["n"] < num_seeds else "")
                       for t, v in summary["by_threshold"].items() if v["mean"] is not None)
    note = (f"ReLU faster by {bound}{summary['mean']:.2f}x at {p.threshold:.0%} training "
            f"error (mean ratio by threshold: {ladder}; a tanh run that never got there "
            "counts its whole budget, so the ratio is a lower bound); the paper's 6x was at 25% "
            "on CIFAR-10" if summary["mean"] is not None else "ReLU never reached the threshold")
    if failures:
        note += "; left out (a run of the seed diverged): " + stats.failures_text(failures)
    return summary, note


def _figure1_differences(p: Figure1Protocol) -> str:
    return (
        f"Fashion-MNIST (gray, resized to 32x32), not CIFAR-10; threshold {p.threshold:.0%} "
        "instead of 25%, fixed before the runs: 25% on CIFAR-10 is ~90% of the way from chance "
        "(90%) to the ~18% test error of cuda-convnet's CIFAR-10 network; small CNNs reach "
        "~9-10% on Fashion-MNIST, where the same fraction is ~17% and 25/18 of the final error "
        "~13%; the ratio is also shown over "
        f"{min(p.thresholds):.0%}-{max(p.thresholds):.0%}; momentum {PAPER_MOMENTUM:g} SGD, "
        f"the learning rate picked from {list(p.learning_rates)} on the first seed; training "
        f"error over {p.window}-step blocks instead of per epoch; runs capped at "
        f"{p.max_epochs} epochs (a tanh run that does not reach the threshold gives a lower "
        "bound, marked >=).")


def lrn_summary(runs: Sequence[dict[str, Any]], seeds: Sequence[int],
                num_classes: int | None) -> tuple[dict[str, Any], str]:
    """lrn_small's summary (no-LRN minus LRN test error, paired by seed) and its note.

    The claim is about trained networks: a seed counts only where both runs learned. A run
    that did not (stats.why_not_trained: its loss overflowed, or its test error stayed at
    chance) is part of the result too: the note names it and counts such runs per network.
    num_classes=None checks only the loss (smoke tests: too few steps to leave chance).
    """
    by = {(r["use_lrn"], r["seed"]): r for r in runs}
    failures = {r["name"]: why for r in runs if (why := stats.why_not_trained(
        r["final_test_error"], num_classes, r["diverged"]))}
    kept = [s for s in seeds if not any(by[f, s]["name"] in failures for f in (True, False))]
    err = {f: [by[f, s]["final_test_error"] for s in kept] for f in (True, False)}
    # Paired by seed (same data order and init of the shared layers): the per-seed differences'
    # mean and standard error.
    diff = stats.summarize([a - b for a, b in zip(err[False], err[True])])
    summary = {**diff, "unit": "of test error, no LRN - LRN", "points": True,
               "with_lrn": stats.summarize(err[True]),
               "without_lrn": stats.summarize(err[False]),
               "did_not_train": failures,
               "did_not_train_count": {
                   label: sum(by[f, s]["name"] in failures for s in seeds)
                   for f, label in ((True, "with_lrn"), (False, "without_lrn"))},
               "seeds_compared": kept}
    if not kept:
        note = "no seed trained both networks (paper: 13% and 11%)"
    else:
        note = (f"test error {100 * summary['without_lrn']['mean']:.2f}% without LRN, "
                f"{100 * summary['with_lrn']['mean']:.2f}% with, over the seeds where both "
                f"trained (n={summary['n']}; paper: 13% and 11%)")
    if failures:
        counts = summary["did_not_train_count"]
        note += (f"; did not train: {counts['without_lrn']} of {len(seeds)} runs without LRN, "
                 f"{counts['with_lrn']} of {len(seeds)} with ("
                 + stats.failures_text(failures)
                 + "): those seeds are left out of the means and the verdict; per seed: "
                 + ", ".join(f"seed {s}: {100 * by[False, s]['final_test_error']:.1f}% vs "
                             f"{100 * by[True, s]['final_test_error']:.1f}%" for s in seeds)
                 + " (without vs with)")
    return summary, note


def run_lrn_small(seeds: Sequence[int], data: str, out_dir: str | Path, *,
                  tiny: bool = False) -> dict[str, Any]:
    """Runs (or reads back) lrn_small's runs; returns the claim's record."""
    p = TINY_LRN if tiny else LrnProtocol()
    claim = get_claim("lrn_small")
    source = _source(data)
    write_hparams_config(Path(out_dir) / claim.name,
                         {"use_lrn": [True, False], "seed": None},
                         {"validation/top1_error": "test error",
                          "train/top1_error": "training error"})
    runs = []
    for use_lrn in (True, False):
        for seed in seeds:
            run = SmallRun(
                network=p.network, use_lrn=use_lrn, learning_rate=p.learning_rate,
                momentum=p.momentum, weight_decay=p.weight_decay,
                learning_rate_multipliers=p.learning_rate_multipliers,
                weight_decays=p.weight_decays, batch_size=p.batch_size,
                input_size=p.input_size, image_size=p.image_size, epochs=p.epochs,
                steps_per_epoch=p.steps_per_epoch, eval_batches=p.eval_batches, seed=seed)
            hparams = {"use_lrn": use_lrn, "seed": seed}

            def measure(work_dir: Path, run=run, hparams=hparams) -> dict[str, Any]:
                r = train_small(run, source, work_dir, data=data, hparams=hparams)
                # A run that diverged in its first epoch has no test error at all.
                final = r["test_error"][-1] if r["test_error"] else math.nan
                return {**hparams, "test_error": r["test_error"], "final_test_error": final,
                        "diverged": bool(r.get("diverged")),
                        "steps_per_epoch": r["steps_per_epoch"]}

            # Named by network: the records of the earlier Figure-1-network protocol are
            # never read back as these.
            name = f"{'norm' if use_lrn else 'no_norm'}_seed{seed}"
            runs.append(cached_run(out_dir, claim.name, name, measure, _run_settings(p, data)))
    summary, note = lrn_summary(runs, seeds, None if tiny else source.info.num_classes)
    settings = {"data": data, "network": "cuda-convnet's conv-local networks: "
                "layers-conv-local-11pct.cfg (response normalisation after conv1 and conv2) vs "
                "-13pct.cfg (none); 2 conv, 2 locally connected, 1 fc layer",
                **dataclasses.asdict(p), "seeds": list(seeds)}
    record = _claim_record(claim, settings, runs, summary, note, tiny, seeds, data,
                           differences=(
        f"Fashion-MNIST (gray, resized to {p.image_size}x{p.image_size}, repeated to RGB), "
        f"not CIFAR-10; cuda-convnet's random {p.input_size}x{p.input_size} crops and flips "
        f"for training, the center crop for testing (the files' methodology tests on several "
        f"views); a fixed budget of {p.epochs} epochs at the files' rate (epsW "
        f"{p.learning_rate:g}, epsB {2 * p.learning_rate:g}, momentum {p.momentum:g}, weight "
        f"decay {p.weight_decay:g} on local3, local4 and fc10, none on conv1 and conv2) "
        "instead of their ~350 epochs with two rate cuts; the mean image of the 32x32 "
        "training images is subtracted, as cuda-convnet's provider did."))
    plots.lrn_small(record, Path(out_dir) / f"{claim.name}.png")
    return record


def _claim_record(claim: Any, settings: dict[str, Any], runs: list[dict[str, Any]],
                  summary: dict[str, Any], note: str, tiny: bool,
                  seeds: Sequence[int], data: str, *, differences: str) -> dict[str, Any]:
    """The claim's JSON record (the fields of records.CLAIM_FIELDS)."""
    seeds_flag = ",".join(str(s) for s in seeds)
    data_flag = "" if data == "fashion_mnist" else f" --data={data}"
    return judged({"claim": claim.name, "title": claim.title, "section": claim.section,
            "paper_figure": claim.paper_figure,
            "paper": {"text": claim.paper, "value": claim.paper_value},
            "settings": settings, "runs": runs, "summary": summary,
            "measured": measured_text(summary), "verdict_note": note, "differences": differences,
            "command": f"python scripts/reproduce.py --claim={claim.name} --seeds={seeds_flag}"
                       f"{data_flag}{' --tiny' if tiny else ''}",
            "figure": f"{claim.name}.png", "smoke": tiny})
