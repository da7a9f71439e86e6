"""A per-image Wiener post-filter: the encoder fits a small linear filter that maps the decoded
image towards the original, and writes its integer coefficients into the file; the decoder
applies it to its output (an adaptive loop filter, as video codecs have, here outside any loop).

For each output channel c the filter adds to the decoded pixel ``y_c(p)``

    (sum_i k_i f_i(p) + 2^(S-1)) >> S

where the features ``f_i(p)`` are, for every input channel c' and every offset d of one half
of the (2r+1) x (2r+1) window, the symmetric second difference ``y_c'(p+d) + y_c'(p-d) - 2 y_c'(p)``;
then the three centred pixels ``y_c'(p) - 128``; then 1. The image is edge-replicated by r for the
neighbours. Features and coefficients are integers and the sums are bounded, so the filter is
exact integer arithmetic on any machine (docs/CODECS.md, "Post-filter").

The encoder solves the least-squares normal equations once for the largest radius, then for each
radius and shift estimates the rate-distortion cost ``lambda * dMSE + coefficient bits / pixels``
from them, and keeps the cheapest filter only if applying it really lowers that cost.

Both run numpy's BLAS on one thread, like the learned codecs' torch work: the matrices are
small, and a thread per core only fights whatever else runs (13 s instead of 0.5 s for a fit
measured beside a two-process benchmark on this two-core machine).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import CorruptDataError
from .threads import one_blas_thread

RADII = (1, 2, 3)
SHIFTS = (6, 7, 8, 9, 10)
#: largest |coefficient| a file may hold
MAX_COEF = (1 << 20) - 1
#: the decoder sums in float32, which is exact while every partial sum is an integer below 2^24:
#: a filter whose worst-case sum (bound()) reaches it is never written, and refused when read
EXACT_BOUND = 1 << 24
#: images smaller than this are never filtered (the coefficients would cost more than they buy)
MIN_PIXELS = 4096
_ROWS_PER_STRIP_PIXELS = 1 << 16


def offsets(r: int) -> list[tuple[int, int]]:
    """One half of the (2r+1)^2 - 1 neighbour offsets, ring by ring (so radius r's offsets are a
    prefix of radius r+1's)."""
    out = []
    for ring in range(1, r + 1):
        out += [(dy, dx) for dy in range(-ring, ring + 1) for dx in range(-ring, ring + 1)
                if max(abs(dy), abs(dx)) == ring and (dy, dx) > (0, 0)]
    return out


def n_features(r: int) -> int:
    return 3 * len(offsets(r)) + 4


@dataclass(frozen=True)
class Filter:
    radius: int
    shift: int
    #: int64, shape (3, n_features(radius)): one row per output channel
    coefs: np.ndarray


def bound(filt: Filter) -> int:
    """The largest magnitude any partial sum of the filter can reach on 0..255 images: second
    differences reach 510, centred pixels 128, the constant 1, plus the rounding term."""
    n = 3 * len(offsets(filt.radius))
    k = np.abs(filt.coefs.astype(np.int64))
    worst = 510 * k[:, :n].sum(1) + 128 * k[:, n : n + 3].sum(1) + k[:, n + 3] + (1 << (filt.shift - 1))
    return int(worst.max())


def _feature_index(r: int) -> np.ndarray:
    """Columns of radius r's features inside the features of the largest radius."""
    big, small = len(offsets(RADII[-1])), len(offsets(r))
    cols = [c * big + i for c in range(3) for i in range(small)]
    return np.array(cols + [3 * big + j for j in range(4)])


def _features(img: np.ndarray, r: int, r0: int, r1: int) -> np.ndarray:
    """The features of rows r0..r1 of the HxWx3 uint8 ``img``, one row of the result per feature
    (shape (n_features(r), (r1-r0)*W), float32 holding integers of magnitude <= 510, so exact).
    Only these rows and r more on each side are converted (edge-replicated), so the memory
    needed does not grow with the image."""
    h, w, _ = img.shape
    rows = np.clip(np.arange(r0 - r, r1 + r), 0, h - 1)
    cols = np.clip(np.arange(-r, w + r), 0, w - 1)
    padded = np.ascontiguousarray(img[rows][:, cols].transpose(2, 0, 1), dtype=np.float32)
    n = r1 - r0
    out = np.empty((n_features(r), n, w), np.float32)
    i = 0
    for c in range(3):
        plane = padded[c]
        twice = 2 * plane[r : r + n, r : r + w]
        for dy, dx in offsets(r):
            np.add(plane[r + dy : r + n + dy, r + dx : r + w + dx], plane[r - dy : r + n - dy, r - dx : r + w - dx],
                   out=out[i])
            out[i] -= twice
            i += 1
    for c in range(3):
        np.subtract(padded[c, r : r + n, r : r + w], 128, out=out[i])
        i += 1
    out[i] = 1
    return out.reshape(len(out), -1)


def _strips(h: int, w: int):
    step = max(1, _ROWS_PER_STRIP_PIXELS // max(w, 1))
    for r0 in range(0, h, step):
        yield r0, min(h, r0 + step)


def apply(decoded: np.ndarray, filt: Filter | None) -> np.ndarray:
    """The filtered HxWx3 uint8 image (``decoded`` itself when there is no filter).

    The float32 products and sums below are exact: features and coefficients are integers and
    bound(filt) < EXACT_BOUND = 2^24 bounds every partial sum, so the result does not depend on
    the order in which the BLAS adds the terms."""
    if filt is None:
        return decoded
    if bound(filt) >= EXACT_BOUND:
        raise CorruptDataError("post-filter coefficients exceed the decoder's exact-arithmetic bound")
    with one_blas_thread():
        return _apply(decoded, filt)


def _apply(decoded: np.ndarray, filt: Filter) -> np.ndarray:
    h, w, _ = decoded.shape
    k = filt.coefs.astype(np.float32)
    half, scale = np.float32(1 << (filt.shift - 1)), np.float32(1.0 / (1 << filt.shift))
    out = np.empty_like(decoded)
    for r0, r1 in _strips(h, w):
        corr = k @ _features(decoded, filt.radius, r0, r1)  # 3 x pixels
        corr += half
        corr *= scale
        np.floor(corr, out=corr)
        corr += decoded[r0:r1].reshape(-1, 3).T
        out[r0:r1] = np.clip(corr, 0, 255).T.astype(np.uint8).reshape(r1 - r0, w, 3)
    return out


def fit(original: np.ndarray, decoded: np.ndarray, lam: float) -> Filter | None:
    """The filter that most lowers ``lam * MSE + bits per pixel`` (MSE on 0..255 values, mean over
    pixels and channels; bits of the coefficients), or None when no filter lowers it."""
    with one_blas_thread():
        return _fit(original, decoded, lam)


def _fit(original: np.ndarray, decoded: np.ndarray, lam: float) -> Filter | None:
    h, w, _ = decoded.shape
    npx = h * w
    if npx < MIN_PIXELS:
        return None
    rmax = RADII[-1]
    nf = n_features(rmax)
    gram = np.zeros((nf, nf))
    cross = np.zeros((nf, 3))
    for r0, r1 in _strips(h, w):
        f = _features(decoded, rmax, r0, r1).astype(np.float64)
        t = original[r0:r1].reshape(-1, 3).astype(np.float64) - decoded[r0:r1].reshape(-1, 3)
        gram += f @ f.T
        cross += f @ t
    best, best_cost = None, 0.0
    for r in RADII:
        idx = _feature_index(r)
        g, b = gram[np.ix_(idx, idx)], cross[idx]
        ridge = 1e-9 * max(np.trace(g), 1.0) * np.eye(len(idx))
        sol = np.linalg.solve(g + ridge, b)
        for s in SHIFTS:
            k = np.clip(np.rint(sol * (1 << s)), -MAX_COEF, MAX_COEF)
            kf = k / (1 << s)
            dsse = float(np.sum(-2 * kf * b) + np.sum(kf * (g @ kf)))
            filt = Filter(r, s, k.T.astype(np.int64))
            if bound(filt) >= EXACT_BOUND:
                continue
            cost = lam * dsse / (3 * npx) + 8 * len(pack(filt)) / npx
            if cost < best_cost:
                best, best_cost = filt, cost
    if best is None:
        return None
    # the estimate ignores the rounding and clipping: keep the filter only if it really pays
    dsse = _sse(original, _apply(decoded, best)) - _sse(original, decoded)
    real = lam * dsse / (3 * npx) + 8 * len(pack(best)) / npx
    return best if real < 0 else None


def _sse(a: np.ndarray, b: np.ndarray) -> int:
    """Sum of squared differences of two uint8 images, a strip at a time."""
    total = 0
    for r0, r1 in _strips(*a.shape[:2]):
        d = (a[r0:r1].astype(np.int64) - b[r0:r1]).ravel()
        total += int(np.dot(d, d))
    return total


# ---------------------------------------------------------------- serialisation
#
#   u8 radius (0: no filter, nothing follows)
#   u8 shift S; u8 Exp-Golomb order m
#   3 * n_features(radius) coefficients, zig-zag mapped, each an Exp-Golomb code of order m,
#   bits MSB first, the last byte padded with zero bits


def _zigzag(v: int) -> int:
    return 2 * v if v >= 0 else -2 * v - 1


def _eg_bits(u: int, m: int) -> int:
    return 2 * ((u >> m) + 1).bit_length() - 1 + m


def pack(filt: Filter | None) -> bytes:
    if filt is None:
        return b"\x00"
    vals = [_zigzag(int(v)) for v in filt.coefs.ravel()]
    m = min(range(16), key=lambda m: sum(_eg_bits(u, m) for u in vals))
    acc, nbits = 0, 0
    for u in vals:
        q = (u >> m) + 1
        n = q.bit_length()
        code = (q << m) | (u & ((1 << m) - 1))
        width = 2 * n - 1 + m
        acc = (acc << width) | code
        nbits += width
    pad = -nbits % 8
    body = (acc << pad).to_bytes((nbits + pad) // 8, "big")
    return bytes([filt.radius, filt.shift, m]) + body


def unpack(data: bytes, pos: int) -> tuple[Filter | None, int]:
    """(filter or None, position after it) from ``data`` at ``pos``; CorruptDataError when the
    block is malformed or truncated."""
    if pos >= len(data):
        raise CorruptDataError("truncated post-filter block")
    r = data[pos]
    if r == 0:
        return None, pos + 1
    if r not in RADII:
        raise CorruptDataError(f"post-filter radius {r} is not one of {RADII}")
    if pos + 3 > len(data):
        raise CorruptDataError("truncated post-filter block")
    s, m = data[pos + 1], data[pos + 2]
    if s not in SHIFTS or m > 15:
        raise CorruptDataError(f"bad post-filter shift {s} or code parameter {m}")
    count = 3 * n_features(r)
    bits = "".join(f"{b:08b}" for b in data[pos + 3 :])
    i, vals = 0, []
    for _ in range(count):
        zeros = 0
        while i < len(bits) and bits[i] == "0" and zeros <= 24:
            zeros += 1
            i += 1
        if zeros > 24 or i + zeros + 1 + m > len(bits):
            raise CorruptDataError("truncated or oversized post-filter coefficient code")
        q = int(bits[i : i + zeros + 1], 2)
        i += zeros + 1
        low = int(bits[i : i + m], 2) if m else 0
        i += m
        u = ((q - 1) << m) | low
        v = u >> 1 if u % 2 == 0 else -((u + 1) >> 1)
        if abs(v) > MAX_COEF:
            raise CorruptDataError("post-filter coefficient out of range")
        vals.append(v)
    end = pos + 3 + (i + 7) // 8
    if "1" in bits[i : (end - pos - 3) * 8]:
        raise CorruptDataError("post-filter padding bits are not zero")
    filt = Filter(r, s, np.array(vals, dtype=np.int64).reshape(3, -1))
    if bound(filt) >= EXACT_BOUND:
        raise CorruptDataError("post-filter coefficients exceed the decoder's exact-arithmetic bound")
    return filt, end
