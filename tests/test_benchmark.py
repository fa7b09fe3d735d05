"""scripts/benchmark.py end to end with a tiny network (nothing here is timed or asserts speed)."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from keras_alexnet import AlexNetConfig, build_alexnet, distribute
from keras_alexnet.bench import (
    DIST_BASELINE,
    DIST_MODES,
    RESULTS_BEGIN,
    RESULTS_END,
    TINY_CONFIG,
    BenchSettings,
    cell_spec,
    summarize,
    update_markdown,
)
from keras_alexnet.bench_workers import layer_macs, make_step

_ROOT = Path(__file__).resolve().parents[1]
_HAS_TORCH = importlib.util.find_spec("torch") is not None


def _conv_out(size: int, kernel: int, stride: int, pad: int) -> int:
    return (size + pad - kernel) // stride + 1


def _expected_macs(c: AlexNetConfig) -> dict[str, int]:
    """Multiply-adds from the paper's layer shapes (Figure 2), computed independently."""
    s = _conv_out(c.input_size, c.conv_kernel_sizes[0], c.conv1_stride, c.conv1_padding)
    f, k = c.conv_filters, c.conv_kernel_sizes
    pool = lambda n: _conv_out(n, c.pool_size, c.pool_stride, 0)  # noqa: E731
    s2 = pool(s)
    s3 = pool(s2)
    s5 = pool(s3)
    return {
        "conv1": s * s * f[0] * k[0] ** 2 * 3,
        "conv2": s2 * s2 * f[1] * k[1] ** 2 * f[0] // c.num_towers,  # own tower's maps only
        "conv3": s3 * s3 * f[2] * k[2] ** 2 * f[1],  # both towers' maps
        "conv4": s3 * s3 * f[3] * k[3] ** 2 * f[2] // c.num_towers,
        "conv5": s3 * s3 * f[4] * k[4] ** 2 * f[3] // c.num_towers,
        "fc6": s5 * s5 * f[4] * c.fc_units[0],
        "fc7": c.fc_units[0] * c.fc_units[1],
        "fc8": c.fc_units[1] * c.num_classes,
    }


@pytest.mark.parametrize("size", [224, 227])
def test_layer_macs_match_the_paper_shapes(size):
    config = AlexNetConfig(input_size=size)
    macs = layer_macs(build_alexnet(config))
    assert macs == _expected_macs(config)
    # DESIGN.md: 724.4M multiply-adds per image (= 1.45 GFLOP forward).
    assert round(sum(macs.values()) / 1e5) == 7244


@pytest.mark.parametrize("jit_update", [True, False])
def test_timed_train_step_is_the_paper_update(jit_update):
    # The timed step (with its update optionally in a nested XLA function) must do exactly
    # what the paper's rule does, computed here with NumPy from the same gradients.
    import keras
    import numpy as np
    import tensorflow as tf

    config = AlexNetConfig(**TINY_CONFIG).replace(dropout_rate=0.0, classifier_activation=None)
    settings = BenchSettings(config=config.to_dict(), jit_update=jit_update)
    spec = cell_spec(settings, "keras", "unused.json", "train", 4)
    model = build_alexnet(config)
    rng = np.random.default_rng(0)
    x = rng.normal(0, 60, (4, 67, 67, 3)).astype(np.float32)
    y = np.array([0, 1, 2, 3], np.int32)
    before = [v.numpy() for v in model.trainable_variables]
    with tf.GradientTape() as tape:
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(y, model(x))
    grads = [g.numpy() for g in tape.gradient(loss, model.trainable_variables)]
    step = make_step(model, spec, "train")
    lr, wd = spec["learning_rate"], spec["weight_decay"]
    step(x, y)  # velocity starts at 0, so v = -wd*lr*w - lr*g (no decay for biases)
    for w, g, var in zip(before, grads, model.trainable_variables):
        v = -lr * g - (wd * lr * w if w.ndim >= 2 else 0.0)
        np.testing.assert_allclose(var.numpy(), w + v, rtol=1e-5, atol=1e-7)


def test_summarize_median_and_spread():
    assert summarize([3.0, 1.0, 2.0]) == {"median": 2.0, "min": 1.0, "max": 3.0,
                                          "runs": [3.0, 1.0, 2.0]}


