"""report.html: the benchmark to look at, self-contained, working from file:// with no network.

It holds what report.md holds, drawn for a browser: interactive RD curves (PSNR and MS-SSIM
against bpp; hover a point for codec, quality, bpp, dB and times; toggle codecs), the report's
summary, BD-rate, lossless and speed tables (rendered from report.md's own text, so the two never
disagree), and a per-image viewer (view/page.py): pick an image, two codecs and a target bpp,
and each side shows that codec's decoded image at its measured point nearest the target.

Decoded images are stored beside the page in ``OUT/view/<image>/`` as lossless WebP, for the
first ``view_images`` images and at most ``view_points`` points per codec and image: the points
nearest ``view_targets(view_points)`` (log-spaced over VIEW_BPP bpp). The runner stores them while
it measures (runner.measure_task); a selected cell taken from the cache without its image is
encoded once more here. Files no longer selected are removed, so the folder stays within the cap.
"""

from __future__ import annotations

import hashlib
import html as _html
import math
import re
from pathlib import Path

import numpy as np

from .. import registry
from ..view import page
from .bdrate import msssim_db
from .results import Curve, safe_filename

VIEW_DIR = "view"
#: Per image and codec, at most this many decoded images by default (--view-points).
DEFAULT_VIEW_POINTS = 4
#: The viewer shows the first this many images by default (--view-images).
DEFAULT_VIEW_IMAGES = 4
#: The stored points are the measured ones nearest targets log-spaced over this bpp range.
VIEW_BPP = (0.2, 1.6)
#: report.md sections shown above the charts, and below the viewer.
SECTIONS_BEFORE = ("Summary",)
SECTIONS_AFTER = ("BD-rate", "Lossless codecs", "Speed", "Published anchors", "Failures and skipped codecs",
                  "Method", "Machine and libraries")


# ---------------------------------------------------------------- which decoded images are kept


def view_targets(n: int) -> list[float]:
    """``n`` target bpps log-spaced over VIEW_BPP (one: their geometric middle)."""
    lo, hi = VIEW_BPP
    if n <= 1:
        return [math.sqrt(lo * hi)][:n]
    return [lo * (hi / lo) ** (i / (n - 1)) for i in range(n)]


def select_points(cells: list, n: int) -> list:
    """Of one codec's successful cells on one image, the (at most ``n``) nearest
    ``view_targets(n)``, sorted by bpp; a lossless codec's one cell."""
    ok = [c for c in cells if c.ok and c.bpp > 0]
    if not ok or n <= 0:
        return []
    chosen = {}
    for t in view_targets(n):
        best = min(ok, key=lambda c: (abs(math.log(c.bpp / t)), c.bpp))
        chosen[best.key] = best
    return sorted(chosen.values(), key=lambda c: c.bpp)


def image_folder(image_name: str) -> str:
    return f"{VIEW_DIR}/{safe_filename(Path(image_name).stem)}"


def point_path(cell) -> str:
    """Where a cell's decoded image is stored, relative to the bench folder; the name carries a
    hash of the cell's key (codec, quality, image and weights), so a stale image is never shown."""
    q = "" if cell.quality is None else f"-q{cell.quality:g}"
    digest = hashlib.sha256(cell.key.encode()).hexdigest()[:10]
    return f"{image_folder(cell.image)}/{safe_filename(cell.codec)}{q}-{digest}{page.IMAGE_SUFFIX}"


def store_selected(out_dir: str | Path, cells: list, decoded: dict, n: int) -> None:
    """Store the decoded images (``decoded``: quality -> image) of the cells select_points keeps."""
    for c in select_points(cells, n):
        path = Path(out_dir) / point_path(c)
        if c.quality in decoded and not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            page.store_image(decoded[c.quality], path)


# ---------------------------------------------------------------- report.md as HTML


