"""Reading image files: every Pillow mode becomes uint8 grey, RGB or RGBA without losing its range."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from mlcompress.image import read_image


def _png(pil) -> bytes:
    buf = io.BytesIO()
    pil.save(buf, format="PNG")
    return buf.getvalue()


def test_a_16_bit_grey_png_is_scaled_to_8_bits_not_clipped():
    # Pillow's convert("L") clips 16-bit values at 255: a 16-bit photo became black and white
    ramp = np.arange(0, 65536, 257, dtype=np.uint16).reshape(16, 16)  # 0, 257, ..., 65535
    pil = Image.fromarray(ramp)
    assert pil.mode.startswith("I;16")
    out = read_image(_png(pil))
    assert out.dtype == np.uint8 and out.shape == (16, 16)
    assert np.array_equal(out, np.arange(256, dtype=np.uint8).reshape(16, 16))


def test_a_32_bit_integer_image_holding_16_bit_values_is_scaled_and_one_holding_8_bit_values_kept():
    ramp = np.arange(0, 65536, 257, dtype=np.int32).reshape(16, 16)
    assert np.array_equal(read_image(_tiff(Image.fromarray(ramp, mode="I"))),
                          np.arange(256, dtype=np.uint8).reshape(16, 16))
    small = np.arange(256, dtype=np.int32).reshape(16, 16)
    assert np.array_equal(read_image(_tiff(Image.fromarray(small, mode="I"))), small.astype(np.uint8))


def _tiff(pil) -> bytes:
    buf = io.BytesIO()
    pil.save(buf, format="TIFF")
    return buf.getvalue()


@pytest.mark.parametrize("mode, channels", [("P", 3), ("LA", 1), ("CMYK", 3), ("1", 1), ("L", 1), ("RGBA", 4)])
def test_other_modes_become_grey_rgb_or_rgba_uint8(mode, channels):
    rgb = np.random.default_rng(0).integers(0, 256, (9, 11, 3), dtype=np.uint8)
    pil = Image.fromarray(rgb).convert(mode)
    buf = io.BytesIO()
    pil.save(buf, format="TIFF" if mode == "CMYK" else "PNG")
    out = read_image(buf.getvalue())
    assert out.dtype == np.uint8 and out.shape[:2] == (9, 11)
    assert (out.shape[2] if out.ndim == 3 else 1) == channels


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_an_image_is_read_upright_as_its_exif_orientation_says(fmt):
    # a phone photo stored sideways with orientation 6 ("rotate 90 degrees clockwise to view")
    stored = np.zeros((20, 30, 3), np.uint8)
    stored[:, :10] = 255  # a white band on the stored image's left
    pil = Image.fromarray(stored)
    exif = pil.getexif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    pil.save(buf, format=fmt, exif=exif.tobytes(), **({"quality": 95} if fmt != "PNG" else {}))
    out = read_image(buf.getvalue())
    assert out.shape == (30, 20, 3)  # turned upright
    assert out[:10].mean() > 200 and out[-10:].mean() < 50  # the band is now on top
    plain = io.BytesIO()
    pil.save(plain, format=fmt)  # no orientation: as stored
    assert read_image(plain.getvalue()).shape == (20, 30, 3)


@pytest.mark.parametrize("orientation", range(0, 10))
def test_every_exif_orientation_is_turned_as_pillow_turns_it_and_can_be_left_as_stored(orientation):
    from PIL import ImageOps

    from mlcompress.image import exif_orientation

    stored = np.random.default_rng(orientation).integers(0, 256, (6, 9, 3), dtype=np.uint8)
    pil = Image.fromarray(stored)
    exif = pil.getexif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    pil.save(buf, format="PNG", exif=exif.tobytes())
    with Image.open(io.BytesIO(buf.getvalue())) as im:
        expected = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    assert np.array_equal(read_image(buf.getvalue()), expected)
    assert np.array_equal(read_image(buf.getvalue(), upright=False), stored)
    assert exif_orientation(buf.getvalue()) == (orientation if 2 <= orientation <= 8 else 1)


def _palette_png(transparent_pixel: bool) -> bytes:
    """A palette PNG whose entry 0 is transparent, used by one pixel or by none."""
    idx = np.ones((12, 10), np.uint8)
    if transparent_pixel:
        idx[0, 0] = 0
    pil = Image.fromarray(idx, "P")
    pil.putpalette([0, 0, 0, 200, 30, 90] + [0] * 762)
    buf = io.BytesIO()
    pil.save(buf, format="PNG", transparency=0)
    return buf.getvalue()


def test_a_palette_png_with_an_unused_transparent_entry_is_read_as_rgb_not_rgba():
    img = read_image(_palette_png(transparent_pixel=False))
    assert img.shape == (12, 10, 3) and (img == [200, 30, 90]).all()
    see_through = read_image(_palette_png(transparent_pixel=True))
    assert see_through.shape == (12, 10, 4) and see_through[0, 0, 3] == 0
    grey_alpha = Image.fromarray(np.full((5, 6, 2), 255, np.uint8), "LA")
    assert read_image(_png(grey_alpha)).shape == (5, 6)


def test_refusing_rgba_names_the_cause_transparent_pixels_or_a_fully_opaque_alpha_channel():
    from mlcompress import registry
    from mlcompress.errors import UnsupportedError

    jpeg = registry.get("jpeg")
    rgba = np.full((4, 4, 4), 255, np.uint8)
    with pytest.raises(UnsupportedError, match="alpha channel is fully opaque: save it without alpha"):
        jpeg.encode(rgba)
    rgba[1, 1, 3] = 0
    with pytest.raises(UnsupportedError, match="this one has transparent pixels"):
        jpeg.encode(rgba)


@pytest.mark.parametrize("fmt", ["GIF", "PNG", "WEBP"])
def test_an_animation_is_refused_with_a_hint_instead_of_coding_its_first_frame(fmt):
    from mlcompress.errors import UnsupportedError

    frames = [Image.fromarray(np.full((8, 8, 3), v, np.uint8)) for v in (0, 120, 250)]
    buf = io.BytesIO()
    frames[0].save(buf, format=fmt, save_all=True, append_images=frames[1:], duration=100)
    with pytest.raises(UnsupportedError, match=f"an animated {fmt} \\(3 frames\\); only still images"):
        read_image(buf.getvalue())
    still = io.BytesIO()
    frames[1].save(still, format=fmt)
    assert read_image(still.getvalue()).shape[:2] == (8, 8)
