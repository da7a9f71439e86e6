"""`mlcompress view`: one image through several codecs near one bpp, or existing files side by side.

``view_codecs`` encodes an image with each codec at the setting nearest a target bpp
(search.encode_near_bpp), decodes it, measures it, and writes the viewer page with the original
and every decoded image. ``view_files`` shows existing images: the first is the reference the
others' PSNR and MS-SSIM are measured against; bpp counts each file's bytes. The page is
``NAME.html`` with its images in ``NAME_files/`` beside it.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import metrics, registry
from ..errors import Error, UsageError
from . import page, search

#: The target of `mlcompress view IMAGE` without --bpp.
DEFAULT_BPP = 0.5


@dataclass
class Measured:
    """One file of the comparison: its codec (or file name), bytes, metrics and decoded pixels."""

    name: str
    quality: float | int | None
    bytes: int
    bpp: float
    psnr: float
    ms_ssim: float
    encode_s: float | None
    decode_s: float | None
    decoded: np.ndarray
    #: the file's bytes (empty for a reference)
    data: bytes = b""


def default_codecs() -> list[str]:
    """The registry's default codec, then JPEG and AVIF: each once, those available here."""
    names = [registry.default_codec(), "jpeg", "avif"]
    return [n for n in dict.fromkeys(names) if registry.get(n).available()]


def resolve_codecs(names: list[str] | None) -> list:
    """The codec objects of ``names`` (default: default_codecs()); UsageError for an unknown or
    unavailable codec, before any work."""
    names = default_codecs() if names is None else list(dict.fromkeys(names))
    if not names:
        raise UsageError("no codec given")
    codecs = [registry.get(n) for n in names]
    for c in codecs:
        c.require_available()
    return codecs


def measure(codec, img: np.ndarray, target_bpp: float | None, what: str = "the image", quality=None) -> Measured:
    """Encode ``img`` near ``target_bpp`` (None: at ``quality``, by default the codec's default),
    decode it, measure it."""
    if target_bpp is None:
        enc = search.encode_at(codec, img, quality)
    else:
        enc = search.encode_near_bpp(codec, img, target_bpp, what)
    t0 = time.perf_counter()
    out = codec.decode(enc.data)
    dt = time.perf_counter() - t0
    return Measured(codec.name, enc.quality, len(enc.data), enc.bpp, metrics.psnr(img, out),
                    metrics.ms_ssim(img, out), enc.encode_s, dt, out, enc.data)


def reference(name: str, img: np.ndarray, nbytes: int) -> Measured:
    """The original as an entry of its own (PSNR inf and MS-SSIM 1 against itself)."""
    h, w = img.shape[:2]
    return Measured(name, None, nbytes, metrics.bpp(nbytes, w, h), math.inf, 1.0, None, None, img)


def files_dir(html: str | Path) -> Path:
    """Where a page's images go: ``view.html`` -> ``view_files/``."""
    html = Path(html)
    return html.with_name(html.stem + "_files")


def check_output(html: str | Path, force: bool) -> Path:
    """The page's path, refused (UsageError) when it exists without ``force`` or its folder is
    missing: checked before any encoding."""
    html = Path(html)
    if html.suffix.lower() not in (".html", ".htm"):
        raise UsageError(f"the page must be an .html file, got {html}")
    if html.is_dir():
        raise UsageError(f"{html} is a directory")
    if html.exists() and not force:
        raise UsageError(f"{html} exists (use --force to overwrite)")
    if not html.parent.is_dir():
        raise UsageError(f"output folder {html.parent} does not exist")
    return html


def _file_stem(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]", "_", name)


def write_view(html: str | Path, title: str, image_name: str, rows: list[Measured], left: str | None = None,
               right: str | None = None, target_bpp: float | None = None, force: bool = False,
               intro: str = "") -> Path:
    """Store each row's decoded image beside ``html`` and write the viewer page; ``rows[0]`` is the
    reference. Returns the page's path."""
    html = Path(html)
    folder = files_dir(html)
    folder.mkdir(exist_ok=True)
    h, w = rows[0].decoded.shape[:2]
    entries = []
    for i, r in enumerate(rows):
        src = folder / f"{i:02d}-{_file_stem(r.name)}{page.IMAGE_SUFFIX}"
        page.store_image(r.decoded, src)
        point = page.Point(r.quality, r.bytes, r.bpp, r.psnr, r.ms_ssim, f"{folder.name}/{src.name}",
                           r.encode_s, r.decode_s)
        entries.append(page.Entry(r.name, [point], reference=i == 0))
    for old in folder.glob(f"[0-9][0-9]-*{page.IMAGE_SUFFIX}"):  # an earlier page's images (--force)
        if old.name not in {Path(e.points[0].src).name for e in entries}:
            old.unlink()
    names = [r.name for r in rows]
    defaults = {"image": 0, "left": left or names[1 if len(names) > 1 else 0],
                "right": right or names[2 if len(names) > 2 else 0], "bpp": target_bpp}
    view = page.ImageView(image_name, w, h, entries)
    return page.write_page(html, title, force=force, images=[view], defaults=defaults, intro=intro)


