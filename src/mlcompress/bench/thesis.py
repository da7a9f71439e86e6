"""The thesis's tables, reproduced beside proper measurements (``mlcompress thesis-tables``).

The thesis this project started from reported PSNRs around 70 dB and compression ratios in the
hundreds. Both come from its measuring protocol, not from the codec:

1. **PSNR formula.** It computed the MSE on pixels scaled to 0..1 and then used peak 255::

       thesis_psnr = 10 log10(255^2 / mse_01),   mse_01 = mse_255 / 255^2
                   = 10 log10(255^2 / mse_255) + 10 log10(255^2)
                   = true PSNR + 20 log10(255) = true PSNR + 48.13 dB

   :func:`thesis_psnr` is that flawed formula, **for reproducing the thesis only**; every
   measurement of this project uses :func:`mlcompress.metrics.psnr`.

2. **Table 1 protocol.** Each image was resized to 32x32, the 32x32 thumbnail went through the
   codec, and the decoded thumbnail saved as PNG was taken as the "compressed" size, against the
   uncompressed (BMP) size of the full image; PSNR compared the two thumbnails.

   Measured properly, the codec compresses the full-resolution image, the compressed size is the
   real file, and PSNR compares the decoded image with the original on 0..255.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import metrics, registry
from ..errors import UsageError, require_at_least
from ..fileio import write_atomic
from ..image import from_pil, read_image, to_pil

#: The thesis's thumbnail side.
THUMB_SIDE = 32
#: What the thesis's formula adds to the true PSNR: 20 log10(255) = 48.1308 dB.
THESIS_PSNR_OFFSET_DB = 20.0 * math.log10(255.0)
#: Codecs of the default tables: two classical codecs and the thesis's autoencoder when available.
DEFAULT_CODECS = ("jpeg", "webp", "cae-thesis")
#: scikit-image's bundled standard photos used beside Kodak (no download needed).
SKIMAGE_PHOTOS = ("astronaut", "coffee", "chelsea")


def thesis_psnr(a: np.ndarray, b: np.ndarray) -> float:
    """THE THESIS'S FLAWED PSNR, for reproduction only: MSE on 0..1 pixels, but peak 255.

    Equals ``metrics.psnr(a, b) + 20*log10(255)`` (48.13 dB too high). Do not use it to measure
    anything; use :func:`mlcompress.metrics.psnr`.
    """
    mse_01 = metrics.mse(a, b) / (255.0 * 255.0)
    return metrics.psnr_from_mse(mse_01, peak=255.0)


def resize(img: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize a uint8 image with Pillow's bicubic filter (antialiased when shrinking)."""
    from PIL import Image

    return from_pil(to_pil(img).resize((width, height), Image.Resampling.BICUBIC))


@dataclass
class ThesisRow:
    """One image through one codec, measured both ways."""

    image: str
    codec: str
    quality: object
    width: int
    height: int
    # the thesis's protocol (32x32 thumbnail)
    thumb_true_psnr: float
    thumb_thesis_psnr: float
    thumb_png_bytes: int
    thesis_baseline_bytes: int
    # measured properly (full resolution)
    true_psnr: float
    thesis_formula_psnr: float
    file_bytes: int

    @property
    def thesis_cr(self) -> float:
        return metrics.compression_ratio(8 * self.thesis_baseline_bytes, 8 * self.thumb_png_bytes)

    @property
    def thesis_rate(self) -> float:
        return metrics.compression_rate(8 * self.thesis_baseline_bytes, 8 * self.thumb_png_bytes)

    @property
    def bpp(self) -> float:
        return metrics.bpp(self.file_bytes, self.width, self.height)

    @property
    def cr(self) -> float:
        return metrics.compression_ratio(self.width * self.height * 3 * 8, 8 * self.file_bytes)


def measure(image: str, img: np.ndarray, codec_name: str, quality=None) -> ThesisRow:
    """Run ``img`` (uint8 HxWx3) through a codec with the thesis's protocol and properly."""
    codec = registry.get(codec_name)
    q = codec.check_quality(quality)
    png = registry.get("png")
    h, w = img.shape[:2]
    thumb = resize(img, THUMB_SIDE, THUMB_SIDE)
    thumb_out = codec.decode(codec.encode(thumb, q))
    data = codec.encode(img, q)
    out = codec.decode(data)
    return ThesisRow(
        image, codec_name, q, w, h,
        thumb_true_psnr=metrics.psnr(thumb, thumb_out), thumb_thesis_psnr=thesis_psnr(thumb, thumb_out),
        thumb_png_bytes=len(png.encode(thumb_out)), thesis_baseline_bytes=metrics.bmp_size(w, h, 3),
        true_psnr=metrics.psnr(img, out), thesis_formula_psnr=thesis_psnr(img, out), file_bytes=len(data),
    )


