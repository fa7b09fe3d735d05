"""The paper's figures: conv1 kernels (Figure 3) and top-5 prediction sheets (Figure 4, left).

Figures are uint8 RGB arrays drawn with Pillow (no plotting library needed), written as PNG
and as TensorBoard image summaries. Every size below is in pixels.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from keras_alexnet.files import atomic_path
from keras_alexnet.model import tower_suffix

BACKGROUND = (255, 255, 255)
INK = (0, 0, 0)
# Figure 4 draws the correct label's bar in red, the others in blue.
TRUE_BAR = (214, 39, 40)
OTHER_BAR = (31, 119, 180)
FIGURE4_LABELS = 5  # Figure 4 shows the five most probable labels.


def write_png(image: np.ndarray, path: str | os.PathLike) -> Path:
    """Writes a uint8 (H, W, 3) array as PNG, atomically (temp name, then rename)."""
    with atomic_path(path) as tmp:
        Image.fromarray(np.asarray(image, np.uint8)).save(tmp, format="PNG")
    return Path(path)


def write_image_summaries(log_dir: str | os.PathLike, images: dict[str, np.ndarray],
                          step: int = 0) -> None:
    """Writes uint8 (H, W, 3) `images` by tag as TensorBoard images (one event file)."""
    import tensorflow as tf

    writer = tf.summary.create_file_writer(str(log_dir))
    with writer.as_default():
        for tag, image in images.items():
            tf.summary.image(tag, np.asarray(image, np.uint8)[None], step=step)
    writer.close()


def _font(size: int = 11) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the fixed bitmap font
        return ImageFont.load_default()


def _fit(draw: ImageDraw.ImageDraw, text: str, width: int, font) -> str:
    """`text`, shortened with an ellipsis until it is at most `width` pixels wide."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "...", font=font) > width:
        text = text[:-1]
    return text + "..."


def conv1_kernels(model: keras.Model) -> list[np.ndarray]:
    """The conv1 kernels of each tower, each (kh, kw, 3, filters per tower); a network that is
    not an AlexNet (the claims' small CNNs) has one "tower": its layer named conv1."""
    config = getattr(model, "alexnet_config", None)
    if config is None:
        return [np.asarray(model.get_layer("conv1").kernel)]
    return [np.asarray(model.get_layer("conv1" + tower_suffix(config, t)).kernel)
            for t in range(config.num_towers)]


def normalize_kernels(kernels: np.ndarray) -> np.ndarray:
    """(kh, kw, 3, n) -> (n, kh, kw, 3) in [0, 1], each kernel min-max scaled on its own.

    Per-kernel scaling (over its pixels and colours) shows every kernel's pattern; the
    absolute weight scale, which varies across kernels, is lost. Flat kernels become 0.5 gray.
    """
    k = np.moveaxis(np.asarray(kernels, np.float64), -1, 0)
    lo = k.min(axis=(1, 2, 3), keepdims=True)
    span = k.max(axis=(1, 2, 3), keepdims=True) - lo
    return np.where(span > 0, (k - lo) / np.where(span > 0, span, 1.0), 0.5)


# Figure 3's caption: the top 48 kernels were learned on GPU 1, the bottom 48 on GPU 2. Ours
# were learned wherever the run put the towers, so the paper's GPUs are a caption line only.
PAPER_TOWERS_CAPTION = "The paper learned tower 0 on GPU 1 and tower 1 on GPU 2 (Section 3.2)."


def kernel_grid_shape(kernels_per_tower: Sequence[int], kernel_size: int, *, columns: int = 16,
                      scale: int = 4, gap: int = 2, label_height: int = 16) -> tuple[int, int]:
    """(height, width) of `kernel_grid`'s image."""
    cell = kernel_size * scale + gap
    rows = sum(label_height + math.ceil(n / columns) * cell for n in kernels_per_tower)
    caption = label_height if len(kernels_per_tower) > 1 else 0
    return gap + rows + caption, gap + columns * cell


