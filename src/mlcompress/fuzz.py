"""Mutation fuzzing of the .mlc decoders: every native codec, one deterministic random stream.

How it works::

    report = run(cases=100_000, seed=0)  # valid small files of every available native codec,
    print(report.summary())              # mutated and fed to mlcompress.decode

(An encoder that writes another codec's files, like ``hyperprior-sga``, is fuzzed as that codec
unless named: the same decoder reads both.)

Each case takes one valid file and applies one mutation (see :data:`MUTATIONS`): raw bit flips,
byte changes, truncation, extension, fixed-header field changes, random bytes, and mutations
*below the checksum*: the file is parsed, its payload, params, geometry, model fields or codec id
changed, and the container re-packed with a fresh CRC-32, so each codec's payload parser is
exercised, not just the container's CRC check.

Allowed outcomes of ``mlcompress.decode``: a uint8 image whose shape matches the header, or an
:class:`mlcompress.Error` with a non-empty message. Anything else is a *crash*: another exception
(IndexError, ValueError, MemoryError, ...), a wrong result, or a case that runs past the time
limit (a hang, interrupted with SIGALRM). Crash inputs are written to the crash folder (default
``fuzz-crashes/``) with a ``.txt`` describing the traceback and how to reproduce it.

Classical codecs' files (``--classical``) get the byte-level mutations only.

Run it as ``python -m mlcompress.fuzz --cases N [--seed S] [--codecs a,b]`` (``make fuzz``; its own
entry point, :func:`main`) or ``mlcompress fuzz`` (the same options, :func:`add_arguments`); the
command runs with a small pixel limit, so a header claiming a huge image must be refused before
allocation, and an address-space limit (``resource.RLIMIT_AS``), so an allocation driven by a
forged count fails loudly as a MemoryError crash instead of quietly succeeding.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
import signal
import struct
import sysconfig
import threading
import time
import traceback
import warnings
import zlib
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from . import container as mlc
from .errors import Error

#: pixel limit while fuzzing: a 64x64 image passes, a forged 65536x65536 header must not allocate
FUZZ_MAX_PIXELS = 64 * 64
#: a case slower than this is reported as slow
SLOW_SECONDS = 2.0
#: a case still running after this is interrupted and recorded as a hang
HANG_SECONDS = 20.0
#: inputs written per distinct crash signature (the rest are only counted)
MAX_SAVED_PER_SIGNATURE = 5

_INTERESTING_U8 = (0, 1, 2, 0x7F, 0x80, 0xFE, 0xFF)
_INTERESTING_U16 = (0, 1, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF)
_INTERESTING_U32 = (0, 1, 2, 0xFF, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF)
_INTERESTING_INTS = (0, 1, -1, 2, 3, 7, 8, 255, 256, 65535, 65536, 2**31 - 1, 2**31, 2**32, 2**63, -(2**63))


def seed_images() -> list[np.ndarray]:
    """A few small synthetic images (uint8, HxWxC): gradients, runs, noise, one pixel, RGBA, grey."""
    r = np.random.default_rng(2024)
    yy, xx = np.mgrid[0:8, 0:8]
    grad = np.stack([xx * 32, yy * 32, (xx + yy) * 16], axis=2).astype(np.uint8)
    runs = np.zeros((6, 10, 3), np.uint8)
    runs[:, 5:] = (200, 10, 90)
    runs[2:4, :3] = 255
    noise_grey = r.integers(0, 256, (5, 7, 1), dtype=np.uint8)
    rgba = np.dstack([grad[:4, :6], r.integers(0, 256, (4, 6), dtype=np.uint8)])
    one = np.array([[[10, 20, 30]]], np.uint8)
    return [grad, runs, noise_grey, rgba, one]


def native_codecs(names: list[str] | None = None, classical: bool = False) -> tuple[list, dict[str, str]]:
    """The available native codecs (all, or those named) and {name: reason} for those skipped.
    Without names, an encoder that writes another codec's files (``hyperprior-sga``) is left to
    that codec.

    With ``classical`` the classical codecs (JPEG, WebP, ...) join in: ``mlcompress.decode``
    reads their files too, through Pillow and imagecodecs, and must fail as cleanly.
    """
    from . import registry

    skipped: dict[str, str] = {}
    chosen = []
    wanted = [registry.get(n) for n in names] if names else [
        c for c in registry.codecs() if c.native or classical]
    for codec in wanted:
        if not codec.native and not classical:
            skipped[codec.name] = "not a native (.mlc) codec (add --classical)"
            continue
        if not names and codec.native and codec.file_codec != codec.name:
            # a refining encoder: its files are another codec's, read by that codec's decoder, so
            # its seeds would fuzz the same decoder again (and cost a minute of refinement)
            skipped[codec.name] = f"writes {codec.file_codec} files, fuzzed as {codec.file_codec}"
            continue
        reason = codec.unavailable_reason()
        if reason:
            skipped[codec.name] = reason
            continue
        chosen.append(codec)
    return chosen, skipped


def _qualities(codec) -> list:
    if codec.quality_range is None:
        return [None]
    lo, hi = codec.quality_range
    picks = [codec.default_quality, lo, hi]
    out = []
    for q in picks:
        if q is None:
            continue
        q = int(q) if codec.quality_integer else float(q)
        if q not in out:
            out.append(q)
    return out


def seed_corpus(codecs: list) -> tuple[dict[str, list[bytes]], dict[str, str]]:
    """Valid .mlc files per codec name: each seed image it supports at a few qualities.

    Returns ({codec name: [file bytes]}, {codec name: why it has no seed}).
    """
    corpus: dict[str, list[bytes]] = {}
    skipped: dict[str, str] = {}
    images = seed_images()
    for codec in codecs:
        files, last_error = [], None
        for img in images:
            if img.shape[2] not in codec.channels:
                continue
            for q in _qualities(codec):
                try:
                    files.append(codec.encode(img, q))
                except Error as exc:  # e.g. a learned codec that needs a bigger image
                    last_error = exc
        if files:
            corpus[codec.name] = files
        else:
            skipped[codec.name] = f"could not encode any seed image: {last_error}"
    return corpus, skipped


# ---------------------------------------------------------------- mutations


def fix_crc(data: bytearray) -> bytearray:
    """Recompute the trailing CRC-32 so that a raw mutation reaches the parsers behind it."""
    if len(data) >= 4:
        data[-4:] = struct.pack(">I", zlib.crc32(bytes(data[:-4])))
    return data


def _mutate_bytes(buf: bytearray, rng: random.Random) -> bytearray:
    """One generic byte-level change of ``buf`` (bit flips, byte sets, insert, delete, cut, ...)."""
    kind = rng.randrange(9)
    n = len(buf)
    if kind == 0 and n:  # flip 1..8 bits
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(n * 8)
            buf[i // 8] ^= 1 << (i % 8)
    elif kind == 1 and n:  # set random bytes
        for _ in range(rng.randint(1, 4)):
            buf[rng.randrange(n)] = rng.randrange(256)
    elif kind == 2 and n:  # interesting byte
        buf[rng.randrange(n)] = rng.choice(_INTERESTING_U8)
    elif kind == 3 and n >= 2:  # interesting 16-bit value, either byte order
        i = rng.randrange(n - 1)
        buf[i : i + 2] = struct.pack(rng.choice((">H", "<H")), rng.choice(_INTERESTING_U16))
    elif kind == 4 and n >= 4:  # interesting 32-bit value
        i = rng.randrange(n - 3)
        buf[i : i + 4] = struct.pack(rng.choice((">I", "<I")), rng.choice(_INTERESTING_U32))
    elif kind == 5:  # truncate
        del buf[rng.randrange(n + 1) :]
    elif kind == 6:  # extend
        buf += bytes(rng.randrange(256) for _ in range(rng.choice((1, 2, 4, 16, 100))))
    elif kind == 7 and n:  # delete a slice
        i = rng.randrange(n)
        del buf[i : i + rng.randint(1, 8)]
    else:  # insert random bytes
        i = rng.randrange(n + 1)
        buf[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
    return buf


def m_raw(data: bytes, rng: random.Random, others: list[bytes]) -> bytes:
    """A byte-level mutation anywhere in the file; the CRC stays stale (the CRC must catch it)."""
    return bytes(_mutate_bytes(bytearray(data), rng))


def m_raw_fixed_crc(data: bytes, rng: random.Random, others: list[bytes]) -> bytes:
    """A byte-level mutation anywhere before the CRC, then a fresh CRC: exercises the header parser."""
    buf = bytearray(data)
    body = _mutate_bytes(buf[:-4], rng)
    return bytes(fix_crc(body + b"\0\0\0\0"))


def m_fixed_header(data: bytes, rng: random.Random, others: list[bytes]) -> bytes:
    """Change one field of the fixed 16 bytes (version, channels, lengths, width, height)."""
    buf = bytearray(data)
    field_ = rng.choice(("version", "channels", "header_len", "width", "height", "payload_len"))
    if field_ == "version":
        buf[4] = rng.choice((0, 2, 255))
    elif field_ == "channels":
        buf[5] = rng.choice((0, 1, 2, 3, 4, 5, 255))
    elif field_ == "header_len":
        buf[6:8] = struct.pack(">H", rng.choice(_INTERESTING_U16 + (len(data) - 20,)))
    elif field_ in ("width", "height"):
        off = 8 if field_ == "width" else 12
        old = struct.unpack_from(">I", buf, off)[0]
        buf[off : off + 4] = struct.pack(">I", rng.choice(_INTERESTING_U32 + (old + 1, max(old - 1, 0), old * 2)))
    else:
        try:
            var_end = mlc.FIXED_SIZE + struct.unpack_from(">H", buf, 6)[0]
            buf[var_end : var_end + 4] = struct.pack(">I", rng.choice(_INTERESTING_U32 + (len(data),)))
        except struct.error:
            pass
    return bytes(fix_crc(buf) if rng.random() < 0.7 else buf)


def m_random(data: bytes, rng: random.Random, others: list[bytes]) -> bytes:
    """Random bytes, sometimes behind a valid magic or a whole valid fixed header."""
    tail = bytes(rng.randrange(256) for _ in range(rng.choice((0, 1, 3, 8, 20, 64, 300))))
    prefix = rng.choice((b"", mlc.MAGIC, data[: mlc.FIXED_SIZE], data[: len(data) // 2]))
    out = bytearray(prefix + tail)
    return bytes(fix_crc(out) if rng.random() < 0.5 else out)


def repack(c: mlc.Container, **changes) -> bytes | None:
    """Re-serialise a container with changed fields and a fresh CRC; None if pack() refuses."""
    try:
        return mlc.pack(dataclasses.replace(c, **changes))
    except Error:
        return None


def _unpack(data: bytes) -> mlc.Container:
    return mlc.unpack(data, check_limits=False)


def m_payload(data: bytes, rng: random.Random, others: list[bytes]) -> bytes:
    """Mutate the codec payload (1..3 byte-level changes) and re-pack with a fresh CRC."""
    c = _unpack(data)
    payload = bytearray(c.payload)
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        payload = _mutate_bytes(payload, rng)
    return repack(c, payload=bytes(payload)) or data


def _mutate_value(v, rng: random.Random):
    r = rng.random()
    if r < 0.45 and isinstance(v, (int, float)) and not isinstance(v, bool):
        return rng.choice((v + 1, v - 1, v * 2, -v, v // 2 if isinstance(v, int) else v / 2) + _INTERESTING_INTS)
    if r < 0.55:
        return rng.choice((None, True, False, "", "x", [], {}, 0.5, float(2**70), [1, 2, 3]))
    if r < 0.7 and isinstance(v, list) and v:
        v = list(v)
        i = rng.randrange(len(v))
        if rng.random() < 0.5:
            v[i] = _mutate_value(v[i], rng)
        else:
            del v[i]
        return v
    if r < 0.8 and isinstance(v, dict) and v:
        return _mutate_params(v, rng)
    if isinstance(v, str):
        return rng.choice(("", v + "x", v[:-1], "rle", "vq", "none", "\u00e9"))
    return rng.choice(_INTERESTING_INTS)


def _mutate_params(params: dict, rng: random.Random) -> dict:
    p = dict(params)
    keys = list(p)
    r = rng.random()
    if keys and r < 0.7:
        k = rng.choice(keys)
        p[k] = _mutate_value(p[k], rng)
    elif keys and r < 0.85:
        del p[rng.choice(keys)]
    else:
        p[rng.choice(keys + ["v", "x"]) if keys else "v"] = rng.choice(_INTERESTING_INTS)
    return p


def m_params(data: bytes, rng: random.Random, others: list[bytes]) -> bytes:
    """Change, remove or add a codec parameter (JSON), re-packed with a fresh CRC."""
    c = _unpack(data)
    return repack(c, params=_mutate_params(c.params, rng)) or data


def m_geometry(data: bytes, rng: random.Random, others: list[bytes]) -> bytes:
    """Change width, height or channels, re-packed with a fresh CRC (the payload no longer fits)."""
    c = _unpack(data)
    which = rng.randrange(4)
    big = (1, 2, c.width + 1, max(1, c.width - 1), c.width * 2, 64, 65, 4096, 65535, 2**20, 2**31 - 1)
    if which == 0:
        return repack(c, width=rng.choice(big)) or data
    if which == 1:
        return repack(c, height=rng.choice(big)) or data
    if which == 2:
        return repack(c, channels=rng.choice((1, 3, 4))) or data
    return repack(c, width=c.height, height=c.width) or data


def m_model(data: bytes, rng: random.Random, others: list[bytes]) -> bytes:
    """Change the model name or the weights hash (re-packed): learned codecs must refuse it."""
    c = _unpack(data)
    choice = rng.randrange(3)
    if choice == 0:
        h = bytearray(c.weights_hash or bytes(32))
        h[rng.randrange(32)] ^= 1 << rng.randrange(8)
        return repack(c, weights_hash=bytes(h), model=c.model or "fuzz-model") or data
    if choice == 1:
        return repack(c, model=rng.choice(("fuzz-model", (c.model or "m") + "-x", "a" * 128)),
                       weights_hash=c.weights_hash or bytes(32)) or data
    return repack(c, model="", weights_hash=b"") or data


def m_swap_codec(data: bytes, rng: random.Random, others: list[bytes]) -> bytes:
    """Hand this payload (and params) to another codec, or another codec's payload to this one."""
    c = _unpack(data)
    d = _unpack(rng.choice(others))
    if rng.random() < 0.5:
        return repack(c, codec=d.codec, model=d.model, weights_hash=d.weights_hash) or data
    return repack(c, payload=d.payload, params=d.params if rng.random() < 0.5 else c.params) or data


