"""The thesis's convolutional autoencoder: model (nn/cae.py), training (train/cae.py), codec (codecs/cae.py)."""

from __future__ import annotations

import numpy as np
import pytest

import mlcompress
from mlcompress import container as mlc
from mlcompress.errors import CorruptDataError, Error, ModelMismatchError, UnsupportedError

torch = pytest.importorskip("torch", reason="torch is not installed (pip install 'mlcompress[learned]')")
pytest.importorskip("safetensors", reason="safetensors is not installed")

from mlcompress.codecs import cae as cae_codec  # noqa: E402
from mlcompress.nn.cae import THESIS_PARAMETERS, build_cae, count_parameters  # noqa: E402


@pytest.fixture(scope="module")
def codec():
    """The registered cae-thesis codec with the shipped weights (skips when they are missing)."""
    c = mlcompress.get_codec("cae-thesis")
    reason = c.unavailable_reason()
    if reason:
        pytest.skip(f"cae-thesis unavailable: {reason}")
    return c


def smooth_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A photo-like uint8 HxWx3 image: smooth gradients plus mild noise."""
    r = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    base = np.stack([128 + 90 * np.sin(xx / 9.0), 128 + 90 * np.cos(yy / 7.0), 60 + (xx + yy) % 120], axis=2)
    return np.clip(base + r.normal(0, 4, base.shape), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- model and training


def test_thesis_cae_has_exactly_52067_parameters():
    assert count_parameters(build_cae()) == THESIS_PARAMETERS == 52_067


def test_thesis_cae_maps_a_32x32_block_to_a_4x4x16_latent_and_back():
    m = build_cae()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        y = m.encode(x)
        out = m.decode(y)
    assert y.shape == (2, 16, 4, 4) and float(y.min()) >= 0.0
    assert out.shape == x.shape and 0.0 <= float(out.min()) and float(out.max()) <= 1.0


def test_one_training_step_lowers_the_loss_on_a_tiny_batch():
    from mlcompress.train.cae import train_step

    torch.manual_seed(0)
    m = build_cae()
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    x = torch.from_numpy(np.stack([smooth_image(32, 32, s) for s in range(4)])).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        before = float(torch.nn.functional.mse_loss(m(x), x))
    train_step(m, opt, x)
    with torch.no_grad():
        after = float(torch.nn.functional.mse_loss(m(x), x))
    assert after < before


def test_train_cae_writes_weights_whose_hash_the_recipe_records(tmp_path):
    import hashlib
    import json

    from mlcompress.train.cae import CAERecipe, train_cae

    imgs = np.stack([smooth_image(32, 32, s) for s in range(40)])
    res = train_cae(CAERecipe(data="(in memory)", epochs=2, batch=8, max_steps=6), tmp_path, images=imgs)
    weights = tmp_path / "cae-thesis.safetensors"
    recipe = json.loads((tmp_path / "cae-thesis.json").read_text())
    assert res.steps == 6 and res.val_images == 2 and res.train_images == 38
    assert recipe["weights_sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert recipe["recipe"]["batch"] == 8 and len(recipe["val_loss"]) == res.epochs_run
    assert recipe["parameters"] == 52_067


# ---------------------------------------------------------------- codec


@pytest.mark.parametrize("shape", [(1, 1, 3), (7, 300, 3), (33, 65, 3), (20, 9)])
def test_cae_roundtrip_keeps_odd_shapes(codec, shape):
    img = smooth_image(*shape[:2])
    if len(shape) == 2:
        img = img[:, :, 0]
    out = mlcompress.decode(codec.encode(img, 5))
    assert out.shape == img.shape and out.dtype == np.uint8


def test_cae_is_a_lossy_codec_that_resembles_its_input(codec):
    from mlcompress.metrics import psnr

    img = smooth_image(48, 64)
    assert 20.0 < psnr(img, codec.decode(codec.encode(img, 8))) < 60.0


def test_cae_higher_quality_gives_more_bytes(codec, kodak_images):
    img = kodak_images[0][:128, :192]
    sizes = [len(codec.encode(img, q)) for q in (1, 4, 8)]
    assert sizes[0] < sizes[1] < sizes[2]


def test_cae_decode_is_the_decoder_applied_to_the_dequantised_latent(codec):
    img = smooth_image(33, 65, seed=3)
    q = 6
    data = codec.encode(img, q)
    c = mlc.unpack(data)
    p = cae_codec.parse_payload(c)
    step = torch.tensor(2.0 ** (-(q + 1) / 2), dtype=torch.float32)  # the documented quality mapping
    model, sha = cae_codec.load_model(codec.weights)
    assert c.model == "cae-thesis" and c.weights_hash == sha
    padded = np.pad(img, ((0, 7), (0, 7), (0, 0)), mode="edge")  # 33x65 -> 40x72
    x = torch.from_numpy(padded).permute(2, 0, 1)[None].float() / 255
    with cae_codec.one_torch_thread(), torch.inference_mode():
        y = model.encode(x)
        symbols = torch.round(y / step).to(torch.int64)
        assert np.array_equal(p.symbols, symbols[0].numpy())
        x_hat = model.decode(symbols.float() * step)
    expected = (x_hat[0] * 255).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()[:33, :65]
    assert np.array_equal(codec.decode(data), expected)


def test_cae_decoding_does_not_depend_on_the_torch_thread_count(codec, kodak_images):
    img = kodak_images[1][:200, :264]
    data = codec.encode(img, 7)
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = codec.decode(data)
        torch.set_num_threads(2)
        two = codec.decode(data)
    finally:
        torch.set_num_threads(old)
    assert np.array_equal(one, two)


def test_cae_refuses_a_file_encoded_with_other_weights(codec, tmp_path):
    from mlcompress.train.cae import save_weights

    torch.manual_seed(1)
    save_weights(build_cae(), tmp_path / "other.safetensors")
    other = cae_codec.CAEThesisCodec(tmp_path / "other.safetensors")
    data = other.encode(smooth_image(16, 16), 5)
    assert other.decode(data).shape == (16, 16, 3)
    with pytest.raises(ModelMismatchError):
        mlcompress.decode(data)


def test_cae_truncated_payload_is_corrupt_data(codec):
    c = mlc.unpack(codec.encode(smooth_image(24, 40), 5))
    for cut in range(len(c.payload)):
        bad = mlc.pack(mlc.Container(c.codec, c.width, c.height, c.channels, c.payload[:cut],
                                     c.params, c.model, c.weights_hash))
        with pytest.raises(CorruptDataError):
            mlcompress.decode(bad)


def test_cae_mutated_payloads_raise_only_mlcompress_errors(codec):
    c = mlc.unpack(codec.encode(smooth_image(24, 40), 5))
    rng = np.random.default_rng(0)
    for i in range(300):
        payload = bytearray(c.payload)
        pos = int(rng.integers(len(payload)))
        payload[pos] = (payload[pos] + int(rng.integers(1, 256))) % 256 if i % 2 else payload[pos] ^ (1 << (i % 8))
        bad = mlc.pack(mlc.Container(c.codec, c.width, c.height, c.channels, bytes(payload),
                                     c.params, c.model, c.weights_hash))
        try:
            out = mlcompress.decode(bad)
        except Error:
            continue
        assert out.shape == (24, 40, 3) and out.dtype == np.uint8


def _forged(data: bytes, width: int, height: int) -> bytes:
    """``data`` with the container's width and height replaced (and a fresh CRC)."""
    c = mlc.unpack(data)
    return mlc.pack(mlc.Container(c.codec, width, height, c.channels, c.payload, c.params, c.model, c.weights_hash))


