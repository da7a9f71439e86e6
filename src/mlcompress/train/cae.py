"""Training the thesis's convolutional autoencoder (nn/cae.py) with the thesis's recipe.

Recipe (the thesis's Keras ``model.fit``): MSE loss on 0..1 pixels, Adam (lr 1e-3, Keras/PyTorch
default betas), 50 epochs, batch 32, 5 % of the images held out for validation, images shuffled
every epoch. Data: CIFAR-10 32x32 RGB images, here the 10,000-image test split shipped as JPEG
copies in ``../shared/data/cifar10`` (see its SOURCES.md; the thesis trained on the original pixels).

One deliberate difference from Keras: ``validation_split`` in Keras takes the *last* 5 % of the
arrays. Our folder is ordered by class, so that would hold out 500 trucks; we instead hold out a
seeded random 5 %.

``train_cae`` is a library function: no printing, progress goes to an optional callback.
"""

from __future__ import annotations

import csv
import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import CorruptDataError, UsageError, require_at_least, require_positive

WEIGHTS_NAME = "cae-thesis"


@dataclass
class CAERecipe:
    """Everything that determines a training run (written next to the weights as JSON)."""

    data: str = "../shared/data/cifar10"
    epochs: int = 50
    batch: int = 32
    lr: float = 1e-3
    val_split: float = 0.05
    seed: int = 0
    threads: int = 1
    #: stop after this many optimiser steps in total (None: run all epochs); for tests and timing
    max_steps: int | None = None


@dataclass
class CAEResult:
    recipe: CAERecipe
    steps: int = 0
    epochs_run: int = 0
    train_images: int = 0
    val_images: int = 0
    train_loss: list = field(default_factory=list)  # mean MSE (0..1 scale) per epoch
    val_loss: list = field(default_factory=list)
    epoch_seconds: list = field(default_factory=list)
    wall_seconds: float = 0.0
    weights: str | None = None
    weights_sha256: str | None = None
    parameters: int = 0
    torch: str = ""

    def to_json(self) -> dict:
        d = asdict(self)
        d["model"] = WEIGHTS_NAME
        return d


def load_image_folder(folder: str | Path, size: int = 32) -> np.ndarray:
    """Every image of a CIFAR-style folder as uint8 N x size x size x 3, in a stable order.

    Uses ``labels.csv`` (column ``path``) when present, else every image file below the folder in
    sorted order. Grey images are replicated to RGB; images of another size are an error.
    """
    from ..image import IMAGE_EXTENSIONS, read_image

    root = Path(folder)
    if not root.is_dir():
        raise UsageError(f"{folder}: no such data folder")
    labels = root / "labels.csv"
    if labels.is_file():
        with labels.open(newline="") as f:
            paths = [root / row["path"] for row in csv.DictReader(f)]
    else:
        paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not paths:
        raise UsageError(f"{folder}: no images found")
    out = np.empty((len(paths), size, size, 3), np.uint8)
    for i, p in enumerate(paths):
        img = read_image(p)
        if img.ndim == 2:
            img = np.repeat(img[:, :, None], 3, axis=2)
        if img.shape != (size, size, 3):
            raise CorruptDataError(f"{p}: expected a {size}x{size} RGB image, got {img.shape}")
        out[i] = img
    return out


