"""train.crops: the training set packed into one file, its crops cut where the model trains."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")

from mlcompress.errors import CorruptDataError, UsageError  # noqa: E402
from mlcompress.train.crops import DeviceCrops, pack  # noqa: E402


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Three 112x120 landscape PNGs and one 120x112 portrait one, plus a non-image file."""
    from PIL import Image

    d = tmp_path_factory.mktemp("train")
    yy, xx = np.mgrid[0:112, 0:120]
    for i in range(4):
        img = np.stack([(xx * (i + 1)) % 256, (yy * 2 + i * 40) % 256, ((xx + yy) * 3) % 256], 2).astype(np.uint8)
        Image.fromarray(img.transpose(1, 0, 2) if i == 3 else img).save(d / f"img{i}.png")
    (d / "SHA256SUMS").write_text("not an image\n")
    return d


@pytest.fixture(scope="module")
def packed(folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("pack") / "crops.safetensors"
    pack(folder, out, 64, eval_crops=3)
    return out


def test_a_pack_holds_the_image_files_bytes_untouched_and_the_loops_fixed_crops(folder, packed):
    from mlcompress.train.data import CropSampler
    from mlcompress.train.loop import FIXED_CROPS_SEED
    from mlcompress.weights import read_safetensors

    t, meta, _ = read_safetensors(packed)
    names = json.loads(meta["names"])
    assert names == [f"img{i}.png" for i in range(4)]
    off = t["offsets"].tolist()
    for name, a, b in zip(names, off, off[1:]):
        assert t["files"][a:b].numpy().tobytes() == (folder / name).read_bytes()
    fixed = CropSampler(folder, 64).batch(np.random.default_rng(FIXED_CROPS_SEED), 3)
    assert np.array_equal(t["fixed"].numpy(), fixed)


def test_max_mib_leaves_out_the_files_that_do_not_fit_and_existing_output_is_kept(folder, tmp_path):
    one = (folder / "img0.png").stat().st_size
    fixed = 3 * 64 * 64 * 3
    res = pack(folder, tmp_path / "p", 64, 3, max_mib=(fixed + (64 << 10) + 2.5 * one) / 2**20)
    assert (res["images"], res["left_out"]) == (2, 2)
    with pytest.raises(UsageError, match="exists"):
        pack(folder, tmp_path / "p", 64, 3)
    with pytest.raises(UsageError, match="fits"):
        pack(folder, tmp_path / "q", 64, 3, max_mib=0.09)
    assert not (tmp_path / "q").exists()


def test_device_crops_are_uint8_levels_in_the_asked_size_turned_to_landscape(packed):
    crops = DeviceCrops(packed, 64, seed=0)
    assert tuple(crops.images.shape) == (4, 112, 120, 3) and crops.images.dtype == torch.uint8
    x = crops.batch(5)
    assert x.shape == (5, 3, 64, 64) and x.dtype == torch.float32
    assert x.is_contiguous(memory_format=torch.channels_last)
    assert 0 <= x.min() and x.max() <= 1 and torch.equal((x * 255).round() / 255, x)


def test_device_crops_are_reproducible_from_the_seed_and_resume_from_their_state(packed):
    a, b = DeviceCrops(packed, 64, seed=7), DeviceCrops(packed, 64, seed=7)
    a.batch(2)
    state = a.rng_state()
    nxt = a.batch(4)
    b.batch(2)
    assert torch.equal(b.batch(4), nxt)
    c = DeviceCrops(packed, 64, seed=1)
    assert c.set_rng_state(state) and torch.equal(c.batch(4), nxt)
    assert not c.set_rng_state({**state, "device_type": "cuda"})
    assert not torch.equal(DeviceCrops(packed, 64, seed=8).batch(4), DeviceCrops(packed, 64, seed=7).batch(4))


def test_device_crops_cover_the_images_and_flip_about_half_of_them(packed):
    """Cut without scaling (crop = the short side, scale pinned to 1): every crop is a window of
    one image, as it is or mirrored, and both kinds occur."""
    crops = DeviceCrops(packed, 112, seed=0, scale=(1.0, 1.0))
    imgs = crops.images.permute(0, 3, 1, 2).float() / 255
    kinds = []
    for x in crops.batch(16):
        found = [(i, off, flip) for i in range(4) for off in range(9) for flip in (False, True)
                 if torch.equal(x, (imgs[i, :, :, off:off + 112].flip(-1) if flip else imgs[i, :, :, off:off + 112]))]
        assert found, "a crop that is no window of any image"
        kinds.append(found[0][2])
    assert 3 <= sum(kinds) <= 13


def test_the_fixed_crops_must_be_the_runs_and_a_foreign_file_is_refused(packed, tmp_path):
    from safetensors.torch import save_file

    crops = DeviceCrops(packed, 64)
    assert crops.fixed(3, 64).shape == (3, 3, 64, 64)
    with pytest.raises(UsageError, match="pack again with --crop 64 --eval-crops 8"):
        crops.fixed(8, 64)
    with pytest.raises(UsageError, match="does not fit"):
        DeviceCrops(packed, 128)
    save_file({"w": torch.ones(2)}, str(tmp_path / "w.safetensors"), metadata={"model": "x"})
    with pytest.raises(CorruptDataError, match="not a crops pack"):
        DeviceCrops(tmp_path / "w.safetensors", 64)
