"""mlcompress: image compression with machine-learning methods, measured honestly.

The small public surface::

    import mlcompress
    data = mlcompress.encode(img, codec="vq", quality=64)   # img: uint8 HxW / HxWx3 / HxWx4
    img2 = mlcompress.decode(data)                          # uint8 array, same shape
    mlcompress.list_codecs()                                 # registered codec names
    img3 = mlcompress.open("photo.mlc")                      # any file mlcompress or Pillow reads

Every error about bad input or bad data is an :class:`mlcompress.Error`. Importing the package
also registers the ``.mlc`` format with Pillow, so ``PIL.Image.open("x.mlc")`` works.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import (
    CorruptDataError,
    Error,
    LimitError,
    ModelMismatchError,
    UnsupportedError,
    UsageError,
    VersionError,
)
from .limits import get_max_pixels, set_max_pixels

__version__ = "0.1.0"

__all__ = [
    "Error", "UsageError", "UnsupportedError", "CorruptDataError", "VersionError", "LimitError",
    "ModelMismatchError", "encode", "decode", "decode_any", "open", "identify", "list_codecs", "get_codec",
    "default_codec", "set_max_pixels", "get_max_pixels", "__version__",
]


def get_codec(name: str):
    """The codec object registered under ``name``."""
    from . import registry

    return registry.get(name)


def list_codecs(available_only: bool = False) -> list[str]:
    """Registered codec names (``available_only``: those whose libraries are installed)."""
    from . import registry

    return registry.list_codecs(available_only)


def default_codec() -> str:
    """The codec used when none is named."""
    from . import registry

    return registry.default_codec()


def encode(img: np.ndarray, codec: str | None = None, quality: float | None = None) -> bytes:
    """Compress a uint8 image with ``codec`` (default: :func:`default_codec`) into file bytes."""
    return get_codec(codec or default_codec()).encode(img, quality)


def identify(data: bytes):
    """The codec that wrote ``data`` (sniffed from its first bytes); CorruptDataError if none."""
    from . import container, registry

    prefix = bytes(data[:64])
    if container.is_mlc(prefix):
        container.read_header(prefix)
        start = container.FIXED_SIZE
        if len(prefix) > start and len(prefix) > start + prefix[start]:
            name = prefix[start + 1 : start + 1 + prefix[start]].decode("ascii", "replace")
            try:
                return registry.get(name)
            except UsageError:
                raise CorruptDataError(f"file was written by unknown codec {name!r}") from None
        raise CorruptDataError("truncated .mlc file")
    for codec in registry.codecs():
        if not codec.native and codec.sniff(prefix):
            return codec
    raise CorruptDataError("not a recognised compressed image (unknown format)")


def decode(data: bytes) -> np.ndarray:
    """Decompress file bytes (.mlc or a classical format) into a uint8 array.

    Returns HxW for grey images and HxWx3 / HxWx4 for RGB / RGBA. Raises CorruptDataError (an
    :class:`Error`) on corrupt, truncated or unrecognised data and LimitError above the pixel limit.
    """
    from . import container, registry
    from .image import from_hwc

    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise UsageError(f"decode expects bytes, got {type(data).__name__}")
    data = bytes(data)
    if container.is_mlc(data):
        c = container.unpack(data)
        try:
            codec = registry.get(c.codec)
        except UsageError:
            raise CorruptDataError(f"file was written by unknown codec {c.codec!r}") from None
        if not codec.native:
            raise CorruptDataError(f"codec {c.codec!r} does not write .mlc files")
        return from_hwc(codec.decode_container(c))
    return identify(data).decode(data)


def decode_any(data: bytes) -> np.ndarray:
    """Decode compressed bytes (.mlc or a classical format), else read them as any Pillow image."""
    from .image import read_image

    try:
        identify(data)
    except CorruptDataError:
        return read_image(bytes(data))
    return decode(data)


def open(path: str | Path) -> np.ndarray:  # noqa: A001 - mirrors PIL.Image.open
    """Read any image file: .mlc and classical formats through their codecs, else Pillow."""
    return decode_any(Path(path).read_bytes())


from . import pil_plugin as _pil_plugin  # noqa: E402

_pil_plugin.register()