def kernel_grid(towers: Sequence[np.ndarray], *, devices: Sequence[str] | None = None,
                columns: int = 16, scale: int = 4, gap: int = 2,
                label_height: int = 16) -> np.ndarray:
    """Figure 3: every tower's conv1 kernels as a grid, tower 0's rows first, then tower 1's.

    Each tower's block starts with a label band ("tower t", and its device when known); kernels
    are min-max normalised one by one (`normalize_kernels`) and magnified `scale` times
    (nearest neighbour). With two towers a caption line says where the paper learned them.

    Args:
      towers: per tower, kernels (kh, kw, 3, n), as from `conv1_kernels`.
      devices: per tower, the device it was placed on (a model's `tower_devices`), if known.
    """
    if not towers or columns < 1 or scale < 1 or gap < 0:
        raise ValueError(f"Need kernels and columns >= 1, scale >= 1, gap >= 0; got "
                         f"{len(towers)} towers, columns={columns}, scale={scale}, gap={gap}.")
    if devices is not None and len(devices) != len(towers):
        raise ValueError(f"Got {len(devices)} devices for {len(towers)} towers; pass one each.")
    size = towers[0].shape[0]
    height, width = kernel_grid_shape([t.shape[-1] for t in towers], size, columns=columns,
                                      scale=scale, gap=gap, label_height=label_height)
    canvas = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    font = _font(max(8, label_height - 4))
    y = gap
    cell = size * scale + gap
    for t, kernels in enumerate(towers):
        draw.rectangle([0, y, width - 1, y + label_height - 2], fill=(230, 230, 230))
        where = f" on {devices[t]}" if devices else ""
        label = _fit(draw, f"tower {t}{where}: {kernels.shape[-1]} kernels", width - gap - 4,
                     font)
        draw.text((gap + 2, y + 1), label, fill=INK, font=font)
        y += label_height
        pixels = (normalize_kernels(kernels) * 255).round().astype(np.uint8)
        for i, k in enumerate(pixels):
            big = np.kron(k, np.ones((scale, scale, 1), np.uint8))
            r, c = divmod(i, columns)
            canvas.paste(Image.fromarray(big), (gap + c * cell, y + r * cell))
        y += math.ceil(len(pixels) / columns) * cell
    if len(towers) > 1:
        draw.text((gap + 2, y + 1), _fit(draw, PAPER_TOWERS_CAPTION, width - gap - 4, font),
                  fill=INK, font=font)
    return np.asarray(canvas)


def display_images(images: np.ndarray, mean_crop: np.ndarray) -> np.ndarray:
    """Mean-subtracted network inputs (N, S, S, 3) back to viewable uint8 pixels."""
    return np.clip(np.round(np.asarray(images) + mean_crop), 0, 255).astype(np.uint8)


def _thumbnail(image: np.ndarray, size: int) -> Image.Image:
    return Image.fromarray(np.asarray(image, np.uint8)).resize((size, size), Image.BILINEAR)


def thumbnails(images: np.ndarray, size: int) -> np.ndarray:
    """uint8 (N, H, W, 3) -> (N, size, size, 3), bilinear."""
    return np.stack([np.asarray(_thumbnail(im, size)) for im in images]) if len(images) else \
        np.zeros((0, size, size, 3), np.uint8)


def prediction_sheet_shape(num_images: int, *, columns: int = 4, thumb: int = 128,
                           cell_width: int = 200, bar_height: int = 14,
                           k: int = FIGURE4_LABELS) -> tuple[int, int]:
    """(height, width) of `prediction_sheet`'s image."""
    rows = math.ceil(num_images / columns)
    return rows * _sheet_cell_height(thumb, bar_height, k) + bar_height + 4, columns * cell_width


def _sheet_cell_height(thumb: int, bar_height: int, k: int) -> int:
    return thumb + bar_height * (k + 1) + 8


