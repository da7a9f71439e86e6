"""Anchors for the thesis's methods: off-the-shelf palette quantisers and PackBits.

| id            | library                 | knob                 | output                          |
|---------------|-------------------------|----------------------|---------------------------------|
| pil-mediancut | Pillow ``quantize``     | palette size 2-256   | 8-bit palette PNG, no dithering |
| imagequant    | libimagequant           | palette size 2-256   | 8-bit palette PNG, no dithering |
| packbits      | imagecodecs PackBits    | none (lossless)      | .mlc (PackBits has no file format) |

The palette anchors write plain PNG files, so they never claim a file (``sniff`` is False): any
PNG, theirs included, is identified and decoded as ``png``.
"""

from __future__ import annotations

import io

import numpy as np

from .. import container as mlc
from ..errors import CorruptDataError
from ..registry import register
from .base import Codec, Encoded, NativeCodec


class _PalettePng(Codec):
    """A palette quantiser whose result is saved as an 8-bit palette PNG."""

    native = False
    extension = ".png"
    quality_help = "palette size 2-256, higher is better"
    quality_range = (2, 256)
    default_quality = 64
    bench_qualities = (4, 8, 16, 32, 64, 128, 256)

    def quantise(self, hwc: np.ndarray, colours: int):
        """A Pillow 'P' image of the uint8 HxWxC image with at most ``colours`` colours."""
        raise NotImplementedError

    def encode(self, img, quality=None):
        self.require_available()
        hwc = self.check_image(img)
        q = self.check_quality(quality)
        buf = io.BytesIO()
        self.quantise(hwc, q).save(buf, format="PNG", compress_level=9)
        return buf.getvalue()

    def decode(self, data):
        from .. import registry

        return registry.get("png").decode(data)

    def sniff(self, prefix):
        return False  # a plain PNG; `png` identifies it


@register
class PilMedianCut(_PalettePng):
    name = "pil-mediancut"
    description = "Pillow median-cut palette quantiser, no dithering, saved as 8-bit PNG"
    channels = (1, 3)

    def quantise(self, hwc, colours):
        from PIL import Image

        from ..image import to_pil

        return to_pil(hwc).quantize(colors=colours, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)


@register
class ImageQuant(_PalettePng):
    name = "imagequant"
    description = "libimagequant palette quantiser, no dithering, saved as 8-bit PNG"
    channels = (3, 4)

    def unavailable_reason(self):
        try:
            import imagequant  # noqa: F401
        except ImportError:
            return "the imagequant package is not installed"
        return None

    def quantise(self, hwc, colours):
        import imagequant
        from PIL import Image

        h, w, c = hwc.shape
        rgba = hwc if c == 4 else np.dstack([hwc, np.full((h, w), 255, np.uint8)])
        index, palette = imagequant.quantize_raw_rgba_bytes(
            np.ascontiguousarray(rgba).tobytes(), w, h, dithering_level=0.0, max_colors=colours
        )
        out = Image.frombytes("P", (w, h), index)
        if c == 4:
            out.putpalette(palette, rawmode="RGBA")
        else:
            pal = np.asarray(palette, np.uint8).reshape(-1, 4)[:, :3]
            out.putpalette(pal.tobytes(), rawmode="RGB")
        return out


@register
class PackBits(NativeCodec):
    name = "packbits"
    description = "Apple PackBits (imagecodecs) on interleaved pixel bytes, in .mlc; lossless"
    lossless = True

    def unavailable_reason(self):
        from .classical import _imagecodecs

        return None if _imagecodecs("PACKBITS") else "imagecodecs with PackBits support is not installed"

    def encode_payload(self, img, quality):
        from .classical import _imagecodecs

        return Encoded(bytes(_imagecodecs("PACKBITS").packbits_encode(img.tobytes())), {"v": 1})

    def decode_payload(self, c: mlc.Container):
        from .classical import _imagecodecs

        size = c.height * c.width * c.channels
        # PackBits expands at most 128/2 = 64x: refuse before decoding what cannot fit
        if len(c.payload) * 64 < size:
            raise CorruptDataError(f"PackBits payload of {len(c.payload)} bytes cannot hold {size} bytes")
        try:
            raw = _imagecodecs("PACKBITS").packbits_decode(c.payload)
        except Exception as exc:  # imagecodecs raises its own error classes
            raise CorruptDataError(f"cannot decode PackBits: {exc}") from None
        if len(raw) != size:
            raise CorruptDataError(f"PackBits payload decodes to {len(raw)} bytes, image needs {size}")
        return np.frombuffer(raw, np.uint8).reshape(c.shape).copy()
