"""Training-run settings (Section 5 of the paper): `TrainConfig`.

Its presets live in keras_alexnet.presets, the `field=value` parser in keras_alexnet.overrides.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from keras_alexnet.config import (
    PAPER_LEARNING_RATE,
    PAPER_MOMENTUM,
    PAPER_WEIGHT_DECAY,
    AlexNetConfig,
    ConfigMixin,
    check_fields,
)
from keras_alexnet.precision import PRECISIONS

# This module must import without Keras (on its TensorFlow backend Keras imports TensorFlow),
# so that scripts check their flags in a fraction of a second: data and optim load on use
# (keras_alexnet.schedule builds the schedule from a TrainConfig: PlateauSchedule.from_config).
if TYPE_CHECKING:
    from keras_alexnet.data.pipeline import Source
    from keras_alexnet.optim import PaperSGD

ON_EXHAUSTED = ("stop", "continue")
ALEXNET = "alexnet"
# How train() places a run on devices (keras_alexnet.distribute builds the strategy).
MODES = ("single", "towers", "mirrored", "multi_worker")


@dataclasses.dataclass(frozen=True)
class TrainConfig(ConfigMixin):
    """Everything one training run needs. Defaults follow the paper (Section 5)."""

    # The network (Section 3); trained with logits, exported with softmax.
    model: AlexNetConfig = AlexNetConfig()
    # ALEXNET: the network is `model`. Any other name is a network that the caller of
    # `train()` builds (its `build_model`, e.g. a small CIFAR-10 network of the paper's claims),
    # named here so that config.json says what trained; `model` is then unused.
    network: str = ALEXNET
    # open_source() spec: "fashion_mnist", a prepared-ImageNet folder, "folder:/root", ...
    data: str | None = "fashion_mnist"
    # Stored image size the crops are taken from; None is the source's (Section 2: 256).
    data_image_size: int | None = None
    # Fashion-MNIST has no validation split: > 0 holds out this many training images for the
    # schedule's validation error; 0 validates on the test set (the paper had a val set).
    validation_holdout: int = 0
    # Train and evaluate on these classes only, relabelled 0..k-1 in this order (None: all),
    # e.g. to pre-train on some classes and fine-tune on the others. The holdout above is
    # then taken from these classes' training images.
    data_classes: tuple[int, ...] | None = None
    # A small labelled set: this many training images per class (a fixed, seeded choice,
    # the same for every run and seed), after the holdout; None keeps them all.
    train_per_class: int | None = None
    # Fine-tuning: start from a trained network (a .keras / .weights.h5 / .caffemodel file,
    # or a run dir holding model.keras) instead of Section 5's random init. Only a fresh run
    # reads it; a resumed run continues from its own checkpoint. With another num_classes
    # than the file's, fc8 starts afresh (keras_alexnet.transfer.init_from_file).
    init_from: str | None = None
    # Layers that keep init_from's weights (no update, no weight decay): base names such as
    # "conv1" (all towers) or exact layer names such as "conv1_t0"; fc8 is always trained.
    freeze: tuple[str, ...] = ()
    # Section 5: "a batch size of 128 examples".
    batch_size: int = 128
    # Section 5: "roughly 90 cycles through the training set".
    epochs: int = 90
    # Section 5's SGD; the numbers live in keras_alexnet.config.
    learning_rate: float = PAPER_LEARNING_RATE
    momentum: float = PAPER_MOMENTUM
    weight_decay: float = PAPER_WEIGHT_DECAY
    decay_biases: bool = False
    # Per-variable settings (PaperSGD): (variable path pattern, value) pairs, the first match
    # deciding, e.g. (("*/bias", 2.0),) for cuda-convnet's epsB = 2 * epsW, or
    # (("conv*", 0.0),) for no decay on the conv layers. Empty: Section 5's one rate and decay.
    learning_rate_multipliers: tuple[tuple[str, float], ...] = ()
    weight_decays: tuple[tuple[str, float], ...] = ()
    # Section 5: "divide the learning rate by 10 when the validation error rate stopped
    # improving"; "reduced three times prior to termination". The paper gives no patience.
    lr_decay_factor: float = 0.1
    schedule_patience: int = 3
    schedule_threshold: float = 1e-3  # absolute drop in top-1 error that counts as progress
    schedule_max_reductions: int = 3
    schedule_on_exhausted: str = "stop"
    # None: a whole epoch (num_train // batch_size) / the whole evaluation set.
    steps_per_epoch: int | None = None
    eval_steps: int | None = None
    # Section 4.1's two forms of training augmentation, each off alone for its ablation:
    # random crops and flips (crops_and_flips=False: the center crop, lighting kept) and PCA
    # lighting (pca_lighting=False: crops and flips only); augment=False turns both off.
    # Evaluation is the same either way.
    augment: bool = True
    crops_and_flips: bool = True
    pca_lighting: bool = True
    # Section 4.1: test-time averaging over ten crops (center crop otherwise).
    ten_crop_eval: bool = False
    seed: int = 0
    # Deterministic ops (tf.config.experimental.enable_op_determinism): slower, but a
    # resumed run reproduces an uninterrupted one bit for bit.
    deterministic: bool = False
    checkpoint_every_steps: int = 1000
    # Also save when this many minutes passed since the last save (None: by steps only), so
    # a short or slow run has a checkpoint to resume from after Ctrl-C or a crash.
    checkpoint_every_minutes: float | None = None
    keep_checkpoints: int = 3
    log_every_steps: int = 50
    work_dir: str = "runs/alexnet"
    # Wall-clock budget of the training loop in seconds (None: no limit).
    max_train_seconds: float | None = None
    progress_bar: bool = True
    # "float32" (the paper's, and the reference), "mixed_bfloat16" (bf16 compute, float32
    # variables and update; keras_alexnet.precision says which ops run in which type) or
    # "auto": bf16 where the hardware computes it natively, since bf16 training matched fp32's
    # accuracy on the documented Fashion-MNIST run (docs/RESULTS.md); float32 elsewhere.
    precision: str = "auto"
    # Split the CPU into this many logical devices (None: leave it whole), so that
    # --mode=towers and --mode=mirrored can be tried on a machine without GPUs.
    logical_cpus: int | None = None
    # multi_worker mode: seconds a worker waits for its peers to come up and for one
    # collective (a gradient all-reduce) to finish, then stops with an error instead of
    # hanging on a dead or never-started peer. It must cover the slowest worker's start and
    # first step (graph tracing).
    peer_timeout_seconds: float = 120.0

    def __post_init__(self) -> None:
        _validate(self)

    def epoch_steps(self, num_train: int) -> int:
        """Full batches in an epoch of `num_train` images, capped by `steps_per_epoch`.

        Raises:
          ValueError: if not even one full batch fits.
        """
        steps = num_train // self.batch_size
        if steps < 1:
            raise ValueError(f"batch_size={self.batch_size} exceeds the {num_train} training "
                             "images; lower batch_size.")
        return min(steps, self.steps_per_epoch) if self.steps_per_epoch else steps

    def open_source(self) -> Source:
        """The source this run trains and validates on: `data`, with its holdout.

        Raises:
          ValueError: no data is set, or the data spec is bad.
        """
        if not self.data:
            raise ValueError("No training data: set data (--data) to a data spec, e.g. a folder "
                             "made by scripts/prepare_imagenet.py or 'fashion_mnist'.")
        from keras_alexnet.data import open_source  # TensorFlow loads only here

        if self.data_classes is not None or self.train_per_class is not None:
            from keras_alexnet.data.subset import open_subset

            return open_subset(self.data, classes=self.data_classes,
                               train_per_class=self.train_per_class,
                               image_size=self.data_image_size, holdout=self.validation_holdout)
        return open_source(self.data, image_size=self.data_image_size,
                           holdout=self.validation_holdout)

    def make_optimizer(self) -> PaperSGD:
        """Section 5's SGD with this run's learning rate, momentum and weight decay."""
        from keras_alexnet.optim import PaperSGD

        return PaperSGD(self.learning_rate, self.momentum, self.weight_decay,
                        decay_biases=self.decay_biases,
                        learning_rate_multipliers=dict(self.learning_rate_multipliers),
                        weight_decays=dict(self.weight_decays))

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Inverse of `to_dict()`; unknown keys are a `ValueError`."""
        check_fields(cls, values)
        values = dict(values)
        if isinstance(values.get("model"), dict):
            values["model"] = AlexNetConfig.from_dict(values["model"])
        for name in ("data_classes", "freeze"):  # JSON gives lists
            if isinstance(values.get(name), list):
                values[name] = tuple(values[name])
        for name in ("learning_rate_multipliers", "weight_decays"):  # lists of [pattern, value]
            if isinstance(values.get(name), list):
                values[name] = tuple((str(k), float(v)) for k, v in values[name])
        return cls(**values)


