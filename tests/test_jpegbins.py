"""codecs/jpegbins.py: a restored JPEG kept inside the file's quantisation bins."""

import io

import numpy as np
import pytest
from PIL import Image

from mlcompress.codecs import jpegbins
from mlcompress.codecs.jpegbins import SHRINK, constrain
from mlcompress.image import read_image
from mlcompress.metrics import psnr


def _photo(h=64, w=80, seed=0) -> np.ndarray:
    """Smooth colour gradients with texture: what JPEG codes with many nonzero coefficients."""
    r = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([128 + 60 * np.sin(x / 9 + c) * np.cos(y / 7 - c) for c in range(3)], axis=2)
    return np.clip(base + r.normal(0, 3, base.shape), 0, 255).astype(np.uint8)


def _jpeg(img, quality=90, subsampling="4:2:0") -> bytes:
    """At quality 90 the bins are narrow (Q of 2 to 10): noise of a few levels leaves them."""
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=quality, subsampling=subsampling)
    return buf.getvalue()


def _luma(img) -> np.ndarray:
    return img.astype(np.float64) @ jpegbins._YCC[0] if img.ndim == 3 else img.astype(np.float64)


def test_the_block_transform_is_jpegs_dct_and_inverts():
    x = np.random.default_rng(0).uniform(-128, 128, (16, 24))
    u = np.arange(8)
    c = np.where(u == 0, np.sqrt(1 / 8), np.sqrt(2 / 8))
    basis = c[:, None] * np.cos((2 * u[None, :] + 1) * u[:, None] * np.pi / 16)  # [u, x]
    direct = np.einsum("ux,vy,xy->uv", basis, basis, x[8:16, 16:24])
    assert np.allclose(jpegbins._dct(x)[1, :, 2, :], direct, atol=1e-3)
    assert np.allclose(jpegbins._idct(jpegbins._dct(x)), x, atol=1e-3)


@pytest.mark.parametrize("subsampling", ["4:4:4", "4:2:0"])
def test_a_noisy_image_moves_towards_the_original_and_into_the_central_share_of_its_bins(subsampling):
    img = _photo()
    data = _jpeg(img, subsampling=subsampling)
    decoded = read_image(data)
    noisy = np.clip(decoded + np.random.default_rng(1).normal(0, 4, decoded.shape), 0, 255).astype(np.uint8)
    out = constrain(data, noisy)
    assert psnr(img, out) > psnr(img, noisy) + 0.2
    with Image.open(io.BytesIO(data)) as im:
        q = np.asarray(im.quantization[0], np.float64).reshape(8, 8)[None, :, None, :]
    k = np.round(jpegbins._dct(_luma(decoded) - 128) / q)
    c = jpegbins._dct(_luma(out) - 128)
    beyond = np.abs(c - k * q) - SHRINK / 2 * q
    assert beyond.max() < 1.5  # in the central share, but for the rounding to 8 bits


def test_the_decoders_own_image_of_a_444_or_grey_jpeg_is_already_in_its_bins():
    img = _photo()
    for data in (_jpeg(img, subsampling="4:4:4"), _jpeg(img[:, :, 0])):
        decoded = read_image(data)
        assert np.abs(constrain(data, decoded).astype(int) - decoded).max() <= 1


def test_grey_jpegs_keep_their_shape_and_gain():
    img = _photo()[:, :, 1]
    data = _jpeg(img)
    noisy = np.clip(read_image(data) + np.random.default_rng(2).normal(0, 4, img.shape), 0, 255).astype(np.uint8)
    for shape in (img.shape, img.shape + (1,)):
        out = constrain(data, noisy.reshape(shape))
        assert out.shape == shape and psnr(img, out.reshape(img.shape)) > psnr(img, noisy) + 0.5


def test_blocks_the_edge_cuts_or_the_decoder_clipped_are_left_alone():
    img = _photo(37, 45)
    img[:16, :16] = 255  # a white corner: its decoded samples are clipped at 255
    data = _jpeg(img)
    noisy = np.clip(read_image(data).astype(int) + np.random.default_rng(3).integers(-3, 4, img.shape), 0, 255)
    noisy = noisy.astype(np.uint8)
    out = constrain(data, noisy)
    # 37 x 45: the luma blocks end at row 32 and column 40 (the 4:2:0 chroma blocks at column 32)
    assert np.array_equal(out[32:, :], noisy[32:, :]) and np.array_equal(out[:, 40:], noisy[:, 40:])  # cut
    assert np.array_equal(out[:16, :16], noisy[:16, :16])  # clipped
    assert not np.array_equal(out[16:32, 16:32], noisy[16:32, 16:32])


def test_layouts_it_does_not_handle_are_given_back_unchanged():
    img = _photo()
    noisy = np.clip(read_image(_jpeg(img)) + 3, 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(img).convert("CMYK").save(buf, format="JPEG", quality=40)
    for data in (_jpeg(img, subsampling="4:2:2"), buf.getvalue()):
        assert constrain(data, noisy) is noisy
    assert constrain(_jpeg(img[:40, :40]), noisy) is noisy  # another size than the file's


@pytest.mark.parametrize("subsampling", ["4:4:4", "4:2:0"])
def test_bands_of_rows_give_the_image_of_one_pass(monkeypatch, subsampling):
    img = _photo(70, 50)
    data = _jpeg(img, subsampling=subsampling)
    noisy = np.clip(read_image(data) + np.random.default_rng(4).normal(0, 4, img.shape), 0, 255).astype(np.uint8)
    whole = constrain(data, noisy)
    monkeypatch.setattr(jpegbins, "BAND", 16)
    assert np.array_equal(constrain(data, noisy), whole) and not np.array_equal(whole, noisy)


def test_a_missing_or_zero_quantisation_table_is_no_table():
    from types import SimpleNamespace

    layer = [(1, 1, 1, 0)]
    assert jpegbins._tables(SimpleNamespace(quantization={0: [0] + [1] * 63}, layer=layer)) is None
    assert jpegbins._tables(SimpleNamespace(quantization={1: [1] * 64}, layer=layer)) is None
    assert jpegbins._tables(SimpleNamespace(quantization={0: [2] * 64}, layer=layer))[0].shape == (8, 8)
