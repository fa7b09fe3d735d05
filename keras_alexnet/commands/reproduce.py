"""Runs the paper's claims at small scale: the runs, their statistics, a verdict, a figure.

  keras-alexnet reproduce --list
  keras-alexnet reproduce --claim=figure1 --seeds=0,1 --out_dir=runs/claims
  keras-alexnet reproduce --claim=all --seeds=0,1 --docs_dir=docs
  keras-alexnet reproduce --claim=figure1 --data=folder:/data/cifar10   # the paper's data
  tensorboard --logdir runs/claims/figure1       # HParams tab: the runs side by side

Resumable: a finished run is read back, an interrupted one continues from its checkpoint.
Writes <out_dir>/<claim>.json and .png; --docs_dir also copies them to <docs_dir>/claims/ and
regenerates <docs_dir>/CLAIMS.md from every JSON there. With --docs_dir, the runs already
published there (same name and settings) are read back too, so a fresh clone adds a seed to
a published claim without training its other seeds again.
From a clone, `python scripts/reproduce.py` is the same command.
"""

from __future__ import annotations

import importlib.util

from absl import flags

from keras_alexnet import cli
from keras_alexnet.claims.registry import CLAIMS, get_claim
from keras_alexnet.precision import PRECISIONS

_CLAIM = flags.DEFINE_string("claim", None, f"One of {sorted(CLAIMS)}, or 'all'.")
_SEEDS = flags.DEFINE_string("seeds", "0,1", "Comma-separated seeds; a verdict needs two.")
_DATA = flags.DEFINE_string("data", "fashion_mnist", "Data spec (keras_alexnet.data."
                            "open_source), e.g. folder:/data/cifar10 for the paper's CIFAR-10.")
_OUT_DIR = flags.DEFINE_string("out_dir", "runs/claims", "Results, run records, work dirs.")
_DOCS_DIR = flags.DEFINE_string("docs_dir", None, "Also publish into <docs_dir>/claims/ and "
                                "regenerate <docs_dir>/CLAIMS.md; runs published there are "
                                "read back, not trained again.")
_BUDGET = flags.DEFINE_integer("budget_steps", None, "Full-network claims: training steps "
                               "per run (default: the protocol's).")
_PRECISION = flags.DEFINE_enum(
    "precision", "auto", list(PRECISIONS), "Full-network claims: 'auto' "
    "is bf16 where the hardware has it and its accuracy was checked (keras_alexnet.precision); "
    "the small networks train in float32.")
_LIST = flags.DEFINE_bool("list", False, "Print the claims and their cost, then exit.")
_TINY = flags.DEFINE_bool("tiny", False, "Smoke-test sizes (seconds; the numbers mean nothing).")


def main(argv: list[str]) -> None:
    if _LIST.value:
        print("Cost on a 2-core x86-64 CPU, from measured runs (keras_alexnet/claims/registry.py);"
              " the small networks train in float32, the full network in --precision:")
        for c in CLAIMS.values():
            print(f"  {c.name:22s} Section {c.section:4s} {c.kind:14s} {c.cost()}")
        return
    if not _CLAIM.value:
        raise cli.UsageError("Pass --claim=NAME (or --claim=all); --list shows the claims.")
    names = list(CLAIMS) if _CLAIM.value == "all" else [_CLAIM.value]
    try:
        for name in names:
            get_claim(name)
        seeds = [int(s) for s in _SEEDS.value.split(",") if s.strip()]
    except ValueError as e:
        raise cli.UsageError(e) from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise cli.UsageError(f"--seeds={_SEEDS.value!r} must list distinct integers, e.g. 0,1.")
    if _BUDGET.value is not None and _BUDGET.value < 1:
        raise cli.UsageError(f"--budget_steps={_BUDGET.value} must be at least 1.")
    if importlib.util.find_spec("matplotlib") is None:  # checked before hours of training
        raise cli.UsageError("The claims' figures need matplotlib: pip install -e '.[plot]'.")
    cli.load_tensorflow()  # after the flag checks
    from keras_alexnet.claims import publish, run_claim

    options = {"precision": _PRECISION.value}
    if _BUDGET.value is not None:
        options["budget_steps"] = _BUDGET.value
    published = f"{_DOCS_DIR.value}/claims" if _DOCS_DIR.value else None
    for name in names:
        small = get_claim(name).kind == "small network"
        record = run_claim(name, seeds, _DATA.value, _OUT_DIR.value, tiny=_TINY.value,
                           published=published, **({} if small else options))
        print(f"{name}: {record['measured']} -> {record['verdict']} ({record['verdict_note']})")
        if _DOCS_DIR.value:
            publish(name, _OUT_DIR.value, _DOCS_DIR.value)
    if _DOCS_DIR.value:
        print(f"Table: {_DOCS_DIR.value}/CLAIMS.md")


def run() -> None:
    """`keras-alexnet reproduce`: parses the flags and runs `main`."""
    cli.run(main)
