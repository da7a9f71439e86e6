"""Lossless run-length coding (the thesis's first method), vectorised with numpy.

The byte coder (:func:`rle_encode_bytes` / :func:`rle_decode_bytes`) is PackBits-style: a
sequence of *literal packets* (1..128 bytes copied as they are) and *run packets* (one byte
repeated 3..130 times), each announced by a one-byte header. Unlike Apple's PackBits, the
headers and the packet bodies are stored in two separate sections, so that a decoder finds every
packet with one cumulative sum instead of walking the stream byte by byte::

    u32 BE   m          number of packets
    m bytes  headers    h < 128: literal packet of h + 1 bytes
                        h >= 128: run packet of h - 128 + 3 copies of one byte
    rest     bodies     the literal bytes, or the one repeated byte, of each packet in order

Runs shorter than 3 bytes are cheaper inside literals (a run of 2 costs 2 bytes either way, and
splitting a literal costs one more header), so the encoder only makes run packets of >= 3.

The ``rle`` codec applies the byte coder to one of three layouts of the image (payload byte 0
records which): 0 interleaved pixels (RGBRGB...), 1 channel planes (RR..GG..BB..), 2 palette
indices (images with <= 256 distinct colours: a palette and the RLE-coded index plane). It
estimates each layout's size from every 8th row (exact sizes for images under 256 KiB) and
writes interleaved unless another layout is estimated at most 90 % of its size (then the smallest
estimate): the planar stream of a photograph is 0-6 % smaller but decodes about 3x slower (many
short packets), while graphics and palette images save far more. The full payload layout is in
docs/CODECS.md.

Speed: with numba installed, inputs of ``JIT_MIN_BYTES`` or more run the compiled kernels of
:mod:`._rle_jit` (one sequential pass; faster than imagecodecs' PackBits in C, the whole codec
included). Smaller inputs, and every input without numba, take the numpy code below, which
writes the same bytes (10-50x slower on a photograph). Measured in docs/CODECS.md.
"""

from __future__ import annotations

import functools
import struct
import sys
import threading

import numpy as np

from .. import container as mlc
from ..errors import CorruptDataError
from ..registry import register
from .base import Encoded, NativeCodec

#: Shortest run stored as a run packet, longest run packet, longest literal packet.
MIN_RUN, MAX_RUN, MAX_LITERAL = 3, 130, 128
_COUNT = struct.Struct(">I")

LAYOUTS = ("interleaved", "planar", "palette")
INTERLEAVED, PLANAR, PALETTE = 0, 1, 2


#: Inputs shorter than this many bytes take the numpy path (same bytes, a few ms): importing
#: numba and loading the compiled kernels costs about 0.8 CPU s once per process.
JIT_MIN_BYTES = 1 << 16


@functools.cache
def _kernels():
    """The numba kernels (module ``_rle_jit``), or None when numba is not installed."""
    try:
        from . import _rle_jit
    except ImportError:
        return None
    return _rle_jit


def _kernels_for(size: int):
    """The kernels for an input of ``size`` bytes, or None where the numpy path is used."""
    return _kernels() if size >= JIT_MIN_BYTES else None


def _split(starts: np.ndarray, lengths: np.ndarray, limit: int, min_last: int = 1):
    """Cut segments (start, length) into packets of at most ``limit``, in order.

    With ``min_last`` > 1 the last two packets of a segment are balanced so that none is shorter
    than ``min_last`` (each segment must be at least ``min_last`` long).
    """
    npk = (lengths + limit - 1) // limit
    total = int(npk.sum())
    seg = np.repeat(np.arange(lengths.size), npk)
    first = np.cumsum(npk) - npk  # index of each segment's first packet
    k = np.arange(total) - first[seg]  # packet number within its segment
    pk_start = starts[seg] + k * limit
    pk_len = np.minimum(limit, lengths[seg] - k * limit)
    if min_last > 1:
        short = np.flatnonzero(pk_len < min_last)  # always a segment's last packet, never its first
        if short.size:
            need = min_last - pk_len[short]
            pk_len[short - 1] -= need
            pk_len[short] += need
            pk_start[short] -= need
    return pk_start, pk_len


def rle_encode_bytes(data) -> bytes:
    """Run-length code a byte string (bytes or a uint8 array) into the two-section stream above."""
    x = np.frombuffer(bytes(data), np.uint8) if not isinstance(data, np.ndarray) else data.ravel()
    if x.dtype != np.uint8:
        raise TypeError("rle_encode_bytes needs bytes or a uint8 array")
    return _encode(x)


