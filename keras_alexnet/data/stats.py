"""Training-set pixel statistics: the per-pixel mean image and the RGB covariance's eigen-system.

Section 2 subtracts "the mean activity over the training set from each pixel"; Section 4.1 does
PCA on "the set of RGB pixel values throughout the ImageNet training set". All values are on the
0..255 scale. Sums are kept as exact integers so that statistics merged from shards computed in
any order (or resumed runs) are bit-identical to a single pass.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from keras_alexnet.files import atomic_path, write_text_atomic


@dataclasses.dataclass
class PixelSums:
    """Exact integer sums over uint8 RGB images of one fixed size."""

    image_size: int
    count: int = 0
    sum_image: np.ndarray | None = None  # int64 (S, S, 3): per-pixel sums
    sum_rgb: np.ndarray | None = None  # int64 (3,)
    sum_outer: np.ndarray | None = None  # int64 (3, 3): sum of x x^T over all pixels

    def __post_init__(self) -> None:
        s = self.image_size
        if self.sum_image is None:
            self.sum_image = np.zeros((s, s, 3), np.int64)
            self.sum_rgb = np.zeros(3, np.int64)
            self.sum_outer = np.zeros((3, 3), np.int64)

    def add(self, image: np.ndarray) -> None:
        """Adds one uint8 (S, S, 3) image."""
        if image.shape != (self.image_size, self.image_size, 3) or image.dtype != np.uint8:
            raise ValueError(f"Expected a uint8 {(self.image_size, self.image_size, 3)} image, "
                             f"got {image.dtype} {image.shape}.")
        self.count += 1
        self.sum_image += image
        pixels = image.reshape(-1, 3).astype(np.float64)
        # Integer-valued partial sums below 2^53: the fast float64 product is exact.
        self.sum_rgb += pixels.sum(axis=0).astype(np.int64)
        self.sum_outer += (pixels.T @ pixels).astype(np.int64)

    def merge(self, other: PixelSums) -> None:
        if other.image_size != self.image_size:
            raise ValueError(f"Cannot merge sums of {other.image_size}px and {self.image_size}px.")
        self.count += other.count
        self.sum_image += other.sum_image
        self.sum_rgb += other.sum_rgb
        self.sum_outer += other.sum_outer

    def save(self, path: str | Path) -> None:
        # uint32 holds the per-pixel sums of up to 16.8M images exactly, at half the bytes.
        small = self.count * 255 < 2**32
        np.savez_compressed(path, image_size=self.image_size, count=self.count,
                            sum_image=self.sum_image.astype(np.uint32 if small else np.int64),
                            sum_rgb=self.sum_rgb,
                            sum_outer=self.sum_outer)

    @classmethod
    def load(cls, path: str | Path) -> PixelSums:
        with np.load(path) as z:
            return cls(int(z["image_size"]), int(z["count"]), z["sum_image"].astype(np.int64),
                       z["sum_rgb"].astype(np.int64), z["sum_outer"].astype(np.int64))


@dataclasses.dataclass(frozen=True, eq=False)
class PixelStats:
    """Mean image (float32 (S,S,3)), mean RGB, 3x3 covariance and its eigen-system (0..255 scale).

    `eigvecs` has the eigenvectors as columns, ordered by descending eigenvalue.
    """

    mean_image: np.ndarray
    mean_rgb: np.ndarray
    covariance: np.ndarray
    eigvals: np.ndarray
    eigvecs: np.ndarray
    num_images: int

    def to_json_dict(self) -> dict:
        return {
            "scale": "pixel values 0..255",
            "num_images": self.num_images,
            "mean_rgb": self.mean_rgb.tolist(),
            "covariance": self.covariance.tolist(),
            "eigvals": self.eigvals.tolist(),
            "eigvecs_columns": self.eigvecs.tolist(),
        }

    def save(self, directory: str | Path) -> None:
        """Writes mean_image.npy and stats.json atomically."""
        directory = Path(directory)
        with atomic_path(directory / "mean_image.npy", suffix=".tmp.npy") as tmp:
            np.save(tmp, self.mean_image)
        write_text_atomic(directory / "stats.json", json.dumps(self.to_json_dict(), indent=2))

    @classmethod
    def load(cls, directory: str | Path) -> PixelStats:
        directory = Path(directory)
        d = json.loads((directory / "stats.json").read_text())
        return cls(np.load(directory / "mean_image.npy").astype(np.float32),
                   np.asarray(d["mean_rgb"]), np.asarray(d["covariance"]),
                   np.asarray(d["eigvals"]), np.asarray(d["eigvecs_columns"]),
                   int(d["num_images"]))


def eigen(covariance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (descending) and eigenvectors (columns) of a symmetric 3x3 covariance.

    Each eigenvector's sign is fixed (largest-magnitude component positive) so the result is
    reproducible; PCA lighting does not depend on it since alpha is symmetric about 0.
    """
    vals, vecs = np.linalg.eigh(np.asarray(covariance, np.float64))
    order = np.argsort(vals)[::-1]
    vals, vecs = np.clip(vals[order], 0.0, None), vecs[:, order]
    signs = np.sign(vecs[np.argmax(np.abs(vecs), axis=0), np.arange(3)])
    return vals, vecs * signs


def finalize(sums: PixelSums) -> PixelStats:
    """Turns exact sums into statistics; the covariance is the population covariance."""
    if sums.count == 0:
        raise ValueError("No training images: cannot compute the mean image and RGB covariance.")
    n_pix = sums.count * sums.image_size * sums.image_size
    s = [int(v) for v in sums.sum_rgb]
    # N*S2 - s s^T in exact integers, divided once: no cancellation error.
    cov = np.array([[(n_pix * int(sums.sum_outer[i, j]) - s[i] * s[j]) / n_pix**2
                     for j in range(3)] for i in range(3)])
    vals, vecs = eigen(cov)
    return PixelStats(
        mean_image=(sums.sum_image / sums.count).astype(np.float32),
        mean_rgb=np.asarray(s, np.float64) / n_pix,
        covariance=cov, eigvals=vals, eigvecs=vecs, num_images=sums.count,
    )


def stats_of_images(images: np.ndarray) -> PixelStats:
    """Statistics of a uint8 (N, S, S, 3) array (e.g. a sample read by the folder source)."""
    sums = PixelSums(images.shape[1])
    for image in images:
        sums.add(image)
    return finalize(sums)
