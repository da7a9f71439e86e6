"""Corruption is detected, limits hold before allocation, and foreign model weights are refused.

Runs for every native codec in the registry; unavailable codecs (e.g. learned codecs without
their weights) are skipped with the codec's own reason.
"""

from __future__ import annotations

import struct
import tracemalloc

import numpy as np
import pytest

import mlcompress
from mlcompress import container as mlc
from mlcompress import registry
from mlcompress.errors import CorruptDataError, Error, LimitError, ModelMismatchError
from mlcompress.fuzz import repack
from conftest import require_codec

NATIVE = [c.name for c in registry.codecs() if c.native] or ["<none>"]
#: a decode of a tiny forged file may use at most this much traced (numpy/Python) memory
#: (vq's LZMA index coder at preset 9 allocates a constant 64 MiB dictionary on every decode)
MEMORY_BOUND = 96 * 2**20


_codec = require_codec


def _small_file(codec) -> bytes:
    """A small file of the codec: an RGB (or its first layout) gradient at the lowest quality.
    Encoded once per codec (a refining encoder takes seconds); bytes are immutable."""
    if codec.name not in _SMALL_FILES:
        _SMALL_FILES[codec.name] = _encode_small(codec)
    return _SMALL_FILES[codec.name]


_SMALL_FILES: dict[str, bytes] = {}


def _encode_small(codec) -> bytes:
    ch = 3 if 3 in codec.channels else codec.channels[0]
    q = codec.quality_range[0] if codec.quality_range else None
    last = None
    for size in (8, 16, 32, 64):
        yy, xx = np.mgrid[0:size, 0:size]
        img = np.stack([(xx * 37 + yy * 11) % 256] * ch, axis=2).astype(np.uint8)
        img[..., 0] = (xx * 255) // size
        try:
            return codec.encode(img, q)
        except Error as exc:
            last = exc
    pytest.skip(f"codec {codec.name} cannot encode a 64x64 image: {last}")


def _peak_memory_of(fn) -> tuple[object, int]:
    """(the exception raised or the result, peak traced bytes) of calling fn()."""
    tracemalloc.start()
    try:
        try:
            result = fn()
        except Error as exc:
            result = exc
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak


# ------------------------------------------------------------------ single-bit flips