def m_stacked(data: bytes, rng: random.Random, others: list[bytes]) -> bytes:
    """Two to four of the re-packing mutations (payload, params, geometry, swap) in a row."""
    for _ in range(rng.randint(2, 4)):
        mutation = rng.choice((m_payload, m_payload, m_params, m_geometry, m_swap_codec))
        data = mutation(data, rng, others)
    return data


#: name -> (mutation, weight); payload-level mutations dominate since they reach the codecs
MUTATIONS: dict[str, tuple[Callable, int]] = {
    "stacked": (m_stacked, 2),
    "raw": (m_raw, 2),
    "raw+crc": (m_raw_fixed_crc, 2),
    "fixed-header": (m_fixed_header, 1),
    "random": (m_random, 1),
    "payload": (m_payload, 8),
    "params": (m_params, 3),
    "geometry": (m_geometry, 2),
    "model": (m_model, 1),
    "swap-codec": (m_swap_codec, 2),
}


#: the mutations that do not parse the container (used for classical codecs' files)
_BYTE_MUTATIONS = ("raw", "random")


def mutate(data: bytes, rng: random.Random, others: list[bytes] | None = None) -> tuple[str, bytes]:
    """One random mutation of a valid .mlc file: (mutation name, mutated bytes)."""
    names = list(MUTATIONS) if mlc.is_mlc(data) else list(_BYTE_MUTATIONS)
    weights = [MUTATIONS[n][1] for n in names]
    name = rng.choices(names, weights)[0]
    return name, MUTATIONS[name][0](data, rng, others or [data])


