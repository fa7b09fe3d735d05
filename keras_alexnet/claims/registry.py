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
    # Minutes per seed on this package's machine, a 2-core x86-64 CPU, measured while other
    # jobs shared it (a loaded machine), fp32, default settings. Small claims: their real
    # runs. Full network: 6.3 s per training step measured (median of 5; 2.95 s quiet, see
    # docs/PERFORMANCE.md), so 1500 steps + validation + the final test/train evaluation is
    # ~170 min per run, plus the shared baseline's run the first time a claim needs it.
    minutes_per_seed: float
    cost_note: str


_SMALL = "keras_alexnet.claims.small_claims"
_FULL = "keras_alexnet.claims.full_claims"
_BASELINE = "+170 min the first time, for the baseline's run that the claims share"

CLAIMS: dict[str, Claim] = {c.name: c for c in (
    Claim("figure1", "ReLU trains faster than tanh", "3.1", "Figure 1",
          "a 4-layer CNN with ReLUs reaches 25% training error 6x faster than with tanh "
          "(CIFAR-10)", 6.0, SMALL, f"{_SMALL}:run_figure1", 17.6,
          "measured: 17.6 min for the first seed (the 6-run learning-rate grid), 5.5 min for "
          "each further seed (2 runs)"),
    Claim("lrn_small", "LRN helps a small CNN", "3.3", "text (footnote 3)",
          "a 4-layer CNN: 13% test error without normalisation, 11% with (CIFAR-10)", 2.0,
          SMALL, f"{_SMALL}:run_lrn_small", 3.0,
          "measured: 6 min for 2 seeds (4 runs of 2 epochs)"),
    Claim("no_lrn", "LRN lowers the error", "3.3", "text",
          "response normalisation lowers top-1 error by 1.4 points (ILSVRC-2010)", 1.4, FULL,
          f"{_FULL}:run_no_lrn", 340.0, "the baseline and the variant, ~170 min each"),
    Claim("non_overlapping_pool", "Overlapping pooling lowers the error", "3.4", "text",
          "overlapping pooling (z=3, s=2) lowers top-1 error by 0.4 points vs z=2, s=2", 0.4,
          FULL, f"{_FULL}:run_non_overlapping_pool", 170.0,
          f"the variant; {_BASELINE}"),
    Claim("one_tower_half", "Two towers beat one with half the kernels", "3.2", "text",
          "two towers lower top-1 error by 1.7 points vs one tower with half the kernels",
          1.7, FULL, f"{_FULL}:run_one_tower_half", 170.0,
          f"the variant; {_BASELINE}"),
    Claim("no_dropout", "Without dropout the network overfits", "4.2", "text",
          "without dropout the network overfits substantially (train vs test error)", None,
          FULL, f"{_FULL}:run_no_dropout", 170.0,
          f"the variant; {_BASELINE}"),
    Claim("no_augmentation", "Without augmentation the network overfits", "4.1", "text",
          "without crops and flips the network overfits substantially", None, FULL,
          f"{_FULL}:run_no_augmentation", 170.0,
          f"the variant; {_BASELINE}"),
    Claim("no_pca_lighting", "PCA lighting lowers the error", "4.1", "text",
          "PCA lighting lowers top-1 error by over 1 point", 1.0, FULL,
          f"{_FULL}:run_no_pca_lighting", 170.0,
          f"the variant; {_BASELINE}"),
    Claim("features", "fc7 neighbours are semantically alike", "6.1", "Figure 4 (right)",
          "test images and the training images nearest in fc7 space show the same kind of "
          "object", None, FULL, f"{_FULL}:run_features", 40.0,
          f"fc7 of 70k images, trained and untrained; {_BASELINE}"),
    Claim("depth", "Removing a middle conv layer costs ~2 points", "7", "text",
          "removing any middle convolutional layer costs about 2 points of top-1", 2.0, FULL,
          f"{_FULL}:run_depth", 340.0,
          f"two variants (no conv3, no conv4); {_BASELINE}"),
)}


def get_claim(name: str) -> Claim:
    """The named claim.

    Raises:
      ValueError: if `name` is not in `CLAIMS`.
    """
    if name not in CLAIMS:
        raise ValueError(f"Unknown claim {name!r}; choose one of {sorted(CLAIMS)} or 'all'.")
    return CLAIMS[name]
