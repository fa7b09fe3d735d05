"""Numeric precision of a run: float32 (the reference) or mixed bfloat16, and the `auto` rule.

Under "mixed_bfloat16" (Keras' dtype policy of that name) convolutions, matmuls, ReLU, pooling
and dropout compute in bfloat16, while variables, gradients, PaperSGD's update, the loss and
the softmax stay float32; LRN takes and returns bfloat16 but computes its window sums and
power in float32 (layers.py), and fc8 computes in float32 (model.py).

"auto" picks bfloat16 only where the hardware computes it natively (AVX512-BF16 or AMX on
x86, compute capability >= 8.0 on NVIDIA GPUs) *and* training in bfloat16 has been shown to
cost no accuracy against float32 on the documented Fashion-MNIST run (`BF16_ACCURACY_CHECKED`);
everywhere else it is float32. The decision is logged in one line.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path

from absl import logging

FLOAT32 = "float32"
MIXED_BF16 = "mixed_bfloat16"
PRECISIONS = (FLOAT32, MIXED_BF16, "auto")
# x86 CPU flags (/proc/cpuinfo) of native bfloat16 arithmetic that oneDNN uses.
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
# Whether a bf16 training run of the documented Fashion-MNIST recipe reached fp32's accuracy
# within fp32's run-to-run spread (docs/RESULTS.md, "bf16 against fp32"): it did, 6,318 steps
# in bf16 gave 92.01% ten-crop / 92.04% center test accuracy against fp32's 91.93% / 91.89%
# (fp32's spread between seeds: 0.41 points). False would make `auto` float32 everywhere.
BF16_ACCURACY_CHECKED = True


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> frozenset[str]:
    """The CPU's feature flags (empty where /proc/cpuinfo is not there, e.g. macOS)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return frozenset(value.split())
    return frozenset()


def gpu_compute_capabilities() -> list[tuple[int, int]]:
    """(major, minor) of each visible NVIDIA GPU; empty without TensorFlow or GPUs."""
    import tensorflow as tf

    caps = []
    for gpu in tf.config.list_physical_devices("GPU"):
        cap = tf.config.experimental.get_device_details(gpu).get("compute_capability")
        if cap:
            caps.append(tuple(cap))
    return caps


def native_bf16(flags: frozenset[str], gpu_capabilities: Sequence[tuple[int, int]]) -> str | None:
    """What computes bfloat16 natively here (a short description), or None."""
    if gpu_capabilities:
        # bf16 tensor cores arrived with Ampere (8.0); a run uses every visible GPU.
        return "bf16 tensor cores" if min(gpu_capabilities) >= (8, 0) else None
    found = [f for f in BF16_CPU_FLAGS if f in flags]
    return f"CPU flags {', '.join(found)}" if found else None


def resolve(precision: str, *, flags: frozenset[str] | None = None,
            gpu_capabilities: Sequence[tuple[int, int]] | None = None,
            accuracy_checked: bool = BF16_ACCURACY_CHECKED) -> str:
    """The Keras dtype policy for a `precision` setting ("auto" decided and logged).

    Args:
      precision: one of `PRECISIONS`.
      flags, gpu_capabilities: the hardware, read from this machine when None.
      accuracy_checked: whether bf16 training has passed the accuracy check.

    Raises:
      ValueError: an unknown precision.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r}; use one of {PRECISIONS}.")
    if precision != "auto":
        return precision
    flags = cpu_flags() if flags is None else flags
    gpus = gpu_compute_capabilities() if gpu_capabilities is None else gpu_capabilities
    native = native_bf16(flags, gpus)
    if native is None:
        choice, why = FLOAT32, "no native bfloat16 on this machine"
    elif not accuracy_checked:
        choice, why = FLOAT32, (f"{native} found, but bf16 training has not yet been shown to "
                                "match float32's accuracy")
    else:
        choice, why = MIXED_BF16, f"{native} found and bf16 accuracy checked"
    logging.info("precision=auto: %s (%s).", choice, why)
    return choice


@contextlib.contextmanager
def dtype_policy(policy: str) -> Iterator[None]:
    """Builds the layers made inside the block under Keras dtype `policy`, then restores it.

    Layers keep the policy they were built with (and save it in .keras files), so a model
    built in the block computes in `policy` wherever it is later called.
    """
    import keras

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)
