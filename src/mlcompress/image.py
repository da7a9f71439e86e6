"""Image arrays and image files: validation, layouts, reading and writing.

The in-memory image everywhere is a numpy ``uint8`` array, ``HxW`` (grey), ``HxWx3`` (RGB) or
``HxWx4`` (RGBA), values 0..255. ``as_hwc`` gives the ``HxWxC`` view codecs work on.
"""

from __future__ import annotations

import io
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .errors import CorruptDataError, UnsupportedError, UsageError
from .limits import check_pixels, get_max_pixels

#: File extensions read as images by folders of images (data sets, batch compression, bench).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".gif")

CHANNEL_MODES = {1: "L", 3: "RGB", 4: "RGBA"}


def as_hwc(img: np.ndarray) -> np.ndarray:
    """Validate an image and return it as a C-contiguous uint8 HxWxC array (C in 1, 3, 4)."""
    if not isinstance(img, np.ndarray):
        raise UsageError(f"expected a numpy array, got {type(img).__name__}")
    if img.dtype != np.uint8:
        raise UsageError(f"expected a uint8 image, got dtype {img.dtype}")
    if img.ndim == 2:
        img = img[:, :, None]
    if img.ndim != 3 or img.shape[2] not in CHANNEL_MODES:
        raise UsageError(f"expected an HxW, HxWx3 or HxWx4 image, got shape {img.shape}")
    if img.shape[0] < 1 or img.shape[1] < 1:
        raise UsageError(f"image has no pixels (shape {img.shape})")
    return np.ascontiguousarray(img)


def from_hwc(img: np.ndarray) -> np.ndarray:
    """The public layout: grey images as HxW, colour as HxWxC."""
    return img[:, :, 0] if img.ndim == 3 and img.shape[2] == 1 else img


def grey_from_rgb(rgb: np.ndarray) -> np.ndarray:
    """The grey image HxWx1 of a uint8 HxWx3 one: the mean of the three channels, rounded half to
    even (how codecs that code grey images as RGB give them back grey)."""
    return np.rint(rgb.astype(np.float32).mean(axis=2, keepdims=True)).astype(np.uint8)


def to_pil(img: np.ndarray):
    """A Pillow image of a uint8 HxW/HxWxC array."""
    from PIL import Image

    hwc = as_hwc(img)
    return Image.fromarray(from_hwc(hwc), CHANNEL_MODES[hwc.shape[2]])


#: zlib level of the PNGs `decompress` writes: Pillow's default. Level 9 (the ``png`` codec's, and
#: ``--png-level 9``) makes files about 8 % smaller at 8 times the time: 29 s of CPU against 3.6 s
#: for a 12-megapixel photo (benchmarks/decompress_png.py)
PNG_LEVEL = 6


def check_png_level(level) -> int:
    """``level`` when it is a zlib level 0..9; UsageError otherwise."""
    if isinstance(level, bool) or not isinstance(level, (int, np.integer)) or not 0 <= level <= 9:
        raise UsageError(f"--png-level must be an integer in 0..9, got {level!r}")
    return int(level)


def png_bytes(img: np.ndarray, level: int = PNG_LEVEL) -> bytes:
    """A PNG file of a uint8 HxW/HxWxC image at zlib ``level`` 0..9."""
    level = check_png_level(level)
    buf = io.BytesIO()
    to_pil(img).save(buf, format="PNG", compress_level=level)
    return buf.getvalue()


def from_pil(pil) -> np.ndarray:
    """A uint8 array (HxW, HxWx3 or HxWx4) of a Pillow image, converting other modes sensibly."""
    mode = pil.mode
    if mode in ("L", "RGB", "RGBA"):
        pass
    elif mode.startswith("I;16") or (mode == "I" and _is_16_bit(pil)):
        # 16-bit grey (PNG, TIFF): scale 0..65535 to 0..255 (Pillow's convert("L") clips at 255)
        wide = np.asarray(pil).astype(np.uint32)
        return ((wide * 255 + 32767) // 65535).astype(np.uint8)
    elif mode in ("1", "I", "F"):
        pil = pil.convert("L")
    elif mode == "LA":
        return _opaque_dropped(np.asarray(pil.convert("RGBA"), dtype=np.uint8), grey=True)
    elif mode in ("P", "PA"):
        if "transparency" in pil.info or mode == "PA":
            # a palette with a transparent entry is RGBA only where some pixel uses that entry
            return _opaque_dropped(np.asarray(pil.convert("RGBA"), dtype=np.uint8))
        pil = pil.convert("RGB")
    else:
        pil = pil.convert("RGB")
    return np.asarray(pil, dtype=np.uint8).copy()


def _opaque_dropped(rgba: np.ndarray, grey: bool = False) -> np.ndarray:
    """An RGBA array that a grey+alpha or palette image became, without its alpha channel when
    every pixel is opaque (the file's format carried a transparency nobody uses): RGB, or grey
    when it was grey+alpha."""
    if not (rgba[:, :, 3] == 255).all():
        return rgba.copy()
    return rgba[:, :, 0].copy() if grey else np.ascontiguousarray(rgba[:, :, :3])


#: the EXIF tag that says how the stored pixels are to be turned for display
EXIF_ORIENTATION = 0x0112
#: the EXIF (TIFF) tag PhotometricInterpretation, and its value for a grey image (BlackIsZero)
EXIF_PHOTOMETRIC, PHOTOMETRIC_GREY = 0x0106, 1


#: EXIF orientation -> the turn of the stored pixels (an array indexed [row, column, ...]) that shows
#: them as viewers do, the turn Pillow's ImageOps.exif_transpose makes; other values: none
_TURNS = {2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1], 5: lambda a: a.swapaxes(0, 1),
          6: lambda a: np.rot90(a, -1), 7: lambda a: a.swapaxes(0, 1)[::-1, ::-1], 8: lambda a: np.rot90(a, 1)}


