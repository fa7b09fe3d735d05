"""Learning curves of a training run, read back from its TensorBoard event files, as a PNG.

TensorBoard is the live view; this is the static one a results page can embed (docs/RESULTS.md).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from keras_alexnet.files import atomic_path

SPLITS = ("train", "validation")
# (panel title, tags drawn in it, y scale): the figure's three panels.
PANELS = (
    ("loss", ("train/loss", "validation/loss"), "linear"),
    ("top-1 error (%)", ("train/top1_error", "validation/top1_error"), "linear"),
    ("learning rate", ("train/learning_rate",), "log"),
)


def read_scalars(log_dir: str | Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Every scalar a run wrote under `log_dir`/{train,validation}, keyed "split/tag".

    A resumed run writes some steps twice; the later write wins, as TensorBoard shows it.

    Returns:
      {"train/loss": (steps int64, values float64), "validation/top1_error": ..., ...}.
    Raises:
      ValueError: if `log_dir` holds no event files.
    """
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    log_dir = Path(log_dir)
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for split in SPLITS:
        if not any((log_dir / split).glob("events.out.tfevents.*")):
            continue
        events = EventAccumulator(str(log_dir / split), size_guidance={"tensors": 0}).Reload()
        for tag in events.Tags()["tensors"]:
            latest: dict[int, tuple[float, float]] = {}
            for e in events.Tensors(tag):
                value = _scalar(e.tensor_proto)
                if value is not None and (e.step not in latest
                                          or e.wall_time >= latest[e.step][0]):
                    latest[e.step] = (e.wall_time, value)
            if latest:
                steps = np.array(sorted(latest), np.int64)
                out[f"{split}/{tag}"] = (steps, np.array([latest[s][1] for s in steps]))
    if not out:
        raise ValueError(f"No TensorBoard scalars under {log_dir}/{{train,validation}}; pass "
                         "the run's logs folder, e.g. runs/alexnet/logs.")
    return out


def plot_curves(scalars: dict[str, tuple[np.ndarray, np.ndarray]], path: str | Path, *,
                steps_per_epoch: int | None = None, title: str | None = None) -> Path:
    """Draws loss, top-1 error and learning rate against training progress into a PNG.

    Args:
      scalars: as returned by `read_scalars`; missing tags leave their line out.
      path: the PNG to write (atomically: a half-written file never appears there).
      steps_per_epoch: if given, the x axis is in epochs (step / steps_per_epoch), not steps.
      title: a line above the panels.
    Returns:
      The path written.
    Raises:
      ImportError: (one line) if matplotlib is not installed.
    """
    try:
        from matplotlib.figure import Figure
    except ImportError as e:
        raise ImportError("Plotting needs matplotlib: pip install 'keras_alexnet[plot]'.") from e
    if steps_per_epoch is not None and steps_per_epoch < 1:
        raise ValueError(f"steps_per_epoch={steps_per_epoch} must be at least 1 (or None).")
    scale = float(steps_per_epoch or 1)
    figure = Figure(figsize=(15, 4.2), dpi=100, layout="constrained")
    for ax, (name, tags, yscale) in zip(figure.subplots(1, len(PANELS)), PANELS):
        for tag in tags:
            if tag not in scalars:
                continue
            steps, values = scalars[tag]
            if "error" in tag:
                values = 100 * values
            marker = "o" if tag.startswith("validation/") else None
            ax.plot(steps / scale, values, label=tag, marker=marker, markersize=3,
                    linewidth=1.5 if marker else 1.0)
        ax.set_title(name)
        ax.set_yscale(yscale)
        ax.set_xlabel("epoch" if steps_per_epoch else "step")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    if title:
        figure.suptitle(title)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png")
    return Path(path)


def _scalar(proto) -> float | None:
    import tensorflow as tf

    value = tf.make_ndarray(proto)
    return float(value) if value.ndim == 0 and value.dtype.kind in "fiu" else None