def _inline(text: str) -> str:
    out = []
    for i, part in enumerate(re.split(r"(`[^`]*`)", text)):
        if i % 2:
            out.append(f"<code>{_html.escape(part[1:-1])}</code>")
            continue
        s = _html.escape(part, quote=False)
        s = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", s)
        s = re.sub(r"\[([^\]]+)\]\(([^)\s]+)\)", lambda m: f'<a href="{_html.escape(m[2])}">{m[1]}</a>', s)
        out.append(s)
    return "".join(out)


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def markdown_html(text: str) -> str:
    """HTML of the markdown report.md is written in: headings, paragraphs, lists, tables, `code`,
    **bold** and links (images are left out: the page draws its own charts)."""
    out: list[str] = []
    blocks = re.split(r"\n\s*\n", text.strip())
    for block in blocks:
        lines = [ln for ln in block.splitlines() if not ln.lstrip().startswith("![")]
        if not lines:
            continue
        head = re.match(r"(#{1,4}) (.*)", lines[0])
        if head and len(lines) == 1:
            level = min(len(head[1]) + 1, 4)  # the page's own title is the h1
            out.append(f"<h{level}>{_inline(head[2])}</h{level}>")
        elif all(ln.startswith("|") for ln in lines) and len(lines) >= 2:
            header, rule, rows = _cells(lines[0]), _cells(lines[1]), [_cells(ln) for ln in lines[2:]]
            right = [r.endswith(":") for r in rule]

            def row(cells, tag):
                num = ' class="num"'
                return "<tr>" + "".join(f"<{tag}{num if i < len(right) and right[i] else ''}>{_inline(c)}</{tag}>"
                                        for i, c in enumerate(cells)) + "</tr>"
            out.append('<div class="table-wrap"><table><thead>' + row(header, "th") + "</thead><tbody>"
                       + "".join(row(r, "td") for r in rows) + "</tbody></table></div>")
        elif all(ln.startswith(("- ", "  ")) for ln in lines):
            items: list[str] = []
            for ln in lines:
                if ln.startswith("- "):
                    items.append(ln[2:])
                else:
                    items[-1] += " " + ln.strip()
            out.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in items) + "</ul>")
        else:
            out.append(f"<p>{_inline(' '.join(ln.strip() for ln in lines))}</p>")
    return "\n".join(out)


def report_sections(text: str) -> dict[str, str]:
    """report.md's ``## `` sections by title (their text after the heading)."""
    parts = re.split(r"^## (.+)$", text, flags=re.M)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def _sections_html(sections: dict[str, str], names) -> str:
    return "\n".join(f'<section class="report" data-section="{_html.escape(n)}"><h2>{_html.escape(n)}</h2>'
                     f"{markdown_html(sections[n])}</section>" for n in names if n in sections)


# ---------------------------------------------------------------- the page's data


def curve_json(c: Curve) -> dict:
    """A curve as the page's JSON: every point with its MS-SSIM in dB too."""
    ms_db = msssim_db(c.ms_ssim) if c.ms_ssim else np.array([])

    def at(values, i):
        return page.json_number(values[i]) if i < len(values) else None

    pts = [{"quality": page.json_quality(c.qualities[i]) if i < len(c.qualities) else None, "bpp": at(c.bpp, i), "psnr": at(c.psnr, i),
            "ms_ssim": at(c.ms_ssim, i), "ms_ssim_db": at(ms_db, i), "encode_s": at(c.encode_s, i),
            "decode_s": at(c.decode_s, i)} for i in range(len(c.bpp))]
    return {"name": c.name, "lossless": c.lossless, "published": c.published, "points": pts}


def _render_missing(plan, by_image: dict, out_dir: Path, progress: bool) -> dict[str, str]:
    """Encode again the selected cells whose decoded image is missing (taken from the cache);
    returns a note per cell key whose file now differs in size from the measured one."""
    from ..image import read_image

    todo = [(img, c) for img, cs in by_image.items() for c in cs if not (out_dir / point_path(c)).exists()]
    notes: dict[str, str] = {}
    if not todo:
        return notes
    from tqdm import tqdm

    paths = {p.name: p for p in plan.images}
    pixels: dict[str, np.ndarray] = {}
    for name, c in tqdm(todo, desc="viewer images", unit="image", disable=not progress, dynamic_ncols=True):
        if name not in pixels:
            pixels.clear()
            pixels[name] = read_image(paths[name])
        codec = registry.get(c.codec)
        data = codec.encode(pixels[name], c.quality)
        if len(data) != c.bytes:
            notes[c.key] = f"encoded again for the viewer: {len(data)} bytes, measured {c.bytes}"
        path = out_dir / point_path(c)
        path.parent.mkdir(parents=True, exist_ok=True)
        page.store_image(codec.decode(data), path)
    return notes


