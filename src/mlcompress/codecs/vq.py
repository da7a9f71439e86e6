"""Vector quantisation with a k-means codebook (the thesis's second method).

Two codecs share this module:

* ``vq`` (colour VQ): every pixel is a vector of its C channel values; the codebook is a palette
  of ``quality`` colours.
* ``vq-block`` (block VQ): every b x b block (b = 4 by default; the image is padded by edge
  replication to a multiple of b) is a vector of b*b*C values.

Data flow::

    uint8 HxWxC --vectors--> k-means (training) --> codebook KxD, rounded to uint8
                         \\--> nearest codeword (exact, chunked) --> indices N
    payload = header | codebook | entropy-coded indices (static ANS or LZMA, the smaller)

Training is fast because k-means never iterates over every pixel. Colour VQ: the distinct
colours are binned into a histogram with 6 bits per channel (grey: all 8); weighted k-means
(greedy k-means++, Lloyd, ``n_init`` restarts, best inertia wins) fits the cell means weighted by
their pixel counts; then at most 20 Lloyd iterations on the distinct colours weighted by their
counts (the same objective as k-means on all pixels) refine it. Lloyd stops early when no colour
changes codeword or the centers move by less than ``TOL`` of the data's variance. The k-means is
the numba kernels of :mod:`._kmeans_jit` (Hamerly's bounds skip most distance computations);
without numba, scikit-learn's ``KMeans`` does the same steps (other codebooks, 2-3x slower).
Measured against ``KMeans(n_init=10)`` on all pixels in docs/CODECS.md. Block VQ trains with
scikit-learn on a random sample of 65,536 blocks (at least 64 per codeword). Assignment of every
vector to its nearest *rounded* codeword is exact and chunked: integer-valued distances are
exact, ties go to the lower index, and each distinct colour is assigned once. k-means runs on
one thread, so the result does not depend on thread scheduling.

Everything is seeded: the same image, quality, ``n_init`` and ``seed`` give the same bytes.
The payload layout is in docs/CODECS.md.
"""

from __future__ import annotations

import functools
import lzma
import struct

import numpy as np

from .. import container as mlc
from ..entropy.coder import categorical, corrupt_stream_errors
from ..errors import CorruptDataError, UsageError
from ..registry import register
from .base import Encoded, NativeCodec

MAX_CODEWORDS = 4096
MAX_BLOCK = 8
COLOUR, BLOCK = 0, 1
CODER_ANS, CODER_LZMA = 0, 1
CODERS = {CODER_ANS: "ans", CODER_LZMA: "lzma"}


def _lzma_filters(size: int) -> list[dict]:
    """LZMA2 at preset 9 with the dictionary cut to the data (a power of two >= ``size`` bytes,
    4 KiB .. 64 MiB): no match reaches further back than the data, so the stream is the same as
    with preset 9's 64 MiB, but the decoder no longer reserves 64 MiB for a small image."""
    dict_size = min(max(4096, 1 << max(0, size - 1).bit_length()), 64 << 20)
    return [{"id": lzma.FILTER_LZMA2, "preset": 9, "dict_size": dict_size}]


#: Entries of a distance matrix computed at once (memory bound of the chunked nearest search).
_CHUNK_ENTRIES = 1 << 22


# ---------------------------------------------------------------- k-means


@functools.cache
def _kernels():
    """The numba k-means kernels (module ``_kmeans_jit``), or None when numba is not installed."""
    try:
        from . import _kmeans_jit
    except ImportError:
        return None
    return _kmeans_jit