# ---------------------------------------------------------------- running


class _Hang(BaseException):
    """Raised by SIGALRM inside a case that runs too long (BaseException: no codec may catch it)."""


@dataclass
class Finding:
    """One crash (or hang) signature and the cases that hit it."""

    signature: str
    kind: str  # "crash", "hang", "bad-result"
    message: str
    count: int = 0
    saved: list[str] = field(default_factory=list)
    minimal: str = ""  # hex of the smallest reproducer found


@dataclass
class FuzzReport:
    """What a fuzzing run did and found."""

    cases: int = 0
    seconds: float = 0.0
    seed: int = 0
    codecs: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    outcomes: Counter = field(default_factory=Counter)  # "ok" or the mlcompress.Error subclass name
    mutations: Counter = field(default_factory=Counter)
    findings: dict[str, Finding] = field(default_factory=dict)
    slow: list[tuple[float, str]] = field(default_factory=list)  # (seconds, saved path or "")
    max_case_seconds: float = 0.0

    @property
    def exception_types(self) -> list[str]:
        """Every exception type seen: the mlcompress errors and the crashes' types."""
        errors = {k for k in self.outcomes if k not in ("ok", "crash", "hang", "bad-result")}
        return sorted(errors | {f.signature.split()[0] for f in self.findings.values() if f.kind == "crash"})

    @property
    def crashes(self) -> int:
        return sum(f.count for f in self.findings.values())

    def summary(self) -> str:
        rate = self.cases / self.seconds if self.seconds else 0.0
        lines = [
            f"fuzzed {self.cases:,} cases (seed {self.seed}) over {len(self.codecs)} codecs "
            f"[{', '.join(self.codecs) or 'none'}] in {self.seconds:.1f} s ({rate:,.0f} cases/s); "
            f"slowest case {self.max_case_seconds * 1000:.1f} ms",
            f"crashes: {self.crashes} ({len(self.findings)} distinct); slow cases (>{SLOW_SECONDS:g} s): {len(self.slow)}; "
            f"distinct exception types: {len(self.exception_types)} ({', '.join(self.exception_types) or 'none'})",
            "outcomes: " + ", ".join(f"{k} {v:,}" for k, v in self.outcomes.most_common()),
            "mutations: " + ", ".join(f"{k} {v:,}" for k, v in self.mutations.most_common()),
        ]
        for name, reason in sorted(self.skipped.items()):
            lines.append(f"skipped {name}: {reason}")
        for f in self.findings.values():
            lines.append(f"{f.kind.upper()} x{f.count}: {f.signature}: {f.message}")
            if f.minimal:
                lines.append(f"    minimal reproducer ({len(f.minimal) // 2} bytes): {f.minimal}")
            lines.extend(f"    saved {p}" for p in f.saved)
        return "\n".join(lines)


