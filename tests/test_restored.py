"""The +nn codecs (classical bitstream, learned decoding), `decompress --base` and `enhance`."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mlcompress import container as mlc
from mlcompress.errors import CorruptDataError, ModelMismatchError, UnsupportedError, UsageError

pytest.importorskip("torch")
pytest.importorskip("safetensors")

BASES = ("avif", "jpeg", "webp")


def _net_state(seed: int, width: int = 8, depth: int = 3):
    import torch

    from mlcompress.nn.restore import build

    torch.manual_seed(seed)
    net = build(width, depth)
    torch.nn.init.normal_(net.body[-1].weight, std=0.05)  # a fresh network is the identity: make it act
    return net.state_dict()


@pytest.fixture(scope="module")
def restore_weights(tmp_path_factory) -> Path:
    """A folder with tiny random restoration networks for every base."""
    from mlcompress.train.restore import write_restore_weights

    d = tmp_path_factory.mktemp("restore-weights")
    for base in BASES:
        write_restore_weights(_net_state(0), base, 8, 3, f"restore-{base}", d)
    return d


@pytest.fixture
def codecs(restore_weights, monkeypatch):
    from mlcompress import registry
    from mlcompress.codecs import restored

    out = {}
    for base in BASES:
        c = registry.get(f"{base}+nn")
        monkeypatch.setattr(c, "weights_dir", restore_weights)
        out[base] = c
    monkeypatch.setattr(restored, "WEIGHTS_DIR", restore_weights)  # enhance and --base look here too
    return out


def _photo(h: int = 48, w: int = 64) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    r = np.random.default_rng(3)
    img = np.stack([(xx * 5) % 256, (yy * 7) % 256, (xx * yy) % 256], axis=2) + r.integers(0, 30, (h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("base", BASES)
def test_plus_nn_file_holds_the_untouched_base_file_and_its_fields(codecs, base):
    from mlcompress import registry

    c = codecs[base]
    img = _photo()
    data = c.encode(img, 50)
    box = mlc.unpack(data)
    assert (box.codec, box.width, box.height, box.channels) == (f"{base}+nn", 64, 48, 3)
    assert box.model == f"restore-{base}" and len(box.weights_hash) == 32
    assert box.params == {"quality": 50}
    assert box.payload[0] == 1 and box.payload[1] in (0, 1)
    assert box.payload[2:] == registry.get(base).encode(img, 50)


@pytest.mark.parametrize("base", BASES)
def test_plus_nn_decodes_to_the_base_image_or_its_restoration_as_its_flag_says(codecs, base):
    from mlcompress import registry
    from mlcompress.codecs.restored import restore

    c = codecs[base]
    img = _photo()
    data = c.encode(img, 50)
    box = mlc.unpack(data)
    plain = registry.get(base).decode(box.payload[2:])
    fixed = restore(plain, base, 50, c.weights_dir, data=box.payload[2:])  # a JPEG's kept in its bins
    on = int(((fixed.astype(int) - img) ** 2).sum()) < int(((plain.astype(int) - img) ** 2).sum())
    assert box.payload[1] == int(on)
    assert (base == "jpeg") != np.array_equal(fixed, restore(plain, base, 50, c.weights_dir))
    assert np.array_equal(c.decode(data), fixed if on else plain)
    # the same file with the flag flipped decodes the other way
    other = mlc.pack(mlc.Container(box.codec, box.width, box.height, box.channels,
                                   bytes([1, int(not on)]) + box.payload[2:], box.params, box.model, box.weights_hash))
    assert np.array_equal(c.decode(other), plain if on else fixed)


def test_network_is_off_for_a_flat_image(codecs):
    flat = np.full((64, 64, 3), 90, np.uint8)
    for c in codecs.values():
        data = c.encode(flat, 50)
        assert mlc.unpack(data).payload[1] == 0


def test_grey_images_round_trip_grey_on_every_base(codecs):
    grey = _photo()[:, :, 0]
    for c in codecs.values():
        out = c.decode(c.encode(grey, 60))
        assert out.shape == grey.shape and out.dtype == np.uint8


def test_rgba_is_refused_with_a_one_line_reason(codecs):
    with pytest.raises(UnsupportedError, match="RGBA"):
        codecs["jpeg"].encode(np.zeros((16, 16, 4), np.uint8), 50)


def test_file_made_with_other_weights_is_refused(codecs, tmp_path, monkeypatch):
    from mlcompress.train.restore import write_restore_weights

    data = codecs["jpeg"].encode(_photo(), 40)
    write_restore_weights(_net_state(1), "jpeg", 8, 3, "restore-jpeg", tmp_path)
    monkeypatch.setattr(codecs["jpeg"], "weights_dir", tmp_path)
    with pytest.raises(ModelMismatchError):
        codecs["jpeg"].decode(data)


@pytest.mark.parametrize("base", BASES)
def test_corrupt_or_truncated_base_file_is_corrupt_data(codecs, base):
    c = codecs[base]
    box = mlc.unpack(c.encode(_photo(), 50))

    def rebox(payload, params=None):
        return mlc.pack(mlc.Container(box.codec, box.width, box.height, box.channels, payload,
                                      box.params if params is None else params, box.model, box.weights_hash))

    bad = [
        box.payload[: len(box.payload) // 2],  # truncated base file
        box.payload[:2] + b"\x00" * 40,  # not the base codec's file
        bytes([2]) + box.payload[1:],  # unknown layout
        bytes([1, 0x81]) + box.payload[2:],  # reserved flag bit
        box.payload[:2],  # no base file at all
    ]
    for payload in bad:
        with pytest.raises(CorruptDataError):
            c.decode(rebox(payload))
    for params in ({}, {"quality": 500}, {"quality": "50"}, {"quality": 50, "x": 1}):
        with pytest.raises(CorruptDataError):
            c.decode(rebox(box.payload, params))
    with pytest.raises(CorruptDataError):  # a base image of another size than the header's
        c.decode(mlc.pack(mlc.Container(box.codec, box.width + 8, box.height, box.channels, box.payload,
                                        box.params, box.model, box.weights_hash)))


def test_base_file_gives_back_the_base_bytes_and_refuses_other_codecs(codecs):
    from mlcompress import registry
    from mlcompress.codecs.restored import base_file

    img = _photo()
    for base, c in codecs.items():
        assert base_file(c.encode(img, 30)) == (registry.get(base).encode(img, 30), registry.get(base).extension)
    with pytest.raises(UsageError, match="rle"):
        base_file(registry.get("rle").encode(img))


def test_jpeg_quality_is_read_from_the_quantisation_tables():
    from PIL import Image

    from mlcompress.codecs.restored import jpeg_quality

    im = Image.fromarray(_photo())
    for q in (5, 20, 50, 75, 90):
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=q)
        assert jpeg_quality(buf.getvalue()) == q


def _jpeg(img: np.ndarray, **kw) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", **kw)
    return buf.getvalue()


def test_enhance_takes_progressive_grey_and_exif_rotated_jpegs(codecs):
    from PIL import Image

    from mlcompress.codecs.restored import enhance

    img = _photo()
    assert enhance(_jpeg(img, quality=30, progressive=True)).shape == img.shape
    assert enhance(_jpeg(img[:, :, 0], quality=30)).shape == img.shape[:2]
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    rotated = enhance(_jpeg(img, quality=30, exif=exif.tobytes()))
    # restored as stored (the JPEG's blocks where the file has them), then turned upright
    assert np.array_equal(rotated, np.rot90(enhance(_jpeg(img, quality=30)), -1))


def test_enhance_refuses_cmyk_jpegs_png_and_non_images(codecs):
    from PIL import Image

    from mlcompress import registry
    from mlcompress.codecs.restored import enhance

    buf = io.BytesIO()
    Image.new("CMYK", (32, 32), (10, 20, 30, 40)).save(buf, format="JPEG")
    with pytest.raises(UnsupportedError, match="CMYK"):
        enhance(buf.getvalue())
    with pytest.raises(UsageError, match="png"):
        enhance(registry.get("png").encode(_photo()))
    with pytest.raises(UsageError, match="not an image"):
        enhance(b"hello, this is text and not a picture at all........")


def test_enhance_estimates_avif_and_webp_quality_near_the_one_used(codecs):
    from mlcompress import registry
    from mlcompress.codecs.restored import estimate_quality

    from skimage import data

    img = data.astronaut()[:256, 128:384]  # a photo: re-encoding noise would say little
    for base in ("avif", "webp"):
        c = registry.get(base)
        data = c.encode(img, 40)
        assert abs(estimate_quality(base, c.decode(data), len(data)) - 40) <= 15


def _cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "mlcompress.cli", *args], cwd=cwd, capture_output=True, text=True)


def test_cli_enhance_and_decompress_base_refuse_bad_input_in_one_line_without_output(tmp_path):
    png = tmp_path / "photo.png"
    from mlcompress import registry

    png.write_bytes(registry.get("png").encode(_photo()))
    (tmp_path / "notes.jpg").write_text("not a jpeg")
    for args in (("enhance", "photo.png"), ("enhance", "notes.jpg"), ("decompress", "--base", "photo.png")):
        res = _cli(*args, cwd=tmp_path)
        assert res.returncode != 0, args
        assert res.stderr.count("\n") == 1 and "Traceback" not in res.stderr, res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.jpg", "photo.png"]


@pytest.mark.parametrize("bf16", [False, True])
def test_one_training_step_lowers_the_loss_on_a_tiny_set(bf16):
    import torch

    from mlcompress.nn.restore import build

    r = np.random.default_rng(0)
    clean = r.integers(0, 256, (4, 32, 32, 3)).astype(np.float32) / 255
    noisy = np.clip(clean + r.normal(0, 0.05, clean.shape), 0, 1).astype(np.float32)
    x = torch.from_numpy(noisy).permute(0, 3, 1, 2)
    y = torch.from_numpy(clean).permute(0, 3, 1, 2)
    q = torch.full((4,), 0.5)
    torch.manual_seed(0)
    net = build(8, 3)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    with torch.no_grad():
        before = float(torch.nn.functional.mse_loss(net(x, q) * 255, y * 255))
    for _ in range(5):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):  # as train --bf16 runs it
            pred = net(x, q)
        assert pred.dtype == torch.float32
        loss = torch.nn.functional.mse_loss(pred * 255, y * 255)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = float(torch.nn.functional.mse_loss(net(x, q) * 255, y * 255))
    assert after < before


def test_tiled_restoration_equals_one_pass(monkeypatch):
    import torch

    from mlcompress.nn import restore as rn

    torch.manual_seed(0)
    net = rn.build(8, 3).eval()
    torch.nn.init.normal_(net.body[-1].weight, std=0.05)
    img = _photo(70, 90)
    whole = rn.restore_image(net, img, 0.4)
    monkeypatch.setattr(rn, "TILE", 32)
    assert np.array_equal(rn.restore_image(net, img, 0.4), whole)


def test_bfloat16_convolutions_move_the_restored_image_by_at_most_one_level_and_tiles_still_agree(monkeypatch):
    import copy

    import torch

    from mlcompress.nn import restore as rn

    torch.manual_seed(0)
    net = rn.build(8, 3)
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.1)
    exact = rn.for_inference(copy.deepcopy(net), bf16=False)
    fast = rn.for_inference(net, bf16=True)
    assert exact.body[0].weight.dtype == torch.float32 and fast.body[0].weight.dtype == torch.bfloat16
    img = _photo(70, 90)
    a, b = rn.restore_image(exact, img, 0.4), rn.restore_image(fast, img, 0.4)
    assert not np.array_equal(a, img)  # the network does change the image
    diff = np.abs(a.astype(int) - b)
    assert diff.max() <= 1 and diff.mean() < 0.1
    monkeypatch.setattr(rn, "TILE", 32)
    assert np.array_equal(rn.restore_image(fast, img, 0.4), b)


def test_widened_network_computes_the_same_image_and_every_new_weight_can_learn():
    import torch

    from mlcompress.nn import restore as rn

    torch.manual_seed(0)
    net = rn.build(8, 4).eval()
    torch.nn.init.normal_(net.body[-1].weight, std=0.05)
    wide = rn.build(20, 4).eval()
    wide.load_state_dict(rn.grow(net.state_dict(), 20))
    x, q = torch.rand(1, 3, 24, 24), torch.tensor([0.3])
    with torch.no_grad():
        assert torch.allclose(wide(x, q), net(x, q), atol=1e-6)
    wide(x, q).square().sum().backward()
    for i, layer in enumerate(c for c in wide.body if isinstance(c, torch.nn.Conv2d)):
        if i < 3:  # each new hidden channel reads the layer below with non-zero weights
            assert layer.weight[8:].abs().sum() > 0
        if i > 0:  # and is read by the layer above through zero weights that get a gradient
            assert layer.weight[:, 8:].abs().sum() == 0 and layer.weight.grad[:, 8:].abs().sum() > 0
    with pytest.raises(ValueError, match="cannot widen"):
        rn.grow(wide.state_dict(), 8)


def test_deepened_and_widened_network_computes_the_same_image_and_its_new_layers_learn():
    import torch

    from mlcompress.nn import restore as rn

    torch.manual_seed(0)
    net = rn.build(8, 4).eval()
    for layer in net.body:  # a network whose every layer does something, output layer included
        if isinstance(layer, torch.nn.Conv2d):
            torch.nn.init.normal_(layer.weight, std=0.2)
            torch.nn.init.normal_(layer.bias, std=0.1)
    big = rn.build(12, 7).eval()
    big.load_state_dict(rn.grow(net.state_dict(), 12, 7))
    assert big.depth == 7
    x, q = torch.rand(1, 3, 32, 32), torch.tensor([0.6])
    with torch.no_grad():
        assert torch.allclose(big(x, q), net(x, q), atol=1e-5)
        assert not torch.allclose(net(x, q), x, atol=1e-3)  # the check above compares real corrections
    big(x, q).square().sum().backward()
    convs = [c for c in big.body if isinstance(c, torch.nn.Conv2d)]
    for layer in convs[3:6]:  # the three new layers sit before the output layer and get gradients
        assert layer.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="layers deep"):
        rn.grow(big.state_dict(), 12, 5)


def test_views_average_the_flipped_images_and_tiles_still_equal_one_pass(monkeypatch):
    import torch

    from mlcompress.nn import restore as rn

    torch.manual_seed(0)
    state = rn.build(8, 3).state_dict()
    for k in state:
        torch.nn.init.normal_(state[k], std=0.1)
    img = _photo(70, 90)  # not a multiple of the tile: edge tiles of other (even) sizes
    x = torch.from_numpy(img[:, :, :]).permute(2, 0, 1)[None].float() / 255
    q = torch.tensor([0.4])
    nets = {}
    for views in (1, 2, 4, 6):
        nets[views] = rn.build(8, 3, views).eval()
        nets[views].load_state_dict(state)
    one = nets[1]
    with torch.no_grad():
        mean = (one(x, q) + one(x.flip(3), q).flip(3) + one(x.flip(2), q).flip(2) + one(x.flip((2, 3)), q).flip((2, 3))) / 4
        assert torch.allclose(rn.run_views(nets[4], x, q), mean, atol=1e-6)
        t = x.transpose(2, 3)
        six = (mean * 4 + one(t, q).transpose(2, 3) + one(t.flip(3), q).flip(3).transpose(2, 3)) / 6
        assert torch.allclose(rn.run_views(nets[6], x, q), six, atol=1e-6)
    out = {v: rn.restore_image(n, img, 0.4) for v, n in nets.items()}
    assert not np.array_equal(out[1], out[2]) and not np.array_equal(out[2], out[4])
    assert out[6].shape == img.shape and not np.array_equal(out[4], out[6])
    monkeypatch.setattr(rn, "TILE", 32)
    for views, net in nets.items():
        assert np.array_equal(rn.restore_image(net, img, 0.4), out[views])
    with pytest.raises(ValueError, match="views must be 1..8"):
        rn.build(8, 3, 9)


def test_weights_file_sets_the_decoders_views_and_a_bad_count_is_corrupt(codecs, tmp_path, monkeypatch):
    from mlcompress.codecs import restored
    from mlcompress.train.restore import write_restore_weights

    img = _photo()
    plain = restored.restore(img, "jpeg", 30, codecs["jpeg"].weights_dir)  # the same network, one view
    write_restore_weights(_net_state(0), "jpeg", 8, 3, "restore-jpeg", tmp_path, views=4)
    assert restored.load_network("jpeg", tmp_path)[0].views == 4
    four = restored.restore(img, "jpeg", 30, tmp_path)
    assert four.shape == plain.shape and not np.array_equal(four, plain)
    monkeypatch.setattr(codecs["jpeg"], "weights_dir", tmp_path)  # and its codec round-trips
    assert codecs["jpeg"].decode(codecs["jpeg"].encode(img, 30)).shape == img.shape
    from safetensors.torch import save

    from mlcompress.train.export import _canonical

    meta = {"model": "restore", "base": "jpeg", "width": "8", "depth": "3", "name": "restore-jpeg", "views": "0"}
    (tmp_path / "restore-jpeg.safetensors").write_bytes(_canonical(save(_net_state(0), metadata=meta)))
    with pytest.raises(CorruptDataError, match="views must be 1..8"):
        restored.load_network("jpeg", tmp_path)


def test_the_card_says_where_each_resumed_stage_put_the_lr_drop():
    from mlcompress.train.restore import _stage_lines

    stage = {"lr": 3e-4, "bf16": False}
    assert _stage_lines([{**stage, "from_step": 0, "to_step": 100, "steps": 100}]) == []  # the recipe line says it
    line = _stage_lines([{**stage, "from_step": 0, "to_step": 12000, "steps": 34000, "bf16": True},
                         {**stage, "from_step": 12000, "to_step": 20000, "steps": 20000},
                         {**stage, "from_step": 20000, "to_step": 26000, "steps": 26000}])[0]
    assert "steps 0-12,000 with `--steps 34000` (lr 0.0003, bfloat16 autocast)" in line
    assert "(lr 0.0003, 3e-05 from step 15,000)" in line and "20,000-26,000 with `--steps 26000` (lr 3e-05)" in line


def test_train_restore_writes_a_checkpoint_that_resumes_and_exports(tmp_path):
    from PIL import Image

    from mlcompress.train.restore import VAL_IMAGES, RestoreConfig, train_restore
    from mlcompress.weights import read_safetensors

    photos = tmp_path / "photos"
    photos.mkdir()
    r = np.random.default_rng(1)
    for i in range(VAL_IMAGES + 2):
        Image.fromarray(r.integers(0, 256, (260, 270, 3), dtype=np.uint8)).save(photos / f"p{i:02d}.png")
    cfg = RestoreConfig(base="jpeg", data=str(photos), out=str(tmp_path / "r.pt"), steps=2, batch=2, crop=32,
                        per_image=1, eval_every=1, cache=str(tmp_path / "cache"), progress=False, width=8, depth=3)
    assert train_restore(cfg, log=lambda *_: None)["step"] == 2
    from dataclasses import replace

    assert train_restore(replace(cfg, steps=3, resume=True, bf16=True), log=lambda *_: None)["step"] == 3
    from mlcompress.train.loop import load_checkpoint

    assert [s["bf16"] for s in load_checkpoint(tmp_path / "r.pt")["stages"]] == [False, True]  # as the recipe says
    from mlcompress.train.export import export

    rec = export(tmp_path / "r.pt", "restore-jpeg", tmp_path / "w")
    weights = tmp_path / "w" / "restore-jpeg.safetensors"
    tensors, meta, _ = read_safetensors(weights)
    assert meta["base"] == "jpeg" and rec["steps"] == 3 and rec["held_out_images"] == VAL_IMAGES
    # exported weights start a new run (the next session's), and a network of another base is refused
    train_restore(replace(cfg, out=str(tmp_path / "r2.pt"), steps=1, init=str(weights)), log=lambda *_: None)
    assert load_checkpoint(tmp_path / "r2.pt")["stages"][0]["init"] == str(weights)
    with pytest.raises(UsageError, match="not a restoration network of webp"):
        train_restore(replace(cfg, base="webp", out=str(tmp_path / "r3.pt"), init=str(weights)), log=lambda *_: None)
    with pytest.raises(UsageError, match="and 4 channels"):  # narrowing is not offered
        train_restore(replace(cfg, width=4, out=str(tmp_path / "r4.pt"), init=str(weights)), log=lambda *_: None)
    with pytest.raises(UsageError, match=f"at most {cfg.depth - 1} layers"):  # nor making it shallower
        train_restore(replace(cfg, depth=cfg.depth - 1, out=str(tmp_path / "r4.pt"), init=str(weights)),
                      log=lambda *_: None)
    train_restore(replace(cfg, width=12, depth=cfg.depth + 2, out=str(tmp_path / "r5.pt"), steps=1, init=str(weights)),
                  log=lambda *_: None)
    grown = load_checkpoint(tmp_path / "r5.pt")["model"]
    assert grown["body.0.weight"].shape[0] == 12 and f"body.{2 * (cfg.depth + 1)}.weight" in grown
    # the recipe of weights trained on from earlier weights counts the earlier run's steps too
    again = export(tmp_path / "r5.pt", "restore-jpeg", tmp_path / "w2")
    assert [e["steps"] for e in again["earlier"]] == [3] and again["total_steps"] == 4 and again["width"] == 12
    # left out, --width and --depth are --init's network's (it grows only when asked), and a resumed
    # run's are its checkpoint's
    kept = replace(cfg, width=None, depth=None, out=str(tmp_path / "r7.pt"), steps=1,
                   init=str(tmp_path / "w2" / "restore-jpeg.safetensors"))
    train_restore(kept, log=lambda *_: None)
    assert {k: load_checkpoint(tmp_path / "r7.pt")["config"][k] for k in ("width", "depth")} == \
        {"width": 12, "depth": cfg.depth + 2}
    assert train_restore(replace(kept, init=None, steps=2, resume=True), log=lambda *_: None)["step"] == 2
    # --views: the weights carry the decoder's view count, the recipe its held-out gain
    viewed = export(tmp_path / "r5.pt", "restore-jpeg", tmp_path / "w3", views=2)
    assert viewed["views"] == 2 and isinstance(viewed["held_out_gain_views_db"], float)
    assert read_safetensors(tmp_path / "w3" / "restore-jpeg.safetensors")[1]["views"] == "2"
    with pytest.raises(UsageError, match="--views must be 1..8"):
        export(tmp_path / "r5.pt", "restore-jpeg", tmp_path / "w4", views=9)
    assert not (tmp_path / "w4").exists()
    # a run on more squares per photo than the run before it: the card says whose held-out squares
    # the earlier gain was measured on (they are not the same squares)
    from mlcompress.train.restore import model_card

    train_restore(replace(cfg, per_image=2, out=str(tmp_path / "r6.pt"), steps=1, init=str(weights)),
                  log=lambda *_: None)
    more = export(tmp_path / "r6.pt", "restore-jpeg", tmp_path / "w5")
    assert more["pairs_per_image"] == 2 and more["earlier"][-1]["pairs_per_image"] == 1
    (tmp_path / "none.jsonl").write_text("")
    assert "(on its own held-out squares, 1 per photo)" in model_card(more, tmp_path / "none.jsonl", "cmd")
    assert "own held-out squares" not in model_card(again, tmp_path / "none.jsonl", "cmd")
    # the card reads the Kodak cells of its own weights, measured in either precision, and says which
    from mlcompress.codecs.restored import weights_tags

    f32, b16 = weights_tags(again["weights_sha256"][:16], "jpeg")
    cells = [{"codec": "jpeg", "quality": q, "image": "a.png", "bpp": q / 50, "psnr": 25 + q / 10} for q in (30, 60)]
    cells += [{"codec": "jpeg+nn", "quality": q, "image": "a.png", "bpp": q / 50, "psnr": 26 + q / 10, "weights": b16}
              for q in (30, 60)]
    cells.append({"codec": "jpeg+nn", "quality": 90, "image": "a.png", "bpp": 2, "psnr": 40, "weights": "0" * 16 + "-v1"})
    cells.append({"codec": "jpeg+nn", "quality": 80, "image": "a.png", "bpp": 2, "psnr": 40,
                  "weights": again["weights_sha256"][:16] + "-v1-bf16"})  # before the decoder kept the bins
    (tmp_path / "cells.jsonl").write_text("".join(json.dumps(c) + "\n" for c in cells))
    card = model_card(again, tmp_path / "cells.jsonl", "cmd")
    assert "network in bfloat16)" in card and "| 60 | 1.2000 | 31.00 | 1.2000 | 32.00 | +1.00 |" in card
    assert "| 90 |" not in card and "| 80 |" not in card  # another network's cell, an earlier decoder's
    assert f32.endswith("-v1-bins") and b16 == f32 + "-bf16" and "quantisation bins" in card
    assert weights_tags("0" * 16, "avif")[0].endswith("-v1")


def test_cli_decompress_base_writes_the_base_file_byte_for_byte_and_enhance_does_folders(codecs, tmp_path):
    from mlcompress import registry
    from mlcompress.cli import main

    img = _photo()
    (tmp_path / "p.mlc").write_bytes(codecs["avif"].encode(img, 40))
    assert main(["decompress", "--base", str(tmp_path / "p.mlc"), "--quiet"]) == 0
    assert (tmp_path / "p.avif").read_bytes() == registry.get("avif").encode(img, 40)
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a.jpg").write_bytes(_jpeg(img, quality=30))
    (photos / "b.webp").write_bytes(registry.get("webp").encode(img, 30))
    (photos / "notes.txt").write_text("ignored")
    assert main(["enhance", str(photos), "-o", str(tmp_path / "out"), "--quiet"]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "b.png"]
