"""A small training program for the distribution tests, run in-process or as one worker.

    TF_CONFIG='{...}' python tests/dist_worker.py --mode=multi_worker --work_dir=DIR \
        --steps=4 --global_batch=8 --out=weights_worker0.npz

It trains the tiny AlexNet with the library's train step (`make_train_step`, PaperSGD),
reading its shard of a deterministic in-memory dataset through the real input pipeline
(`Source.train_dataset`, no augmentation), checkpoints every --checkpoint_every steps (chief's
files kept, others' in a deleted temporary folder) and resumes from the chief's newest
checkpoint. It prints one `STEP <n> LOSS <x>` line per step and writes the final weights and
velocities to --out.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from helpers import TINY_MODEL  # noqa: E402

from keras_alexnet import build_alexnet  # noqa: E402
from keras_alexnet import distribute as kd  # noqa: E402
from keras_alexnet.checkpoint import model_state  # noqa: E402
from keras_alexnet.data.pipeline import DatasetInfo, Source  # noqa: E402
from keras_alexnet.train import make_train_step  # noqa: E402
from keras_alexnet.train_config import TrainConfig  # noqa: E402

# A tiny network, seconds to train; dropout off so that every run is a function of its data.
TINY = TINY_MODEL.replace(num_classes=5, dropout_rate=0.0, classifier_activation=None)


class NoiseSource(Source):
    """Random 70x70 images with random labels, in memory, sharded by striding."""

    def __init__(self, num_train: int = 256, size: int = 70, num_classes: int = 5,
                 num_eval: int = 16) -> None:
        rng = np.random.default_rng(1234)
        self.images = rng.integers(0, 256, (num_train, size, size, 3), dtype=np.uint8)
        self.labels = rng.integers(0, num_classes, num_train).astype(np.int32)
        names = tuple(f"c{i}" for i in range(num_classes))
        self.info = DatasetInfo(
            num_classes=num_classes, class_names=names, wnids=names, num_train=num_train,
            num_eval=num_eval, image_size=size,
            mean_image=self.images.mean(axis=0).astype(np.float32),
            eigvals=np.ones(3, np.float32), eigvecs=np.eye(3, dtype=np.float32))

    def _elements(self, split, rng, num_shards, shard_index):
        if split != "train":  # the first num_eval images double as an evaluation set
            order = np.arange(self.info.num_eval)
        elif rng is not None:
            order = rng.permutation(len(self.labels))
        else:
            order = np.arange(len(self.labels))
        order = order[shard_index::num_shards]
        return tf.data.Dataset.from_tensor_slices((self.images[order], self.labels[order]))

    def _decode(self, image, label):
        return image, label


def run(mode: str, work_dir: str | None, steps: int, global_batch: int, *,
        checkpoint_every: int = 0, step_pause_s: float = 0.0, timeout_s: float = 60.0,
        strategy=None, tower_devices=None, log=print) -> dict[str, np.ndarray]:
    """Trains `steps` steps in total (resuming from `work_dir`); returns final variables.

    Keys: "losses" (this run's steps only), "step", and `model_state` keys for weights,
    "velocity/<key>" for the optimizer's slots.
    """
    if strategy is None:
        strategy, tower_devices = kd.make_strategy(mode, num_towers=TINY.num_towers,
                                                   peer_timeout_seconds=timeout_s)
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = build_alexnet(TINY, tower_devices=tower_devices)
        optimizer = TrainConfig(learning_rate=0.01).make_optimizer()
        optimizer.build(model.trainable_variables)
    # Outside the scope: a mirrored step counter would not convert to a Python int.
    step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
    state = model_state(model)
    checkpoint = tf.train.Checkpoint(model=state, optimizer=optimizer, step=step)
    manager, write_dir, is_temp = None, None, False
    if work_dir:
        # Every worker restores the chief's newest checkpoint (a shared or same-host folder).
        latest = tf.train.latest_checkpoint(os.path.join(work_dir, "checkpoints"))
        if latest:
            checkpoint.restore(latest).assert_existing_objects_matched()
            log(f"RESUMED {int(step)}")
        write_dir, is_temp = kd.worker_dirs(work_dir, strategy)
        manager = tf.train.CheckpointManager(
            checkpoint, os.path.join(write_dir, "checkpoints"), max_to_keep=2)

    try:
        with kd.peer_failures(strategy, lambda: tf.train.latest_checkpoint(
                os.path.join(work_dir, "checkpoints")) if work_dir else None):
            losses = _train(strategy, model, optimizer, step, steps, global_batch, manager,
                            checkpoint_every, step_pause_s, log)
    finally:
        if write_dir:
            kd.cleanup_worker_dir(write_dir, is_temp)
    out = {"losses": np.array(losses), "step": np.array(int(step))}
    out.update({k: v.numpy() for k, v in state.items()})
    for v, slot in zip(model.trainable_variables, optimizer.velocities):
        out[f"velocity/{v.path}"] = slot.numpy()
    return out


def _train(strategy, model, optimizer, step, steps, global_batch, manager, checkpoint_every,
           step_pause_s, log) -> list[float]:
    source = NoiseSource()
    dataset_fn = functools.partial(source.train_dataset, input_size=TINY.input_size, seed=7,
                                   augment=False)

    done = int(step)  # the dataset function runs in a graph: read the step here

    def resumable(batch_size, num_shards, shard_index):
        ds = dataset_fn(batch_size=batch_size, num_shards=num_shards, shard_index=shard_index)
        # Each step took one batch per replica of this worker.
        return ds.skip(done * (global_batch // (num_shards * batch_size)))

    batches = iter(kd.distribute_dataset(strategy, resumable, global_batch))

    # The library's step, as train() uses it; the hit counts are not needed here.
    train_step = make_train_step(model, optimizer, strategy, global_batch, top_k=1)

    losses = []
    while int(step) < steps:
        loss = float(train_step(next(batches))[0])
        step.assign_add(1)
        losses.append(loss)
        log(f"STEP {int(step)} LOSS {loss:.8f}")
        if manager and checkpoint_every and int(step) % checkpoint_every == 0:
            manager.save(checkpoint_number=int(step))
            log(f"SAVED {int(step)}")
        if step_pause_s:
            time.sleep(step_pause_s)
    return losses


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", default="multi_worker", choices=kd.MODES)
    parser.add_argument("--work_dir", default=None)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--global_batch", type=int, default=8)
    parser.add_argument("--checkpoint_every", type=int, default=0)
    parser.add_argument("--step_pause_s", type=float, default=0.0)
    parser.add_argument("--timeout_s", type=float, default=60.0)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    try:
        result = run(args.mode, args.work_dir, args.steps, args.global_batch,
                     checkpoint_every=args.checkpoint_every, step_pause_s=args.step_pause_s,
                     timeout_s=args.timeout_s, log=lambda s: print(s, flush=True))
    except kd.PeerLostError as e:  # what scripts/train.py prints, through keras_alexnet.cli
        print(f"error: {e}", file=sys.stderr, flush=True)
        sys.exit(1)
    if args.out:
        tmp = args.out + ".tmp.npz"
        np.savez(tmp, **result)
        os.replace(tmp, args.out)
    print("DONE", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