def turn_upright(img: np.ndarray, orientation: int) -> np.ndarray:
    """The stored pixels ``img`` as viewers show them, rotated or flipped by their EXIF
    ``orientation`` (phone photos store their pixels sideways and say so there; no file we write
    keeps that tag)."""
    turn = _TURNS.get(orientation)
    return np.ascontiguousarray(turn(img)) if turn else img


def _orientation(pil) -> int:
    value = pil.getexif().get(EXIF_ORIENTATION, 1)
    return value if isinstance(value, int) and value in _TURNS else 1


def exif_orientation(data: bytes) -> int:
    """The EXIF orientation of an image file: 2..8, or 1 when its pixels are stored upright (no
    tag, or a value that is not an orientation)."""
    from PIL import Image

    try:
        with _our_pixel_limit(), Image.open(io.BytesIO(data)) as pil:
            return _orientation(pil)
    except Exception:  # an unreadable file: read_image says why
        return 1


def _is_16_bit(pil) -> bool:
    """Whether a 32-bit integer ("I") image holds 16-bit values (above 255, none outside 0..65535)."""
    lo, hi = pil.getextrema()
    return 0 <= lo and 255 < hi <= 65535


#: formats whose files may hold an animation (Pillow's ``is_animated``); MPO, a camera JPEG with
#: a preview frame, and multi-page TIFF are read as their first image without a word
ANIMATED_FORMATS = ("GIF", "PNG", "WEBP", "AVIF")


@contextmanager
def _our_pixel_limit():
    """Pillow's own decompression-bomb check off while a file is opened: :func:`check_pixels`
    runs on the header's size instead, at the same point, with our limit and how to raise it
    (Pillow's warns between one and two times its limit and names twice it above)."""
    from PIL import Image

    old = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = old


def read_image(source: str | Path | bytes, upright: bool = True) -> np.ndarray:
    """Read an image file (any format Pillow reads) into a uint8 array, turned as its EXIF
    orientation says (:func:`turn_upright`) unless ``upright`` is False.

    Raises CorruptDataError when the bytes are not a readable image, LimitError when it is too big,
    UnsupportedError for an animation (GIF, APNG, WebP, AVIF with more than one frame).
    """
    from PIL import Image, UnidentifiedImageError

    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    try:
        with _our_pixel_limit(), Image.open(io.BytesIO(data)) as pil:
            check_pixels(*pil.size)
            if pil.format in ANIMATED_FORMATS and getattr(pil, "is_animated", False):
                raise UnsupportedError(
                    f"an animated {pil.format} ({pil.n_frames} frames); only still images are coded: "
                    "save the frame you want as PNG first")
            pil.load()
            img = from_pil(pil)
            return turn_upright(img, _orientation(pil)) if upright else img
    except UnidentifiedImageError:
        raise CorruptDataError("not a recognised image file") from None
    except (OSError, SyntaxError, ValueError, RuntimeError) as exc:  # RuntimeError: Pillow's AVIF decoder
        if isinstance(exc, UsageError):  # ours (a ValueError too)
            raise
        raise CorruptDataError(f"cannot read image: {exc}") from None


def exif_says_grey(data: bytes) -> bool:
    """Whether an image file's EXIF marks its pixels grey (PhotometricInterpretation 1), as the
    webp codec marks the grey images it codes as RGB; False for a file without such a tag."""
    from PIL import Image

    try:
        with _our_pixel_limit(), Image.open(io.BytesIO(data)) as pil:
            return pil.getexif().get(EXIF_PHOTOMETRIC) == PHOTOMETRIC_GREY
    except Exception:  # noqa: BLE001 - a damaged EXIF block is no marker
        return False