def check_result(data: bytes, img) -> str | None:
    """Why a successful decode of ``data`` is wrong (None when it is a plausible image)."""
    if not isinstance(img, np.ndarray) or img.dtype != np.uint8:
        return f"decode returned {type(img).__name__} {getattr(img, 'dtype', '')}, not a uint8 array"
    if not mlc.is_mlc(data):  # a classical format: any image within the pixel limit
        from .limits import get_max_pixels

        if not (img.ndim == 2 or (img.ndim == 3 and img.shape[2] in (1, 3, 4))) or 0 in img.shape:
            return f"decoded shape {img.shape} is not an image"
        if img.shape[0] * img.shape[1] > get_max_pixels():
            return f"decoded {img.shape[1]}x{img.shape[0]} image exceeds the pixel limit"
        return None
    try:
        c = mlc.unpack(data, check_limits=False)
    except Error as exc:
        return f"decode succeeded although the container is invalid: {exc}"
    want = (c.height, c.width) if c.channels == 1 else c.shape
    if img.shape != want:
        return f"decoded shape {img.shape}, header says {want}"
    return None


def _signature(exc: BaseException) -> str:
    """Exception type and the innermost frame outside the standard library and site-packages."""
    frames = traceback.extract_tb(exc.__traceback__)
    stdlib = sysconfig.get_paths()["stdlib"]
    ours = [f for f in frames if "site-packages" not in f.filename and not f.filename.startswith(stdlib)] or frames
    where = f"{Path(ours[-1].filename).name}:{ours[-1].lineno}" if ours else "?"
    return f"{type(exc).__name__} at {where}"


