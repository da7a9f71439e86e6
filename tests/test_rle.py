"""The RLE byte coder and the `rle` codec: exact round trips, packet limits, corrupt streams."""

from __future__ import annotations

import numpy as np
import pytest

import mlcompress
from mlcompress import container
from mlcompress.codecs.rle import MAX_LITERAL, MAX_RUN, MIN_RUN, rle_decode_bytes, rle_encode_bytes

LIMITS = sorted({1, 2, MIN_RUN, MIN_RUN + 1, MAX_LITERAL - 1, MAX_LITERAL, MAX_LITERAL + 1, MAX_RUN - 1,
                 MAX_RUN, MAX_RUN + 1, MAX_RUN + 2, MAX_RUN + 3, 2 * MAX_RUN, 2 * MAX_RUN + 1, 1000})


def _roundtrip(x: np.ndarray) -> bytes:
    enc = rle_encode_bytes(x)
    assert np.array_equal(rle_decode_bytes(enc, x.size), x)
    return enc


def _numpy_only(monkeypatch):
    from mlcompress.codecs import rle

    monkeypatch.setattr(rle, "_kernels", lambda: None)


def _compiled_always(monkeypatch):
    pytest.importorskip("numba")
    from mlcompress.codecs import rle

    monkeypatch.setattr(rle, "JIT_MIN_BYTES", 0)


