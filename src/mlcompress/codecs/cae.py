"""``cae-thesis``: the thesis's convolutional autoencoder (nn/cae.py) as a real codec.

The image is coded *fully convolutionally at its own resolution*: it is padded by edge
replication to a multiple of 8 in each direction, the encoder ``g_a`` maps it to a latent
``y`` of 16 x ceil(H/8) x ceil(W/8) values (ReLU output, so y >= 0), ``y`` is quantised
uniformly with the step of the quality knob, the integer symbols are entropy-coded with a static
histogram of this image (entropy/coder.py's ANS coder with frozen integer tables, sent in the
payload), and the decoder ``g_s`` maps the dequantised latent back to pixels, which are cropped to
the original size. Nothing is ever shrunk, except under the thesis protocol below.

Quality knob (integer 1..8, higher is better): half-octave steps of the latent quantiser::

    step(q) = float32(2 ** (-(q + 1) / 2))   0.5, 0.354, 0.25, 0.177, 0.125, 0.0884, 0.0625, 0.0442
    symbol  = round(y / step)                (round half to even; >= 0 because y >= 0)
    y_hat   = float32(symbol) * step         (one IEEE float32 multiply: the same everywhere)

The trained latent lies in about 0..1.7 with per-channel spreads of 0.1-0.3; below step 1/64 the
PSNR no longer improves (the autoencoder itself, unquantised, reaches about 25.4 dB on Kodak), so
the knob spans the useful range (see weights/cae-thesis.md for measured bpp and PSNR).

Grey images are replicated to RGB and decoded back as the rounded mean of the three channels.
RGBA is not supported (UnsupportedError).

**The thesis's protocol (not honest, reproduction only):** ``encode(img, q, resize=32)`` (CLI
``mlcompress compress -c cae-thesis --resize 32``) first shrinks the whole image to 32 x 32 (Pillow
bicubic, with Pillow's antialiasing), codes that tiny image and records the flag in the payload;
the decoder decodes the 32 x 32 image and enlarges it back to the header's size (bicubic), so the
file still decodes to an image of the original shape and PSNR against the original shows what
such a file really holds. Its bpp looks tiny because a 32x32 thumbnail is all that is stored.

Determinism: encoder and decoder run with one torch thread (the model is tiny), in tiles of
TILE x TILE latent cells with a HALO-cell overlap, so the decoded pixels do not depend on the
caller's thread count or on the image size. Bitwise equality across CPU types and torch builds is
*not* promised (float convolutions); the weights hash in the container guards the model itself.

Payload, version 2 (big-endian unless said otherwise; docs/CODECS.md has the same table)::

    offset size  field
    0      1     payload version (2; version 1 files still decode)
    1      1     quality q (1..8) -> step(q)
    2      1     flags: bit 0 = thesis resize protocol; other bits 0
    [flags bit 0 set:]
    3      4     coded width  (the width of the shrunken image that was coded)
    7      4     coded height
    .      1     T: number of tables: 1 (shared by the 16 latent channels) or 16 (one per channel)
    .      6*T   per table: u32 offset (symbol value of index 0), u16 length L (1..16384)
    .      4     n: bytes of the frequency section
    .      n     sum(L) zig-zag LEB128 varints: the first L frequencies of each table; the escape
                 frequency is 2**16 - sum (>= 1)
    .      rest  the symbol stream in entropy/coder.py's layout (little-endian u32 word count,
                 ANS words, u32 escape byte count, escape varints); symbols in channel-major
                 order (C x h x w), table t = 0 for T = 1, t = channel for T = 16

Version 2 differs from version 1 only in its symbol stream: it is *sealed* (entropy/coder.py), so
a file whose header claims a larger image than was coded is refused as corrupt, before decoding
when its stream is too short for the symbols (:meth:`ChunkDecoder.require_capacity`), else as
soon as the stream runs out; a version 1 stream cannot tell its end from a run of zero latents.
"""

from __future__ import annotations

import hashlib
import importlib.util
import struct
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import container as mlc
from ..errors import CorruptDataError, UsageError
from ..image import grey_from_rgb
from ..limits import check_pixels
from ..registry import register
from ..weights import WEIGHTS_DIR
from .base import Encoded, NativeCodec

MODEL_NAME = "cae-thesis"
WEIGHTS_PATH = WEIGHTS_DIR / f"{MODEL_NAME}.safetensors"

