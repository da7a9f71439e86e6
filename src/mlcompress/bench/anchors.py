"""Published rate-distortion curves on Kodak (../shared/anchors), drawn beside our measurements.

These are numbers measured elsewhere, read from the files as they are and labelled
"(published)"; they are never mixed into this project's results. Two layouts are read:

- ``compressai-kodak/<stem>.json``: CompressAI's results schema (results.py).
- ``tfc-kodak/<stem>``: tensorflow-compression's text files, ``bpp, value`` per line, one file
  per metric in ``PSNR_sRGB_RGB/<stem>.txt`` and ``MS-SSIM_sRGB_RGB/<stem>.txt``.

An anchor is named ``<folder>/<stem>``, e.g. ``compressai-kodak/vtm`` or
``tfc-kodak/balle-2018-iclr-opt-mse``; a bare stem is looked up in both folders.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from ..errors import UsageError
from .results import Curve, load_compressai
from ..data import shared_dir

#: A readable default: the classic learned models (MSE-trained, CompressAI's CPU runs) and the
#: strongest classical codecs (BPG 4:4:4, VTM intra).
DEFAULT_ANCHORS = (
    "compressai-kodak/compressai-bmshj2018-factorized_mse_cpu",
    "compressai-kodak/compressai-bmshj2018-hyperprior_mse_cpu",
    "compressai-kodak/compressai-mbt2018-mean_mse_cpu",
    "compressai-kodak/bpg_444_x265_ycbcr",
    "compressai-kodak/vtm",
)

_LABELS = {
    "compressai-bmshj2018-factorized_mse_cpu": "bmshj2018-factorized MSE",
    "compressai-bmshj2018-hyperprior_mse_cpu": "bmshj2018-hyperprior MSE",
    "compressai-mbt2018-mean_mse_cpu": "mbt2018-mean MSE",
    "bpg_444_x265_ycbcr": "BPG 4:4:4",
    "vtm": "VTM",
}


def anchors_dir() -> Path:
    """``$MLCOMPRESS_ANCHORS`` or ../shared/anchors beside the repository."""
    env = os.environ.get("MLCOMPRESS_ANCHORS")
    return Path(env) if env else shared_dir() / "anchors"


def _read_tfc(path: Path) -> tuple[list[float], list[float]]:
    bpp, val = [], []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = [p for p in line.replace(",", " ").split() if p]
        if len(parts) >= 2:
            bpp.append(float(parts[0]))
            val.append(float(parts[1]))
    return bpp, val


def _tfc_curve(folder: Path, stem: str) -> Curve | None:
    psnr_file = folder / "PSNR_sRGB_RGB" / f"{stem}.txt"
    ms_file = folder / "MS-SSIM_sRGB_RGB" / f"{stem}.txt"
    if not psnr_file.exists() and not ms_file.exists():
        return None
    cv = Curve(_LABELS.get(stem, stem), f"tensorflow-compression results: {stem}", published=True)
    # The two metrics come from separate files whose rate points can differ: keep two curves'
    # worth of points in one Curve by padding the other metric with NaN.
    if psnr_file.exists():
        b, v = _read_tfc(psnr_file)
        cv.bpp += b
        cv.psnr += v
        cv.ms_ssim += [math.nan] * len(b)
    if ms_file.exists():
        b, v = _read_tfc(ms_file)
        cv.bpp += b
        cv.ms_ssim += v
        cv.psnr += [math.nan] * len(b)
    return cv


def load_anchor(name: str, root: Path | None = None) -> Curve:
    """One published curve by name (see the module docstring); UsageError when not found."""
    root = root or anchors_dir()
    if not root.is_dir():
        raise UsageError(f"anchors folder {root} does not exist (set MLCOMPRESS_ANCHORS)")
    folder, _, stem = name.rpartition("/")
    folders = [folder] if folder else ["compressai-kodak", "tfc-kodak"]
    for f in folders:
        path = root / f / f"{stem}.json"
        if path.exists():
            return load_compressai(path, label=_LABELS.get(stem), published=True)
        cv = _tfc_curve(root / f, stem)
        if cv is not None:
            return cv
    raise UsageError(f"no published anchor {name!r} in {root}; known: {', '.join(list_anchors(root)[:12])}, ...")


def list_anchors(root: Path | None = None) -> list[str]:
    """Every anchor name available under the anchors folder."""
    root = root or anchors_dir()
    names = [f"compressai-kodak/{p.stem}" for p in sorted((root / "compressai-kodak").glob("*.json"))]
    stems = {p.stem for sub in ("PSNR_sRGB_RGB", "MS-SSIM_sRGB_RGB") for p in (root / "tfc-kodak" / sub).glob("*.txt")}
    return names + [f"tfc-kodak/{s}" for s in sorted(stems)]


def load_anchors(spec: bool | list[str] | tuple[str, ...] | None) -> list[Curve]:
    """True: the default set; a list: those names; None/False/empty: none."""
    if not spec:
        return []
    names = DEFAULT_ANCHORS if spec is True else spec
    return [load_anchor(n) for n in names]
