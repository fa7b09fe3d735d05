"""Where one Keras step's time goes: TF's per-op-type profile and oneDNN's kernel choices.

    python -m benchmarks.profile --precision=mixed_bfloat16 --mode=train --batch_size=128
    python -m benchmarks.profile --onednn     # also which oneDNN kernels ran (AMX or not)

The step is the benchmark's own (`benchmarks.keras_worker.make_step`) on synthetic data. The op
table is TF's profiler ("framework_op_stats": self time per op type, summed over both
intra-op threads, so it adds up to more than the wall time). XLA-compiled functions (the LRN
layer, `keras_alexnet.layers`) are not attributed to any op: their time shows up as IDLE.
`--onednn` reruns the step in a child process with `ONEDNN_VERBOSE=1` and sums the time of
each (primitive, implementation), e.g. `convolution brg_conv_fwd:avx10_1_512_amx`.
"""

from __future__ import annotations

import collections
import glob
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

from absl import app, flags

from benchmarks.run import cell_spec
from benchmarks.settings import PRECISIONS, PRESETS

_PRECISION = flags.DEFINE_enum("precision", "mixed_bfloat16", list(PRECISIONS), "Precision.")
_MODE = flags.DEFINE_enum("mode", "train", ["train", "infer"], "Training step or forward pass.")
_BATCH = flags.DEFINE_integer("batch_size", 128, "Batch size.")
_PRESET = flags.DEFINE_enum("preset", "quick", list(PRESETS), "Network and threads (benchmark "
                            "preset); `tiny` is the test's small network.")
_STEPS = flags.DEFINE_integer("steps", 3, "Profiled steps (after 3 warm-up steps).")
_ONEDNN = flags.DEFINE_bool("onednn", False, "Also list oneDNN's kernels (ONEDNN_VERBOSE=1).")


def step_spec(preset: str, precision: str, mode: str, batch_size: int) -> dict[str, Any]:
    """The benchmark's worker spec for one Keras cell."""
    return cell_spec(PRESETS[preset], "keras", mode=mode, batch_size=batch_size,
                     precision=precision)


def _run_steps(spec: dict[str, Any], warmup: int) -> tuple[Any, Any]:
    from benchmarks import keras_worker as kw

    kw._setup(spec)
    model, config = kw.build_model(spec, spec["mode"])
    x, y = kw._synthetic(config, spec["batch_size"])
    step = kw.make_step(model, spec, spec["mode"])
    for _ in range(warmup):
        step(x, y)
    return step, (x, y)


def op_profile(spec: dict[str, Any], steps: int = 3) -> tuple[float, dict[str, float]]:
    """(wall seconds per step, {op type: self milliseconds per step}) over `steps` steps."""
    import tensorflow as tf
    from tensorflow.python.profiler.internal import _pywrap_profiler_plugin as plugin

    step, (x, y) = _run_steps(spec, warmup=3)
    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        start = time.perf_counter()
        for _ in range(steps):
            step(x, y)
        wall = (time.perf_counter() - start) / steps
        tf.profiler.experimental.stop()
        trace = sorted(glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True))[-1]
        data, ok = plugin.xspace_to_tools_data([trace], "framework_op_stats")
    if not ok:
        raise RuntimeError("TF's profiler returned no op statistics.")
    table = json.loads(data)[0]
    columns = [c["id"] for c in table["cols"]]
    times: collections.Counter = collections.Counter()
    for row in table["rows"]:
        cell = dict(zip(columns, (c.get("v") for c in row["c"])))
        times[cell["type"]] += cell["total_self_time"] / 1e3 / steps
    return wall, dict(times)


def onednn_kernels(verbose: str) -> dict[str, tuple[float, int]]:
    """{"<primitive> <implementation>": (total ms, calls)} from ONEDNN_VERBOSE=1 output."""
    found: dict[str, tuple[float, int]] = {}
    for line in verbose.splitlines():
        fields = line.split(",")
        if not line.startswith("onednn_verbose") or "exec" not in fields[:4]:
            continue
        at = fields.index("exec")
        key = f"{fields[at + 2]} {fields[at + 3]}".strip()
        ms, calls = found.get(key, (0.0, 0))
        found[key] = (ms + float(fields[-1]), calls + 1)
    return found


def format_table(rows: dict[str, float], total: float, unit: str = "ms") -> str:
    lines = []
    for name, value in sorted(rows.items(), key=lambda kv: -kv[1]):
        lines.append(f"  {name:48s} {value:9.1f} {unit} {100 * value / total:5.1f}%")
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    del argv
    spec = step_spec(_PRESET.value, _PRECISION.value, _MODE.value, _BATCH.value)
    if os.environ.get("ONEDNN_VERBOSE"):  # the --onednn child: run the steps and exit
        _run_steps(spec, warmup=1 + _STEPS.value)
        return
    wall, times = op_profile(spec, _STEPS.value)
    busy = sum(v for k, v in times.items() if k != "IDLE")
    print(f"{spec['mode']} step, batch {spec['batch_size']}, {spec['precision']}: "
          f"{1e3 * wall:.0f} ms wall ({spec['batch_size'] / wall:.1f} images/s); op self time "
          f"per step (summed over threads; XLA functions count as IDLE):")
    print(format_table(times, busy + times.get("IDLE", 0.0)))
    if _ONEDNN.value:
        env = dict(os.environ, ONEDNN_VERBOSE="1", TF_CPP_MIN_LOG_LEVEL="2")
        out = subprocess.run([sys.executable, "-m", "benchmarks.profile", *sys.argv[1:]],
                             env=env, capture_output=True, text=True, check=True).stdout
        kernels = onednn_kernels(out)
        total = sum(ms for ms, _ in kernels.values())
        print(f"oneDNN kernels over {1 + _STEPS.value} steps (the first one warm-up), ms:")
        print(format_table({f"{k} (x{n})": ms for k, (ms, n) in kernels.items()}, total))


if __name__ == "__main__":
    app.run(main)