def split_indices(n: int, val_split: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded random (train, validation) split of range(n); validation gets round(n*val_split)."""
    if not 0.0 <= val_split < 1.0:
        raise UsageError(f"validation split must be in [0, 1), got {val_split}")
    perm = np.random.default_rng(seed).permutation(n)
    n_val = int(round(n * val_split))
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def _to_tensor(batch_u8: np.ndarray):
    import torch

    return torch.from_numpy(batch_u8).permute(0, 3, 1, 2).float().div_(255.0)


def evaluate(model, images: np.ndarray, batch: int = 256) -> float:
    """Mean MSE (0..1 scale) of the model's reconstructions of uint8 N x H x W x 3 images."""
    import torch

    if len(images) == 0:
        return float("nan")
    total = 0.0
    model.eval()
    with torch.no_grad():
        for i in range(0, len(images), batch):
            x = _to_tensor(images[i : i + batch])
            total += float(torch.nn.functional.mse_loss(model(x), x, reduction="sum"))
    return total / images.size


def train_step(model, optimizer, x) -> float:
    """One optimiser step of MSE on a float N x 3 x H x W batch in 0..1; returns the batch loss."""
    import torch

    model.train()
    optimizer.zero_grad(set_to_none=True)
    loss = torch.nn.functional.mse_loss(model(x), x)
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def save_weights(model, path: str | Path) -> str:
    """Write the model's float32 state dict as safetensors; return the file's SHA-256 (hex)."""
    from safetensors.torch import save

    from ..fileio import write_atomic

    state = {k: v.detach().to("cpu").float().contiguous() for k, v in model.state_dict().items()}
    data = save(state, metadata={"model": WEIGHTS_NAME, "format": "pt"})
    write_atomic(path, data, force=True)
    return hashlib.sha256(data).hexdigest()


def train_cae(
    recipe: CAERecipe,
    out_dir: str | Path | None = None,
    images: np.ndarray | None = None,
    progress: Callable[[str], None] | None = None,
) -> CAEResult:
    """Train the thesis CAE; write ``cae-thesis.safetensors`` and ``cae-thesis.json`` to ``out_dir``.

    ``images`` (uint8 N x 32 x 32 x 3) overrides loading ``recipe.data``. Returns the result with
    per-epoch losses and timings, and the trained module as ``result.model`` (not serialised).
    Deterministic for a given seed, thread count and torch build (same weights hash).
    """
    import torch

    from ..nn.cae import build_cae, count_parameters

    say = progress or (lambda msg: None)
    for flag, value in (("--epochs", recipe.epochs), ("--batch", recipe.batch), ("--threads", recipe.threads),
                        ("--max-steps", recipe.max_steps)):
        require_at_least(flag, value, 1)
    require_positive("--lr", recipe.lr)
    require_at_least("--seed", recipe.seed, 0)
    t_start = time.perf_counter()
    old_threads = torch.get_num_threads()
    torch.set_num_threads(max(1, int(recipe.threads)))
    try:
        if images is None:
            say(f"loading {recipe.data}")
            images = load_image_folder(recipe.data)
        train_idx, val_idx = split_indices(len(images), recipe.val_split, recipe.seed)
        train_imgs, val_imgs = images[train_idx], images[val_idx]
        torch.manual_seed(recipe.seed)
        model = build_cae()
        optimizer = torch.optim.Adam(model.parameters(), lr=recipe.lr)
        rng = np.random.default_rng(recipe.seed + 1)
        result = CAEResult(recipe=recipe, train_images=len(train_imgs), val_images=len(val_imgs),
                           parameters=count_parameters(model), torch=torch.__version__)
        for epoch in range(recipe.epochs):
            t0 = time.perf_counter()
            order = rng.permutation(len(train_imgs))
            total, seen = 0.0, 0
            for i in range(0, len(order), recipe.batch):
                if recipe.max_steps is not None and result.steps >= recipe.max_steps:
                    break
                xb = _to_tensor(train_imgs[order[i : i + recipe.batch]])
                total += train_step(model, optimizer, xb) * len(xb)
                seen += len(xb)
                result.steps += 1
            if seen == 0:
                break
            result.epochs_run += 1
            result.train_loss.append(total / seen)
            result.val_loss.append(evaluate(model, val_imgs))
            result.epoch_seconds.append(time.perf_counter() - t0)
            say(f"epoch {epoch + 1}/{recipe.epochs}: train MSE {result.train_loss[-1]:.6f}, "
                f"val MSE {result.val_loss[-1]:.6f}, {result.epoch_seconds[-1]:.1f} s")
        result.wall_seconds = time.perf_counter() - t_start
        if out_dir is not None:
            out = Path(out_dir)
            out.mkdir(parents=True, exist_ok=True)
            wpath = out / f"{WEIGHTS_NAME}.safetensors"
            result.weights = wpath.name
            result.weights_sha256 = save_weights(model, wpath)
            from ..fileio import write_atomic

            write_atomic(out / f"{WEIGHTS_NAME}.json",
                         (json.dumps(result.to_json(), indent=2) + "\n").encode(), force=True)
        result.model = model  # type: ignore[attr-defined]  (not serialised)
        return result
    finally:
        torch.set_num_threads(old_threads)