def minimize(data: bytes, fails: Callable[[bytes], bool], budget: int = 3000) -> bytes:
    """Shrink an input while ``fails(candidate)`` still holds (for regression tests).

    Removes ever smaller chunks of the payload (re-packed with a fresh CRC), of the bytes before
    the CRC when the container does not parse (CRC recomputed), or of a classical file. At most ``budget``
    calls of ``fails``; returns the smallest failing input found (``data`` itself at worst).
    """
    if not mlc.is_mlc(data):  # a classical format: cut anywhere
        blob, rebuild = data, (lambda raw: raw)
    else:
        try:
            c = _unpack(data)
            blob, rebuild = c.payload, (lambda payload: repack(c, payload=payload))
        except Error:
            blob, rebuild = data[:-4], (lambda body: bytes(fix_crc(bytearray(body) + b"\0\0\0\0")))
    best, tries = data, 0
    chunk = max(1, len(blob) // 2)
    while tries < budget:
        i, changed = 0, False
        while i < len(blob) and tries < budget:
            cand = blob[:i] + blob[i + chunk :]
            out = rebuild(cand)
            tries += 1
            if out is not None and len(out) < len(best) and fails(out):
                blob, best, changed = cand, out, True
            else:
                i += chunk
        if not changed:
            if chunk == 1:
                break
            chunk //= 2
    return best


class _Recorder:
    def __init__(self, report: FuzzReport, crash_dir: Path | None):
        self.report, self.crash_dir = report, crash_dir

    def save(self, data: bytes, kind: str, note: str) -> str:
        if self.crash_dir is None:
            return ""
        self.crash_dir.mkdir(parents=True, exist_ok=True)
        name = f"{kind}-{hashlib.sha256(data).hexdigest()[:16]}"
        path = self.crash_dir / f"{name}.mlc"
        path.write_bytes(data)
        (self.crash_dir / f"{name}.txt").write_text(note)
        return str(path)

    def finding(self, data: bytes, kind: str, signature: str, message: str, note: str) -> Finding:
        f = self.report.findings.setdefault(signature, Finding(signature, kind, message))
        f.count += 1
        if len(f.saved) < MAX_SAVED_PER_SIGNATURE:
            path = self.save(data, kind, note)
            if path and path not in f.saved:
                f.saved.append(path)
        return f


@contextmanager
def time_limit(seconds: float):
    """Raise ``_Hang`` inside the block after ``seconds`` (SIGALRM: POSIX, main thread only).

    A timer already running outside (pytest-timeout's, say) is put back with its remaining time.
    """
    if seconds <= 0 or not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_alarm(signum, frame):
        raise _Hang(f"case ran longer than {seconds:g} s")

    old_handler = signal.signal(signal.SIGALRM, on_alarm)
    outer, _ = signal.setitimer(signal.ITIMER_REAL, seconds)
    t0 = time.monotonic()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old_handler)
        if outer:
            signal.setitimer(signal.ITIMER_REAL, max(outer - (time.monotonic() - t0), 1e-3))


