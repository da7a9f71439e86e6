"""The demo behind `make demo`: one photo through the default codec, beside JPEG and AVIF at its size.

Uses scikit-image's astronaut photo (512x512 RGB), so it needs no data set. The default codec
codes it at its default quality; JPEG and AVIF (when the default is not AVIF) are searched to the
setting nearest the same bpp (view.search). It writes, into the output folder:

    astronaut<ext>               the default codec's file
    astronaut.decoded.png        that file decoded
    astronaut.comparison.png     each image full size, and under it a 4x crop of its most
                                 detailed region, labelled with bytes, bpp and PSNR
    astronaut.crops.png          the crops alone (the README's picture)
    index.html, index_files/     the viewer page (view.page) with the original and every codec
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import registry
from .fileio import write_atomic
from .view import compare

#: How much the comparison PNG's crop is enlarged (its side is the image's shorter side / CROP_ZOOM).
CROP_ZOOM = 4


@dataclass
class DemoResult:
    """The measured rows (the original first) and the files written."""

    rows: list[compare.Measured]
    page: Path
    files: list[Path]


def detailed_window(img: np.ndarray, size: int, stride: int = 8) -> tuple[int, int]:
    """(top, left) of the ``size`` x ``size`` window of ``img`` with the most gradient energy (the
    sum of absolute differences between neighbouring pixels): where coding errors show most."""
    grey = img.astype(np.float64).reshape(img.shape[0], img.shape[1], -1).mean(axis=2)
    energy = np.zeros_like(grey)
    energy[:, 1:] += np.abs(np.diff(grey, axis=1))
    energy[1:, :] += np.abs(np.diff(grey, axis=0))
    total = np.pad(energy.cumsum(0).cumsum(1), ((1, 0), (1, 0)))  # summed-area table
    h, w = grey.shape
    best, where = -1.0, (0, 0)
    for y in range(0, max(h - size, 0) + 1, stride):
        for x in range(0, max(w - size, 0) + 1, stride):
            y1, x1 = min(y + size, h), min(x + size, w)
            s = total[y1, x1] - total[y, x1] - total[y1, x] + total[y, x]
            if s > best:
                best, where = s, (y, x)
    return where


def _label(row: compare.Measured) -> str:
    if row.encode_s is None:
        return f"{row.name}: {row.bytes:,} bytes as PNG"
    q = "" if row.quality is None else f" q{row.quality:.4g}"
    return f"{row.name}{q}: {row.bytes:,} bytes, {row.bpp:.3f} bpp, {row.psnr:.2f} dB"


def comparison_image(rows: list[compare.Measured], zoom: int = CROP_ZOOM, full: bool = True) -> np.ndarray:
    """One column per row: a label, the full image with the crop outlined, and below it the crop
    enlarged ``zoom`` times with square pixels (uint8 HxWx3); ``full`` False: the crops only."""
    from PIL import Image, ImageDraw, ImageFont

    from .image import to_pil

    h, w = rows[0].decoded.shape[:2]
    size = max(8, min(h, w) // zoom)
    top, left = detailed_window(rows[0].decoded, size)
    label_h, gap = 22, 8
    col_w = w
    crop_h = size * zoom
    full_h = h + gap if full else 0
    sheet = Image.new("RGB", (len(rows) * col_w + (len(rows) - 1) * gap, label_h + full_h + crop_h), "white")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=15)
    for i, row in enumerate(rows):
        x0 = i * (col_w + gap)
        image = to_pil(row.decoded).convert("RGB")
        crop = image.crop((left, top, left + size, top + size)).resize((size * zoom, size * zoom), Image.NEAREST)
        sheet.paste(crop, (x0 + (col_w - crop.width) // 2, label_h + full_h))
        if full_h:
            sheet.paste(image, (x0, label_h))
            draw.rectangle((x0 + left - 1, label_h + top - 1, x0 + left + size, label_h + top + size),
                           outline=(255, 204, 0), width=2)
        draw.text((x0 + 4, 3), _label(row), fill=(0, 0, 0), font=font)
    return np.asarray(sheet)


def run(out_dir: str | Path = "out", codec: str | None = None, quality=None, force: bool = True) -> DemoResult:
    """Run the demo into ``out_dir`` (see the module docstring); return the rows and the files."""
    from skimage import data as skdata

    png = registry.get("png")
    img = np.ascontiguousarray(skdata.astronaut())
    main_codec = registry.get(codec or registry.default_codec())
    main_codec.require_available()
    main = compare.measure(main_codec, img, None, "the astronaut photo", quality=quality)
    rows = [compare.reference("original", img, len(png.encode(img))), main]
    for name in ("jpeg", "avif"):
        other = registry.get(name)
        if name != main.name and other.available():
            rows.append(compare.measure(other, img, main.bpp, "the astronaut photo"))

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = [out / f"astronaut{main_codec.extension}", out / "astronaut.decoded.png",
             out / "astronaut.comparison.png", out / "astronaut.crops.png"]
    write_atomic(files[0], main.data, force=force)
    write_atomic(files[1], png.encode(main.decoded), force=force)
    write_atomic(files[2], png.encode(comparison_image(rows)), force=force)
    write_atomic(files[3], png.encode(comparison_image(rows, full=False)), force=force)
    intro = (f'<p class="intro">scikit-image\'s astronaut photo (512x512): {main.name} at quality '
             f'{main.quality}, and {", ".join(r.name for r in rows[2:])} at the setting nearest its '
             f'{main.bpp:.3f} bpp. Written by <code>make demo</code>.</p>')
    page = compare.write_view(out / "index.html", f"astronaut: {', '.join(r.name for r in rows[1:])}",
                              "astronaut.png", rows, left=main.name, right=rows[2].name if len(rows) > 2 else "original",
                              target_bpp=main.bpp, force=force, intro=intro)
    return DemoResult(rows, page, files + [page])


def format_table(rows: list[compare.Measured]) -> str:
    """A fixed-width text table of the demo's rows."""
    return compare.format_table(rows)
