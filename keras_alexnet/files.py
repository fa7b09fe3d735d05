"""Writing files atomically: readers see the old file or the whole new one, never a part."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

# mkstemp creates its file 0600; the renamed file should get the usual 0666 & ~umask instead
# (a prepared data set or an export is often read by other users). Read once: os.umask can only
# be read by setting it.
_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """Yields a temporary path beside `path`; renames it onto `path` if the block succeeds.

    On any error the temporary file is removed and `path` is left as it was. `suffix` is for
    writers that insist on one (Keras' `.keras`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Writes `text` to `path` through `atomic_path`."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
