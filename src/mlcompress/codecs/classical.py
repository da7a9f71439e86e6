"""Classical codecs, the anchors: each writes its own standard format through Pillow or imagecodecs.

| id        | library            | knob                                   | notes                         |
|-----------|--------------------|----------------------------------------|-------------------------------|
| jpeg      | Pillow (libjpeg)   | quality 1-95                           | 4:2:0 chroma subsampling      |
| webp      | Pillow (libwebp)   | quality 0-100                          | lossy, method 6; grey as RGB  |
| jpeg2000  | Pillow (OpenJPEG)  | compression ratio 1-1000 (lower=better)| irreversible 9/7, mct=1 (RGB) |
| avif      | Pillow (libavif)   | quality 0-100                          | speed fixed at 6, 4:2:0       |
| jxl       | imagecodecs        | Butteraugli distance 0.05-25 (lower=better) | effort 7                 |
| png       | Pillow (zlib)      | none (lossless)                        | compress_level 9              |
| qoi       | imagecodecs        | none (lossless)                        | RGB/RGBA only                 |
"""

from __future__ import annotations

import io

import numpy as np

from ..errors import CorruptDataError, UnsupportedError
from ..image import EXIF_PHOTOMETRIC, PHOTOMETRIC_GREY, as_hwc, exif_says_grey, from_hwc, grey_from_rgb, read_image, to_pil
from ..limits import check_pixels
from ..registry import register
from .base import Codec

AVIF_SPEED = 6


def _imagecodecs(feature: str):
    try:
        import imagecodecs
    except ImportError:
        return None
    codec = getattr(imagecodecs, feature, None)
    return imagecodecs if codec is not None and codec.available else None


class PillowCodec(Codec):
    """A codec whose format Pillow writes and reads."""

    native = False
    pil_format: str = ""
    pil_feature: str | None = None

    def unavailable_reason(self) -> str | None:
        if self.pil_feature is None:
            return None
        from PIL import features

        return None if features.check(self.pil_feature) else f"Pillow was built without {self.pil_feature}"

    def save_options(self, img: np.ndarray, quality) -> dict:
        return {}

    def encode(self, img: np.ndarray, quality=None) -> bytes:
        self.require_available()
        hwc = self.check_image(img)
        q = self.check_quality(quality)
        buf = io.BytesIO()
        try:
            to_pil(hwc).save(buf, format=self.pil_format, **self.save_options(hwc, q))
        except (OSError, ValueError, RuntimeError) as exc:  # a limit of the library not known here
            raise UnsupportedError(f"{self.name} cannot encode this {hwc.shape[1]}x{hwc.shape[0]} image: {exc}") from None
        return buf.getvalue()

    def decode(self, data: bytes) -> np.ndarray:
        self.require_available()
        if not self.sniff(bytes(data[:32])):
            raise CorruptDataError(f"not a {self.name} file")
        return read_image(bytes(data))


@register
class Jpeg(PillowCodec):
    name = "jpeg"
    description = "JPEG (libjpeg via Pillow), 4:2:0"
    extension = ".jpg"
    pil_format = "JPEG"
    pil_feature = "jpg"
    quality_help = "JPEG quality 1-95, higher is better"
    quality_range = (1, 95)
    default_quality = 75
    bench_qualities = (5, 10, 20, 30, 40, 50, 60, 70, 80, 90)
    channels = (1, 3)
    max_side = 65_500  # libjpeg's JPEG_MAX_DIMENSION

    def save_options(self, img, quality):
        return {"quality": quality, "subsampling": "4:2:0", "optimize": True}

    def sniff(self, prefix):
        return prefix[:3] == b"\xff\xd8\xff"


@register
class WebP(PillowCodec):
    name = "webp"
    description = "WebP lossy (libwebp via Pillow), method 6 (grey: coded as RGB, given back grey)"
    extension = ".webp"
    pil_format = "WEBP"
    pil_feature = "webp"
    quality_help = "WebP quality 0-100, higher is better"
    quality_range = (0, 100)
    default_quality = 75
    bench_qualities = (0, 5, 15, 30, 45, 60, 75, 85, 92)
    channels = (1, 3, 4)
    max_side = 16_383

    # WebP has no grey mode: a grey image is coded as RGB (as cwebp does) and marked grey by the
    # EXIF tag PhotometricInterpretation = BlackIsZero (52 bytes), so that it decodes grey again
    # (the mean of the decoded channels, which 4:2:0 leaves up to 1 apart)

    def save_options(self, img, quality):
        opts = {"quality": quality, "method": 6}
        if img.shape[2] == 1:
            from PIL import Image

            exif = Image.Exif()
            exif[EXIF_PHOTOMETRIC] = PHOTOMETRIC_GREY
            opts["exif"] = exif.tobytes()
        return opts

    def decode(self, data: bytes) -> np.ndarray:
        img = super().decode(data)
        if img.ndim == 3 and img.shape[2] == 3 and exif_says_grey(bytes(data)):
            return from_hwc(grey_from_rgb(img))
        return img

    def sniff(self, prefix):
        return prefix[:4] == b"RIFF" and prefix[8:12] == b"WEBP"


