"""The entropy coder (frozen tables + ANS + escapes) and the learned entropy models."""

from __future__ import annotations

import numpy as np
import pytest

from mlcompress.entropy import coder
from mlcompress.errors import CorruptDataError


def _gaussian_tables(scales=(0.3, 1.0, 4.0, 30.0)):
    from scipy.special import ndtr

    pmfs, offsets, tails = [], [], []
    for s in scales:
        half = int(np.ceil(6 * s))
        k = np.arange(-half, half + 1)
        pmfs.append(ndtr((k + 0.5) / s) - ndtr((k - 0.5) / s))
        offsets.append(-half)
        tails.append(2 * ndtr(-(half + 0.5) / s))
    return coder.tables_from_pmfs(pmfs, offsets, tails)


def test_table_rows_sum_to_the_coder_precision_and_never_hold_zero():
    ts = _gaussian_tables()
    for t in range(ts.count):
        row = ts.row(t)
        assert row.sum() == coder.TOTAL and row.min() >= 1


def test_symbols_round_trip_including_escapes_and_int32_extremes(rng):
    ts = _gaussian_tables()
    sym = np.round(rng.normal(0, 3, 5000)).astype(np.int64)
    sym[:6] = [2**31 - 1, -(2**31), 1000, -1000, 181, -181]
    tix = rng.integers(0, ts.count, sym.shape)
    data = coder.encode_symbols(sym, tix, ts)
    assert np.array_equal(coder.decode_symbols(data, tix, ts), sym)


def test_chunks_decode_in_order_with_table_indexes_computed_from_the_chunks_before(rng):
    ts = _gaussian_tables()
    first = np.round(rng.normal(0, 3, 400)).astype(np.int64)
    first[:2] = [5000, -(2**31)]  # escapes in the first chunk, read before the second chunk's
    tix1 = rng.integers(0, ts.count, first.shape)

    def tix_after(prev):  # a context model: the next chunk's tables depend on decoded values
        return np.clip(np.abs(prev[:300]), 0, ts.count - 1)

    second = np.round(rng.normal(0, 2, 300)).astype(np.int64)
    second[7] = 777
    data = coder.encode_chunks([(first, tix1), (second, tix_after(first))], ts)
    dec = coder.ChunkDecoder(data, ts)
    got1 = dec.decode(tix1)
    got2 = dec.decode(tix_after(got1))
    dec.finish()
    assert np.array_equal(got1, first) and np.array_equal(got2, second)
    short = coder.ChunkDecoder(data, ts)
    short.decode(tix1)
    with pytest.raises(CorruptDataError):  # a chunk left unread is not a clean end
        short.finish()


def test_coded_length_is_within_one_percent_of_the_ideal_code_length(rng):
    ts = _gaussian_tables()
    tix = rng.integers(0, ts.count, 40000)
    scales = np.array([0.3, 1.0, 4.0, 30.0])[tix]
    sym = np.round(rng.normal(0, scales)).astype(np.int64)
    ideal = ts.bits(sym, tix)
    actual = 8 * len(coder.encode_symbols(sym, tix, ts))
    assert abs(actual - ideal) < 0.01 * ideal + 128


def test_corrupted_streams_raise_corrupt_data_error_only(rng):
    ts = _gaussian_tables()
    sym = np.round(rng.normal(0, 8, 300)).astype(np.int64)
    sym[:3] = [500, -500, 99999]
    tix = rng.integers(0, ts.count, sym.shape)
    data = bytearray(coder.encode_symbols(sym, tix, ts))
    for i in range(300):
        bad = bytearray(data)
        kind = i % 3
        if kind == 0:
            bad[rng.integers(len(bad))] ^= 1 << int(rng.integers(8))
        elif kind == 1:
            bad = bad[: rng.integers(len(bad))]
        else:
            bad[rng.integers(len(bad))] = rng.integers(256)
        try:
            out = coder.decode_symbols(bytes(bad), tix, ts)
        except CorruptDataError:
            continue
        assert out.shape == sym.shape  # a mutation may decode to other symbols, but only cleanly


def test_an_unsealed_stream_cannot_tell_its_end_from_a_run_of_its_first_symbol():
    # why sealed streams exist: from state 0 the most likely symbol (index 0 here) costs nothing
    ts = coder.tables_from_pmfs([np.array([0.9, 0.1])], [0], [0.0])
    sym = np.array([1, 0, 1, 1, 0, 0], np.int64)
    data = coder.encode_symbols(sym, np.zeros_like(sym), ts)
    longer = coder.decode_symbols(data, np.zeros(1000, np.int64), ts)
    assert np.array_equal(longer[:6], sym) and not longer[6:].any()
    none = np.zeros(0, np.int64)
    many = np.zeros(10**5, np.int64)
    assert coder.encode_symbols(many, many, ts) == coder.encode_symbols(none, none, ts)


def test_sealed_streams_round_trip_and_refuse_every_request_for_more_symbols_than_coded(rng):
    ts = _gaussian_tables()
    sym = np.round(rng.normal(0, 3, 5000)).astype(np.int64)
    sym[:2] = [4000, -(2**31)]
    tix = rng.integers(0, ts.count, sym.shape)
    data = coder.encode_symbols(sym, tix, ts, sealed=True)
    assert np.array_equal(coder.decode_symbols(data, tix, ts, sealed=True), sym)
    assert len(data) <= len(coder.encode_symbols(sym, tix, ts)) + 8
    for extra in (1, 7, 5000):
        more = np.concatenate([tix, rng.integers(0, ts.count, extra)])
        with pytest.raises(CorruptDataError, match="exhausted|left over|escape"):
            coder.decode_symbols(data, more, ts, sealed=True)
    with pytest.raises(CorruptDataError):  # and fewer
        coder.decode_symbols(data, tix[:-1], ts, sealed=True)


