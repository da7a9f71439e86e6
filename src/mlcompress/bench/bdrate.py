"""Bjontegaard delta rate (BD-rate): the average bitrate difference at equal quality, in percent.

Negative means the test codec needs fewer bits than the anchor for the same PSNR (or MS-SSIM).
The curves are interpolated by the ``bjontegaard`` package (log10 rate as a function of quality)
with **PCHIP** (piecewise cubic Hermite, monotone, no overshoot; :data:`METHOD`) and integrated
over a quality interval: the overlap of the two curves' quality ranges, optionally clipped to a
target range such as the issue's 29-35 dB (:data:`TARGET_PSNR`). An interval shorter than
:data:`MIN_OVERLAP` is refused (``n/a (overlap 0.6 dB)``): two curves that meet over a fraction of
a decibel say little about the average rate difference, and a BD-rate printed for "29-35 dB"
from 29.0-29.6 dB misleads; every figure carries the interval it was integrated over.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

METHOD = "pchip"
#: The PSNR range (dB) the issue asks comparisons for.
TARGET_PSNR = (29.0, 35.0)
#: The shortest quality interval (dB of PSNR or of MS-SSIM) a BD-rate is integrated over.
MIN_OVERLAP = 1.0


@dataclass(frozen=True)
class BDRate:
    """A BD-rate in percent and the quality interval it was integrated over. ``percent`` is NaN
    when there is none (``lo``, ``hi`` NaN) or it is shorter than MIN_OVERLAP (``lo``, ``hi`` kept)."""

    percent: float
    lo: float
    hi: float

    @property
    def defined(self) -> bool:
        return math.isfinite(self.percent)

    def range_text(self, unit: str = "dB") -> str:
        return f"{self.lo:.2f}-{self.hi:.2f} {unit}" if self.defined else "no overlap"

    def text(self, unit: str = "dB") -> str:
        """``-23.6 % (29.0-31.2 dB)``, ``n/a (overlap 0.6 dB)`` or ``n/a (no overlap)``: the
        figure with the interval it was integrated over, or why there is none."""
        if self.defined:
            return f"{self.percent:+.1f} % ({self.lo:.1f}-{self.hi:.1f} {unit})"
        if math.isfinite(self.lo):
            return f"n/a (overlap {self.hi - self.lo:.1f} {unit})"
        return "n/a (no overlap)"


NO_OVERLAP = BDRate(math.nan, math.nan, math.nan)


def monotone(rate, quality) -> tuple[np.ndarray, np.ndarray]:
    """The points sorted by rate whose quality strictly rises (an RD curve must be increasing).

    Non-finite and non-positive rates are dropped; a point that is no better than a cheaper one
    is dropped too, since a codec user would never pick it.
    """
    r = np.asarray(rate, float)
    q = np.asarray(quality, float)
    keep = np.isfinite(r) & np.isfinite(q) & (r > 0)
    r, q = r[keep], q[keep]
    order = np.lexsort((-q, r))
    out_r, out_q = [], []
    for i in order:
        if not out_q or q[i] > out_q[-1]:
            if out_r and r[i] == out_r[-1]:
                continue
            out_r.append(r[i])
            out_q.append(q[i])
    return np.array(out_r), np.array(out_q)


def bd_rate(rate_anchor, quality_anchor, rate_test, quality_test,
            quality_range: tuple[float, float] | None = None) -> BDRate:
    """BD-rate of test against anchor (percent), integrated over the overlap of the two curves'
    quality ranges, clipped to ``quality_range`` when given. NaN when the interval is empty or
    shorter than MIN_OVERLAP, or a curve has fewer than two usable points."""
    from bjontegaard import bd_rate as _bd_rate

    ra, qa = monotone(rate_anchor, quality_anchor)
    rt, qt = monotone(rate_test, quality_test)
    if len(qa) < 2 or len(qt) < 2:
        return NO_OVERLAP
    lo, hi = max(qa[0], qt[0]), min(qa[-1], qt[-1])
    if quality_range is not None:
        lo, hi = max(lo, quality_range[0]), min(hi, quality_range[1])
    if not hi > lo:
        return NO_OVERLAP
    if hi - lo < MIN_OVERLAP:
        return BDRate(math.nan, float(lo), float(hi))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, f_anchor, f_test = _bd_rate(ra, qa, rt, qt, METHOD, require_matching_points=False,
                                       interpolators=True, min_overlap=0)
    avg_log_rate = (f_test.integrate(lo, hi) - f_anchor.integrate(lo, hi)) / (hi - lo)
    return BDRate(float((10.0 ** avg_log_rate - 1.0) * 100.0), float(lo), float(hi))


def msssim_db(values) -> np.ndarray:
    """MS-SSIM in decibels, -10 log10(1 - MS-SSIM): the usual axis for BD-rates and plots."""
    v = np.asarray(values, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return -10.0 * np.log10(1.0 - v)
