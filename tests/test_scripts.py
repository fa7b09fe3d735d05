"""The scripts' one error path: one `error: ...` line on stderr, exit 2 (usage) or 1 (run).

Real subprocesses. The flag checks run before TensorFlow loads: those tests run the script
under a wrapper that reports whether `tensorflow` got imported (no timing assertions).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT, SCRIPTS, python_env, run_python

from keras_alexnet.commands import PROGRAM

ALL = ("benchmark", "demo", "evaluate", "export", "import_caffe", "plot_curves",
       "prepare_imagenet", "reproduce", "train", "visualize")

# Runs a script as __main__ and prints, last, whether TensorFlow was imported and the exit code.
_WRAPPER = """
import runpy, sys
sys.argv = sys.argv[1:]
code = 0
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
except SystemExit as e:
    code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
sys.stdout.flush()
print("tensorflow" in sys.modules, code)
"""


# Runs the `keras-alexnet` entry point's function in-process, as the installed script does.
_DISPATCH = """
import sys
code = 0
try:
    from keras_alexnet.commands import main
    main(sys.argv[1:])
except SystemExit as e:
    code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
sys.stdout.flush()
print("tensorflow" in sys.modules, code)
"""


def _run_no_tf(script: str, *args: str) -> tuple[str, str, int]:
    """(stdout without the report, stderr, exit code); asserts TensorFlow was not imported."""
    return _report(script, [_WRAPPER, str(SCRIPTS / f"{script}.py"), *args])


def _dispatch_no_tf(*args: str) -> tuple[str, str, int]:
    """`keras-alexnet ARGS` as `_run_no_tf` runs a script."""
    return _report(" ".join(args), [_DISPATCH, *args])


def _report(what: str, args: list[str]) -> tuple[str, str, int]:
    p = run_python("-c", *args, timeout=120)
    out, _, report = p.stdout.rstrip("\n").rpartition("\n")
    imported, code = report.split()
    assert imported == "False", f"{what} imported TensorFlow: {p.stderr[-2000:]}"
    return out, p.stderr, int(code)


def _run(script: str, *args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return run_python(SCRIPTS / f"{script}.py", *args, timeout=600, cwd=cwd)


def _one_error_line(stderr: str) -> str:
    """The stderr's `error:` line; asserts there is exactly one and no traceback."""
    assert "Traceback" not in stderr, stderr[-3000:]
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, stderr[-3000:]
    assert errors[0].endswith((".", ")")), errors[0]
    return errors[0]


@pytest.mark.parametrize("script", ALL)
def test_help_exits_0_without_tensorflow(script):
    out, _, code = _run_no_tf(script, "--help")
    assert code == 0
    assert "--" in out  # the flags' help went to stdout


@pytest.mark.parametrize("script,args,expected", [
    ("train", ["--set", "batch_sise=64"], "TrainConfig has no field 'batch_sise'"),
    ("train", ["--mode=everywhere"], "--mode"),
    ("train", ["--no_such_flag"], "no_such_flag"),
    ("train", ["stray"], "Unexpected arguments: stray"),
    ("demo", ["--train_minutes=0"], "--train_minutes must be > 0"),
    ("demo", ["--set", "lerning_rate=0.1"], "lerning_rate"),
    ("evaluate", ["--checkpoint=m.keras", "--batch_size=0"], "--batch_size=0 must be at least"),
    ("evaluate", [], "--checkpoint"),
    ("export", [], "Pass exactly one of --model"),
    ("plot_curves", ["--logs=x", "--steps_per_epoch=0"], "--steps_per_epoch=0"),
    ("prepare_imagenet", ["--output_dir=x"], "--input_dir and --output_dir are required"),
    ("visualize", ["--model=m.keras", "--what=kernels,pictures"], "--what=kernels,pictures"),
    ("import_caffe", ["--out=x"], "Pass --caffemodel=FILE.caffemodel and --out=DIR"),
    ("benchmark", ["--batch_sizes=a"], "--batch_sizes=a must be comma-separated integers"),
    ("benchmark", ["--set", "repeat=3"], "has no field 'repeat'"),
    ("reproduce", ["--claim=figure2"], "Unknown claim 'figure2'"),
    ("reproduce", ["--claim=figure1", "--seeds=0,0"], "--seeds='0,0' must list distinct"),
    ("reproduce", ["--claim=no_lrn", "--precision=fp16"], "--precision"),
])
def test_bad_flags_are_one_line_exit_2_before_tensorflow(script, args, expected):
    _, err, code = _run_no_tf(script, *args)
    assert code == 2, err
    assert expected in _one_error_line(err)