def test_a_sealed_stream_too_short_for_the_symbols_asked_is_refused_before_decoding(rng):
    ts = _gaussian_tables()
    tix = np.full(2000, 1)
    sym = np.round(rng.normal(0, 1, tix.size)).astype(np.int64)
    dec = coder.ChunkDecoder(coder.encode_symbols(sym, tix, ts, sealed=True), ts, sealed=True)
    dec.require_capacity({1: 2000})  # what was coded fits
    with pytest.raises(CorruptDataError, match="cannot hold 200,000 symbols"):
        dec.require_capacity({1: 200_000})


def test_a_sealed_stream_of_one_certain_symbol_is_refused_as_soon_as_it_runs_out():
    ts = coder.tables_from_pmfs([np.array([1.0])], [3], [0.0])  # symbol 3 at probability 65535/65536
    data = coder.encode_symbols(np.full(500, 3), np.zeros(500, np.int64), ts, sealed=True)
    assert len(data) <= 24
    assert (coder.decode_symbols(data, np.zeros(500, np.int64), ts, sealed=True) == 3).all()
    dec = coder.ChunkDecoder(data, ts, sealed=True)
    dec.require_capacity({0: 10**7})  # too cheap a symbol for a bit count to tell
    with pytest.raises(CorruptDataError, match="exhausted before its last symbol"):
        dec.decode(np.zeros(10**7, np.int64))


torch = pytest.importorskip("torch")


def test_entropy_bottleneck_codes_exactly_round_y_with_any_channel_count():
    from mlcompress.entropy.models import EntropyBottleneck

    torch.manual_seed(0)
    eb = EntropyBottleneck(5).eval()
    eb.update()
    y = torch.randn(2, 5, 7, 3) * 6
    y[0, 0, 0, 0] = 1e5  # far outside every table: escapes
    data = eb.compress(y)
    assert torch.equal(eb.decompress(data, y.shape), torch.round(y))


def test_entropy_bottleneck_likelihoods_sum_to_one_over_the_integers():
    from mlcompress.entropy.models import EntropyBottleneck

    torch.manual_seed(1)
    eb = EntropyBottleneck(3)
    grid = torch.arange(-400, 401, dtype=torch.float32).view(1, 1, -1).expand(1, 3, -1)
    total = eb.likelihood(grid).sum(-1)
    assert torch.allclose(total, torch.ones_like(total), atol=1e-3)


def test_gaussian_conditional_bytes_match_the_estimated_rate_within_three_percent():
    from mlcompress.entropy.models import GaussianConditional

    torch.manual_seed(2)
    gc = GaussianConditional().eval()
    gc.update()
    scales = torch.exp(torch.empty(1, 8, 64, 64).uniform_(np.log(0.3), np.log(40)))
    mu = torch.randn(1, 8, 64, 64) * 3
    y = mu + torch.randn_like(mu) * scales
    estimated = float(-torch.log2(gc(y, scales, mu)[1]).sum())
    idx = gc.index(scales)
    data = gc.compress(y, idx, mu)
    assert abs(8 * len(data) - estimated) < 0.03 * estimated
    assert torch.equal(gc.decompress(data, idx, mu), torch.round(y - mu) + mu)


def test_gaussian_conditional_picks_the_smallest_tabulated_scale_not_below_the_scale():
    from mlcompress.entropy.models import GaussianConditional

    gc = GaussianConditional()
    tab = gc.scale_table
    s = torch.tensor([0.0, 0.11, tab[5] * 1.01, tab[-1] * 2])
    idx = gc.index(s)
    assert list(idx) == [0, 0, 6, len(tab) - 1]


def test_entropy_bottleneck_bytes_match_its_estimated_rate_on_its_own_samples(rng):
    from mlcompress.entropy.models import EntropyBottleneck

    torch.manual_seed(3)
    eb = EntropyBottleneck(4).eval()
    eb.update()
    ts = eb.tables.get()
    sym = np.stack([
        rng.choice(ts.lengths[c], size=20000, p=ts.row(c)[:-1] / ts.row(c)[:-1].sum()) + ts.offsets[c]
        for c in range(4)
    ]).reshape(1, 4, 200, 100)
    y = torch.from_numpy(sym.astype(np.float32))
    with torch.no_grad():
        estimated = float(-torch.log2(eb.likelihood(y)).sum())
    actual = 8 * len(eb.compress(y))
    assert abs(actual - estimated) < 0.03 * estimated


def test_corrupt_stream_errors_turns_rust_panics_into_corrupt_data_errors_but_not_ctrl_c():
    from mlcompress.entropy.coder import corrupt_stream_errors

    class PanicException(BaseException):  # what pyo3 raises for a Rust panic
        pass

    with pytest.raises(CorruptDataError, match="corrupt VQ index stream"):
        with corrupt_stream_errors("VQ index stream"):
            raise PanicException("index out of bounds")
    with pytest.raises(KeyboardInterrupt):
        with corrupt_stream_errors("VQ index stream"):
            raise KeyboardInterrupt
