"""Landing a codec near a target size: the quality search behind `mlcompress view` and the demo.

Every lossy codec has one quality knob (``Codec.quality_range``), but its direction and scale
differ: JPEG's quality grows the file, JPEG 2000's compression ratio and JPEG XL's distance shrink
it, and vq's cluster count spans 2-4096. The search measures the real file size at the ends of the
codec's benchmark sweep to learn the direction, bisects (in log space for knobs that span a large
ratio), and keeps the measured setting whose bpp is nearest the target; on a non-integer knob it
stops once a file lands within FLOAT_TOLERANCE of the target. Lossless codecs and codecs without a
knob are encoded once.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from .. import metrics
from ..errors import UsageError

#: A target this much (as a ratio) beyond every bpp a codec reaches is refused as unreachable.
REACH_TOLERANCE = 1.1

#: Bisection steps on a non-integer knob.
FLOAT_STEPS = 14

#: A non-integer knob's bisection stops at a file within this fraction of the target's size: finer
#: steps buy nothing a viewer sees, and a refining encoder (hyperprior-ctx-vr-sga) pays about 20 s
#: for each.
FLOAT_TOLERANCE = 0.01


@dataclass
class Encoded:
    """One measured encoding: the knob, the file bytes and how long the encoder took."""

    quality: float | int | None
    data: bytes
    bpp: float
    encode_s: float


class _Trials:
    """Encodings of one image by one codec, each quality measured once."""

    def __init__(self, codec, img: np.ndarray):
        self.codec, self.img = codec, img
        self.h, self.w = img.shape[:2]
        self.done: dict = {}

    def __call__(self, q) -> Encoded:
        if q not in self.done:
            t0 = time.perf_counter()
            data = self.codec.encode(self.img, q)
            self.done[q] = Encoded(q, data, metrics.bpp(len(data), self.w, self.h), time.perf_counter() - t0)
        return self.done[q]


def _log_scale(lo: float, hi: float) -> bool:
    return lo > 0 and hi / lo >= 8


def _bisect(trials: _Trials, small_q, large_q, target_bpp: float) -> None:
    """Bisect between a quality giving fewer bits than the target (``small_q``) and one giving
    more (``large_q``); every quality tried stays in ``trials``."""
    codec = trials.codec
    logs = _log_scale(min(small_q, large_q), max(small_q, large_q))

    def mid(a, b):
        m = math.sqrt(a * b) if logs else (a + b) / 2
        # a float knob keeps 4 significant digits: a setting a user can type again (-q 47.99)
        return int(round(m)) if codec.quality_integer else float(f"{m:.4g}")

    steps = 64 if codec.quality_integer else FLOAT_STEPS
    for _ in range(steps):
        m = mid(small_q, large_q)
        if m in (small_q, large_q):
            if not codec.quality_integer:
                return
            m = small_q + (1 if large_q > small_q else -1)
            if m == large_q:
                return
        got = trials(m).bpp
        if not codec.quality_integer and abs(math.log(got / target_bpp)) <= math.log1p(FLOAT_TOLERANCE):
            return
        if got <= target_bpp:
            small_q = m
        else:
            large_q = m


def encode_at(codec, img: np.ndarray, quality=None) -> Encoded:
    """Encode ``img`` once at ``quality`` (None: the codec's default), timed."""
    return _Trials(codec, img)(codec.check_quality(quality))


def encode_near_bpp(codec, img: np.ndarray, target_bpp: float | None, what: str = "the image") -> Encoded:
    """Encode ``img`` with ``codec`` at the measured setting whose bpp is nearest ``target_bpp``.

    Lossless codecs, codecs without a knob and ``target_bpp`` None are encoded once at the default.
    Raises UsageError when the target lies more than REACH_TOLERANCE beyond every bpp the codec's
    settings reach, naming the nearest bpp reached (``what`` names the image in that message).
    """
    trials = _Trials(codec, img)
    if codec.lossless or codec.quality_range is None or target_bpp is None:
        return trials(codec.check_quality(None))
    if not (target_bpp > 0 and math.isfinite(target_bpp)):
        raise UsageError(f"target bpp must be a positive number, got {target_bpp}")
    lo, hi = codec.quality_range
    sweep = [codec.check_quality(q) for q in (codec.bench_qualities or (lo, hi))]
    a, b = trials(sweep[0]), trials(sweep[-1])
    small, large = (a, b) if a.bpp <= b.bpp else (b, a)  # small: the setting with fewer bits
    grows = large.quality > small.quality  # whether a larger knob makes larger files
    if target_bpp < small.bpp:  # beyond the sweep: try the knob's end with the fewest bits
        end = codec.check_quality(lo if grows else hi)
        if trials(end).bpp <= target_bpp:
            _bisect(trials, end, small.quality, target_bpp)
    elif target_bpp > large.bpp:  # likewise the end with the most bits
        end = codec.check_quality(hi if grows else lo)
        if trials(end).bpp > target_bpp:
            _bisect(trials, large.quality, end, target_bpp)
    else:
        _bisect(trials, small.quality, large.quality, target_bpp)
    best = min(trials.done.values(), key=lambda e: (abs(math.log(e.bpp / target_bpp)), e.bpp))
    reached = [e.bpp for e in trials.done.values()]
    if target_bpp * REACH_TOLERANCE < min(reached) or target_bpp > max(reached) * REACH_TOLERANCE:
        raise UsageError(f"{codec.name} cannot reach {target_bpp:g} bpp on {what}: the nearest it reaches is "
                         f"{best.bpp:.3f} bpp (quality {best.quality:g})")
    return best
