"""Classical codecs write their own formats and round trip through the registry."""

import numpy as np
import pytest

import mlcompress
from mlcompress import metrics, registry
from mlcompress.errors import CorruptDataError, UnsupportedError, UsageError

CLASSICAL = ["jpeg", "webp", "jpeg2000", "avif", "jxl", "png", "qoi"]


@pytest.mark.parametrize("name", CLASSICAL)
def test_every_classical_codec_is_registered_and_available(name):
    codec = registry.get(name)
    assert not codec.native
    assert codec.available(), codec.unavailable_reason()


@pytest.mark.parametrize("name", CLASSICAL)
def test_classical_codec_roundtrips_a_kodak_image_with_sane_quality(name, kodak_images):
    img = kodak_images[0]
    codec = registry.get(name)
    data = codec.encode(img)
    out = mlcompress.decode(data)
    assert out.shape == img.shape and out.dtype == np.uint8
    if codec.lossless:
        assert np.array_equal(out, img)
    else:
        assert metrics.psnr(img, out) > 25
        assert len(data) < img.size  # it compresses


@pytest.mark.parametrize("name", CLASSICAL)
def test_classical_codec_handles_or_refuses_each_layout(name, synthetic):
    codec = registry.get(name)
    channels = 1 if synthetic.ndim == 2 else synthetic.shape[2]
    if channels not in codec.channels:
        with pytest.raises(UnsupportedError):
            codec.encode(synthetic)
        return
    out = codec.decode(codec.encode(synthetic))
    assert out.shape == synthetic.shape
    if codec.lossless:
        assert np.array_equal(out, synthetic)


@pytest.mark.parametrize("name", ["png", "qoi"])
def test_lossless_classical_codecs_are_exact_on_kodak(name, kodak_images):
    for img in kodak_images:
        assert np.array_equal(registry.get(name).decode(registry.get(name).encode(img)), img)


def test_identify_finds_the_writer_of_each_format(kodak_images):
    img = kodak_images[0][:64, :64]
    for name in CLASSICAL:
        assert mlcompress.identify(registry.get(name).encode(img)).name == name


def test_higher_jpeg_quality_gives_bigger_file_and_higher_psnr(kodak_images):
    img = kodak_images[1]
    jpeg = registry.get("jpeg")
    lo, hi = jpeg.encode(img, 20), jpeg.encode(img, 90)
    assert len(lo) < len(hi)
    assert metrics.psnr(img, jpeg.decode(lo)) < metrics.psnr(img, jpeg.decode(hi))


def test_quality_out_of_range_is_a_usage_error():
    img = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(UsageError, match="quality"):
        registry.get("jpeg").encode(img, 500)
    with pytest.raises(UsageError, match="no quality"):
        registry.get("png").encode(img, 5)


def test_decoding_garbage_with_a_classical_codec_is_a_corrupt_data_error():
    for name in CLASSICAL:
        with pytest.raises(CorruptDataError):
            registry.get(name).decode(b"definitely not an image file at all....")


def test_truncated_jpeg_is_detected(kodak_images):
    data = registry.get("jpeg").encode(kodak_images[0])
    with pytest.raises(CorruptDataError):
        mlcompress.decode(data[: len(data) // 2])


@pytest.mark.parametrize("name, side", [("webp", 16_383), ("jpeg", 65_500), ("avif", 32_768)])
def test_a_codec_refuses_an_image_past_its_formats_side_limit_before_encoding(name, side, capsys, tmp_path):
    codec = registry.get(name)
    assert codec.max_side == side
    assert codec.decode(codec.encode(np.full((1, side, 3), 90, np.uint8))).shape == (1, side, 3)
    for shape in ((1, side + 1, 3), (side + 1, 1, 3)):
        with pytest.raises(UnsupportedError, match=f"at most {side:,} pixels per side"):
            mlcompress.encode(np.full(shape, 90, np.uint8), name)
    from mlcompress import cli

    tall = tmp_path / "tall.png"
    tall.write_bytes(registry.get("png").encode(np.full((side + 1, 1, 3), 90, np.uint8)))
    assert cli.main(["compress", str(tall), "-c", name, "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"at most {side:,} pixels per side" in err
    assert not (tmp_path / "out").exists()


def test_webp_codes_a_grey_photo_as_rgb_and_gives_it_back_grey(kodak_images):
    grey = np.rint(kodak_images[0].mean(axis=2)).astype(np.uint8)
    webp = registry.get("webp")
    data = webp.encode(grey, 75)
    out = webp.decode(data)
    assert out.shape == grey.shape and out.dtype == np.uint8
    assert metrics.psnr(grey, out) > 30
    assert mlcompress.decode(data).shape == grey.shape
    # the grey marker (EXIF PhotometricInterpretation) costs 52 bytes over the same pixels as RGB
    assert len(data) - len(webp.encode(np.repeat(grey[:, :, None], 3, axis=2), 75)) == 52
    rgb = np.repeat(grey[:64, :64, None], 3, axis=2)  # grey pixels given as RGB stay RGB
    assert webp.decode(webp.encode(rgb)).shape == rgb.shape
