"""Learned models and the registered `factorized` / `hyperprior` codecs.

Most tests use tiny randomly initialised models written to a temporary weights folder (fast);
the tests about the shipped weights skip when none are installed yet.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")

from mlcompress import container as mlc  # noqa: E402
from mlcompress import registry  # noqa: E402
from mlcompress.codecs.learned import WEIGHTS_DIR  # noqa: E402
from mlcompress.errors import CorruptDataError, ModelMismatchError, UnsupportedError  # noqa: E402
from conftest import LEARNED_ARCHS as ARCHS  # noqa: E402
from conftest import tiny_model as _tiny  # noqa: E402


@pytest.fixture(params=ARCHS)
def codec(request, tiny_weights, monkeypatch):
    c = registry.get(request.param)
    monkeypatch.setattr(c, "weights_dir", tiny_weights)
    return c


@pytest.mark.parametrize("arch", ARCHS)
def test_decompress_gives_exactly_the_forward_reconstruction_of_the_quantised_latents(arch):
    from mlcompress.nn.models import single_thread

    model = _tiny(arch).eval()
    model.update()
    x = torch.rand(1, 3, 64, 128)
    enc = model.compress(x)
    x_hat = model.decompress(enc["strings"], enc["shape"])
    with torch.no_grad(), single_thread():
        ref = model(x)["x_hat"].clamp(0, 1)
    assert torch.equal(x_hat, ref)


@pytest.mark.parametrize("arch", ARCHS)
def test_a_fresh_refiner_decodes_exactly_like_the_model_it_extends_and_a_trained_one_changes_only_pixels(arch):
    from mlcompress.nn.models import build
    from mlcompress.train.loop import init_from

    base = _tiny(arch).eval()
    base.update()
    refined = build(arch, 8, 12, refine=4).eval()
    init_from(refined, base, log=lambda msg: None)
    refined.update()
    x = torch.rand(1, 3, 64, 128)
    enc = base.compress(x)
    assert refined.compress(x)["strings"] == enc["strings"]
    assert torch.equal(refined.decompress(*enc.values()), base.decompress(*enc.values()))
    torch.nn.init.normal_(refined.g_s[-1].net[-1].weight, std=0.1)
    assert refined.compress(x)["strings"] == enc["strings"]
    assert not torch.equal(refined.decompress(*enc.values()), base.decompress(*enc.values()))


def test_an_untrained_context_model_codes_exactly_like_the_hyperprior_it_starts_from():
    from mlcompress.nn.models import build
    from mlcompress.train.loop import init_from

    hyper = _tiny("hyperprior").eval()
    ctx = build("hyperprior-ctx", 8, 12).eval()
    init_from(ctx, hyper, log=lambda msg: None)
    hyper.update(), ctx.update()
    x = torch.rand(1, 3, 128, 64)
    a, b = hyper.compress(x), ctx.compress(x)
    assert ctx.estimate_bits(x) == hyper.estimate_bits(x)
    assert torch.equal(ctx.decompress(b["strings"], b["shape"]), hyper.decompress(a["strings"], a["shape"]))


def test_the_context_model_sees_only_what_the_decoder_has_decoded():
    """The second checkerboard pass of each group depends on that group's anchors only: changing
    a non-anchor latent changes no entropy parameter of any anchor or of any earlier group."""
    model = _tiny("hyperprior-ctx").eval()
    y = torch.randn(1, 12, 4, 4) * 3
    z = torch.zeros(1, 8, 1, 1)
    scales, means = model.h_s(z).chunk(2, 1)

    def params(y):
        with torch.no_grad():
            return model._context(scales, means, lambda s, m, sc, mu: torch.round(model._group(y, s) - mu) + mu)

    _, s0, m0 = params(y)
    y2 = y.clone()
    y2[0, 4, 1, 2] += 5  # group 1 (channels 3..5), a non-anchor position ((1 + 2) odd)
    _, s1, m1 = params(y2)
    changed = (s0 != s1) | (m0 != m1)
    anchors = models_checkerboard(4, 4)
    assert not changed[:, :3].any()  # earlier group
    assert not (changed[:, 3:6] & anchors).any()  # anchors of its own group
    assert changed[:, 6:].any()  # later groups see it


def test_uneven_channel_groups_code_each_group_after_the_ones_before_it_and_round_trip():
    """With groups 2,2,8 a change in channel 3 (group 1) moves no entropy parameter of group 0,
    and the decoder gives back exactly the quantised latents."""
    from mlcompress.nn.models import build, single_thread

    torch.manual_seed(0)
    model = build("hyperprior-ctx", 8, 12, groups=(2, 2, 8)).eval()
    for net in model.ctx:
        torch.nn.init.normal_(net[-1].weight, std=0.3)
    model.update()
    y = torch.randn(1, 12, 4, 4) * 3
    scales, means = model.h_s(torch.zeros(1, 8, 1, 1)).chunk(2, 1)

    def params(y):
        with torch.no_grad():
            return model._context(scales, means, lambda s, m, sc, mu: torch.round(model._group(y, s) - mu) + mu)

    _, s0, m0 = params(y)
    y2 = y.clone()
    y2[0, 3, 1, 2] += 5
    _, s1, m1 = params(y2)
    changed = (s0 != s1) | (m0 != m1)
    assert not changed[:, :2].any() and changed[:, 4:].any()
    x = torch.rand(1, 3, 64, 128)
    enc = model.compress(x)
    with torch.no_grad(), single_thread():
        ref = model(x)["x_hat"].clamp(0, 1)
    assert torch.equal(model.decompress(enc["strings"], enc["shape"]), ref)


def models_checkerboard(h, w):
    from mlcompress.nn.models import checkerboard

    return checkerboard(h, w, True)


@pytest.mark.parametrize("arch", ARCHS)
def test_synthesis_runs_channels_last_and_keeps_its_parameter_names(arch):
    from torch import nn

    model = _tiny(arch, refine=4).eval()
    torch.nn.init.normal_(model.g_s[-1].net[-1].weight, std=0.1)
    y = torch.round(4 * torch.randn(1, model.M, 3, 5))
    seen = []
    hook = model.g_s[0].register_forward_pre_hook(lambda m, args: seen.append(args[0].is_contiguous(
        memory_format=torch.channels_last)))
    with torch.no_grad():
        out = model.g_s(y)
        default_order = nn.Sequential.forward(model.g_s, y)  # the same layers in the default order
    hook.remove()
    assert seen == [True, False] and out.shape == (1, 3, 48, 80)
    assert torch.allclose(out, default_order, atol=1e-5)
    assert "g_s.0.weight" in model.state_dict()  # weights files keep loading


@pytest.mark.parametrize("height", [1, 5, 32, 33, 70])
def test_the_refiner_decodes_in_strips_to_the_same_numbers_as_its_training_pass(height):
    from mlcompress.nn.models import Refiner

    torch.manual_seed(0)
    refiner = Refiner(8)
    for p in refiner.parameters():
        torch.nn.init.normal_(p, std=0.2)  # every conv acts, so a wrong halo shows
    x = torch.rand(1, 3, height, 45)
    whole = refiner(x).detach()  # with autograd: one pass over the whole image
    with torch.no_grad():
        strips = refiner(x)
    assert torch.allclose(strips, whole, atol=1e-6)


@pytest.mark.parametrize("arch,refine", [(a, 0) for a in ARCHS] + [("hyperprior", 4)])
def test_tiled_transforms_match_the_whole_image_pass(arch, refine, monkeypatch):
    from mlcompress.nn import models

    model = _tiny(arch, refine=refine).eval()
    x = torch.rand(1, 3, 112, 176)  # a 7 x 11 latent grid
    with torch.no_grad():
        y_whole = model.g_a(x)
        img_whole = models.synthesise_uint8(model.g_s, torch.round(y_whole))
        monkeypatch.setattr(models, "TILE", 3)  # 3 x 4 tiles with halos
        y_tiled = models.analyse(model.g_a, x)
        img_tiled = models.synthesise_uint8(model.g_s, torch.round(y_whole))
    assert y_tiled.shape == y_whole.shape
    assert torch.allclose(y_tiled, y_whole, atol=1e-5)
    diff = np.abs(img_tiled.astype(int) - img_whole.astype(int))
    assert img_tiled.shape == (112, 176, 3) and diff.max() <= 1 and diff.mean() < 0.01


def test_large_images_round_trip_through_the_tiled_codec(codec, monkeypatch, rng):
    from mlcompress.nn import models

    img = rng.integers(0, 256, (150, 230, 3), dtype=np.uint8)
    whole = codec.decode(codec.encode(img, 3))
    monkeypatch.setattr(models, "TILE", 2)
    tiled = codec.decode(codec.encode(img, 3))
    assert tiled.shape == img.shape
    assert np.abs(tiled.astype(int) - whole.astype(int)).max() <= 2


@pytest.mark.parametrize("shape", [(1, 1, 3), (7, 300, 3), (1000, 3, 3), (37, 53, 1)])
def test_odd_sizes_and_grey_round_trip_through_the_registered_codec(codec, shape, rng):
    img = rng.integers(0, 256, shape, dtype=np.uint8)
    if shape[2] == 1:
        img = img[:, :, 0]
    out = codec.decode(codec.encode(img, 3))
    assert out.shape == img.shape and out.dtype == np.uint8


def test_rgba_is_refused(codec):
    with pytest.raises(UnsupportedError):
        codec.encode(np.zeros((8, 8, 4), np.uint8), 3)


def test_a_quality_without_installed_weights_is_refused(codec):
    with pytest.raises(UnsupportedError):
        codec.encode(np.zeros((8, 8, 3), np.uint8), 1)


def test_container_records_the_model_name_and_the_weights_hash(codec, tiny_weights):
    import hashlib

    c = mlc.unpack(codec.encode(np.zeros((8, 8, 3), np.uint8), 3))
    assert c.model == f"{codec.name}-q3"
    assert c.weights_hash == hashlib.sha256((tiny_weights / f"{codec.name}-q3.safetensors").read_bytes()).digest()


def test_decoding_with_different_weights_is_refused(codec, tmp_path, monkeypatch):
    from mlcompress.train.export import write_weights

    data = codec.encode(np.full((16, 16, 3), 99, np.uint8), 3)
    write_weights(_tiny(codec.name, seed=1), f"{codec.name}-q3", 0.013, tmp_path)
    monkeypatch.setattr(codec, "weights_dir", tmp_path)
    with pytest.raises(ModelMismatchError):
        codec.decode(data)


def test_bytes_and_pixels_do_not_depend_on_the_torch_thread_count(codec, rng):
    img = rng.integers(0, 256, (70, 90, 3), dtype=np.uint8)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        d1 = codec.encode(img, 3)
        p1 = codec.decode(d1)
        torch.set_num_threads(2)
        d2 = codec.encode(img, 3)
        p2 = codec.decode(d1)
    finally:
        torch.set_num_threads(before)
    assert d1 == d2
    assert np.array_equal(p1, p2)
    assert torch.get_num_threads() == before


def test_corrupted_payloads_raise_corrupt_data_error_only(codec, rng):
    c = mlc.unpack(codec.encode(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8), 3))
    p = c.payload
    for i in range(40):
        bad = bytearray(p)
        if i % 2:
            bad = bad[: rng.integers(len(bad))]
        else:
            bad[rng.integers(len(bad))] ^= 1 << int(rng.integers(8))
        data = mlc.pack(mlc.Container(c.codec, c.width, c.height, c.channels, bytes(bad), c.params,
                                      c.model, c.weights_hash))
        try:
            out = codec.decode(data)
        except CorruptDataError:
            continue
        assert out.shape == (20, 24, 3)


def test_unknown_model_names_in_the_header_are_corrupt_data(codec):
    c = mlc.unpack(codec.encode(np.zeros((8, 8, 3), np.uint8), 3))
    data = mlc.pack(mlc.Container(c.codec, c.width, c.height, c.channels, c.payload, c.params,
                                  f"{codec.name}-q99", c.weights_hash))
    with pytest.raises(CorruptDataError):
        codec.decode(data)


# ---------------------------------------------------------------- shipped weights


def _shipped(arch: str, q: int = 3):
    path = WEIGHTS_DIR / f"{arch}-q{q}.safetensors"
    if not path.is_file():
        pytest.skip(f"no shipped weights {path.name} yet (train and export them, see the model card)")
    return path


@pytest.mark.parametrize("arch", ARCHS)
def test_shipped_weights_bytes_match_the_estimated_rate_on_a_kodak_image(arch, kodak_images):
    from mlcompress.codecs.learned import load_model

    model, _ = load_model(_shipped(arch))
    img = kodak_images[0]
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
    estimated = model.estimate_bits(x)
    data = registry.get(arch).encode(img, 3)
    actual = 8 * len(mlc.unpack(data).payload)
    assert abs(actual - estimated) < 0.05 * estimated


@pytest.mark.parametrize("arch", ARCHS)
def test_shipped_quality_levels_trade_more_bits_for_more_psnr_on_a_kodak_crop(arch, kodak_images):
    from mlcompress.metrics import psnr

    _shipped(arch)
    codec = registry.get(arch)
    img = np.ascontiguousarray(kodak_images[1][128:384, 128:512])  # kodim07, 384x256
    points = []
    for q in codec.bench_qualities:
        data = codec.encode(img, q)
        points.append((len(data), psnr(img, codec.decode(data))))
    assert len(points) >= 4
    assert all(b[0] > a[0] and b[1] > a[1] for a, b in zip(points, points[1:])), points
    flat = np.full_like(img, int(img.mean()))
    assert points[0][1] > psnr(img, flat) + 5


def _without_filter(data: bytes, version: int = 2) -> tuple[bytes, int]:
    """The file with its post-filter block replaced by 'no filter' (layout 2) or dropped (layout 1),
    and the block's length."""
    from mlcompress import postfilter

    c = mlc.unpack(data)
    count, pos = c.payload[1], 2
    for _ in range(count):
        pos += 4 + int.from_bytes(c.payload[pos : pos + 4], "little")
    _, end = postfilter.unpack(c.payload, pos)
    assert end == len(c.payload)  # the block ends the payload
    payload = bytes([version]) + c.payload[1:pos] + (b"\x00" if version == 2 else b"")
    return mlc.pack(mlc.Container(c.codec, c.width, c.height, c.channels, payload, c.params, c.model,
                                  c.weights_hash)), end - pos


