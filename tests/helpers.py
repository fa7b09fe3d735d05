"""What the test modules share: the tiny network, and how to run the project's programs.

Plain Python, no TensorFlow: the pure-Python tests and tests/dist_worker.py import it too.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

# The one tiny network of the tests is the package's own (the "tiny" preset's), seconds to
# build and train: tests take it from here, and one that needs another size or head derives
# it with `.replace(...)`.
from keras_alexnet.presets import TINY_MODEL

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "scripts"

__all__ = ["ROOT", "SCRIPTS", "TINY_MODEL", "python_env", "run_python"]


def python_env(extra: Mapping[str, str] | None = None,
               python_path: Iterable[str | os.PathLike] = ()) -> dict[str, str]:
    """The environment of a test's Python subprocess: this process's, with Keras on
    TensorFlow (the scripts' backend), TensorFlow's C++ logging quiet, no GPU, and the
    repository on PYTHONPATH (the benchmarks package lives beside the library, outside the
    wheel) after `python_path`; then `extra` (another KERAS_BACKEND, TF_CONFIG, ...)."""
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="2",
               CUDA_VISIBLE_DEVICES="")
    paths = [*map(str, python_path), str(ROOT), env.get("PYTHONPATH")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    env.update(extra or {})
    return env


def run_python(*args: str | os.PathLike, env: Mapping[str, str] | None = None,
               python_path: Iterable[str | os.PathLike] = (), cwd: str | os.PathLike = ROOT,
               timeout: float = 300, check: bool = False) -> subprocess.CompletedProcess:
    """`python ARGS` (a script and its flags, `-m module ...` or `-c code ...`) in a fresh
    interpreter with `python_env(env, python_path)`, from `cwd` (the repository by default);
    stdout and stderr captured as text. `check=True` raises on a non-zero exit."""
    return subprocess.run([sys.executable, *map(str, args)], env=python_env(env, python_path),
                          cwd=cwd, capture_output=True, text=True, timeout=timeout, check=check)
