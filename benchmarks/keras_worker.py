"""The Keras side of the benchmark: what one Keras worker process measures.

`benchmarks.run` starts a fresh process per measurement, `python -m benchmarks.keras_worker
'<spec>'` (the spec is `benchmarks.run.cell_spec`), which measures one thing and prints the
result (`benchmarks.measure`). The frameworks are touched only inside the functions: a worker
sets its threads, devices and dtype policy first, which must happen before TensorFlow
initialises its runtime.
"""

from __future__ import annotations

import contextlib
import math
import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.measure import matmul_gflops, peak_rss_mib, summarize, time_steps, worker_main


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    """Measures what `spec["kind"]` names: a Keras cell, the machine, the pipeline, a mode."""
    return {"keras": measure_keras, "machine": measure_machine,
            "pipeline": measure_pipeline, "dist": measure_distribution}[spec["kind"]](spec)


def _setup(spec: dict[str, Any]) -> None:
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(spec["threads"])
        tf.config.threading.set_inter_op_parallelism_threads(spec["inter_op_threads"])


def _accelerators() -> list[str]:
    """The backend's non-CPU devices (the JAX backend's without TensorFlow, which a JAX-only
    machine lacks)."""
    import keras

    if keras.backend.backend() == "jax":
        import jax

        return [str(d) for d in jax.devices() if d.platform != "cpu"]
    import tensorflow as tf

    return [d.name for d in tf.config.list_physical_devices() if d.device_type != "CPU"]


def _device() -> str:
    import keras

    if keras.backend.backend() == "jax":
        import jax

        return str(jax.devices()[0].platform)
    return "gpu" if _accelerators() else "cpu"


def _backend_matmuls(n: int) -> dict[str, dict[str, Any]]:
    """The Keras backend's fp32 and bf16 n^3 matmul rates, keyed as report.CEILING_KEYS."""
    import keras

    if keras.backend.backend() == "jax":
        import jax

        a, b = jax.random.normal(jax.random.key(0), (2, n, n))
        corner = jax.jit(lambda a, b: (a @ b)[0, 0])
        a16, b16 = a.astype("bfloat16"), b.astype("bfloat16")
        return {"jax_matmul_gflops": matmul_gflops(lambda: corner(a, b).block_until_ready(), n),
                "jax_bf16_matmul_gflops": matmul_gflops(
                    lambda: corner(a16, b16).block_until_ready(), n)}
    import tensorflow as tf

    a, b = tf.random.normal((n, n)), tf.random.normal((n, n))
    # One element comes back, so the timing holds the matmul, not a 64 MB copy to NumPy.
    corner = tf.function(lambda a, b: tf.matmul(a, b)[0, 0], autograph=False)
    # bf16 in, bf16 out, as oneDNN's bf16 matmul under mixed_bfloat16 (float32 accumulation).
    a16, b16 = tf.cast(a, tf.bfloat16), tf.cast(b, tf.bfloat16)
    return {"tf_matmul_gflops": matmul_gflops(lambda: corner(a, b).numpy(), n),
            "tf_bf16_matmul_gflops": matmul_gflops(lambda: corner(a16, b16).numpy(), n)}


def layer_macs(model: Any) -> dict[str, int]:
    """Multiply-accumulates per image of each conv/dense layer, towers summed ("conv1", ...)."""
    import keras

    macs: dict[str, int] = {}
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            _, h, w, _ = layer.output.shape
            count = h * w * math.prod(layer.kernel.shape)
        elif isinstance(layer, keras.layers.Dense):
            count = math.prod(layer.kernel.shape)
        else:
            continue
        base = layer.name.rsplit("_t", 1)[0] if "_t" in layer.name else layer.name
        macs[base] = macs.get(base, 0) + int(count)
    return macs


