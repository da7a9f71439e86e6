"""Frozen integer tables and the ANS coder glue (numpy + constriction; no torch, no images).

A *table set* is a list of T discrete distributions over integers, frozen once after training:

    freqs    int32 [T, L]  frequencies (each >= 1 where used), every row sums to 2**PRECISION
    offsets  int32 [T]     the symbol value coded as index 0 of table t
    lengths  int32 [T]     number of in-range values of table t; index lengths[t] is the ESCAPE

Table t codes the values ``offsets[t] .. offsets[t] + lengths[t] - 1`` directly; any other
value codes the escape index and is appended, zig-zag varint encoded, to a side stream, so every
int32 value round-trips. The ANS models are built from the frozen integers only (constriction's
``Categorical`` with the integer frequencies as weights), so decoding never depends on how the
tables were computed.

Byte layout of one coded stream (``encode_symbols``), little-endian::

    u32 n_words      ANS words (uint32 each)
    4*n_words        ANS stream (constriction stack coder)
    u32 n_esc_bytes  escape side stream
    n_esc_bytes      zig-zag LEB128 varints, one per escaped symbol, in decoding order

Symbols are grouped by table index (ascending t, array order inside a group); the decoder knows
the table index of every symbol (it is input to both sides), so the grouping needs no side info.

*Sealed* streams (``sealed=True``; cae-thesis payload version 2) start the ANS coder at the state
:data:`SEAL` (2**32) instead of 0. An ANS coder that starts at 0 codes its first symbols for free
while its state is below their frequency (a run of the most likely symbol costs no bits at all),
so a decoder asked for more symbols than were coded keeps yielding that symbol from an exhausted
stream and cannot tell. From the sealed state every symbol costs its information content, so the
decoder refuses, before decoding, a stream with fewer bits than the symbols asked for need
(:meth:`ChunkDecoder.require_capacity`), and notices the moment its state falls below the seal
(the stream is exhausted); a sealed stream ends exactly at the seal. The seal costs about 4 bytes.
"""

from __future__ import annotations

import struct
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from ..errors import CorruptDataError

PRECISION = 16
TOTAL = 1 << PRECISION
MAX_LENGTH = TOTAL // 4  # in-range values per table; the rest escapes
#: the state a sealed stream starts (and a decoder of it ends) at; below it the stream is exhausted
SEAL = 1 << 32
#: bits a symbol may cost less than its table's -log2(frequency / TOTAL) in a sealed stream: the
#: coder's own 24-bit quantisation of the frequencies and its rounding at states >= SEAL (< 0.006)
_SEALED_SLACK_BITS = 0.02
#: symbols decoded between two exhaustion checks of a sealed stream
_CHECK_EVERY = 1 << 18


@dataclass(frozen=True)
class TableSet:
    """Frozen integer distributions (see the module docstring for the fields)."""

    freqs: np.ndarray
    offsets: np.ndarray
    lengths: np.ndarray

    def __post_init__(self):
        f, o, n = self.freqs, self.offsets, self.lengths
        if f.ndim != 2 or o.shape != (f.shape[0],) or n.shape != (f.shape[0],):
            raise ValueError("inconsistent table shapes")

    @property
    def count(self) -> int:
        return int(self.freqs.shape[0])

    def row(self, t: int) -> np.ndarray:
        """The frequencies of table t including the escape entry: int [lengths[t] + 1]."""
        return self.freqs[t, : int(self.lengths[t]) + 1]

    def bits(self, symbols: np.ndarray, table_index: np.ndarray) -> float:
        """Ideal code length in bits (ANS part plus escape bytes) of ``symbols``."""
        sym = np.asarray(symbols, np.int64).ravel()
        tix = np.asarray(table_index, np.int64).ravel()
        idx = sym - self.offsets[tix]
        esc = (idx < 0) | (idx >= self.lengths[tix])
        idx = np.where(esc, self.lengths[tix], idx)
        p = self.freqs[tix, idx].astype(np.float64) / TOTAL
        return float(-np.log2(p).sum() + 8 * len(write_varints(sym[esc])))


