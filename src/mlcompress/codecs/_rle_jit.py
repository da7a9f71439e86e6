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


#: expand() copies and fills in whole steps of this many bytes where the arrays leave room.
WILD = 16


@njit(cache=True, nogil=True)
def expand(h, body, out):
    """Expand packets (headers ``h``, bodies ``body``) into the start of ``out``; the sizes are
    checked by the caller. Where ``out`` and ``body`` reach far enough, a packet is copied or
    filled in whole 16-byte steps that may overshoot it (the next packets overwrite the excess):
    fixed-size steps vectorise, and short packets skip the byte-by-byte tail. Callers that can
    give ``out`` WILD bytes of slack past the packets' end get that for every packet."""
    o = 0
    p = 0
    n, nb = out.size, body.size
    for t in range(h.size):
        v = np.int64(h[t])
        if v >= 128:
            k = v - 128 + MIN_RUN
            kk = (k + WILD - 1) & -WILD
            c = body[p]
            dst = out[o : o + (kk if o + kk <= n else k)]
            for q in range(dst.size):
                dst[q] = c
            p += 1
        else:
            k = v + 1
            kk = (k + WILD - 1) & -WILD
            m = kk if o + kk <= n and p + kk <= nb else k
            dst = out[o : o + m]
            src = body[p : p + m]
            for q in range(m):
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


# The RGB fast paths move 4 pixels as three little-endian uint32 words (pixel bytes r0 g0 b0 r1 |
# g1 b1 r2 g2 | b2 r3 g3 b3) against one word of each plane: about 5x the byte loops above.


@njit(cache=True, nogil=True)
def interleave3_words(r, g, b, out):
    """Planes (uint32 views ``r``, ``g``, ``b``) to RGB pixels (uint32 view ``out``, 3x as long)."""
    m = np.uint32(0xFF)
    for i in range(r.size):
        x, y, z = r[i], g[i], b[i]
        out[3 * i] = (x & m) | ((y & m) << 8) | ((z & m) << 16) | (((x >> 8) & m) << 24)
        out[3 * i + 1] = ((y >> 8) & m) | (((z >> 8) & m) << 8) | (((x >> 16) & m) << 16) | (((y >> 16) & m) << 24)
        out[3 * i + 2] = ((z >> 16) & m) | ((x >> 24) << 8) | ((y >> 24) << 16) | ((z >> 24) << 24)


@njit(cache=True, nogil=True)
def deinterleave3_words(px, r, g, b):
    """RGB pixels (uint32 view ``px``) to planes (uint32 views ``r``, ``g``, ``b``)."""
    m = np.uint32(0xFF)
    for i in range(r.size):
        u, v, w = px[3 * i], px[3 * i + 1], px[3 * i + 2]
        r[i] = (u & m) | (((u >> 24) & m) << 8) | (((v >> 16) & m) << 16) | (((w >> 8) & m) << 24)
        g[i] = ((u >> 8) & m) | ((v & m) << 8) | (((v >> 24) & m) << 16) | (((w >> 16) & m) << 24)
        b[i] = ((u >> 16) & m) | (((v >> 8) & m) << 8) | ((w & m) << 16) | (((w >> 24) & m) << 24)


@njit(cache=True, nogil=True)
def more_colours_than(px, limit):
    """True when the rows of the uint8 N x C array ``px`` (C <= 4) hold more than ``limit``
    distinct colours. An open-addressing hash set of 4,096 slots; a photograph answers after a
    few hundred pixels."""
    size = 4096
    empty = np.uint64(1) << np.uint64(32)  # no colour key reaches 2**32
    table = np.full(size, empty, np.uint64)
    count = 0
    for t in range(px.shape[0]):
        key = np.uint64(0)
        for ch in range(px.shape[1]):
            key |= np.uint64(px[t, ch]) << np.uint64(8 * ch)
        slot = np.int64(((key * np.uint64(2654435761)) >> np.uint64(16)) & np.uint64(size - 1))
        while True:
            cur = table[slot]
            if cur == key:
                break
            if cur == empty:
                table[slot] = key
                count += 1
                if count > limit:
                    return True
                break
            slot = (slot + 1) & (size - 1)
    return False
