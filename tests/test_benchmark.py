"""The benchmark (benchmarks/): its FLOP count, timed step, report and table, and
scripts/benchmark.py end to end with a tiny network. Nothing here is timed or asserts speed."""

import importlib.util
import json
from pathlib import Path

import pytest
from helpers import ROOT, SCRIPTS, run_python

from benchmarks.keras_worker import build_model, layer_macs, make_step
from benchmarks.measure import RESULT_PREFIX, parse_result, summarize
from benchmarks.report import (
    RESULTS_BEGIN,
    RESULTS_END,
    build_report,
    format_table,
    update_markdown,
)
from benchmarks.run import cell_spec
from benchmarks.settings import DIST_BASELINE, DIST_MODES, PRESETS, TINY_CONFIG, BenchSettings
from keras_alexnet import AlexNetConfig, build_alexnet, distribute

_HAS_TORCH = importlib.util.find_spec("torch") is not None
_PERFORMANCE_MD = ROOT / "docs" / "PERFORMANCE.md"


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


def test_layer_macs_of_the_paper_network():
    config = AlexNetConfig()
    macs = layer_macs(build_alexnet(config))
    assert macs == _expected_macs(config)
    # The figure docs/PERFORMANCE.md and the README quote: 724.4M multiply-adds per image
    # (1.45 GFLOP forward).
    assert round(sum(macs.values()) / 1e5) == 7244


@pytest.mark.parametrize("size", [64, 67])  # with the bottom/right overhang, and without
def test_layer_macs_match_the_layer_shapes(size):
    config = TINY_CONFIG.replace(input_size=size)
    assert layer_macs(build_alexnet(config)) == _expected_macs(config)


@pytest.mark.parametrize("jit_update", [True, False])
def test_timed_train_step_is_the_paper_update(jit_update):
    # The timed step (with its update optionally in a nested XLA function) must do exactly
    # what the paper's rule does, computed here with NumPy from the same gradients.
    import keras
    import numpy as np
    import tensorflow as tf

    config = TINY_CONFIG.replace(dropout_rate=0.0, classifier_activation=None)
    spec = json.loads(json.dumps(cell_spec(BenchSettings(config=config, jit_update=jit_update),
                                           "keras", "train", 4)))  # as a worker receives it
    # Section 5's numbers, which the step's optimizer (TrainConfig.make_optimizer) must use.
    lr, momentum, wd = 0.01, 0.9, 0.0005
    assert spec["sgd"] == {"learning_rate": lr, "momentum": momentum, "weight_decay": wd,
                           "decay_biases": False}
    model = build_alexnet(config)
    rng = np.random.default_rng(0)
    x = rng.normal(0, 60, (4, 67, 67, 3)).astype(np.float32)
    y = np.array([0, 1, 2, 3], np.int32)
    before = [v.numpy() for v in model.trainable_variables]
    with tf.GradientTape() as tape:
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(y, model(x))
    grads = [g.numpy() for g in tape.gradient(loss, model.trainable_variables)]
    step = make_step(model, spec, "train")
    step(x, y)  # velocity starts at 0, so v = -wd*lr*w - lr*g (no decay for biases)
    for w, g, var in zip(before, grads, model.trainable_variables):
        v = -lr * g - (wd * lr * w if w.ndim >= 2 else 0.0)
        np.testing.assert_allclose(var.numpy(), w + v, rtol=1e-5, atol=1e-7)


