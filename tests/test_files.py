"""Atomic writes: the target holds the old file or the whole new one, never a part."""

from __future__ import annotations

import pytest

from keras_alexnet.files import atomic_path


def test_atomic_path_replaces_on_success(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and not target.exists()
        tmp.write_text("new")
    assert target.read_text() == "new"
    assert [p.name for p in target.parent.iterdir()] == ["out.txt"]


def test_atomic_path_keeps_the_old_file_on_error(tmp_path):
    target = tmp_path / "out.keras"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target, suffix=".keras") as tmp:
        assert tmp.suffix == ".keras"
        tmp.write_text("half")
        raise RuntimeError("writer died")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.keras"]


def test_atomic_path_gives_the_usual_permissions(tmp_path):
    # Not mkstemp's private 0600: what a plain open() gives under this process's umask.
    with atomic_path(tmp_path / "a.txt") as tmp:
        tmp.write_text("x")
    (tmp_path / "b.txt").write_text("x")
    modes = {name: (tmp_path / name).stat().st_mode & 0o777 for name in ("a.txt", "b.txt")}
    assert modes["a.txt"] == modes["b.txt"] != 0o600
