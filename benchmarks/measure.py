"""What both benchmark workers share: timing, peak memory, and how a worker talks to the run.

Standard library only: the PyTorch worker imports this module, and anything that imported
Keras would load TensorFlow or JAX into that process and inflate the peer's memory figure.

A worker is started as `python -m benchmarks.<worker> '<spec JSON>'` (see
`benchmarks.run.cell_spec` for the keys); it prints its result as one line starting with
`RESULT_PREFIX` on stdout, which `parse_result` finds among whatever else the frameworks print.
"""

from __future__ import annotations

import json
import resource
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

RESULT_PREFIX = "benchmark-result: "


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, in MiB.

    Linux's VmHWM, not getrusage's ru_maxrss: ru_maxrss survives exec, so a worker started by a
    parent holding TensorFlow would report the parent's peak instead of its own.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def time_steps(run: Callable[[], Any], warmup: int, steps: int) -> list[float]:
    """Seconds per call of `run` (which must block until its work is done), warm-up excluded."""
    for _ in range(warmup):
        run()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return times


def matmul_gflops(run: Callable[[], Any], n: int, reps: int = 8) -> dict[str, Any]:
    """GFLOP/s of `reps` timed calls of `run`, one n x n by n x n matmul each (2 warm-ups)."""
    return summarize([2 * n**3 / t / 1e9 for t in time_steps(run, 2, reps)])


def summarize(values: Sequence[float]) -> dict[str, Any]:
    """Median and spread of repeated measurements."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "runs": list(values)}


def worker_main(measure: Callable[[dict[str, Any]], dict[str, Any]],
                argv: Sequence[str] | None = None) -> None:
    """A worker process's entry point: `measure(spec)` for the spec in argv, result to stdout.

    Raises:
      SystemExit: (exit code 2) when argv is not exactly one JSON spec.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("Usage: python -m benchmarks.<worker> '<spec JSON>' (benchmarks/run.py starts "
              "the workers; run scripts/benchmark.py instead).", file=sys.stderr)
        raise SystemExit(2)
    result = measure(json.loads(args[0]))
    print(RESULT_PREFIX + json.dumps(result), flush=True)


def parse_result(stdout: str) -> dict[str, Any] | None:
    """The result a worker printed (its last `RESULT_PREFIX` line), or None if there is none."""
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX):])
    return None
