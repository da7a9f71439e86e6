"""The thesis's VQ experiments, re-run as a documented command (``mlcompress vq-experiments``).

For every image: the ``rle`` codec, and for every (n_clusters, n_init) setting of the thesis's
grid (64/10, 128/10, 5/5, 64/5) the codecs VQ (``vq``), VQ_RLE (``vq+rle``) and RLE_VQ
(``rle+vq``). Each row reports the size before (an uncompressed 24-bit BMP, the thesis's
baseline: :func:`metrics.bmp_size`) and after (the real bytes of the encoded file), the
compression rate in percent (:func:`metrics.compression_rate`), PSNR (:func:`metrics.psnr`) of
the decoded image, and wall-clock encode and decode times. docs/VQ_EXPERIMENTS.md is this
module's output.
"""

from __future__ import annotations

import hashlib
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import UsageError

#: The thesis's (n_clusters, n_init) settings.
THESIS_GRID = ((64, 10), (128, 10), (5, 5), (64, 5))
#: Three Kodak images: enough to show the pattern in about a minute.
DEFAULT_IMAGES = ("kodim01", "kodim07", "kodim23")


@dataclass(frozen=True)
class Row:
    image: str
    method: str  # RLE, VQ, VQ_RLE, RLE_VQ
    codec: str
    n_clusters: int | None
    n_init: int | None
    bmp_bytes: int
    file_bytes: int
    rate_percent: float
    psnr: float
    encode_s: float
    decode_s: float
    pixels_sha256: str  # of the decoded image, to compare methods


def parse_grid(text: str) -> tuple[tuple[int, int], ...]:
    """"64/10,5/5" -> ((64, 10), (5, 5)); UsageError on anything else."""
    grid = []
    for item in text.split(","):
        try:
            k, n_init = (int(v) for v in item.split("/"))
        except ValueError:
            raise UsageError(f"grid entries are n_clusters/n_init, e.g. 64/10; got {item!r}") from None
        if k < 2 or n_init < 1:
            raise UsageError(f"grid entry {item!r}: n_clusters must be >= 2 and n_init >= 1")
        grid.append((k, n_init))
    return tuple(grid)


def default_data_dir() -> Path | None:
    """The shared Kodak folder (mlcompress.data.kodak_dir), or None when it is absent."""
    from .data import kodak_dir

    path = kodak_dir()
    return path if path.is_dir() else None


def _find_image(data: Path, name: str) -> Path:
    from .image import IMAGE_EXTENSIONS

    path = data / name
    if path.is_file():
        return path
    for ext in IMAGE_EXTENSIONS:
        if (data / (name + ext)).is_file():
            return data / (name + ext)
    raise UsageError(f"no image {name!r} in {data}")


def _measure(image: str, method: str, codec, quality, img, k, n_init) -> Row:
    from . import decode, metrics

    t0 = time.perf_counter()
    data = codec.encode(img, quality)
    t1 = time.perf_counter()
    out = decode(data)
    t2 = time.perf_counter()
    h, w = img.shape[:2]
    channels = 1 if img.ndim == 2 else img.shape[2]
    bmp = metrics.bmp_size(w, h, channels)
    return Row(image, method, codec.name, k, n_init, bmp, len(data),
               metrics.compression_rate(8 * bmp, 8 * len(data)), metrics.psnr(img, out), t1 - t0, t2 - t1,
               hashlib.sha256(out.tobytes()).hexdigest())


