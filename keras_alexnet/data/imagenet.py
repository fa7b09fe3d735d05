"""ImageNet on disk: the folder layouts people have, label files, and the Section 2 down-sampling.

Layouts: `train/<wnid>/*` and either `val/<wnid>/*` or a flat `val/*` plus the devkit's
`ILSVRC2012_validation_ground_truth.txt` (one 1-based ILSVRC2012_ID per file, files in name
order). IDs map to wnids via the devkit's `meta.mat` (read with scipy when installed) or a
synset list with one wnid per line in ILSVRC2012_ID order (NOT the wnid-sorted order of
`LOC_synset_mapping.txt`). Class indices are the sorted train wnids (the usual convention).
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

GROUND_TRUTH_NAME = "ILSVRC2012_validation_ground_truth.txt"
_DEVKIT_DIRS = (".", "devkit/data", "ILSVRC2012_devkit_t12/data", "val")
_WORDS_NAMES = ("synset_words.txt", "LOC_synset_mapping.txt", "words.txt")


@dataclasses.dataclass(frozen=True)
class Example:
    path: str
    label: int
    wnid: str


@dataclasses.dataclass(frozen=True)
class Layout:
    """What was found under an ImageNet root."""

    root: str
    wnids: tuple[str, ...]
    names: tuple[str, ...]
    train: tuple[Example, ...]
    val: tuple[Example, ...]


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def _find(root: Path, names: tuple[str, ...]) -> Path | None:
    for d in _DEVKIT_DIRS:
        for n in names:
            if (root / d / n).is_file():
                return root / d / n
    return None


def read_synset_words(path: str | Path) -> dict[str, str]:
    """`wnid name, other names` lines (synset_words.txt, LOC_synset_mapping.txt, words.txt)."""
    words = {}
    for line in Path(path).read_text().splitlines():
        parts = line.strip().split(None, 1)
        if parts:
            words[parts[0]] = parts[1].strip() if len(parts) > 1 else parts[0]
    return words


def read_id_synsets(path: str | Path) -> list[str]:
    """wnids in ILSVRC2012_ID order (element i-1 is ID i) from meta.mat or a synset list file."""
    path = Path(path)
    if path.suffix == ".mat":
        try:
            import scipy.io  # optional: only the devkit's meta.mat needs it
        except ImportError as e:
            raise ValueError(f"Reading {path} needs scipy (pip install scipy); or pass a synset "
                             "list with one wnid per line in ILSVRC2012_ID order.") from e
        synsets = scipy.io.loadmat(str(path), squeeze_me=True)["synsets"]
        # The classes with images are the leaves (num_children == 0): IDs 1..1000 in ILSVRC2012.
        leaves = sorted((int(s["ILSVRC2012_ID"]), str(s["WNID"])) for s in synsets
                        if int(s["num_children"]) == 0)
        return [w for _, w in leaves]
    return [line.split()[0] for line in path.read_text().splitlines() if line.strip()]


def _val_flat(root: Path, val_dir: Path, wnids: tuple[str, ...], val_labels: str | None,
              val_synsets: str | None) -> list[Example]:
    files = _files(val_dir)
    gt = Path(val_labels) if val_labels else _find(root, (GROUND_TRUTH_NAME,))
    if gt is None or not gt.is_file():
        raise ValueError(f"{val_dir} holds no class folders and no {GROUND_TRUTH_NAME} was found "
                         "under the root or its devkit; pass --val_labels.")
    tokens = [t.split()[0] for t in gt.read_text().splitlines() if t.strip()]
    if len(tokens) != len(files):
        raise ValueError(f"{gt} has {len(tokens)} labels but {val_dir} has {len(files)} files.")
    if all(t.isdigit() for t in tokens):
        synsets = Path(val_synsets) if val_synsets else _find(gt.parent, ("meta.mat",))
        if synsets is None:
            raise ValueError(f"{gt} holds ILSVRC2012_IDs; pass --val_synsets (meta.mat or a "
                             "list of wnids in ILSVRC2012_ID order) to map them to wnids.")
        id_wnids = read_id_synsets(synsets)
        bad = [t for t in tokens if not 1 <= int(t) <= len(id_wnids)]
        if bad:
            raise ValueError(f"{gt} holds ID {bad[0]}, outside 1..{len(id_wnids)} of {synsets}.")
        tokens = [id_wnids[int(t) - 1] for t in tokens]
    index = {w: i for i, w in enumerate(wnids)}
    unknown = sorted(set(tokens) - set(index))
    if unknown:
        raise ValueError(f"Validation labels name {len(unknown)} wnids with no train folder, "
                         f"e.g. {unknown[0]}; check --val_synsets order.")
    return [Example(str(f), index[w], w) for f, w in zip(files, tokens)]


def scan_imagenet(root: str | Path, *, val_labels: str | None = None,
                  val_synsets: str | None = None, synset_words: str | None = None,
                  allow_empty_classes: bool = False) -> Layout:
    """Lists train/val examples under `root`; raises ValueError on a layout it cannot use."""
    root = Path(root)
    train_dir = root / "train"
    if not train_dir.is_dir():
        raise ValueError(f"No train/ folder under {root}: expected {root}/train/<wnid>/*.JPEG.")
    class_dirs = sorted(p for p in train_dir.iterdir() if p.is_dir())
    if not class_dirs:
        raise ValueError(f"{train_dir} has no class folders (expected train/<wnid>/).")
    wnids = tuple(p.name for p in class_dirs)
    train: list[Example] = []
    for label, d in enumerate(class_dirs):
        files = _files(d)
        if not files and not allow_empty_classes:
            raise ValueError(f"Class folder {d} is empty; remove it or pass --allow_empty_classes.")
        train += [Example(str(f), label, d.name) for f in files]
    val: list[Example] = []
    val_dir = root / "val"
    if val_dir.is_dir():
        sub = sorted(p for p in val_dir.iterdir() if p.is_dir())
        if sub:
            index = {w: i for i, w in enumerate(wnids)}
            for d in sub:
                if d.name not in index:
                    raise ValueError(f"Validation folder {d} names a class with no train folder.")
                val += [Example(str(f), index[d.name], d.name) for f in _files(d)]
        elif _files(val_dir):
            val = _val_flat(root, val_dir, wnids, val_labels, val_synsets)
    words_path = Path(synset_words) if synset_words else _find(root, _WORDS_NAMES)
    if synset_words and not words_path.is_file():
        raise ValueError(f"Synset words file {synset_words} does not exist.")
    words = read_synset_words(words_path) if words_path else {}
    names = tuple(words.get(w, w) for w in wnids)
    return Layout(str(root), wnids, names, tuple(train), tuple(val))


# The first bytes of the formats tf.io.decode_image reads: JPEG, PNG, GIF, BMP, JPEG XL
# (codestream and container); WebP is RIFF....WEBP (see `image_check`).
_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM", b"\xff\x0a",
               b"\x00\x00\x00\x0cJXL \r\n\x87\n")
# The marker a complete JPEG or PNG ends with; a cut-off download lacks it.
_END_MARKERS = {b"\xff\xd8\xff": b"\xff\xd9", b"\x89PNG\r\n\x1a\n": b"IEND"}
_TAIL_BYTES = 4096


def image_check(path: str | Path) -> bool | None:
    """Whether a file is an image TensorFlow decodes, from its first and last bytes only.

    Returns:
      False for an empty or unreadable file or one in no format tf.io.decode_image reads; True
      for a known signature (and, for JPEG and PNG, their end marker in the last 4 KiB); None
      for a JPEG or PNG without that marker: cut off, or followed by other data, which only
      decoding tells apart.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(16)
            f.seek(max(0, f.seek(0, 2) - _TAIL_BYTES))
            tail = f.read()
    except OSError:
        return False
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return True
    for signature in _SIGNATURES:
        if head.startswith(signature):
            end = _END_MARKERS.get(signature)
            return True if end is None or end in tail else None
    return False


