"""The .mlc container: fields, CRC, and one clear error per kind of damage (docs/FORMAT.md)."""

import re
import struct
import zlib
from pathlib import Path

import pytest

from mlcompress import container as mlc
from mlcompress.errors import CorruptDataError, Error, LimitError, UsageError, VersionError
from mlcompress.limits import set_max_pixels


def sample(**kw) -> mlc.Container:
    fields = dict(codec="rle", width=7, height=5, channels=3, payload=b"\x01\x02\x03", params={"q": 4, "mode": "x"})
    fields.update(kw)
    return mlc.Container(**fields)


def test_pack_unpack_roundtrip_keeps_every_field():
    c = sample(model="hyperprior-q3", weights_hash=bytes(range(32)))
    assert mlc.unpack(mlc.pack(c)) == c


def test_magic_and_version_are_in_the_first_16_bytes():
    data = mlc.pack(sample())
    assert data[:4] == b"\x8aMLC"
    hdr = mlc.read_header(data[:16])
    assert (hdr.version, hdr.width, hdr.height, hdr.channels) == (1, 7, 5, 3)


def test_codec_id_is_stored_as_its_string_name():
    assert b"vq+rle" in mlc.pack(sample(codec="vq+rle"))


def test_crc32_covers_every_byte_before_it():
    data = mlc.pack(sample())
    assert struct.unpack(">I", data[-4:])[0] == zlib.crc32(data[:-4])


def test_wrong_magic_is_refused():
    data = b"XMLC" + mlc.pack(sample())[4:]
    with pytest.raises(CorruptDataError, match="magic"):
        mlc.unpack(data)


def test_future_version_is_refused_with_a_version_error():
    data = bytearray(mlc.pack(sample()))
    data[4] = 2
    with pytest.raises(VersionError, match="newer"):
        mlc.unpack(bytes(data))


@pytest.mark.parametrize("cut", [1, 4, 15, 16, 20, 30, 1000])
def test_truncated_file_is_refused(cut):
    data = mlc.pack(sample())
    with pytest.raises(CorruptDataError):
        mlc.unpack(data[: max(0, len(data) - cut)])


def test_trailing_bytes_are_refused():
    with pytest.raises(CorruptDataError, match="trailing"):
        mlc.unpack(mlc.pack(sample()) + b"\x00")


def test_flipped_payload_byte_fails_the_checksum():
    data = bytearray(mlc.pack(sample()))
    data[-6] ^= 0x10
    with pytest.raises(CorruptDataError, match="checksum"):
        mlc.unpack(bytes(data))


def test_huge_image_is_refused_before_decoding():
    data = mlc.pack(sample(width=100_000, height=100_000))
    with pytest.raises(LimitError, match="limit"):
        mlc.unpack(data)


def test_pixel_limit_is_configurable():
    data = mlc.pack(sample(width=100, height=100))
    set_max_pixels(5_000)
    try:
        with pytest.raises(LimitError):
            mlc.unpack(data)
    finally:
        set_max_pixels(None)
    assert mlc.unpack(data).width == 100


def test_bad_container_fields_are_refused_when_packing():
    with pytest.raises(UsageError):
        mlc.pack(sample(codec="Bad Name"))
    with pytest.raises(UsageError):
        mlc.pack(sample(model="m", weights_hash=b"short"))
    with pytest.raises(UsageError):
        mlc.pack(sample(channels=2))


# ------------------------------------------------------------------ docs/FORMAT.md, field by field

FORMAT_MD = Path(__file__).resolve().parents[1] / "docs" / "FORMAT.md"


def raw(codec=b"rle", params=b"{}", model=b"", hash_=b"", payload=b"\x01\x02\x03", *, version=1, channels=3,
        width=7, height=5, header_len=None, extra=b"", fix_crc=True) -> bytes:
    """An .mlc file written field by field as docs/FORMAT.md lays it out, whatever the values;
    ``extra`` goes after the sub-fields, inside header_len."""
    var = (bytes([len(codec)]) + codec + struct.pack(">H", len(params)) + params
           + bytes([len(model)]) + model + bytes([len(hash_)]) + hash_ + extra)
    head = struct.pack(">4sBBHII", mlc.MAGIC, version, channels, len(var) if header_len is None else header_len,
                       width, height)
    body = head + var + struct.pack(">I", len(payload)) + payload
    return body + struct.pack(">I", zlib.crc32(body) if fix_crc else zlib.crc32(body) ^ 1)


