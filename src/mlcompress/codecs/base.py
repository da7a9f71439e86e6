"""The codec protocol shared by every codec, native or classical.

A codec turns a uint8 image (HxW, HxWx3 or HxWx4, values 0..255) into bytes and back::

    data = codec.encode(img, quality)   # -> bytes (a complete file)
    img2 = codec.decode(data)           # -> uint8 array with img's shape

Native codecs (subclasses of :class:`NativeCodec`) put their payload in the .mlc container
(docs/FORMAT.md) and implement only ``encode_payload`` / ``decode_payload``. Classical codecs
write their own standard format (JPEG, WebP, ...) and recognise it with ``sniff``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .. import container as mlc
from ..errors import CorruptDataError, ModelMismatchError, UnsupportedError, UsageError
from ..image import as_hwc, from_hwc


class Codec(ABC):
    """One codec. Subclasses set the class attributes and implement encode/decode."""

    #: stable id, used in the registry, the CLI and the .mlc container
    name: ClassVar[str]
    description: ClassVar[str] = ""
    #: file extension of what ``encode`` returns
    extension: ClassVar[str] = ".mlc"
    lossless: ClassVar[bool] = False
    #: True for codecs written in this project (their bytes are .mlc containers)
    native: ClassVar[bool] = True
    #: what the quality knob means, e.g. "quality 1-95 (higher is better)"
    quality_help: ClassVar[str] = "no quality setting"
    default_quality: ClassVar[float | None] = None
    #: inclusive range of valid qualities, or None when the codec has no knob
    quality_range: ClassVar[tuple[float, float] | None] = None
    #: whether the knob must be an integer
    quality_integer: ClassVar[bool] = True
    #: the default sweep for benchmarks (about 0.1-2 bpp for lossy codecs)
    bench_qualities: ClassVar[tuple] = ()
    #: supported channel counts
    channels: ClassVar[tuple[int, ...]] = (1, 3, 4)
    #: the largest width and height the format (or its library) codes and reads back; None: no
    #: limit below the pixel limit
    max_side: ClassVar[int | None] = None

    def available(self) -> bool:
        """False when a library the codec needs is missing; the codec is then listed, not used."""
        return self.unavailable_reason() is None

    def unavailable_reason(self) -> str | None:
        return None

    def weights_tag(self, quality) -> str:
        """A short id of the trained weights that ``quality`` uses ("" for codecs without
        weights). Benchmark caches key on it, so re-exported weights are measured again."""
        return ""

    def check_quality(self, quality: float | None) -> float | None:
        """Validate a quality knob, filling in the default; raise UsageError when out of range."""
        if self.quality_range is None:
            if quality is not None:
                raise UsageError(f"codec {self.name!r} has no quality setting")
            return None
        if quality is None:
            quality = self.default_quality
        try:
            q = float(quality)
        except (TypeError, ValueError):
            raise UsageError(f"quality must be a number, got {quality!r}") from None
        lo, hi = self.quality_range
        if not (lo <= q <= hi) or q != q:
            raise UsageError(f"{self.name} quality must be in {lo:g}..{hi:g} ({self.quality_help}), got {quality}")
        if self.quality_integer:
            if q != int(q):
                raise UsageError(f"{self.name} quality must be an integer, got {quality}")
            return int(q)
        return q

    def check_image(self, img: np.ndarray) -> np.ndarray:
        hwc = as_hwc(img)
        if hwc.shape[2] not in self.channels:
            kinds = {1: "grey", 3: "RGB", 4: "RGBA"}
            why = ""
            if hwc.shape[2] == 4:  # say where the alpha channel comes from
                why = ("; this one has transparent pixels" if (hwc[:, :, 3] < 255).any()
                       else "; this one's alpha channel is fully opaque: save it without alpha")
            raise UnsupportedError(
                f"codec {self.name!r} does not support {kinds[hwc.shape[2]]} images "
                f"(supports {', '.join(kinds[c] for c in self.channels)}){why}"
            )
        h, w = hwc.shape[:2]
        if self.max_side is not None and max(h, w) > self.max_side:
            raise UnsupportedError(
                f"codec {self.name!r} codes images of at most {self.max_side:,} pixels per side "
                f"(a limit of the format); this one is {w}x{h}: choose another codec"
            )
        return hwc

    def require_available(self) -> None:
        reason = self.unavailable_reason()
        if reason:
            raise UnsupportedError(f"codec {self.name!r} is unavailable: {reason}")

    @abstractmethod
    def encode(self, img: np.ndarray, quality: float | None = None) -> bytes:
        """Compress a uint8 image into a complete file's bytes."""

    @abstractmethod
    def decode(self, data: bytes) -> np.ndarray:
        """Decompress bytes written by ``encode`` into a uint8 image (HxW for grey, else HxWxC)."""

    def sniff(self, prefix: bytes) -> bool:
        """True when ``prefix`` (at least 32 bytes of a file) looks like this codec's output."""
        return False