def pmf_to_table(pmf: np.ndarray, tail: float) -> np.ndarray:
    """Quantise a pmf over L values plus an escape mass ``tail`` to int32 frequencies.

    Returns int32 [L + 1] summing to 2**PRECISION, every entry >= 1 (so every value is codable).
    """
    p = np.concatenate([np.clip(np.asarray(pmf, np.float64), 0, None), [max(float(tail), 0.0)]])
    n = len(p)
    if n > TOTAL // 2:
        raise ValueError("table too long for the coder precision")
    s = p.sum()
    p = p / s if s > 0 else np.full(n, 1.0 / n)
    spare = TOTAL - n  # one count reserved per entry
    f = 1 + np.floor(p * spare).astype(np.int64)
    rest = TOTAL - int(f.sum())
    if rest > 0:  # hand out the remainder by largest fractional part
        frac = p * spare - np.floor(p * spare)
        f[np.argsort(-frac, kind="stable")[:rest]] += 1
    assert f.sum() == TOTAL and f.min() >= 1
    return f.astype(np.int32)


def tables_from_pmfs(pmfs: list[np.ndarray], offsets: list[int], tails: list[float]) -> TableSet:
    """A TableSet from float pmfs (one per table, any lengths) and their escape masses."""
    rows = [pmf_to_table(p, t) for p, t in zip(pmfs, tails)]
    width = max(len(r) for r in rows)
    freqs = np.zeros((len(rows), width), np.int32)
    for i, r in enumerate(rows):
        freqs[i, : len(r)] = r
    return TableSet(freqs, np.asarray(offsets, np.int32), np.asarray([len(r) - 1 for r in rows], np.int32))


# ------------------------------------------------------------------ escapes


def write_varints(values: np.ndarray) -> bytes:
    out = bytearray()
    for v in np.asarray(values, np.int64).tolist():
        z = (v << 1) ^ (v >> 63)  # zig-zag
        while True:
            b = z & 0x7F
            z >>= 7
            if z:
                out.append(b | 0x80)
            else:
                out.append(b)
                break
    return bytes(out)


def read_varints(data: bytes, count: int) -> np.ndarray:
    """``count`` zig-zag varints that fill ``data`` exactly."""
    out, pos = _read_varints(data, 0, count)
    if pos != len(data):
        raise CorruptDataError("corrupt escape stream (trailing bytes)")
    return out


def _read_varints(data: bytes, pos: int, count: int) -> tuple[np.ndarray, int]:
    """(``count`` zig-zag varints of ``data`` from ``pos``, the position after them)."""
    out = np.empty(count, np.int64)
    for i in range(count):
        z, shift = 0, 0
        while True:
            if pos >= len(data) or shift > 28:
                raise CorruptDataError("corrupt escape stream")
            b = data[pos]
            pos += 1
            z |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
        out[i] = (z >> 1) ^ -(z & 1)
    if count and (out.min() < -(2**31) or out.max() >= 2**31):
        raise CorruptDataError("corrupt escape stream (value out of range)")
    return out, pos


# ------------------------------------------------------------------ coding


def categorical(weights: np.ndarray):
    """constriction's categorical model of integer ``weights`` (>= 2 entries; frozen tables or
    a coded histogram), the one model every ANS stream in mlcompress uses."""
    import constriction

    return constriction.stream.model.Categorical(np.asarray(weights, np.float64), perfect=False)


