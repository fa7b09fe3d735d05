"""TensorBoard output of a run: weight histograms counted without TensorBoard's [N, 30] one-hot
table (4.5 GB for one tower's fc6), bucket for bucket the same as tf.summary.histogram's."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.histogram import summary_v2

from keras_alexnet.summaries import RunWriters, histogram_buckets


@pytest.mark.parametrize("values", [
    np.random.default_rng(0).normal(0, 0.01, (300, 70)).astype(np.float32),
    np.random.default_rng(1).uniform(-3, 5, 2_500_001),  # more than one counting chunk
    np.array([0.25], np.float32),  # one value
    np.full(17, -2.0, np.float32),  # all equal
    np.zeros((0, 3), np.float32),  # empty
])
def test_buckets_equal_tensorboards(values):
    expected = summary_v2._buckets(tf.constant(values), 30).numpy()
    np.testing.assert_allclose(histogram_buckets(values), expected, rtol=1e-12, atol=0)


def test_run_writers_write_histograms_tensorboard_reads(tmp_path):
    inputs = keras.Input((4, 4, 3))
    conv = keras.layers.Conv2D(2, 3, name="conv1")(inputs)
    model = keras.Model(inputs, conv)
    writers = RunWriters(tmp_path)
    writers.epoch_images(7, model)
    writers.close()
    events = EventAccumulator(str(tmp_path / "train"), size_guidance={"tensors": 0}).Reload()
    kernel = model.get_layer("conv1").kernel
    (event,) = events.Tensors("weights/" + kernel.path)
    assert event.step == 7
    assert event.tensor_proto.tensor_shape.dim[0].size == 30
    got = tf.make_ndarray(event.tensor_proto)
    np.testing.assert_allclose(got, summary_v2._buckets(tf.constant(kernel.numpy()), 30).numpy())
    plugin = events.SummaryMetadata("weights/" + kernel.path).plugin_data.plugin_name
    assert plugin == "histograms"
