"""Shared test set-up: quiet TensorFlow, CPU only, two logical CPU devices for tower tests.

TensorFlow is not imported here: a test process that never imports it (the pure-Python
tests run alone) does not pay its ~3.5 s start-up.
"""

import fcntl
import importlib.abc
import importlib.machinery
import os
import pickle
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import pytest  # noqa: E402


def _split_cpu(tf) -> None:
    """Two logical CPU devices stand in for the paper's two GPUs (the tower and distribution
    tests place work on /CPU:0 and /CPU:1). TF allows this only before it initialises its
    devices, which its import does not do; its first op or device listing does."""
    cpus = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(
        cpus[0], [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
    )


class _SplitCpuOnImport(importlib.abc.MetaPathFinder):
    """Runs `_split_cpu` the moment `import tensorflow` (direct, or through Keras or the
    package) has run TensorFlow's `__init__`, before the importer's next line can touch a
    device: whichever test module or test imports it first."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            exec_module = spec.loader.exec_module

            def exec_then_split(module):
                exec_module(module)
                sys.meta_path.remove(self)  # once per process
                _split_cpu(module)

            spec.loader.exec_module = exec_then_split
        return spec


if "tensorflow" in sys.modules:  # imported before this file (a plugin): split it now
    _split_cpu(sys.modules["tensorflow"])
else:
    sys.meta_path.insert(0, _SplitCpuOnImport())


def pytest_configure(config):
    """Under pytest-xdist (`pytest -n 2`), `--maxschedchunk=1` unless given: xdist hands each
    worker a test or two at a time, so the slow tests that `pytest_collection_modifyitems`
    puts first spread over both workers (by default each worker first gets a contiguous
    eighth of the suite: all the slow tests would go to one). Set here, not in pyproject's
    addopts, so that a plain `pytest` (`-p no:xdist`, or xdist not installed) still starts."""
    if config.pluginmanager.hasplugin("xdist") and config.getoption("maxschedchunk") is None:
        config.option.maxschedchunk = 1


@pytest.fixture(scope="session")
def paper_model():
    """The full paper network (Section 3, 60,965,224 parameters), built once per session.

    Tests where the full network is the point (shapes, parameter count, init, the paper-size
    kernel grid) share it; building it takes seconds. Treat it as read-only.
    """
    import keras

    from keras_alexnet import build_alexnet

    keras.utils.set_random_seed(0)
    return build_alexnet()


@pytest.fixture(scope="session")
def build_once(tmp_path_factory) -> Callable[[str, Callable[[Path], Any]], Any]:
    """`build_once(name, build)`: `build(folder)`'s result, built once per test session even
    under `pytest -n 2`.

    A module fixture is built again in each xdist worker that runs one of its tests; an
    expensive one (subprocesses that load TensorFlow) goes through here instead: the first
    worker builds it in a folder both workers see, under a file lock, the other waits for it
    and reads the result back. `name` names the folder (unique in the session); `build` fills
    it and returns a picklable value (paths, arrays, dataclasses). Tests treat the folder as
    read-only.
    """
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the workers' base temp folders share this parent

    def once(name: str, build: Callable[[Path], Any]) -> Any:
        folder, done = root / name, root / f"{name}.pickle"
        with open(root / f"{name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            if not done.is_file():
                folder.mkdir()
                done.write_bytes(pickle.dumps(build(folder)))
            return pickle.loads(done.read_bytes())

    return once


def pytest_collection_modifyitems(config, items):
    """Runs the slow tests first, so that no worker of `pytest -n 2` ends the suite alone with
    a long end-to-end test while the other sits idle; the many short tests fill in the end.

    The order within each half is the collection order (a stable sort), the same in every
    xdist worker, as xdist requires. `pytest_configure`'s `--maxschedchunk=1` makes xdist
    hand them out a test or two at a time.
    """
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
