"""A small ImageNet-layout folder, built at test time, with the odd files real ImageNet has."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

WNIDS = ("n01440764", "n01443537", "n01484850")
NAMES = ("tench, Tinca tinca", "goldfish, Carassius auratus", "great white shark")
# Varied sizes and aspect ratios, some below 256 on one or both sides.
SIZES = ((320, 240), (200, 150), (256, 256), (500, 260), (120, 300), (260, 1000))
# ILSVRC2012_ID order differs from sorted-wnid order in the real devkit; here too.
ID_ORDER = ("n01484850", "n01440764", "n01443537")


def _picture(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 / w, yy * 255 / h, (xx + yy) * 127 / (w + h)], axis=-1)
    return np.clip(base + rng.normal(0, 20, (h, w, 3)), 0, 255).astype(np.uint8)


def _jpeg(image: np.ndarray, mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    img = Image.fromarray(image)
    if mode != "RGB":
        img = img.convert(mode)
    img.save(buf, "JPEG", quality=92)
    return buf.getvalue()


def make_imagenet(root: Path, *, flat_val: bool, seed: int = 0) -> dict:
    """Writes root/train/<wnid>/*.JPEG and root/val (class folders or flat + devkit files).

    Returns the expected counts {"train": {wnid: n_good}, "val": {wnid: n}, "broken": [paths]}
    and "odd": {file name: the RGB picture it was made from} for the CMYK/gray/PNG files.
    """
    rng = np.random.default_rng(seed)
    good = {w: 0 for w in WNIDS}
    broken = []
    for c, wnid in enumerate(WNIDS):
        d = root / "train" / wnid
        d.mkdir(parents=True)
        for i, (w, h) in enumerate(SIZES):
            (d / f"{wnid}_{i}.JPEG").write_bytes(_jpeg(_picture(rng, w + c, h)))
            good[wnid] += 1
    t0, t1, t2 = (root / "train" / w for w in WNIDS)
    odd = {"cmyk.JPEG": _picture(rng, 300, 280), "gray.JPEG": _picture(rng, 280, 310),
           "png_named.JPEG": _picture(rng, 270, 260)}
    (t0 / "cmyk.JPEG").write_bytes(_jpeg(odd["cmyk.JPEG"], "CMYK"))
    (t1 / "gray.JPEG").write_bytes(_jpeg(odd["gray.JPEG"], "L"))
    odd["gray.JPEG"] = np.repeat(
        np.asarray(Image.fromarray(odd["gray.JPEG"]).convert("L"))[:, :, None], 3, axis=2)
    buf = io.BytesIO()
    Image.fromarray(odd["png_named.JPEG"]).save(buf, "PNG")
    (t2 / "png_named.JPEG").write_bytes(buf.getvalue())
    for wnid in WNIDS:
        good[wnid] += 1
    full = _jpeg(_picture(rng, 400, 300))
    (t0 / "truncated.JPEG").write_bytes(full[: len(full) // 3])
    (t1 / "empty.JPEG").write_bytes(b"")
    (t2 / "notes.JPEG").write_text("this is not an image\n")
    broken = [str(t0 / "truncated.JPEG"), str(t1 / "empty.JPEG"), str(t2 / "notes.JPEG")]

    val_counts = {w: 0 for w in WNIDS}
    val_labels = []
    for i in range(7):
        wnid = WNIDS[i % 3]
        val_counts[wnid] += 1
        name = f"ILSVRC2012_val_{i + 1:08d}.JPEG"
        if flat_val:
            path = root / "val" / name
            val_labels.append(ID_ORDER.index(wnid) + 1)
        else:
            path = root / "val" / wnid / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_jpeg(_picture(rng, 300 + 10 * i, 260)))
    if flat_val:
        (root / "ILSVRC2012_validation_ground_truth.txt").write_text(
            "".join(f"{v}\n" for v in val_labels))
        (root / "synsets.txt").write_text("".join(f"{w}\n" for w in ID_ORDER))
    (root / "synset_words.txt").write_text(
        "".join(f"{w} {n}\n" for w, n in zip(WNIDS, NAMES)))
    return {"train": good, "val": val_counts, "broken": sorted(broken), "odd": odd}


def make_synthetic_prepared_input(root: Path, num_images: int, num_classes: int = 10,
                                  seed: int = 0) -> None:
    """num_images 256x256 JPEGs in train/<class>/ (for throughput measurements)."""
    rng = np.random.default_rng(seed)
    for i in range(num_images):
        d = root / "train" / f"n{i % num_classes:08d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{i}.JPEG").write_bytes(_jpeg(_picture(rng, 256, 256)))