def view_codecs(image: str | Path, codecs: list[str] | None = None, target_bpp: float | None = DEFAULT_BPP,
                out: str | Path = "view.html", force: bool = False, progress=None) -> tuple[Path, list[Measured]]:
    """Encode ``image`` with each codec near ``target_bpp`` and write the viewer; returns the page
    and the measured rows (the original first). Every usage error is raised before encoding."""
    from ..image import read_image

    html = check_output(out, force)
    chosen = resolve_codecs(codecs)
    path = Path(image)
    if not path.is_file():
        raise UsageError(f"{image}: {'is a directory' if path.is_dir() else 'no such file'}")
    data = path.read_bytes()
    try:
        img = read_image(data)
    except Error as exc:
        raise type(exc)(f"{image}: {exc}") from None
    rows = [reference("original", img, len(data))]
    for codec in chosen:
        if progress:
            progress(codec.name)
        rows.append(measure(codec, img, target_bpp, path.name))
    intro = (f'<p class="intro">{path.name}, {img.shape[1]}x{img.shape[0]}: each codec at its setting nearest '
             f'{target_bpp:g} bpp (bpp from the real file bytes; PSNR on RGB with peak 255).</p>'
             if target_bpp else "")
    names = [r.name for r in rows]
    page_path = write_view(html, f"{path.name}: {', '.join(names[1:])}", path.name, rows,
                           left=names[1], right=names[2] if len(names) > 2 else names[0],
                           target_bpp=target_bpp, force=force, intro=intro)
    return page_path, rows


def view_files(paths: list[str | Path], out: str | Path = "view.html", force: bool = False) -> tuple[Path, list[Measured]]:
    """Write the viewer for existing image files; the first is the reference for PSNR and MS-SSIM."""
    import mlcompress

    html = check_output(out, force)
    if len(paths) < 2:
        raise UsageError("view compares a file with at least one other, or one image through --codecs")
    rows: list[Measured] = []
    ref = None
    for p in map(Path, paths):
        if not p.is_file():
            raise UsageError(f"{p}: {'is a directory' if p.is_dir() else 'no such file'}")
        data = p.read_bytes()
        try:
            img = mlcompress.decode_any(data)
        except Error as exc:
            raise type(exc)(f"{p}: {exc}") from None
        if ref is None:
            ref = img
            rows.append(reference(p.name, img, len(data)))
            continue
        if img.shape != ref.shape:
            def size(a):
                return f"{a.shape[1]}x{a.shape[0]}" + ("" if a.ndim == 2 else f"x{a.shape[2]}")
            raise UsageError(f"{p} is {size(img)} but {paths[0]} is {size(ref)}; view compares images of one size")
        h, w = img.shape[:2]
        rows.append(Measured(p.name, None, len(data), metrics.bpp(len(data), w, h), metrics.psnr(ref, img),
                             metrics.ms_ssim(ref, img), None, None, img))
    names = [r.name for r in rows]
    if len(set(names)) < len(names):  # two files of one name from different folders
        for i, (r, p) in enumerate(zip(rows, paths)):
            r.name = f"{i + 1}: {Path(p).name}"
    intro = (f'<p class="intro">PSNR and MS-SSIM against {rows[0].name}; bpp from each file\'s bytes.</p>')
    page_path = write_view(html, " vs ".join(r.name for r in rows), rows[0].name, rows,
                           left=rows[0].name, right=rows[1].name, force=force, intro=intro)
    return page_path, rows


def format_table(rows: list[Measured]) -> str:
    """A fixed-width text table of measured rows."""
    width = max([12] + [len(r.name) + 2 for r in rows])
    head = f"{'':<{width}}{'quality':>8}{'bytes':>9}{'bpp':>8}{'PSNR dB':>9}{'MS-SSIM':>9}{'enc s':>8}{'dec s':>8}"
    lines = [head, "-" * len(head)]

    def num(v, spec):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return "n/a"
        return "inf" if isinstance(v, float) and math.isinf(v) else format(v, spec)

    for r in rows:
        q = "-" if r.quality is None else f"{r.quality:.4g}"
        lines.append(f"{r.name:<{width}}{q:>8}{r.bytes:>9}{r.bpp:>8.3f}{num(r.psnr, '.2f'):>9}"
                     f"{num(r.ms_ssim, '.4f'):>9}{num(r.encode_s, '.3f'):>8}{num(r.decode_s, '.3f'):>8}")
    return "\n".join(lines)