PAYLOAD_VERSION = 2
#: the payload versions the decoder reads (1: unsealed symbol stream)
PAYLOAD_VERSIONS = (1, 2)
FLAG_RESIZE = 1
QUALITIES = range(1, 9)
#: latent cells per tile side, and the overlap in latent cells (receptive radius < 2 cells)
TILE, HALO = 32, 2
FACTOR = 8
LATENT_CHANNELS = 16
MAX_RESIZE = 4096


def step_for_quality(q: int) -> float:
    """The quantisation step of quality ``q`` (1..8): float32(2 ** (-(q + 1) / 2))."""
    return float(np.float32(2.0 ** (-(int(q) + 1) / 2.0)))


# ---------------------------------------------------------------- model, tiles, threads


from ..threads import single_torch_thread as one_torch_thread  # noqa: E402


_MODELS: dict = {}
_MODELS_LOCK = threading.Lock()


def load_model(path: str | Path = WEIGHTS_PATH):
    """(model in eval mode, SHA-256 of the file) for a safetensors weights file; cached per file."""
    from safetensors.torch import load

    from ..nn.cae import build_cae

    p = Path(path)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    with _MODELS_LOCK:
        if key not in _MODELS:
            data = p.read_bytes()
            model = build_cae()
            try:
                model.load_state_dict(load(data), strict=True)
            except Exception as exc:  # a damaged or foreign weights file
                raise UsageError(f"{p}: not cae-thesis weights ({exc})") from None
            model.eval()
            _MODELS[key] = (model, hashlib.sha256(data).digest())
        return _MODELS[key]


def _run_tiled(fn, grid_h: int, grid_w: int, s_out: int, take, put) -> None:
    """Apply a convolutional ``fn`` tile by tile over a grid of latent cells.

    ``take(y0, y1, x0, x1)`` returns fn's input for latent rows y0:y1, columns x0:x1;
    ``put(y0, y1, x0, x1, out)`` stores fn's output (``s_out`` samples per cell) cropped to the tile.
    Tiles overlap by HALO cells so that every stored value equals the whole-image result.
    """
    for y0 in range(0, grid_h, TILE):
        y1 = min(grid_h, y0 + TILE)
        a0, a1 = max(0, y0 - HALO), min(grid_h, y1 + HALO)
        for x0 in range(0, grid_w, TILE):
            x1 = min(grid_w, x0 + TILE)
            b0, b1 = max(0, x0 - HALO), min(grid_w, x1 + HALO)
            out = fn(take(a0, a1, b0, b1))
            r0, c0 = (y0 - a0) * s_out, (x0 - b0) * s_out
            put(y0, y1, x0, x1, out[:, :, r0 : r0 + (y1 - y0) * s_out, c0 : c0 + (x1 - x0) * s_out])


def pad_to_multiple(rgb: np.ndarray, m: int = FACTOR) -> np.ndarray:
    """Edge-replicate a uint8 HxWx3 image on the bottom/right to multiples of ``m``."""
    h, w = rgb.shape[:2]
    return np.pad(rgb, ((0, -h % m), (0, -w % m), (0, 0)), mode="edge")


def analysis(model, rgb: np.ndarray):
    """The latent of a uint8 HxWx3 image: float32 tensor 1 x 16 x ceil(H/8) x ceil(W/8), >= 0."""
    import torch

    padded = pad_to_multiple(rgb)
    gh, gw = padded.shape[0] // FACTOR, padded.shape[1] // FACTOR
    y = torch.empty(1, LATENT_CHANNELS, gh, gw)

    def take(a0, a1, b0, b1):
        tile = padded[a0 * FACTOR : a1 * FACTOR, b0 * FACTOR : b1 * FACTOR]
        return torch.from_numpy(np.ascontiguousarray(tile)).permute(2, 0, 1)[None].float().div_(255.0)

    def put(y0, y1, x0, x1, out):
        y[:, :, y0:y1, x0:x1] = out

    with one_torch_thread(), torch.inference_mode():
        _run_tiled(model.encode, gh, gw, 1, take, put)
    return y


def to_uint8(x) -> np.ndarray:
    """float N x 3 x H x W in 0..1 (first image) -> uint8 HxWx3, rounding half to even."""
    import torch

    return (x[0] * 255.0).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()