def decode_case(data: bytes, decode: Callable | None = None, hang_seconds: float = HANG_SECONDS):
    """Decode one input under the time limit; returns (outcome, exception or None, seconds).

    outcome is "ok", the name of the mlcompress.Error raised, or "crash"/"hang"/"bad-result".
    """
    if decode is None:
        import mlcompress

        decode = mlcompress.decode
    t0 = time.perf_counter()
    try:
        with time_limit(hang_seconds):
            img = decode(data)
    except _Hang as exc:
        return "hang", exc, time.perf_counter() - t0
    except Error as exc:
        dt = time.perf_counter() - t0
        if not str(exc).strip():
            return "crash", exc, dt
        return type(exc).__name__, None, dt
    except Exception as exc:  # noqa: BLE001 - anything else is what we are looking for
        return "crash", exc, time.perf_counter() - t0
    dt = time.perf_counter() - t0
    problem = check_result(data, img)
    if problem:
        return "bad-result", AssertionError(problem), dt
    return "ok", None, dt


def run(
    cases: int,
    seed: int = 0,
    codecs: list[str] | None = None,
    crash_dir: str | Path | None = "fuzz-crashes",
    max_pixels: int | None = FUZZ_MAX_PIXELS,
    decode: Callable | None = None,
    corpus: dict[str, list[bytes]] | None = None,
    hang_seconds: float = HANG_SECONDS,
    progress: bool = False,
    classical: bool = False,
) -> FuzzReport:
    """Fuzz ``decode`` (default mlcompress.decode) with ``cases`` mutated files.

    ``corpus`` ({codec: [valid files]}) defaults to :func:`seed_corpus` of the available native
    codecs (all, or ``codecs``; ``classical`` adds the classical ones). Returns a :class:`FuzzReport`; crash inputs go to ``crash_dir``
    (None: not saved). The pixel limit is set to ``max_pixels`` for the run and restored after.
    """
    from . import limits

    report = FuzzReport(seed=seed)
    if corpus is None:
        chosen, report.skipped = native_codecs(codecs, classical)
        corpus, no_seed = seed_corpus(chosen)
        report.skipped.update(no_seed)
    report.codecs = sorted(corpus)
    if not corpus:
        return report
    old_limit = limits._max_pixels
    if max_pixels is not None:
        limits.set_max_pixels(max_pixels)
    rec = _Recorder(report, Path(crash_dir) if crash_dir is not None else None)
    rng = random.Random(seed)
    names = report.codecs
    # what the container mutations may splice in (swap-codec, stacked): .mlc files only, since a
    # --classical corpus also holds JPEG, WebP, ... files that have no container to take apart
    every = [f for n in names for f in corpus[n] if mlc.is_mlc(f)]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=cases, unit="case", mininterval=1.0)
    t_start = time.perf_counter()
    quiet = warnings.catch_warnings()  # Pillow warns about (mutated) sizes near the limit
    quiet.__enter__()
    warnings.simplefilter("ignore")
    try:
        for i in range(cases):
            name = names[i % len(names)]
            original = rng.choice(corpus[name])
            mutation, data = mutate(original, rng, every)
            report.mutations[mutation] += 1
            outcome, exc, dt = decode_case(data, decode, hang_seconds)
            report.cases += 1
            report.max_case_seconds = max(report.max_case_seconds, dt)
            if outcome in ("crash", "hang", "bad-result"):
                report.outcomes[outcome] += 1
                tb = "".join(traceback.format_exception(exc))
                note = (f"case {i} of seed {seed}, codec {name}, mutation {mutation}, {dt:.3f} s\n"
                        f"reproduce: python -c \"import mlcompress, pathlib; mlcompress.set_max_pixels"
                        f"({max_pixels}); mlcompress.decode(pathlib.Path('FILE').read_bytes())\"\n\n{tb}")
                sig = _signature(exc) if outcome == "crash" else f"{outcome} ({name}, {mutation})"
                finding = rec.finding(data, outcome, sig, str(exc)[:200] or repr(exc), note)
                if outcome != "hang" and finding.count == 1:
                    def same(d: bytes, outcome=outcome, sig=sig) -> bool:
                        o, e, _ = decode_case(d, decode, hang_seconds)
                        return o == outcome and (o != "crash" or _signature(e) == sig)

                    small = minimize(data, same)
                    finding.minimal = small.hex()
                    finding.saved.insert(0, rec.save(small, "min-" + outcome, note))
            else:
                report.outcomes[outcome] += 1
                if dt > SLOW_SECONDS:
                    path = rec.save(data, "slow", f"case {i} of seed {seed}, codec {name}, {mutation}, {dt:.3f} s\n")
                    report.slow.append((dt, path))
            if bar is not None:
                bar.update(1)
    finally:
        quiet.__exit__(None, None, None)
        report.seconds = time.perf_counter() - t_start
        limits._max_pixels = old_limit
        if bar is not None:
            bar.close()
    return report