def _prune(out_dir: Path, keep: set[str]) -> None:
    """Remove stored images of the view folder that the page no longer shows."""
    root = out_dir / VIEW_DIR
    if not root.is_dir():
        return
    for f in root.glob(f"*/*{page.IMAGE_SUFFIX}"):
        if f.relative_to(out_dir).as_posix() not in keep:
            f.unlink()
    for d in root.iterdir():
        if d.is_dir() and not any(d.iterdir()):
            d.rmdir()


def write_report_html(out_dir: str | Path, plan, cells: dict, curves: list[Curve], anchors: list[Curve],
                      report_text: str, view_points: int = DEFAULT_VIEW_POINTS,
                      view_images: int = DEFAULT_VIEW_IMAGES, progress: bool = False,
                      title: str | None = None) -> Path:
    """Write ``out_dir/report.html`` (and its viewer images); returns its path. ``cells``: the
    run's cells by key; ``report_text``: report.md's text."""
    from ..image import read_image

    out = Path(out_dir)
    shown = plan.images[:max(view_images, 0)] if view_points > 0 else []
    selected: dict[str, list] = {}
    for p in shown:
        picks = []
        for name, qs in plan.qualities.items():
            got = [cells.get(plan.cell_key(name, q, p)) for q in qs]
            picks += select_points([c for c in got if c is not None], view_points)
        selected[p.name] = picks
    notes = _render_missing(plan, selected, out, progress)

    views, keep = [], set()
    for p in shown:
        img = read_image(p)
        ref_rel = f"{image_folder(p.name)}/original-{plan.image_sha256[p.name][:10]}{page.IMAGE_SUFFIX}"
        if not (out / ref_rel).exists():
            (out / ref_rel).parent.mkdir(parents=True, exist_ok=True)
            page.store_image(img, out / ref_rel)
        keep.add(ref_rel)
        h, w = img.shape[:2]
        nbytes = p.stat().st_size
        entries = [page.Entry("original", [page.Point(None, nbytes, 8 * nbytes / (w * h), math.inf, 1.0, ref_rel)],
                              reference=True)]
        by_codec: dict[str, list] = {}
        for c in selected[p.name]:
            by_codec.setdefault(c.codec, []).append(c)
        for name in plan.qualities:
            pts = []
            for c in by_codec.get(name, []):
                rel = point_path(c)
                keep.add(rel)
                pts.append(page.Point(c.quality, c.bytes, c.bpp, c.psnr, c.ms_ssim, rel, c.encode_s, c.decode_s))
            if pts:
                entries.append(page.Entry(name, pts))
        views.append(page.ImageView(p.name, w, h, entries))
    _prune(out, keep)

    names = list(plan.qualities)
    lossy = [n for n in names if not registry.get(n).lossless] or names
    default = registry.default_codec()
    left = default if default in lossy else lossy[0]
    right = "jpeg" if "jpeg" in names and left != "jpeg" else next((n for n in lossy if n != left), "original")
    sections = report_sections(report_text)
    intro = (f'<p class="intro">{len(plan.images)} images, {len(names)} codecs; the numbers of '
             f'<a href="report.md">report.md</a>, which this page is generated with. bpp counts the real '
             f"file bytes; PSNR is RGB with peak 255.</p>")
    viewer_note = ""
    if views:
        viewer_note = (f'<p class="hint">The viewer keeps at most {view_points} decoded points per codec and image '
                       f"(nearest {', '.join(f'{t:.2g}' for t in view_targets(view_points))} bpp) for the first "
                       f"{len(views)} images, as lossless WebP in <code>{VIEW_DIR}/</code>.</p>")
    if notes:
        viewer_note += "<ul>" + "".join(f"<li>{_html.escape(k)}: {_html.escape(v)}</li>" for k, v in notes.items()) + "</ul>"
    return page.write_page(
        out / "report.html", title or "Benchmark: which codec should I use?", force=True,
        images=views, curves=[curve_json(c) for c in curves + list(anchors)],
        defaults={"image": 0, "left": left, "right": right, "bpp": 0.5}, intro=intro,
        before=_sections_html(sections, SECTIONS_BEFORE),
        after=viewer_note + _sections_html(sections, SECTIONS_AFTER))
