"""Vector quantisation: decoding is a codebook lookup, seeds fix the bytes, bad input fails clearly."""

from __future__ import annotations

import numpy as np
import pytest

import mlcompress
from mlcompress import container
from mlcompress.codecs.vq import VqBlock, VqCodec, decode_vq_payload, quantise
from mlcompress.metrics import psnr


def _photo_like(h=48, w=64, seed=0) -> np.ndarray:
    """A smooth colourful image with noise: many distinct colours, like a photograph."""
    r = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 3, yy * 4, (xx + yy) * 2], axis=2).astype(np.float64)
    return np.clip(base + r.normal(0, 12, base.shape), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("block", [1, 2, 4])
def test_vq_decode_equals_the_codebook_lookup_of_its_indices(block):
    img = _photo_like(37, 53)
    codebook, indices = quantise(img, 16, block=block, n_init=1, seed=0)
    expected = codebook[indices]
    if block == 1:
        expected = expected.reshape(img.shape)
    else:  # blocks in raster order, each b x b x C, cropped back to the image
        hb, wb = -(-37 // block), -(-53 // block)
        expected = expected.reshape(hb, wb, block, block, 3).transpose(0, 2, 1, 3, 4)
        expected = expected.reshape(hb * block, wb * block, 3)[:37, :53]
    out = mlcompress.decode(VqCodec(block=block).encode(img, 16))
    assert np.array_equal(out, expected)


def test_vq_assigns_every_pixel_to_its_nearest_codeword():
    img = _photo_like()
    codebook, indices = quantise(img, 8)
    d = ((img.reshape(-1, 1, 3).astype(int) - codebook[None].astype(int)) ** 2).sum(axis=2)
    assert np.array_equal(d[np.arange(d.shape[0]), indices], d.min(axis=1))


@pytest.mark.parametrize("codec", ["vq", "vq-block"])
def test_vq_same_seed_gives_the_same_bytes(codec):
    img = _photo_like()
    assert mlcompress.encode(img, codec, 16) == mlcompress.encode(img, codec, 16)


def test_vq_params_record_n_init_seed_and_coder():
    params = container.unpack(VqCodec(n_init=3, seed=9).encode(_photo_like(), 8)).params
    assert params["n_init"] == 3 and params["seed"] == 9 and params["codewords"] == 8
    assert params["coder"] in ("ans", "lzma")


@pytest.mark.parametrize("coder", ["ans", "lzma"])
def test_vq_both_index_coders_decode_to_the_same_image(coder):
    img = _photo_like()
    auto = mlcompress.decode(VqCodec().encode(img, 32))
    assert np.array_equal(mlcompress.decode(VqCodec(coder=coder).encode(img, 32)), auto)


def test_vq_images_with_fewer_colours_than_codewords_come_back_exactly():
    flat = np.full((10, 12, 3), 40, np.uint8)
    flat[3:7, 2:9] = (200, 10, 90)
    for img in (flat, flat[:, :, 0], np.full((5, 5, 3), 9, np.uint8)):
        assert np.array_equal(mlcompress.decode(mlcompress.encode(img, "vq", 4)), img)


def test_vq_roundtrip_keeps_shape_and_dtype_of_every_layout(synthetic):
    if synthetic.shape[0] * synthetic.shape[1] < 2:
        pytest.skip("a one-pixel image cannot hold 2 codewords")
    out = mlcompress.decode(mlcompress.encode(synthetic, "vq", 2))
    assert out.shape == synthetic.shape and out.dtype == np.uint8


@pytest.mark.parametrize("quality", [0, 1, -5, 5000])
def test_vq_rejects_codebook_sizes_outside_2_to_4096(quality):
    with pytest.raises(mlcompress.UsageError, match="codewords"):
        mlcompress.encode(_photo_like(), "vq", quality)


def test_vq_rejects_more_codewords_than_pixels_or_blocks():
    with pytest.raises(mlcompress.UsageError, match="17 codewords is more than the image's 16 pixels"):
        mlcompress.encode(np.zeros((4, 4, 3), np.uint8), "vq", 17)
    with pytest.raises(mlcompress.UsageError, match="4x4 blocks"):
        mlcompress.encode(np.zeros((8, 8, 3), np.uint8), "vq-block", 5)


def test_vq_rejects_bad_python_api_parameters():
    for kwargs in ({"n_init": 0}, {"block": 0}, {"block": 99}, {"coder": "zip"}):
        with pytest.raises(mlcompress.UsageError):
            VqCodec(**kwargs)


def test_vq_block_handles_sizes_that_are_not_multiples_of_the_block():
    for img in (_photo_like(37, 53), _photo_like(37, 53)[:, :, 0], np.dstack([_photo_like(9, 7), np.full((9, 7), 99, np.uint8)])):
        out = mlcompress.decode(VqBlock().encode(img, 4))
        assert out.shape == img.shape and out.dtype == np.uint8


def test_vq_quality_grows_with_the_number_of_codewords():
    img = _photo_like(64, 64)
    p = [psnr(img, mlcompress.decode(mlcompress.encode(img, "vq", k))) for k in (4, 16, 64)]
    assert p[0] < p[1] < p[2]


def test_vq_on_a_kodak_image_beats_30_db_at_64_colours(kodak_images):
    img = kodak_images[1][::2, ::2].copy()
    assert psnr(img, mlcompress.decode(mlcompress.encode(img, "vq", 64))) > 30


def _mangled(payload: bytes, shape=(48, 64, 3), codec="vq") -> bytes:
    h, w, c = shape
    return container.pack(container.Container(codec, w, h, c, payload, {"v": 1}))


@pytest.mark.parametrize("coder", ["ans", "lzma"])
def test_vq_decoder_rejects_every_truncation_of_a_payload(coder):
    payload = container.unpack(VqCodec(coder=coder).encode(_photo_like(), 8)).payload
    for n in list(range(0, 40)) + list(range(len(payload) - 12, len(payload))):
        with pytest.raises(mlcompress.CorruptDataError):
            mlcompress.decode(_mangled(payload[:n]))


def test_vq_decoder_rejects_impossible_headers():
    payload = bytearray(container.unpack(VqCodec().encode(_photo_like(), 8)).payload)
    for pos, value in ((0, 7), (1, 2), (2, 0x7F), (2 + 2 + 8 * 3, 9)):
        bad = bytearray(payload)
        bad[pos] = value
        with pytest.raises(mlcompress.CorruptDataError):
            decode_vq_payload(bytes(bad), (48, 64, 3))


@pytest.mark.parametrize("coder", ["ans", "lzma"])
def test_vq_decoder_survives_random_mutations_with_only_corrupt_data_errors(coder):
    r = np.random.default_rng(11)
    payload = container.unpack(VqCodec(coder=coder).encode(_photo_like(), 8)).payload
    for _ in range(200):
        p = bytearray(payload)
        for pos in r.integers(0, len(p), r.integers(1, 4)):
            p[pos] = r.integers(0, 256)
        try:
            out = mlcompress.decode(_mangled(bytes(p)))
        except mlcompress.CorruptDataError:
            continue
        assert out.shape == (48, 64, 3)


def _jit():
    pytest.importorskip("numba")
    from mlcompress.codecs import _kmeans_jit

    return _kmeans_jit


def test_vq_compiled_lloyd_stops_at_a_fixed_point_of_plain_lloyd():
    jit = _jit()
    r = np.random.default_rng(4)
    x = r.integers(0, 256, (3, 3000)).astype(np.float64)
    w = r.integers(1, 20, 3000).astype(np.float64)
    seeds = jit.kmeanspp(x, w, 24, r.random((24, 5)))
    assert np.unique(seeds).size == 24
    centers, labels, inertia, n_iter = jit.lloyd(x, w, np.ascontiguousarray(x[:, seeds]), 1000, 0.0)
    assert n_iter < 1000
    d = ((x[:, :, None] - centers[:, None, :]) ** 2).sum(axis=0)  # P x K
    assert np.allclose(d[np.arange(3000), labels], d.min(axis=1))  # every point at a nearest center
    for j in range(24):  # every center the weighted mean of its points
        mine = labels == j
        assert np.allclose(centers[:, j], (x[:, mine] * w[mine]).sum(axis=1) / w[mine].sum())
    assert inertia == pytest.approx((w * d[np.arange(3000), labels]).sum())


def test_vq_compiled_nearest_and_unique_colours_equal_the_numpy_ones(monkeypatch):
    jit = _jit()
    from mlcompress.codecs import vq

    r = np.random.default_rng(6)
    img = r.integers(0, 8, (600, 500, 3)).astype(np.uint8) * 30  # > 2**18 pixels, many ties
    codebook = r.integers(0, 8, (40, 3)).astype(np.uint8) * 30 + 15
    flat = img.reshape(-1, 3)
    compiled = vq._unique_colours(flat), vq.nearest(flat, codebook)
    monkeypatch.setattr(vq, "_kernels", lambda: None)
    plain = vq._unique_colours(flat), vq.nearest(flat, codebook)
    for a, b in zip(compiled[0], plain[0]):
        assert np.array_equal(a, b)
    assert np.array_equal(compiled[1], plain[1])
    assert jit is not None


def test_vq_without_numba_falls_back_to_scikit_learn_and_still_decodes(monkeypatch):
    from mlcompress.codecs import vq

    monkeypatch.setattr(vq, "_kernels", lambda: None)
    img = _photo_like()
    codebook, indices = quantise(img, 16)
    assert np.array_equal(mlcompress.decode(mlcompress.encode(img, "vq", 16)), codebook[indices].reshape(img.shape))
