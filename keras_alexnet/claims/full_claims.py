"""The full-network claims: the ablations of Sections 3.2-4.2 and 7, and fc7 retrieval (6.1).

Every variant trains with the same recipe (the `fashion_mnist_demo` preset: the paper's
network and SGD, 10 classes) for the same number of steps, seed by seed, through
`keras_alexnet.train.train`, which checkpoints and resumes exactly. The baseline's runs are
shared by all claims (<out_dir>/ablations/). The schedule watches 5000 held-out training
images; errors are measured afterwards on the test set (center crop) and on 10000 training
images (center crop, inference mode) for the overfitting claims.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from keras_alexnet.claims import plots, stats
from keras_alexnet.claims.records import cached_run, write_hparams_config
from keras_alexnet.claims.registry import get_claim
from keras_alexnet.claims.table import measured_text
from keras_alexnet.claims.verdicts import judged
from keras_alexnet.config import AlexNetConfig, ablation
from keras_alexnet.precision import FLOAT32, MIXED_BF16, resolve
from keras_alexnet.presets import PRESETS
from keras_alexnet.train_config import TrainConfig

ABLATION_DIR = "ablations"  # the shared runs, under out_dir
BASELINE = "baseline"
# Every variant the claims train: the HParams config of the shared runs lists them all.
VARIANTS = (BASELINE, "no_lrn", "non_overlapping_pool", "one_tower_half", "no_dropout",
            "no_augmentation", "no_pca_lighting", "no_conv3", "no_conv4")


@dataclasses.dataclass(frozen=True)
class FullProtocol:
    """The equal budget of every full-network run."""

    preset: str = "fashion_mnist_demo"
    # "auto": bf16 where the hardware computes it and its accuracy was checked
    # (keras_alexnet.precision), the fastest correct choice; resolved once per call, and the
    # resolved value names the runs, so runs of different precisions never mix in a claim.
    precision: str = "auto"
    budget_steps: int = 1500
    validate_every_steps: int = 250  # a schedule "epoch": validation, plateau check
    validation_holdout: int = 5000
    train_error_images: int = 10000
    test_images: int | None = None  # None: the whole test set
    # Section 6.1 / Figure 4: queries are test images, the database training images.
    query_images: int | None = None
    database_images: int | None = None
    neighbours: int = 5


# Smoke-test sizes: one validation per run (the claims test trains eleven of these runs).
TINY_FULL = FullProtocol(preset="tiny", budget_steps=2, validate_every_steps=2,
                         validation_holdout=100, train_error_images=32, test_images=32,
                         query_images=32, database_images=64)


def variant_config(variant: str, base: TrainConfig) -> TrainConfig:
    """`base` with one ablation: a network switch (config.ABLATIONS) or a data switch."""
    if variant == BASELINE:
        return base
    if variant == "no_augmentation":  # Section 4.1's first form ("this scheme"): crops, flips
        return base.replace(crops_and_flips=False)
    if variant == "no_pca_lighting":
        return base.replace(pca_lighting=False)
    overrides = {}
    if variant == "one_tower_half" and base.model.conv_filters != AlexNetConfig().conv_filters:
        # config.ABLATIONS halves the paper's widths; a smaller base is halved the same way.
        f = base.model.conv_filters
        overrides["conv_filters"] = (*(n // 2 for n in f[:4]), f[4])
    return base.replace(model=ablation(variant, base.model, **overrides))


def _protocol(tiny: bool, budget_steps: int | None, precision: str) -> FullProtocol:
    p = TINY_FULL if tiny else FullProtocol()
    p = dataclasses.replace(p, precision=resolve(precision))
    if budget_steps is not None:
        p = dataclasses.replace(p, budget_steps=budget_steps)
    if p.budget_steps % p.validate_every_steps:
        raise ValueError(f"budget_steps={p.budget_steps} must be a multiple of "
                         f"{p.validate_every_steps} (steps between validations).")
    return p


def _run_config(p: FullProtocol, variant: str, seed: int, data: str,
                work_dir: Path) -> TrainConfig:
    base = PRESETS[p.preset].replace(
        data=data, seed=seed, work_dir=str(work_dir), validation_holdout=p.validation_holdout,
        steps_per_epoch=p.validate_every_steps,
        epochs=p.budget_steps // p.validate_every_steps,
        # Equal budgets: the schedule lowers the rate but never ends a run early.
        schedule_on_exhausted="continue", progress_bar=False, precision=p.precision)
    return variant_config(variant, base)


def run_name(variant: str, seed: int, precision: str) -> str:
    """A shared run's name; runs in another precision than float32 are separate runs."""
    suffix = {FLOAT32: "", MIXED_BF16: "_bf16"}[precision]  # a resolved precision
    return f"{variant}_seed{seed}{suffix}"