#: Work buffers up to this size are kept per thread and reused (fresh pages cost a page fault
#: each, a third of the encoding time of a photograph); larger ones are allocated per call.
SCRATCH_MAX_BYTES = 64 << 20
_scratch_local = threading.local()


def _scratch(n: int) -> np.ndarray:
    """A uint8 work array of ``n`` bytes (its contents are garbage; valid until the next call)."""
    if n > SCRATCH_MAX_BYTES:
        return np.empty(n, np.uint8)
    buf = getattr(_scratch_local, "buf", None)
    if buf is None or buf.size < n:
        buf = _scratch_local.buf = np.empty(max(n, 1 << 20), np.uint8)
    return buf[:n]


def _encode(x: np.ndarray, prefix: bytes = b"") -> bytes:
    """``prefix`` + the stream of the uint8 array ``x`` (compiled kernel when there is one)."""
    x = np.ascontiguousarray(x.reshape(-1))
    k = _kernels_for(x.size)
    if k is None:
        return prefix + _encode_numpy(x)
    p = len(prefix)
    out = _scratch(p + 4 + 2 * x.size)
    start, end = k.encode(x, out[p:])  # the stream is out[p + start : p + end]
    out[start : start + p] = np.frombuffer(prefix, np.uint8)
    return out[start : p + end].tobytes()


def _encode_numpy(x: np.ndarray) -> bytes:
    """The stream of the uint8 array ``x`` with array operations (the fallback without numba)."""
    n = x.size
    if n == 0:
        return _COUNT.pack(0)
    run_starts = np.concatenate(([0], np.flatnonzero(x[1:] != x[:-1]) + 1))
    run_lens = np.diff(np.append(run_starts, n))
    long = run_lens >= MIN_RUN

    # run packets: every run of >= MIN_RUN, cut at MAX_RUN
    r_start, r_len = _split(run_starts[long], run_lens[long], MAX_RUN, MIN_RUN)
    # literal packets: maximal stretches of consecutive short runs, cut at MAX_LITERAL
    short = np.flatnonzero(~long)
    if short.size:
        new = np.ones(short.size, bool)
        new[1:] = short[1:] != short[:-1] + 1
        firsts = np.flatnonzero(new)
        l_seg_start = run_starts[short[firsts]]
        l_seg_len = np.add.reduceat(run_lens[short], firsts)
        l_start, l_len = _split(l_seg_start, l_seg_len, MAX_LITERAL)
    else:
        l_start = l_len = np.zeros(0, np.int64)

    starts = np.concatenate((l_start, r_start))
    lens = np.concatenate((l_len, r_len))
    is_run = np.concatenate((np.zeros(l_start.size, bool), np.ones(r_start.size, bool)))
    order = np.argsort(starts, kind="stable")
    lens, is_run = lens[order], is_run[order]
    headers = np.where(is_run, lens - MIN_RUN + 128, lens - 1).astype(np.uint8)

    keep = np.repeat(~long, run_lens)  # every byte of a literal
    keep[r_start] = True  # the first byte of every run packet
    return _COUNT.pack(headers.size) + headers.tobytes() + x[keep].tobytes()


def rle_decode_bytes(data: bytes, size: int, offset: int = 0, out: np.ndarray | None = None) -> np.ndarray:
    """Decode a stream of :func:`rle_encode_bytes` that must expand to exactly ``size`` bytes.

    ``data[offset:]`` must hold the stream and nothing else. Returns a uint8 array of ``size``
    (the first ``size`` bytes of ``out``, when given and the compiled kernels decode it).
    Raises CorruptDataError on a truncated or inconsistent stream, before allocating the output.
    """
    buf = memoryview(data)[offset:]
    if len(buf) < _COUNT.size:
        raise CorruptDataError("RLE stream truncated (no packet count)")
    (m,) = _COUNT.unpack_from(buf)
    if m > len(buf) - _COUNT.size:
        raise CorruptDataError(f"RLE stream declares {m} packets but holds only {len(buf) - 4} bytes")
    body = np.frombuffer(buf, np.uint8, offset=_COUNT.size + m)
    k = _kernels_for(size)
    if k is not None:
        h = np.frombuffer(buf, np.uint8, m, _COUNT.size)
        total, body_len = k.totals(h)
        _check_sizes(total, size, body_len, body.size)
        out = np.empty(size, np.uint8) if out is None else out
        k.expand(h, body, out)
        return out
    h = np.frombuffer(buf, np.uint8, m, _COUNT.size).astype(np.int64)
    is_run = h >= 128
    out_len = np.where(is_run, h - 128 + MIN_RUN, h + 1)
    used = np.where(is_run, 1, out_len)
    _check_sizes(int(out_len.sum()), size, int(used.sum()), body.size)
    counts = np.ones(body.size, np.int64)
    body_at = np.cumsum(used) - used  # where each packet's body starts
    counts[body_at[is_run]] = out_len[is_run]
    return np.repeat(body, counts)


