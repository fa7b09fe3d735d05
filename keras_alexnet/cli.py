"""The scripts' one error path, and their quiet TensorFlow start-up.

Every script ends in `cli.run(main)`. A user's mistake prints one line on stderr,
`error: <sentence>`, and exits with

- 2 (usage): a flag parsing error, a bad flag value (`UsageError`, absl's `app.UsageError`);
- 1 (run failure): `RunError`, or what the library raises on input it cannot use: a
  ValueError (its argument errors: a missing checkpoint, data that does not fit the model), an
  OSError (a file that cannot be read or written), a TensorFlow op error, a non-finite loss,
  an unreachable peer (TimeoutError).

Anything else is a bug and keeps its traceback. `--help` exits 0 (absl's exits 1).

This module imports neither TensorFlow nor Keras, so `--help` and the flag checks run before
TensorFlow's start-up (seconds, and a screen of log lines): scripts import the TF-heavy parts
of keras_alexnet after `load_tensorflow()`, past their flag checks.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from absl import app, flags

USAGE_EXIT = 2
RUN_EXIT = 1
INTERRUPT_EXIT = 130  # the shell's 128 + SIGINT

_HELP_FLAGS = ("help", "helpshort", "helpfull", "helpxml", "?", "h")

# TensorFlow's C++ start-up lines: its logging is not initialised yet when they are written,
# so TF_CPP_MIN_LOG_LEVEL does not reach them (measured with TF 2.21). They say nothing a user
# can act on; anything else written during the import is passed through.
_STARTUP_NOISE = re.compile(
    r"All log messages before absl::InitializeLog|oneDNN custom operations are on"
    r"|cudart_stub\.cc.*Could not find cuda drivers|cpu_feature_guard\.cc"
    r"|^To enable the following instructions|computation orders\. To turn them off")
# The CUDA probe's complaint, noise only on a machine with no NVIDIA device.
_NO_GPU_NOISE = re.compile(r"failed call to cuInit|cuda_diagnostics|cuda_executor\.cc.*NUMA")


class UsageError(Exception):
    """A bad flag or argument: `run` prints it as one line and exits 2."""


class RunError(Exception):
    """A run that cannot finish: `run` prints it as one line and exits 1."""


def has_nvidia_gpu() -> bool:
    """Whether this machine has an NVIDIA device (a /dev/nvidia<N> node, or nvidia-smi)."""
    return any(Path("/dev").glob("nvidia[0-9]*")) or shutil.which("nvidia-smi") is not None


def message(error: BaseException) -> str:
    """`error` as one sentence on one line: whitespace collapsed, capitalised, a full stop."""
    text = getattr(error, "message", None)  # TF op errors: without the op's traceback
    text = text if isinstance(text, str) and text else str(error) or type(error).__name__
    text = text.strip().split("\n\n")[0]  # TF appends a graph trace after a blank line
    text = " ".join(text.split())
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "?", "!", ")")) else text + "."


def fail(error: BaseException | str, status: int) -> None:
    """Prints `error: <sentence>` on stderr and exits with `status`."""
    text = error if isinstance(error, str) else message(error)
    sys.stdout.flush()
    sys.stderr.write(f"error: {text}\n")
    sys.stderr.flush()
    raise SystemExit(status)


def _run_failures() -> tuple[type[BaseException], ...]:
    kinds: list[type[BaseException]] = [RunError, ValueError, OSError, TimeoutError]
    if "tensorflow" in sys.modules:  # an op error can only come from a loaded TensorFlow
        kinds.append(sys.modules["tensorflow"].errors.OpError)
    checkpoint = sys.modules.get("keras_alexnet.checkpoint")  # where NonFiniteLossError lives
    if checkpoint is not None:
        kinds.append(checkpoint.NonFiniteLossError)
    return tuple(kinds)


def _parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing, with one-line errors (exit 2) and a help that exits 0."""
    try:
        return flags.FLAGS(argv)
    except flags.Error as e:
        fail(f"{message(e)[:-1]}; see --help.", USAGE_EXIT)
    except SystemExit as e:
        # absl's help flags print the help, then exit 1; asking for help is no failure.
        asked = {a.lstrip("-").split("=")[0] for a in argv[1:] if a.startswith("-")}
        if e.code == 1 and asked & set(_HELP_FLAGS):
            raise SystemExit(0) from None
        raise
    raise AssertionError("unreachable")


def run(main: Callable[[list[str]], int | None]) -> None:
    """Parses the flags and runs `main(argv)` with the one error path (see the module doc).

    Unexpected positional arguments are a usage error too: no script takes any. `--help`
    shows the docstring and flags of `main`'s module.
    """
    _help_from(sys.modules.get(main.__module__))
    def guarded(argv: list[str]) -> int | None:
        try:
            if len(argv) > 1:
                raise UsageError(f"Unexpected arguments: {' '.join(argv[1:])}; see --help.")
            return main(argv)
        except (UsageError, app.UsageError) as e:
            fail(e, USAGE_EXIT)
        except KeyboardInterrupt as e:
            # Training's TrainingInterrupted says where it saved and how to resume.
            fail(e if str(e) else "Interrupted.", INTERRUPT_EXIT)
        except _run_failures() as e:
            fail(e, RUN_EXIT)
        return None

    quiet_tensorflow()
    app.run(guarded, flags_parser=_parse_flags)


def _help_from(module) -> None:
    """Makes absl's `--help` describe `module`, where a wrapper or entry point runs its `main`.

    absl prints the `__main__` module's docstring and the flags defined by the module named
    `sys.argv[0]`: a command in keras_alexnet.commands is neither when run through
    scripts/<name>.py or `keras-alexnet <name>`.
    """
    main_module = sys.modules["__main__"]
    if module is None or module is main_module:
        return
    main_module.__doc__ = module.__doc__
    for flag in flags.FLAGS.get_key_flags_for_module(module):
        flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)


def quiet_tensorflow() -> None:
    """Sets TensorFlow's environment for a script: only C++ errors, no CUDA probe without a GPU.

    Defaults only: a value the user set wins. A real GPU is never hidden.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if not has_nvidia_gpu():
        os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")


@contextlib.contextmanager
def _filtered_stderr(noise: re.Pattern) -> Iterator[None]:
    """Routes file descriptor 2 (where C++ logs go) through a file; replays lines not `noise`."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            for line in captured.read().decode(errors="replace").splitlines(keepends=True):
                if not noise.search(line):
                    sys.stderr.write(line)
            sys.stderr.flush()


def load_tensorflow():
    """Imports TensorFlow and initialises its devices without the start-up noise; returns tf.

    Call it where a script's flag checks end: the TF-heavy parts of keras_alexnet import after.
    """
    noise = _STARTUP_NOISE
    if not has_nvidia_gpu():
        noise = re.compile(f"{_STARTUP_NOISE.pattern}|{_NO_GPU_NOISE.pattern}")
    with _filtered_stderr(noise):
        import tensorflow as tf

        tf.config.list_physical_devices()  # the device probe, while its lines are filtered
    return tf
