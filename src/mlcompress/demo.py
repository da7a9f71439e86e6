"""The demo behind `make demo`: one photo through the default codec, beside JPEG at the same size.

Uses scikit-image's astronaut photo (512x512 RGB), so it needs no data set.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import metrics, registry
from .fileio import write_atomic


@dataclass
class Row:
    codec: str
    quality: object
    bytes: int
    bpp: float
    psnr: float
    ms_ssim: float
    encode_s: float
    decode_s: float


def measure(codec_name: str, img: np.ndarray, quality=None) -> tuple[Row, np.ndarray, bytes]:
    """Encode and decode ``img`` once with timing; the row, the decoded image and the bytes."""
    codec = registry.get(codec_name)
    t0 = time.perf_counter()
    data = codec.encode(img, quality)
    t1 = time.perf_counter()
    out = codec.decode(data)
    t2 = time.perf_counter()
    h, w = img.shape[:2]
    row = Row(codec_name, codec.check_quality(quality), len(data), metrics.bpp(len(data), w, h),
              metrics.psnr(img, out), metrics.ms_ssim(img, out), t1 - t0, t2 - t1)
    return row, out, data


def jpeg_quality_for_size(img: np.ndarray, target_bytes: int) -> int:
    """The JPEG quality whose file size is closest to ``target_bytes`` (bisection, size grows with q)."""
    jpeg = registry.get("jpeg")
    lo, hi = jpeg.quality_range
    lo, hi = int(lo), int(hi)
    sizes: dict[int, int] = {}

    def size(q: int) -> int:
        if q not in sizes:
            sizes[q] = len(jpeg.encode(img, q))
        return sizes[q]

    while hi - lo > 1:
        mid = (lo + hi) // 2
        if size(mid) <= target_bytes:
            lo = mid
        else:
            hi = mid
    return min((lo, hi), key=lambda q: abs(size(q) - target_bytes))


def run(out_dir: str | Path = "out", codec: str | None = None, quality=None, force: bool = True) -> list[Row]:
    """Run the demo, write decoded and side-by-side PNGs into ``out_dir``; return the table rows."""
    from skimage import data as skdata

    png = registry.get("png")
    img = np.ascontiguousarray(skdata.astronaut())
    name = codec or registry.default_codec()
    row, decoded, data = measure(name, img, quality)
    jq = jpeg_quality_for_size(img, len(data))
    jrow, jdecoded, _ = measure("jpeg", img, jq)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / f"astronaut{registry.get(name).extension}", data, force=force)
    write_atomic(out / "astronaut.decoded.png", png.encode(decoded), force=force)
    gap = np.full((img.shape[0], 8, 3), 255, np.uint8)
    side = np.concatenate([img, gap, decoded[..., :3], gap, jdecoded[..., :3]], axis=1)
    write_atomic(out / "astronaut.comparison.png", png.encode(side), force=force)
    return [row, jrow]


def format_table(rows: list[Row]) -> str:
    """A fixed-width text table of demo rows."""
    head = f"{'codec':<12}{'quality':>8}{'bytes':>9}{'bpp':>8}{'PSNR dB':>9}{'MS-SSIM':>9}{'enc s':>8}{'dec s':>8}"
    lines = [head, "-" * len(head)]
    for r in rows:
        q = "-" if r.quality is None else f"{r.quality:g}"
        lines.append(
            f"{r.codec:<12}{q:>8}{r.bytes:>9}{r.bpp:>8.3f}{r.psnr:>9.2f}{r.ms_ssim:>9.4f}"
            f"{r.encode_s:>8.3f}{r.decode_s:>8.3f}"
        )
    return "\n".join(lines)