def _check_sizes(total: int, size: int, body_len: int, body_size: int) -> None:
    """Raise CorruptDataError unless the packets expand to ``size`` bytes and use every body byte."""
    if total != size:
        kind = "overruns" if total > size else "underruns"
        raise CorruptDataError(f"RLE stream {kind} the image: {total} bytes for {size} expected")
    if body_len != body_size:
        what = "truncated" if body_len > body_size else "followed by stray bytes"
        raise CorruptDataError(f"RLE packet bodies {what}: {body_len} bytes declared, {body_size} present")


def _palette(hwc: np.ndarray):
    """(palette kxC uint8, index plane HxW uint8) when the image has <= 256 colours, else None."""
    h, w, c = hwc.shape
    flat = hwc.reshape(-1, c)
    k = _kernels_for(hwc.size)

    def keys_of(px):
        keys = np.zeros(px.shape[0], np.uint32)
        for i in range(c):
            keys |= px[:, i].astype(np.uint32) << np.uint32(8 * i)
        return keys

    if k is not None:
        if k.more_colours_than(flat, 256):  # stops at the 257th colour: microseconds on a photograph
            return None
    else:
        for probe in (4096, 65536):  # cheap early noes for photographs: a sample has > 256 colours
            if np.unique(keys_of(flat[:: max(1, flat.shape[0] // probe)])).size > 256:
                return None
    keys = keys_of(flat)
    colours, index = np.unique(keys, return_inverse=True)
    if colours.size > 256:
        return None
    pal = np.stack([(colours >> np.uint32(8 * i)) & 0xFF for i in range(c)], axis=1).astype(np.uint8)
    return pal, index.astype(np.uint8).reshape(h, w)


def _words_ok(c: int, n: int) -> bool:
    """Whether the kernels' 4-pixels-per-3-words RGB paths apply (n pixels, C channels)."""
    return c == 3 and n % 4 == 0 and sys.byteorder == "little"


def _planar(hwc: np.ndarray) -> np.ndarray:
    """The CxHxW planes of a uint8 HxWxC image (C-contiguous)."""
    h, w, c = hwc.shape
    k = _kernels_for(hwc.size)
    if k is None or not _words_ok(c, h * w):
        return np.ascontiguousarray(hwc.transpose(2, 0, 1))
    out = np.empty((c, h, w), np.uint8)
    r, g, b = (out[i].reshape(-1).view(np.uint32) for i in range(3))
    k.deinterleave3_words(np.ascontiguousarray(hwc).reshape(-1).view(np.uint32), r, g, b)
    return out


def _interleave(planes: np.ndarray, k) -> np.ndarray:
    """Pixels NxC from the C-contiguous planes CxN (the kernels ``k``)."""
    c, n = planes.shape
    out = np.empty((n, c), np.uint8)
    if _words_ok(c, n):
        k.interleave3_words(*(planes[i].view(np.uint32) for i in range(3)), out.reshape(-1).view(np.uint32))
    else:
        k.interleave(planes, out)
    return out


def _layouts(hwc: np.ndarray) -> list[tuple[str, bytes, np.ndarray, object]]:
    """(layout, payload bytes before the RLE stream, function -> array to code, function of a row
    step -> the array to code for every step-th image row) of every applicable layout. The planar
    array is only made when asked for."""
    out = [("interleaved", bytes([INTERLEAVED]), lambda: hwc, lambda step: hwc[::step])]
    if hwc.shape[2] > 1:
        out.append(("planar", bytes([PLANAR]), lambda: _planar(hwc), lambda step: _planar(hwc[::step])))
        pal = _palette(hwc)
        if pal is not None:
            colours, index = pal
            out.append(("palette", bytes([PALETTE, colours.shape[0] - 1]) + colours.tobytes(), lambda: index,
                        lambda step: index[::step]))
    return out


#: Layout sizes are estimated on every SAMPLE_STEP-th row of images of SAMPLE_MIN_BYTES or more
#: (exact below). On the 24 Kodak photos the estimated saving of planar over interleaved is within
#: 0.4 points of the true one (docs/CODECS.md).
SAMPLE_STEP, SAMPLE_MIN_BYTES = 8, 1 << 18

#: A layout other than interleaved is chosen only when its estimated size is at most this
#: fraction of the interleaved one: on photographs the planar stream is 0-5 % smaller but has
#: 3-8x more (short) packets, which costs about 3x the decoding time, so a few percent of size is
#: not worth it; flat graphics and palette images save far more than 10 %.
SWITCH_RATIO = 0.9


def _sample_step(hwc: np.ndarray) -> int:
    return SAMPLE_STEP if hwc.nbytes >= SAMPLE_MIN_BYTES else 1


def estimated_sizes(hwc: np.ndarray) -> dict[str, int]:
    """Every applicable layout's payload size for a uint8 HxWxC image, estimated from every
    ``SAMPLE_STEP``-th row (exact for images under ``SAMPLE_MIN_BYTES``)."""
    return {name: est for name, est, _ in _estimates(hwc)}


def _estimates(hwc: np.ndarray):
    step = _sample_step(hwc)
    k = _kernels_for(hwc.size)

    def size(x: np.ndarray) -> int:
        x = np.ascontiguousarray(x).reshape(-1)
        return int(k.stream_size(x)) if k is not None else len(_encode_numpy(x))

    return [(name, len(prefix) + step * size(sample(step)), (name, prefix, full))
            for name, prefix, full, sample in _layouts(hwc)]


def choose_layout(hwc: np.ndarray) -> tuple[str, bytes, np.ndarray]:
    """(layout, payload prefix, array to code) that the ``rle`` codec writes for a uint8 HxWxC
    image: interleaved, unless another layout is estimated at most ``SWITCH_RATIO`` of its size;
    then the smallest estimate (ties go to the earlier layout in ``LAYOUTS``)."""
    est = _estimates(hwc)
    best = min(est[1:], key=lambda e: e[1], default=None)
    name, prefix, full = (best if best is not None and best[1] <= SWITCH_RATIO * est[0][1] else est[0])[2]
    return name, prefix, full()


def encode_layouts(hwc: np.ndarray) -> dict[str, bytes]:
    """Every applicable layout's payload (layout byte + body) for a uint8 HxWxC image."""
    return {name: _encode(full(), prefix) for name, prefix, full, _ in _layouts(hwc)}


def encode_best_layout(hwc: np.ndarray) -> tuple[str, bytes]:
    """(layout, payload) of the ``rle`` codec for a uint8 HxWxC image (see :func:`choose_layout`)."""
    name, prefix, x = choose_layout(hwc)
    return name, _encode(x, prefix)


def decode_layout(payload: bytes, shape: tuple[int, int, int]) -> np.ndarray:
    """Inverse of :func:`encode_layouts`: a payload back to a uint8 array of ``shape`` (HxWxC)."""
    h, w, c = shape
    if not payload:
        raise CorruptDataError("empty RLE payload")
    layout = payload[0]
    if layout == INTERLEAVED:
        return rle_decode_bytes(payload, h * w * c, 1).reshape(h, w, c)
    if layout == PLANAR:
        n = h * w * c
        planes = rle_decode_bytes(payload, n, 1, _scratch(n + 16))[:n].reshape(c, h * w)  # slack for expand
        k = _kernels_for(planes.size)
        if k is None:
            return planes.reshape(c, h, w).transpose(1, 2, 0).copy()
        return _interleave(planes, k).reshape(h, w, c)
    if layout == PALETTE:
        if len(payload) < 2:
            raise CorruptDataError("RLE palette payload truncated (no palette size)")
        k = payload[1] + 1
        end = 2 + k * c
        if len(payload) < end:
            raise CorruptDataError(f"RLE palette truncated: {k} colours need {k * c} bytes")
        colours = np.frombuffer(payload, np.uint8, k * c, 2).reshape(k, c)
        index = rle_decode_bytes(payload, h * w, end)
        if int(index.max()) >= k:
            raise CorruptDataError(f"RLE palette index {int(index.max())} out of range (palette of {k})")
        return colours[index].reshape(h, w, c)
    raise CorruptDataError(f"unknown RLE layout {layout}")


@register
class Rle(NativeCodec):
    """PackBits-style run-length coding over the best of three pixel layouts (lossless)."""

    name = "rle"
    description = "run-length coding (PackBits-style) of pixels, planes or palette indices; lossless"
    lossless = True

    def encode_payload(self, img, quality):
        best, payload = encode_best_layout(img)
        return Encoded(payload, {"layout": best, "v": 1})

    def decode_payload(self, c: mlc.Container) -> np.ndarray:
        return decode_layout(c.payload, c.shape)
