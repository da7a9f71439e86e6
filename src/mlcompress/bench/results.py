"""Benchmark results: cells averaged into rate-distortion curves, in CompressAI's JSON schema.

One JSON file per codec, ``OUT/json/<codec>.json``::

    {"name": "webp", "description": "...",
     "results": {"bpp": [...], "psnr-rgb": [...], "ms-ssim-rgb": [...],
                 "encoding_time": [...], "decoding_time": [...]},
     "qualities": [...], "lossless": false, "images": 24}

Each list runs over the quality points, every value is the mean over the images (times in seconds
per image). A quality point is kept only when every image succeeded there. ``null`` stands for a
value JSON cannot hold: infinite PSNR (lossless) or an undefined MS-SSIM (images under 161 px).
Plus ``OUT/per_image.csv``: one row per cell.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import registry
from ..fileio import write_atomic


@dataclass
class Curve:
    """A rate-distortion curve: one point per quality, each averaged over the images."""

    name: str
    description: str = ""
    lossless: bool = False
    native: bool = True
    published: bool = False
    qualities: list = field(default_factory=list)
    bpp: list[float] = field(default_factory=list)
    psnr: list[float] = field(default_factory=list)
    ms_ssim: list[float] = field(default_factory=list)
    encode_s: list[float] = field(default_factory=list)
    decode_s: list[float] = field(default_factory=list)
    #: megapixels per second over all images of each point (total pixels / total time)
    encode_mps: list[float] = field(default_factory=list)
    decode_mps: list[float] = field(default_factory=list)
    #: the same from process CPU time (all threads), which other load on the machine does not inflate
    encode_cpu_mps: list[float] = field(default_factory=list)
    decode_cpu_mps: list[float] = field(default_factory=list)
    images: int = 0
    #: qualities left out because an image failed there
    incomplete: list = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.name} (published)" if self.published else self.name

    def points(self, metric: str = "psnr") -> tuple[np.ndarray, np.ndarray]:
        """(bpp, metric) arrays of the finite points, sorted by bpp. metric: psnr or ms_ssim."""
        b = np.asarray(self.bpp, float)
        m = np.asarray(getattr(self, metric), float)
        keep = np.isfinite(b) & np.isfinite(m) & (b > 0)
        order = np.argsort(b[keep], kind="stable")
        return b[keep][order], m[keep][order]

    def overall_mps(self, cpu: bool = False) -> tuple[float, float]:
        """Encode and decode megapixels per second over every point (total px / total s, i.e. the
        harmonic mean of the points, which all hold the same pixels); ``cpu``: from CPU time."""
        def rate(mps):
            v = [x for x in mps if x and math.isfinite(x)]
            return len(v) / sum(1.0 / x for x in v) if v else math.nan
        if cpu:
            return rate(self.encode_cpu_mps), rate(self.decode_cpu_mps)
        return rate(self.encode_mps), rate(self.decode_mps)


def aggregate(plan, cells: dict) -> list[Curve]:
    """One Curve per planned codec from the measured cells (``cells``: key -> runner.Cell)."""
    curves = []
    for name, qs in plan.qualities.items():
        codec = registry.get(name)
        cv = Curve(name, codec.description, codec.lossless, codec.native, images=len(plan.images))
        for q in qs:
            got = [cells.get(plan.cell_key(name, q, p)) for p in plan.images]
            if any(c is None for c in got):
                cv.incomplete.append(q)
                continue
            mp = sum(c.megapixels for c in got)
            enc = sum(c.encode_s for c in got)
            dec = sum(c.decode_s for c in got)
            cv.qualities.append(q)
            cv.bpp.append(float(np.mean([c.bpp for c in got])))
            cv.psnr.append(float(np.mean([c.psnr for c in got])))
            cv.ms_ssim.append(float(np.mean([c.ms_ssim for c in got])))
            cv.encode_s.append(enc / len(got))
            cv.decode_s.append(dec / len(got))
            cv.encode_mps.append(mp / enc if enc > 0 else math.inf)
            cv.decode_mps.append(mp / dec if dec > 0 else math.inf)
            enc_cpu = sum(c.encode_cpu_s for c in got)
            dec_cpu = sum(c.decode_cpu_s for c in got)
            cv.encode_cpu_mps.append(mp / enc_cpu if enc_cpu > 0 else math.nan)
            cv.decode_cpu_mps.append(mp / dec_cpu if dec_cpu > 0 else math.nan)
        curves.append(cv)
    return curves


def _finite(values) -> list:
    return [float(v) if v is not None and math.isfinite(v) else None for v in values]


def to_compressai(cv: Curve) -> dict:
    """The curve in CompressAI's results schema (plus qualities, lossless, images)."""
    return {
        "name": cv.name,
        "description": cv.description,
        "results": {
            "bpp": _finite(cv.bpp),
            "psnr-rgb": _finite(cv.psnr),
            "ms-ssim-rgb": _finite(cv.ms_ssim),
            "encoding_time": _finite(cv.encode_s),
            "decoding_time": _finite(cv.decode_s),
        },
        "qualities": list(cv.qualities),
        "lossless": cv.lossless,
        "images": cv.images,
    }


