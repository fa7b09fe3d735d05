"""The scripts' one error path: one `error: ...` line on stderr, exit 2 (usage) or 1 (run).

Real subprocesses. The flag checks run before TensorFlow loads: those tests run the script
under a wrapper that reports whether `tensorflow` got imported (no timing assertions).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
ROOT = SCRIPTS.parent
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


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def _run_no_tf(script: str, *args: str) -> tuple[str, str, int]:
    """(stdout without the report, stderr, exit code); asserts TensorFlow was not imported."""
    p = subprocess.run([sys.executable, "-c", _WRAPPER, str(SCRIPTS / f"{script}.py"), *args],
                       capture_output=True, text=True, env=_env(), timeout=120, cwd=ROOT)
    out, _, report = p.stdout.rstrip("\n").rpartition("\n")
    imported, code = report.split()
    assert imported == "False", f"{script} imported TensorFlow: {p.stderr[-2000:]}"
    return out, p.stderr, int(code)


def _run(script: str, *args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPTS / f"{script}.py"), *args],
                          capture_output=True, text=True, env=_env(), timeout=600, cwd=cwd)


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


# From here on the scripts get past their flag checks and load TensorFlow.


@pytest.fixture(scope="module")
def garbage_model(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("models") / "model.keras"
    path.write_bytes(b"PK\x03\x04 this is not a whole zip archive")  # a truncated copy
    (path.parent / "config.json").write_text(json.dumps({"data": "fashion_mnist"}))
    return path


@pytest.mark.parametrize("script", ["evaluate", "visualize"])
def test_corrupt_keras_file_says_corrupt(script, garbage_model, tmp_path):
    flag = "--checkpoint" if script == "evaluate" else "--model"
    p = _run(script, f"{flag}={garbage_model}", f"--out_dir={tmp_path}"
             if script == "visualize" else "--center_crop")
    line = _one_error_line(p.stderr)
    assert p.returncode == 1
    assert "is corrupt or not a .keras file" in line and "not found" not in line.lower()


def test_export_empty_checkpoint_dir_says_no_checkpoint(tmp_path):
    empty = tmp_path / "checkpoints"
    empty.mkdir()
    p = _run("export", f"--checkpoint={empty}", f"--export_root={tmp_path / 'out'}")
    assert p.returncode == 1
    assert f"No checkpoint found at {str(empty)!r}" in _one_error_line(p.stderr)


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
