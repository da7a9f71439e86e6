"""numba kernels of the RLE byte coder in :mod:`mlcompress.codecs.rle` (imported lazily).

They write exactly the bytes of the numpy implementation in ``rle.py``, in one sequential pass
instead of a dozen array passes: a literal packet for every stretch between runs of >= 3 equal
bytes, cut at 128, and run packets cut at 130 with no piece shorter than 3. ``cache=True`` keeps
the machine code in ``__pycache__``, so only the first use on a machine compiles (seconds).

Loops index with uint64 or with range() over array views: a signed index makes numba emit a
negative-index check on every access, which halves the scan and stops LLVM from vectorising
the copies.
"""

from __future__ import annotations

import numpy as np
from numba import njit, uint64

MIN_RUN, MAX_RUN, MAX_LITERAL = 3, 130, 128


@njit(cache=True, nogil=True)
def _next_run(x, start, stop):
    """Start of the first run of >= 3 equal bytes in x[start:stop] (``stop`` when none).

    x[start - 1] must differ from x[start] (no run continues into ``start``); then the first
    triple found is the start of a maximal run.
    """
    i, n = uint64(start), uint64(stop)
    one, two = uint64(1), uint64(2)
    while i + two < n:
        b = x[i + one]
        if b != x[i + two]:  # no triple starts at i or at i + 1
            i += two
        elif x[i] == b:
            return np.int64(i)
        else:
            i += one
    return np.int64(n)


@njit(cache=True, nogil=True)
def _run_end(x, i, n):
    """End of the run of equal bytes that starts at i (at least MIN_RUN long)."""
    j, stop, one = uint64(i + MIN_RUN), uint64(n), uint64(1)
    v = x[i]
    while j < stop and x[j] == v:
        j += one
    return np.int64(j)


@njit(cache=True, nogil=True)
def stream_size(x):
    """Length in bytes of the stream that :func:`encode` writes for the uint8 array ``x``."""
    n = x.size
    m = 0
    body = 0
    lit = 0
    while lit < n:
        i = _next_run(x, lit, n)
        if i > lit:
            m += (i - lit + MAX_LITERAL - 1) // MAX_LITERAL
            body += i - lit
        if i == n:
            break
        j = _run_end(x, i, n)
        npk = (j - i + MAX_RUN - 1) // MAX_RUN
        m += npk
        body += npk
        lit = j
    return 4 + m + body


@njit(cache=True, nogil=True)
def encode(x, out):
    """Write the stream of the uint8 array ``x`` into ``out``; returns (start, end) of it.

    ``out`` must hold 4 + 2 * x.size bytes or more. The packet bodies go from offset
    4 + x.size on and the count and headers just before them, so nothing is moved afterwards.
    """
    n = x.size
    base = 4 + n
    hdr = np.empty(n, np.uint8)
    m = 0
    b = base
    lit = 0
    while lit < n:
        i = _next_run(x, lit, n)
        s = lit
        while s < i:  # literal packets
            k = min(MAX_LITERAL, i - s)
            hdr[m] = k - 1
            m += 1
            dst = out[b : b + k]
            src = x[s : s + k]
            for q in range(k):
                dst[q] = src[q]
            b += k
            s += k
        if i == n:
            break
        v = x[i]
        j = _run_end(x, i, n)
        left = j - i
        while left > 0:  # run packets; the last two are balanced so that none is < MIN_RUN
            k = MAX_RUN if left > MAX_RUN else left
            if left > MAX_RUN and left - MAX_RUN < MIN_RUN:
                k = left - MIN_RUN
            hdr[m] = k - MIN_RUN + 128
            m += 1
            out[b] = v
            b += 1
            left -= k
        lit = j
    start = base - m - 4
    out[start] = (m >> 24) & 0xFF
    out[start + 1] = (m >> 16) & 0xFF
    out[start + 2] = (m >> 8) & 0xFF
    out[start + 3] = m & 0xFF
    dst = out[base - m : base]
    for q in range(m):
        dst[q] = hdr[q]
    return start, b


@njit(cache=True, nogil=True)
def totals(h):
    """(bytes the packets expand to, body bytes they use) for the header bytes ``h``."""
    total = 0
    used = 0
    for t in range(h.size):
        v = np.int64(h[t])
        if v >= 128:
            total += v - 128 + MIN_RUN
            used += 1
        else:
            total += v + 1
            used += v + 1
    return total, used


@njit(cache=True, nogil=True)
def expand(h, body, out):
    """Expand packets (headers ``h``, bodies ``body``) into ``out``; sizes checked by the caller."""
    o = 0
    p = 0
    for t in range(h.size):
        v = np.int64(h[t])
        if v >= 128:
            k = v - 128 + MIN_RUN
            dst = out[o : o + k]
            c = body[p]
            for q in range(k):
                dst[q] = c
            p += 1
        else:
            k = v + 1
            dst = out[o : o + k]
            src = body[p : p + k]
            for q in range(k):
                dst[q] = src[q]
            p += k
        o += k


@njit(cache=True, nogil=True)
def interleave(planes, out):
    """Planes CxN back to pixels NxC (``out``), the inverse of the planar layout's transpose."""
    c, n = planes.shape
    for ch in range(c):
        src = planes[ch]
        for p in range(n):
            out[p, ch] = src[p]