def run_vq_experiments(data: str | Path | None = None, images: list[str] | None = None,
                       grid=THESIS_GRID, progress=None) -> list[Row]:
    """Run the grid on ``images`` (names in ``data``, a folder; defaults above). Returns rows.

    ``progress``, if given, is called with each finished Row.
    """
    from . import registry
    import numpy as np

    from .codecs.pipeline import ChainCodec
    from .codecs.vq import VqCodec
    from .image import read_image

    folder = Path(data) if data is not None else default_data_dir()
    if folder is None:
        raise UsageError("no image folder: pass --data DIR (../shared/data/kodak was not found)")
    if not folder.is_dir():
        raise UsageError(f"{folder} is not a folder")
    rle = registry.get("rle")
    VqCodec().encode(np.arange(48, dtype=np.uint8).reshape(4, 4, 3), 2)  # imports out of the timings
    rows = []
    for name in images or DEFAULT_IMAGES:
        img = read_image(_find_image(folder, name))
        todo = [("RLE", rle, None, None, None)]
        for k, n_init in grid:
            vq = VqCodec(n_init=n_init)
            todo += [
                ("VQ", vq, k, k, n_init),
                ("VQ_RLE", ChainCodec(stages=[vq, rle]), k, k, n_init),
                ("RLE_VQ", ChainCodec(stages=[rle, vq]), k, k, n_init),
            ]
        for method, codec, quality, k, n_init in todo:
            row = _measure(name, method, codec, quality, img, k, n_init)
            rows.append(row)
            if progress:
                progress(row)
    return rows


def format_markdown(rows: list[Row], command: str) -> str:
    """The rows as docs/VQ_EXPERIMENTS.md: how to regenerate, the table, per-setting means."""
    from statistics import mean

    lines = [
        "# The thesis's VQ experiments, re-run",
        "",
        "Generated by `mlcompress vq-experiments`; do not edit by hand. Regenerate from the repository "
        "root (images from `../shared/data/kodak`, or pass `--data DIR`) with:",
        "",
        "```",
        command,
        "```",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
        "times are wall-clock seconds on a shared machine (indicative only).",
        "",
        "Size before = an uncompressed 24-bit BMP of the image (the thesis's baseline); size after = the "
        "bytes of the encoded file (.mlc container included). Compression rate = (1 - after/before) x 100 "
        "(negative: the file grew). RLE_VQ runs RLE first, in the pixel domain; RLE is lossless, so it "
        "gives the pixels and the payload of VQ (docs/PIPELINES.md).",
        "",
        "## Mean over images",
        "",
        "| method | n_clusters | n_init | size before (B) | size after (B) | rate % | PSNR dB | encode s | decode s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    groups: dict = {}
    for r in rows:
        groups.setdefault((r.method, r.n_clusters, r.n_init), []).append(r)
    for (method, k, n_init), rs in groups.items():
        lines.append(
            f"| {method} | {k if k is not None else '-'} | {n_init if n_init is not None else '-'} | "
            f"{mean(r.bmp_bytes for r in rs):,.0f} | {mean(r.file_bytes for r in rs):,.0f} | "
            f"{mean(r.rate_percent for r in rs):.2f} | {_db(mean(r.psnr for r in rs))} | "
            f"{mean(r.encode_s for r in rs):.2f} | {mean(r.decode_s for r in rs):.3f} |"
        )
    lines += ["", "## RLE_VQ against VQ", "",
              "RLE is lossless, so running it first cannot change what VQ sees. Measured per image and setting:", "",
              "| image | n_clusters | n_init | same PSNR | same decoded pixels | RLE_VQ bytes - VQ bytes |",
              "|---|---:|---:|---|---|---:|"]
    by_key = {(r.image, r.method, r.n_clusters, r.n_init): r for r in rows}
    for (image, method, k, n_init), r in by_key.items():
        vq = by_key.get((image, "VQ", k, n_init))
        if method == "RLE_VQ" and vq is not None:
            lines.append(f"| {image} | {k} | {n_init} | {'yes' if r.psnr == vq.psnr else 'NO'} | "
                         f"{'yes' if r.pixels_sha256 == vq.pixels_sha256 else 'NO'} | {r.file_bytes - vq.file_bytes:+d} |")
    lines += [
        "",
        "## Every image",
        "",
        "| image | method | codec | n_clusters | n_init | size before (B) | size after (B) | rate % | PSNR dB | encode s | decode s |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.image} | {r.method} | `{r.codec}` | {r.n_clusters if r.n_clusters is not None else '-'} | "
            f"{r.n_init if r.n_init is not None else '-'} | {r.bmp_bytes:,} | {r.file_bytes:,} | "
            f"{r.rate_percent:.2f} | {_db(r.psnr)} | {r.encode_s:.2f} | {r.decode_s:.3f} |"
        )
    return "\n".join(lines) + "\n"


def _db(value: float) -> str:
    return "inf (lossless)" if value == float("inf") else f"{value:.2f}"