def _validate(c: TrainConfig) -> None:
    def fail(msg: str) -> None:
        raise ValueError(f"Invalid TrainConfig: {msg}")

    for name in ("batch_size", "epochs", "checkpoint_every_steps", "keep_checkpoints",
                 "log_every_steps", "schedule_patience"):
        if getattr(c, name) < 1:
            fail(f"{name}={getattr(c, name)} must be at least 1.")
    for name in ("steps_per_epoch", "eval_steps", "data_image_size", "logical_cpus",
                 "train_per_class"):
        if getattr(c, name) is not None and getattr(c, name) < 1:
            fail(f"{name}={getattr(c, name)} must be at least 1 (or None).")
    if c.validation_holdout < 0:
        fail(f"validation_holdout={c.validation_holdout} must be >= 0.")
    if c.learning_rate <= 0:
        fail(f"learning_rate={c.learning_rate} must be positive.")
    if not 0.0 < c.lr_decay_factor < 1.0:
        fail(f"lr_decay_factor={c.lr_decay_factor} must be in (0, 1).")
    if c.schedule_max_reductions < 0 or c.schedule_threshold < 0:
        fail("schedule_max_reductions and schedule_threshold must be >= 0.")
    if c.precision not in PRECISIONS:
        fail(f"precision={c.precision!r}; use one of {PRECISIONS}.")
    if c.schedule_on_exhausted not in ON_EXHAUSTED:
        fail(f"schedule_on_exhausted={c.schedule_on_exhausted!r}; use one of {ON_EXHAUSTED}.")
    if c.checkpoint_every_minutes is not None and c.checkpoint_every_minutes <= 0:
        fail(f"checkpoint_every_minutes={c.checkpoint_every_minutes} must be positive (or "
             "None).")
    if c.max_train_seconds is not None and c.max_train_seconds <= 0:
        fail(f"max_train_seconds={c.max_train_seconds} must be positive (or None).")
    if c.peer_timeout_seconds <= 0:
        fail(f"peer_timeout_seconds={c.peer_timeout_seconds} must be positive.")
    if c.data_classes is not None and (len(set(c.data_classes)) != len(c.data_classes)
                                       or len(c.data_classes) < 2 or min(c.data_classes) < 0):
        fail(f"data_classes={c.data_classes} must be at least 2 distinct class indices >= 0.")
    if c.freeze and not c.init_from:
        fail(f"freeze={c.freeze} without init_from would freeze randomly initialised layers; "
             "set init_from to the trained network.")
    if not isinstance(c.model, AlexNetConfig):
        fail(f"model must be an AlexNetConfig, got {type(c.model).__name__}.")