def synthesis(model, y_hat, height: int, width: int) -> np.ndarray:
    """Decode a latent (float tensor 1 x 16 x h x w) to uint8 HxWx3 cropped to height x width."""
    import torch

    gh, gw = int(y_hat.shape[2]), int(y_hat.shape[3])
    out = np.empty((gh * FACTOR, gw * FACTOR, 3), np.uint8)

    def take(a0, a1, b0, b1):
        return y_hat[:, :, a0:a1, b0:b1]

    def put(y0, y1, x0, x1, tile):
        out[y0 * FACTOR : y1 * FACTOR, x0 * FACTOR : x1 * FACTOR] = to_uint8(tile)

    with one_torch_thread(), torch.inference_mode():
        _run_tiled(model.decode, gh, gw, FACTOR, take, put)
    return np.ascontiguousarray(out[:height, :width])


def quantize(y, step: float) -> np.ndarray:
    """int64 symbols C x h x w of a latent tensor 1 x C x h x w: round(y / step), half to even."""
    import torch

    return (y[0] / torch.tensor(step, dtype=torch.float32)).round().to(torch.int64).numpy()


def dequantize(symbols: np.ndarray, step: float):
    """float32 tensor 1 x C x h x w of int symbols C x h x w: symbols * step."""
    import torch

    return torch.from_numpy(symbols.astype(np.float32) * np.float32(step))[None]


# ---------------------------------------------------------------- symbols <-> bytes


def _tables_for(sym: np.ndarray, per_channel: bool):
    """(TableSet, table_index) of a static histogram for symbols C x h x w."""
    from ..entropy.coder import MAX_LENGTH, TableSet, pmf_to_table

    groups = [sym[c] for c in range(sym.shape[0])] if per_channel else [sym]
    rows, offsets, lengths = [], [], []
    for g in groups:
        v = g.ravel()
        lo = int(v.min())
        n = min(int(v.max()) - lo + 1, MAX_LENGTH)
        inside = v[v < lo + n] - lo
        counts = np.bincount(inside, minlength=n).astype(np.float64)
        rows.append(pmf_to_table(counts, tail=float(v.size - inside.size)))
        offsets.append(lo)
        lengths.append(n)
    freqs = np.zeros((len(rows), max(lengths) + 1), np.int32)
    for i, r in enumerate(rows):
        freqs[i, : len(r)] = r
    tables = TableSet(freqs, np.asarray(offsets, np.int32), np.asarray(lengths, np.int32))
    if per_channel:
        tix = np.broadcast_to(np.arange(sym.shape[0])[:, None, None], sym.shape)
    else:
        tix = np.zeros(sym.shape, np.int64)
    return tables, tix


def pack_symbols(sym: np.ndarray, sealed: bool = True) -> bytes:
    """Tables + symbol stream (see the module docstring) for int symbols C x h x w, >= 0;
    ``sealed`` (payload version 2) or not (version 1).

    Tries one shared table and one table per channel and keeps the shorter result.
    """
    from ..entropy.coder import write_varints, encode_symbols

    best = None
    for per_channel in (False, True):
        tables, tix = _tables_for(sym, per_channel)
        head = bytes([tables.count])
        freqs = []
        for t in range(tables.count):
            n = int(tables.lengths[t])
            head += struct.pack(">IH", int(tables.offsets[t]), n)
            freqs.append(tables.freqs[t, :n])
        fbytes = write_varints(np.concatenate(freqs))
        out = head + struct.pack(">I", len(fbytes)) + fbytes + encode_symbols(sym, tix, tables, sealed)
        if best is None or len(out) < len(best):
            best = out
    return best