@pytest.mark.parametrize("name", NATIVE)
def test_every_single_bit_flip_of_a_small_file_is_detected(name):
    data = _small_file(_codec(name))
    mlcompress.decode(data)  # the pristine file decodes
    undetected = []
    for bit in range(len(data) * 8):
        buf = bytearray(data)
        buf[bit // 8] ^= 1 << (bit % 8)
        try:
            mlcompress.decode(bytes(buf))
        except CorruptDataError:
            continue
        undetected.append(bit)
    assert not undetected, f"{len(undetected)} of {len(data) * 8} flips not detected, first at bits {undetected[:8]}"


# ------------------------------------------------------------------ limits


@pytest.mark.parametrize("name", NATIVE)
def test_a_header_claiming_a_huge_image_is_refused_before_allocation(name):
    c = mlc.unpack(_small_file(_codec(name)))
    forged = repack(c, width=300_000, height=300_000)  # 90 gigapixels, payload of a few bytes
    result, peak = _peak_memory_of(lambda: mlcompress.decode(forged))
    assert isinstance(result, LimitError), result
    assert "exceeds the limit" in str(result)
    assert peak < MEMORY_BOUND


@pytest.mark.parametrize("name", NATIVE)
def test_a_valid_file_over_a_lowered_pixel_limit_is_refused(name):
    data = _small_file(_codec(name))
    c = mlc.unpack(data)
    mlcompress.set_max_pixels(c.width * c.height - 1)
    with pytest.raises(LimitError, match="pixel"):
        mlcompress.decode(data)
    mlcompress.set_max_pixels(c.width * c.height)
    assert mlcompress.decode(data).shape[:2] == (c.height, c.width)


@pytest.mark.parametrize("name", NATIVE)
def test_a_large_image_allowed_by_the_limit_with_a_tiny_payload_fails_without_allocating_it(name):
    # 40000 x 40000 x 3 would be 4.8 GB: the codec must notice that a tiny payload cannot hold it,
    # or decode it only within the memory the payload justifies
    c = mlc.unpack(_small_file(_codec(name)))
    if c.model:
        pytest.skip("learned codecs bound decoding memory by the pixel limit (torch memory is not traced)")
    mlcompress.set_max_pixels(10**10)
    forged = repack(c, width=40_000, height=40_000)
    result, peak = _peak_memory_of(lambda: mlcompress.decode(forged))
    assert isinstance(result, CorruptDataError), result
    assert peak < 2 * MEMORY_BOUND  # one byte per pixel would be 1.6 GB


def _huge_int_variants(params, path=()):
    """Every params variant with one integer (anywhere in the JSON) replaced by a huge value."""
    if isinstance(params, bool):
        return
    if isinstance(params, int):
        for big in (2**31 - 1, 2**32, 2**62, -(2**31)):
            yield path, big
    elif isinstance(params, dict):
        for k, v in params.items():
            yield from _huge_int_variants(v, path + (k,))
    elif isinstance(params, list):
        for i, v in enumerate(params):
            yield from _huge_int_variants(v, path + (i,))


def _set(obj, path, value):
    if not path:
        return value
    obj = list(obj) if isinstance(obj, list) else dict(obj)
    obj[path[0]] = _set(obj[path[0]], path[1:], value)
    return obj


@pytest.mark.parametrize("name", NATIVE)
def test_absurd_sizes_in_params_or_payload_are_refused_without_allocating(name):
    c = mlc.unpack(_small_file(_codec(name)))
    mlcompress.set_max_pixels(64 * 64)
    forged = [repack(c, params=_set(c.params, path, big)) for path, big in _huge_int_variants(c.params)]
    # a huge 16- or 32-bit count at each of the first 16 payload offsets (codebook sizes, lengths)
    for off in range(min(16, len(c.payload))):
        for fmt, big in ((">I", 0xFFFFFFFF), (">I", 0x7FFFFFFF), ("<I", 0xFFFFFFFF), (">H", 0xFFFF)):
            p = bytearray(c.payload.ljust(off + 4, b"\0"))
            struct.pack_into(fmt, p, off, big)
            forged.append(repack(c, payload=bytes(p)))
    for data in forged:
        result, peak = _peak_memory_of(lambda: mlcompress.decode(data))
        assert isinstance(result, (Error, np.ndarray)), repr(result)
        if isinstance(result, Error):
            assert str(result)
        assert peak < MEMORY_BOUND, f"{peak / 2**20:.0f} MiB traced decoding {mlc.unpack(data).params}"


@pytest.mark.parametrize("name", NATIVE)
def test_a_header_claiming_more_bytes_than_the_file_holds_is_refused(name):
    data = _small_file(_codec(name))
    var_end = mlc.FIXED_SIZE + struct.unpack_from(">H", data, 6)[0]
    (payload_len,) = struct.unpack_from(">I", data, var_end)
    for claimed in (payload_len + 1, payload_len + 1000, 0xFFFFFFFF):
        buf = bytearray(data)
        struct.pack_into(">I", buf, var_end, claimed)
        with pytest.raises(CorruptDataError, match="truncated"):
            mlcompress.decode(bytes(buf))
    buf = bytearray(data)
    struct.pack_into(">H", buf, 6, 0xFFFF)  # variable header longer than the file
    with pytest.raises(CorruptDataError, match="truncated"):
        mlcompress.decode(bytes(buf))
    for cut in (len(data) - 1, len(data) - 5, var_end + 2, mlc.FIXED_SIZE, 10, 3, 0):
        with pytest.raises(CorruptDataError):
            mlcompress.decode(data[:cut])


# ------------------------------------------------------------------ model weights


def _learned_files() -> list[bytes]:
    files, reasons = [], []
    for codec in registry.codecs():
        if not codec.native:
            continue
        reason = codec.unavailable_reason()
        if reason:
            reasons.append(f"{codec.name}: {reason}")
            continue
        data = _small_file(codec)
        if mlc.unpack(data).model:
            files.append(data)
    if not files:
        pytest.skip("no learned codec (one naming a model) is available" + (f"; {'; '.join(reasons)}" if reasons else ""))
    return files


def test_a_container_with_a_changed_weights_hash_is_refused_with_model_mismatch():
    for data in _learned_files():
        c = mlc.unpack(data)
        for i in (0, 31):
            h = bytearray(c.weights_hash)
            h[i] ^= 0x01
            with pytest.raises(ModelMismatchError, match="refusing to decode"):
                mlcompress.decode(repack(c, weights_hash=bytes(h)))
        assert mlcompress.decode(data) is not None


def test_a_container_naming_an_unknown_model_is_refused():
    for data in _learned_files():
        c = mlc.unpack(data)
        with pytest.raises(CorruptDataError):
            mlcompress.decode(repack(c, model=c.model + "-nonexistent"))