def safe_filename(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]", "_", name)


def write_results(curves: list[Curve], out_dir: Path) -> list[Path]:
    """Write ``out_dir/json/<codec>.json`` for each curve; returns the paths."""
    folder = Path(out_dir) / "json"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for cv in curves:
        path = folder / f"{safe_filename(cv.name)}.json"
        text = json.dumps(to_compressai(cv), indent=2, allow_nan=False) + "\n"
        write_atomic(path, text.encode(), force=True)
        paths.append(path)
    return paths


CSV_COLUMNS = ("codec", "quality", "image", "width", "height", "bytes", "bpp", "psnr", "ms_ssim",
               "encode_s", "decode_s", "encode_cpu_s", "decode_cpu_s", "encode_mps", "decode_mps", "error")


def write_csv(plan, cells: dict, failures: list, path: Path) -> Path:
    """One row per planned cell (measured, cached or failed), in plan order."""
    failed = {c.key: c for c in failures}
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for name, q, p in plan.keys():
        key = plan.cell_key(name, q, p)
        c = cells.get(key) or failed.get(key)
        if c is None:
            continue
        def num(v, fmt):
            return "" if v is None or math.isnan(v) else ("inf" if math.isinf(v) else format(v, fmt))
        enc_mps = c.megapixels / c.encode_s if c.ok and c.encode_s > 0 else math.nan
        dec_mps = c.megapixels / c.decode_s if c.ok and c.decode_s > 0 else math.nan
        w.writerow([c.codec, "" if q is None else q, c.image, c.width, c.height, c.bytes if c.ok else "",
                    num(c.bpp, ".6f"), num(c.psnr, ".4f"), num(c.ms_ssim, ".6f"), num(c.encode_s, ".6f"),
                    num(c.decode_s, ".6f"), num(c.encode_cpu_s, ".6f"), num(c.decode_cpu_s, ".6f"),
                    num(enc_mps, ".3f"), num(dec_mps, ".3f"), c.error or ""])
    write_atomic(path, buf.getvalue().encode(), force=True)
    return path


def load_compressai(path: str | Path, label: str | None = None, published: bool = False) -> Curve:
    """A Curve from a JSON file in CompressAI's schema (ours or a published one)."""
    d = json.loads(Path(path).read_text())
    r = d["results"]
    n = len(r["bpp"])

    def col(key):
        v = r.get(key)
        return [math.nan if x is None else float(x) for x in v] if v and len(v) == n else [math.nan] * n

    return Curve(label or d.get("name", Path(path).stem), d.get("description", ""),
                 bool(d.get("lossless", False)), published=published, qualities=d.get("qualities", []),
                 bpp=col("bpp"), psnr=col("psnr-rgb"), ms_ssim=col("ms-ssim-rgb"),
                 encode_s=col("encoding_time"), decode_s=col("decoding_time"))