def test_layout_1_files_without_a_post_filter_still_decode(codec, rng):
    img = rng.integers(0, 256, (70, 90, 3), dtype=np.uint8)
    data = codec.encode(img, 3)
    v1, _ = _without_filter(data, version=1)
    v2, _ = _without_filter(data, version=2)
    assert np.array_equal(codec.decode(v1), codec.decode(v2))


@pytest.mark.parametrize("arch", ARCHS)
def test_the_shipped_codecs_post_filter_raises_psnr_for_more_than_its_bytes(arch, kodak_images):
    from mlcompress.codecs.learned import LAMBDAS
    from mlcompress.metrics import psnr

    _shipped(arch)
    codec = registry.get(arch)
    img = np.ascontiguousarray(kodak_images[1][128:384, 128:512])  # kodim07, 384x256
    data = codec.encode(img, 3)
    plain, block = _without_filter(data)
    assert block > 1  # a filter was chosen
    filtered, unfiltered = codec.decode(data), codec.decode(plain)
    gain_db = psnr(img, filtered) - psnr(img, unfiltered)
    mse = [np.mean((img.astype(np.float64) - y) ** 2) for y in (filtered, unfiltered)]
    # the level's own trade-off: lambda * MSE against the filter's bits per pixel
    assert LAMBDAS[2] * (mse[1] - mse[0]) > 8 * (block - 1) / (img.shape[0] * img.shape[1])
    assert gain_db > 0.05, gain_db