def limit_address_space(extra_mb: int) -> str:
    """Cap this process's address space at its current size + ``extra_mb`` MiB (Linux only).

    Call after the heavy imports (torch) so their reservations count in the baseline. Returns a
    line describing what was set, or why not.
    """
    try:
        import resource

        vm_kb = next(int(line.split()[1]) for line in Path("/proc/self/status").read_text().splitlines()
                     if line.startswith("VmSize:"))
    except (ImportError, OSError, StopIteration, ValueError):
        return "address-space limit not available on this platform"
    cap = (vm_kb * 1024) + extra_mb * 2**20
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY and cap > hard:
        cap = hard
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    return f"address space capped at {cap / 2**20:,.0f} MiB (current {vm_kb / 1024:,.0f} MiB + {extra_mb} MiB)"


def fuzz_main(cases: int, seed: int = 0, codecs: list[str] | None = None, crash_dir: str = "fuzz-crashes",
              max_pixels: int | None = None, mem_mb: int = 1024, hang_seconds: float | None = None,
              progress: bool = False, classical: bool = False) -> tuple[FuzzReport, str]:
    """The ``python -m mlcompress.fuzz`` run: prepare the corpus, limit memory, fuzz.

    ``max_pixels`` and ``hang_seconds`` default to FUZZ_MAX_PIXELS and HANG_SECONDS. Returns the
    report and a line about the memory limit; UsageError when there is no codec to fuzz.
    """
    from .errors import UsageError, require_at_least, require_positive

    for flag, value, least in (("--cases", cases, 1), ("--mem-mb", mem_mb, 0), ("--fuzz-max-pixels", max_pixels, 1)):
        require_at_least(flag, value, least)
    require_positive("--hang-seconds", hang_seconds)
    chosen, skipped = native_codecs(codecs, classical)
    corpus, no_seed = seed_corpus(chosen)  # encode first: learned codecs load torch and weights here
    skipped.update(no_seed)
    if not corpus:
        reasons = "; ".join(f"{k}: {v}" for k, v in sorted(skipped.items())) or "none registered"
        raise UsageError(f"no codec available to fuzz ({reasons})")
    if any(mlc.is_mlc(f) and _unpack(f).model for files in corpus.values() for f in files):
        import torch

        torch.set_num_threads(1)
    # warm every codec once so lazy imports and weight loading happen before the cap
    import mlcompress

    for files in corpus.values():
        mlcompress.decode(files[0])
    mem_note = limit_address_space(mem_mb) if mem_mb > 0 else "no address-space limit"
    report = run(cases, seed, crash_dir=crash_dir, max_pixels=FUZZ_MAX_PIXELS if max_pixels is None else max_pixels,
                 corpus=corpus, hang_seconds=HANG_SECONDS if hang_seconds is None else hang_seconds,
                 progress=progress)
    report.skipped = skipped
    return report, mem_note


