"""Classical bitstreams with learned decoding: ``avif+nn``, ``jpeg+nn`` and ``webp+nn``.

The encoder writes the base codec's file untouched into the .mlc container; the decoder decodes
it classically and runs the restoration network of ``nn/restore.py`` on the result. The payload
and every check are specified in docs/CODECS.md ("Restored classical codecs")::

    u8 layout version (1) | u8 flags (bit 0: network on) | the base codec's file

torch is imported only when a network runs or is loaded.
"""

from __future__ import annotations

import importlib.util
import io
from pathlib import Path

import numpy as np

from .. import container as mlc
from ..errors import CorruptDataError, Error, UnsupportedError, UsageError
from ..image import grey_from_rgb
from ..metrics import mse
from ..registry import get, register
from ..weights import WEIGHTS_DIR
from .base import Encoded, NativeCodec
from .jpegbins import constrain
from .learned import weights_hash

LAYOUT_VERSION = 1
FLAG_NETWORK = 1
#: the base codecs that have a restoration network
BASES = ("avif", "jpeg", "webp")
#: steps after the network that need the base file itself, per base, each with the tag that marks
#: bench cells measured with it: jpeg's decoder keeps the restored image inside the file's
#: quantisation bins (codecs/jpegbins.py)
FILE_STEPS = {"jpeg": ("bins", constrain)}
#: side of the centre crop re-encoded to estimate an AVIF/WebP file's quality (enhance)
ESTIMATE_CROP = 384

_models: dict = {}


def model_name(base: str) -> str:
    return f"restore-{base}"


def weights_file(base: str, weights_dir: Path | None = None) -> Path:
    return (weights_dir or WEIGHTS_DIR) / f"{model_name(base)}.safetensors"


def load_network(base: str, weights_dir: Path | None = None):
    """(network, sha256 of its weights file) for ``base``, cached per path and content.
    UnsupportedError when the weights are not installed, CorruptDataError when they are not
    a restoration network's."""
    from ..weights import read_safetensors

    path = weights_file(base, weights_dir)
    if not path.is_file():
        raise UnsupportedError(f"the restoration network {path.name} is not installed")
    tensors, meta, digest = read_safetensors(path)
    key = (str(path), digest)
    if key not in _models:
        from ..nn.restore import build, for_inference

        if meta.get("model") != "restore" or meta.get("base") != base:
            raise CorruptDataError(f"{path.name} is not the restoration network of {base}")
        try:
            net = build(int(meta["width"]), int(meta["depth"]), int(meta.get("views", "1")))
            net.load_state_dict({k: v.float() for k, v in tensors.items()})
        except (KeyError, ValueError, RuntimeError) as exc:
            raise CorruptDataError(f"{path.name}: weights do not fit the restoration network ({exc})") from None
        _models[key] = for_inference(net)
    return _models[key], digest


def weights_tags(sha16: str, base: str) -> tuple[str, str]:
    """The bench's weights tags (Codec.weights_tag) of ``base``'s network whose weights file's
    SHA-256 starts with ``sha16``: run in float32, and run in bfloat16. They name the base's
    FILE_STEPS (jpeg's "bins"), so cells measured without them are measured again."""
    tag = f"{sha16}-v{LAYOUT_VERSION}" + (f"-{FILE_STEPS[base][0]}" if base in FILE_STEPS else "")
    return tag, f"{tag}-bf16"


def normalised_quality(base: str, quality: float) -> float:
    """The base codec's quality knob mapped to 0..1 over its range: the network's condition."""
    lo, hi = get(base).quality_range
    return (float(quality) - lo) / (hi - lo)


def restore(img: np.ndarray, base: str, quality: float, weights_dir: Path | None = None, net=None,
            data: bytes | None = None) -> np.ndarray:
    """The restored uint8 image (HxW grey or HxWxC) of a ``base``-decoded image coded at ``quality``
    (with ``net``, or the installed network of ``base``). With ``data``, the base file that ``img``
    was decoded from (in its stored orientation), for the base's FILE_STEPS: a JPEG's restored
    image is then kept inside the file's quantisation bins."""
    from ..nn.restore import restore_image
    from ..threads import single_torch_thread

    if net is None:
        net, _ = load_network(base, weights_dir)
    grey = img.ndim == 2 or img.shape[2] == 1
    rgb = np.repeat(img.reshape(img.shape[0], img.shape[1], 1), 3, axis=2) if grey else img
    with single_torch_thread():
        out = restore_image(net, rgb, normalised_quality(base, quality))
    if grey:
        out = grey_from_rgb(out)
        out = out[:, :, 0] if img.ndim == 2 else out
    if data is not None and base in FILE_STEPS:
        out = FILE_STEPS[base][1](data, out)
    return out


