"""The variable-rate learned codec `hyperprior-ctx-vr` (nn.models.GainedContextHyperprior): one
network, gain vectors per level, any quality in 1..6.

Tiny randomly initialised models in a temporary weights folder, except where a test says it
reads the shipped weights (skipped when they are not installed).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")

from mlcompress import container as mlc  # noqa: E402
from mlcompress import registry  # noqa: E402
from mlcompress.codecs.learned import LAMBDAS, WEIGHTS_DIR  # noqa: E402
from mlcompress.errors import CorruptDataError, ModelMismatchError, UsageError  # noqa: E402
from conftest import VR_ARCH as NAME, tiny_model, tiny_vr_model  # noqa: E402
from test_train import tiny_data  # noqa: E402,F401 (the training loop's synthetic images, a fixture)


@pytest.fixture
def codec(tiny_weights, monkeypatch):
    c = registry.get(NAME)
    monkeypatch.setattr(c, "weights_dir", tiny_weights)
    return c


def test_integer_qualities_use_their_levels_gains_and_fractional_ones_the_geometric_interpolation():
    model = tiny_vr_model()
    with torch.no_grad():
        model.log_gain.normal_()
        model.log_inverse_gain.normal_()
        for q in range(1, 7):
            g, ig = model.gains(q)
            assert torch.equal(g.flatten(), torch.exp(model.log_gain[q - 1]))
            assert torch.equal(ig.flatten(), torch.exp(model.log_inverse_gain[q - 1]))
        g, _ = model.gains(2.25)
        expected = torch.exp(model.log_gain[1]) ** 0.75 * torch.exp(model.log_gain[2]) ** 0.25
        assert torch.allclose(g.flatten(), expected, rtol=1e-5)
    with pytest.raises(ValueError):
        model.gains(6.5)


def test_a_fractional_quality_round_trips_and_its_file_records_that_quality(codec, rng):
    img = rng.integers(0, 256, (70, 90, 3), dtype=np.uint8)
    data = codec.encode(img, 2.5)
    c = mlc.unpack(data)
    assert c.codec == NAME and c.model == NAME and c.params == {"quality": 2.5}
    out = codec.decode(data)
    assert out.shape == img.shape and out.dtype == np.uint8
    assert np.array_equal(codec.decode(data), out)
    # the decoder reads the quality from the file: the same streams read as quality 3 decode otherwise
    as_q3 = mlc.pack(mlc.Container(c.codec, c.width, c.height, c.channels, c.payload, {"quality": 3.0},
                                   c.model, c.weights_hash))
    assert not np.array_equal(codec.decode(as_q3), out)


def test_any_quality_in_the_range_is_accepted_and_outside_it_refused(codec):
    img = np.full((16, 16, 3), 90, np.uint8)
    for q in (1, 1.01, 3.7, 5.999, 6):
        assert mlc.unpack(codec.encode(img, q)).params == {"quality": float(q)}
    for q in (0.99, 6.01):
        with pytest.raises(UsageError):
            codec.encode(img, q)


def test_the_rate_rises_with_the_quality_on_a_small_image(codec):
    # the rate is the latents' entropy-coded streams: on so small an image the post-filter's
    # block, chosen per quality by its own rate-distortion test, is most of the payload and
    # moves by a byte either way (half of the seeds 0-11 gave a payload 1 byte smaller at a
    # higher quality); the image's noise has its own seed, not the session's shared generator
    yy, xx = np.mgrid[0:64, 0:64]
    img = np.stack([xx * 4, yy * 4, (xx * yy) % 256], 2).astype(np.uint8)
    noise = np.random.default_rng(3).integers(-20, 21, img.shape)
    img = np.clip(img.astype(int) + noise, 0, 255).astype(np.uint8)
    sizes = [sum(map(len, codec._streams(mlc.unpack(codec.encode(img, q)).payload)[0]))
             for q in np.arange(1, 6.01, 0.5)]
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]


def test_bytes_and_pixels_do_not_depend_on_the_torch_thread_count(codec, rng):
    img = rng.integers(0, 256, (70, 90, 3), dtype=np.uint8)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        d1 = codec.encode(img, 4.3)
        p1 = codec.decode(d1)
        torch.set_num_threads(2)
        d2 = codec.encode(img, 4.3)
        p2 = codec.decode(d1)
    finally:
        torch.set_num_threads(before)
    assert d1 == d2
    assert np.array_equal(p1, p2)


def test_a_file_written_with_other_weights_is_refused(codec, tmp_path, monkeypatch):
    from mlcompress.train.export import write_weights

    data = codec.encode(np.full((16, 16, 3), 99, np.uint8), 2.5)
    write_weights(tiny_vr_model(seed=1), NAME, LAMBDAS, tmp_path)
    monkeypatch.setattr(codec, "weights_dir", tmp_path)
    with pytest.raises(ModelMismatchError):
        codec.decode(data)


@pytest.mark.parametrize("params, model", [({}, NAME), ({"quality": "3"}, NAME), ({"quality": 7.0}, NAME),
                                           ({"quality": True}, NAME), ({"quality": 3.0}, "hyperprior-ctx-q3")])
def test_a_file_without_a_valid_quality_or_with_another_model_name_is_corrupt_data(codec, params, model):
    c = mlc.unpack(codec.encode(np.full((16, 16, 3), 99, np.uint8), 3))
    bad = mlc.pack(mlc.Container(c.codec, c.width, c.height, c.channels, c.payload, params, model, c.weights_hash))
    with pytest.raises(CorruptDataError):
        codec.decode(bad)


def test_training_from_hyperprior_ctx_weights_runs_every_level_and_exports_weights_the_codec_reads(
        tiny_data, tmp_path, monkeypatch):
    from mlcompress.train.export import export, write_weights
    from mlcompress.train.loop import TrainConfig, train
    from mlcompress.weights import read_safetensors

    write_weights(tiny_model("hyperprior-ctx", refine=4), "hyperprior-ctx-q3", LAMBDAS[2], tmp_path)
    cfg = TrainConfig(model=NAME, data=str(tiny_data), lmbda=None, steps=2, out=str(tmp_path / "vr.pt"), N=8, M=12,
                      refine=4, batch=2, crop=64, lr=1e-3, threads=1, progress=False, eval_every=2,
                      init=str(tmp_path / "hyperprior-ctx-q3.safetensors"))
    assert train(cfg)["step"] == 2
    ck = torch.load(tmp_path / "vr.pt", weights_only=False)
    assert ck["stages"][-1]["lambdas"] == list(LAMBDAS)
    start = ck["evals"][0]
    assert [lv["quality"] for lv in start["levels"]] == [1, 2, 3, 4, 5, 6]
    assert start["loss"] == pytest.approx(np.mean([lv["loss"] for lv in start["levels"]]), abs=1e-4)
    assert start["bpp"] > 0 and [lv["bpp"] for lv in start["levels"]][0] < [lv["bpp"] for lv in start["levels"]][-1]
    gains = ck["model"]["log_gain"]
    assert torch.allclose(gains[2], torch.zeros(12), atol=0.05)  # the level it started from kept gain 1 (moved a step)

    rec = export(tmp_path / "vr.pt", NAME, tmp_path / "out")
    assert rec["lambdas"] == list(LAMBDAS) and "lambda" not in rec
    meta = read_safetensors(tmp_path / "out" / f"{NAME}.safetensors")[1]
    assert json.loads(meta["lambdas"]) == list(LAMBDAS) and meta["model"] == NAME
    c = registry.get(NAME)
    monkeypatch.setattr(c, "weights_dir", tmp_path / "out")
    img = np.full((40, 40, 3), 120, np.uint8)
    assert c.decode(c.encode(img, 1.5)).shape == img.shape


def test_init_gains_takes_every_levels_gains_from_variable_rate_weights_and_the_rest_from_init(
        tiny_data, tiny_weights, tmp_path):
    from mlcompress.train.export import write_weights
    from mlcompress.train.loop import TrainConfig, train
    from mlcompress.weights import load_weights

    write_weights(tiny_model("hyperprior-ctx", seed=5, refine=4), "hyperprior-ctx-q4", LAMBDAS[3], tmp_path)
    source = load_weights(tiny_weights / f"{NAME}.safetensors")[0]
    transforms = load_weights(tmp_path / "hyperprior-ctx-q4.safetensors")[0]
    gains = str(tiny_weights / f"{NAME}.safetensors")
    cfg = TrainConfig(model=NAME, data=str(tiny_data), lmbda=None, steps=1, out=str(tmp_path / "vr.pt"), N=8, M=12,
                      refine=4, batch=2, crop=64, lr=0.0, threads=1, progress=False, eval_every=0,
                      init=str(tmp_path / "hyperprior-ctx-q4.safetensors"), init_gains=gains)
    train(cfg)
    ck = torch.load(tmp_path / "vr.pt", weights_only=False)
    assert torch.equal(ck["model"]["log_gain"], source.log_gain)  # learning rate 0: the start, unchanged
    assert torch.equal(ck["model"]["log_inverse_gain"], source.log_inverse_gain)
    assert ck["model"]["log_gain"][3].abs().min() > 0.1  # the rule of thumb from q4 would have given level 4 gain 1
    assert torch.equal(ck["model"]["g_a.0.weight"], transforms.g_a[0].weight)
    assert ck["stages"][0]["init"]["gains"]["path"] == gains and len(ck["stages"][0]["init"]["gains"]["sha256"]) == 64


def test_init_gains_refuses_weights_without_gain_tables_and_models_without_them(tiny_data, tmp_path):
    from mlcompress.train.export import write_weights
    from mlcompress.train.loop import TrainConfig, train

    write_weights(tiny_model("hyperprior-ctx", refine=4), "hyperprior-ctx-q4", LAMBDAS[3], tmp_path)
    plain = str(tmp_path / "hyperprior-ctx-q4.safetensors")
    base = dict(data=str(tiny_data), steps=1, N=8, M=12, refine=4, batch=2, crop=64, threads=1, progress=False)
    with pytest.raises(UsageError, match="is not a hyperprior-ctx-vr model"):
        train(TrainConfig(model=NAME, lmbda=None, out=str(tmp_path / "a.pt"), init=plain, init_gains=plain, **base))
    with pytest.raises(UsageError, match="hyperprior-ctx has no gain tables"):
        train(TrainConfig(model="hyperprior-ctx", lmbda=0.01, out=str(tmp_path / "b.pt"), init_gains=plain, **base))
    assert not (tmp_path / "a.pt").exists() and not (tmp_path / "b.pt").exists()


def test_level_weights_of_zero_leave_those_levels_untrained_and_the_stage_records_them(tiny_data, tmp_path):
    from mlcompress.train.loop import TrainConfig, train

    weights = (0, 0, 1, 0, 0, 0)
    cfg = TrainConfig(model=NAME, data=str(tiny_data), lmbda=None, steps=3, out=str(tmp_path / "vr.pt"), N=8, M=12,
                      refine=4, batch=2, crop=64, lr=1e-2, threads=1, progress=False, eval_every=0,
                      level_weights=weights)
    train(cfg)  # without --init every gain starts at 1 (log 0)
    ck = torch.load(tmp_path / "vr.pt", weights_only=False)
    moved = [bool(ck["model"]["log_gain"][i].any()) for i in range(6)]
    assert moved == [w > 0 for w in weights]  # a level never drawn gets no gradient, so Adam leaves it
    assert ck["stages"][-1]["level_weights"] == list(weights)


def test_train_refuses_a_lambda_for_the_variable_rate_model(tiny_data, tmp_path):
    from mlcompress.train.loop import TrainConfig, train

    with pytest.raises(UsageError, match="no --lambda"):
        train(TrainConfig(model=NAME, data=str(tiny_data), lmbda=0.01, steps=1, out=str(tmp_path / "x.pt"),
                          N=8, M=12, crop=64, progress=False))
    assert not (tmp_path / "x.pt").exists()


SHIPPED = WEIGHTS_DIR / f"{NAME}.safetensors"


@pytest.mark.skipif(not SHIPPED.is_file(), reason="hyperprior-ctx-vr weights are not installed")
def test_the_shipped_model_trades_more_bits_for_more_psnr_as_quality_rises_on_a_kodak_crop(kodak_images):
    from mlcompress.metrics import psnr

    c = registry.get(NAME)
    crop = np.ascontiguousarray(kodak_images[1][:128, :192])
    rows = []
    for q in (1, 1.5, 2.5, 3, 4.5, 6):
        data = c.encode(crop, q)
        rows.append((len(data), psnr(crop, c.decode(data))))
    assert [r[0] for r in rows] == sorted(r[0] for r in rows)
    assert [r[1] for r in rows] == sorted(r[1] for r in rows)