def thesis_images(data_dir: str | Path | None = None, kodak_images: int = 4) -> tuple[list[tuple[str, np.ndarray]], list[str]]:
    """(name, image) pairs: the first ``kodak_images`` Kodak images and scikit-image's photos.

    Returns notes about what was left out. A ``data_dir`` given explicitly must exist.
    """
    from skimage import data as skdata

    from ..data import kodak_dir as default_data_dir
    from .runner import list_images

    notes: list[str] = []
    out: list[tuple[str, np.ndarray]] = []
    folder = Path(data_dir) if data_dir is not None else default_data_dir()
    if kodak_images > 0:
        if data_dir is None and not folder.is_dir():
            notes.append(f"Kodak left out: {folder} is not present.")
        else:
            for p in list_images(folder, kodak_images):
                out.append((p.name, read_image(p)))
    for name in SKIMAGE_PHOTOS:
        out.append((f"skimage {name}", np.ascontiguousarray(getattr(skdata, name)())))
    return out, notes


def resolve_codecs(codecs: list[str] | None) -> tuple[list[str], list[str]]:
    """The codecs to run and notes about those skipped. Named codecs must exist (UsageError);
    unavailable ones, e.g. cae-thesis before its weights are trained, are skipped with a note."""
    from ..data import REPO_ROOT

    names = list(codecs) if codecs else list(DEFAULT_CODECS)
    known = set(registry.list_codecs())
    use, notes = [], []
    for n in names:
        if n not in known and "+" not in n:
            if codecs:
                registry.get(n)  # raises UsageError naming the known codecs
            notes.append(f"`{n}` skipped: not registered in this installation.")
            continue
        c = registry.get(n)
        if not c.available():
            reason = str(c.unavailable_reason()).replace(f"{REPO_ROOT}/", "")
            notes.append(f"`{n}` skipped: {reason}.")
            continue
        use.append(n)
    if not use:
        raise UsageError("no available codec for the thesis tables")
    return use, notes


def build_tables(codecs: list[str] | None = None, data_dir: str | Path | None = None,
                 kodak_images: int = 4) -> str:
    """The markdown of docs/THESIS_TABLES.md (every number measured now)."""
    from .report import library_versions

    names, notes = resolve_codecs(codecs)
    images, img_notes = thesis_images(data_dir, kodak_images)
    notes += img_notes
    rows = [measure(img_name, img, n) for n in names for img_name, img in images]

    L = ["# The thesis's tables, reproduced and measured properly", "",
         "Generated by `mlcompress thesis-tables`; regenerate it, do not edit it by hand. "
         "Background and derivation: [THESIS.md](THESIS.md).", ""]
    L.append(f"Codecs: {', '.join(f'`{n}` (quality {registry.get(n).check_quality(None)})' for n in names)} "
             "at their default quality. Images: " + ", ".join(n for n, _ in images) + ".")
    for note in notes:
        L.append(f"- {note}")
    L.append("")

    L.append("## 1. Where \"70 dB\" comes from")
    L.append("")
    L.append(f"`thesis_psnr` computes the MSE on pixels scaled to 0..1 and then uses peak 255, so it adds "
             f"20 log10(255) = {THESIS_PSNR_OFFSET_DB:.4f} dB to the true PSNR (`metrics.psnr`, 0..255, peak 255). "
             "Measured on the same decoded images:")
    L.append("")
    L.append("| image | codec | what | true PSNR dB | thesis formula dB | difference dB |")
    L.append("|---|---|---|---:|---:|---:|")
    for r in rows:
        for what, t, f in ((f"{THUMB_SIDE}x{THUMB_SIDE} thumbnail", r.thumb_true_psnr, r.thumb_thesis_psnr),
                           ("full resolution", r.true_psnr, r.thesis_formula_psnr)):
            L.append(f"| {r.image} | {r.codec} | {what} | {_db(t)} | {_db(f)} | {_db(f - t, '.4f')} |")
    L.append("")
    thumbs = [r.thumb_thesis_psnr for r in rows if math.isfinite(r.thumb_thesis_psnr)]
    trues = [r.thumb_true_psnr for r in rows if math.isfinite(r.thumb_true_psnr)]
    if thumbs:
        L.append(f"With the thesis's formula the thumbnails score {min(thumbs):.1f}-{max(thumbs):.1f} dB; "
                 f"their true PSNR is {min(trues):.1f}-{max(trues):.1f} dB.")
        L.append("")

    L.append("## 2. Table 1: the thesis's protocol beside a proper measurement")
    L.append("")
    L.append(f"**Thesis protocol**: resize to {THUMB_SIDE}x{THUMB_SIDE} (Pillow bicubic), encode and decode the "
             "thumbnail, take the decoded thumbnail's PNG file as the \"compressed\" size and the full image's "
             "24-bit BMP size (`metrics.bmp_size`) as the original; CR = original / compressed, rate = "
             "(1 - 1/CR) x 100 %; PSNR by the thesis's formula between the thumbnails.")
    L.append("")
    L.append("**Proper**: encode the full-resolution image, the compressed size is the real file, "
             "CR = raw 24-bit bits / file bits, PSNR by `metrics.psnr` between the decoded and original "
             "full-resolution images.")
    L.append("")
    L.append("| image | size | codec | thesis: PSNR dB | thesis: \"compressed\" bytes | thesis: CR | thesis: rate % "
             "| proper: PSNR dB | proper: file bytes | proper: bpp | proper: CR |")
    L.append("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        L.append(f"| {r.image} | {r.width}x{r.height} | {r.codec} | {_db(r.thumb_thesis_psnr)} | {r.thumb_png_bytes} "
                 f"| {r.thesis_cr:.1f} | {r.thesis_rate:.2f} | {_db(r.true_psnr)} | {r.file_bytes} | {r.bpp:.3f} "
                 f"| {r.cr:.1f} |")
    L.append("")
    L.append("The thesis's compression ratio measures the 32x32 resize (a "
             f"{THUMB_SIDE * THUMB_SIDE}-pixel image stands for the full one) more than the codec, and its PSNR "
             "compares two thumbnails, so neither says how well the full image is kept.")
    L.append("")
    L += kodak_tables(data_dir, names if codecs else None)
    v = library_versions()
    L.append("Libraries: " + ", ".join(f"{k} {v[k]}" for k in ("numpy", "pillow", "imagecodecs", "scikit-image", "torch")
                                       if k in v) + ".")
    L.append("")
    return "\n".join(L)


