"""The claims' figures (PNG, written atomically), drawn from their JSON records."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from keras_alexnet.files import atomic_path


def _figure(width: float, height: float) -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError as e:
        raise ImportError("Plotting needs matplotlib: pip install 'keras_alexnet[plot]'.") from e
    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _save(figure: Any, path: str | Path) -> Path:
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png")
    return Path(path)


def figure1(record: dict[str, Any], path: str | Path) -> Path:
    """Figure 1's analogue: training error vs epochs, ReLU solid, tanh dashed (chosen rates),
    and the tanh/ReLU ratio against the threshold."""
    s = record["settings"]
    figure = _figure(12, 4.5)
    left, right = figure.subplots(1, 2)
    chosen = s["chosen_learning_rates"]
    for i, seed in enumerate(s["seeds"]):
        for activation, style in (("relu", "-"), ("tanh", "--")):
            run = next(r for r in record["runs"] if r["seed"] == seed
                       and r["activation"] == activation
                       and r["learning_rate"] == chosen[activation])
            x = [(k + 1) * s["window"] / run["steps_per_epoch"]
                 for k in range(len(run["block_errors"]))]
            left.plot(x, [100 * e for e in run["block_errors"]], style, color=f"C{i}",
                      label=f"{activation} (lr {run['learning_rate']:g}), seed {seed}")
    left.axhline(100 * s["threshold"], color="gray", linewidth=0.8)
    left.set_xlabel("epochs")
    left.set_ylabel("training error (%)")
    left.set_title("training error: ReLU solid, tanh dashed")
    left.legend(fontsize=8)
    left.grid(alpha=0.3)
    thresholds = [float(t) for t in s["thresholds"]]
    for i, ps in enumerate(s["per_seed"]):
        pts = [(100 * t, ps["ratios"][f"{t:g}"]) for t in thresholds]
        pts = [(t, r) for t, r in pts if r["ratio"] is not None]
        right.plot([t for t, _ in pts], [r["ratio"] for _, r in pts], "o-", color=f"C{i}",
                   label=f"seed {ps['seed']}")
        for t, r in pts:
            if r["lower_bound"]:
                right.annotate(">=", (t, r["ratio"]), fontsize=8)
    right.axhline(1.0, color="gray", linewidth=0.8)
    right.axhline(record["paper"]["value"], color="black", linestyle=":", linewidth=1,
                  label="paper (CIFAR-10, 25%)")
    right.set_xlabel("training-error threshold (%)")
    right.set_ylabel("tanh steps / ReLU steps")
    right.set_title("speed-up of ReLU over tanh")
    right.legend(fontsize=8)
    right.grid(alpha=0.3)
    figure.suptitle(f"Figure 1 analogue on {s['data']}")
    return _save(figure, path)


def lrn_small(record: dict[str, Any], path: str | Path) -> Path:
    """Test error after each epoch, with LRN solid and without dashed, one color per seed."""
    figure = _figure(6.5, 4.5)
    ax = figure.subplots()
    seeds = record["settings"]["seeds"]
    for run in record["runs"]:
        errors = run["test_error"]
        ax.plot(range(1, len(errors) + 1), [100 * e for e in errors],
                "-o" if run["use_lrn"] else "--o", color=f"C{seeds.index(run['seed'])}",
                label=f"{'LRN' if run['use_lrn'] else 'no LRN'}, seed {run['seed']}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("test error (%)")
    ax.set_title("small CNN with (solid) and without (dashed) LRN")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(figure, path)


def ablation(record: dict[str, Any], path: str | Path, metric: str, label: str) -> Path:
    """One point per run of `metric` (error fractions shown in %), by variant; the line is the
    mean over the runs the summary kept, runs of left-out seeds are hollow."""
    figure = _figure(6.5, 4.5)
    ax = figure.subplots()
    runs = record["runs"]
    variants = list(dict.fromkeys(r["variant"] for r in runs))
    failed = set(record["summary"].get("did_not_train", ()))
    left_out = {r["seed"] for r in runs if r["name"] in failed}
    for i, variant in enumerate(variants):
        mine = [r for r in runs if r["variant"] == variant and r[metric] is not None]
        for out in (False, True):
            values = [100 * r[metric] for r in mine if (r["seed"] in left_out) == out]
            ax.plot([i] * len(values), values, "o", color=f"C{i}",
                    fillstyle="none" if out else "full")
        kept = [100 * r[metric] for r in mine if r["seed"] not in left_out]
        if kept:
            ax.plot([i - 0.2, i + 0.2], [sum(kept) / len(kept)] * 2, color=f"C{i}")
    ax.set_xticks(range(len(variants)), variants)
    ax.set_ylabel(label)
    ax.set_title(f"{record['claim']}: each point one seed, line the mean"
                 + (" (hollow: seed left out)" if left_out else ""))
    ax.grid(alpha=0.3)
    return _save(figure, path)


def features(record: dict[str, Any], path: str | Path) -> Path:
    """5-NN label agreement per seed: trained fc7, untrained fc7, raw pixels."""
    figure = _figure(6.5, 4.5)
    ax = figure.subplots()
    kinds = ("trained", "untrained", "raw_pixels")
    for i, kind in enumerate(kinds):
        values = [r[kind] for r in record["runs"]]
        ax.plot([i] * len(values), values, "o", color=f"C{i}")
    ax.set_xticks(range(len(kinds)), ["fc7, trained", "fc7, untrained", "raw pixels"])
    ax.set_ylabel("neighbours sharing the query's label")
    ax.set_ylim(0, 1)
    ax.set_title("5 nearest training images of each test image")
    ax.grid(alpha=0.3)
    return _save(figure, path)