def build_model(spec: dict[str, Any], mode: str,
                tower_devices: tuple[str, ...] | None = None) -> tuple[Any, Any]:
    """The cell's AlexNet in its precision (logits for "train", the config's head for "infer").

    Returns:
      (model, the AlexNetConfig it was built from).
    """
    from keras_alexnet.config import AlexNetConfig
    from keras_alexnet.model import build_alexnet
    from keras_alexnet.precision import dtype_policy

    config = AlexNetConfig.from_dict(spec["config"])
    if mode == "train":
        config = config.replace(classifier_activation=None)  # the loss takes logits
    # The library's precision rule: the layers keep the policy they are built with (fc8 and
    # the softmax float32 under mixed_bfloat16, LRN's sums float32), variables stay float32.
    with dtype_policy(spec["precision"]):
        model = build_alexnet(config, tower_devices=tower_devices)
    return model, config


def make_optimizer(spec: dict[str, Any]) -> Any:
    """The training run's PaperSGD, built by `TrainConfig.make_optimizer()` from `spec["sgd"]`."""
    from keras_alexnet.train_config import TrainConfig

    return TrainConfig.from_dict(spec["sgd"]).make_optimizer()


def make_step(model: Any, spec: dict[str, Any], mode: str) -> Callable[[Any, Any], None]:
    """A blocking `step(images, labels)`: a PaperSGD train step, or a forward pass."""
    import keras

    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    optimizer = make_optimizer(spec)
    if keras.backend.backend() == "jax":
        return _jax_step(model, optimizer, loss_fn, mode)
    import tensorflow as tf

    if mode == "infer":
        forward = tf.function(lambda x: model(x, training=False), jit_compile=spec["jit_compile"],
                              autograph=False)
        return lambda x, y: forward(x).numpy()
    optimizer.build(model.trainable_variables)

    def update(grads):
        optimizer.apply(grads, model.trainable_variables)

    if spec["jit_update"] and not spec["jit_compile"]:
        # A nested XLA function: the update's element-wise ops become one loop per variable,
        # while the convolutions keep TF's oneDNN kernels (XLA's own are slower on CPU).
        update = tf.function(update, jit_compile=True, autograph=False)

    @tf.function(jit_compile=spec["jit_compile"], autograph=False)
    def train_step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        update(tape.gradient(loss, model.trainable_variables))
        return loss

    return lambda x, y: train_step(x, y).numpy()


def _jax_step(model: Any, optimizer: Any, loss_fn: Any, mode: str) -> Callable[[Any, Any], None]:
    """The same steps as pure functions of the model's state (Keras' stateless API under JAX)."""
    import jax

    trainable = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]
    if mode == "infer":
        forward = jax.jit(lambda tv, ntv, x: model.stateless_call(tv, ntv, x, training=False)[0])
        return lambda x, y: forward(trainable, non_trainable, x).block_until_ready()
    optimizer.build(model.trainable_variables)

    def loss_of(tv, ntv, x, y):
        logits, ntv = model.stateless_call(tv, ntv, x, training=True)
        return loss_fn(y, logits), ntv

    grad_fn = jax.value_and_grad(loss_of, has_aux=True)

    @jax.jit
    def train_step(state, x, y):
        tv, ntv, ov = state
        (loss, ntv), grads = grad_fn(tv, ntv, x, y)
        tv, ov = optimizer.stateless_apply(ov, grads, tv)
        return loss, (tv, ntv, ov)

    state = (trainable, non_trainable, [v.value for v in optimizer.variables])

    def run(x, y):
        nonlocal state
        loss, state = train_step(state, x, y)
        loss.block_until_ready()

    return run


def _synthetic(config: Any, batch: int) -> tuple[Any, Any]:
    import keras

    s = config.input_size
    # Mean-subtracted pixels on the 0..255 scale (the model's input contract).
    x = keras.random.normal((batch, s, s, 3), stddev=60.0, seed=1)
    y = keras.random.randint((batch,), 0, config.num_classes, seed=2, dtype="int32")
    return x, y