def test_info_shows_the_payload_layout_streams_and_post_filter_and_refuses_a_truncated_payload(codec, tmp_path, capsys):
    import json

    from mlcompress import cli

    yy, xx = np.mgrid[0:80, 0:96]
    img = np.stack([xx * 2, yy * 3, (xx + yy)], axis=2).astype(np.uint8)  # 7,680 pixels: a filter may pay
    path = tmp_path / "a.mlc"
    path.write_bytes(codec.encode(img, 3))
    assert cli.main(["info", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["payload_layout"] == 2
    pf = info["post_filter"]
    block = 1 if pf == "none" else int(pf.split(", ")[-1].split()[0])
    streams = info["stream_bytes"]
    assert len(streams) == codec.streams
    assert 2 + sum(4 + n for n in streams) + block == info["payload_bytes"]

    c = mlc.unpack(path.read_bytes())
    path.write_bytes(mlc.pack(mlc.Container(c.codec, c.width, c.height, c.channels, c.payload[:-1], c.params,
                                            c.model, c.weights_hash)))
    assert cli.main(["info", str(path)]) != 0
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def _exp_golomb_block(radius: int, shift: int, coefs: np.ndarray, m: int) -> bytes:
    """A post-filter block written at Exp-Golomb order ``m``, the cheapest or not (docs/CODECS.md)."""
    bits = ""
    for v in coefs.ravel():
        u = 2 * int(v) if v >= 0 else -2 * int(v) - 1
        q = (u >> m) + 1
        bits += "0" * (q.bit_length() - 1) + format(q, "b") + (format(u & ((1 << m) - 1), f"0{m}b") if m else "")
    bits += "0" * (-len(bits) % 8)
    return bytes([radius, shift, m]) + int(bits, 2).to_bytes(len(bits) // 8, "big")


def test_info_payload_fields_are_the_stored_layout_streams_and_block_length_as_docs_codecs_says(codec, tmp_path, capsys):
    import json

    from mlcompress import cli, postfilter

    yy, xx = np.mgrid[0:64, 0:64]
    data = codec.encode(np.stack([xx * 3, yy * 2, xx + yy], axis=2).astype(np.uint8), 3)
    plain, _ = _without_filter(data)
    c = mlc.unpack(plain)
    coefs = np.zeros((3, postfilter.n_features(1)), np.int64)
    coefs[:, -1] = (3, -2, 1)
    block = _exp_golomb_block(1, 8, coefs, m=5)  # order 5 where 0 is cheapest: longer than pack() writes
    assert len(block) > len(postfilter.pack(postfilter.Filter(1, 8, coefs)))
    files = {
        "filtered": (c.payload[:-1] + block, f"radius 1, shift 8, {len(block)} bytes", len(block)),
        "none": (c.payload, "none", 1),
        "layout 1": (_payload_of(_without_filter(data, version=1)[0]), "none (layout 1)", 0),
    }
    for name, (payload, post_filter, block_len) in files.items():
        path = tmp_path / f"{name}.mlc"
        path.write_bytes(mlc.pack(mlc.Container(c.codec, c.width, c.height, c.channels, payload, c.params,
                                                c.model, c.weights_hash)))
        assert cli.main(["info", str(path), "--json"]) == 0, name
        info = json.loads(capsys.readouterr().out)
        streams = info["stream_bytes"]
        assert info["payload_layout"] == payload[0] and info["post_filter"] == post_filter, name
        assert len(streams) == codec.streams
        assert streams == [int.from_bytes(payload[p : p + 4], "little") for p in _length_fields(payload)]
        assert info["payload_bytes"] == 2 + sum(4 + n for n in streams) + block_len


def _payload_of(data: bytes) -> bytes:
    return mlc.unpack(data).payload


def _length_fields(payload: bytes) -> list[int]:
    """Offsets of the streams' u32 length fields."""
    out, pos = [], 2
    for _ in range(payload[1]):
        out.append(pos)
        pos += 4 + int.from_bytes(payload[pos : pos + 4], "little")
    return out
