"""Learning curves read back from a run's TensorBoard events, and their PNG."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from helpers import SCRIPTS, run_python
from PIL import Image

from keras_alexnet import curves
from keras_alexnet.summaries import RunWriters


def _write_run(log_dir: Path) -> None:
    """Events as a run that was killed after step 20 and resumed from step 10 writes them."""
    first = RunWriters(log_dir)
    for step in (10, 20):
        first.scalars("train", step, {"loss": 3.0 - step / 10, "learning_rate": 0.01})
    first.scalars("validation", 20, {"top1_error": 0.5})
    first.config_text(0, '{"batch_size": 128}')  # not a scalar: skipped
    first.close()
    time.sleep(0.01)  # the resumed run's events are later in wall time
    resumed = RunWriters(log_dir)
    for step in (20, 30):
        resumed.scalars("train", step, {"loss": 1.5 - step / 100, "learning_rate": 0.001})
    resumed.scalars("validation", 30, {"top1_error": 0.25})
    resumed.close()


def test_read_scalars_keeps_the_latest_write_of_each_step(tmp_path):
    _write_run(tmp_path)
    s = curves.read_scalars(tmp_path)
    assert set(s) == {"train/loss", "train/learning_rate", "validation/top1_error"}
    steps, loss = s["train/loss"]
    np.testing.assert_array_equal(steps, [10, 20, 30])
    np.testing.assert_allclose(loss, [2.0, 1.3, 1.2], rtol=1e-6)  # step 20 from the resume
    np.testing.assert_allclose(s["train/learning_rate"][1], [0.01, 0.001, 0.001], rtol=1e-6)
    np.testing.assert_array_equal(s["validation/top1_error"][0], [20, 30])


def test_read_scalars_without_events_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="No TensorBoard scalars under"):
        curves.read_scalars(tmp_path)


def test_plot_curves_writes_a_png(tmp_path):
    _write_run(tmp_path / "logs")
    out = curves.plot_curves(curves.read_scalars(tmp_path / "logs"), tmp_path / "a" / "c.png",
                             steps_per_epoch=10, title="run")
    image = np.asarray(Image.open(out).convert("L"))
    assert image.shape == (420, 1500)
    assert image.min() < 128  # something was drawn on the white canvas
    assert not list(out.parent.glob("*.tmp"))
    with pytest.raises(ValueError, match="steps_per_epoch=0"):
        curves.plot_curves({}, tmp_path / "b.png", steps_per_epoch=0)


@pytest.mark.slow
def test_plot_curves_script(tmp_path):
    _write_run(tmp_path / "logs")
    script = SCRIPTS / "plot_curves.py"
    ok = run_python(script, f"--logs={tmp_path / 'logs'}", f"--out={tmp_path / 'c.png'}")
    assert ok.returncode == 0, ok.stderr[-3000:]
    assert "validation/top1_error" in ok.stdout and (tmp_path / "c.png").is_file()
    bad = run_python(script, f"--logs={tmp_path / 'none'}")
    assert bad.returncode != 0 and "No TensorBoard scalars under" in bad.stderr
