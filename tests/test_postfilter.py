"""The learned codecs' per-image post-filter (mlcompress.postfilter)."""

from __future__ import annotations

import numpy as np
import pytest

from mlcompress import postfilter as pf
from mlcompress.errors import CorruptDataError
from mlcompress.metrics import psnr


def _photo() -> np.ndarray:
    skimage_data = pytest.importorskip("skimage.data")
    return np.ascontiguousarray(skimage_data.astronaut()[96:288, 160:416])  # 256 x 192, detailed


def _degraded(img: np.ndarray) -> np.ndarray:
    """A blurred, colour-shifted, noisy copy: what a weak decoder might give back."""
    x = img.astype(np.float64)
    p = np.pad(x, ((1, 1), (1, 1), (0, 0)), mode="edge")
    blur = (p[:-2, 1:-1] + p[2:, 1:-1] + p[1:-1, :-2] + p[1:-1, 2:] + 4 * x) / 8
    noise = np.random.default_rng(3).normal(0, 2, x.shape)
    return np.clip(np.rint(0.95 * blur + 6 + noise), 0, 255).astype(np.uint8)


def _cost(orig, img, lam, nbytes):
    return lam * np.mean((orig.astype(np.float64) - img) ** 2) + 8 * nbytes / (orig.shape[0] * orig.shape[1])


def _reference_apply(y: np.ndarray, f: pf.Filter) -> np.ndarray:
    """The filter as docs/CODECS.md defines it, in int64 arithmetic, pixel feature by feature."""
    r, yi = f.radius, y.astype(np.int64)
    p = np.pad(yi, ((r, r), (r, r), (0, 0)), mode="edge")
    h, w, _ = y.shape
    feats = []
    for c in range(3):
        for dy, dx in pf.offsets(r):
            feats.append(p[r + dy : r + dy + h, r + dx : r + dx + w, c] + p[r - dy : r - dy + h, r - dx : r - dx + w, c]
                         - 2 * yi[..., c])
    feats += [yi[..., c] - 128 for c in range(3)] + [np.ones((h, w), np.int64)]
    out = yi.copy()
    for c in range(3):
        acc = sum(int(k) * fi for k, fi in zip(f.coefs[c], feats))
        out[..., c] += (acc + (1 << (f.shift - 1))) >> f.shift
    return np.clip(out, 0, 255).astype(np.uint8)


def test_offsets_of_a_smaller_radius_are_a_prefix_and_cover_half_the_window():
    for r in pf.RADII:
        o = pf.offsets(r)
        assert len(o) == ((2 * r + 1) ** 2 - 1) // 2
        assert set(o) | {(-a, -b) for a, b in o} | {(0, 0)} == {(a, b) for a in range(-r, r + 1) for b in range(-r, r + 1)}
        assert o[: len(pf.offsets(r - 1))] == pf.offsets(r - 1) if r > 1 else True
    assert [pf.n_features(r) for r in pf.RADII] == [16, 40, 76]


def test_the_fitted_filter_lowers_the_rate_distortion_cost_and_raises_psnr():
    orig = _photo()
    y = _degraded(orig)
    lam = 0.013
    f = pf.fit(orig, y, lam)
    assert f is not None
    z = pf.apply(y, f)
    assert psnr(orig, z) > psnr(orig, y) + 1.0  # a blur and an offset are what a linear filter undoes
    assert _cost(orig, z, lam, len(pf.pack(f))) < _cost(orig, y, lam, 1)


def test_apply_is_the_integer_definition_exactly():
    orig = _photo()
    y = _degraded(orig)
    for r in pf.RADII:
        rng = np.random.default_rng(r)
        coefs = rng.integers(-400, 400, (3, pf.n_features(r)))
        for c in range(3):  # the largest sums the decoder accepts: the constant's coefficient fills the bound up
            coefs[c, -1] = 0
            coefs[c, -1] = pf.EXACT_BOUND - 1 - pf.bound(pf.Filter(r, 8, coefs[c : c + 1]))
        f = pf.Filter(r, 8, coefs)
        assert pf.bound(f) == pf.EXACT_BOUND - 1
        assert np.array_equal(pf.apply(y, f), _reference_apply(y, f))
        over = pf.Filter(r, 8, coefs + (np.arange(coefs.shape[1]) == coefs.shape[1] - 1))
        with pytest.raises(CorruptDataError):
            pf.apply(y, over)
        with pytest.raises(CorruptDataError):
            pf.unpack(pf.pack(over), 0)


def test_no_filter_is_chosen_when_the_decoded_image_is_already_exact_or_tiny():
    orig = _photo()
    assert pf.fit(orig, orig.copy(), 0.013) is None
    small = orig[:40, :40]
    assert pf.fit(small, _degraded(small), 0.013) is None  # under MIN_PIXELS
    assert pf.apply(orig, None) is orig


def test_pack_and_unpack_round_trip_every_radius_and_coefficient_size():
    rng = np.random.default_rng(0)
    for r in pf.RADII:
        for scale in (0, 3, 300, 20_000):
            coefs = rng.integers(-scale, scale + 1, (3, pf.n_features(r)))
            coefs[:, :-1] //= pf.n_features(r)  # within the decoder's bound
            f = pf.Filter(r, 9, coefs)
            blob = b"xy" + pf.pack(f)
            g, end = pf.unpack(blob, 2)
            assert end == len(blob)
            assert (g.radius, g.shift) == (r, 9) and np.array_equal(g.coefs, coefs)
    assert pf.pack(None) == b"\x00" and pf.unpack(b"\x00", 0) == (None, 1)


def test_malformed_filter_blocks_are_corrupt_data():
    f = pf.Filter(2, 8, np.arange(3 * pf.n_features(2)).reshape(3, -1) - 45)
    good = pf.pack(f)
    bad = [b"", bytes([4]) + good[1:], good[:1] + bytes([5]) + good[2:], good[:2] + bytes([16]) + good[3:],
           good[:-2], good[:3]]
    nbits = sum(pf._eg_bits(2 * v if v >= 0 else -2 * v - 1, good[2]) for v in f.coefs.ravel().tolist())
    assert nbits % 8  # so the last byte has padding bits
    bad.append(good[:-1] + bytes([good[-1] | 1]))  # a set padding bit
    bad.append(bytes([1, 8, 0]) + b"\x00" * 8 + b"\x80")  # a code longer than any coefficient allows
    for blob in bad:
        with pytest.raises(CorruptDataError):
            pf.unpack(blob, 0)


def test_apply_and_fit_work_a_strip_at_a_time_so_memory_grows_only_by_the_output_image():
    import tracemalloc

    def peaks(tiles):
        img = np.tile(_photo(), (*tiles, 1))
        y = _degraded(img)
        tracemalloc.start()
        try:
            f = pf.fit(img, y, 0.013)
            fit_peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.reset_peak()
            pf.apply(y, f)
            return img.shape[0] * img.shape[1], fit_peak, tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    n0, fit0, apply0 = peaks((4, 3))  # 768 x 768
    n1, fit1, apply1 = peaks((8, 6))  # 1536 x 1536
    # the filtered uint8 image is 3 bytes a pixel; a whole-image float copy would add 12-24 more
    assert (apply1 - apply0) / (n1 - n0) < 6
    assert (fit1 - fit0) / (n1 - n0) < 6
