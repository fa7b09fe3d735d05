"""The suite's own set-up (conftest.py): a plain pytest starts, and pure tests skip TensorFlow."""

from helpers import ROOT, run_python

# pytest in-process, then whether it imported TensorFlow and its exit code, on the last line.
_PYTEST = """
import sys, pytest
code = pytest.main(sys.argv[1:])
print("tensorflow" in sys.modules, int(code))
"""


def test_pure_python_tests_run_without_xdist_and_without_tensorflow(tmp_path):
    """conftest.py imports TensorFlow only when a test does (its ~3.5 s start-up), and a
    pytest without pytest-xdist starts (no xdist-only option in pyproject's addopts)."""
    p = run_python("-c", _PYTEST, "-q", "-p", "no:xdist", "-p", "no:cacheprovider",
                   f"--basetemp={tmp_path / 'inner'}", ROOT / "tests" / "test_files.py",
                   timeout=120)
    assert p.stdout.split()[-2:] == ["False", "0"], p.stdout[-3000:] + p.stderr[-3000:]