def unpack_symbols(data: bytes, shape: tuple[int, int, int], sealed: bool = True) -> np.ndarray:
    """Inverse of :func:`pack_symbols`: int64 symbols of ``shape`` (C x h x w); CorruptDataError.

    A sealed stream too short for ``shape`` is refused before anything of that shape is allocated.
    """
    from ..entropy.coder import MAX_LENGTH, TOTAL, ChunkDecoder, TableSet, read_varints

    if len(data) < 1:
        raise CorruptDataError("cae-thesis payload truncated (table count)")
    count = data[0]
    if count not in (1, shape[0]):
        raise CorruptDataError(f"cae-thesis payload has {count} tables (expected 1 or {shape[0]})")
    pos = 1
    if len(data) < pos + 6 * count + 4:
        raise CorruptDataError("cae-thesis payload truncated (tables)")
    offsets, lengths = [], []
    for _ in range(count):
        off, n = struct.unpack_from(">IH", data, pos)
        pos += 6
        if off >= 2**31 or not 1 <= n <= MAX_LENGTH:
            raise CorruptDataError("cae-thesis payload has an invalid table")
        offsets.append(off)
        lengths.append(n)
    (nbytes,) = struct.unpack_from(">I", data, pos)
    pos += 4
    total_entries = sum(lengths)
    if nbytes > len(data) - pos or nbytes < total_entries:  # every varint takes >= 1 byte
        raise CorruptDataError("cae-thesis payload truncated (frequencies)")
    values = read_varints(data[pos : pos + nbytes], total_entries)
    pos += nbytes
    freqs = np.zeros((count, max(lengths) + 1), np.int32)
    k = 0
    for t, n in enumerate(lengths):
        row = values[k : k + n]
        k += n
        escape = TOTAL - int(row.sum())
        if row.min() < 1 or row.max() >= TOTAL or escape < 1:
            raise CorruptDataError("cae-thesis payload has invalid frequencies")
        freqs[t, :n] = row
        freqs[t, n] = escape
    tables = TableSet(freqs, np.asarray(offsets, np.int32), np.asarray(lengths, np.int32))
    dec = ChunkDecoder(data[pos:], tables, sealed)
    plane = shape[1] * shape[2]
    if sealed:
        dec.require_capacity({0: shape[0] * plane} if count == 1 else {t: plane for t in range(count)})
    if count == 1:
        tix = np.zeros(shape, np.int64)
    else:
        tix = np.broadcast_to(np.arange(shape[0])[:, None, None], shape)
    sym = dec.decode(tix)
    dec.finish()
    if sym.size and sym.min() < 0:
        raise CorruptDataError("cae-thesis payload has negative latent symbols")
    return sym


# ---------------------------------------------------------------- payload


@dataclass(frozen=True)
class Payload:
    """The parsed payload of a cae-thesis container."""

    quality: int
    coded_width: int
    coded_height: int
    resized: bool
    symbols: np.ndarray  # int64 16 x ceil(coded_height/8) x ceil(coded_width/8)

    @property
    def step(self) -> float:
        return step_for_quality(self.quality)


