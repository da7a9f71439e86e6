"""mlcompress view: the quality search, the page's files, the command's errors, and the demo's PNG."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest

from mlcompress import registry
from mlcompress.cli import main
from mlcompress.errors import UsageError
from mlcompress.view import compare, page, search


def _photo(h: int = 96, w: int = 128) -> np.ndarray:
    """Smooth gradients with noise: a small stand-in for a photo, with bpp that varies with quality."""
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 2, yy * 2, (xx + yy)], axis=2).astype(float)
    return np.clip(base + np.random.default_rng(1).normal(0, 12, base.shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def photo_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("photo") / "photo.png"
    path.write_bytes(registry.get("png").encode(_photo()))
    return path


@pytest.mark.parametrize("name", ["jpeg", "webp", "jpeg2000", "jxl"])
def test_the_search_keeps_the_setting_nearest_the_target_whichever_way_the_knob_runs(name):
    codec = registry.get(name)
    if not codec.available():
        pytest.skip(f"{name} unavailable: {codec.unavailable_reason()}")
    img = _photo()
    target = 1.0
    got = search.encode_near_bpp(codec, img, target)
    assert got.bpp == 8 * len(got.data) / img.shape[0] / img.shape[1]
    assert codec.decode(got.data).shape == img.shape
    assert abs(math.log(got.bpp / target)) < math.log(1.25)
    if codec.quality_integer:  # no neighbouring setting lands nearer
        for q in (got.quality - 1, got.quality + 1):
            if codec.quality_range[0] <= q <= codec.quality_range[1]:
                other = 8 * len(codec.encode(img, q)) / img.shape[0] / img.shape[1]
                assert abs(math.log(other / target)) >= abs(math.log(got.bpp / target))


class _SmoothKnob:
    """A stand-in codec whose file size grows smoothly with a non-integer quality in 1..6, counting its encodes."""

    name, lossless, quality_integer, quality_range, bench_qualities = "smooth", False, False, (1, 6), (1, 6)

    def __init__(self):
        self.calls = 0

    def check_quality(self, q):
        return float(q)

    def encode(self, img, q):
        self.calls += 1
        return bytes(int(100 * math.exp(q)))


def test_a_non_integer_knob_search_stops_once_a_file_lands_within_one_percent_of_the_target(monkeypatch):
    img = np.zeros((10, 10, 3), np.uint8)
    target = 8 * 100 * math.exp(3.3) / 100
    codec = _SmoothKnob()
    got = search.encode_near_bpp(codec, img, target)
    assert abs(got.bpp / target - 1) <= search.FLOAT_TOLERANCE
    monkeypatch.setattr(search, "FLOAT_TOLERANCE", 0.0)
    full = _SmoothKnob()
    search.encode_near_bpp(full, img, target)
    assert codec.calls <= full.calls - 4, (codec.calls, full.calls)


def test_a_target_no_setting_reaches_is_refused_naming_the_bpp_reached():
    img = _photo()
    with pytest.raises(UsageError, match=r"jpeg cannot reach 0.001 bpp on the image: the nearest it reaches is "
                                         r"[0-9.]+ bpp \(quality 1\)"):
        search.encode_near_bpp(registry.get("jpeg"), img, 0.001)


def test_lossless_codecs_are_encoded_once_whatever_the_target():
    img = _photo()
    got = search.encode_near_bpp(registry.get("png"), img, 0.5)
    assert got.quality is None and np.array_equal(registry.get("png").decode(got.data), img)


def test_view_writes_a_page_with_the_original_and_each_codec_and_their_measured_numbers(photo_file, tmp_path):
    out = tmp_path / "v.html"
    assert main(["view", str(photo_file), "--codecs", "jpeg,webp", "--bpp", "1", "-o", str(out), "--quiet"]) == 0
    text = out.read_text()
    data = json.loads(re.search(r'<script type="application/json" id="mlc-data">(.*?)</script>', text, re.S)[1])
    (im,) = data["images"]
    assert [e["name"] for e in im["entries"]] == ["original", "jpeg", "webp"]
    assert (im["width"], im["height"]) == (128, 96)
    original = _photo()
    for e in im["entries"]:
        (p,) = e["points"]
        from mlcompress.image import read_image

        pixels = read_image(out.parent / p["src"])  # stored losslessly, next to the page
        if e["reference"]:
            assert np.array_equal(pixels, original) and p["psnr"] == "inf"
            continue
        codec = registry.get(e["name"])
        data_ = codec.encode(original, p["quality"])
        assert p["bytes"] == len(data_) and np.array_equal(pixels, codec.decode(data_))
        assert p["bpp"] == pytest.approx(8 * len(data_) / (128 * 96))
        from mlcompress.metrics import psnr

        assert p["psnr"] == pytest.approx(psnr(original, pixels))
    assert "<script src" not in text and "http" not in text.replace("http://www.w3.org/2000/svg", "")


def test_view_refuses_bad_input_in_one_line_before_any_work(photo_file, tmp_path, capsys):
    not_image = tmp_path / "notes.txt"
    not_image.write_text("hello")
    existing = tmp_path / "there.html"
    existing.write_text("keep me")
    cases = [
        (["view", str(not_image), "-o", str(tmp_path / "a.html")], 1, "notes.txt: not a recognised image"),
        (["view", str(photo_file), "--codecs", "nosuch", "-o", str(tmp_path / "b.html")], 2, "unknown codec 'nosuch'"),
        (["view", str(photo_file), "--codecs", "jpeg", "--bpp", "0.001", "-o", str(tmp_path / "c.html")], 2,
         "jpeg cannot reach 0.001 bpp on photo.png: the nearest it reaches is"),
        (["view", str(photo_file), "--codecs", "jpeg", "-o", str(existing)], 2, "exists (use --force"),
        (["view", str(photo_file), "--bpp", "-1", "-o", str(tmp_path / "d.html")], 2, "--bpp must be a positive"),
        (["view", str(photo_file), str(tmp_path / "missing.png"), "-o", str(tmp_path / "e.html")], 2, "no such file"),
    ]
    for argv, code, message in cases:
        assert main(argv) == code, argv
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert existing.read_text() == "keep me"
    assert not list(tmp_path.glob("[a-e].html")) and not list(tmp_path.glob("*_files"))


def test_view_of_two_files_measures_the_second_against_the_first(photo_file, tmp_path, capsys):
    img = _photo()
    jpeg = registry.get("jpeg").encode(img, 50)
    (tmp_path / "photo.jpg").write_bytes(jpeg)
    out = tmp_path / "ab.html"
    assert main(["view", str(photo_file), str(tmp_path / "photo.jpg"), "-o", str(out)]) == 0
    assert "photo.jpg" in capsys.readouterr().out
    text = out.read_text()
    data = json.loads(re.search(r'id="mlc-data">(.*?)</script>', text, re.S)[1])
    ref, other = data["images"][0]["entries"]
    assert ref["reference"] and ref["points"][0]["bytes"] == photo_file.stat().st_size
    from mlcompress.metrics import psnr

    assert other["points"][0]["bytes"] == len(jpeg)
    assert other["points"][0]["psnr"] == pytest.approx(psnr(img, registry.get("jpeg").decode(jpeg)))
    small = tmp_path / "small.png"
    small.write_bytes(registry.get("png").encode(img[:10]))
    assert main(["view", str(photo_file), str(small), "-o", str(tmp_path / "x.html")]) == 2
    assert "small.png is 128x10x3 but" in capsys.readouterr().err


def test_the_default_codecs_are_the_registry_default_then_jpeg_and_avif_each_once():
    names = compare.default_codecs()
    assert names[0] == registry.default_codec() and len(names) == len(set(names))
    assert "jpeg" in names


def test_pages_hold_their_data_safely_inside_the_script_block():
    html = page.render("t</script><b>", images=[], curves=[{"name": "</script>x", "lossless": False,
                                                            "published": False, "points": []}])
    assert html.count("</script>") == 2 and "<\\/script>x" in html and "t&lt;/script&gt;" in html


def test_the_demo_comparison_shows_a_4x_crop_of_the_most_detailed_window():
    from mlcompress import demo

    flat = np.full((64, 64, 3), 120, np.uint8)
    flat[40:56, 8:24] = np.random.default_rng(0).integers(0, 256, (16, 16, 3))  # the only detail
    assert demo.detailed_window(flat, 16, stride=8) == (40, 8)
    rows = [compare.reference("original", flat, 100), compare.reference("copy", flat[..., ::-1].copy(), 100)]
    sheet = demo.comparison_image(rows, zoom=4)
    assert sheet.shape[1] == 2 * 64 + 8
    crop = sheet[-64:, 0:64]  # the bottom row: the window, 4x, square pixels
    assert np.array_equal(crop, np.repeat(np.repeat(flat[40:56, 8:24], 4, axis=0), 4, axis=1))
    crops = demo.comparison_image(rows, zoom=4, full=False)
    assert crops.shape[0] == sheet.shape[0] - 64 - 8 and np.array_equal(crops[-64:], sheet[-64:])