def _with(data: bytes, offset: int, value: bytes) -> bytes:
    return data[:offset] + value + data[offset + len(value):]


def _spec_errors() -> list[tuple[int, str, re.Pattern]]:
    """(step, exception class name, message pattern) of each row of FORMAT.md's error table."""
    rows = []
    for line in FORMAT_MD.read_text().splitlines():
        m = re.fullmatch(r"\| (\d) \| [^|]+ \| (\w+) \| `(.+)` \|", line)
        if m:
            parts = re.split(r"<[^>]+>", m.group(3))
            rows.append((int(m.group(1)), m.group(2), re.compile(".+".join(map(re.escape, parts)))))
    return rows


#: one forged file per row of the table, by step (rle's payload is never reached)
FORGED = [
    (1, b"\x8aML"),
    (1, b"PNG\r\n\x1a\n" + raw()[8:]),
    (1, raw()[:15]),
    (2, _with(raw(), 4, b"\x02")),
    (2, _with(raw(), 4, b"\x00")),
    (3, raw(channels=2)),
    (3, raw(width=2**31)),
    (3, raw(height=0)),
    (4, raw(header_len=0xFFFF)),
    (4, raw(header_len=4)),  # the params length field runs past a 4-byte header
    (4, _with(raw(), 16, b"\x40")),  # a flipped codec_len, CRC left as it was
    (4, raw(extra=b"\x00")),  # one byte inside header_len after the sub-fields
    (4, raw()[:-1]),
    (4, raw() + b"\x00"),
    (5, raw(fix_crc=False)),
    (6, raw(codec=b"rl\xe9")),
    (6, raw(codec=b"-rle")),
    (6, raw(codec=b"rle\n")),  # "$" once let a trailing newline through
    (6, raw(model=b"m q3", hash_=bytes(32))),
    (6, raw(model=b"m-q3")),  # a model without its hash
    (6, raw(hash_=bytes(32))),  # a hash without a model
    (6, raw(model=b"m-q3", hash_=bytes(31))),
    (6, raw(params=b'{"a":"' + b"x" * 4100 + b'"}')),
    (6, raw(params=b"[" * 2000 + b"]" * 2000)),
    (6, raw(params=b'{"q":NaN}')),
    (6, raw(params=b"[1]")),
    (7, raw(width=100_000, height=100_000)),
    (8, raw(codec=b"nosuchcodec")),
    (8, raw(codec=b"jpeg")),
]


def test_every_error_in_format_md_is_raised_at_its_step_with_its_quoted_message():
    import mlcompress

    rows = _spec_errors()
    assert len(rows) >= 20, "FORMAT.md's error table was not found"
    used = set()
    for step, data in FORGED:
        read = mlcompress.decode if step == 8 else mlc.unpack  # steps 1-7 are the container's
        with pytest.raises(Error) as info:
            read(data)
        msg, kind = str(info.value), type(info.value).__name__
        matches = [i for i, (_, _, pat) in enumerate(rows) if pat.fullmatch(msg)]
        assert len(matches) == 1, f"{msg!r} matches {len(matches)} rows of FORMAT.md's table"
        row_step, row_kind, _ = rows[matches[0]]
        assert (row_step, row_kind) == (step, kind), f"{msg!r}: spec says step {row_step} {row_kind}"
        used.add(matches[0])
    assert used == set(range(len(rows))), [rows[i][2].pattern for i in set(range(len(rows))) - used]


def test_a_damaged_sub_field_length_is_a_length_error_before_the_checksum():
    data = raw()
    for offset, value in ((16, b"\x40"), (16, b"\x02"), (20, b"\xff\xff"), (20, b"\x00\x01"), (24, b"\x05"),
                          (25, b"\x01")):  # codec, params, model, hash lengths
        with pytest.raises(CorruptDataError, match="truncated|length mismatch"):
            mlc.unpack(_with(data, offset, value))


def test_sub_fields_must_fill_header_len_exactly():
    assert mlc.unpack(raw()).codec == "rle"
    with pytest.raises(CorruptDataError, match="length mismatch"):
        mlc.unpack(raw(extra=b"\x00"))
    short = (1 + 3) + (2 + 2) + 1  # codec, params, model of raw(): the hash length byte is left out
    with pytest.raises(CorruptDataError, match="hash length runs past the header"):
        mlc.unpack(raw(header_len=short))


