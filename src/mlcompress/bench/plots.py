"""Rate-distortion plots (PNG and SVG): PSNR vs bpp and MS-SSIM (dB) vs bpp.

Measured curves are solid with markers; published anchors are dashed and labelled "(published)".
Lossless codecs have no curve (infinite PSNR) and appear in the report's tables instead. Drawn
with matplotlib's Agg canvas directly, so no global backend is switched; the SVG carries no date
and fixed ids, so regenerating it from the same numbers gives the same file.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .bdrate import msssim_db
from .results import Curve

#: Published curves get their own muted palette (matplotlib's Dark2), so they never take a measured
#: codec's colour from the tab10 cycle.
ANCHOR_COLOURS = ("#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666")

METRICS = {
    "psnr": ("PSNR-RGB (dB)", "rd-psnr"),
    "ms_ssim": ("MS-SSIM-RGB (dB) = -10 log10(1 - MS-SSIM)", "rd-ms-ssim"),
}


def _xy(cv: Curve, metric: str) -> tuple[np.ndarray, np.ndarray]:
    b, m = cv.points(metric)
    if metric == "ms_ssim":
        m = msssim_db(m)
    keep = np.isfinite(m)
    return b[keep], m[keep]


def plot_rd(curves: list[Curve], anchors: list[Curve], metric: str, out_stem: Path,
            title: str = "Kodak") -> list[Path]:
    """Draw one RD plot; write ``out_stem``.png and .svg and return their paths."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    ylabel, _ = METRICS[metric]
    lossy = [c for c in curves if not c.lossless and len(_xy(c, metric)[0])]
    measured_bpp = [b for c in lossy for b in _xy(c, metric)[0]]
    xmax = min(max(measured_bpp, default=2.0), 4.0) * 1.04
    xmax = max(xmax, 1.0)

    with matplotlib.rc_context({"svg.hashsalt": "mlcompress-bench", "svg.fonttype": "none"}):
        fig = Figure(figsize=(8.5, 6.0), dpi=110)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        markers = "osD^vP*XhH<>"
        ys = []
        for i, cv in enumerate(lossy):
            x, y = _xy(cv, metric)
            ax.plot(x, y, marker=markers[i % len(markers)], markersize=4, linewidth=1.6,
                    color=f"C{i % 10}", label=cv.label)
            ys += list(y[x <= xmax])
        for j, cv in enumerate(anchors):
            x, y = _xy(cv, metric)
            if not len(x):
                continue
            ax.plot(x, y, linestyle="--", linewidth=1.1, marker=".", markersize=3,
                    color=ANCHOR_COLOURS[j % len(ANCHOR_COLOURS)], alpha=0.85, label=cv.label)
            ys += list(y[x <= xmax])
        ax.set_xlim(0, xmax)
        finite = [v for v in ys if math.isfinite(v)]
        if finite:
            lo, hi = min(finite), max(finite)
            pad = max(0.5, 0.04 * (hi - lo))
            ax.set_ylim(lo - pad, hi + pad)
        ax.set_xlabel("bits per pixel (real file bytes)")
        ax.set_ylabel(ylabel)
        ax.set_title(f"{title}: {'PSNR' if metric == 'psnr' else 'MS-SSIM'} vs rate")
        ax.grid(True, alpha=0.3)
        if lossy or anchors:
            ax.legend(loc="lower right", fontsize=8)
        fig.tight_layout()
        out_stem = Path(out_stem)
        png, svg = out_stem.with_suffix(".png"), out_stem.with_suffix(".svg")
        fig.savefig(png, metadata={"Software": None})
        fig.savefig(svg, metadata={"Date": None, "Creator": None})
    return [png, svg]


def plot_all(curves: list[Curve], anchors: list[Curve], out_dir: Path, title: str = "Kodak") -> list[Path]:
    """Both RD plots into ``out_dir``."""
    paths = []
    for metric, (_, stem) in METRICS.items():
        paths += plot_rd(curves, anchors, metric, Path(out_dir) / stem, title)
    return paths