def measure_keras(spec: dict[str, Any]) -> dict[str, Any]:
    """Times one (mode, batch) cell of the Keras model on synthetic data."""
    _setup(spec)
    import keras

    mode, batch = spec["mode"], spec["batch_size"]
    model, config = build_model(spec, mode)
    x, y = _synthetic(config, batch)
    step = make_step(model, spec, mode)
    times = time_steps(lambda: step(x, y), spec["warmup_steps"], spec["steps"])
    backend = keras.backend.backend()
    return {
        "images_per_s": batch * len(times) / sum(times), "step_seconds": times,
        "peak_rss_mib": peak_rss_mib(), "threads": spec["threads"], "device": _device(),
        "version": keras.__version__, "precision": spec["precision"],
        "variant": f"{backend}, {spec['precision']}"
        + (f", jit_compile={spec['jit_compile']}, jit_update={spec['jit_update']}"
           if backend == "tensorflow" else ", jax.jit"),
    }


def measure_machine(spec: dict[str, Any]) -> dict[str, Any]:
    """The fp32 and bf16 matmul ceilings of the Keras backend (TF or JAX) and NumPy's fp32
    (n^3), and the model's multiply-adds. Under the JAX backend TensorFlow is not imported."""
    _setup(spec)
    import sys

    import keras
    import numpy as np

    n = spec["matmul_size"]
    rates = _backend_matmuls(n)
    rng = np.random.default_rng(0)
    an, bn = (rng.standard_normal((n, n), dtype=np.float32) for _ in range(2))
    np_rate = matmul_gflops(lambda: an @ bn, n)
    model, _ = build_model(spec, "infer")
    macs = layer_macs(model)
    # The versions of what ran: TensorFlow's where it is loaded (not under the JAX backend),
    # JAX's under its backend (tensorflow.lite imports JAX too where both are installed).
    loaded = {"tensorflow": getattr(sys.modules.get("tensorflow"), "__version__", None),
              "jax": sys.modules["jax"].__version__ if keras.backend.backend() == "jax" else None}
    return {
        **rates, "numpy_matmul_gflops": np_rate,
        "macs_per_layer": macs, "macs": sum(macs.values()), "params": model.count_params(),
        **loaded, "keras": keras.__version__, "numpy": np.__version__,
        "accelerators": _accelerators(), "peak_rss_mib": peak_rss_mib(),
    }


def _write_jpegs(root: Path, num_images: int, num_classes: int = 4) -> None:
    """An ImageNet-layout folder of synthetic photos (smooth shapes plus noise, varied sizes)."""
    import numpy as np

    from keras_alexnet.data.imagenet import encode_jpeg

    rng = np.random.default_rng(0)
    for i in range(num_images + num_classes):
        split = "train" if i < num_images else "val"
        folder = root / split / f"n{i % num_classes:08d}"
        folder.mkdir(parents=True, exist_ok=True)
        h, w = int(rng.integers(300, 400)), int(rng.integers(350, 500))
        yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
        phase = rng.uniform(0, 6.3, 3)
        image = 127 + 80 * np.sin(6 * xx[..., None] + 4 * yy[..., None] + phase)
        image = np.clip(image + rng.normal(0, 12, (h, w, 3)), 0, 255).astype(np.uint8)
        (folder / f"img_{i:05d}.JPEG").write_bytes(encode_jpeg(image, 90))


def measure_pipeline(spec: dict[str, Any]) -> dict[str, Any]:
    """Training on prepared shards (full augmentation) next to synthetic data, same process."""
    import keras

    if keras.backend.backend() != "tensorflow":
        return {"available": False, "reason": "tf.data pipeline measured on the TF backend only"}
    try:
        from keras_alexnet import data
        from keras_alexnet.data.prepare import prepare_imagenet
    except ImportError as e:
        return {"available": False, "reason": f"keras_alexnet.data is not importable ({e})"}
    _setup(spec)
    batch, steps = spec["batch_size"], spec["steps"]  # the headline batch (settings.headline_batch)
    model, config = build_model(spec, "train")
    with tempfile.TemporaryDirectory(prefix="alexnet_shards_") as tmp:
        _write_jpegs(Path(tmp) / "raw", spec["pipeline_images"])
        prepare_imagenet(str(Path(tmp) / "raw"), str(Path(tmp) / "prepared"), num_workers=1,
                         progress=False)
        source = data.open_source(str(Path(tmp) / "prepared"))
        pipeline_rate = data.benchmark_pipeline(source, batch, config.input_size, steps,
                                                warmup_batches=2)
        step = make_step(model, spec, "train")
        x, y = _synthetic(config, batch)
        batches = iter(source.train_dataset(batch, config.input_size).repeat())
        real, synthetic = [], []
        time_steps(lambda: step(*next(batches)), spec["warmup_steps"], 0)
        time_steps(lambda: step(x, y), spec["warmup_steps"], 0)
        for _ in range(spec["repeats"]):  # alternate, so load drifts hit both alike
            for rates, run in ((synthetic, lambda: step(x, y)),
                               (real, lambda: step(*next(batches)))):
                times = time_steps(run, 0, steps)
                rates.append(batch * len(times) / sum(times))
    return {
        "available": True, "num_images": spec["pipeline_images"],
        "image_size": source.info.image_size, "batch_size": batch,
        "pipeline_images_per_s": pipeline_rate, "train_synthetic": summarize(synthetic),
        "train_real": summarize(real),
        "real_over_synthetic": statistics.median(real) / statistics.median(synthetic),
        "peak_rss_mib": peak_rss_mib(),
    }


