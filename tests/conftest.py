"""Shared test set-up: quiet TensorFlow, CPU only, two logical CPU devices for tower tests."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

# Two logical CPU devices stand in for the paper's two GPUs. This must happen before TF
# initialises its devices, so it lives here, before any test imports run TF ops.
_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
)


@pytest.fixture(scope="session")
def paper_model():
    """The full paper network (Section 3, 60,965,224 parameters), built once per session.

    Tests where the full network is the point (shapes, parameter count, init, the paper-size
    kernel grid) share it; building it takes seconds. Treat it as read-only.
    """
    import keras

    from keras_alexnet import build_alexnet

    keras.utils.set_random_seed(0)
    return build_alexnet()
