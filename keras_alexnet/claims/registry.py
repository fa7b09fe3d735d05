"""The paper's claims this package tests: where the paper makes them, its number, the cost.

Imports nothing heavy: `scripts/reproduce.py --list` and `--help` read it before TensorFlow.
"""

from __future__ import annotations

import dataclasses

from keras_alexnet.precision import FLOAT32, MIXED_BF16

SMALL, FULL = "small network", "full network"


# Table 1: the paper's network's top-1 error on ILSVRC-2010's test set, the error its
# ablations' effects (Sections 3.2-3.4, 4.1, 7) are stated against.
PAPER_TOP1_ERROR = 0.375
# Section 3.3: the CIFAR-10 network with normalisation, 11% test error (13% without).
PAPER_CIFAR_ERROR = 0.11

# Minutes of one full-network run (full_claims.FullProtocol: 1500 steps of 128, six
# validations of 5000 held-out images, then 10000 test and 10000 training images evaluated) on
# a quiet 2-core Intel Xeon (AVX512-BF16, AMX). bf16: from the bf16 run of docs/RESULTS.md on
# that machine, 1.07 s per step (115-122 images/s) and ~50 s per 10000 images evaluated.
# float32: the benchmark's Keras fp32 training and inference there are 2.2x and 2.6x slower.
FULL_RUN_MINUTES = {MIXED_BF16: 31.0, FLOAT32: 66.0}


@dataclasses.dataclass(frozen=True)
class Claim:
    """One claim. `runner` is "module:function", imported only when the claim runs."""

    name: str
    title: str
    section: str
    paper_figure: str
    paper: str  # the paper's statement, with its number
    paper_value: float | None
    kind: str
    runner: str
    cost_note: str
    # Small networks (float32): minutes per seed of their real runs, on a 2-core x86-64 CPU
    # shared with other jobs. Full network: runs per seed besides the shared baseline (whose
    # run each seed needs once, for all claims), priced by FULL_RUN_MINUTES, plus any minutes
    # that are not training (measured on a loaded machine).
    minutes_per_seed: float = 0.0
    full_runs: int = 0
    # A variant run's minutes as a fraction of a baseline run's (a smaller network is faster).
    run_scale: float = 1.0
    # The error rate (a fraction) the paper's effect is relative to: its size here is
    # paper_value / paper_error times our baseline's error (claims.verdicts). None: the
    # verdict judges the direction only.
    paper_error: float | None = None
    # The effect's value of "no effect": 0 for a difference, 1 for a ratio (Figure 1).
    effect_null: float = 0.0

    def cost(self) -> str:
        """The cost per seed, in words (`--list`, CLAIMS.md)."""
        if self.kind == SMALL:
            return f"~{self.minutes_per_seed:g} min per seed ({self.cost_note})"
        bf16, fp32 = FULL_RUN_MINUTES[MIXED_BF16], FULL_RUN_MINUTES[FLOAT32]
        extra, n = self.minutes_per_seed, self.full_runs * self.run_scale
        return (f"~{n * bf16 + extra:.0f} min per seed in bf16, ~{n * fp32 + extra:.0f} in float32 "
                f"({self.cost_note}; the shared baseline's run: +{bf16:g} / +{fp32:g} min per "
                "seed, once for all claims)")


_SMALL = "keras_alexnet.claims.small_claims"
_FULL = "keras_alexnet.claims.full_claims"

CLAIMS: dict[str, Claim] = {c.name: c for c in (
    Claim("figure1", "ReLU trains faster than tanh", "3.1", "Figure 1",
          "a 4-layer CNN with ReLUs reaches 25% training error 6x faster than with tanh "
          "(CIFAR-10)", 6.0, SMALL, f"{_SMALL}:run_figure1",
          "measured: 17.6 min for the first seed (the 6-run learning-rate grid), 5.5 min for "
          "each further seed (2 runs)", minutes_per_seed=17.6, effect_null=1.0),
    Claim("lrn_small", "LRN helps a small CNN", "3.3", "text (footnote 3)",
          "a 4-layer CNN: 13% test error without normalisation, 11% with (CIFAR-10)", 2.0,
          SMALL, f"{_SMALL}:run_lrn_small", "cuda-convnet's conv-local pair, 2 runs of 10 "
          "epochs; ~5 min an epoch (0.6 s a step) on a 2-core AVX2 AMD EPYC, measured",
          minutes_per_seed=100.0, paper_error=PAPER_CIFAR_ERROR),
    Claim("no_lrn", "LRN lowers the error", "3.3", "text",
          "response normalisation lowers top-1 error by 1.4 points (ILSVRC-2010)", 1.4, FULL,
          f"{_FULL}:run_no_lrn", "one variant run", full_runs=1, paper_error=PAPER_TOP1_ERROR),
    Claim("non_overlapping_pool", "Overlapping pooling lowers the error", "3.4", "text",
          "overlapping pooling (z=3, s=2) lowers top-1 error by 0.4 points vs z=2, s=2", 0.4,
          FULL, f"{_FULL}:run_non_overlapping_pool", "one variant run", full_runs=1,
          paper_error=PAPER_TOP1_ERROR),
    Claim("one_tower_half", "Two towers beat one with half the kernels", "3.2", "text",
          "two towers lower top-1 error by 1.7 points vs one tower with half the kernels",
          1.7, FULL, f"{_FULL}:run_one_tower_half", "one variant run, 54% of the "
          "baseline's multiply-adds: 21.5 min measured in bf16 beside light jobs", full_runs=1,
          run_scale=0.7, paper_error=PAPER_TOP1_ERROR),
    Claim("no_dropout", "Without dropout the network overfits", "4.2", "text",
          "without dropout the network overfits substantially (train vs test error)", None,
          FULL, f"{_FULL}:run_no_dropout", "one variant run", full_runs=1),
    Claim("no_augmentation", "Without augmentation the network overfits", "4.1", "text",
          "without crops and flips the network overfits substantially", None, FULL,
          f"{_FULL}:run_no_augmentation", "one variant run", full_runs=1),
    Claim("no_pca_lighting", "PCA lighting lowers the error", "4.1", "text",
          "PCA lighting lowers top-1 error by over 1 point", 1.0, FULL,
          f"{_FULL}:run_no_pca_lighting", "one variant run", full_runs=1,
          paper_error=PAPER_TOP1_ERROR),
    Claim("features", "fc7 neighbours are semantically alike", "6.1", "Figure 4 (right)",
          "test images and the training images nearest in fc7 space show the same kind of "
          "object", None, FULL, f"{_FULL}:run_features",
          "no training of its own: fc7 of 70k images, trained (bf16) and untrained, 17 min "
          "measured on a quiet 2-core Xeon", minutes_per_seed=17.0),
    Claim("depth", "Removing a middle conv layer costs ~2 points", "7", "text",
          "removing any middle convolutional layer costs about 2 points of top-1", 2.0, FULL,
          f"{_FULL}:run_depth", "two variant runs (no conv3, no conv4)", full_runs=2,
          paper_error=PAPER_TOP1_ERROR),
)}


def get_claim(name: str) -> Claim:
    """The named claim.

    Raises:
      ValueError: if `name` is not in `CLAIMS`.
    """
    if name not in CLAIMS:
        raise ValueError(f"Unknown claim {name!r}; choose one of {sorted(CLAIMS)} or 'all'.")
    return CLAIMS[name]