def nearest(vectors: np.ndarray, codebook: np.ndarray) -> np.ndarray:
    """Index of the nearest codeword (squared Euclidean) for each row of ``vectors``.

    vectors: NxD, codebook: KxD, both with values in 0..255 (any real dtype). For integer-valued
    inputs the distances are exact (float32 up to D = 64, float64 beyond), so the result does
    not depend on the BLAS; ties go to the lowest index. Memory stays below ``_CHUNK_ENTRIES``
    distances. Colours (D <= 4) go through the numba kernel when there is one (same result).
    Returns int32 N.
    """
    jit = _kernels()
    if jit is not None and codebook.shape[1] <= 4:  # colours: the kernel is faster than the BLAS
        return jit.nearest(np.ascontiguousarray(vectors.T, np.float64), np.ascontiguousarray(codebook.T, np.float64))
    dtype = np.float32 if codebook.shape[1] <= 64 else np.float64
    cb = codebook.astype(dtype)
    c2 = (cb * cb).sum(axis=1)
    m2t = -2 * cb.T
    out = np.empty(len(vectors), np.int32)
    step = max(1, _CHUNK_ENTRIES // max(1, len(cb)))
    for s in range(0, len(vectors), step):
        d = vectors[s : s + step].astype(dtype) @ m2t
        d += c2
        out[s : s + step] = d.argmin(axis=1)
    return out


def kmeans(points: np.ndarray, weights: np.ndarray | None, k: int, n_init: int = 1, seed: int = 0,
           max_iter: int = 300, init: np.ndarray | None = None) -> np.ndarray:
    """Weighted k-means (scikit-learn's ``KMeans``: greedy k-means++, Lloyd, ``n_init`` restarts).

    points: PxD (P >= k), weights: P positive or None, init: optional KxD starting centers.
    Returns KxD float64 centers. Runs on one thread, so the same seed gives the same centers.
    """
    from sklearn.cluster import KMeans
    from ..threads import one_blas_thread

    with one_blas_thread():
        km = KMeans(k, init="k-means++" if init is None else init, n_init=n_init if init is None else 1,
                    max_iter=max_iter, random_state=seed)
        km.fit(points.astype(np.float64), sample_weight=weights)
    return km.cluster_centers_


# ---------------------------------------------------------------- vectors


def _colour_keys(flat: np.ndarray) -> np.ndarray:
    """One integer per pixel (NxC uint8 -> N uint32) that orders colours channel by channel."""
    key = np.zeros(flat.shape[0], np.uint32)
    for i in range(flat.shape[1]):
        key = (key << np.uint32(8)) | flat[:, i]
    return key


def _unique_colours(flat: np.ndarray):
    """(distinct colours UxC, their counts U, index of each pixel's colour N)."""
    c = flat.shape[1]
    keys = _colour_keys(flat)
    jit = _kernels()
    if c <= 3 and len(keys) > (1 << 18) and jit is not None:  # a dense table beats sorting
        ukeys, counts, inverse = jit.unique_keys(keys, 1 << (8 * c))
    elif c <= 3 and len(keys) > (1 << 18):
        hist = np.bincount(keys, minlength=1 << (8 * c))
        ukeys = np.flatnonzero(hist)
        lut = np.zeros(hist.size, np.int32)
        lut[ukeys] = np.arange(ukeys.size, dtype=np.int32)
        inverse, counts = lut[keys], hist[ukeys]
    else:
        ukeys, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    ukeys = ukeys.astype(np.uint32)
    cols = np.stack([(ukeys >> np.uint32(8 * (c - 1 - i))) & 0xFF for i in range(c)], axis=1)
    return cols.astype(np.uint8), counts.astype(np.float64), inverse.reshape(-1)


def _colour_cells(cols: np.ndarray, counts: np.ndarray, bits: int):
    """Bin distinct colours into cells of ``bits`` bits per channel: (cell means, cell counts)."""
    c = cols.shape[1]
    cell = np.zeros(len(cols), np.int64)
    for i in range(c):
        cell = (cell << bits) | (cols[:, i] >> (8 - bits))
    ucell, inv = np.unique(cell, return_inverse=True)
    n = np.bincount(inv, weights=counts, minlength=ucell.size)
    means = np.stack([np.bincount(inv, weights=counts * cols[:, i], minlength=ucell.size) for i in range(c)], 1)
    return means / n[:, None], n


#: Bits per channel of the colour histogram k-means is fitted on (grey images keep all 8), and
#: the most Lloyd iterations that then refine the fit on the distinct colours.
HIST_BITS, REFINE_ITER = 6, 20


#: Lloyd stops early when the centers move by less than this fraction of the data's variance.
TOL = 1e-4


def _fit_colours(cols: np.ndarray, counts: np.ndarray, k: int, n_init: int, seed: int, max_iter: int):
    """k-means on distinct colours (UxC uint8, U > k) with their counts. Returns KxC float.

    Fits on the cell means of a histogram with ``HIST_BITS`` bits per channel, weighted by the
    cell counts (``n_init`` restarts), then refines with at most ``REFINE_ITER`` Lloyd iterations
    on the distinct colours themselves. Measured in docs/CODECS.md against k-means on all pixels.
    Uses the numba kernels when numba is installed, else scikit-learn (other codebooks, slower).
    """
    points, weights = _colour_cells(cols, counts, 8 if cols.shape[1] == 1 else HIST_BITS)
    refine = not (len(points) < k or len(points) == len(cols))
    if not refine:  # the histogram does not shrink the data: fit the distinct colours
        points, weights = cols.astype(np.float64), counts
    jit = _kernels()
    if jit is None:
        centers = kmeans(points, weights, k, n_init, seed, max_iter)
        return kmeans(cols, counts, k, 1, seed, REFINE_ITER, init=centers) if refine else centers
    rng = np.random.default_rng(seed)
    xt = np.ascontiguousarray(points.T, np.float64)
    tol = _tolerance(xt, weights)
    best, best_inertia = None, np.inf
    for _ in range(n_init):
        seeds = jit.kmeanspp(xt, weights, k, rng.random((k, 2 + int(np.log(k)))))
        centers, _, inertia, _ = jit.lloyd(xt, weights, np.ascontiguousarray(xt[:, seeds]), max_iter, tol)
        if inertia < best_inertia:
            best, best_inertia = centers, inertia
    if refine:
        xt = np.ascontiguousarray(cols.T, np.float64)
        best = jit.lloyd(xt, counts, best, REFINE_ITER, _tolerance(xt, counts))[0]
    return best.T


def _tolerance(xt: np.ndarray, weights: np.ndarray) -> float:
    """``TOL`` x the mean over channels of the weighted variance of the points ``xt`` (DxP).

    numpy sums, not BLAS products: their order, and so the result, is the same on any thread count.
    """
    total = weights.sum()
    mean = (xt * weights).sum(axis=1) / total
    return TOL * float(((xt - mean[:, None]) ** 2 * weights).sum(axis=1).mean() / total)


def _blocks(hwc: np.ndarray, b: int) -> np.ndarray:
    """(Hb*Wb) x (b*b*C) block vectors of an image padded by edge replication to a multiple of b."""
    h, w, c = hwc.shape
    hb, wb = -(-h // b), -(-w // b)
    padded = np.pad(hwc, ((0, hb * b - h), (0, wb * b - w), (0, 0)), mode="edge")
    return padded.reshape(hb, b, wb, b, c).transpose(0, 2, 1, 3, 4).reshape(hb * wb, b * b * c)


def _unblocks(vectors: np.ndarray, shape, b: int) -> np.ndarray:
    h, w, c = shape
    hb, wb = -(-h // b), -(-w // b)
    img = vectors.reshape(hb, wb, b, b, c).transpose(0, 2, 1, 3, 4).reshape(hb * b, wb * b, c)
    return np.ascontiguousarray(img[:h, :w])


def quantise(hwc: np.ndarray, k: int, block: int = 1, n_init: int = 1, seed: int = 0,
             sample: int = 65536, max_iter: int = 300):
    """Train a codebook and assign every vector: (codebook KxD uint8, indices N int32).

    ``block`` 1 is colour VQ (D = C); b > 1 is block VQ on b x b blocks (D = b*b*C). K may come
    out smaller than ``k`` when the image has fewer distinct vectors.
    """
    c = hwc.shape[2]
    if block == 1:
        cols, counts, inverse = _unique_colours(hwc.reshape(-1, c))
        if len(cols) <= k:
            return cols, inverse.astype(np.int32)
        centers = _fit_colours(cols, counts, k, n_init, seed, max_iter)
        codebook = np.clip(np.rint(centers), 0, 255).astype(np.uint8)
        return codebook, nearest(cols, codebook)[inverse]
    vectors = _blocks(hwc, block)
    rng = np.random.default_rng(seed)
    n = len(vectors)
    size = min(n, max(sample, 64 * k))
    train = vectors if size == n else vectors[np.sort(rng.choice(n, size, replace=False))]
    distinct = np.unique(train, axis=0)
    if len(distinct) <= k:
        centers = distinct.astype(np.float64)
    else:
        centers = kmeans(train, None, k, n_init, int(rng.integers(2**31)), max_iter)
    codebook = np.clip(np.rint(centers), 0, 255).astype(np.uint8)
    return codebook, nearest(vectors, codebook)


# ---------------------------------------------------------------- index coding


def _encode_ans(indices: np.ndarray, k: int) -> bytes:
    import constriction

    counts = np.bincount(indices, minlength=k).astype(np.int64)
    width = max(1, (int(counts.max()).bit_length() + 7) // 8)
    table = counts.astype(">u8").view(np.uint8).reshape(k, 8)[:, 8 - width :].tobytes()
    if k == 1:  # one symbol needs no bits (constriction wants two or more)
        return bytes([width]) + table
    coder = constriction.stream.stack.AnsCoder()
    coder.encode_reverse(indices.astype(np.int32), categorical(counts))
    words = coder.get_compressed().astype("<u4").tobytes()
    return bytes([width]) + table + words


def _decode_ans(data: memoryview, k: int, n: int) -> np.ndarray:
    import constriction

    if len(data) < 1 or not 1 <= data[0] <= 4:
        raise CorruptDataError("VQ index table truncated or malformed")
    width = data[0]
    end = 1 + k * width
    if len(data) < end or (len(data) - end) % 4:
        raise CorruptDataError("VQ index stream truncated")
    raw = np.frombuffer(data, np.uint8, k * width, 1).reshape(k, width)
    counts = np.zeros((k, 8), np.uint8)
    counts[:, 8 - width :] = raw
    counts = counts.view(">u8").reshape(k).astype(np.int64)
    if int(counts.sum()) != n:
        raise CorruptDataError(f"VQ index histogram counts {int(counts.sum())} vectors, image has {n}")
    words = np.frombuffer(data, "<u4", offset=end).astype(np.uint32)
    if k == 1:
        if words.size:
            raise CorruptDataError("VQ index stream has stray bytes")
        return np.zeros(n, np.int32)
    with corrupt_stream_errors("VQ index stream"):
        coder = constriction.stream.stack.AnsCoder(words)
        out = coder.decode(categorical(counts), n) if n else np.zeros(0, np.int32)
        ok = coder.is_empty()
    if not ok or not np.array_equal(np.bincount(out, minlength=k), counts):
        raise CorruptDataError("VQ index stream is corrupt (decoded indices disagree with their histogram)")
    return out.astype(np.int32)


def _index_bytes(indices: np.ndarray, k: int) -> bytes:
    return indices.astype(np.uint8 if k <= 256 else ">u2").tobytes()


def _encode_lzma(indices: np.ndarray, k: int) -> bytes:
    raw = _index_bytes(indices, k)
    return lzma.compress(raw, format=lzma.FORMAT_RAW, filters=_lzma_filters(len(raw)))


def _decode_lzma(data: memoryview, k: int, n: int) -> np.ndarray:
    size = n * (1 if k <= 256 else 2)
    dec = lzma.LZMADecompressor(format=lzma.FORMAT_RAW, filters=_lzma_filters(size))
    try:
        raw = dec.decompress(bytes(data), max_length=size)
        # a valid stream ends exactly here: asking for one more byte must give none, and the end
        # marker must follow
        extra = dec.decompress(b"", max_length=1) if not dec.eof else b""
    except lzma.LZMAError as exc:
        raise CorruptDataError(f"VQ index stream is corrupt ({exc})") from None
    if len(raw) != size or extra or not dec.eof or dec.unused_data:
        raise CorruptDataError(f"VQ index stream holds {len(raw)} bytes, {size} expected")
    idx = np.frombuffer(raw, np.uint8 if k <= 256 else ">u2").astype(np.int32)
    if n and int(idx.max()) >= k:
        raise CorruptDataError(f"VQ index {int(idx.max())} out of range (codebook of {k})")
    return idx


_ENCODERS = {CODER_ANS: _encode_ans, CODER_LZMA: _encode_lzma}
_DECODERS = {CODER_ANS: _decode_ans, CODER_LZMA: _decode_lzma}


# ---------------------------------------------------------------- codecs

_HEAD = struct.Struct(">BBH")  # mode, block side, codewords


class VqCodec(NativeCodec):
    """Vector quantisation with a k-means codebook; ``quality`` is the number of codewords.

    ``n_init``: k-means++ restarts (the thesis used 5 and 10); ``seed``: the random seed;
    ``block``: 1 for colour VQ, b >= 2 for b x b block VQ; ``coder``: "auto" (the smaller of
    "ans" and "lzma"), "ans" or "lzma" for the indices.
    """

    name = "vq"
    description = "colour vector quantisation: k-means palette + entropy-coded indices; lossy"
    quality_help = f"number of codewords 2-{MAX_CODEWORDS} (palette size), higher is better"
    quality_range = (2, MAX_CODEWORDS)
    default_quality = 64
    #: colour VQ spends >= 1 bit per pixel on indices from 2 codewords up: about 0.3-5 bpp on Kodak
    bench_qualities = (2, 4, 8, 16, 32, 64, 128, 256)
    default_block = 1

    def __init__(self, n_init: int = 1, seed: int = 0, block: int | None = None, coder: str = "auto"):
        block = self.default_block if block is None else block
        if not (isinstance(n_init, int) and n_init >= 1):
            raise UsageError(f"n_init must be a positive integer, got {n_init!r}")
        if not (isinstance(block, int) and 1 <= block <= MAX_BLOCK):
            raise UsageError(f"block side must be an integer 1..{MAX_BLOCK}, got {block!r}")
        if coder not in ("auto", "ans", "lzma"):
            raise UsageError(f"coder must be 'auto', 'ans' or 'lzma', got {coder!r}")
        self.n_init, self.seed, self.block, self.coder = n_init, int(seed), block, coder

    def encode_payload(self, img, quality):
        h, w, c = img.shape
        b = self.block
        n = h * w if b == 1 else -(-h // b) * -(-w // b)
        what = "pixels" if b == 1 else f"{b}x{b} blocks"
        if quality > n:
            raise UsageError(f"{self.name}: {quality} codewords is more than the image's {n} {what}")
        codebook, indices = quantise(img, int(quality), b, self.n_init, self.seed)
        k = len(codebook)
        ids = [i for i, name in CODERS.items() if self.coder in ("auto", name)]
        streams = {i: _ENCODERS[i](indices, k) for i in ids}
        best = min(streams, key=lambda i: (len(streams[i]), i))
        payload = _HEAD.pack(COLOUR if b == 1 else BLOCK, b, k) + codebook.tobytes() + bytes([best]) + streams[best]
        params = {"v": 1, "codewords": int(quality), "n_init": self.n_init, "seed": self.seed, "coder": CODERS[best]}
        if b > 1:
            params["block"] = b
        return Encoded(payload, params)

    def decode_payload(self, c: mlc.Container) -> np.ndarray:
        return decode_vq_payload(c.payload, c.shape)


def decode_vq_payload(payload: bytes, shape) -> np.ndarray:
    """Decode a VQ payload (colour or block) into a uint8 array of ``shape`` (HxWxC)."""
    h, w, c = shape
    if len(payload) < _HEAD.size + 1:
        raise CorruptDataError("VQ payload truncated (header)")
    mode, b, k = _HEAD.unpack_from(payload)
    if mode not in (COLOUR, BLOCK) or (mode == COLOUR) != (b == 1) or not 1 <= b <= MAX_BLOCK:
        raise CorruptDataError(f"VQ payload has unknown mode {mode} / block side {b}")
    if not 1 <= k <= MAX_CODEWORDS:
        raise CorruptDataError(f"VQ codebook size {k} out of range 1..{MAX_CODEWORDS}")
    dim = b * b * c
    end = _HEAD.size + k * dim
    if len(payload) < end + 1:
        raise CorruptDataError(f"VQ codebook truncated: {k} codewords of {dim} bytes need {k * dim}")
    codebook = np.frombuffer(payload, np.uint8, k * dim, _HEAD.size).reshape(k, dim)
    coder = payload[end]
    if coder not in _DECODERS:
        raise CorruptDataError(f"unknown VQ index coder {coder}")
    n = h * w if b == 1 else -(-h // b) * -(-w // b)
    indices = _DECODERS[coder](memoryview(payload)[end + 1 :], k, n)
    vectors = codebook[indices]
    return vectors.reshape(h, w, c) if b == 1 else _unblocks(vectors, shape, b)


register(VqCodec())


@register
class VqBlock(VqCodec):
    """Block VQ: b x b blocks (b = 4) as vectors; ``quality`` codewords."""

    name = "vq-block"
    description = "block vector quantisation (4x4 blocks): k-means codebook + entropy-coded indices; lossy"
    #: about 0.08-1.4 bpp on Kodak; 4096 codewords of 48 values take minutes to train
    bench_qualities = (8, 16, 32, 64, 128, 256, 512, 1024)
    default_quality = 256
    default_block = 4
