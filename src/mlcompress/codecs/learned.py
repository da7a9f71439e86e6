"""Learned codecs: ``factorized`` (bmshj2018-factorized) and ``hyperprior`` (mbt2018-mean), and
``hyperprior-sga``, which writes hyperprior files with latents refined per image (nn.refine).

They only wire :mod:`mlcompress.nn.models` to the container; torch is imported lazily. The
quality knob is the index (1..6) of the rate-distortion weight lambda the weights were trained
with; each level is one weights file ``weights/<codec>-q<level>.safetensors`` (a codec may ship
fewer levels than the table has; the others are refused as not installed). ``hyperprior-ctx-vr``
is one weights file for every level, and takes any quality in 1..6 (gain vectors interpolated
between the levels, nn.models.GainedContextHyperprior); its files record the quality.

Payload (docs/CODECS.md, "Learned codecs"), little-endian::

    u8   layout version (2; version 1 files, without the post-filter block, still decode)
    u8   stream count S (1 for factorized: y; 2 for hyperprior: y, z)
    S x  (u32 length, bytes)   entropy-coded streams (mlcompress.entropy.coder layout)
    post-filter block (mlcompress.postfilter; one zero byte when the encoder chose none)

The latent shapes are not stored: they follow from the container's width and height (padded
up to the model's multiple, 16 or 64, by edge replication). Grey images are coded as RGB and
averaged back; RGBA is refused. The container records the model (``hyperprior-q3``) and the
SHA-256 of its weights file; decoding with other weights raises ModelMismatchError.
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import re
import struct
import threading
from pathlib import Path

import numpy as np

from .. import container as mlc
from .. import postfilter
from ..errors import CorruptDataError, ModelMismatchError, UnsupportedError
from ..image import grey_from_rgb
from ..registry import register
from ..weights import WEIGHTS_DIR
from .base import Encoded, NativeCodec

#: lambda of each quality level (index 1..6), shared by both learned codecs
LAMBDAS = (0.0035, 0.0067, 0.013, 0.025, 0.0483, 0.0932)
LAYOUT_VERSION = 2
#: the layouts the decoder reads (1: written before the post-filter existed)
LAYOUT_VERSIONS = (1, 2)
#: largest (padded) image the refining encoders take: their backward pass holds every layer's
#: activations, Refiner included: about 1.1 GB per megapixel for N=64 (4.7 GB peak at 2048 x 2048)
REFINE_MAX_PIXELS = 4 << 20
#: the refining encoders' recipes, by refinement revision: nn.refine's arguments. A file's bytes
#: depend on the one that ran, so a refining codec's weights tag names it (docs/CODECS.md,
#: "Refinement revisions"). 1 fits the latents to g_s's output before the Refiner, 2 through
#: the whole decoder; 3 is 2 in about a ninth of the time (bfloat16, fewer steps, a cooler start);
#: 4 is 3 with five more steps, paid for by nn.refine's retained heap
REFINE_REVISIONS = {
    1: {"steps": 100, "lr": 0.04, "through_refiner": False},
    2: {"steps": 100, "lr": 0.04, "through_refiner": True},
    3: {"steps": 40, "lr": 0.06, "through_refiner": True, "tau_max": 0.3, "bf16": True},
    4: {"steps": 45, "lr": 0.06, "through_refiner": True, "tau_max": 0.3, "bf16": True},
}

_cache: dict = {}


def weights_path(model_name: str, weights_dir: Path | None = None) -> Path:
    return (weights_dir or WEIGHTS_DIR) / f"{model_name}.safetensors"


def load_model(path: Path):
    """(model, sha256 bytes) of a weights file, cached per path and file content."""
    blob = path.read_bytes()
    digest = hashlib.sha256(blob).digest()
    key = (str(path), digest)
    if key not in _cache:
        from ..weights import load_weights

        model, _meta, digest2 = load_weights(path)
        assert digest2 == digest
        _cache[key] = model
    return _cache[key], digest


def weights_hash(path: Path) -> bytes:
    return hashlib.sha256(path.read_bytes()).digest()


class _Learned(NativeCodec):
    arch: str = ""
    multiple: int = 16
    streams: int = 1
    quality_help = f"quality level 1..{len(LAMBDAS)} (higher is better; lambda {', '.join(map(str, LAMBDAS))})"
    quality_range = (1, len(LAMBDAS))
    default_quality = 3
    channels = (1, 3)
    #: where the weights are looked up (tests point this at a temporary folder)
    weights_dir: Path | None = None
    #: encoder-side latent refinement (nn.refine): its recipe in REFINE_REVISIONS; 0 for the
    #: plain encoder. A codec moves to another revision once it is benchmarked with it
    refine_revision: int = 0

    @property
    def bench_qualities(self) -> tuple[int, ...]:  # type: ignore[override]
        """The levels whose weights are installed (all levels when none are)."""
        levels = range(1, len(LAMBDAS) + 1)
        have = tuple(q for q in levels if weights_path(self.model_name(q), self._dir()).is_file())
        return have or tuple(levels)

    def weights_tag(self, quality) -> str:
        # the bytes depend on the weights and on the payload layout (the post-filter's choice)
        path = weights_path(self.model_name(self.check_quality(quality)), self._dir())
        return f"{weights_hash(path).hex()[:16]}-v{LAYOUT_VERSION}" if path.is_file() else ""

    def model_name(self, quality) -> str:
        return f"{self.arch}-q{int(quality)}"

    def _dir(self) -> Path:
        return self.weights_dir or WEIGHTS_DIR

    def unavailable_reason(self) -> str | None:
        for mod in ("torch", "safetensors"):
            if importlib.util.find_spec(mod) is None:
                return f"needs {mod} (pip install 'mlcompress[learned]')"
        if not any(weights_path(self.model_name(q), self._dir()).is_file() for q in self.bench_qualities):
            return f"no trained weights installed ({self._dir()}/{self.arch}-q*.safetensors)"
        return None

    def _model_for(self, name: str):
        path = weights_path(name, self._dir())
        if not path.is_file():
            raise UnsupportedError(f"weights {path.name} are not installed; cannot use model {name!r}")
        return load_model(path)

    # ------------------------------------------------------------------ encode

    def encode_payload(self, img: np.ndarray, quality) -> Encoded:
        import torch

        name = self.model_name(quality)
        model, digest = self._model_for(name)
        h, w, ch = img.shape
        rgb = np.repeat(img, 3, axis=2) if ch == 1 else img
        m = self.multiple
        ph, pw = -h % m, -w % m
        rgb = np.pad(rgb, ((0, ph), (0, pw), (0, 0)), mode="edge")
        x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float().div(255)
        if self.refine_revision:
            from ..nn.refine import refine

            if x.shape[-2] * x.shape[-1] > REFINE_MAX_PIXELS:
                raise UnsupportedError(
                    f"{self.name} refines images of up to {REFINE_MAX_PIXELS / 1e6:.1f} megapixels "
                    f"(this one is {h * w / 1e6:.1f}); use {self.file_codec}, which codes any size")
            recipe = dict(REFINE_REVISIONS[self.refine_revision])
            if recipe.get("bf16"):
                from ..nn.restore import native_bf16

                # without bfloat16 hardware oneDNN emulates it, slower than float32: the same
                # steps run in float32 there (other bytes, the same format)
                recipe["bf16"] = native_bf16()
            lat = refine(model, x, self.lmbda(quality), **recipe)
            enc = model.compress_latents(lat)
        else:
            with torch.no_grad():
                enc = model.compress(x)
        out = bytearray(struct.pack("<BB", LAYOUT_VERSION, len(enc["strings"])))
        for s in enc["strings"]:
            out += struct.pack("<I", len(s)) + s
        # the post-filter is fitted on exactly what the decoder will reconstruct
        decoded = self._reconstruct(model, enc["strings"], x.shape[-2], x.shape[-1])[:h, :w]
        out += postfilter.pack(postfilter.fit(rgb[:h, :w], decoded, self.lmbda(quality)))
        return Encoded(bytes(out), {"quality": int(quality)}, model=name, weights_hash=digest)

    def lmbda(self, quality) -> float:
        """The rate-distortion weight a quality codes for (the post-filter and refinement use it)."""
        return LAMBDAS[int(quality) - 1]

    # ------------------------------------------------------------------ decode

    def _parse_model(self, c: mlc.Container) -> str:
        m = re.fullmatch(rf"{self.arch}-q([0-9]+)", c.model or "")
        if not m or not (1 <= int(m.group(1)) <= len(LAMBDAS)):
            raise CorruptDataError(f"unknown model {c.model!r} for codec {self.name!r}")
        return c.model

    def expected_weights_hash(self, c: mlc.Container) -> bytes | None:
        name = self._parse_model(c)
        path = weights_path(name, self._dir())
        if not path.is_file():
            raise ModelMismatchError(f"file needs model {name!r}, whose weights are not installed")
        return load_model(path)[1]

    def _reconstruct(self, model, strings: list[bytes], hp: int, wp: int) -> np.ndarray:
        """The decoder's padded HxWx3 uint8 reconstruction of the streams, before the post-filter."""
        import torch

        with torch.no_grad():
            return model.decompress_uint8(strings, self.latent_shape(hp, wp))

    def _streams(self, payload: bytes) -> tuple[list[bytes], postfilter.Filter | None]:
        if len(payload) < 2:
            raise CorruptDataError("truncated learned-codec payload")
        version, count = payload[0], payload[1]
        if version not in LAYOUT_VERSIONS:
            raise CorruptDataError(f"unknown learned-codec payload layout {version}")
        if count != self.streams:
            raise CorruptDataError(f"payload has {count} streams, {self.name} needs {self.streams}")
        pos, out = 2, []
        for _ in range(count):
            if pos + 4 > len(payload):
                raise CorruptDataError("truncated learned-codec payload (stream length)")
            (n,) = struct.unpack_from("<I", payload, pos)
            pos += 4
            if pos + n > len(payload):
                raise CorruptDataError("truncated learned-codec payload (stream)")
            out.append(payload[pos : pos + n])
            pos += n
        filt = None
        if version >= 2:
            filt, pos = postfilter.unpack(payload, pos)
        if pos != len(payload):
            raise CorruptDataError("trailing bytes in learned-codec payload")
        return out, filt

    def describe_payload(self, c: mlc.Container) -> dict:
        strings, filt = self._streams(c.payload)
        if c.payload[0] < 2:
            pf = "none (layout 1)"
        elif filt is None:
            pf = "none"
        else:  # the block as stored (it ends the payload), whichever code order its writer chose
            block = len(c.payload) - 2 - sum(4 + len(s) for s in strings)
            pf = f"radius {filt.radius}, shift {filt.shift}, {block} bytes"
        return {"payload_layout": c.payload[0], "stream_bytes": [len(s) for s in strings], "post_filter": pf}

    def decode_payload(self, c: mlc.Container) -> np.ndarray:
        if c.channels not in self.channels:
            raise CorruptDataError(f"{self.name} files have 1 or 3 channels, header says {c.channels}")
        strings, filt = self._streams(c.payload)
        model, _ = self._model_for(self._parse_model(c))
        m = self.multiple
        hp, wp = -(-c.height // m) * m, -(-c.width // m) * m
        rgb = self._reconstruct(model, strings, hp, wp)[: c.height, : c.width]
        rgb = postfilter.apply(np.ascontiguousarray(rgb), filt)
        if c.channels == 1:
            return grey_from_rgb(rgb)
        return np.ascontiguousarray(rgb)

    def latent_shape(self, hp: int, wp: int) -> tuple[int, int]:
        raise NotImplementedError


@register
class FactorizedCodec(_Learned):
    name = "factorized"
    arch = "factorized"
    description = "learned: Ballé 2017/2018 factorized prior (bmshj2018-factorized), ANS-coded"
    multiple = 16
    streams = 1

    def latent_shape(self, hp: int, wp: int) -> tuple[int, int]:
        return (hp // 16, wp // 16)


@register
class HyperpriorCodec(_Learned):
    name = "hyperprior"
    arch = "hyperprior"
    description = "learned: mean-scale hyperprior (Minnen 2018 mbt2018-mean, no context model), ANS-coded"
    multiple = 64
    streams = 2

    def latent_shape(self, hp: int, wp: int) -> tuple[int, int]:
        return (hp // 64, wp // 64)


class _Refining:
    """Mixin for an encoder with per-image latent refinement (nn.refine) that writes the files of
    the codec it extends (``format_name``): any decoder of that codec reads them. Each such
    codec names its ``refine_revision``."""

    @property
    def refine_steps(self) -> int:
        return REFINE_REVISIONS[self.refine_revision]["steps"]

    def weights_tag(self, quality) -> str:
        # the bytes depend on the refinement as much as on the weights: benchmark caches key on both
        tag = super().weights_tag(quality)
        rev = f"r{self.refine_revision}" if self.refine_revision > 1 else ""
        return f"{tag}-sga{self.refine_steps}{rev}" if tag else ""


@register
class HyperpriorRefinedCodec(_Refining, HyperpriorCodec):
    """The hyperprior's encoder with per-image latent refinement: files are ``hyperprior`` files
    (any hyperprior decoder reads them), bought with over a minute of encoding per Kodak image
    on one core."""

    name = "hyperprior-sga"
    format_name = "hyperprior"
    # fits before the Refiner, the faster objective: through it, Kodak q3 cost 2.2x the encoding
    # time for about 4 % fewer bits (docs/CODECS.md, "Refiner")
    refine_revision = 1
    description = (f"learned: hyperprior with per-image latent refinement (SGA, {REFINE_REVISIONS[refine_revision]['steps']} "
                   "steps) at encode time; writes hyperprior files, slow to encode")


@register
class HyperpriorContextCodec(HyperpriorCodec):
    """The hyperprior's transforms with a context model (nn.models.ContextHyperprior): the
    latents are coded in channel groups (4 equal ones in the shipped weights; the weights record
    others), each in two checkerboard passes."""

    name = "hyperprior-ctx"
    arch = "hyperprior-ctx"
    description = ("learned: mean-scale hyperprior with a channel-group and checkerboard context model "
                   "(Minnen & Singh 2020, He et al. 2021), ANS-coded")


@register
class HyperpriorContextRefinedCodec(_Refining, HyperpriorContextCodec):
    """hyperprior-ctx's encoder with per-image latent refinement; writes hyperprior-ctx files."""

    name = "hyperprior-ctx-sga"
    format_name = "hyperprior-ctx"
    refine_revision = 4
    description = (f"learned: hyperprior-ctx with per-image latent refinement (SGA, {REFINE_REVISIONS[refine_revision]['steps']} "
                   "bfloat16 steps) at encode time; writes hyperprior-ctx files, about 20 s per Kodak image")


#: one variable-rate model is shared by every quality: its ``quality`` is set, then used, under this lock
_VR_LOCK = threading.Lock()


@register
class HyperpriorContextVRCodec(HyperpriorContextCodec):
    """hyperprior-ctx at every rate from one network (nn.models.GainedContextHyperprior, Cui et al.
    2021): per-level gain vectors on the latent, interpolated exponentially between the levels,
    so any quality in 1..6 works. Files carry the quality in their params, which the decoder needs
    for the inverse gains; the streams are coded as hyperprior-ctx codes them."""

    name = "hyperprior-ctx-vr"
    arch = "hyperprior-ctx-vr"
    quality_integer = False
    quality_help = (f"quality 1..{len(LAMBDAS)}, any value (higher is better; the integers are the trained "
                    f"lambdas {', '.join(map(str, LAMBDAS))}, values between interpolate them)")
    description = ("learned: hyperprior-ctx as one variable-rate model (gain vectors per lambda, Cui et al. 2021): "
                   "any quality in 1..6, ANS-coded")

    @property
    def bench_qualities(self) -> tuple[float, ...]:  # type: ignore[override]
        """The six trained levels and the halfway points between them."""
        return tuple(1 + i / 2 for i in range(2 * len(LAMBDAS) - 1))

    def model_name(self, quality=None) -> str:
        return self.arch

    def lmbda(self, quality) -> float:
        """The lambdas of the levels interpolated as the gains are: exponentially."""
        q = float(quality)
        lo = min(int(q), len(LAMBDAS) - 1)
        t = q - lo
        return math.exp((1 - t) * math.log(LAMBDAS[lo - 1]) + t * math.log(LAMBDAS[lo]))

    def unavailable_reason(self) -> str | None:
        reason = super().unavailable_reason()
        return reason and reason.replace(f"{self.arch}-q*", self.arch)

    def encode_payload(self, img: np.ndarray, quality) -> Encoded:
        with _VR_LOCK:
            self._model_for(self.arch)[0].quality = float(quality)
            enc = super().encode_payload(img, quality)
        return Encoded(enc.payload, {"quality": float(quality)}, enc.model, enc.weights_hash)

    def _parse_model(self, c: mlc.Container) -> str:
        if c.model != self.arch:
            raise CorruptDataError(f"unknown model {c.model!r} for codec {self.name!r}")
        return c.model

    def _quality_of(self, c: mlc.Container) -> float:
        q = c.params.get("quality")
        lo, hi = self.quality_range
        if isinstance(q, bool) or not isinstance(q, (int, float)) or not lo <= q <= hi:
            raise CorruptDataError(f"{self.name} file params need a quality in {lo}..{hi}, got {q!r}")
        return float(q)

    def decode_payload(self, c: mlc.Container) -> np.ndarray:
        q = self._quality_of(c)
        with _VR_LOCK:
            self._model_for(self._parse_model(c))[0].quality = q
            return super().decode_payload(c)


@register
class HyperpriorContextVRRefinedCodec(_Refining, HyperpriorContextVRCodec):
    """hyperprior-ctx-vr's encoder with per-image latent refinement at any quality in 1..6 (the
    latents are fitted to the interpolated lambda, through the interpolated gains); writes
    hyperprior-ctx-vr files."""

    name = "hyperprior-ctx-vr-sga"
    format_name = "hyperprior-ctx-vr"
    refine_revision = 4
    description = (f"learned: hyperprior-ctx-vr with per-image latent refinement (SGA, {REFINE_REVISIONS[refine_revision]['steps']} "
                   "bfloat16 steps) at encode time: any quality in 1..6; writes hyperprior-ctx-vr files, about 20 s per Kodak image")

    @property
    def bench_qualities(self) -> tuple[int, ...]:  # type: ignore[override]
        """The six trained levels only: at about 20 s per Kodak image the halfway points would
        double the benchmark's longest column (hyperprior-ctx-vr measures them)."""
        return tuple(range(1, len(LAMBDAS) + 1))