def test_train_work_dir_that_is_a_file(tmp_path):
    work_dir = tmp_path / "a_file"
    work_dir.write_text("not a folder")
    _, err, code = _run_no_tf("train", f"--work_dir={work_dir}")
    assert code == 2
    assert f"--work_dir={work_dir} is a file" in _one_error_line(err)


def test_entry_point_help_lists_every_command_without_tensorflow():
    from keras_alexnet.commands import BENCHMARK, COMMANDS

    out, _, code = _dispatch_no_tf("--help")
    assert code == 0
    listed = [line.split()[0] for line in out.splitlines() if line.startswith("  ")]
    assert listed == [*COMMANDS, BENCHMARK]
    assert "clone" in out.splitlines()[-1]  # the benchmark says it is not installed


@pytest.mark.parametrize("command", ["demo", "train", "evaluate", "export", "visualize",
                                     "plot-curves", "prepare-imagenet", "import-caffe",
                                     "reproduce"])
def test_entry_point_command_help_exits_0_without_tensorflow(command):
    out, _, code = _dispatch_no_tf(command, "--help")
    assert code == 0
    # absl shows the command's own docstring and flags, not the entry point's.
    assert out.lstrip().startswith(f"{_first_line(command)}")
    assert f"\n{PROGRAM} {command}:\n" in out and "\n  --" in out


def test_entry_point_runs_the_command_with_its_arguments():
    _, err, code = _dispatch_no_tf("train", "--set", "batch_sise=64")
    assert code == 2
    assert "TrainConfig has no field 'batch_sise'" in _one_error_line(err)
    _, err, code = _dispatch_no_tf("prepare_imagenet", "--output_dir=x")  # _ as -
    assert code == 2
    assert "--input_dir and --output_dir are required" in _one_error_line(err)


@pytest.mark.parametrize("args,expected", [
    (["trian"], "Unknown command 'trian'"),
    ([], "Name a command first"),
    (["--preset=tiny"], "Name a command first"),
])
def test_entry_point_without_a_command_is_one_line_exit_2(args, expected):
    _, err, code = _dispatch_no_tf(*args)
    assert code == 2
    assert expected in _one_error_line(err)


def test_setup_cfg_console_scripts_name_callables():
    import configparser
    import importlib

    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    lines = cfg["options.entry_points"]["console_scripts"].strip().splitlines()
    scripts = dict(line.replace(" ", "").split("=") for line in lines)
    assert set(scripts) == {PROGRAM}
    module, _, attr = scripts[PROGRAM].partition(":")
    assert callable(getattr(importlib.import_module(module), attr))


def test_every_command_module_has_main_and_run():
    """Each in a fresh process: the commands' flags share absl's one registry."""
    from keras_alexnet.commands import COMMANDS

    for module, _ in COMMANDS.values():
        code = (f"import keras_alexnet.commands.{module} as m; "
                "assert callable(m.main) and callable(m.run)")
        p = run_python("-c", code, timeout=120)
        assert p.returncode == 0, (module, p.stderr[-2000:])


