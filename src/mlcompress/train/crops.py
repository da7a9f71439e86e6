"""Training crops cut on the training device from one uint8 tensor held there (docs/GPU.md).

A lent GPU has no data folder beside it, and a Python crop sampler (train.data.CropSampler:
PIL per crop) would keep it waiting. :func:`pack` puts the training set into one file small
enough to travel with the working tree, a safetensors file ("crops pack")::

    files    uint8 (total bytes,)  the source image files' bytes, concatenated, untouched (the
                                   same pixels CropSampler decodes; BSDS JPEGs: 30 MiB for 432)
    offsets  int64 (K + 1,)        where each file starts and ends in ``files``
    fixed    uint8 (E, C, C, 3)    the fixed evaluation crops train.loop draws (CropSampler with
                                   FIXED_CROPS_SEED), so the fixed-crop curve goes on across runs
    metadata format "mlcompress-crops", version "1", source, names (JSON list), crop, eval_crops

:class:`DeviceCrops` decodes every image once, turns portrait ones to landscape, fits them to the
most common size (center crop, or a bicubic cover-and-crop for other sizes) and holds them as one
uint8 tensor N x H x W x 3 on the device. ``batch(n)`` then cuts n random crops there, as
CropSampler does (downscale by U(lo, hi), crop, horizontal flip), without the CPU: one scale per
batch, drawn from a CPU generator (a Python number: no device sync), and the image, offsets and
flips from a generator on the device. Both generators' states go into the checkpoint, so a run
resumes exactly.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np

FORMAT = "mlcompress-crops"
VERSION = "1"


def pack(folder: str | Path, out: str | Path, crop: int, eval_crops: int = 8, max_mib: float = 40.0,
         force: bool = False) -> dict:
    """Write a crops pack of the training folder ``folder`` to ``out``; -> summary dict.

    Files are taken in name order while they fit in ``max_mib`` (with the fixed crops); the
    summary says how many were left out. Raises UsageError when none fit."""
    import torch
    from safetensors.torch import save

    from ..errors import UsageError, require_at_least, require_positive
    from ..fileio import write_atomic
    from .data import CropSampler, training_files
    from .loop import FIXED_CROPS_SEED

    require_at_least("--crop", crop, 1)
    require_at_least("--eval-crops", eval_crops, 1)
    require_positive("--max-mib", max_mib)
    if Path(out).exists() and not force:
        raise UsageError(f"{out} exists (use --force to overwrite)")
    fixed = CropSampler(folder, crop).batch(np.random.default_rng(FIXED_CROPS_SEED), eval_crops)
    budget = int(max_mib * 2**20) - fixed.nbytes - (64 << 10)  # the header and names, generously
    blobs, names, total = [], [], 0
    files = training_files(folder)
    for p in files:
        data = p.read_bytes()
        if total + len(data) > budget:
            break
        blobs.append(data)
        names.append(p.name)
        total += len(data)
    if not blobs:
        raise UsageError(f"no training image of {folder} fits in --max-mib {max_mib}")
    offsets = np.cumsum([0] + [len(b) for b in blobs], dtype=np.int64)
    tensors = {"files": torch.frombuffer(bytearray(b"".join(blobs)), dtype=torch.uint8),
               "offsets": torch.from_numpy(offsets), "fixed": torch.from_numpy(np.ascontiguousarray(fixed))}
    meta = {"format": FORMAT, "version": VERSION, "source": str(folder), "names": json.dumps(names),
            "crop": str(crop), "eval_crops": str(eval_crops)}
    blob = save(tensors, metadata=meta)
    write_atomic(out, blob, force=force)
    return {"images": len(names), "left_out": len(files) - len(names), "bytes": len(blob), "crop": crop,
            "eval_crops": eval_crops}


def _landscape(img: np.ndarray) -> np.ndarray:
    """A portrait image turned a quarter to landscape (the transforms are convolutional: only the
    mix of horizontal and vertical structure changes, as between photos)."""
    return np.ascontiguousarray(np.rot90(img)) if img.shape[0] > img.shape[1] else img


def _fit(img: np.ndarray, h: int, w: int) -> np.ndarray:
    """``img`` center-cropped to h x w, or (when it is smaller either way) scaled bicubically
    to cover h x w, then center-cropped."""
    ih, iw = img.shape[:2]
    if ih >= h and iw >= w:
        y, x = (ih - h) // 2, (iw - w) // 2
        return img[y : y + h, x : x + w]
    from PIL import Image, ImageOps

    return np.asarray(ImageOps.fit(Image.fromarray(img), (w, h), Image.BICUBIC))


class DeviceCrops:
    """Random training crops cut on ``device`` from a crops pack (see the module docstring).

    ``batch(n)`` -> float n x 3 x crop x crop in 0..1 (uint8 levels, like decoded crops),
    channels_last, on ``device``. ``scale`` is CropSampler's downscaling range, its lower end
    raised where a crop would not fit the images' short side.
    """

    def __init__(self, path: str | Path, crop: int, device: str = "cpu", seed: int = 0,
                 scale: tuple[float, float] = (0.6, 1.0)):
        import torch

        from ..errors import CorruptDataError, UsageError
        from ..image import read_image
        from ..weights import read_safetensors
        from .data import as_rgb

        tensors, meta, _ = read_safetensors(path)
        if meta.get("format") != FORMAT or not {"files", "offsets", "fixed"} <= tensors.keys():
            raise CorruptDataError(f"{path} is not a crops pack (mlcompress crops)")
        if meta.get("version") != VERSION:
            raise CorruptDataError(f"{path}: crops pack version {meta.get('version')} (this reads {VERSION})")
        files, offsets = tensors["files"].numpy(), tensors["offsets"].tolist()
        images = [_landscape(as_rgb(read_image(files[a:b].tobytes()))) for a, b in zip(offsets, offsets[1:])]
        h, w = Counter(im.shape[:2] for im in images).most_common(1)[0][0]
        if min(h, w) < crop:
            raise UsageError(f"--crop {crop} does not fit the pack's {w}x{h} images")
        self.crop, self.device = crop, device
        self.names = json.loads(meta.get("names", "[]"))
        self.source = meta.get("source", str(path))
        self.fixed_crop, self.eval_crops = int(meta["crop"]), int(meta["eval_crops"])
        self._fixed = tensors["fixed"].numpy()
        self.images = torch.from_numpy(np.stack([_fit(im, h, w) for im in images])).to(device)
        self.scale = (max(scale[0], crop / min(h, w)), max(scale[1], crop / min(h, w)))
        self.cpu_gen = torch.Generator().manual_seed(seed)
        self.gen = torch.Generator(device=device).manual_seed(seed)

    def __len__(self) -> int:
        return self.images.shape[0]

    def fixed(self, n: int, crop: int):
        """The pack's fixed evaluation crops (float, on the device); UsageError where the pack
        holds another number or size than the run asks for."""
        from ..errors import UsageError
        from .loop import to_tensor

        if (n, crop) != (self.eval_crops, self.fixed_crop):
            raise UsageError(f"the crops pack holds {self.eval_crops} fixed crops of {self.fixed_crop} px, the run "
                             f"evaluates {n} of {crop} px: pack again with --crop {crop} --eval-crops {n}")
        return to_tensor(self._fixed).to(self.device)

    def batch(self, n: int):
        import torch
        import torch.nn.functional as F

        lo, hi = self.scale
        s = lo + (hi - lo) * float(torch.rand((), generator=self.cpu_gen))
        side = min(round(self.crop / s), *self.images.shape[1:3])
        N, H, W, _ = self.images.shape
        dev, g = self.images.device, self.gen
        idx = torch.randint(N, (n,), generator=g, device=dev)
        y0 = torch.randint(H - side + 1, (n, 1), generator=g, device=dev)
        x0 = torch.randint(W - side + 1, (n, 1), generator=g, device=dev)
        flip = torch.rand((n, 1), generator=g, device=dev) < 0.5
        ar = torch.arange(side, device=dev)
        rows = y0 + ar
        cols = x0 + torch.where(flip, side - 1 - ar, ar)
        x = self.images[idx[:, None, None], rows[:, :, None], cols[:, None, :]]  # n x side x side x 3
        x = x.permute(0, 3, 1, 2).float().div_(255)
        if side != self.crop:
            x = F.interpolate(x, size=(self.crop, self.crop), mode="bicubic", antialias=True, align_corners=False)
            x = x.mul_(255).round_().clamp_(0, 255).div_(255)  # uint8 levels, as a decoded crop has
        return x.contiguous(memory_format=torch.channels_last)

    def rng_state(self) -> dict:
        return {"cpu": self.cpu_gen.get_state(), "device": self.gen.get_state(),
                "device_type": self.images.device.type}

    def set_rng_state(self, state: dict) -> bool:
        """Continue the generators of a checkpoint; False (and the seeds kept) where it was made
        on another kind of device, whose generator state does not fit this one's."""
        if state.get("device_type") != self.images.device.type:
            return False
        self.cpu_gen.set_state(state["cpu"])
        self.gen.set_state(state["device"])
        return True