def test_update_markdown_replaces_only_the_generated_section(tmp_path):
    path = tmp_path / "PERF.md"
    path.write_text("# Perf\n\nintro\n\n## Log\n\nexperiment 1\n")
    update_markdown(path, "table v1")
    first = path.read_text()
    assert first.startswith("# Perf\n\nintro") and "experiment 1" in first
    assert f"{RESULTS_BEGIN}\ntable v1\n{RESULTS_END}" in first
    update_markdown(path, "table v2")
    second = path.read_text()
    assert second == first.replace("table v1", "table v2")
    path.write_text(f"text\n{RESULTS_BEGIN}\nbroken")
    with pytest.raises(ValueError, match="only one of the results markers"):
        update_markdown(path, "table")


def _run(tmp_path: Path, *flags: str) -> dict:
    out, md = tmp_path / "report.json", tmp_path / "PERFORMANCE.md"
    md.write_text("# Performance\n\nHand-written text that must survive.\n")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run(
        [sys.executable, str(_ROOT / "scripts" / "benchmark.py"), "--tiny",
         f"--json_out={out}", f"--markdown={md}", *flags],
        cwd=_ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| mode | batch |" in proc.stdout
    text = md.read_text()
    assert "Hand-written text that must survive." in text
    assert RESULTS_BEGIN in text and "| train | 2 |" in text
    return json.loads(out.read_text())


def test_tiny_benchmark_end_to_end(tmp_path):
    report = _run(tmp_path)
    assert {"machine", "versions", "settings", "model", "ceiling", "results", "pipeline",
            "command"} <= set(report)
    assert report["model"]["macs"] == sum(_expected_macs(AlexNetConfig(**TINY_CONFIG)).values())
    assert report["ceiling"]["gflops"] > 0
    assert report["ceiling"]["implied_images_per_s"]["train"] > 0
    cells = {(r["framework"], r["mode"], r["batch_size"]): r for r in report["results"]}
    frameworks = ["keras"] + (["torch:grouped", "torch:split"] if _HAS_TORCH else [])
    assert set(cells) == {(fw, m, 2) for fw in frameworks for m in ("train", "infer")}
    for cell in cells.values():
        assert cell["errors"] == []
        assert cell["images_per_s"]["median"] > 0 and cell["peak_rss_mib"] > 0
    if _HAS_TORCH:
        k = cells["keras", "train", 2]
        fastest = max(cells[p, "train", 2]["images_per_s"]["median"]
                      for p in ("torch:grouped", "torch:split"))
        assert k["speedup_vs_torch"] == pytest.approx(k["images_per_s"]["median"] / fastest)
        assert report["versions"]["torch"].startswith("2.")
    pipeline = report["pipeline"]
    if pipeline.get("available"):
        assert pipeline["train_real"]["median"] > 0 and pipeline["pipeline_images_per_s"] > 0
    # Issue 5: every distribution mode trains, on the two logical CPU devices.
    dist = report["distribution"]
    assert dist["batch_size"] == 2
    modes = {r["dist_mode"]: r for r in dist["results"]}
    assert set(modes) == {"single", "towers", "mirrored"}
    for entry in modes.values():
        assert entry["errors"] == [] and entry["images_per_s"]["median"] > 0
        assert len(entry["devices"]) == 2 and all("CPU" in d for d in entry["devices"])
    assert modes["towers"]["tower_devices"] == modes["towers"]["devices"]
    assert (modes["single"]["replicas"], modes["mirrored"]["replicas"]) == (1, 2)
    assert modes["single"]["vs_single"] == 1.0
    text = (tmp_path / "PERFORMANCE.md").read_text()
    assert "Distribution modes on two logical CPU devices" in text
    assert "| mirrored | 2 replicas, global batch split |" in text


def test_tiny_benchmark_keras_on_jax_backend(tmp_path):
    pytest.importorskip("jax")
    report = _run(tmp_path, "--backend=jax", "--peer=none", "--nopipeline", "--modes=train")
    assert report["versions"]["keras_backend"] == "jax"
    assert [(r["framework"], r["mode"]) for r in report["results"]] == [("keras", "train")]
    assert all("jax" in r["variant"] and r["images_per_s"]["median"] > 0
               for r in report["results"])
    assert report["distribution"]["results"] == []
    assert "TensorFlow" in report["distribution"]["reason"]


def test_dist_modes_are_modes_of_the_distribute_module():
    assert {DIST_BASELINE, *DIST_MODES} <= set(distribute.MODES)
    with pytest.raises(ValueError, match="dist_modes=.*multi_worker"):
        BenchSettings(config=AlexNetConfig(**TINY_CONFIG).to_dict(), dist_modes=("multi_worker",))