def prediction_sheet(images: np.ndarray, probabilities: np.ndarray, labels: np.ndarray,
                     class_names: Sequence[str], *, columns: int = 4, thumb: int = 128,
                     cell_width: int = 200, bar_height: int = 14) -> np.ndarray:
    """Figure 4 (left): each image, its true label below it, then its top-5 labels as bars.

    The bar length is the probability; the true label's bar is red (as in the paper), others
    blue, as a legend line at the bottom says. A true label outside the top 5 is shown only in
    the caption.

    Args:
      images: uint8 (N, H, W, 3) viewable images (see `display_images`).
      probabilities: (N, num_classes) softmax outputs.
      labels: (N,) true class indices.
    """
    probabilities = np.asarray(probabilities)
    labels = np.asarray(labels)
    n = len(images)
    if probabilities.shape[0] != n or labels.shape != (n,) or n == 0:
        raise ValueError(f"Need as many probability rows and labels as images (> 0); got "
                         f"{n} images, probabilities {probabilities.shape}, labels {labels.shape}.")
    if probabilities.shape[1] != len(class_names):
        raise ValueError(f"{len(class_names)} class names for {probabilities.shape[1]} classes.")
    k = min(FIGURE4_LABELS, probabilities.shape[1])
    height, width = prediction_sheet_shape(n, columns=columns, thumb=thumb, cell_width=cell_width,
                                           bar_height=bar_height, k=k)
    cell_height = _sheet_cell_height(thumb, bar_height, k)
    canvas = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    font = _font(bar_height - 3)
    for i in range(n):
        r, c = divmod(i, columns)
        x0, y0 = c * cell_width, r * cell_height
        canvas.paste(_thumbnail(images[i], thumb), (x0 + (cell_width - thumb) // 2, y0 + 2))
        y = y0 + thumb + 4
        caption = _fit(draw, f"true: {class_names[labels[i]]}", cell_width - 8, font)
        draw.text((x0 + 4, y), caption, fill=INK, font=font)
        for j in np.argsort(-probabilities[i], kind="stable")[:k]:
            y += bar_height
            length = int(round(float(probabilities[i, j]) * (cell_width - 8)))
            color = TRUE_BAR if j == labels[i] else OTHER_BAR
            draw.rectangle([x0 + 4, y + 1, x0 + 4 + length, y + bar_height - 2],
                           fill=tuple(int(0.35 * v + 0.65 * 255) for v in color),
                           outline=color)
            value = f"{probabilities[i, j]:.2f}"
            value_width = int(draw.textlength(value, font=font))
            draw.text((x0 + cell_width - 6 - value_width, y + 1), value, fill=INK, font=font)
            name = _fit(draw, str(class_names[j]), cell_width - 16 - value_width, font)
            draw.text((x0 + 6, y + 1), name, fill=INK, font=font)
    _legend(draw, height - bar_height - 2, bar_height, font,
            [(TRUE_BAR, "true label"), (OTHER_BAR, "other top-5 classes; length = probability")])
    return np.asarray(canvas)


def _legend(draw: ImageDraw.ImageDraw, y: int, height: int, font,
            entries: Sequence[tuple[tuple[int, int, int], str]]) -> None:
    """One line of colour swatches, each followed by what it means."""
    x = 4
    for color, text in entries:
        draw.rectangle([x, y + 2, x + height - 4, y + height - 2], fill=color)
        x += height
        draw.text((x, y + 1), text, fill=INK, font=font)
        x += int(draw.textlength(text, font=font)) + 12


def image_grid_shape(rows: int, columns: int, *, thumb: int = 64, gap: int = 4,
                     separator: int = 8, text_height: int = 0) -> tuple[int, int]:
    """(height, width) of `image_grid`'s image; `text_height` > 0 when it has labels."""
    title = text_height + gap if text_height else 0
    return (gap + title + rows * (thumb + text_height + gap),
            gap + columns * (thumb + gap) + separator)


def image_grid(rows: Sequence[Sequence[np.ndarray]], *, thumb: int = 64, gap: int = 4,
               separator: int = 8, column_titles: Sequence[str] | None = None,
               captions: Sequence[Sequence[str]] | None = None,
               text_height: int = 14) -> np.ndarray:
    """Rows of images (uint8 H, W, 3), resized to `thumb`; the first column is set apart by a
    `separator`-wide gap (Figure 4, right: the query, then its neighbours).

    Args:
      column_titles: a title above each column, e.g. "query", "1", "2", ...
      captions: a line under each image (same nesting as `rows`), e.g. its class name.
      text_height: the height of a title or caption line; used only with titles or captions.
    """
    columns = max((len(r) for r in rows), default=0)
    if not rows or columns == 0:
        raise ValueError("image_grid needs at least one row with one image.")
    if captions is not None and [len(c) for c in captions] != [len(r) for r in rows]:
        raise ValueError("captions must hold one line per image, row by row like rows.")
    labelled = column_titles is not None or captions is not None
    text = text_height if labelled else 0
    height, width = image_grid_shape(len(rows), columns, thumb=thumb, gap=gap,
                                     separator=separator, text_height=text)
    canvas = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    font = _font(max(8, text_height - 3))
    top = gap + (text + gap if text else 0)

    def x_of(c: int) -> int:
        return gap + c * (thumb + gap) + (separator if c else 0)

    for c, title in enumerate(column_titles or ()):
        draw.text((x_of(c) + 2, gap), _fit(draw, str(title), thumb - 2, font), fill=INK,
                  font=font)
    for r, row in enumerate(rows):
        y = top + r * (thumb + text + gap)
        for c, image in enumerate(row):
            canvas.paste(_thumbnail(image, thumb), (x_of(c), y))
            if captions is not None:
                draw.text((x_of(c) + 1, y + thumb + 1),
                          _fit(draw, str(captions[r][c]), thumb - 2, font), fill=INK, font=font)
    return np.asarray(canvas)