@dataclass(frozen=True)
class Encoded:
    """What a native codec's ``encode_payload`` returns: the container fields it owns."""

    payload: bytes
    params: dict
    model: str = ""
    weights_hash: bytes = b""


class NativeCodec(Codec):
    """A codec of this project: its payload lives in the .mlc container."""

    native = True
    extension = ".mlc"
    #: the codec id its files carry, when it is another codec's: a variant that only encodes
    #: differently (hyperprior-sga) writes, and reads, its base codec's files
    format_name: ClassVar[str | None] = None

    @property
    def file_codec(self) -> str:
        return self.format_name or self.name

    @abstractmethod
    def encode_payload(self, img: np.ndarray, quality) -> Encoded:
        """Encode a validated uint8 HxWxC image; ``quality`` is already checked."""

    @abstractmethod
    def decode_payload(self, c: mlc.Container) -> np.ndarray:
        """Decode a verified container into a uint8 HxWxC array of shape ``c.shape``.

        Must validate every count in the payload against the bytes present before allocating,
        and raise CorruptDataError on inconsistent data.
        """

    def expected_weights_hash(self, c: mlc.Container) -> bytes | None:
        """For learned codecs: the SHA-256 of the weights this installation would use for ``c``."""
        return None

    def describe_payload(self, c: mlc.Container) -> dict:
        """What `mlcompress info` shows about the payload beyond the container header, without
        decoding the image ({} when nothing); CorruptDataError when the payload is malformed."""
        return {}

    def encode(self, img: np.ndarray, quality: float | None = None) -> bytes:
        self.require_available()
        hwc = self.check_image(img)
        q = self.check_quality(quality)
        enc = self.encode_payload(hwc, q)
        h, w, ch = hwc.shape
        return mlc.pack(mlc.Container(self.file_codec, w, h, ch, enc.payload, enc.params, enc.model, enc.weights_hash))

    def decode(self, data: bytes) -> np.ndarray:
        c = mlc.unpack(data)
        if c.codec != self.file_codec:
            raise CorruptDataError(f"file was written by codec {c.codec!r}, not {self.file_codec!r}")
        return from_hwc(self.decode_container(c))

    def decode_container(self, c: mlc.Container) -> np.ndarray:
        """Decode a verified container (checks the model hash first); returns HxWxC."""
        self.require_available()
        expected = self.expected_weights_hash(c)
        if expected is not None and expected != c.weights_hash:
            raise ModelMismatchError(
                f"file was encoded with model {c.model!r} weights {c.weights_hash.hex()[:12]}, "
                f"but the installed weights are {expected.hex()[:12]}; refusing to decode"
            )
        out = self.decode_payload(c)
        if out.shape != c.shape or out.dtype != np.uint8:
            raise CorruptDataError(f"decoded image has shape {out.shape}, header says {c.shape}")
        return out

    def sniff(self, prefix: bytes) -> bool:
        return mlc.is_mlc(prefix)