def _limited(ds: Any, images: int | None, batch_size: int) -> Any:
    return ds if images is None else ds.take(max(1, images // batch_size))


# What a training run's numbers depend on besides its name (variant, seed, precision).
_RUN_SETTINGS = ("preset", "budget_steps", "validate_every_steps", "validation_holdout",
                 "train_error_images", "test_images")


def run_settings(p: FullProtocol, data: str) -> dict[str, Any]:
    """The settings a shared run's record keeps (records.cached_run reads back only a run
    made with the same)."""
    return {"data": data, **{k: getattr(p, k) for k in _RUN_SETTINGS}}


def train_variant(p: FullProtocol, variant: str, seed: int, data: str,
                  out_dir: str | Path, *, need_model: bool = False) -> dict[str, Any]:
    """One variant and seed, trained (or resumed, or read back) and measured.

    A run whose loss overflows is a finished run too: its record says `diverged` and has no
    errors (None), and the claims leave its seed out (stats.why_not_trained).
    need_model: a record whose model file is gone (read back from published records, which
    keep the numbers, not the model) is trained again.
    """
    def measure(work_dir: Path) -> dict[str, Any]:
        import tensorflow as tf
        from tensorboard.plugins.hparams import api as hp

        from keras_alexnet.data import open_source
        from keras_alexnet.evaluate import evaluate
        from keras_alexnet.train import NonFiniteLossError, train

        config = _run_config(p, variant, seed, data, work_dir)
        try:
            result = train(config)
        except NonFiniteLossError as e:
            return {"variant": variant, "seed": seed, "precision": p.precision,
                    "diverged": True, "stop_reason": str(e), "steps": None,
                    "model_path": None, "test_top1_error": None, "train_top1_error": None,
                    "gap": None, "validation": []}
        with tf.summary.create_file_writer(str(result.log_dir)).as_default():
            hp.hparams({"variant": variant, "seed": seed, "precision": p.precision})
        bs = config.batch_size
        test_source = open_source(data, image_size=config.data_image_size)
        size = config.model.input_size
        test = evaluate(result.model, _limited(test_source.eval_dataset(bs, size),
                                               p.test_images, bs), ten_crop=False)
        train_ds = test_source.train_dataset(bs, size, seed=0, augment=False)
        train_eval = evaluate(result.model, _limited(train_ds, p.train_error_images, bs),
                              ten_crop=False)
        return {"variant": variant, "seed": seed, "precision": p.precision,
                "diverged": False, "steps": result.step,
                "stop_reason": result.stop_reason, "model_path": str(result.model_path),
                "test_top1_error": test.top1_error, "train_top1_error": train_eval.top1_error,
                "gap": test.top1_error - train_eval.top1_error,
                "validation": [{"step": h["step"], "val_top1_error": h["val_top1_error"]}
                               for h in result.history]}

    def has_model(record: dict[str, Any]) -> bool:
        path = record.get("model_path")
        return record.get("diverged", False) or bool(path) and Path(path).is_file()

    return cached_run(out_dir, ABLATION_DIR, run_name(variant, seed, p.precision), measure,
                      run_settings(p, data), usable=has_model if need_model else None)


def trained_seeds(runs: Sequence[dict[str, Any]], num_classes: int | None
                  ) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """(the runs of seeds where every run learned, {name: why} of the runs that did not).

    The paper's effects are between trained networks: a seed where any run's test error
    stayed at chance (stats.why_not_trained) is left out of the means and the verdict.
    num_classes=None keeps every run (smoke tests).
    """
    failures = {r["name"]: why for r in runs if (why := stats.why_not_trained(
        r["test_top1_error"], num_classes, r.get("diverged", False)))}
    bad = {r["seed"] for r in runs if r["name"] in failures}
    return [r for r in runs if r["seed"] not in bad], failures


def _ablation_claim(name: str, variants: Sequence[str], metric: str, metric_label: str,
                    seeds: Sequence[int], data: str, out_dir: str | Path, *,
                    tiny: bool = False, budget_steps: int | None = None,
                    precision: str = "auto") -> dict[str, Any]:
    """Baseline and `variants`, each over `seeds`; the effect is variant - baseline `metric`.

    Args (after out_dir): a smoke-test size, the training steps per run (default: the
    protocol's) and the precision ("auto" is resolved here, once).
    """
    p = _protocol(tiny, budget_steps, precision)
    claim = get_claim(name)
    write_hparams_config(Path(out_dir) / ABLATION_DIR,
                         {"variant": list(VARIANTS), "seed": None, "precision": None},
                         {"validation/top1_error": "validation top-1 error"})
    runs = [train_variant(p, v, s, data, out_dir) for v in (BASELINE, *variants)
            for s in seeds]
    # Not in smoke tests: their few steps leave every run near chance.
    kept, failures = trained_seeds(runs, None if tiny else PRESETS[p.preset].model.num_classes)
    summary = ablation_summary(kept, variants, metric)
    summary.update(unit=f"of {metric_label}, variant - baseline", points=True)
    value = claim.paper_value
    paper = f"; paper: {value:g} point{'' if value == 1 else 's'}" if value else ""
    by = summary.get("by_variant", {variants[0]: summary})
    note = (f"{metric_label} " + ", ".join(f"{100 * by[v]['variant']['mean']:.2f}% ({v})"
                                           for v in variants)
            + f" vs {100 * summary['baseline']['mean']:.2f}% (baseline){paper}"
            if summary["mean"] is not None else "no seed where every run trained")
    if metric == "gap" and summary["mean"] is not None:
        # Overfitting (Sections 4.1, 4.2): the errors behind the gap, test / train.
        def errors(v: str) -> str:
            mine = [r for r in kept if r["variant"] == v]
            test, train_ = (stats.summarize([r[k] for r in mine])["mean"]
                            for k in ("test_top1_error", "train_top1_error"))
            return f"{v} {100 * test:.2f}% / {100 * train_:.2f}%"

        note += "; test / train error: " + ", ".join(errors(v) for v in (*variants, BASELINE))
    if failures:
        note += (f"; did not train: {stats.failures_text(failures)}: those seeds are left out "
                 "of the means and the verdict")
    summary["did_not_train"] = failures
    record = _record(claim, p, runs, summary, note, seeds, data, tiny, variants)
    plots.ablation(record, Path(out_dir) / f"{name}.png", metric, f"{metric_label} (%)")
    return record


def ablation_summary(kept: Sequence[dict[str, Any]], variants: Sequence[str],
                     metric: str) -> dict[str, Any]:
    """Each variant's effect on `metric`, paired by seed with the baseline.

    The effect is the mean over seeds of (variant - baseline); its std and standard error are
    those of the per-seed differences (a seed shares data order and augmentation between the
    runs). With several variants (`depth`: removing *any* middle layer costs), each is judged
    alone (claims.verdicts); the top-level figures are the variant with the smaller effect's.

    Args:
      kept: the runs of the seeds where every run trained (trained_seeds).
    Returns:
      {"mean", "std", "stderr", "n", "baseline", "variant"}, and "by_variant" ({variant: the
      same}) when there are several variants.
    """
    base = {r["seed"]: r[metric] for r in kept if r["variant"] == BASELINE}
    by_variant = {}
    for v in variants:
        runs = [r for r in kept if r["variant"] == v]
        effect = stats.summarize([r[metric] - base[r["seed"]] for r in runs])
        by_variant[v] = {**effect, "baseline": stats.summarize(list(base.values())),
                         "variant": stats.summarize([r[metric] for r in runs])}
    if len(variants) == 1:
        return by_variant[variants[0]]
    weakest = min(variants, key=lambda v: (by_variant[v]["mean"] is not None,
                                           by_variant[v]["mean"] or 0.0))
    return {**by_variant[weakest], "by_variant": by_variant}


# What a variant changes beyond its name, where Fashion-MNIST or the paper's wording need it.
_VARIANT_DIFFERENCES = {
    "one_tower_half": " One tower with half the kernels of conv1-conv4; conv5 and the "
                      "fully-connected layers keep the two-tower sizes, as the paper's footnote "
                      "on the one-GPU net says (to keep the parameter count close).",
    "no_augmentation": " Without augmentation is without Section 4.1's first form, the scheme "
                       "the paper says prevents overfitting: no random crops or flips (the "
                       "center crop, unflipped); PCA lighting, the second form, stays on.",
    "no_pca_lighting": " Fashion-MNIST is gray (one channel repeated), so its RGB covariance "
                       "has one non-zero eigenvalue and PCA lighting is a random brightness "
                       "shift, not the paper's shift of colour.",
    "no_conv3": " The paper does not say which layers are the 'middle' ones or how the "
                "network was rewired: conv3 and conv4 (the layers between the two pooled "
                "stages) are each left out, the next layer reading the removed one's input "
                "(without conv3, conv4 reads all of conv2's pooled maps, across both towers).",
}


def _record(claim: Any, p: FullProtocol, runs: list[dict[str, Any]], summary: dict[str, Any],
            note: str, seeds: Sequence[int], data: str, tiny: bool,
            variants: Sequence[str]) -> dict[str, Any]:
    seeds_flag = ",".join(str(s) for s in seeds)
    budget = "" if p.budget_steps == FullProtocol().budget_steps or tiny else \
        f" --budget_steps={p.budget_steps}"
    data_flag = "" if data == "fashion_mnist" else f" --data={data}"
    return judged({
        "claim": claim.name, "title": claim.title, "section": claim.section,
        "paper_figure": claim.paper_figure,
        "paper": {"text": claim.paper, "value": claim.paper_value},
        "settings": {"data": data, "network": f"AlexNet ({p.preset} preset): baseline vs "
                     f"{', '.join(variants)}", "budget": f"{p.budget_steps} steps per run",
                     "seeds": list(seeds), **dataclasses.asdict(p)},
        "runs": runs, "summary": summary, "measured": measured_text(summary),
        "verdict_note": note,
        "differences": "Fashion-MNIST upsampled to 256 (10 gray classes), not ImageNet; "
                       f"{p.budget_steps} steps (~{p.budget_steps * 128 / 55000:.1f} epochs) "
                       "instead of ~90 epochs; fc6/fc7 biases start at 0 (the preset's "
                       "documented deviation); center-crop test error"
                       + ("." if p.precision == FLOAT32 else "; mixed bfloat16 compute with "
                          "float32 variables and update (the paper: float32).")
                       + "".join(_VARIANT_DIFFERENCES.get(v, "") for v in variants),
        "command": f"python scripts/reproduce.py --claim={claim.name} --seeds={seeds_flag}"
                   f"{data_flag}{budget} --precision={p.precision}{' --tiny' if tiny else ''}",
        "figure": f"{claim.name}.png", "smoke": tiny})


def run_no_lrn(seeds, data, out_dir, **options):
    """Section 3.3: test top-1 error without LRN minus with."""
    return _ablation_claim("no_lrn", ["no_lrn"], "test_top1_error", "test top-1 error",
                           seeds, data, out_dir, **options)


def run_non_overlapping_pool(seeds, data, out_dir, **options):
    """Section 3.4: test top-1 error with z=2, s=2 pooling minus z=3, s=2."""
    return _ablation_claim("non_overlapping_pool", ["non_overlapping_pool"], "test_top1_error",
                           "test top-1 error", seeds, data, out_dir, **options)


def run_one_tower_half(seeds, data, out_dir, **options):
    """Section 3.2: one tower with half the kernels minus two towers."""
    return _ablation_claim("one_tower_half", ["one_tower_half"], "test_top1_error",
                           "test top-1 error", seeds, data, out_dir, **options)


def run_no_dropout(seeds, data, out_dir, **options):
    """Section 4.2: the test - train error gap without dropout minus with it."""
    return _ablation_claim("no_dropout", ["no_dropout"], "gap", "test - train error gap",
                           seeds, data, out_dir, **options)


def run_no_augmentation(seeds, data, out_dir, **options):
    """Section 4.1: the test - train error gap without augmentation minus with it."""
    return _ablation_claim("no_augmentation", ["no_augmentation"], "gap",
                           "test - train error gap", seeds, data, out_dir, **options)


def run_no_pca_lighting(seeds, data, out_dir, **options):
    """Section 4.1: test top-1 error without PCA lighting minus with it."""
    return _ablation_claim("no_pca_lighting", ["no_pca_lighting"], "test_top1_error",
                           "test top-1 error", seeds, data, out_dir, **options)


def run_depth(seeds, data, out_dir, **options):
    """Section 7: test top-1 error without conv3 or conv4 (pooled) minus the full depth."""
    return _ablation_claim("depth", ["no_conv3", "no_conv4"], "test_top1_error",
                           "test top-1 error", seeds, data, out_dir, **options)


def knn_label_agreement(queries: np.ndarray, query_labels: np.ndarray, database: np.ndarray,
                        database_labels: np.ndarray, k: int) -> float:
    """Mean over queries of the fraction of their k nearest (Euclidean) database rows that
    share their label."""
    from keras_alexnet.retrieval import nearest_neighbors

    indices, _ = nearest_neighbors(queries, database, k)
    return float(np.mean(np.asarray(database_labels)[indices] ==
                         np.asarray(query_labels)[:, None]))


def run_features(seeds, data, out_dir, *, tiny=False, budget_steps=None, precision="auto"):
    """Section 6.1: 5-NN label agreement of fc7 (trained, untrained) and of raw pixels."""
    p = _protocol(tiny, budget_steps, precision)
    claim = get_claim("features")
    runs, failures = [], {}
    num_classes = None if tiny else PRESETS[p.preset].model.num_classes
    for seed in seeds:
        trained = train_variant(p, BASELINE, seed, data, out_dir)
        why = stats.why_not_trained(trained["test_top1_error"], num_classes,
                                    trained.get("diverged", False))
        if why:  # the claim is about a trained network's features
            failures[trained["name"]] = why
            continue
        knn_settings = {**run_settings(p, data), "query_images": p.query_images,
                        "database_images": p.database_images, "neighbours": p.neighbours}
        runs.append(cached_run(out_dir, claim.name, run_name("knn", seed, p.precision),
                               functools.partial(_measure_features, p, seed, data, out_dir),
                               knn_settings))
    trained = [r["trained"] for r in runs]
    summary = {**stats.summarize(trained), "unit": "fraction of 5 nearest fc7 neighbours "
               "with the query's label (trained network)",
               "untrained": stats.summarize([r["untrained"] for r in runs]),
               "raw_pixels": stats.summarize([r["raw_pixels"] for r in runs]),
               "did_not_train": failures}
    # Trained fc7 minus raw pixels, paired by seed (the same queries and database).
    diff = stats.summarize([r["trained"] - r["raw_pixels"] for r in runs])
    note = (f"label agreement: trained fc7 {summary['mean']:.3f}, untrained fc7 "
            f"{summary['untrained']['mean']:.3f}, raw pixels {summary['raw_pixels']['mean']:.3f}"
            if summary["mean"] is not None else "no trained network")
    if diff["mean"] is not None:  # the effect the verdict judges
        spread = f" ± {100 * diff['std']:.2f}" if diff["std"] is not None else ""
        note += (f"; trained fc7 - raw pixels {100 * diff['mean']:+.2f}{spread} points, "
                 "paired by seed")
    if failures:
        note += ("; left out, the baseline did not train: "
                 + stats.failures_text(failures))
    record = _record(claim, p, runs, summary, note, seeds, data, tiny, [])
    record["settings"]["network"] = (f"AlexNet ({p.preset} preset) after {p.budget_steps} "
                                     "steps, the same network untrained, raw 32x32 pixels")
    plots.features(record, Path(out_dir) / f"{claim.name}.png")
    return record


def _measure_features(p: FullProtocol, seed: int, data: str, out_dir: str | Path,
                      work_dir: Path) -> dict[str, Any]:
    """One seed's 5-NN label agreement: trained and untrained fc7, and raw 32x32 pixels."""
    import keras

    from keras_alexnet.data import open_source
    from keras_alexnet.loading import load_keras_model
    from keras_alexnet.model import build_alexnet

    # Only now the model file is needed: a baseline read back from published records has
    # none and trains again.
    trained = train_variant(p, BASELINE, seed, data, out_dir, need_model=True)
    config = _run_config(p, BASELINE, seed, data, work_dir)
    source = open_source(data, image_size=config.data_image_size)
    keras.utils.set_random_seed(seed)
    untrained = build_alexnet(config.model)
    out = {"seed": seed}
    for key, model in (("trained", load_keras_model(trained["model_path"])),
                       ("untrained", untrained)):
        out[key] = knn_label_agreement(
            *_knn_arrays(p, source, config.model.input_size, model), p.neighbours)
    pixels = open_source(data, image_size=32)  # raw pixels, at CIFAR-10's size
    out["raw_pixels"] = knn_label_agreement(*_knn_arrays(p, pixels, 32), p.neighbours)
    return out


def _knn_arrays(p: FullProtocol, source: Any, size: int,
                model: Any = None) -> tuple[np.ndarray, ...]:
    """(query vectors, their labels, database vectors, their labels): test images as queries,
    training images as the database; fc7 features of `model`, or raw pixels without one."""
    from keras_alexnet.retrieval import extract_features

    bs = 64
    q = _limited(source.eval_dataset(bs, size), p.query_images, bs)
    d = _limited(source.train_dataset(bs, size, seed=0, augment=False, drop_remainder=False),
                 p.database_images, bs)
    if model is None:
        flat = [np.concatenate([x.numpy().reshape(len(x), -1) for x, _ in ds]) for ds in (q, d)]
        labels = [np.concatenate([y.numpy() for _, y in ds]) for ds in (q, d)]
        return flat[0], labels[0], flat[1], labels[1]
    fq, lq = extract_features(model, q, progress=False)
    fd, ld = extract_features(model, d, progress=False)
    return fq, lq, fd, ld