#: The Kodak images of the thesis's Tables 2 and 3.
THESIS_KODAK = ("kodim01", "kodim02", "kodim06", "kodim07", "kodim08", "kodim15", "kodim23")
#: Codecs measured for Tables 2 and 3 (those available here), each at its default quality.
TABLE23_CODECS = ("rle", "vq", "vq+rle", "rle+vq", "rle+vq+cae", "cae-thesis", "hyperprior",
                  "jpeg", "webp", "jpeg2000", "avif", "jxl", "png")


def kodak_tables(data_dir: str | Path | None = None, codecs: list[str] | None = None) -> list[str]:
    """Markdown lines of section 3: the thesis's seven Kodak images through our codecs (the
    available ones of ``codecs``, by default of TABLE23_CODECS)."""
    from ..view.compare import measure as measure_codec
    from ..data import kodak_dir as default_data_dir

    folder = Path(data_dir) if data_dir else default_data_dir()
    paths = [folder / f"{n}.png" for n in THESIS_KODAK]
    L = ["## 3. Tables 2 and 3: the thesis's Kodak images with our codecs", ""]
    if not all(p.is_file() for p in paths):
        return L + [f"Skipped: the Kodak images {', '.join(THESIS_KODAK)} are not in {folder}.", ""]
    names = [n for n in (codecs or TABLE23_CODECS) if n in registry.list_codecs() and registry.get(n).available()]
    L.append("Each codec at its default quality, full resolution; bytes of the real file, compression rate "
             "against the 24-bit BMP size as the thesis defines it, PSNR on 0..255 with peak 255.")
    L.append("")
    L.append("| image | codec | quality | file bytes | bpp | rate % vs BMP | PSNR dB | MS-SSIM | encode s | decode s |")
    L.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for path in paths:
        img = read_image(path)
        h, w = img.shape[:2]
        for name in names:
            row = measure_codec(registry.get(name), img, None)
            rate = metrics.compression_rate(8 * metrics.bmp_size(w, h, 3), 8 * row.bytes)
            q = "-" if row.quality is None else row.quality
            L.append(f"| {path.stem} | {name} | {q} | {row.bytes} | {row.bpp:.3f} | {rate:.2f} | {_db(row.psnr)} "
                     f"| {row.ms_ssim:.4f} | {row.encode_s:.2f} | {row.decode_s:.2f} |")
    L.append("")
    return L


def _db(v: float, spec: str = ".2f") -> str:
    if math.isnan(v):
        return "-"
    return "inf" if math.isinf(v) else format(v, spec)


def write_tables(out: str | Path = "docs/THESIS_TABLES.md", codecs: list[str] | None = None,
                 data_dir: str | Path | None = None, kodak_images: int = 4) -> Path:
    """Measure and write the thesis tables as markdown; returns the path."""
    require_at_least("--images", kodak_images, 0)
    text = build_tables(codecs, data_dir, kodak_images)
    path = Path(out)
    write_atomic(path, text.encode(), force=True)
    return path
