"""Anchor codecs: palette quantisers saved as PNG (decoded as png) and PackBits in .mlc."""

from __future__ import annotations

import numpy as np
import pytest

import mlcompress
from mlcompress import container


def _img(h=30, w=40) -> np.ndarray:
    r = np.random.default_rng(2)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 6, yy * 8, (xx + yy) * 3], axis=2).astype(np.float64)
    return np.clip(base + r.normal(0, 8, base.shape), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("codec", ["pil-mediancut", "imagequant"])
def test_palette_anchors_write_png_that_decodes_as_png_with_at_most_q_colours(codec):
    data = mlcompress.encode(_img(), codec, 16)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert mlcompress.identify(data).name == "png"
    out = mlcompress.decode(data)
    assert out.shape == (30, 40, 3)
    assert len(np.unique(out.reshape(-1, 3), axis=0)) <= 16


def test_imagequant_keeps_alpha():
    img = np.dstack([_img(), np.full((30, 40), 128, np.uint8)])
    out = mlcompress.decode(mlcompress.encode(img, "imagequant", 8))
    assert out.shape == (30, 40, 4) and (out[:, :, 3] == 128).all()


def test_plain_png_files_are_still_identified_as_png():
    assert mlcompress.identify(mlcompress.encode(_img(), "png")).name == "png"


def test_packbits_round_trip_is_exact(synthetic):
    assert np.array_equal(mlcompress.decode(mlcompress.encode(synthetic, "packbits")), synthetic)


def test_packbits_rejects_truncated_payloads():
    c = container.unpack(mlcompress.encode(_img(), "packbits"))
    for n in (0, 1, len(c.payload) // 2, len(c.payload) - 1):
        bad = container.pack(container.Container("packbits", 40, 30, 3, c.payload[:n], c.params))
        with pytest.raises(mlcompress.CorruptDataError):
            mlcompress.decode(bad)
