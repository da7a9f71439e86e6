"""Chains of codecs: ``"a+b+c"`` names a codec made of the registered stages a, b and c.

Semantics (docs/PIPELINES.md)::

    img --a.encode/a.decode--> img_a --b.encode/b.decode--> img_b --c.encode_payload--> payload

Every stage but the last acts in the pixel domain: the image is encoded and decoded by that
stage, so a lossless stage changes no pixel and a lossy one (VQ) reduces colours. The last stage,
which must be a native codec, writes the bitstream. ``vq+rle`` is therefore VQ colour reduction
followed by RLE, which then picks its palette-index layout: VQ indices coded with RLE. ``rle+vq``
(the thesis's order) gives exactly the pixels of ``vq``, because RLE is lossless.

The container's codec id is the chain name; its params are ``{"stages": [{"codec": name,
"quality": q, "params": {...}}, ...]}`` with each stage's own params; the payload is the last
stage's, and decoding dispatches to the last stage's payload decoder. The chain's quality knob
goes to the first stage that has one; the other stages use their defaults.
"""

from __future__ import annotations

import numpy as np

from .. import container as mlc
from .. import registry
from ..errors import CorruptDataError, UsageError
from .base import Encoded, NativeCodec


class ChainCodec(NativeCodec):
    """A chain of stages, given as registered names or as codec instances (Python API)::

        ChainCodec("vq+rle")
        ChainCodec(stages=[VqCodec(n_init=10), registry.get("rle")])   # name "vq+rle"
    """

    def __init__(self, name: str | None = None, stages: list | None = None):
        if stages is None:
            if not name or "+" not in name:
                raise UsageError(f"a chain name joins two or more codecs with '+', got {name!r}")
            self._names, self._stages = name.split("+"), None
        else:
            if len(stages) < 2:
                raise UsageError("a chain needs at least two stages")
            self._names, self._stages = [s.name for s in stages], list(stages)
        if any(not n for n in self._names):
            raise UsageError(f"empty stage in chain name {name!r}")
        self.name = "+".join(self._names)

    @property
    def stages(self) -> list:
        """The stage codecs, resolved on first use (so chains can be registered at import)."""
        if self._stages is None:
            stages = [registry.get(n) for n in self._names]
            if not isinstance(stages[-1], NativeCodec):
                raise UsageError(f"the last stage of {self.name!r} must be a native codec, not {stages[-1].name!r}")
            self._stages = stages
        return self._stages

    def weights_tag(self, quality) -> str:
        knob = self._knob()
        tags = [s.weights_tag(quality if i == knob else s.check_quality(None)) for i, s in enumerate(self.stages)]
        return "+".join(t for t in tags if t)

    def _knob(self):
        """Index of the stage that receives the chain's quality, or None."""
        return next((i for i, s in enumerate(self.stages) if s.quality_range is not None), None)

    # Codec attributes, derived from the stages -------------------------------------------
    @property
    def description(self):
        return "chain: " + " -> ".join(self._names) + " (every stage but the last in the pixel domain)"

    @property
    def lossless(self):
        return all(s.lossless for s in self.stages)

    @property
    def channels(self):
        return tuple(c for c in (1, 3, 4) if all(c in s.channels for s in self.stages))

    def _from_knob(self, attr, default):
        i = self._knob()
        return default if i is None else getattr(self.stages[i], attr)

    quality_range = property(lambda self: self._from_knob("quality_range", None))
    quality_integer = property(lambda self: self._from_knob("quality_integer", True))
    default_quality = property(lambda self: self._from_knob("default_quality", None))
    bench_qualities = property(lambda self: self._from_knob("bench_qualities", ()))

    @property
    def quality_help(self):
        i = self._knob()
        return "no quality setting" if i is None else f"{self.stages[i].quality_help} (goes to {self._names[i]})"

    def unavailable_reason(self):
        for s in self.stages:
            reason = s.unavailable_reason()
            if reason:
                return f"stage {s.name}: {reason}"
        return None

    # Coding ------------------------------------------------------------------------------
    def encode_payload(self, img, quality):
        knob = self._knob()
        h, w, c = img.shape
        record = []
        for i, stage in enumerate(self.stages):
            q = stage.check_quality(quality if i == knob else None)
            if i == len(self.stages) - 1:
                enc = stage.encode_payload(img, q)
                record.append({"codec": stage.name, "quality": q, "params": enc.params})
                return Encoded(enc.payload, {"stages": record}, enc.model, enc.weights_hash)
            if isinstance(stage, NativeCodec):
                enc = stage.encode_payload(img, q)
                sub = mlc.Container(stage.name, w, h, c, enc.payload, enc.params, enc.model, enc.weights_hash)
                out = stage.decode_payload(sub)
                params = enc.params
            else:  # a classical codec as a pixel-domain stage
                out = stage.decode(stage.encode(img, q))
                params = {}
            record.append({"codec": stage.name, "quality": q, "params": params})
            img = np.ascontiguousarray(out.reshape(h, w, c))
        raise AssertionError("unreachable")

    def _last_container(self, c: mlc.Container) -> mlc.Container:
        rec = c.params.get("stages")
        if not isinstance(rec, list) or len(rec) != len(self._names):
            raise CorruptDataError(f"chain {self.name!r}: params do not list its {len(self._names)} stages")
        last = rec[-1]
        if not (isinstance(last, dict) and last.get("codec") == self._names[-1]
                and isinstance(last.get("params"), dict)):
            raise CorruptDataError(f"chain {self.name!r}: malformed params of the last stage")
        return mlc.Container(self._names[-1], c.width, c.height, c.channels, c.payload, last["params"],
                             c.model, c.weights_hash)

    def decode_payload(self, c: mlc.Container) -> np.ndarray:
        return self.stages[-1].decode_payload(self._last_container(c))

    def expected_weights_hash(self, c: mlc.Container):
        return self.stages[-1].expected_weights_hash(self._last_container(c))


def build_chain(name: str) -> ChainCodec:
    """The registry's chain builder: resolves every stage now, so unknown names fail here."""
    chain = ChainCodec(name)
    chain.stages  # noqa: B018  (raises UsageError for an unknown or unusable stage)
    return chain


registry.set_chain_builder(build_chain)
#: The thesis's combinations, listed by `mlcompress codecs`.
for _name in ("vq+rle", "rle+vq"):
    registry.register(ChainCodec(_name))