def _distribution_devices() -> list[str]:
    """Two devices for the distribution modes: the first two GPUs, else two logical CPUs.

    Call before TensorFlow initialises its devices (its first op or logical-device listing).
    """
    import tensorflow as tf

    if len(tf.config.list_physical_devices("GPU")) >= 2:
        return [d.name for d in tf.config.list_logical_devices("GPU")[:2]]
    # A lone GPU would run "single" there and the two-device modes on the CPUs: hide it.
    tf.config.set_visible_devices([], "GPU")
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    return [d.name for d in tf.config.list_logical_devices("CPU")]


def measure_distribution(spec: dict[str, Any]) -> dict[str, Any]:
    """Times the training loop's own step under one `keras_alexnet.distribute` mode.

    The process has two devices (see `_distribution_devices`), and "single" is timed in the
    same set-up as the baseline. The step is `keras_alexnet.train`'s: the global batch split
    over the replicas, the loss averaged over the global batch, each tower's gradients
    computed on its device, PaperSGD.
    """
    _setup(spec)
    import keras

    if keras.backend.backend() != "tensorflow":
        raise ValueError("the distribution modes need the TensorFlow backend (--backend).")
    devices = _distribution_devices()
    import tensorflow as tf

    from keras_alexnet import distribute
    from keras_alexnet.config import AlexNetConfig
    from keras_alexnet.train import make_train_step

    mode, batch = spec["dist_mode"], spec["batch_size"]
    strategy, tower_devices = distribute.make_strategy(
        mode, num_towers=AlexNetConfig.from_dict(spec["config"]).num_towers, devices=devices)
    with strategy.scope():
        model, config = build_model(spec, "train", tower_devices)
        optimizer = make_optimizer(spec)
        optimizer.build(model.trainable_variables)
    x, y = _synthetic(config, batch)
    per = distribute.per_replica_batch_size(batch, strategy)
    replicas = strategy.num_replicas_in_sync
    replica_devices = strategy.extended.worker_devices if replicas > 1 else (None,)

    def shard(context: Any) -> tuple[Any, Any]:
        # Each replica's slice made once, on its own device: no per-step input cost.
        i = context.replica_id_in_sync_group
        device = replica_devices[i]
        with tf.device(device) if device else contextlib.nullcontext():
            return tf.identity(x[i * per:(i + 1) * per]), tf.identity(y[i * per:(i + 1) * per])

    inputs = strategy.experimental_distribute_values_from_function(shard)
    step = make_train_step(model, optimizer, strategy, batch, top_k=1)  # hits not reported
    times = time_steps(lambda: float(step(inputs)[0]), spec["warmup_steps"], spec["steps"])
    return {
        "images_per_s": batch * len(times) / sum(times), "step_seconds": times,
        "peak_rss_mib": peak_rss_mib(), "threads": spec["threads"], "dist_mode": mode,
        "devices": devices, "replicas": replicas, "tower_devices": list(tower_devices or ()),
    }


if __name__ == "__main__":
    worker_main(measure)
