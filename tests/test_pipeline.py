"""Chains of codecs ("vq+rle", "rle+vq", any "a+b+c"): semantics, params, dispatch, errors."""

from __future__ import annotations

import numpy as np
import pytest

import mlcompress
from mlcompress import container, registry
from mlcompress.codecs.pipeline import ChainCodec
from mlcompress.codecs.vq import VqCodec


def _photo_like(h=40, w=56, seed=0) -> np.ndarray:
    r = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 4, yy * 5, (xx + yy) * 2], axis=2).astype(np.float64)
    return np.clip(base + r.normal(0, 10, base.shape), 0, 255).astype(np.uint8)


def test_the_thesis_chains_are_listed_as_codecs():
    names = mlcompress.list_codecs()
    assert "vq+rle" in names and "rle+vq" in names


def test_vq_then_rle_round_trips_to_the_vq_pixels_with_rle_coded_palette_indices():
    img = _photo_like()
    data = mlcompress.encode(img, "vq+rle", 16)
    c = container.unpack(data)
    assert c.codec == "vq+rle"
    assert [s["codec"] for s in c.params["stages"]] == ["vq", "rle"]
    assert c.params["stages"][0]["quality"] == 16
    assert c.params["stages"][1]["params"]["layout"] == "palette"
    out = mlcompress.decode(data)
    assert np.array_equal(out, mlcompress.decode(mlcompress.encode(img, "vq", 16)))
    assert len(np.unique(out.reshape(-1, 3), axis=0)) <= 16


def test_rle_then_vq_gives_the_pixels_and_payload_of_vq_alone():
    img = _photo_like()
    vq_alone = container.unpack(mlcompress.encode(img, "vq", 16))
    chain = container.unpack(mlcompress.encode(img, "rle+vq", 16))
    assert chain.payload == vq_alone.payload  # bytes differ only in the container header
    assert np.array_equal(mlcompress.decode(mlcompress.encode(img, "rle+vq", 16)),
                          mlcompress.decode(mlcompress.encode(img, "vq", 16)))


def test_any_chain_of_registered_codecs_resolves_by_name():
    img = _photo_like(9, 11)
    chain = registry.get("rle+rle+packbits")
    assert chain.lossless and chain.quality_range is None
    assert np.array_equal(mlcompress.decode(chain.encode(img)), img)


def test_a_chain_takes_its_quality_knob_from_its_first_stage_that_has_one():
    chain = registry.get("rle+vq")
    assert chain.quality_range == registry.get("vq").quality_range
    assert "goes to vq" in chain.quality_help
    with pytest.raises(mlcompress.UsageError, match="codewords"):
        chain.encode(_photo_like(), 1)


def test_chains_with_unknown_or_non_native_last_stages_are_usage_errors():
    with pytest.raises(mlcompress.UsageError, match="unknown codec"):
        registry.get("vq+nosuchcodec")
    with pytest.raises(mlcompress.UsageError, match="native"):
        registry.get("vq+png")


def test_a_classical_codec_can_be_a_pixel_domain_stage():
    img = _photo_like()
    out = mlcompress.decode(mlcompress.encode(img, "jpeg+rle", 50))
    jpeg = mlcompress.decode(mlcompress.encode(img, "jpeg", 50))
    assert np.array_equal(out, jpeg)


def test_python_api_chains_carry_their_stage_parameters():
    chain = ChainCodec(stages=[VqCodec(n_init=2, seed=5), registry.get("rle")])
    assert chain.name == "vq+rle"
    data = chain.encode(_photo_like(), 8)
    stage = container.unpack(data).params["stages"][0]["params"]
    assert stage["n_init"] == 2 and stage["seed"] == 5
    assert mlcompress.decode(data).shape == (40, 56, 3)


def test_chain_params_that_do_not_match_the_chain_are_corrupt_data():
    good = container.unpack(mlcompress.encode(_photo_like(), "vq+rle", 8))
    for params in ({}, {"stages": []}, {"stages": [{}, {}]}, {"stages": [{}, {"codec": "vq", "params": {}}]}):
        bad = container.pack(container.Container("vq+rle", good.width, good.height, good.channels,
                                                 good.payload, params))
        with pytest.raises(mlcompress.CorruptDataError):
            mlcompress.decode(bad)
