"""The .mlc container: fields, CRC, and one clear error per kind of damage (docs/FORMAT.md)."""

import struct
import zlib

import pytest

from mlcompress import container as mlc
from mlcompress.errors import CorruptDataError, LimitError, UsageError, VersionError
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
