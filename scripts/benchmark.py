"""Training and inference speed of keras_alexnet next to PyTorch and the machine's ceiling.

  python scripts/benchmark.py            # full: batch sweep 16..256, 3 alternating repeats
  python scripts/benchmark.py --quick    # batch 64 and 128, 2 repeats (< 10 min on 2 cores)
  python scripts/benchmark.py --tiny     # a tiny network, seconds; docs/ are left alone

Prints the results table, writes the JSON report (--json_out) and rewrites the generated
section of docs/PERFORMANCE.md (--markdown). Every measurement runs in a fresh process per
framework (see keras_alexnet/bench.py); --backend=jax runs the Keras side under JAX.
Training under the distribution modes towers and mirrored (keras_alexnet/distribute.py) is
measured on two logical CPU devices, or on two GPUs where visible (--dist_modes).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import sys
import tempfile
from pathlib import Path

from absl import app, flags, logging

from keras_alexnet import bench
from keras_alexnet.config import AlexNetConfig

_ROOT = Path(__file__).resolve().parents[1]
PRESETS = {
    "full": dict(batch_sizes=(16, 32, 64, 128, 256), repeats=3, timed_images=512,
                 min_steps=3, warmup_steps=2),
    "quick": dict(batch_sizes=(64, 128), repeats=2, timed_images=256, min_steps=3,
                  warmup_steps=1, pipeline_images=256),
    "tiny": dict(config=AlexNetConfig(**bench.TINY_CONFIG).to_dict(), batch_sizes=(2,),
                 repeats=1, timed_images=2, min_steps=1, warmup_steps=1, matmul_size=256,
                 pipeline_images=8),
}

_QUICK = flags.DEFINE_bool("quick", False, "Batch 64 and 128 only, 2 repeats.")
_TINY = flags.DEFINE_bool("tiny", False, "A tiny network and one step (tests); docs untouched.")
_BATCH_SIZES = flags.DEFINE_list("batch_sizes", None, "Batch sizes (default: the preset's).")
_MODES = flags.DEFINE_list("modes", list(bench.MODES), "train and/or infer.")
_REPEATS = flags.DEFINE_integer("repeats", None, "Alternating runs per framework and cell.")
_TIMED_IMAGES = flags.DEFINE_integer("timed_images", None, "Images timed per run (at least).")
_WARMUP = flags.DEFINE_integer("warmup_steps", None, "Untimed steps before timing.")
_THREADS = flags.DEFINE_integer("threads", 0, "Intra-op threads in both frameworks; 0 = cores.")
_INTER_OP = flags.DEFINE_integer("inter_op_threads", 0, "Inter-op threads; 0 = --threads.")
_INPUT_SIZE = flags.DEFINE_integer("input_size", None, "224 (default, overhang) or 227.")
_JIT = flags.DEFINE_bool(
    "jit_compile", False, "XLA-compile the TF steps (measured slower on CPU; try it on GPU)."
)
_JIT_UPDATE = flags.DEFINE_bool(
    "jit_update", False, "XLA-compile only the PaperSGD update inside the TF train step "
    "(off by default: the training loop does not do it either)."
)
_BACKEND = flags.DEFINE_enum("backend", "tensorflow", list(bench.BACKENDS), "Keras backend.")
_PEER = flags.DEFINE_enum("peer", "torch", ["torch", "none"], "The framework to compare with.")
_TORCH_VARIANTS = flags.DEFINE_list(
    "torch_variants", ["grouped", "split"],
    f"PyTorch builds measured side by side, from {bench.TORCH_VARIANTS}: own-tower convs as "
    "Conv2d(groups=2) or one per tower; +cl = channels_last.",
)
_PRECISION = flags.DEFINE_enum(
    "precision", "float32", ["float32", "mixed_bfloat16"],
    "Keras dtype policy; bf16 only pays on CPUs with AVX512-BF16/AMX or on GPUs.",
)
_NOTE = flags.DEFINE_string("note", "", "A line shown above the table (e.g. 'busy machine').")
_DEVICE = flags.DEFINE_enum("device", "auto", ["auto", "cpu"], "cpu hides GPUs from both.")
_PIPELINE = flags.DEFINE_bool("pipeline", True, "Also measure training on prepared shards.")
_DIST_MODES = flags.DEFINE_list(
    "dist_modes", list(bench.DIST_MODES),
    "Distribution modes timed next to 'single' on two devices (two GPUs if visible, else two "
    "logical CPUs), at batch 128 (or the largest); '' for none.",
)
_JSON_OUT = flags.DEFINE_string("json_out", None, "Report path (default docs/benchmark.json).")
_MARKDOWN = flags.DEFINE_string(
    "markdown", None, "Markdown file whose results section is rewritten (default "
    "docs/PERFORMANCE.md; '' for none)."
)


def settings_from_flags() -> bench.BenchSettings:
    """The preset chosen by --quick/--tiny, with any explicitly given flags on top."""
    if _QUICK.value and _TINY.value:
        raise app.UsageError("Pass at most one of --quick and --tiny.")
    values = dict(PRESETS["tiny" if _TINY.value else "quick" if _QUICK.value else "full"])
    config = AlexNetConfig.from_dict(values.pop("config", AlexNetConfig().to_dict()))
    if _INPUT_SIZE.value:
        config = config.replace(input_size=_INPUT_SIZE.value)
    values["config"] = config.to_dict()
    overrides = {"repeats": _REPEATS.value, "timed_images": _TIMED_IMAGES.value,
                 "warmup_steps": _WARMUP.value}
    values.update({k: v for k, v in overrides.items() if v is not None})
    if _BATCH_SIZES.value:
        try:
            values["batch_sizes"] = tuple(int(b) for b in _BATCH_SIZES.value)
        except ValueError:
            raise app.UsageError(f"--batch_sizes={_BATCH_SIZES.value} must be integers.") from None
    variants = tuple(_TORCH_VARIANTS.value) if _PEER.value == "torch" else ()
    if variants and importlib.util.find_spec("torch") is None:
        logging.warning("PyTorch is not installed (pip install torch==2.13.0, or the [torch] "
                        "extra): measuring Keras only.")
        variants = ()
    try:
        return bench.BenchSettings(
            **values, modes=tuple(_MODES.value), threads=_THREADS.value,
            inter_op_threads=_INTER_OP.value, jit_compile=_JIT.value,
            jit_update=_JIT_UPDATE.value, backend=_BACKEND.value,
            torch_variants=variants, device=_DEVICE.value, precision=_PRECISION.value,
            pipeline=_PIPELINE.value,
            dist_modes=tuple(_DIST_MODES.value),
        )
    except ValueError as e:
        raise app.UsageError(str(e)) from None


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    settings = settings_from_flags()
    tiny_json = os.path.join(tempfile.gettempdir(), "alexnet_benchmark_tiny.json")
    json_out = _JSON_OUT.value or (tiny_json if _TINY.value else str(_ROOT / "docs/benchmark.json"))
    markdown = _MARKDOWN.value
    if markdown is None:
        markdown = "" if _TINY.value else str(_ROOT / "docs/PERFORMANCE.md")
    logging.info("Benchmark settings: %s", dataclasses.asdict(settings))
    report = bench.run_benchmark(settings, _ROOT / "scripts" / "torch_reference.py",
                                 log=lambda msg: logging.info("%s", msg))
    report["command"] = "python scripts/benchmark.py " + " ".join(sys.argv[1:])
    if _NOTE.value:
        report["note"] = _NOTE.value
    if _PEER.value == "torch" and not settings.torch_variants:
        report["peer_note"] = "PyTorch is not installed, so no peer was measured."
    table = bench.format_table(report)
    print(table, flush=True)
    bench.write_json(json_out, report)
    logging.info("Report written to %s", json_out)
    if markdown:
        bench.update_markdown(markdown, table)
        logging.info("Results section of %s rewritten", markdown)


if __name__ == "__main__":
    app.run(main)
