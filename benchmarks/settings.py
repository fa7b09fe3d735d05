"""What the benchmark measures: `BenchSettings`, its presets, and the batch of each measurement.

Shared by the orchestrator (benchmarks.run), the report (benchmarks.report) and the profiler.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Sequence

from keras_alexnet.config import AlexNetConfig
from keras_alexnet.precision import FLOAT32, MIXED_BF16
from keras_alexnet.presets import TINY_MODEL

MODES = ("train", "infer")
# PyTorch builds of the same network: own-tower convs as one Conv2d(groups=2) (the PyTorch
# idiom) or one Conv2d per tower (as the Keras build); "+cl" adds the channels_last format.
TORCH_VARIANTS = ("grouped", "split", "grouped+cl", "split+cl")
# The modes of keras_alexnet.distribute.MODES that one process can time (multi_worker needs a
# cluster); "single" is always timed beside them, in the same two-device set-up.
DIST_MODES = ("towers", "mirrored")
DIST_BASELINE = "single"
BACKENDS = ("tensorflow", "jax")
# Keras runs under the dtype policy of that name (keras_alexnet.precision: LRN's sums, fc8
# and the softmax stay float32); PyTorch under torch.autocast(bfloat16) for mixed_bfloat16.
PRECISIONS = (FLOAT32, MIXED_BF16)
# The package's tiny network (both towers, both LRN layers) for the end-to-end test, at
# Section 5's init: speed and equivalence need no trainable init, and 5 classes keep the
# benchmark's own shape apart from the training presets'.
TINY_CONFIG = TINY_MODEL.replace(num_classes=5, weight_init_std=AlexNetConfig().weight_init_std)


@dataclasses.dataclass(frozen=True)
class BenchSettings:
    """What to measure. threads 0 means all cores."""

    config: AlexNetConfig = AlexNetConfig()
    batch_sizes: tuple[int, ...] = (16, 32, 64, 128, 256)
    modes: tuple[str, ...] = MODES
    repeats: int = 3
    timed_images: int = 768  # at least this many images (and min_steps steps) are timed
    min_steps: int = 3
    warmup_steps: int = 2
    threads: int = 0
    inter_op_threads: int = 0  # 0: the same as threads, in both frameworks
    device: str = "auto"  # "cpu" hides accelerators from both frameworks
    backend: str = "tensorflow"  # Keras backend of the Keras side
    jit_compile: bool = False  # XLA for the TF steps: slower on CPU (docs/PERFORMANCE.md)
    # XLA for the weight update alone (fused: one pass over the weights instead of ~6).
    jit_update: bool = False
    # Each is measured as its own peer; speedups are against the fastest. () measures no peer.
    torch_variants: tuple[str, ...] = ("grouped", "split")
    # Training under these distribution modes on two devices (logical CPUs, or two GPUs where
    # visible), at the headline batch; () measures none.
    dist_modes: tuple[str, ...] = DIST_MODES
    # Every cell is measured in each: both frameworks, fp32 variables throughout. bf16 only
    # pays on CPUs with AVX512-BF16/AMX or on GPUs. The pipeline and distribution measurements
    # use the first.
    precisions: tuple[str, ...] = PRECISIONS
    matmul_size: int = 4096
    pipeline: bool = True
    pipeline_images: int = 512  # synthetic JPEGs written for the prepared-shard measurement
    timeout_s: int = 1800

    def __post_init__(self) -> None:
        bad = [m for m in self.modes if m not in MODES]
        if bad or not self.modes:
            raise ValueError(f"modes={self.modes}: choose from {MODES}.")
        if not self.batch_sizes or min(self.batch_sizes) < 1:
            raise ValueError(f"batch_sizes={self.batch_sizes} must be positive integers.")
        if self.backend not in BACKENDS:
            raise ValueError(f"backend={self.backend!r}: choose one of {BACKENDS}.")
        bad = [v for v in self.torch_variants if v not in TORCH_VARIANTS]
        if bad:
            raise ValueError(f"torch_variants={self.torch_variants}: choose from {TORCH_VARIANTS}.")
        bad = [m for m in self.dist_modes if m not in DIST_MODES]
        if bad:
            raise ValueError(f"dist_modes={self.dist_modes}: choose from {DIST_MODES} (or none).")
        bad = [p for p in self.precisions if p not in PRECISIONS]
        if bad or not self.precisions or len(set(self.precisions)) < len(self.precisions):
            raise ValueError(f"precisions={','.join(self.precisions)}: choose (each once) from "
                             f"{','.join(PRECISIONS)}.")
        if self.device not in ("auto", "cpu"):
            raise ValueError(f"device={self.device!r}: use 'auto' or 'cpu'.")
        if self.repeats < 1 or self.min_steps < 1 or self.warmup_steps < 0 or self.threads < 0:
            raise ValueError("repeats and min_steps must be >= 1, warmup_steps and threads >= 0.")

    @property
    def num_threads(self) -> int:
        return self.threads or os.cpu_count() or 1

    @property
    def num_inter_op_threads(self) -> int:
        return self.inter_op_threads or self.num_threads


# full: the batch sweep; quick: the paper's batch and half of it, about 10 minutes per precision
# on 2 cores; tiny: a tiny network and one step of each kind, seconds per worker (what the test
# runs).
PRESETS: dict[str, BenchSettings] = {
    "full": BenchSettings(timed_images=512),
    "quick": BenchSettings(batch_sizes=(64, 128), repeats=2, timed_images=256,
                           warmup_steps=1, pipeline_images=256),
    "tiny": BenchSettings(config=TINY_CONFIG, batch_sizes=(2,), repeats=1, timed_images=2,
                          min_steps=1, warmup_steps=1, matmul_size=256, pipeline_images=8),
}


def steps_for(settings: BenchSettings, batch_size: int) -> int:
    """Timed steps per run at `batch_size`: at least `timed_images` images, `min_steps` steps."""
    return max(settings.min_steps, math.ceil(settings.timed_images / batch_size))


def headline_batch(batch_sizes: Sequence[int]) -> int:
    """The batch of the one-batch measurements (real data, distribution modes)."""
    # The paper's batch when it is among those measured.
    return 128 if 128 in batch_sizes else max(batch_sizes)
