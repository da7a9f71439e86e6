"""Training crops from a folder of images, held in memory (numpy + Pillow; no torch)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import UsageError
from ..fileio import require_folder
from ..image import IMAGE_EXTENSIONS, read_image


def training_files(folder: str | Path) -> list[Path]:
    """The image files of a training folder, sorted by name (other files, e.g. SHA256SUMS, left out)."""
    folder = require_folder(folder, "training data folder")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)


def as_rgb(img: np.ndarray) -> np.ndarray:
    """uint8 H x W x 3 of a read_image array: grey repeated, alpha dropped."""
    if img.ndim == 2:
        return np.repeat(img[:, :, None], 3, axis=2)
    return img[:, :, :3] if img.shape[2] == 4 else img


class CropSampler:
    """Random training crops: downscale by U(lo, hi) (washes out JPEG artefacts), crop, flip.

    ``batch(rng, n)`` -> uint8 n x C x C x 3. All images are decoded once, at construction;
    images smaller than the crop are skipped, and where a crop downscaled by ``lo`` would not fit
    an image, its lower end is raised to what fits (BSDS's 321-px sides: 0.8 for 256-px crops;
    crops up to 192 px keep 0.6). Reproducible given the numpy Generator.
    """

    def __init__(self, folder: str | Path, crop: int, scale: tuple[float, float] = (0.6, 1.0)):
        from PIL import Image

        files = training_files(folder)
        self.crop, self.scale = crop, scale
        self.images, self.lows = [], []
        for p in files:
            img = as_rgb(read_image(p))
            if min(img.shape[:2]) * scale[1] >= crop:
                self.images.append(Image.fromarray(img))
                self.lows.append(max(scale[0], crop / min(img.shape[:2])))
        if not self.images:
            raise UsageError(f"no usable training images (>= {crop} px after downscaling) in {folder}")

    def __len__(self) -> int:
        return len(self.images)

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        from PIL import Image

        i = int(rng.integers(len(self.images)))
        im = self.images[i]
        w, h = im.size
        s = float(rng.uniform(self.lows[i], self.scale[1]))
        side = self.crop / s  # source box side in original pixels
        x0 = float(rng.uniform(0, w - side))
        y0 = float(rng.uniform(0, h - side))
        out = np.asarray(im.resize((self.crop, self.crop), Image.BICUBIC, box=(x0, y0, x0 + side, y0 + side)))
        if rng.integers(2):
            out = out[:, ::-1]
        return out

    def batch(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.stack([self.sample(rng) for _ in range(n)])