def _with_channels(img: np.ndarray, shape: tuple) -> np.ndarray:
    """A base decoder's image as HxWxC of ``shape``: a grey image that a base without a grey mode
    coded as RGB is averaged back; any other difference is CorruptDataError."""
    img = img.reshape(img.shape[0], img.shape[1], -1)
    if shape[2] == 1 and img.shape[2] == 3:
        img = grey_from_rgb(img)
    if img.shape != tuple(shape):
        raise CorruptDataError(f"embedded image is {img.shape[1]}x{img.shape[0]}x{img.shape[2]}, "
                               f"header says {shape[1]}x{shape[0]}x{shape[2]}")
    return img


class Restored(NativeCodec):
    """A classical base codec whose decoder runs a restoration network."""

    base: str = ""
    #: where the weights are looked up (tests point this at a temporary folder)
    weights_dir: Path | None = None

    def __init__(self):
        b = get(self.base)
        self.quality_range = b.quality_range
        self.quality_integer = b.quality_integer
        self.default_quality = b.default_quality
        self.bench_qualities = b.bench_qualities
        self.quality_help = b.quality_help
        self.channels = (1, 3)

    def unavailable_reason(self) -> str | None:
        reason = get(self.base).unavailable_reason()
        if reason:
            return reason
        for mod in ("torch", "safetensors"):
            if importlib.util.find_spec(mod) is None:
                return f"needs {mod} (pip install 'mlcompress[learned]')"
        if not weights_file(self.base, self.weights_dir).is_file():
            return f"no trained weights installed ({weights_file(self.base, self.weights_dir)})"
        return None

    def weights_tag(self, quality) -> str:
        """The weights' hash and the layout; "-bf16" where the network runs in bfloat16 here
        (nn.restore.for_inference), whose pixels differ from float32's by one level here and there."""
        path = weights_file(self.base, self.weights_dir)
        if not path.is_file():
            return ""
        from ..nn.restore import native_bf16

        return weights_tags(weights_hash(path).hex()[:16], self.base)[native_bf16()]

    def expected_weights_hash(self, c: mlc.Container) -> bytes | None:
        if c.model != model_name(self.base):
            raise CorruptDataError(f"{self.name} file names model {c.model!r}, not {model_name(self.base)!r}")
        return load_network(self.base, self.weights_dir)[1]

    def encode_payload(self, img: np.ndarray, quality) -> Encoded:
        base = get(self.base)
        grey = img.shape[2] == 1
        src = (img[:, :, 0] if 1 in base.channels else np.repeat(img, 3, axis=2)) if grey else img
        data = base.encode(src, quality)
        decoded = _with_channels(base.decode(data), img.shape)
        net, digest = load_network(self.base, self.weights_dir)
        restored = restore(decoded, self.base, quality, net=net, data=data)
        on = mse(img, restored) < mse(img, decoded)
        payload = bytes([LAYOUT_VERSION, FLAG_NETWORK if on else 0]) + data
        return Encoded(payload, {"quality": quality}, model_name(self.base), digest)

    def split(self, c: mlc.Container) -> tuple[bool, object, bytes]:
        """(network on, base quality, base file bytes) of a verified container; CorruptDataError
        for a layout, flag, params or signature that the spec does not allow."""
        p = c.payload
        if len(p) < 3:
            raise CorruptDataError(f"{self.name} payload is truncated ({len(p)} bytes)")
        if p[0] != LAYOUT_VERSION:
            raise CorruptDataError(f"unknown {self.name} layout version {p[0]}")
        if p[1] & ~FLAG_NETWORK:
            raise CorruptDataError(f"reserved {self.name} flag bits set ({p[1]:#04x})")
        base = get(self.base)
        q = c.params.get("quality") if set(c.params) == {"quality"} else None
        try:
            q = base.check_quality(q) if isinstance(q, (int, float)) and not isinstance(q, bool) else None
        except UsageError:
            q = None
        if q is None:
            raise CorruptDataError(f"{self.name} params must be {{\"quality\": Q}} with Q in the {self.base} range")
        data = bytes(p[2:])
        if not base.sniff(data[:32]):
            raise CorruptDataError(f"the embedded file is not a {self.base} file")
        return bool(p[1] & FLAG_NETWORK), q, data

    def decode_payload(self, c: mlc.Container) -> np.ndarray:
        on, q, data = self.split(c)
        try:
            img = get(self.base).decode(data)
        except Error:
            raise
        except Exception as exc:  # a decoder library's own error on damaged data
            raise CorruptDataError(f"cannot decode the embedded {self.base} file: {exc}") from None
        img = _with_channels(img, c.shape)
        return restore(img, self.base, q, self.weights_dir, data=data) if on else img

    def describe_payload(self, c: mlc.Container) -> dict:
        on, q, data = self.split(c)
        return {"payload_layout": c.payload[0], "network": on, "base": self.base, "base_quality": q,
                "base_bytes": len(data)}


@register
class AvifNN(Restored):
    name = "avif+nn"
    base = "avif"
    description = "AVIF (4:2:0) with a learned restoration network in the decoder"


@register
class JpegNN(Restored):
    name = "jpeg+nn"
    base = "jpeg"
    description = "JPEG (4:2:0) with a learned restoration network in the decoder"


@register
class WebpNN(Restored):
    name = "webp+nn"
    base = "webp"
    description = "WebP with a learned restoration network in the decoder"


