"""The exception hierarchy. Library code raises these; only the CLI turns them into exit codes.

Every error about bad input or bad data derives from :class:`Error`.
"""


class Error(Exception):
    """Base class of every mlcompress error about bad input, bad parameters or bad data."""


class UsageError(Error, ValueError):
    """A parameter is invalid: an unknown codec, a quality out of range, an unsupported image layout."""


class UnsupportedError(UsageError):
    """The request is valid in general but not for this codec (e.g. RGBA into JPEG) or not installed."""


class CorruptDataError(Error):
    """Input bytes are not a valid file for the codec: wrong magic, truncated, checksum mismatch."""


class VersionError(CorruptDataError):
    """The file was written by a newer (unknown) format version."""


class LimitError(CorruptDataError):
    """The data asks for more than the configured limits allow (pixels, codebook size, ...)."""


class ModelMismatchError(CorruptDataError):
    """The file was encoded with other model weights than the ones available for decoding."""


def require_at_least(flag: str, value, least) -> None:
    """UsageError naming ``flag`` when ``value`` (None: not given) is below ``least``."""
    if value is not None and value < least:
        raise UsageError(f"{flag} must be at least {least}, got {value}")


def require_positive(flag: str, value) -> None:
    """UsageError naming ``flag`` when ``value`` (None: not given) is not a finite number above 0."""
    if value is not None and not (value > 0 and value != float("inf")):
        raise UsageError(f"{flag} must be a positive number, got {value}")
