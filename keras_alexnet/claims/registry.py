"""The paper's claims this package tests: where the paper makes them, its number, the cost.

Imports nothing heavy: `scripts/reproduce.py --list` and `--help` read it before TensorFlow.
"""

from __future__ import annotations

import dataclasses

SMALL, FULL = "small network", "full network"


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
    # Measured on this package's machine: a 2-core x86-64 CPU shared with other jobs (so the
    # figures are from a loaded machine), fp32, default settings; minutes per seed.
    minutes_per_seed: float
    cost_note: str


_SMALL = "keras_alexnet.claims.small_claims"
_FULL = "keras_alexnet.claims.full_claims"

CLAIMS: dict[str, Claim] = {c.name: c for c in (
    Claim("figure1", "ReLU trains faster than tanh", "3.1", "Figure 1",
          "a 4-layer CNN with ReLUs reaches 25% training error 6x faster than with tanh "
          "(CIFAR-10)", 6.0, SMALL, f"{_SMALL}:run_figure1", 12.0,
          "first seed: the learning-rate grid (6 runs); later seeds: 2 runs"),
    Claim("lrn_small", "LRN helps a small CNN", "3.3", "text (footnote 3)",
          "a 4-layer CNN: 13% test error without normalisation, 11% with (CIFAR-10)", 2.0,
          SMALL, f"{_SMALL}:run_lrn_small", 4.0, "2 runs of 2 epochs each"),
    Claim("no_lrn", "LRN lowers the error", "3.3", "text",
          "response normalisation lowers top-1 error by 1.4 points (ILSVRC-2010)", 1.4, FULL,
          f"{_FULL}:run_no_lrn", 140.0, "baseline + variant, shared baseline"),
    Claim("non_overlapping_pool", "Overlapping pooling lowers the error", "3.4", "text",
          "overlapping pooling (z=3, s=2) lowers top-1 error by 0.4 points vs z=2, s=2", 0.4,
          FULL, f"{_FULL}:run_non_overlapping_pool", 140.0,
          "baseline + variant, shared baseline"),
    Claim("one_tower_half", "Two towers beat one with half the kernels", "3.2", "text",
          "two towers lower top-1 error by 1.7 points vs one tower with half the kernels",
          1.7, FULL, f"{_FULL}:run_one_tower_half", 110.0,
          "baseline + variant, shared baseline"),
    Claim("no_dropout", "Without dropout the network overfits", "4.2", "text",
          "without dropout the network overfits substantially (train vs test error)", None,
          FULL, f"{_FULL}:run_no_dropout", 140.0, "baseline + variant, shared baseline"),
    Claim("no_augmentation", "Without augmentation the network overfits", "4.1", "text",
          "without crops and flips the network overfits substantially", None, FULL,
          f"{_FULL}:run_no_augmentation", 140.0, "baseline + variant, shared baseline"),
    Claim("no_pca_lighting", "PCA lighting lowers the error", "4.1", "text",
          "PCA lighting lowers top-1 error by over 1 point", 1.0, FULL,
          f"{_FULL}:run_no_pca_lighting", 140.0, "baseline + variant, shared baseline"),
    Claim("features", "fc7 neighbours are semantically alike", "6.1", "Figure 4 (right)",
          "test images and the training images nearest in fc7 space show the same kind of "
          "object", None, FULL, f"{_FULL}:run_features", 100.0,
          "the baseline's training + fc7 of 70k images, trained and untrained"),
    Claim("depth", "Removing a middle conv layer costs ~2 points", "7", "text",
          "removing any middle convolutional layer costs about 2 points of top-1", 2.0, FULL,
          f"{_FULL}:run_depth", 200.0, "baseline + 2 variants (no conv3, no conv4)"),
)}


def get_claim(name: str) -> Claim:
    """The named claim.

    Raises:
      ValueError: if `name` is not in `CLAIMS`.
    """
    if name not in CLAIMS:
        raise ValueError(f"Unknown claim {name!r}; choose one of {sorted(CLAIMS)} or 'all'.")
    return CLAIMS[name]