def test_cae_refuses_a_header_forged_to_a_larger_image_before_decoding_its_stream(codec, kodak_images):
    for i, img in enumerate(kodak_images):
        for q in (1, 5, 8):
            crop = img[64 * i : 64 * i + 64, 96:192]
            for w, h in ((1024, 1024), (9459, 9459)):
                with pytest.raises(CorruptDataError, match="cannot hold"):
                    mlcompress.decode(_forged(codec.encode(crop, q), w, h))


def test_cae_refuses_a_header_forged_a_little_larger_once_its_stream_runs_out(codec):
    flat = np.full((64, 64, 3), 90, np.uint8)  # every latent symbol the same: the cheapest stream
    for img in (flat, smooth_image(64, 64)):
        data = codec.encode(img, 5)
        assert mlcompress.decode(data).shape == img.shape
        for w, h in ((72, 64), (64, 72), (2048, 2048)):
            with pytest.raises(CorruptDataError, match="exhausted|left over"):
                mlcompress.decode(_forged(data, w, h))


def test_cae_version_1_files_with_an_unsealed_stream_still_decode(codec):
    img = smooth_image(40, 56)
    data = codec.encode(img, 5)
    c = mlc.unpack(data)
    p = cae_codec.parse_payload(c)
    assert c.payload[0] == 2
    v1 = bytes([1]) + c.payload[1:3] + cae_codec.pack_symbols(p.symbols, sealed=False)
    assert v1 != c.payload
    old = mlc.pack(mlc.Container(c.codec, c.width, c.height, c.channels, v1, c.params, c.model, c.weights_hash))
    assert np.array_equal(mlcompress.decode(old), mlcompress.decode(data))


def test_cae_refuses_rgba(codec):
    with pytest.raises(UnsupportedError):
        codec.encode(np.zeros((8, 8, 4), np.uint8), 5)


def test_cae_thesis_resize_protocol_codes_a_32x32_thumbnail_and_decodes_to_full_size(codec):
    img = smooth_image(96, 128)
    data = codec.encode(img, 5, resize=32)
    c = mlc.unpack(data)
    assert c.params["resize"] == 32 and (c.width, c.height) == (128, 96)
    assert cae_codec.parse_payload(c).symbols.shape == (16, 4, 4)
    assert mlcompress.decode(data).shape == img.shape
    assert len(data) < len(codec.encode(img, 5))


def test_cli_resize_is_refused_for_other_codecs(tmp_path):
    from mlcompress.cli import EXIT_USAGE, main

    src = tmp_path / "a.png"
    from mlcompress.image import to_pil

    to_pil(smooth_image(16, 16)).save(src)
    assert main(["compress", str(src), "-c", "png", "--resize", "32", "-o", str(tmp_path / "a.out")]) == EXIT_USAGE
    assert not (tmp_path / "a.out").exists()


def test_thesis_pipeline_is_cae_thesis_applied_to_the_vq_colours(codec):
    img = smooth_image(24, 40, seed=5)
    assert "rle+vq+cae" in mlcompress.list_codecs()
    vq = mlcompress.get_codec("vq")
    reduced = vq.decode(vq.encode(img, 16))
    expected = codec.decode(codec.encode(reduced, codec.default_quality))
    for name in ("rle+vq+cae", "rle+vq+cae-thesis"):
        assert np.array_equal(mlcompress.decode(mlcompress.encode(img, name, 16)), expected)