def test_the_model_hash_has_32_bytes_exactly_when_a_model_is_named():
    assert mlc.unpack(raw(model=b"m-q3", hash_=bytes(32))).weights_hash == bytes(32)
    for model, hash_ in ((b"m-q3", b""), (b"m-q3", bytes(31)), (b"m-q3", bytes(33)), (b"", bytes(32)), (b"", b"\x00")):
        with pytest.raises(CorruptDataError, match="model hash"):
            mlc.unpack(raw(model=model, hash_=hash_))
    with pytest.raises(UsageError, match="no model no hash"):
        mlc.pack(sample(weights_hash=bytes(32)))


@pytest.mark.parametrize("field", ["width", "height"])
def test_a_size_of_zero_or_of_2_to_the_31_and_above_is_refused_and_2_to_the_31_minus_1_is_not(field):
    for bad in (0, 2**31, 2**32 - 1):
        with pytest.raises(CorruptDataError, match="invalid image size"):
            mlc.read_header(raw(**{field: bad}))
    assert getattr(mlc.read_header(raw(**{field: 2**31 - 1})), field) == 2**31 - 1


def test_readers_take_an_empty_params_block_as_an_empty_object_and_any_key_order_or_spacing():
    assert mlc.unpack(raw(params=b"")).params == {}
    assert mlc.unpack(raw(params=b' { "z" : 1 ,\n"a":[ 2, 3 ] } ')).params == {"z": 1, "a": [2, 3]}
    assert mlc.pack(sample(params={})).count(b"\x00\x02{}") == 1  # writers write {}, not an empty block
    assert b'{"mode":"x","q":4}' in mlc.pack(sample())  # and sort keys without spaces


@pytest.mark.parametrize("params", [b'{"q":NaN}', b'{"q":-Infinity}', b'{"q":1e999}', b'{"q":1,"q":2}',
                                    b'\xef\xbb\xbf{"q":1}', b'{"q":"\xff"}', b"{'q':1}", b'{"q":1}x'])
def test_params_that_are_not_strict_json_are_refused(params):
    with pytest.raises(CorruptDataError, match="not strict JSON"):
        mlc.unpack(raw(params=params))


# ------------------------------------------------------------------ params bounds (issue 26, item 1)


def test_deeply_nested_params_are_corrupt_data_not_a_recursion_error():
    for params in (b"[" * 2000 + b"]" * 2000, b'{"a":' * 600 + b"1" + b"}" * 600, b"[" * 4000):
        with pytest.raises(CorruptDataError, match="nested deeper than 16"):
            mlc.unpack(raw(params=params))


def test_params_nest_up_to_the_bound_and_brackets_inside_strings_do_not_count():
    at_bound = b"[" * 15 + b"1" + b"]" * 15
    assert mlc.nesting_depth(b'{"a":' + at_bound + b"}") == 16
    assert mlc.unpack(raw(params=b'{"a":' + at_bound + b"}")).params["a"] is not None
    with pytest.raises(CorruptDataError, match="nested"):
        mlc.unpack(raw(params=b'{"a":[' + at_bound + b"]}"))
    brackets = b'{"s":"' + b"[{" * 1000 + b'\\"[[[", "t":"\\\\"}'
    assert mlc.nesting_depth(brackets) == 1
    assert mlc.unpack(raw(params=brackets)).params["s"].startswith("[{[{")


def test_params_are_bounded_at_4096_bytes_for_readers_and_writers():
    fits = {"a": "x" * (mlc.MAX_PARAMS_BYTES - 8)}  # {"a":"..."} is 8 bytes of syntax
    assert mlc.unpack(mlc.pack(sample(params=fits))).params == fits
    with pytest.raises(UsageError, match="too long"):
        mlc.pack(sample(params={"a": "x" * (mlc.MAX_PARAMS_BYTES - 7)}))
    with pytest.raises(CorruptDataError, match="over 4096 bytes"):
        mlc.unpack(raw(params=b'{"a":"' + b"x" * (mlc.MAX_PARAMS_BYTES - 7) + b'"}'))


def test_writers_refuse_params_nested_deeper_than_readers_accept():
    deep: object = 1
    for _ in range(mlc.MAX_PARAMS_DEPTH):
        deep = [deep]
    with pytest.raises(UsageError, match="nest deeper"):
        mlc.pack(sample(params={"a": deep}))
    for _ in range(5000):  # deeper than Python's recursion limit: still a UsageError
        deep = [deep]
    with pytest.raises(UsageError):
        mlc.pack(sample(params={"a": deep}))