@contextmanager
def corrupt_stream_errors(what: str):
    """Turn whatever constriction raises on a malformed stream into CorruptDataError("corrupt
    ``what`` (...)"). A Rust panic surfaces as pyo3's PanicException, which is not an Exception
    subclass, so this catches BaseException (except Ctrl-C and exit)."""
    try:
        yield
    except (CorruptDataError, KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:
        raise CorruptDataError(f"corrupt {what} ({type(exc).__name__})") from None


def _groups(tix: np.ndarray):
    for t in np.unique(tix):
        yield int(t), np.flatnonzero(tix == t)


def encode_symbols(symbols: np.ndarray, table_index: np.ndarray, tables: TableSet, sealed: bool = False) -> bytes:
    """Code int ``symbols`` (any shape) where symbol i uses table ``table_index[i]``; -> bytes.
    ``sealed``: a sealed stream (module docstring), whose exhaustion a decoder detects."""
    return encode_chunks([(symbols, table_index)], tables, sealed)


def decode_symbols(data: bytes, table_index: np.ndarray, tables: TableSet, sealed: bool = False) -> np.ndarray:
    """Inverse of ``encode_symbols``; -> int64 array of ``table_index``'s shape.

    Raises CorruptDataError when ``data`` is not exactly one stream for these tables.
    """
    dec = ChunkDecoder(data, tables, sealed)
    out = dec.decode(table_index)
    dec.finish()
    return out


def encode_chunks(chunks: list[tuple[np.ndarray, np.ndarray]], tables: TableSet, sealed: bool = False) -> bytes:
    """Code several (symbols, table_index) chunks into one stream that :class:`ChunkDecoder`
    reads back chunk by chunk, in order; a decoder may compute a chunk's table indexes from the
    chunks before it (context models). One chunk gives exactly ``encode_symbols``'s bytes.

    Inside a chunk, symbols are grouped by table index (ascending, array order inside a group);
    escaped values go to the side stream in the same order, chunk after chunk."""
    import constriction

    parts, escapes = [], []  # parts: (table, coded indexes) in decoding order
    for symbols, table_index in chunks:
        sym = np.asarray(symbols, np.int64).ravel()
        tix = np.asarray(table_index, np.int64).ravel()
        if sym.shape != tix.shape:
            raise ValueError("symbols and table_index differ in shape")
        if tix.size and (tix.min() < 0 or tix.max() >= tables.count):
            raise ValueError("table index out of range")
        for t, pos in _groups(tix):
            idx = sym[pos] - int(tables.offsets[t])
            n = int(tables.lengths[t])
            esc = (idx < 0) | (idx >= n)
            escapes.append(sym[pos][esc])
            parts.append((t, np.where(esc, n, idx).astype(np.int32)))
    coder = constriction.stream.stack.AnsCoder(_seal_words() if sealed else None)
    for t, idx in reversed(parts):  # stack: last in, first out
        coder.encode_reverse(idx, categorical(tables.row(t)))
    words = coder.get_compressed().astype("<u4").tobytes()
    esc = write_varints(np.concatenate(escapes) if escapes else np.zeros(0, np.int64))
    return struct.pack("<I", len(words) // 4) + words + struct.pack("<I", len(esc)) + esc


def _seal_words() -> np.ndarray:
    """The compressed form of the coder state SEAL (little-endian words: low, high)."""
    return np.array([SEAL & 0xFFFFFFFF, SEAL >> 32], np.uint32)


def min_bits(tables: TableSet, counts: dict[int, int]) -> float:
    """The fewest bits ``counts[t]`` symbols of each table t can cost: each at least
    -log2(largest frequency / TOTAL) of its table."""
    total = 0.0
    for t, n in counts.items():
        top = int(tables.row(t).max())
        total += n * max(0.0, PRECISION - float(np.log2(top)) - _SEALED_SLACK_BITS)
    return total


class ChunkDecoder:
    """Reads a stream of :func:`encode_chunks` one chunk at a time: ``decode(table_index)`` ->
    int64 symbols of that shape; ``finish()`` checks that the stream held exactly these chunks.
    Any malformed input raises CorruptDataError. A ``sealed`` stream (module docstring) is also
    refused as soon as it is exhausted, and :meth:`require_capacity` refuses it before decoding
    when it is too short for the symbols asked for."""

    def __init__(self, data: bytes, tables: TableSet, sealed: bool = False):
        import constriction

        data = bytes(data)
        if len(data) < 8:
            raise CorruptDataError("truncated entropy-coded stream")
        (n_words,) = struct.unpack_from("<I", data, 0)
        end = 4 + 4 * n_words
        if end + 4 > len(data):
            raise CorruptDataError("truncated entropy-coded stream (ANS words)")
        (n_esc,) = struct.unpack_from("<I", data, end)
        if end + 4 + n_esc != len(data):
            raise CorruptDataError("entropy-coded stream length mismatch")
        self.tables = tables
        self.sealed = sealed
        self._ans_bits = 32 * n_words
        self._esc, self._esc_pos = data[end + 4 :], 0
        with corrupt_stream_errors("entropy-coded stream"):
            self._coder = constriction.stream.stack.AnsCoder(np.frombuffer(data, "<u4", n_words, 4).astype(np.uint32))

    def decode(self, table_index: np.ndarray) -> np.ndarray:
        tix_arr = np.asarray(table_index, np.int64)
        tix = tix_arr.ravel()
        tables = self.tables
        if tix.size and (tix.min() < 0 or tix.max() >= tables.count):
            raise ValueError("table index out of range")
        out = np.empty(tix.shape, np.int64)
        esc_pos = []
        with corrupt_stream_errors("entropy-coded stream"):
            for t, pos in _groups(tix):
                idx = self._decode_group(categorical(tables.row(t)), len(pos))
                n = int(tables.lengths[t])
                out[pos] = idx + int(tables.offsets[t])
                esc_pos.append(pos[idx == n])
        n_escaped = sum(len(p) for p in esc_pos)
        if n_escaped > len(self._esc) - self._esc_pos:  # each varint takes at least one byte
            raise CorruptDataError("corrupt escape stream (too few bytes)")
        if n_escaped:
            out[np.concatenate(esc_pos)], self._esc_pos = _read_varints(self._esc, self._esc_pos, n_escaped)
        return out.reshape(tix_arr.shape)

    def require_capacity(self, counts: dict[int, int]) -> None:
        """For a sealed stream: CorruptDataError unless it holds enough bits for ``counts[t]``
        more symbols of each table t (:func:`min_bits`), checked before any of them is decoded
        (so before the caller allocates for them)."""
        if not self.sealed:
            raise ValueError("only a sealed stream has a capacity")
        need = min_bits(self.tables, counts)
        if need > self._ans_bits:
            raise CorruptDataError(
                f"entropy-coded stream exhausted: {self._ans_bits // 8:,} bytes cannot hold "
                f"{sum(counts.values()):,} symbols (they need at least {need / 8:,.0f})")

    def _decode_group(self, model, count: int) -> np.ndarray:
        """``count`` table indexes; a sealed stream is checked for exhaustion as it goes."""
        if not self.sealed:
            return np.asarray(self._coder.decode(model, count), np.int64)
        parts = []
        for start in range(0, count, _CHECK_EVERY):
            parts.append(np.asarray(self._coder.decode(model, min(_CHECK_EVERY, count - start)), np.int64))
            if self._coder.pos()[1] < SEAL:
                raise CorruptDataError("entropy-coded stream exhausted before its last symbol")
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)

    def finish(self) -> None:
        with corrupt_stream_errors("entropy-coded stream"):
            if self.sealed:
                clean = self._coder.num_words() == 2 and self._coder.pos()[1] == SEAL
            else:
                clean = self._coder.is_empty()
        if not clean:
            raise CorruptDataError("corrupt entropy-coded stream (data left over)")
        if self._esc_pos != len(self._esc):
            raise CorruptDataError("corrupt escape stream (unexpected bytes)")