def test_installed_entry_point_runs():
    """The console script pip wrote beside the interpreter (`make install`)."""
    program = Path(sys.executable).parent / PROGRAM
    if not program.exists():
        pytest.skip(f"No {program}: keras_alexnet was installed before it declared {PROGRAM}, "
                    "or elsewhere; reinstall it (make install).")
    p = subprocess.run([str(program), "train", "--help"], capture_output=True, text=True,
                       env=python_env(), timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "--preset" in p.stdout


def test_command_line_runs_as_printed(tmp_path):
    """The demo's next steps: each printed program line runs from a shell without a venv."""
    from keras_alexnet.commands import command_line

    no_venv = {"PATH": "/usr/bin:/bin"}  # no activated venv
    line = run_python("-c", "from keras_alexnet.commands import command_line as c; "
                      f"print(c({PROGRAM!r}))", env=no_venv, cwd=tmp_path, check=True,
                      timeout=120).stdout.strip()
    p = subprocess.run(f"{line} --help", shell=True, capture_output=True, text=True,
                       env=python_env(no_venv), cwd=tmp_path, timeout=120)
    assert p.returncode == 0, (line, p.stderr[-2000:])
    assert "commands:" in p.stdout
    assert command_line("no-such-program-here").endswith("-m no-such-program-here")


def _first_line(command: str) -> str:
    import importlib.util

    from keras_alexnet.commands import COMMANDS

    spec = importlib.util.find_spec(f"keras_alexnet.commands.{COMMANDS[command][0]}")
    source = Path(spec.origin).read_text()
    return source.split('"""')[1].splitlines()[0]


@pytest.fixture(scope="module")
def garbage_model(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("models") / "model.keras"
    path.write_bytes(b"PK\x03\x04 this is not a whole zip archive")  # a truncated copy
    (path.parent / "config.json").write_text(json.dumps({"data": "fashion_mnist"}))
    return path


@pytest.mark.parametrize("script", ["evaluate", "visualize"])
def test_corrupt_or_missing_keras_file_fails_before_tensorflow(script, garbage_model, tmp_path):
    flag = "--checkpoint" if script == "evaluate" else "--model"
    other = f"--out_dir={tmp_path}" if script == "visualize" else "--center_crop"
    _, err, code = _run_no_tf(script, f"{flag}={garbage_model}", other)
    line = _one_error_line(err)
    assert code == 1
    assert "is corrupt or not a .keras file" in line and "not found" not in line.lower()
    missing = tmp_path / "missing.keras"
    _, err, code = _run_no_tf(script, f"{flag}={missing}", other)
    assert code == 1
    assert _one_error_line(err).startswith(f"error: No model file at {str(missing)!r}")


def test_checkpoint_dir_without_checkpoints_fails_before_tensorflow(tmp_path):
    empty = tmp_path / "checkpoints"
    empty.mkdir()
    for script, path, other in [("export", empty, f"--export_root={tmp_path / 'out'}"),
                                ("evaluate", empty / "ckpt-3", "--center_crop")]:
        _, err, code = _run_no_tf(script, f"--checkpoint={path}", other)
        assert code == 1
        assert _one_error_line(err).startswith(f"error: No checkpoint found at {str(path)!r}")


# From here on the scripts get past their flag checks and load TensorFlow.


@pytest.mark.slow  # a subprocess that loads TensorFlow
def test_demo_on_corrupt_fashion_mnist(tmp_path):
    """Data the demo cannot use is one line, not a traceback (and no training starts)."""
    import gzip

    from keras_alexnet.data.fashion_mnist import FILES

    data = tmp_path / "fmnist"
    data.mkdir()
    for name in (f for pair in FILES.values() for f in pair):
        (data / name).write_bytes(gzip.compress(bytes(16)))  # IDX magic number 0
    p = _run("demo", "--set", f"data=fashion_mnist:{data}", f"--work_dir={tmp_path / 'run'}")
    assert p.returncode == 1
    assert "is not a Fashion-MNIST IDX file" in _one_error_line(p.stderr)


@pytest.mark.slow  # a subprocess that loads TensorFlow
def test_prepare_imagenet_on_non_images(tmp_path):
    """A folder of non-images: broken.tsv says why per file; no empty shards are left."""
    root = tmp_path / "in"
    for wnid in ("n01", "n02"):
        (root / "train" / wnid).mkdir(parents=True)
        (root / "train" / wnid / "a.JPEG").write_text("not an image")
    out = tmp_path / "out"
    p = _run("prepare_imagenet", f"--input_dir={root}", f"--output_dir={out}",
             "--num_workers=1")
    assert p.returncode == 1
    assert "No readable training images" in _one_error_line(p.stderr)
    rows = [line.split("\t") for line in (out / "broken.tsv").read_text().splitlines()]
    assert sorted(Path(r[0]).parent.name for r in rows) == ["n01", "n02"]
    # The reason is stable across runs: no memory address of PIL's buffer.
    assert all("0x" not in r[1] and "BytesIO" not in r[1] and r[1] for r in rows), rows
    assert not list(out.glob("train-*")) and not list(out.glob("*.tfrecord"))
