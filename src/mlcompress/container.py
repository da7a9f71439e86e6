"""The ``.mlc`` container, version 1 (specified in docs/FORMAT.md; this docstring mirrors it).

Big-endian, unsigned::

    offset size  field
    0      4     magic  b"\\x8aMLC"
    4      1     version (1)
    5      1     channels (1, 3, 4)
    6      2     header_len: bytes of the variable header that follows the fixed 16
    8      4     width  (1 .. 2**31-1)
    12     4     height (1 .. 2**31-1)
    16     1+n   codec id (len, ASCII [a-z0-9][a-z0-9+._-]*, 1..64)
    .      2+n   params (len 0..4096, UTF-8 JSON object, nesting depth <= 16; written with sorted
                 keys, compact; len 0 reads as {})
    .      1+n   model name (len 0..128, ASCII [A-Za-z0-9+._-])
    .      1+n   weights hash (len 32 when a model is named, else 0; SHA-256)
    .      4     payload_len
    .      n     payload
    .      4     CRC-32 of every byte before it

The four sub-fields fill header_len exactly. Checks run in the order magic, version, fixed fields,
every length (header_len, the sub-fields, payload_len, no trailing bytes), CRC, field syntax,
pixel limit, each with its own clear error, before the payload is handed to a codec.
"""

from __future__ import annotations

import json
import re
import struct
import zlib
from dataclasses import dataclass, field

from .errors import CorruptDataError, UsageError, VersionError
from .limits import check_pixels

MAGIC = b"\x8aMLC"
VERSION = 1
FIXED = struct.Struct(">4sBBHII")  # magic, version, channels, header_len, width, height
FIXED_SIZE = FIXED.size  # 16
_CODEC_RE = re.compile(r"[a-z0-9][a-z0-9+._-]{0,63}")  # used with fullmatch: no newline slips past "$"
_MODEL_RE = re.compile(r"[A-Za-z0-9+._-]{1,128}")
MAX_DIM = 2**31 - 1
#: bounds on the params block, for readers and writers: its bytes, and how deeply its JSON arrays and
#: objects nest (a chain's record is 4 deep); parsed only within them, so a forged block cannot
#: exhaust the parser's recursion or memory
MAX_PARAMS_BYTES = 4096
MAX_PARAMS_DEPTH = 16


@dataclass(frozen=True)
class Container:
    """The decoded fields of an .mlc file."""

    codec: str
    width: int
    height: int
    channels: int
    payload: bytes
    params: dict = field(default_factory=dict)
    model: str = ""
    weights_hash: bytes = b""

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.height, self.width, self.channels)


def is_mlc(prefix: bytes) -> bool:
    """True when the bytes start with the .mlc magic (the first 4 of 16 bytes suffice)."""
    return prefix[:4] == MAGIC


def _params_bytes(params: dict) -> bytes:
    try:
        raw = json.dumps(params, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()
    except (TypeError, ValueError, RecursionError) as exc:
        raise UsageError(f"codec parameters are not JSON-serialisable: {exc}") from None
    if len(raw) > MAX_PARAMS_BYTES:
        raise UsageError(f"codec parameters too long ({len(raw)} bytes; the format allows {MAX_PARAMS_BYTES})")
    if nesting_depth(raw) > MAX_PARAMS_DEPTH:
        raise UsageError(f"codec parameters nest deeper than the format allows ({MAX_PARAMS_DEPTH})")
    return raw


def nesting_depth(raw: bytes) -> int:
    """How deeply the arrays and objects of JSON text ``raw`` nest (brackets inside strings do not
    count); at least the recursion depth a JSON parser reaches on it, whether or not it is valid."""
    depth = peak = 0
    in_string = escaped = False
    for b in raw:
        if in_string:
            if escaped:
                escaped = False
            elif b == 0x5C:  # backslash
                escaped = True
            elif b == 0x22:  # quote
                in_string = False
        elif b == 0x22:
            in_string = True
        elif b in (0x5B, 0x7B):  # [ {
            depth += 1
            peak = max(peak, depth)
        elif b in (0x5D, 0x7D):  # ] }
            depth -= 1
    return peak


def _reject_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    v = float(text)
    if v in (float("inf"), float("-inf")):
        raise ValueError(f"{text} overflows a double")
    return v


def _unique_keys(pairs: list) -> dict:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise ValueError("duplicate key")
    return out


def parse_params(raw: bytes) -> dict:
    """The params block as a dict: strict JSON (RFC 8259: no NaN or Infinity, no duplicate keys),
    an object at the top, within MAX_PARAMS_BYTES and MAX_PARAMS_DEPTH; any key order and
    whitespace; an empty block is {}. CorruptDataError otherwise."""
    if not raw:
        return {}
    if len(raw) > MAX_PARAMS_BYTES:
        raise CorruptDataError(f"malformed codec parameters (over {MAX_PARAMS_BYTES} bytes)")
    if nesting_depth(raw) > MAX_PARAMS_DEPTH:
        raise CorruptDataError(f"malformed codec parameters (nested deeper than {MAX_PARAMS_DEPTH})")
    try:
        params = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant, parse_float=_finite_float,
                            object_pairs_hook=_unique_keys)
    except (UnicodeDecodeError, ValueError):
        raise CorruptDataError("malformed codec parameters (not strict JSON)") from None
    if not isinstance(params, dict):
        raise CorruptDataError("malformed codec parameters (not an object)")
    return params


