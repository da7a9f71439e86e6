"""The comparison page: one HTML file with its data and the viewer inlined, images beside it.

The page works from ``file://`` with no network: the viewer's JavaScript and CSS
(``assets/viewer.js``, ``assets/viewer.css``, written for this project) are inlined, and the
data is a JSON block in the page::

    {"title": ..., "defaults": {"image": 0, "left": "avif", "right": "jpeg", "bpp": 0.5},
     "curves": [{"name", "lossless", "published",
                 "points": [{"quality", "bpp", "psnr", "ms_ssim", "ms_ssim_db", "encode_s", "decode_s"}]}],
     "images": [{"name", "width", "height",
                 "entries": [{"name", "reference", "points": [{"quality", "bytes", "bpp", "psnr",
                              "ms_ssim", "encode_s", "decode_s", "src"}]}]}]}

``src`` is the path of a decoded image relative to the page, stored as lossless WebP (exact
pixels, about a third smaller than PNG). Numbers JSON cannot hold are written as ``null``
(undefined: MS-SSIM of a tiny image, a time not measured) or ``"inf"`` (PSNR of identical images).
"""

from __future__ import annotations

import html
import io
import json
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from ..fileio import write_atomic

#: How decoded images are stored beside the page.
IMAGE_SUFFIX = ".webp"


@dataclass
class Point:
    """One decoded version of an image: its file's numbers and where its pixels are stored."""

    quality: float | int | None
    bytes: int
    bpp: float
    psnr: float | None
    ms_ssim: float | None
    src: str
    encode_s: float | None = None
    decode_s: float | None = None


@dataclass
class Entry:
    """What one side of the viewer can show: a codec's points, or a single file (``reference``:
    the image the others are measured against)."""

    name: str
    points: list[Point]
    reference: bool = False


@dataclass
class ImageView:
    """One image of the viewer: its size and every entry to compare."""

    name: str
    width: int
    height: int
    entries: list[Entry] = field(default_factory=list)


def store_image(img: np.ndarray, path: str | Path) -> Path:
    """Write a uint8 image (HxW, HxWx3 or HxWx4) losslessly as WebP, atomically; returns the path."""
    from ..image import to_pil

    buf = io.BytesIO()
    # lossless; quality 0 / method 1 is the fast end of libwebp's effort (the pixels are exact either way)
    to_pil(img).save(buf, "WEBP", lossless=True, quality=0, method=1, exact=True)
    path = Path(path)
    write_atomic(path, buf.getvalue(), force=True)
    return path


def json_number(v):
    """A float as the page's JSON holds it: None for NaN, "inf" for infinity."""
    if v is None:
        return None
    v = float(v)
    if math.isnan(v):
        return None
    if math.isinf(v):
        return "inf"
    return v


def json_quality(q):
    """A quality knob as the page's JSON holds it: whole numbers as integers."""
    return None if q is None else (int(q) if float(q) == int(q) else float(q))


def point_json(p: Point) -> dict:
    n = json_number
    return {"quality": json_quality(p.quality), "bytes": int(p.bytes), "bpp": n(p.bpp), "psnr": n(p.psnr),
            "ms_ssim": n(p.ms_ssim), "encode_s": n(p.encode_s), "decode_s": n(p.decode_s), "src": p.src}


def images_json(images: list[ImageView]) -> list[dict]:
    return [{"name": im.name, "width": im.width, "height": im.height,
             "entries": [{"name": e.name, "reference": e.reference, "points": [point_json(p) for p in e.points]}
                         for e in im.entries]} for im in images]


def _asset(name: str) -> str:
    return resources.files(__package__).joinpath("assets", name).read_text(encoding="utf-8")


def _script_json(data: dict) -> str:
    """JSON safe inside a <script> element (no "</" can close it)."""
    return json.dumps(data, allow_nan=False, separators=(",", ":")).replace("</", "<\\/")


def render(title: str, images: list[ImageView] | None = None, curves: list[dict] | None = None,
           defaults: dict | None = None, intro: str = "", before: str = "", after: str = "") -> str:
    """The page's HTML. ``intro``, ``before`` (above the charts) and ``after`` (below the viewer)
    are HTML fragments; ``curves`` are dicts as in the module docstring."""
    data = {"title": title, "defaults": defaults or {}, "curves": curves or [],
            "images": images_json(images or [])}
    parts = [
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title>", f"<style>\n{_asset('viewer.css')}</style>", "</head>", "<body>",
        f"<header><h1>{html.escape(title)}</h1>{intro}</header>", "<main>", before,
    ]
    if curves:
        parts.append('<section id="rd"><h2>Rate-distortion curves</h2>'
                     '<p class="hint">Hover a point for its numbers; click a codec to hide or show it.</p>'
                     '<div id="rd-legend" class="legend"></div><div id="rd-charts" class="charts"></div></section>')
    if images:
        parts.append('<section id="viewer-section"><h2>Compare</h2>'
                     '<p class="hint">Drag the divider or move it with the arrow keys (Shift: faster); '
                     '<kbd>S</kbd> swaps the sides; <kbd>0</kbd> fit, <kbd>1</kbd> 1:1, <kbd>2</kbd> 2x, '
                     '<kbd>4</kbd> 4x; drag the image to pan.</p><div id="viewer"></div></section>')
    parts += [after, "</main>", f'<script type="application/json" id="mlc-data">{_script_json(data)}</script>',
              f"<script>\n{_asset('viewer.js')}</script>", "</body>", "</html>", ""]
    return "\n".join(p for p in parts if p)


def write_page(path: str | Path, title: str, force: bool = False, **kw) -> Path:
    """Render the page (``render``'s keywords) and write it atomically; returns its path."""
    path = Path(path)
    write_atomic(path, render(title, **kw).encode("utf-8"), force=force)
    return path
