"""A claim's files: one JSON record per finished run (what makes a rerun skip it), the claim's
JSON, and the TensorBoard HParams set-up that makes its runs comparable.

Layout under `out_dir`: <claim>.json and <claim>.png (the results), <claim>/runs/<run>.json
(one per finished run), <claim>/<run>/ (work dirs: checkpoints and TensorBoard logs), and
published/<claim>/<run>.json: the runs of claims published before (`stage_published`), which
a clone without the work dirs reads back instead of training them again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from keras_alexnet.files import write_text_atomic

PUBLISHED = "published"  # under out_dir: runs copied from published claim records

# The fields every <claim>.json has (tests check them; docs/CLAIMS.md is built from them).
CLAIM_FIELDS = ("claim", "title", "section", "paper_figure", "paper", "settings", "runs",
                "summary", "measured", "verdict", "bound", "verdict_note", "differences",
                "command", "figure", "smoke")


def write_json(path: str | Path, value: Any) -> Path:
    """Writes `value` as indented JSON, atomically."""
    write_text_atomic(path, json.dumps(value, indent=1, sort_keys=True) + "\n")
    return Path(path)


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


def cached_run(out_dir: str | Path, claim: str, name: str,
               measure: Callable[[Path], dict[str, Any]], settings: dict[str, Any], *,
               usable: Callable[[dict[str, Any]], bool] | None = None) -> dict[str, Any]:
    """The run `name`'s record: read back if it finished before, else `measure(work_dir)`'s.

    The record is written only once the run has finished, so an interrupted run has none and
    is measured again (its work dir lets it resume where it stopped); the record keeps the
    measuring call's `wall_seconds` and whether it `resumed` a work dir. It keeps `settings`
    (everything besides its name that decides its numbers: data, budget, protocol), so a run
    made with other settings is never read back as this one. A run published before
    (`stage_published`) with the same name and settings is read back like a finished one.
    `usable(record)` false (e.g. the record's model file is gone) makes it measured again.

    Raises:
      ValueError: the finished run `name` was made with other settings (one line).
    """
    path = Path(out_dir) / claim / "runs" / f"{name}.json"
    settings = json.loads(json.dumps(settings))  # as it reads back: tuples become lists
    if path.is_file():
        record = read_json(path)
        old = record.get("settings", {})
        changed = [f"{k}={old.get(k)!r} there, {v!r} now" for k, v in settings.items()
                   if old.get(k) != v]
        if changed:
            raise ValueError(f"{path} is a finished run with other settings ("
                             f"{'; '.join(changed)}): use another --out_dir, or delete that "
                             "file and its work dir to run it again.")
        if usable is None or usable(record):
            return record
    else:
        published = _published_run(out_dir, name, settings)
        # Finished in an earlier clone: its record travels with the docs, its files do not.
        if published is not None and (usable is None or usable(published)):
            write_json(path, published)
            return published
    work_dir = Path(out_dir) / claim / name
    resumed = work_dir.exists()
    start = time.monotonic()
    record = {"name": name, "settings": settings, **measure(work_dir)}
    # The cost of a run (the claim's own time drops to seconds when it is regenerated from
    # finished runs); a resumed run's earlier sittings are not in it, hence `resumed`.
    record.update(wall_seconds=round(time.monotonic() - start, 1), resumed=resumed)
    write_json(path, record)
    return record


def stage_published(claims_dir: str | Path, out_dir: str | Path) -> int:
    """Makes the runs of the claim records in `claims_dir` (e.g. docs/claims) readable by
    `cached_run`, which reads one back in place of a run with the same name and settings.

    The published records are the only copy of a finished run that a fresh clone has (run
    records and work dirs stay under out_dir, outside version control): adding a seed to a
    published claim should not retrain the seeds it has. Smoke records are skipped.

    Returns:
      The number of runs staged.

    Raises:
      ValueError: a file in `claims_dir` is not a claim record (one line).
    """
    staged = 0
    for source in sorted(Path(claims_dir).glob("*.json")):
        try:
            record = read_json(source)
            claim, runs = record["claim"], record["runs"]
            names = [run["name"] for run in runs]
        except (ValueError, KeyError, TypeError):
            raise ValueError(f"{source} is not a claim record (reproduce writes them): move "
                             "it out of that directory or publish the claim again.") from None
        if record.get("smoke"):
            continue
        for name, run in zip(names, runs):
            write_json(Path(out_dir) / PUBLISHED / claim / f"{name}.json", run)
            staged += 1
    return staged


def _published_run(out_dir: str | Path, name: str,
                   settings: dict[str, Any]) -> dict[str, Any] | None:
    """A staged run named `name` made with exactly `settings`, else None (any claim's: the
    claims that share the baseline's runs each publish them)."""
    for path in sorted((Path(out_dir) / PUBLISHED).glob(f"*/{name}.json")):
        record = read_json(path)
        if record.get("name") == name and record.get("settings") == settings:
            return record
    return None


def write_hparams_config(log_dir: str | Path, hparams: dict[str, list[Any] | None],
                         metrics: dict[str, str]) -> None:
    """The claim-level HParams config: the settings that vary and the metrics to compare.

    Args:
      log_dir: the folder over the runs' logs (`tensorboard --logdir` it).
      hparams: {name: the values it takes, or None for any (e.g. seeds, which grow)}.
      metrics: {"group/tag": display name}, e.g. {"validation/top1_error": "test error"}.
    """
    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hp

    def domain(values: list[Any]) -> Any:
        if all(isinstance(v, bool) for v in values):
            return hp.Discrete([bool(v) for v in values])
        if all(isinstance(v, int | float) for v in values):
            return hp.Discrete(sorted({float(v) for v in values}))
        return hp.Discrete(sorted({str(v) for v in values}))

    with tf.summary.create_file_writer(str(log_dir)).as_default():
        hp.hparams_config(
            hparams=[hp.HParam(k, None if v is None else domain(v)) for k, v in hparams.items()],
            metrics=[hp.Metric(tag.split("/", 1)[1], group=tag.split("/", 1)[0],
                               display_name=name) for tag, name in metrics.items()])