def pack(c: Container) -> bytes:
    """Serialise a Container to bytes."""
    if not _CODEC_RE.fullmatch(c.codec):
        raise UsageError(f"invalid codec id {c.codec!r}")
    if c.model and not _MODEL_RE.fullmatch(c.model):
        raise UsageError(f"invalid model name {c.model!r}")
    if len(c.weights_hash) != (32 if c.model else 0):
        raise UsageError("a model needs a 32-byte SHA-256 weights hash, and no model no hash")
    if c.channels not in (1, 3, 4) or not (1 <= c.width <= MAX_DIM and 1 <= c.height <= MAX_DIM):
        raise UsageError(f"invalid image geometry {c.width}x{c.height}x{c.channels}")
    params = _params_bytes(c.params)
    if len(c.payload) > 0xFFFFFFFF:
        raise UsageError("payload too long for format version 1")
    codec = c.codec.encode("ascii")
    model = c.model.encode("ascii")
    var = (
        bytes([len(codec)]) + codec
        + struct.pack(">H", len(params)) + params
        + bytes([len(model)]) + model
        + bytes([len(c.weights_hash)]) + c.weights_hash
    )
    head = FIXED.pack(MAGIC, VERSION, c.channels, len(var), c.width, c.height)
    body = head + var + struct.pack(">I", len(c.payload)) + c.payload
    return body + struct.pack(">I", zlib.crc32(body))


@dataclass(frozen=True)
class Header:
    """What the fixed first 16 bytes say."""

    version: int
    channels: int
    width: int
    height: int
    header_len: int


def read_header(prefix: bytes) -> Header:
    """Parse and check the fixed 16-byte block (magic, version, channels, size)."""
    if len(prefix) < 4 or not is_mlc(prefix):
        raise CorruptDataError("not an .mlc file (bad magic)")
    if len(prefix) < FIXED_SIZE:
        raise CorruptDataError("truncated .mlc file (header incomplete)")
    magic, version, channels, header_len, width, height = FIXED.unpack_from(prefix)
    if version != VERSION:
        if version > VERSION:
            raise VersionError(
                f"written by a newer mlcompress (format version {version}; this one reads {VERSION})"
            )
        raise CorruptDataError(f"unknown .mlc format version {version}")
    if channels not in (1, 3, 4):
        raise CorruptDataError(f"invalid channel count {channels}")
    if not (1 <= width <= MAX_DIM and 1 <= height <= MAX_DIM):
        raise CorruptDataError(f"invalid image size {width}x{height}")
    return Header(version, channels, width, height, header_len)


class _Reader:
    def __init__(self, data: bytes, pos: int, end: int):
        self.data, self.pos, self.end = data, pos, end

    def take(self, n: int, what: str) -> bytes:
        if self.pos + n > self.end:
            raise CorruptDataError(f"truncated .mlc file ({what} runs past the header)")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u8(self, what: str) -> int:
        return self.take(1, what)[0]

    def u16(self, what: str) -> int:
        return struct.unpack(">H", self.take(2, what))[0]


def unpack(data: bytes, check_limits: bool = True) -> Container:
    """Parse and verify an .mlc file; raise a CorruptDataError subclass naming the first problem,
    in the order of docs/FORMAT.md: fixed fields, every length, CRC, field syntax, pixel limit."""
    data = bytes(data)
    hdr = read_header(data)
    var_end = FIXED_SIZE + hdr.header_len
    if var_end + 4 > len(data):
        raise CorruptDataError("truncated .mlc file (header runs past the end)")
    r = _Reader(data, FIXED_SIZE, var_end)
    codec = r.take(r.u8("codec id length"), "codec id")
    params_raw = r.take(r.u16("params length"), "params")
    model = r.take(r.u8("model name length"), "model name")
    weights_hash = r.take(r.u8("hash length"), "weights hash")
    if r.pos != var_end:
        raise CorruptDataError("malformed .mlc header (length mismatch)")
    (payload_len,) = struct.unpack_from(">I", data, var_end)
    payload_start = var_end + 4
    crc_pos = payload_start + payload_len
    if crc_pos + 4 > len(data):
        raise CorruptDataError(
            f"truncated .mlc file: payload declares {payload_len} bytes, "
            f"{max(0, len(data) - payload_start - 4)} present"
        )
    if crc_pos + 4 < len(data):
        raise CorruptDataError(f"trailing data after the end of the .mlc file ({len(data) - crc_pos - 4} bytes)")
    (crc,) = struct.unpack_from(">I", data, crc_pos)
    if zlib.crc32(data[:crc_pos]) != crc:
        raise CorruptDataError("checksum mismatch: the .mlc file is corrupt")

    try:
        codec_s = codec.decode("ascii")
        model_s = model.decode("ascii")
    except UnicodeDecodeError:
        raise CorruptDataError("malformed .mlc header (non-ASCII name)") from None
    if not _CODEC_RE.fullmatch(codec_s):
        raise CorruptDataError(f"malformed codec id {codec_s!r}")
    if model_s and not _MODEL_RE.fullmatch(model_s):
        raise CorruptDataError(f"malformed model name {model_s!r}")
    if len(weights_hash) != (32 if model_s else 0):
        raise CorruptDataError("malformed .mlc header (model hash)")
    params = parse_params(params_raw)
    if check_limits:
        check_pixels(hdr.width, hdr.height, hdr.channels)
    return Container(
        codec=codec_s,
        width=hdr.width,
        height=hdr.height,
        channels=hdr.channels,
        payload=data[payload_start:crc_pos],
        params=params,
        model=model_s,
        weights_hash=weights_hash,
    )