def parse_payload(c: mlc.Container) -> Payload:
    """Validate and parse a cae-thesis payload; CorruptDataError on anything inconsistent."""
    data = c.payload
    if len(data) < 3:
        raise CorruptDataError("cae-thesis payload truncated (header)")
    version, q, flags = data[0], data[1], data[2]
    if version not in PAYLOAD_VERSIONS:
        raise CorruptDataError(f"unknown cae-thesis payload version {version}")
    if q not in QUALITIES:
        raise CorruptDataError(f"invalid cae-thesis quality {q}")
    if flags & ~FLAG_RESIZE:
        raise CorruptDataError(f"invalid cae-thesis flags {flags:#x}")
    pos = 3
    cw, ch = c.width, c.height
    if flags & FLAG_RESIZE:
        if len(data) < pos + 8:
            raise CorruptDataError("cae-thesis payload truncated (coded size)")
        cw, ch = struct.unpack_from(">II", data, pos)
        pos += 8
        if not (1 <= cw <= MAX_RESIZE and 1 <= ch <= MAX_RESIZE):
            raise CorruptDataError(f"invalid cae-thesis coded size {cw}x{ch}")
        check_pixels(cw, ch)
    shape = (LATENT_CHANNELS, -(-ch // FACTOR), -(-cw // FACTOR))
    sym = unpack_symbols(data[pos:], shape, sealed=version >= 2)
    return Payload(q, cw, ch, bool(flags & FLAG_RESIZE), sym)


def _resize(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """Pillow bicubic resize of a uint8 HxWx3 image (antialiased when shrinking)."""
    from PIL import Image

    pil = Image.fromarray(rgb, "RGB").resize((width, height), Image.Resampling.BICUBIC)
    return np.asarray(pil, np.uint8).copy()


@register
class CAEThesisCodec(NativeCodec):
    """The thesis's 52,067-parameter convolutional autoencoder, quantised and ANS-coded."""

    name = "cae-thesis"
    description = "thesis convolutional autoencoder (52k params, CIFAR-10), full resolution"
    quality_help = "quality 1-8 (latent step 2**(-(q+1)/2); higher is better)"
    quality_range = (1, 8)
    default_quality = 5
    bench_qualities = (1, 2, 3, 4, 5, 6, 7, 8)
    channels = (1, 3)
    lossless = False
    #: accepts ``encode(..., resize=N)`` (the thesis's protocol; the CLI's --resize)
    supports_resize = True

    def __init__(self, weights: str | Path | None = None) -> None:
        self.weights = Path(weights) if weights is not None else WEIGHTS_PATH

    def unavailable_reason(self) -> str | None:
        for mod in ("torch", "safetensors"):
            if importlib.util.find_spec(mod) is None:
                return f"{mod} is not installed (pip install 'mlcompress[learned]')"
        if not self.weights.is_file():
            return f"weights {self.weights} are missing (train them: mlcompress train cae-thesis)"
        return None

    def _model(self):
        return load_model(self.weights)

    def weights_tag(self, quality) -> str:
        # the bytes depend on the weights and on the payload version (benchmark caches key on both)
        if not self.weights.is_file():
            return ""
        return f"{hashlib.sha256(self.weights.read_bytes()).hexdigest()[:16]}-v{PAYLOAD_VERSION}"

    def expected_weights_hash(self, c: mlc.Container) -> bytes | None:
        return self._model()[1]

    # -- encoding

    def encode(self, img: np.ndarray, quality: float | None = None, *, resize: int | None = None) -> bytes:
        """Compress ``img``; ``resize=N`` applies the thesis's shrink-to-NxN protocol (see module)."""
        self.require_available()
        hwc = self.check_image(img)
        q = self.check_quality(quality)
        if resize is not None:
            if isinstance(resize, bool) or not isinstance(resize, (int, np.integer)) or not 1 <= resize <= MAX_RESIZE:
                raise UsageError(f"resize must be an integer in 1..{MAX_RESIZE}, got {resize!r}")
            resize = int(resize)
        enc = self.encode_payload(hwc, q, resize=resize)
        h, w, ch = hwc.shape
        return mlc.pack(mlc.Container(self.name, w, h, ch, enc.payload, enc.params, enc.model, enc.weights_hash))

    def encode_payload(self, img: np.ndarray, quality, resize: int | None = None) -> Encoded:
        model, sha = self._model()
        rgb = np.repeat(img, 3, axis=2) if img.shape[2] == 1 else img
        head = bytes([PAYLOAD_VERSION, quality, FLAG_RESIZE if resize else 0])
        params = {"quality": quality, "step": step_for_quality(quality)}
        if resize:
            rgb = _resize(rgb, resize, resize)
            head += struct.pack(">II", resize, resize)
            params["resize"] = resize
            params["protocol"] = "thesis-resize (not an honest full-resolution codec)"
        sym = quantize(analysis(model, rgb), step_for_quality(quality))
        return Encoded(head + pack_symbols(sym), params, model=MODEL_NAME, weights_hash=sha)

    # -- decoding

    def decode_payload(self, c: mlc.Container) -> np.ndarray:
        if c.channels not in self.channels:
            raise CorruptDataError(f"cae-thesis does not write {c.channels}-channel images")
        if c.model != MODEL_NAME:
            raise CorruptDataError(f"file names model {c.model!r}, not {MODEL_NAME!r}")
        p = parse_payload(c)
        model, _ = self._model()
        rgb = synthesis(model, dequantize(p.symbols, p.step), p.coded_height, p.coded_width)
        if p.resized:
            rgb = _resize(rgb, c.width, c.height)
        if c.channels == 1:
            return grey_from_rgb(rgb)
        return rgb


# ---------------------------------------------------------------- the thesis's full pipeline


def _thesis_pipeline(name: str):
    """``rle+vq+cae-thesis`` under ``name``: RLE, then VQ colour reduction, then cae-thesis.

    A chain of codecs/pipeline.py: every stage but the last acts in the pixel domain. RLE is
    lossless, so as the first stage it changes no pixel (the chain equals ``vq+cae-thesis``); VQ
    reduces the colours; cae-thesis (default quality 5) writes the bitstream. The chain's quality
    knob goes to VQ (the number of colours). ``rle+vq+cae`` is the same chain under the short name.
    """
    from .pipeline import ChainCodec

    class ThesisPipeline(ChainCodec):
        def __init__(self) -> None:
            super().__init__("rle+vq+cae-thesis")
            self.name = name

        @property
        def description(self):
            return "thesis pipeline: rle (lossless, changes nothing) -> vq colours -> cae-thesis"

    return ThesisPipeline()


# Registered once under the thesis's short name; "rle+vq+cae-thesis" resolves to the same chain
# through the chain builder, so it needs no second registry entry (and is not benchmarked twice).
register(_thesis_pipeline("rle+vq+cae"))