@register
class Jpeg2000(PillowCodec):
    name = "jpeg2000"
    description = "JPEG 2000 (OpenJPEG via Pillow), irreversible 9/7 wavelet, one rate layer"
    extension = ".jp2"
    pil_format = "JPEG2000"
    pil_feature = "jpg_2000"
    quality_help = "compression ratio 1-1000 (original bits / coded bits), lower is better"
    quality_range = (1, 1000)
    quality_integer = False
    default_quality = 40
    bench_qualities = (300, 200, 120, 80, 50, 35, 24, 16, 12)

    def save_options(self, img, quality):
        return {
            "quality_mode": "rates",
            "quality_layers": [quality],
            "irreversible": True,
            "mct": 1 if img.shape[2] == 3 else 0,
        }

    def sniff(self, prefix):
        return prefix[:12] == b"\x00\x00\x00\x0cjP  \r\n\x87\n" or prefix[:4] == b"\xff\x4f\xff\x51"


@register
class Avif(PillowCodec):
    name = "avif"
    description = f"AVIF (libavif via Pillow), speed {AVIF_SPEED}, 4:2:0 (grey: monochrome 4:0:0)"
    extension = ".avif"
    pil_format = "AVIF"
    pil_feature = "avif"
    quality_help = "AVIF quality 0-100, higher is better"
    quality_range = (0, 100)
    default_quality = 60
    bench_qualities = (10, 20, 30, 40, 50, 60, 70, 80, 88)
    channels = (1, 3, 4)
    # libavif writes up to 65,536 but reads back only up to its default dimension limit
    max_side = 32_768

    def save_options(self, img, quality):
        # a grey image is written monochrome (4:0:0) and reads back grey; 4:2:0 would turn it RGB
        sub = "4:0:0" if img.shape[2] == 1 else "4:2:0"
        return {"quality": quality, "speed": AVIF_SPEED, "subsampling": sub}

    def sniff(self, prefix):
        return prefix[4:8] == b"ftyp" and prefix[8:12] in (b"avif", b"avis")


@register
class Avif444(Avif):
    """AVIF without chroma subsampling: an anchor for the upper rates, where 4:2:0 caps the RGB
    PSNR of colourful photos."""

    name = "avif444"
    description = f"AVIF (libavif via Pillow), speed {AVIF_SPEED}, 4:4:4 (grey: monochrome 4:0:0)"

    def save_options(self, img, quality):
        return {**super().save_options(img, quality), **({} if img.shape[2] == 1 else {"subsampling": "4:4:4"})}


@register
class Png(PillowCodec):
    name = "png"
    description = "PNG (zlib via Pillow), lossless, compress_level 9"
    extension = ".png"
    lossless = True
    pil_format = "PNG"

    def save_options(self, img, quality):
        return {"compress_level": 9}

    def sniff(self, prefix):
        return prefix[:8] == b"\x89PNG\r\n\x1a\n"


@register
class JpegXL(Codec):
    name = "jxl"
    description = "JPEG XL (libjxl via imagecodecs), effort 7"
    extension = ".jxl"
    native = False
    quality_help = "Butteraugli distance 0.05-25, lower is better (1.0 is visually lossless)"
    quality_range = (0.05, 25.0)
    quality_integer = False
    default_quality = 1.0
    bench_qualities = (25.0, 16.0, 10.0, 6.0, 4.0, 2.8, 2.0, 1.4, 1.0)

    def unavailable_reason(self):
        return None if _imagecodecs("JPEGXL") else "imagecodecs with JPEG XL support is not installed"

    def encode(self, img, quality=None):
        self.require_available()
        hwc = self.check_image(img)
        q = self.check_quality(quality)
        ic = _imagecodecs("JPEGXL")
        return bytes(ic.jpegxl_encode(from_hwc(hwc), distance=q, effort=7))

    def decode(self, data):
        self.require_available()
        data = bytes(data)
        if not self.sniff(data[:32]):
            raise CorruptDataError("not a JPEG XL file")
        ic = _imagecodecs("JPEGXL")
        try:
            out = ic.jpegxl_decode(data)
        except Exception as exc:  # imagecodecs raises its own error classes
            raise CorruptDataError(f"cannot decode JPEG XL: {exc}") from None
        return _as_uint8(out)

    def sniff(self, prefix):
        return prefix[:2] == b"\xff\x0a" or prefix[:12] == b"\x00\x00\x00\x0cJXL \r\n\x87\n"


@register
class Qoi(Codec):
    name = "qoi"
    description = "QOI, the Quite OK Image format (imagecodecs), lossless"
    extension = ".qoi"
    native = False
    lossless = True
    channels = (3, 4)

    def unavailable_reason(self):
        return None if _imagecodecs("QOI") else "imagecodecs with QOI support is not installed"

    def encode(self, img, quality=None):
        self.require_available()
        hwc = self.check_image(img)
        self.check_quality(quality)
        return bytes(_imagecodecs("QOI").qoi_encode(hwc))

    def decode(self, data):
        self.require_available()
        data = bytes(data)
        if len(data) < 14 or not self.sniff(data):
            raise CorruptDataError("not a QOI file")
        check_pixels(int.from_bytes(data[4:8], "big"), int.from_bytes(data[8:12], "big"))
        try:
            out = _imagecodecs("QOI").qoi_decode(data)
        except Exception as exc:
            raise CorruptDataError(f"cannot decode QOI: {exc}") from None
        return _as_uint8(out)

    def sniff(self, prefix):
        return prefix[:4] == b"qoif"


def _as_uint8(out) -> np.ndarray:
    out = np.asarray(out)
    if out.dtype != np.uint8:
        raise UnsupportedError(f"decoded image has dtype {out.dtype}; only 8-bit images are supported")
    return from_hwc(as_hwc(out))