def test_timed_inference_step_is_the_forward_pass():
    import numpy as np

    spec = json.loads(json.dumps(cell_spec(PRESETS["tiny"], "keras", "infer", 3)))
    model = build_alexnet(TINY_CONFIG)  # softmax output, as the worker builds it for "infer"
    x = np.random.default_rng(0).normal(0, 60, (3, 67, 67, 3)).astype(np.float32)
    probs = make_step(model, spec, "infer")(x, None)
    np.testing.assert_allclose(probs, model(x, training=False).numpy(), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_bf16_cells_build_the_library_precision_and_infer_close_to_fp32():
    # The worker builds the bf16 cells' model under the library's rule (bf16 convs, fc6/fc7
    # and LRN in/out; float32 fc8, softmax and variables); its timed forward pass gives fp32's
    # probabilities to bf16 precision, from the same weights.
    import numpy as np

    bf16_spec, fp32_spec = (json.loads(json.dumps(cell_spec(PRESETS["tiny"], "keras", "infer",
                                                            3, precision=p)))
                            for p in ("mixed_bfloat16", "float32"))
    model, _ = build_model(bf16_spec, "infer")
    reference, _ = build_model(fp32_spec, "infer")
    assert model.precision == "mixed_bfloat16" and reference.precision == "float32"
    compute = {layer.name: layer.dtype_policy.compute_dtype for layer in model.layers}
    assert compute["conv1_t0"] == compute["fc6_t0"] == compute["lrn1_t0"] == "bfloat16"
    assert compute["fc8"] == compute["predictions"] == "float32"
    assert {v.dtype for v in model.weights} == {"float32"}
    reference.set_weights(model.get_weights())
    x = np.random.default_rng(0).normal(0, 60, (3, 67, 67, 3)).astype(np.float32)
    probs = make_step(model, bf16_spec, "infer")(x, None)
    want = make_step(reference, fp32_spec, "infer")(x, None)
    assert probs.dtype == np.float32
    np.testing.assert_allclose(probs, want, atol=0.02)
    assert np.abs(probs - want).max() > 0  # bf16 rounding shows: not the fp32 computation


def test_summarize_median_and_spread():
    assert summarize([3.0, 1.0, 2.0]) == {"median": 2.0, "min": 1.0, "max": 3.0,
                                          "runs": [3.0, 1.0, 2.0]}


def test_parse_result_finds_the_last_result_line_among_framework_output():
    stdout = (f"oneDNN verbose line\n{RESULT_PREFIX}{{\"images_per_s\": 1.0}}\nnoise\n"
              f"{RESULT_PREFIX}{{\"images_per_s\": 2.5}}\ntrailing log line\n")
    assert parse_result(stdout) == {"images_per_s": 2.5}
    assert parse_result("a crash without a result\n") is None


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


def _worker_result(rate: float, rss: float = 100.0, **extra) -> dict:
    return {"images_per_s": rate, "peak_rss_mib": rss, "threads": 2, **extra}


def _machine(tf: float, tf_bf16: float) -> dict:
    """A Keras machine worker's result: one TF run's best fp32 and bf16 matmul rates."""
    return {"tf_matmul_gflops": summarize([tf - 10, tf]),
            "tf_bf16_matmul_gflops": summarize([tf_bf16]),
            "numpy_matmul_gflops": summarize([80.0]), "macs": 5e8,
            "macs_per_layer": {"conv1": 5e8}, "params": 1000, "tensorflow": "2.x",
            "keras": "3.x", "numpy": "2.x", "accelerators": []}


FP32, BF16 = "float32", "mixed_bfloat16"


def test_bench_settings_measure_both_precisions_by_default():
    assert BenchSettings(config=TINY_CONFIG).precisions == (FP32, BF16)


@pytest.fixture
def worker_report() -> dict:
    """build_report on worker results made up with round numbers, so that every derived
    figure is checked by hand: batch 8, both precisions, Keras training and inference, two
    PyTorch builds (one run of `split` failed), two distribution modes and a failed one."""
    settings = BenchSettings(config=TINY_CONFIG, batch_sizes=(8,), repeats=3,
                             torch_variants=("grouped", "split"))
    machine = [_machine(100.0, 300.0), _machine(96.0, 280.0)]  # before and after the cells
    torch_machine = [{"torch_matmul_gflops": summarize([95.0]),
                      "torch_bf16_matmul_gflops": summarize([390.0, 400.0])}]
    cells = {
        ("keras", FP32, "train", 8): [_worker_result(r, 300.0) for r in (30.0, 32.0, 31.0)],
        ("keras", FP32, "infer", 8): [_worker_result(r, 200.0) for r in (80.0, 90.0, 70.0)],
        ("torch:grouped", FP32, "train", 8): [_worker_result(r, version="2.13.0")
                                              for r in (10.0, 12.0, 11.0)],
        ("torch:split", FP32, "train", 8): [_worker_result(15.0, version="2.13.0"),
                                            {"error": "exit code 1: boom"},
                                            _worker_result(16.0, version="2.13.0")],
        ("keras", BF16, "train", 8): [_worker_result(r, 279.0) for r in (60.0, 68.0, 64.0)],
        ("keras", BF16, "infer", 8): [_worker_result(r, 220.0) for r in (168.0, 184.0, 176.0)],
        ("torch:grouped", BF16, "train", 8): [_worker_result(r, version="2.13.0")
                                              for r in (20.0, 22.0, 21.0)],
        ("torch:split", BF16, "train", 8): [_worker_result(16.0, version="2.13.0")] * 3,
    }
    dist = {"batch_size": 8, "runs": {
        "single": [_worker_result(20.0, devices=["/device:CPU:0", "/device:CPU:1"],
                                  replicas=1, tower_devices=[])],
        "towers": [_worker_result(10.0, devices=["/device:CPU:0", "/device:CPU:1"],
                                  replicas=1, tower_devices=["/device:CPU:0", "/device:CPU:1"])],
        "mirrored": [{"error": "timed out after 1800s"}]}}
    pipeline = {"available": False, "reason": "disabled (--set pipeline=false)"}
    return build_report(settings, machine, cells, pipeline, dist, torch_machine)


def _rows(report: dict) -> dict:
    return {(r["framework"], r["precision"], r["mode"]): r for r in report["results"]}


def test_report_ceiling_is_the_faster_frameworks_best_matmul_per_precision(worker_report):
    # 2 * 5e8 = 1 GFLOP forward, 3 GFLOP per training image. Each precision's ceiling is the
    # best matmul of the faster framework: TF's in fp32 (100 > 95), PyTorch's in bf16.
    fp32_ceiling, bf16_ceiling = (worker_report["ceiling"]["by_precision"][p]
                                  for p in (FP32, BF16))
    assert (fp32_ceiling["gflops"], fp32_ceiling["set_by"]) == (100.0, "tensorflow")
    assert fp32_ceiling["tensorflow_gflops"]["runs"] == [100.0, 96.0]
    assert fp32_ceiling["implied_images_per_s"] == {"train": 100.0 / 3, "infer": 100.0}
    assert (bf16_ceiling["gflops"], bf16_ceiling["set_by"]) == (400.0, "torch")
    assert bf16_ceiling["implied_images_per_s"] == {"train": 400.0 / 3, "infer": 400.0}


def test_report_fp32_rows_against_the_ceiling_and_the_fastest_peer(worker_report):
    rows = _rows(worker_report)
    keras_row = rows["keras", FP32, "train"]
    assert keras_row["images_per_s"]["median"] == 31.0 and keras_row["peak_rss_mib"] == 300.0
    assert keras_row["fraction_of_ceiling"] == pytest.approx(31.0 / (100.0 / 3))
    # Against the faster peer of the same precision: split's median over its two good runs.
    assert keras_row["fastest_torch"] == "torch:split"
    assert keras_row["speedup_vs_torch"] == pytest.approx(31.0 / 15.5)
    assert "vs_float32" not in keras_row
    assert rows["torch:split", FP32, "train"]["errors"] == ["exit code 1: boom"]
    assert worker_report["versions"]["torch"] == "2.13.0"
    # Inference in fp32: against its own implied rate; no peer measured it, so no speedup.
    infer_row = rows["keras", FP32, "infer"]
    assert infer_row["fraction_of_ceiling"] == pytest.approx(0.8)
    assert "speedup_vs_torch" not in infer_row


def test_report_bf16_rows_against_the_bf16_ceiling_peer_and_our_fp32(worker_report):
    rows = _rows(worker_report)
    bf16_train = rows["keras", BF16, "train"]
    assert bf16_train["fraction_of_ceiling"] == pytest.approx(64.0 / (400.0 / 3))
    assert bf16_train["fastest_torch"] == "torch:grouped"
    assert bf16_train["speedup_vs_torch"] == pytest.approx(64.0 / 21.0)
    assert bf16_train["vs_float32"] == pytest.approx(64.0 / 31.0)
    assert bf16_train["peak_rss_vs_float32"] == pytest.approx(279.0 / 300.0)
    assert rows["torch:grouped", BF16, "train"]["vs_float32"] == pytest.approx(21.0 / 11.0)
    bf16_infer = rows["keras", BF16, "infer"]
    assert bf16_infer["fraction_of_ceiling"] == pytest.approx(176.0 / 400.0)
    assert bf16_infer["vs_float32"] == pytest.approx(176.0 / 80.0)
    assert bf16_infer["peak_rss_vs_float32"] == pytest.approx(1.1)


def test_report_distribution_modes_against_single_device(worker_report):
    modes = {r["dist_mode"]: r for r in worker_report["distribution"]["results"]}
    assert modes["towers"]["vs_single"] == 0.5 and "images_per_s" not in modes["mirrored"]


def test_report_targets_at_the_headline_batch(worker_report):
    # The target ratios at the headline batch (8, the only one); fp32 inference has no peer.
    targets = {t["name"]: (round(t["value"], 4), t["goal"]) for t in worker_report["targets"]}
    assert targets == {
        "fp32 train / fp32 ceiling": (0.93, 0.85), "fp32 infer / fp32 ceiling": (0.8, 0.85),
        "bf16 train / bf16 ceiling": (0.48, None), "bf16 infer / bf16 ceiling": (0.44, None),
        "fp32 train / fastest PyTorch fp32": (2.0, 2.0),
        "bf16 train / our fp32 train": (round(64 / 31, 4), 1.8),
        "bf16 train / fastest PyTorch bf16 autocast": (round(64 / 21, 4), 3.0),
        "bf16 infer / our fp32 infer": (2.2, 2.0),
        "bf16 train peak RSS / fp32's": (0.93, 1.0), "bf16 infer peak RSS / fp32's": (1.1, 1.0),
    }


def test_table_note_header_and_result_rows(worker_report):
    worker_report["note"] = "busy machine"
    table = format_table(worker_report)
    assert table.startswith("**busy machine**")
    assert "precisions fp32, bf16;" in table and "torch.autocast(bfloat16)" in table
    assert ("| train | 8 | fp32 | 31.0 (30.0–32.0) | 11.0 (10.0–12.0) | 15.5 (15.0–16.0) | 2.00x "
            "| 93% | n/a | 300 / 100 / 100 | n/a |") in table
    assert ("| train | 8 | bf16 | 64.0 (60.0–68.0) | 21.0 (20.0–22.0) | 16.0 (16.0–16.0) | 3.05x "
            "| 48% | 2.06x | 279 / 100 / 100 | 0.93x |") in table
    assert ("| infer | 8 | fp32 | 80.0 (70.0–90.0) | n/a | n/a | n/a | 80% | n/a "
            "| 200 / n/a / n/a | n/a |") in table
    assert ("| infer | 8 | bf16 | 176.0 (168.0–184.0) | n/a | n/a | n/a | 44% | 2.20x "
            "| 220 / n/a / n/a | 1.10x |") in table


def test_table_ceiling_lines_and_targets(worker_report):
    table = format_table(worker_report)
    assert ("- fp32: TensorFlow 100 (per run: 100, 96); PyTorch 95 (per run: 95) GFLOP/s, so "
            "100 GFLOP/s allows 33.3 training or 100.0 inference images/s.") in table
    assert ("- bf16: TensorFlow 300 (per run: 300, 280); PyTorch 400 (per run: 400) GFLOP/s, "
            "so 400 GFLOP/s allows 133.3 training or 400.0 inference images/s.") in table
    assert "| bf16 train / fastest PyTorch bf16 autocast | 3.05x | ≥ 3.00x | yes |" in table
    assert "| bf16 train / bf16 ceiling | 48% | none (reported) | n/a |" in table
    assert "| fp32 infer / fp32 ceiling | 80% | ≥ 85% | no |" in table
    assert "| bf16 infer peak RSS / fp32's | 1.10x | ≤ 1.00x | no |" in table


def test_table_pipeline_and_distribution_sections(worker_report):
    table = format_table(worker_report)
    assert "Prepared-shard pipeline: not measured (disabled (--set pipeline=false))." in table
    assert "| towers | tower *i* on device *i* | 10.0 (10.0–10.0) | 0.50x | 100 |" in table
    assert "| mirrored | — | failed | n/a | n/a |" in table


def test_report_of_fp32_alone_without_a_peer():
    # `--precision=float32 --peer=none`: TF alone sets both ceilings; no bf16 row or ratio.
    settings = BenchSettings(config=TINY_CONFIG, batch_sizes=(8, 128), modes=("train",),
                             repeats=1, torch_variants=(), precisions=("float32",))
    cells = {("keras", "float32", "train", b): [_worker_result(r)]
             for b, r in ((8, 20.0), (128, 25.0))}
    report = build_report(settings, [_machine(100.0, 300.0)], cells,
                          {"available": False, "reason": "off"})
    bf16_ceiling = report["ceiling"]["by_precision"]["mixed_bfloat16"]
    assert (bf16_ceiling["gflops"], bf16_ceiling["set_by"]) == (300.0, "tensorflow")
    assert "torch_gflops" not in bf16_ceiling
    # Only the ratios this run measured, at the paper's batch.
    assert [(t["name"], t["batch_size"], t["value"]) for t in report["targets"]] == [
        ("fp32 train / fp32 ceiling", 128, pytest.approx(0.75))]
    table = format_table(report)
    assert "| bf16 |" not in table and "autocast" not in table
    assert "| train | 128 | fp32 | 25.0 (25.0–25.0) | n/a | 75% | n/a | 100 | n/a |" in table
    assert "| fp32 train / fp32 ceiling | 75% | ≥ 85% | no |" in table


@pytest.mark.parametrize("bad", [("bfloat16",), (), ("float32", "float32")])
def test_precisions_are_checked(bad):
    with pytest.raises(ValueError, match="precisions="):
        BenchSettings(precisions=bad)


def _run(tmp_path: Path, *flags: str, python_path: str = "") -> dict:
    """scripts/benchmark.py --preset=tiny with `flags`: the JSON report. `python_path` goes
    before PYTHONPATH (the workers inherit it)."""
    out = tmp_path / "report.json"
    proc = run_python(SCRIPTS / "benchmark.py", "--preset=tiny", f"--json_out={out}", *flags,
                      python_path=[python_path] if python_path else [], cwd=tmp_path,
                      timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| mode | batch |" in proc.stdout
    return json.loads(out.read_text())


@pytest.mark.slow
def test_tiny_benchmark_end_to_end(tmp_path):
    # Training only, one PyTorch build, both precisions (the default): every worker kind runs
    # once in its own process, each cell once per precision. The inference steps, the other
    # PyTorch builds and the report's handling of several peers and of inference rows are
    # checked in-process (above, and tests/test_torch_reference.py).
    md = tmp_path / "PERFORMANCE.md"
    md.write_text("# Performance\n\nHand-written text that must survive.\n")
    report = _run(tmp_path, f"--markdown={md}", "--set", "modes=train",
                  "--set", "torch_variants=split+cl")
    assert {"machine", "versions", "settings", "model", "ceiling", "results", "pipeline",
            "command", "targets"} <= set(report)
    assert report["model"]["macs"] == sum(_expected_macs(TINY_CONFIG).values())
    precisions = ("float32", "mixed_bfloat16")
    assert tuple(report["settings"]["precisions"]) == precisions
    for precision in precisions:
        ceiling = report["ceiling"]["by_precision"][precision]
        assert ceiling["gflops"] > 0 and ceiling["implied_images_per_s"]["train"] > 0
        assert ("torch_gflops" in ceiling) == _HAS_TORCH
    cells = {(r["framework"], r["precision"], r["mode"], r["batch_size"]): r
             for r in report["results"]}
    frameworks = ["keras"] + (["torch:split+cl"] if _HAS_TORCH else [])
    assert set(cells) == {(fw, p, "train", 2) for fw in frameworks for p in precisions}
    for cell in cells.values():
        assert cell["errors"] == []
        assert cell["images_per_s"]["median"] > 0 and cell["peak_rss_mib"] > 0
    k32, k16 = (cells["keras", p, "train", 2] for p in precisions)
    assert "mixed_bfloat16" in k16["variant"] and "float32" in k32["variant"]
    assert k16["vs_float32"] == pytest.approx(k16["images_per_s"]["median"]
                                              / k32["images_per_s"]["median"])
    if _HAS_TORCH:
        for p in precisions:
            k, t = cells["keras", p, "train", 2], cells["torch:split+cl", p, "train", 2]
            assert t["variant"] == "split+cl"
            assert k["speedup_vs_torch"] == pytest.approx(k["images_per_s"]["median"]
                                                          / t["images_per_s"]["median"])
        assert report["versions"]["torch"].startswith("2.")
    pipeline = report["pipeline"]
    if pipeline.get("available"):
        assert pipeline["train_real"]["median"] > 0 and pipeline["pipeline_images_per_s"] > 0
    # Every distribution mode trains, on the two logical CPU devices.
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
    text = md.read_text()
    assert "Hand-written text that must survive." in text
    assert RESULTS_BEGIN in text
    assert "| train | 2 | fp32 |" in text and "| train | 2 | bf16 |" in text
    assert "- bf16: TensorFlow" in text and "| bf16 train / our fp32 train |" in text
    assert "Distribution modes on two logical CPU devices" in text
    assert "| mirrored | 2 replicas, global batch split |" in text


@pytest.mark.slow
def test_tiny_benchmark_keras_on_jax_backend_needs_no_tensorflow(tmp_path):
    pytest.importorskip("jax")
    # As on a JAX-only machine (a GPU host without TensorFlow): `import tensorflow` fails in
    # the script and in every worker it starts.
    hidden = tmp_path / "no_tensorflow" / "tensorflow"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text("raise ImportError('no TensorFlow on this machine')\n")
    docs_before = _PERFORMANCE_MD.read_text()
    report = _run(tmp_path, "--backend=jax", "--peer=none", "--precision=float32",
                  "--set", "pipeline=false", "--set", "modes=train",
                  python_path=str(hidden.parent))
    assert report["versions"]["keras_backend"] == "jax"
    assert report["versions"]["tensorflow"] is None and report["versions"]["jax"]
    # The ceiling is the backend's own matmul: JAX's.
    ceiling = report["ceiling"]["by_precision"]["float32"]
    assert ceiling["set_by"] == "jax" and ceiling["gflops"] == ceiling["jax_gflops"]["max"] > 0
    assert [(r["framework"], r["precision"], r["mode"]) for r in report["results"]] == [
        ("keras", "float32", "train")]
    assert all("jax" in r["variant"] and r["images_per_s"]["median"] > 0
               for r in report["results"])
    assert report["distribution"]["results"] == []
    assert "TensorFlow" in report["distribution"]["reason"]
    # No --markdown: the docs are not rewritten (the table is only printed).
    assert _PERFORMANCE_MD.read_text() == docs_before


def test_presets_and_dist_modes_are_valid():
    assert set(PRESETS) == {"full", "quick", "tiny"}
    assert PRESETS["tiny"].config == TINY_CONFIG
    assert {DIST_BASELINE, *DIST_MODES} <= set(distribute.MODES)
    with pytest.raises(ValueError, match="dist_modes=.*multi_worker"):
        BenchSettings(config=TINY_CONFIG, dist_modes=("multi_worker",))