# ---------------------------------------------------------------- command line


def add_arguments(parser) -> None:
    """The fuzzer's options, on its own parser (:func:`main`) or the CLI's ``fuzz`` subcommand."""
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--codecs", help="comma-separated native codecs (default: every available one)")
    parser.add_argument("--crash-dir", default="fuzz-crashes", help="where crashing inputs are saved")
    parser.add_argument("--fuzz-max-pixels", type=int, help=f"pixel limit during the run (default {FUZZ_MAX_PIXELS})")
    parser.add_argument("--mem-mb", type=int, default=1024,
                        help="address-space headroom in MiB over the warmed-up process (0: no limit)")
    parser.add_argument("--hang-seconds", type=float, help=f"a case running longer is a hang (default {HANG_SECONDS:g})")
    parser.add_argument("--classical", action="store_true", help="also fuzz the classical codecs' decoders")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run_args(args) -> int:
    """Fuzz as the parsed options say and print the report: exit code 0 without crashes, 1 with.
    Bad values raise UsageError before any work."""
    import sys

    codecs = None if args.codecs is None else [n.strip() for n in args.codecs.split(",") if n.strip()]
    report, mem_note = fuzz_main(
        args.cases, args.seed, codecs, args.crash_dir, args.fuzz_max_pixels, args.mem_mb,
        args.hang_seconds, progress=not args.quiet and sys.stderr.isatty(), classical=args.classical,
    )
    print(report.summary())
    print(mem_note)
    return 1 if report.crashes else 0


def main(argv: list[str] | None = None) -> int:
    """``python -m mlcompress.fuzz [options]`` (``make fuzz``): the fuzzer's own entry point, so
    it needs nothing of the CLI. Errors are one line; exit codes as the CLI's (2: bad usage)."""
    import argparse
    import sys

    from .errors import UsageError

    class Parser(argparse.ArgumentParser):
        def error(self, message: str):  # type: ignore[override]
            raise UsageError(message)

    prog = "python -m mlcompress.fuzz"
    parser = Parser(prog=prog, description="Fuzz the .mlc decoders with mutated files.")
    add_arguments(parser)
    try:
        return run_args(parser.parse_args(argv))
    except UsageError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except Error as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    import sys

    sys.exit(main())
