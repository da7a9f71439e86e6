"""Resource limits checked before any allocation (like Pillow's decompression-bomb guard)."""

from __future__ import annotations

import os

from .errors import LimitError, UsageError

#: Pillow's default ``Image.MAX_IMAGE_PIXELS`` (about 89 megapixels).
DEFAULT_MAX_PIXELS = 89_478_485

_max_pixels: int | None = None


def get_max_pixels() -> int:
    """The pixel limit in force: set_max_pixels(), else $MLCOMPRESS_MAX_PIXELS, else the default."""
    if _max_pixels is not None:
        return _max_pixels
    env = os.environ.get("MLCOMPRESS_MAX_PIXELS")
    if env:
        try:
            value = int(env)
        except ValueError:
            raise UsageError(f"MLCOMPRESS_MAX_PIXELS must be an integer, got {env!r}") from None
        if value < 1:
            raise UsageError("MLCOMPRESS_MAX_PIXELS must be positive")
        return value
    return DEFAULT_MAX_PIXELS


def set_max_pixels(value: int | None) -> None:
    """Set the pixel limit for this process; ``None`` restores the environment/default."""
    global _max_pixels
    if value is not None and (not isinstance(value, int) or value < 1):
        raise UsageError(f"the pixel limit must be a positive integer, got {value!r}")
    _max_pixels = value


def check_pixels(width: int, height: int, channels: int = 1) -> None:
    """Raise LimitError when a width x height image exceeds the pixel limit."""
    limit = get_max_pixels()
    if width * height > limit:
        raise LimitError(
            f"image of {width}x{height} = {width * height:,} pixels exceeds the limit of "
            f"{limit:,} pixels (raise it with --max-pixels or MLCOMPRESS_MAX_PIXELS)"
        )
