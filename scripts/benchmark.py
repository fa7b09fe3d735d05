"""Training and inference speed of keras_alexnet next to PyTorch and the machine's ceilings.

  python scripts/benchmark.py                   # full: batch sweep 16..256, 3 alternating repeats
  python scripts/benchmark.py --preset=quick    # batch 64 and 128, 2 repeats
  python scripts/benchmark.py --preset=quick --precision=float32   # fp32 only (default: + bf16)
  python scripts/benchmark.py --preset=tiny     # a tiny network, seconds per measurement
  python scripts/benchmark.py --preset=quick --markdown=docs/PERFORMANCE.md   # update the docs

Both precisions (fp32; bf16 as Keras' mixed_bfloat16 and PyTorch's bf16 autocast) are measured
by default, each against its own matmul ceiling. Prints the results table and writes the JSON
report (--json_out); the generated section of a markdown file is rewritten only when --markdown
names it. Every measurement runs in a fresh process per framework (benchmarks/run.py). Any
other setting of benchmarks.settings.BenchSettings is reachable with --set, e.g. --set threads=2
--set jit_compile=true --set config.input_size=227 --set torch_variants=grouped,split,grouped+cl
--set dist_modes=
"""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
from pathlib import Path

from absl import flags, logging

_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(_ROOT))  # `benchmarks` lives beside the library, not in the wheel

from benchmarks import report as report_lib  # noqa: E402
from benchmarks.run import run_benchmark  # noqa: E402
from benchmarks.settings import BACKENDS, PRECISIONS, PRESETS, BenchSettings  # noqa: E402
from keras_alexnet import cli  # noqa: E402
from keras_alexnet.overrides import apply_overrides  # noqa: E402

_PRESET = flags.DEFINE_enum("preset", "full", list(PRESETS),
                            "full: batch 16..256, 3 repeats; quick: batch 64 and 128, 2 "
                            "repeats; tiny: a tiny network, one step (what the test runs).")
_BATCH_SIZES = flags.DEFINE_list("batch_sizes", None, "Batch sizes (default: the preset's).")
_PRECISION = flags.DEFINE_list(
    "precision", list(PRECISIONS),
    f"Precisions measured, each for both frameworks ({', '.join(PRECISIONS)}): Keras under "
    "that dtype policy, PyTorch under torch.autocast(bfloat16) for mixed_bfloat16. bf16 only "
    "pays on CPUs with AVX512-BF16/AMX or on GPUs.",
)
_BACKEND = flags.DEFINE_enum("backend", "tensorflow", list(BACKENDS), "Keras backend.")
_PEER = flags.DEFINE_enum("peer", "torch", ["torch", "none"], "The framework to compare with.")
_JSON_OUT = flags.DEFINE_string("json_out", None,
                                "Report path (default runs/benchmark_<preset>.json).")
_MARKDOWN = flags.DEFINE_string(
    "markdown", "", "Markdown file whose generated results section is rewritten, e.g. "
    "docs/PERFORMANCE.md (default: none)."
)
_NOTE = flags.DEFINE_string("note", "", "A line shown above the table (e.g. 'busy machine').")
_SET = flags.DEFINE_multi_string(
    "set", [], "field=value overrides of benchmarks.settings.BenchSettings, e.g. threads=2, "
    "repeats=5, jit_compile=true, config.input_size=227, dist_modes= (none), pipeline=false."
)


def _torch_missing() -> bool:
    """True when --peer=torch but PyTorch is not installed."""
    return _PEER.value == "torch" and importlib.util.find_spec("torch") is None


def settings_from_flags() -> BenchSettings:
    """The chosen preset with --set, --batch_sizes, --precision, --backend and --peer on top.

    Raises:
      cli.UsageError: for a bad flag value (one line naming it).
    """
    try:
        settings = apply_overrides(PRESETS[_PRESET.value], _SET.value)
        changes = {"precisions": tuple(_PRECISION.value), "backend": _BACKEND.value}
        if _BATCH_SIZES.value:
            try:
                changes["batch_sizes"] = tuple(int(b) for b in _BATCH_SIZES.value)
            except ValueError:
                raise ValueError(f"--batch_sizes={','.join(_BATCH_SIZES.value)} must be "
                                 "comma-separated integers, e.g. 64,128.") from None
        if _torch_missing():
            logging.warning("PyTorch is not installed (pip install torch==2.13.0, or the "
                            "[torch] extra): measuring Keras only.")
        if _PEER.value == "none" or _torch_missing():
            changes["torch_variants"] = ()
        return dataclasses.replace(settings, **changes)
    except ValueError as e:
        raise cli.UsageError(str(e)) from None


def main(argv: list[str]) -> None:
    settings = settings_from_flags()
    json_out = _JSON_OUT.value or str(_ROOT / "runs" / f"benchmark_{_PRESET.value}.json")
    logging.info("Benchmark settings: %s", settings)
    report = run_benchmark(settings, log=lambda msg: logging.info("%s", msg))
    report["command"] = "python scripts/benchmark.py " + " ".join(sys.argv[1:])
    if _NOTE.value:
        report["note"] = _NOTE.value
    if _torch_missing():
        report["peer_note"] = "PyTorch is not installed, so no peer was measured."
    table = report_lib.format_table(report)
    print(table, flush=True)
    report_lib.write_json(json_out, report)
    logging.info("Report written to %s", json_out)
    if _MARKDOWN.value:
        report_lib.update_markdown(_MARKDOWN.value, table)
        logging.info("Results section of %s rewritten", _MARKDOWN.value)


if __name__ == "__main__":
    cli.run(main)
