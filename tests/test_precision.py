"""Mixed bfloat16: the setting reaches the layers, variables and the update stay float32."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import TINY_MODEL

from keras_alexnet import precision
from keras_alexnet.loading import load_model
from keras_alexnet.model import build_alexnet
from keras_alexnet.presets import preset
from keras_alexnet.train import train
from keras_alexnet.train_config import TrainConfig

CONFIG = TINY_MODEL.replace(num_classes=5, dropout_rate=0.0, classifier_activation=None)
# Part of a real /proc/cpuinfo of a 2-core Intel Xeon with AMX.
CPUINFO = ("processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Processor\n"
           "flags\t\t: fpu sse2 avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n")


def test_auto_picks_bf16_only_on_bf16_hardware_after_the_accuracy_check(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text(CPUINFO)
    bf16_cpu = precision.cpu_flags(info)
    assert {"avx512_bf16", "amx_bf16"} <= bf16_cpu
    old_cpu = frozenset({"fpu", "sse2", "avx2", "avx512f"})

    def auto(flags, gpus=(), checked=True):
        return precision.resolve("auto", flags=flags, gpu_capabilities=gpus,
                                 accuracy_checked=checked)

    assert auto(old_cpu) == "float32"  # no bf16 units: float32 whatever the check says
    assert auto(bf16_cpu) == "mixed_bfloat16"
    assert auto(bf16_cpu, checked=False) == "float32"
    assert auto(old_cpu, gpus=[(8, 0)]) == "mixed_bfloat16"  # Ampere's bf16 tensor cores
    assert auto(bf16_cpu, gpus=[(7, 5)]) == "float32"  # the GPUs do the work: none has bf16
    assert precision.cpu_flags(tmp_path / "missing") == frozenset()
    # This machine: bf16 only if it has the units and the accuracy check has passed.
    here = precision.native_bf16(precision.cpu_flags(), precision.gpu_compute_capabilities())
    assert precision.resolve("auto") == (
        "mixed_bfloat16" if here and precision.BF16_ACCURACY_CHECKED else "float32")
    assert precision.resolve("mixed_bfloat16") == "mixed_bfloat16"
    with pytest.raises(ValueError, match="precision='bf16'"):
        precision.resolve("bf16")
    with pytest.raises(ValueError, match="precision='fp16'"):
        TrainConfig(precision="fp16")


def test_policy_reaches_the_layers_and_variables_stay_float32():
    with precision.dtype_policy("mixed_bfloat16"):
        model = build_alexnet(CONFIG.replace(classifier_activation="softmax"))
    assert keras.config.dtype_policy().name == "float32"  # restored after the block
    policies = {layer.name: layer.dtype_policy.name for layer in model.layers}
    assert policies["conv1_t0"] == policies["fc7_t1"] == "mixed_bfloat16"
    # The classifier and its softmax compute in float32 (see keras_alexnet.precision); LRN
    # takes bf16 and computes its sums in float32 inside (tests/test_layers.py).
    assert policies["lrn1_t0"] == "mixed_bfloat16"
    assert policies["fc8"] == policies["predictions"] == "float32"
    assert {v.dtype for v in model.variables if v.trainable} == {"float32"}
    x = np.random.default_rng(0).normal(0, 50, (2, 67, 67, 3)).astype("float32")
    assert model.get_layer("conv1_t0")(x[:, :11, :11]).dtype == "bfloat16"
    probs = model(x)
    assert probs.dtype == "float32"
    np.testing.assert_allclose(probs.numpy().sum(axis=1), 1.0, rtol=1e-6)


def test_bf16_step_applies_the_paper_rule_to_float32_variables():
    with precision.dtype_policy("mixed_bfloat16"):
        model = build_alexnet(CONFIG)
    lr, wd = 0.05, 0.01
    optimizer = TrainConfig(learning_rate=lr, weight_decay=wd, decay_biases=True).make_optimizer()
    optimizer.build(model.trainable_variables)
    rng = np.random.default_rng(1)
    images = tf.constant(rng.normal(0, 50, (4, 67, 67, 3)).astype("float32"))
    labels = tf.constant([0, 1, 2, 3])
    before = [v.numpy() for v in model.trainable_variables]

    @tf.function  # one compiled step that also hands back the gradients it applied
    def step():
        with tf.GradientTape() as tape:  # no dropout: the step is a function of its input
            logits = tf.cast(model(images, training=True), tf.float32)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
        return grads

    grads = [g.numpy() for g in step()]
    assert {g.dtype for g in grads} == {np.dtype("float32")}
    for v, w, g in zip(model.trainable_variables, before, grads):
        # Section 5, first step (v = 0): v <- -wd*lr*w - lr*g ; w <- w + v, in float64.
        expected = w.astype("float64") - wd * lr * w - lr * g
        assert v.dtype == "float32"
        np.testing.assert_allclose(v.numpy(), expected, rtol=1e-5, atol=1e-7, err_msg=v.path)


@pytest.mark.slow
def test_bf16_run_saves_a_bf16_model_that_reloads(tmp_path):
    config = preset("tiny").replace(
        precision="mixed_bfloat16", epochs=1, steps_per_epoch=2, eval_steps=1,
        work_dir=str(tmp_path))
    result = train(config)
    assert keras.config.dtype_policy().name == "float32"
    loaded = load_model(result.model_path)  # safe_mode
    assert loaded.get_layer("conv2_t0").dtype_policy.name == "mixed_bfloat16"
    assert loaded.get_layer("fc8").dtype_policy.name == "float32"
    x = np.zeros((1, 67, 67, 3), "float32")
    np.testing.assert_allclose(loaded(x).numpy(), result.model(x).numpy(), rtol=1e-6)
    assert np.isfinite(result.history[-1]["val_loss"])
    # The run's checkpoints restore into the precision it trained in (its config.json's).
    restored = load_model(result.checkpoint_dir)
    assert restored.get_layer("conv2_t0").dtype_policy.name == "mixed_bfloat16"
    np.testing.assert_allclose(restored(x).numpy(), result.model(x).numpy(), rtol=1e-6)


@pytest.mark.slow
def test_a_float32_model_served_in_bf16(tmp_path):
    from keras_alexnet.export import export_savedmodel
    from keras_alexnet.loading import with_precision

    model = build_alexnet(CONFIG.replace(classifier_activation="softmax"))
    bf16 = with_precision(model, "mixed_bfloat16")
    assert (model.precision, bf16.precision) == ("float32", "mixed_bfloat16")
    assert with_precision(bf16, "mixed_bfloat16") is bf16
    x = np.random.default_rng(2).normal(0, 50, (3, 67, 67, 3)).astype("float32")
    want = bf16(x).numpy()
    np.testing.assert_allclose(want, model(x).numpy(), atol=0.02)  # bf16 rounding, same net
    path = export_savedmodel(bf16, tmp_path, class_names=list("abcde"),
                             mean_image=np.zeros((72, 72, 3), np.float32))
    served = tf.saved_model.load(str(path)).signatures["predict_images"](images=tf.constant(x))
    got, fp32 = served["probabilities"].numpy(), model(x).numpy()
    assert served["probabilities"].dtype == tf.float32
    # Compiled bf16 kernels round differently from eager ones: bf16 accuracy, not float32's.
    np.testing.assert_allclose(got, want, atol=0.02)
    assert np.abs(got - fp32).max() > 1e-5  # it really computes in bf16