@pytest.mark.parametrize("n", LIMITS)
def test_rle_bytes_roundtrip_is_exact_for_one_run_at_and_past_the_packet_limits(n):
    enc = _roundtrip(np.full(n, 7, np.uint8))
    packets = int.from_bytes(enc[:4], "big")
    if n >= MIN_RUN:  # a run is only run packets: ceil(n / MAX_RUN) of 2 bytes each
        assert packets == -(-n // MAX_RUN) and len(enc) == 4 + 2 * packets


@pytest.mark.parametrize("n", LIMITS)
def test_rle_bytes_roundtrip_is_exact_without_any_run(n):
    x = (np.arange(n) % 251).astype(np.uint8)  # no two neighbours equal
    enc = _roundtrip(x)
    packets = -(-n // MAX_LITERAL)
    assert int.from_bytes(enc[:4], "big") == packets and len(enc) == 4 + packets + n


def test_rle_bytes_roundtrip_is_exact_on_random_runs_of_every_length():
    r = np.random.default_rng(0)
    lengths = r.integers(1, 2 * MAX_RUN + 5, 3000)
    x = np.repeat(r.integers(0, 4, lengths.size), lengths).astype(np.uint8)
    _roundtrip(x)
    _roundtrip(r.integers(0, 2, 5000).astype(np.uint8))


def test_rle_bytes_of_nothing_is_an_empty_packet_list():
    assert rle_encode_bytes(b"") == bytes(4)
    assert rle_decode_bytes(bytes(4), 0).size == 0


@pytest.mark.parametrize("cut", [1, 3, 4, 5, 6])
def test_rle_bytes_truncated_stream_raises(cut):
    enc = rle_encode_bytes(np.array([1, 2, 3, 4, 4, 4, 4, 9], np.uint8))
    with pytest.raises(mlcompress.CorruptDataError):
        rle_decode_bytes(enc[:-cut], 8)


def test_rle_bytes_overrun_and_underrun_raise_before_allocating():
    enc = rle_encode_bytes(np.zeros(100, np.uint8))
    with pytest.raises(mlcompress.CorruptDataError, match="overruns"):
        rle_decode_bytes(enc, 99)
    with pytest.raises(mlcompress.CorruptDataError, match="underruns"):
        rle_decode_bytes(enc, 101)
    # a packet count far beyond the bytes present
    with pytest.raises(mlcompress.CorruptDataError, match="packets"):
        rle_decode_bytes(b"\xff\xff\xff\xff\x00", 10**9)


def _images() -> dict[str, np.ndarray]:
    r = np.random.default_rng(3)
    stripes = np.zeros((40, 300, 3), np.uint8)
    stripes[::2] = 200
    return {
        "random": r.integers(0, 256, (31, 29, 3), dtype=np.uint8),
        "constant": np.full((50, 70, 3), 77, np.uint8),
        "stripes": stripes,
        "vertical_stripes": np.ascontiguousarray(stripes.transpose(1, 0, 2)),
        "few_colours": r.integers(0, 5, (20, 20))[:, :, None].repeat(3, 2).astype(np.uint8) * 40,
        "grey_runs": np.repeat(r.integers(0, 256, 64), 131).astype(np.uint8).reshape(64, 131),
    }


@pytest.mark.parametrize("name", sorted(_images()))
def test_rle_codec_roundtrip_is_exact(name):
    img = _images()[name]
    assert np.array_equal(mlcompress.decode(mlcompress.encode(img, "rle")), img)


def test_rle_codec_roundtrip_is_exact_on_synthetic_images(synthetic):
    assert np.array_equal(mlcompress.decode(mlcompress.encode(synthetic, "rle")), synthetic)


def test_rle_codec_roundtrip_is_exact_on_kodak_images(kodak_images):
    for img in kodak_images:
        assert np.array_equal(mlcompress.decode(mlcompress.encode(img, "rle")), img)


def test_rle_picks_the_palette_layout_for_few_colours_and_records_it():
    data = mlcompress.encode(_images()["few_colours"], "rle")
    c = container.unpack(data)
    assert c.params["layout"] == "palette" and c.payload[0] == 2


@pytest.mark.parametrize("path", ["numpy", "compiled"])
def test_rle_palette_is_sorted_by_colour_read_as_a_little_endian_integer(monkeypatch, path):
    # docs/CODECS.md: ascending p[0] + 256 p[1] + 65536 p[2] (+ 2^24 p[3]): channel 0 least significant
    (_numpy_only if path == "numpy" else _compiled_always)(monkeypatch)
    rgb = [(0, 0, 255), (10, 200, 10), (0, 0, 0), (255, 0, 0)]
    rgba = [(0, 0, 0, 1), (0, 1, 0, 0), (1, 0, 0, 0), (255, 255, 255, 0)]
    for colours, want in ((rgb, [2, 3, 1, 0]), (rgba, [2, 1, 3, 0])):
        img = np.array(colours * 6, np.uint8).reshape(4, 6, -1)
        payload = container.unpack(mlcompress.encode(img, "rle")).payload
        assert payload[:2] == bytes([2, 3])  # the palette layout, 4 colours
        assert payload[2 : 2 + 4 * img.shape[2]] == b"".join(bytes(colours[i]) for i in want)


def test_rle_codes_a_constant_image_in_a_few_bytes():
    c = container.unpack(mlcompress.encode(np.full((100, 100, 3), 5, np.uint8), "rle"))
    assert len(c.payload) < 200  # 10,000 pixels in 77 run packets


def _mangled(payload: bytes, shape=(8, 9, 3)) -> bytes:
    h, w, ch = shape
    return container.pack(container.Container("rle", w, h, ch, payload, {"v": 1}))


@pytest.mark.parametrize("path", ["numpy", "compiled"])
def test_rle_decoder_rejects_every_truncation_of_a_payload(monkeypatch, path):
    if path == "compiled":
        _compiled_always(monkeypatch)
    img = _images()["few_colours"][:8, :9]
    for layout_img in (img, np.random.default_rng(1).integers(0, 256, (8, 9, 3), dtype=np.uint8)):
        payload = container.unpack(mlcompress.encode(layout_img, "rle")).payload
        for n in range(len(payload)):
            with pytest.raises(mlcompress.CorruptDataError):
                mlcompress.decode(_mangled(payload[:n]))


def test_rle_decoder_rejects_unknown_layouts_and_bad_palette_indices():
    with pytest.raises(mlcompress.CorruptDataError, match="layout"):
        mlcompress.decode(_mangled(b"\x09" + rle_encode_bytes(bytes(216))))
    # a palette of 1 colour, but indices of 1
    payload = b"\x02\x00abc" + rle_encode_bytes(bytes([1]) * 72)
    with pytest.raises(mlcompress.CorruptDataError, match="out of range"):
        mlcompress.decode(_mangled(payload))


@pytest.mark.parametrize("path", ["numpy", "compiled"])
def test_rle_decoder_survives_random_mutations_with_only_corrupt_data_errors(monkeypatch, path):
    if path == "compiled":
        _compiled_always(monkeypatch)
    r = np.random.default_rng(5)
    img = _images()["few_colours"][:8, :9]
    for base in (img, np.repeat(img, 1, 0)):
        payload = bytearray(container.unpack(mlcompress.encode(base, "rle")).payload)
        for _ in range(300):
            p = bytearray(payload)
            for pos in r.integers(0, len(p), r.integers(1, 4)):
                p[pos] = r.integers(0, 256)
            try:
                out = mlcompress.decode(_mangled(bytes(p)))
            except mlcompress.CorruptDataError:
                continue
            assert out.shape == (8, 9, 3) and out.dtype == np.uint8


def test_rle_compiled_and_numpy_coders_write_the_same_bytes(monkeypatch):
    _compiled_always(monkeypatch)
    r = np.random.default_rng(7)
    streams = [np.repeat(r.integers(0, 3, 4000), r.integers(1, 2 * MAX_RUN + 5, 4000)).astype(np.uint8),
               r.integers(0, 2, 5000).astype(np.uint8)] + [np.full(n, 9, np.uint8) for n in LIMITS]
    compiled = [rle_encode_bytes(x) for x in streams]
    assert all(np.array_equal(rle_decode_bytes(e, x.size), x) for e, x in zip(compiled, streams))
    images = list(_images().values())
    compiled_files = [mlcompress.encode(img, "rle") for img in images]
    assert all(np.array_equal(mlcompress.decode(d), img) for d, img in zip(compiled_files, images))
    _numpy_only(monkeypatch)
    assert [rle_encode_bytes(x) for x in streams] == compiled
    assert [mlcompress.encode(img, "rle") for img in images] == compiled_files


@pytest.mark.parametrize("name", sorted(_images()))
def test_rle_numpy_fallback_roundtrip_is_exact(monkeypatch, name):
    _numpy_only(monkeypatch)
    img = _images()[name]
    assert np.array_equal(mlcompress.decode(mlcompress.encode(img, "rle")), img)


def _planar_friendly(h=320, w=400) -> np.ndarray:
    """Channels that are flat in long horizontal stretches but differ from each other, with a
    noise in one (over 256 colours): no runs in RGBRGB order, long runs in each plane (360 KiB:
    the layout sizes are estimated from sampled rows)."""
    x = np.zeros((h, w, 3), np.uint8)
    x[..., 0] = (np.arange(w) // 50 * 30)[None, :]
    x[..., 1] = (np.arange(h) // 40 * 25 + 7)[:, None]
    x[..., 2] = 200
    x[::7, ::13, 2] = np.random.default_rng(0).integers(0, 256, x[::7, ::13, 2].shape)
    return x


def test_rle_layout_estimates_are_exact_sizes_on_images_below_the_sample_threshold():
    from mlcompress.codecs import rle

    for img in _images().values():
        img = img if img.ndim == 3 else img[:, :, None]
        assert img.nbytes < rle.SAMPLE_MIN_BYTES
        exact = {k: len(v) for k, v in rle.encode_layouts(img).items()}
        assert rle.estimated_sizes(img) == exact


def test_rle_chooses_planar_for_flat_planes_and_interleaved_for_a_photo_where_planar_saves_little(kodak_images):
    from mlcompress.codecs import rle

    flat = _planar_friendly()
    assert flat.nbytes >= rle.SAMPLE_MIN_BYTES
    assert container.unpack(mlcompress.encode(flat, "rle")).params["layout"] == "planar"
    photo = kodak_images[1]  # kodim07: planar would be 2.9 % smaller, with 9x the packets
    exact = {k: len(v) for k, v in rle.encode_layouts(photo).items()}
    assert exact["interleaved"] * rle.SWITCH_RATIO < exact["planar"] < exact["interleaved"]
    assert container.unpack(mlcompress.encode(photo, "rle")).params["layout"] == "interleaved"


def test_rle_sampled_layout_choice_is_the_same_with_and_without_the_compiled_kernels(monkeypatch):
    images = [_planar_friendly(), _planar_friendly(321, 401),  # 4-pixel word paths, and the byte loops
              np.random.default_rng(3).integers(0, 256, (300, 300, 3), dtype=np.uint8)]
    compiled = [mlcompress.encode(img, "rle") for img in images]
    assert [container.unpack(d).params["layout"] for d in compiled] == ["planar", "planar", "interleaved"]
    assert all(np.array_equal(mlcompress.decode(d), img) for d, img in zip(compiled, images))
    _numpy_only(monkeypatch)
    assert [mlcompress.encode(img, "rle") for img in images] == compiled
    assert all(np.array_equal(mlcompress.decode(d), img) for d, img in zip(compiled, images))
