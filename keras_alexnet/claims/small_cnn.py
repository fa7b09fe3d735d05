"""The small four-layer CNN of Figure 1 and Section 3.3, trained through `keras_alexnet.train`.

The paper does not give this network: footnote 3 of the original paper defers to the
parameter files of cuda-convnet, whose CIFAR-10 example ("layers-18pct") is a four-layer
network with weights: three 5x5 convolutions (32, 32, 64 kernels) and one fully-connected
softmax layer, max pooling after conv1 and average pooling after conv2 and conv3 (3x3, stride
2), response normalisation after the first two poolings. We build that network, with Section
3.3's LRN constants (k=2, n=5, alpha=1e-4, beta=0.75) where it normalises, and cuda-convnet's
small Gaussian initial weights for the same reason it had them: the input is on the 0..255
scale (mean-subtracted, as the big network's), where larger conv1 weights saturate tanh units
before training begins, which would make the comparison with ReLU unfair to tanh.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras

from keras_alexnet.config import PAPER_LEARNING_RATE, PAPER_MOMENTUM, AlexNetConfig
from keras_alexnet.layers import LocalResponseNormalization

# (name, kernels, initial weight std): cuda-convnet's layers-18pct.cfg (initW).
CONV_LAYERS = (("conv1", 32, 1e-4), ("conv2", 32, 1e-2), ("conv3", 64, 1e-2))
FC_INIT_STD = 1e-2
KERNEL_SIZE = 5
POOL_SIZE, POOL_STRIDE = 3, 2
_PAPER = AlexNetConfig()


def build_small_cnn(num_classes: int, input_size: int, *, activation: str = "relu",
                    use_lrn: bool = True,
                    classifier_activation: str | None = None) -> keras.Model:
    """The four-layer CNN (3 conv + 1 fc).

    Args:
      num_classes: units of the softmax layer.
      input_size: S of the [S, S, 3] input.
      activation: "relu" or "tanh", in every conv layer (Figure 1 compares the two).
      use_lrn: response normalisation after pool1 and pool2 (Section 3.3 compares with/without).
      classifier_activation: None (logits, as trained) or "softmax".
    """
    if activation not in ("relu", "tanh"):
        raise ValueError(f"activation={activation!r}; use 'relu' or 'tanh'.")
    inputs = keras.Input((input_size, input_size, 3), name="images")
    x = inputs
    for i, (name, filters, std) in enumerate(CONV_LAYERS):
        x = keras.layers.Conv2D(filters, KERNEL_SIZE, padding="same", activation=activation,
                                kernel_initializer=keras.initializers.RandomNormal(0.0, std),
                                name=name)(x)
        pool = keras.layers.MaxPooling2D if i == 0 else keras.layers.AveragePooling2D
        x = pool(POOL_SIZE, POOL_STRIDE, padding="same", name=f"pool{i + 1}")(x)
        if use_lrn and i < 2:
            x = LocalResponseNormalization(_PAPER.lrn_depth_radius, _PAPER.lrn_bias,
                                           _PAPER.lrn_alpha, _PAPER.lrn_beta,
                                           name=f"lrn{i + 1}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    outputs = keras.layers.Dense(
        num_classes, kernel_initializer=keras.initializers.RandomNormal(0.0, FC_INIT_STD),
        activation=classifier_activation, name="fc4")(x)
    return keras.Model(inputs, outputs, name=f"small_cnn_{activation}")


# The small networks a run can train: Figure 1's (build_small_cnn) and Section 3.3's
# cuda-convnet CIFAR-10 pair (claims.conv_local).
FIGURE1, CONV_LOCAL = "small_cnn", "conv_local"


@dataclasses.dataclass(frozen=True)
class SmallRun:
    """One training run of a small CNN."""

    network: str = FIGURE1
    activation: str = "relu"  # FIGURE1 only
    use_lrn: bool = True
    learning_rate: float = PAPER_LEARNING_RATE
    momentum: float = PAPER_MOMENTUM
    weight_decay: float = 0.0
    batch_size: int = 128
    input_size: int = 32
    # The stored images' size; None: input_size. Larger: random input_size crops and flips
    # for training (cuda-convnet's CIFAR provider), the center crop for testing.
    image_size: int | None = None
    # Per-variable rates and decays (PaperSGD; TrainConfig's fields of the same names).
    learning_rate_multipliers: tuple[tuple[str, float], ...] = ()
    weight_decays: tuple[tuple[str, float], ...] = ()
    epochs: int = 10
    steps_per_epoch: int | None = None  # None: the whole training set
    eval_batches: int | None = None  # None: the whole evaluation set; 0: no test error
    seed: int = 0


def train_small(run: SmallRun, source: Any, work_dir: str | Path, *, data: str | None = None,
                stop: Callable[[list[int]], bool] | None = None,
                hparams: dict[str, Any] | None = None) -> dict[str, Any]:
    """Trains (or resumes) a small CNN with `keras_alexnet.train`; returns its per-step record.

    The run is the package's training loop (checkpoints, train_log.jsonl, TensorBoard logs,
    exact resume), at a constant learning rate (`small_run_config`): without augmentation
    when the images are the network's size (no regularisation of any kind, as Figure 1 says),
    with cuda-convnet's crops and flips when they are larger. It validates on the source's
    evaluation split (the test set of Fashion-MNIST) after every epoch.

    Args:
      run: the settings.
      source: a `keras_alexnet.data` source whose images are `run.image_size` square.
      work_dir: the run's work dir (`keras_alexnet.train`'s files).
      data: the source's data spec, for the run's config.json.
      stop: `stop(step_hits)` after every step; True ends training there.
      hparams: written for TensorBoard's HParams dashboard.

    Returns:
      {"step_hits": [correct per step], "step_loss": [...], "steps_per_epoch", "batch_size",
       "test_error": [per epoch, or empty when `run.eval_batches` is 0], "epochs_done",
       "stopped_early", "diverged"}; a run whose loss or weights became NaN/inf is returned
       (diverged) with the steps before it, not raised.
    """
    from keras_alexnet.curves import read_scalars
    from keras_alexnet.run_files import read_train_log
    from keras_alexnet.train import NonFiniteLossError, train

    config = small_run_config(run, data, work_dir)
    hits: list[int] = []

    def on_step_end(record: dict[str, Any]) -> bool:
        # A resumed run's steps continue the log's: keep the hits of the steps before this one.
        del hits[record["step"] - 1:]
        hits.append(record["top1_hits"])
        return bool(stop and stop(hits))

    if stop:
        hits += [r["top1_hits"] for r in read_train_log(work_dir)]
    result, diverged = None, False
    try:
        result = train(config, source=source, on_step_end=on_step_end,
                       build_model=_builder(run, source.info.num_classes))
    except NonFiniteLossError:
        diverged = True  # a diverged learning rate of the grid: the record says so, and it loses
    if hparams:
        _write_hparams(Path(work_dir) / "logs", hparams)
    log = read_train_log(work_dir)
    try:
        validation = read_scalars(Path(work_dir) / "logs").get("validation/top1_error")
    except ValueError:  # a run that diverged before it wrote any scalar
        validation = None
    test_error = [] if run.eval_batches == 0 or validation is None else [
        float(e) for e in validation[1]]
    return {"step_hits": [r["top1_hits"] for r in log], "step_loss": [r["loss"] for r in log],
            "steps_per_epoch": config.epoch_steps(source.info.num_train),
            "batch_size": run.batch_size, "test_error": test_error,
            "epochs_done": result.epoch if result else len(test_error),
            "stopped_early": bool(result and result.stop_reason == "callback"),
            "diverged": diverged}


def small_run_config(run: SmallRun, data: str | None, work_dir: str | Path) -> Any:
    """The `TrainConfig` of a small-CNN run: the paper's SGD update at a constant rate,
    float32, validation after every epoch; crops and flips only where the images are larger
    than the network's input (never PCA lighting)."""
    from keras_alexnet.train_config import TrainConfig

    crops = run.image_size is not None and run.image_size > run.input_size
    detail = (f"activation={run.activation}, " if run.network == FIGURE1 else "")
    return TrainConfig(
        network=f"{run.network}({detail}use_lrn={run.use_lrn}, input_size={run.input_size})",
        data=data, data_image_size=run.image_size or run.input_size,
        batch_size=run.batch_size, epochs=run.epochs,
        steps_per_epoch=run.steps_per_epoch, learning_rate=run.learning_rate,
        momentum=run.momentum, weight_decay=run.weight_decay,
        learning_rate_multipliers=run.learning_rate_multipliers,
        weight_decays=run.weight_decays,
        # A constant rate: the plateau rule may never cut it.
        schedule_max_reductions=0, schedule_on_exhausted="continue",
        # eval_batches=0: no test error is wanted; the loop validates one batch anyway.
        eval_steps=1 if run.eval_batches == 0 else run.eval_batches,
        augment=crops, crops_and_flips=crops, pca_lighting=False, seed=run.seed,
        precision="float32", keep_checkpoints=1,
        work_dir=str(work_dir), progress_bar=False)


def _builder(run: SmallRun, num_classes: int) -> Callable[[str | None], keras.Model]:
    if run.network not in (FIGURE1, CONV_LOCAL):
        raise ValueError(f"SmallRun network={run.network!r}; use {FIGURE1!r} or {CONV_LOCAL!r}.")

    def build(classifier_activation: str | None) -> keras.Model:
        if run.network == CONV_LOCAL:
            from keras_alexnet.claims.conv_local import build_conv_local

            return build_conv_local(num_classes, run.input_size, normalize=run.use_lrn,
                                    classifier_activation=classifier_activation)
        return build_small_cnn(num_classes, run.input_size, activation=run.activation,
                               use_lrn=run.use_lrn, classifier_activation=classifier_activation)

    return build


def _write_hparams(log_dir: Path, hparams: dict[str, Any]) -> None:
    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hp

    with tf.summary.create_file_writer(str(log_dir)).as_default():
        hp.hparams(hparams)