def keep_images(layout: Layout, decodes: Callable[[str], bool], *,
                allow_empty_classes: bool = False) -> tuple[Layout, list[str]]:
    """`layout` without the files that are not images (`image_check`, then `decodes` where
    the check cannot tell), and the paths dropped.

    Reading a few bytes a file keeps this to seconds for ImageNet's 1.3M files on a local disk,
    where decoding them all would take an hour at every start.

    Raises:
      ValueError: a class keeps no training image and not `allow_empty_classes`.
    """
    examples = [*layout.train, *layout.val]
    with ThreadPoolExecutor(max_workers=16) as pool:  # I/O-bound: threads overlap the reads
        checks = list(pool.map(lambda e: image_check(e.path), examples))
    ok = {e.path for e, c in zip(examples, checks) if c or (c is None and decodes(e.path))}
    train = tuple(e for e in layout.train if e.path in ok)
    val = tuple(e for e in layout.val if e.path in ok)
    if not allow_empty_classes:
        empty = sorted(set(range(len(layout.wnids))) - {e.label for e in train})
        if empty:
            raise ValueError(f"Class folder {Path(layout.root) / 'train' / layout.wnids[empty[0]]}"
                             " holds no readable image; remove it or pass "
                             "--allow_empty_classes.")
    dropped = [e.path for e in examples if e.path not in ok]
    return dataclasses.replace(layout, train=train, val=val), dropped


class BrokenImage(Exception):
    """A file that is not a usable image; the message is the reason."""


def load_resized(path: str, image_size: int) -> np.ndarray:
    """Section 2: shorter side to image_size, central square crop; uint8 RGB (S, S, 3).

    Converts CMYK, grayscale, palette and PNG-named-JPEG files; raises BrokenImage otherwise.
    """
    data = Path(path).read_bytes()
    if not data:
        raise BrokenImage("empty file")
    buffer = io.BytesIO(data)
    try:
        img = Image.open(buffer)
        w, h = img.size
        scale = image_size / min(w, h)
        size = (max(image_size, round(w * scale)), max(image_size, round(h * scale)))
        # JPEG DCT scaling: decode at the smallest power-of-two reduction >= the target, which
        # makes full-size ImageNet decoding several times faster at no visible cost.
        img.draft("RGB", size)
        img = img.convert("RGB")
        w, h = img.size
        scale = image_size / min(w, h)
        size = (max(image_size, round(w * scale)), max(image_size, round(h * scale)))
        img = img.resize(size, Image.BICUBIC)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        # PIL names the buffer, a memory address that changes per run; the path says more.
        reason = str(e).replace(f" {buffer!r}", "").replace(repr(buffer), "")
        raise BrokenImage(f"{type(e).__name__}: {reason}") from None
    left, top = (size[0] - image_size) // 2, (size[1] - image_size) // 2
    return np.asarray(img.crop((left, top, left + image_size, top + image_size)), np.uint8)


def encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def decode_jpeg(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), np.uint8)
