"""`keras-alexnet <command> [flags]`: the package's commands behind one entry point.

Each command is a module here with its absl flags, a `main(argv)` and a `run()` (the thin
`scripts/<name>.py` wrappers call the same `run`). absl flags are process-global and several
commands define the same names (--data, --model), so the dispatcher imports only the command
asked for and hands it the remaining arguments. Importing this module loads no TensorFlow:
`keras-alexnet --help` and every `keras-alexnet <command> --help` stay fast.
"""

from __future__ import annotations

import importlib
import os
import runpy
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

PROGRAM = "keras-alexnet"

# name: (module under keras_alexnet.commands, one line for --help), in the order a user meets them.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("demo", "The paper's network and recipe on Fashion-MNIST, offline, time-bounded."),
    "train": ("train", "Train with Section 5's recipe; rerun to resume from a checkpoint."),
    "evaluate": ("evaluate", "Top-1/top-5 error, center crop or ten-crop, one model or several."),
    "export": ("export", "Export a SavedModel for TF Serving."),
    "visualize": ("visualize", "Figures 3 and 4: conv1 kernels, predictions, neighbours."),
    "plot-curves": ("plot_curves", "A run's learning curves as a PNG."),
    "prepare-imagenet": ("prepare_imagenet", "ImageNet to 256x256 TFRecord shards + statistics."),
    "import-caffe": ("import_caffe", "Caffe's trained bvlc_alexnet/CaffeNet as a run directory."),
    "reproduce": ("reproduce", "The paper's findings at small scale: runs, statistics, verdict."),
}
# The benchmark lives in the repository's benchmarks/ package, which the wheel does not hold.
BENCHMARK = "benchmark"
_BENCHMARK_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "benchmark.py"


# What runs a program when its script is not installed beside the interpreter.
_MODULE_FALLBACK = {PROGRAM: "keras_alexnet.commands", "tensorboard": "tensorboard.main"}


def command_line(program: str) -> str:
    """How to type `program` (keras-alexnet, tensorboard) so that it runs as printed.

    The bare name when the shell finds this interpreter's copy; else its path (relative to the
    current folder when inside it, e.g. `.venv/bin/keras-alexnet` after `make demo`); else
    `<python> -m <module>`.
    """
    bin_dir = os.path.dirname(os.path.abspath(sys.executable))
    script = os.path.join(bin_dir, program)
    if os.access(script, os.X_OK):
        found = shutil.which(program)
        if found and os.path.samefile(found, script):
            return program
        relative = os.path.relpath(script)
        return relative if not relative.startswith("..") else script
    return f"{sys.executable} -m {_MODULE_FALLBACK.get(program, program)}"


def usage() -> str:
    """The text of `keras-alexnet --help`: the commands, one line each."""
    width = max(map(len, [*COMMANDS, BENCHMARK]))
    lines = [f"usage: {PROGRAM} <command> [flags]   ({PROGRAM} <command> --help for its flags)",
             "", "commands:"]
    lines += [f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items()]
    lines.append(f"  {BENCHMARK:<{width}}  Training/inference speed next to PyTorch (in a clone "
                 "of the repository only: it runs scripts/benchmark.py).")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    """Runs `keras-alexnet <command> [flags]`; `argv` excludes the program name.

    Exits 0 after --help, 2 with one `error:` line for a missing or unknown command, else as
    the command does (see keras_alexnet.cli).
    """
    from keras_alexnet import cli

    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("-h", "--help", "-help", "help") and len(args) == 1:
        print(usage())
        raise SystemExit(0)
    if args and args[0] == "help":  # `keras-alexnet help train` is `keras-alexnet train --help`
        args = [args[1], "--help"]
    if not args or args[0].startswith("-"):
        sys.stderr.write(usage() + "\n")
        cli.fail(f"Name a command first, e.g. {PROGRAM} train --help.", cli.USAGE_EXIT)
    name = args[0].replace("_", "-")
    sys.argv = [f"{PROGRAM} {name}", *args[1:]]
    if name == BENCHMARK:
        if not _BENCHMARK_SCRIPT.is_file():
            cli.fail(f"{PROGRAM} {BENCHMARK} runs only in a clone of the repository (the "
                     "benchmarks/ package is not installed): run python scripts/benchmark.py "
                     "there.", cli.RUN_EXIT)
        runpy.run_path(str(_BENCHMARK_SCRIPT), run_name="__main__")
        return
    if name not in COMMANDS:
        cli.fail(f"Unknown command {args[0]!r}; choose one of "
                 f"{', '.join([*COMMANDS, BENCHMARK])} (see {PROGRAM} --help).", cli.USAGE_EXIT)
    importlib.import_module(f"{__name__}.{COMMANDS[name][0]}").run()
