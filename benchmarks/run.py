"""The benchmark's orchestrator: Keras vs PyTorch, the matmul ceilings (settings: settings.py).

The orchestrator (`run_benchmark`) never runs a network itself: every measurement is a fresh
worker process (`benchmarks.keras_worker` or `benchmarks.torch_reference`), so each framework
has its own memory figure, thread pools and warm caches. For each (batch, mode) the cells,
one per (framework build, precision), alternate A/B, B/A, ... `repeats` times; warm-up steps
are never timed. The distribution modes alternate the same way, each in its own process.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.measure import parse_result
from benchmarks.report import build_report
from benchmarks.settings import DIST_BASELINE, BenchSettings, headline_batch, steps_for

ROOT = Path(__file__).resolve().parents[1]  # the workers run here: `python -m benchmarks.…`


def cell_spec(settings: BenchSettings, kind: str, mode: str = "train", batch_size: int = 0,
              torch_variant: str = "", dist_mode: str = "",
              precision: str = "") -> dict[str, Any]:
    """The JSON a worker process receives (both frameworks read the same keys).

    `precision` is the cell's (default: the first of `settings.precisions`).

    `sgd` holds the training run's SGD settings (`TrainConfig`'s fields: Section 5's numbers),
    so the Keras step builds its optimizer with `TrainConfig.make_optimizer()` and the PyTorch
    step uses the same numbers; `conv1_padding` is the network's bottom/right overhang, which
    the PyTorch worker cannot compute without importing `keras_alexnet`.
    """
    from keras_alexnet.train_config import TrainConfig  # loads Keras: only when specs are made

    train = TrainConfig()
    return {
        **dataclasses.asdict(settings),
        "kind": kind, "mode": mode, "batch_size": batch_size, "torch_variant": torch_variant,
        "dist_mode": dist_mode, "precision": precision or settings.precisions[0],
        "steps": steps_for(settings, batch_size) if batch_size else 0,
        "sgd": {k: getattr(train, k)
                for k in ("learning_rate", "momentum", "weight_decay", "decay_biases")},
        "conv1_padding": settings.config.conv1_padding,
        "threads": settings.num_threads, "inter_op_threads": settings.num_inter_op_threads,
    }


def worker_env(settings: BenchSettings) -> dict[str, str]:
    """The environment of every worker: quiet TF, the Keras backend, equal thread pools."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", KERAS_BACKEND=settings.backend)
    # OpenMP/BLAS pools (oneDNN, PyTorch, NumPy) get the same thread count in every worker.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(settings.num_threads)
    if settings.device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
        env["JAX_PLATFORMS"] = "cpu"
    return env


def worker_command(spec: dict[str, Any]) -> list[str]:
    """The command line of the worker for `spec["kind"]` (run with cwd=ROOT)."""
    module = "torch_reference" if spec["kind"].startswith("torch") else "keras_worker"
    return [sys.executable, "-m", f"benchmarks.{module}", json.dumps(spec)]


def run_worker(spec: dict[str, Any], env: dict[str, str], timeout_s: int) -> dict[str, Any]:
    """Runs one worker process; its result, or {"error": ...} if it failed."""
    try:
        proc = subprocess.run(worker_command(spec), cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout_s}s"}
    result = parse_result(proc.stdout) if proc.returncode == 0 else None
    if result is None:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        return {"error": f"exit code {proc.returncode}: " + " | ".join(tail)}
    return result


def run_benchmark(settings: BenchSettings,
                  log: Callable[[str], None] = print) -> dict[str, Any]:
    """Runs every measurement in worker processes and returns the report (`report.build_report`)."""
    env = worker_env(settings)
    cells: dict[tuple[str, str, str, int], list[dict]] = {}
    frameworks = ["keras"] + [f"torch:{v}" for v in settings.torch_variants]
    # One cell per (framework build, precision) for each (batch, mode).
    builds = [(fw, p) for p in settings.precisions for fw in frameworks]

    def run(kind: str, framework: str = "", mode: str = "train", batch: int = 0,
            dist_mode: str = "", precision: str = "") -> dict:
        spec = cell_spec(settings, kind, mode, batch, framework.partition(":")[2], dist_mode,
                         precision)
        result = run_worker(spec, env, settings.timeout_s)
        if "error" in result:
            log(f"  {kind} {framework or dist_mode} {precision} {mode} {batch}: "
                f"FAILED {result['error']}")
        return result

    def measure_machine() -> None:
        machine_runs.append(run("machine"))
        if settings.torch_variants:
            torch_machine_runs.append(run("torch_machine"))

    log("machine: matmul ceilings (fp32, bf16) and FLOP count")
    machine_runs: list[dict] = []
    torch_machine_runs: list[dict] = []
    measure_machine()
    for batch in settings.batch_sizes:
        for mode in settings.modes:
            for r in range(settings.repeats):
                # A/B then B/A, so no cell always runs first after another.
                for fw, precision in builds if r % 2 == 0 else builds[::-1]:
                    kind = "keras" if fw == "keras" else "torch"
                    result = run(kind, fw, mode, batch, precision=precision)
                    cells.setdefault((fw, precision, mode, batch), []).append(result)
                    if "images_per_s" in result:
                        log(f"  {fw:16s} {precision:14s} {mode:5s} batch {batch:3d} run "
                            f"{r + 1}: {result['images_per_s']:8.1f} images/s")
    if settings.repeats > 1:
        measure_machine()  # the ceilings again, after the load
    dist = run_distribution(settings, run, log)
    pipeline = {"available": False, "reason": "disabled (--set pipeline=false)"}
    if settings.pipeline:
        log("pipeline: prepared shards vs synthetic")
        pipeline = run("pipeline", batch=headline_batch(settings.batch_sizes))
    return build_report(settings, machine_runs, cells, pipeline, dist, torch_machine_runs)


def run_distribution(settings: BenchSettings, run: Callable[..., dict[str, Any]],
                     log: Callable[[str], None] = print) -> dict[str, Any]:
    """Times training under "single" and each of `settings.dist_modes` on two devices.

    `run(kind, mode=, batch=, dist_mode=)` runs one worker (see `run_benchmark`). Returns the
    raw runs per mode, or why none were run; `report.build_report` summarises them.
    """
    if not settings.dist_modes:
        return {"reason": "disabled (--set dist_modes=)"}
    if settings.backend != "tensorflow":
        return {"reason": "tf.distribute needs the TensorFlow backend"}
    batch = headline_batch(settings.batch_sizes)
    modes = [DIST_BASELINE, *settings.dist_modes]
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in modes}
    log(f"distribution modes on two devices, batch {batch}")
    for r in range(settings.repeats):
        for m in modes if r % 2 == 0 else modes[::-1]:
            result = run("dist", mode="train", batch=batch, dist_mode=m)
            runs[m].append(result)
            if "images_per_s" in result:
                log(f"  {m:16s} train batch {batch:3d} run {r + 1}: "
                    f"{result['images_per_s']:8.1f} images/s")
    return {"batch_size": batch, "runs": runs}