def base_file(data: bytes) -> tuple[bytes, str]:
    """(the embedded base file, its extension) of an ``+nn`` .mlc file: what ``decompress --base``
    writes. UsageError for a file of another codec."""
    c = mlc.unpack(data)
    codec = get(c.codec)
    if not isinstance(codec, Restored):
        raise UsageError(f"--base takes avif+nn, jpeg+nn or webp+nn files; this one is {c.codec}")
    return codec.split(c)[2], get(codec.base).extension


# ---------------------------------------------------------------- enhance: files a user already has


def jpeg_quality(data: bytes) -> int:
    """The libjpeg quality (1..100) whose luma quantisation table is nearest (in log steps) to this
    JPEG's first table. The reference tables are libjpeg's own, read back from tiny JPEGs that
    Pillow writes at each quality. CorruptDataError when the tables cannot be read."""
    luma = _luma_table(data)
    refs = _reference_tables()
    errs = np.abs(np.log(refs) - np.log(np.maximum(luma, 1))).sum(axis=1)
    return int(np.argmin(errs)) + 1


def _luma_table(data: bytes) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            tables = getattr(im, "quantization", None) or {}
    except Exception as exc:
        raise CorruptDataError(f"cannot read the JPEG's quantisation tables: {exc}") from None
    if not tables or len(tables[min(tables)]) != 64:
        raise CorruptDataError("the JPEG has no 8x8 quantisation table")
    return np.asarray(tables[min(tables)], np.float64)


_REFS: list = []


def _reference_tables() -> np.ndarray:
    """100 x 64: the luma table libjpeg writes at qualities 1..100."""
    if not _REFS:
        from PIL import Image

        tiny = Image.new("RGB", (8, 8))
        for q in range(1, 101):
            buf = io.BytesIO()
            tiny.save(buf, format="JPEG", quality=q)
            _REFS.append(_luma_table(buf.getvalue()))
    return np.stack(_REFS)


def estimate_quality(base: str, img: np.ndarray, nbytes: int) -> int:
    """The quality at which ``base`` codes a centre crop of the decoded ``img`` at the bits per
    pixel of the file it came from (``nbytes`` for the whole image): an estimate, since AVIF and
    WebP files do not record the encoder's quality."""
    codec = get(base)
    h, w = img.shape[:2]
    s = min(ESTIMATE_CROP, h, w)
    y0, x0 = (h - s) // 2, (w - s) // 2
    crop = img[y0 : y0 + s, x0 : x0 + s]
    target = 8 * nbytes / (h * w)
    lo, hi = (int(v) for v in codec.quality_range)
    while lo < hi:  # smallest quality whose bpp reaches the target
        mid = (lo + hi) // 2
        if 8 * len(codec.encode(crop, mid)) / (s * s) < target:
            lo = mid + 1
        else:
            hi = mid
    return lo


def detect_base(data: bytes) -> str:
    """Which base codec wrote ``data``; UsageError naming what it is otherwise."""
    for base in BASES:
        if get(base).sniff(bytes(data[:32])):
            return base
    from .. import registry

    for codec in registry.codecs():
        if not codec.native and codec.sniff(bytes(data[:32])):
            raise UsageError(f"enhance takes JPEG, WebP or AVIF files; this is a {codec.name} file")
    if mlc.is_mlc(bytes(data[:32])):
        raise UsageError("enhance takes JPEG, WebP or AVIF files; this is an .mlc file (use decompress)")
    raise UsageError("enhance takes JPEG, WebP or AVIF files; this is not an image file it knows")


def enhance(data: bytes, weights_dir: Path | None = None) -> np.ndarray:
    """Decode a JPEG, WebP or AVIF file and restore it with its base's network -> uint8 image."""
    from ..image import exif_orientation, read_image, turn_upright

    base = detect_base(data)
    if base == "jpeg":
        from PIL import Image

        try:
            with Image.open(io.BytesIO(data)) as im:
                mode = im.mode
        except Exception as exc:
            raise CorruptDataError(f"cannot read the JPEG: {exc}") from None
        if mode == "CMYK":
            raise UnsupportedError("enhance does not take CMYK JPEGs (its network was trained on RGB JPEGs)")
        quality = jpeg_quality(data)
        if quality > get("jpeg").quality_range[1]:  # beyond the trained range: nothing to restore
            quality = get("jpeg").quality_range[1]
    # a base with FILE_STEPS is restored as stored (a JPEG's 8x8 blocks where the file has them),
    # then turned as its EXIF orientation says
    img = read_image(bytes(data), upright=base not in FILE_STEPS)
    if img.ndim == 3 and img.shape[2] == 4:
        raise UnsupportedError(f"enhance does not take images with an alpha channel (this {base} file has one)")
    if base != "jpeg":
        quality = estimate_quality(base, img, len(data))
    if base not in FILE_STEPS:
        return restore(img, base, quality, weights_dir)
    return turn_upright(restore(img, base, quality, weights_dir, data=bytes(data)), exif_orientation(bytes(data)))
