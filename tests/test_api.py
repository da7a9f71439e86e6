"""The public Python API and the Pillow plugin."""

import io
import zlib

import numpy as np
import pytest

import mlcompress
from mlcompress import registry
from mlcompress.errors import CorruptDataError, Error, UsageError


def test_every_error_class_derives_from_mlcompress_error():
    for cls in (mlcompress.UsageError, mlcompress.CorruptDataError, mlcompress.VersionError,
                mlcompress.LimitError, mlcompress.ModelMismatchError, mlcompress.UnsupportedError):
        assert issubclass(cls, Error)


def test_encode_decode_with_the_default_codec(synthetic):
    channels = 1 if synthetic.ndim == 2 else synthetic.shape[2]
    if channels not in registry.get(mlcompress.default_codec()).channels:
        pytest.skip("layout not supported by the default codec")
    out = mlcompress.decode(mlcompress.encode(synthetic))
    assert out.shape == synthetic.shape and out.dtype == np.uint8


def test_list_codecs_has_the_classical_baselines():
    assert {"jpeg", "webp", "jpeg2000", "avif", "jxl", "png", "qoi"} <= set(mlcompress.list_codecs())


def test_registry_rejects_a_duplicate_name():
    with pytest.raises(ValueError, match="already registered"):
        registry.register(type(registry.get("png")))


def test_non_images_are_refused_with_usage_errors():
    with pytest.raises(UsageError):
        mlcompress.encode(np.zeros((4, 4, 3), np.float32), codec="png")
    with pytest.raises(UsageError):
        mlcompress.encode(np.zeros((4, 4, 2), np.uint8), codec="png")
    with pytest.raises(UsageError):
        mlcompress.encode([[1, 2]], codec="png")
    with pytest.raises(UsageError):
        mlcompress.decode("a string")


def test_unrecognised_bytes_are_corrupt_data():
    with pytest.raises(CorruptDataError):
        mlcompress.decode(b"hello world, this is not an image")
    with pytest.raises(CorruptDataError):
        mlcompress.decode(b"")


def test_pillow_opens_mlc_files_after_import(synthetic):
    from PIL import Image

    native = [c for c in registry.codecs() if c.native and c.available() and c.lossless]
    if not native:
        pytest.skip("no lossless native codec registered yet")
    data = native[0].encode(synthetic)
    with Image.open(io.BytesIO(data)) as im:
        assert im.format == "MLC"
        assert im.size == (synthetic.shape[1], synthetic.shape[0])
        assert np.array_equal(np.asarray(im), synthetic)


def test_pillow_reports_a_corrupt_mlc_file_as_an_oserror(synthetic):
    from PIL import Image

    layout = 1 if synthetic.ndim == 2 else synthetic.shape[2]
    native = [c for c in registry.codecs() if c.native and c.available() and layout in c.channels]
    if not native:
        pytest.skip("no native codec registered yet")
    data = bytearray(native[0].encode(synthetic))
    data[-1] ^= 1
    with Image.open(io.BytesIO(bytes(data))) as im, pytest.raises(OSError):
        im.load()


def test_pillow_reports_deeply_nested_params_as_an_oserror_not_a_recursion_error():
    from PIL import Image

    from mlcompress import container as mlc

    c = mlc.unpack(registry.get("rle").encode(np.zeros((4, 5, 3), np.uint8)))
    params = b"[" * 2000 + b"]" * 2000
    var = bytes([3]) + b"rle" + len(params).to_bytes(2, "big") + params + b"\x00\x00"
    body = mlc.FIXED.pack(mlc.MAGIC, 1, 3, len(var), 5, 4) + var + len(c.payload).to_bytes(4, "big") + c.payload
    data = body + zlib.crc32(body).to_bytes(4, "big")
    with Image.open(io.BytesIO(data)) as im, pytest.raises(OSError, match="nested deeper"):
        im.load()
