"""report.html: self-contained, its viewer's images capped, stale ones removed, tables from report.md."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from mlcompress import registry
from mlcompress.bench import run_bench
from mlcompress.bench.html import markdown_html, select_points, view_targets
from mlcompress.bench.runner import Cell
from mlcompress.image import read_image


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("benchhtml") / "images"
    folder.mkdir()
    rng = np.random.default_rng(2)
    yy, xx = np.mgrid[0:48, 0:64]
    png = registry.get("png")
    for i in range(3):
        img = np.clip(np.stack([xx * 3, yy * 4, xx + yy], axis=2) + rng.normal(0, 8 * (i + 1), (48, 64, 3)), 0, 255)
        (folder / f"im{i}.png").write_bytes(png.encode(img.astype(np.uint8)))
    return folder


def page_data(path) -> dict:
    return json.loads(re.search(r'id="mlc-data">(.*?)</script>', path.read_text(), re.S)[1])


def test_report_html_is_one_self_contained_page_with_curves_tables_and_capped_viewer_images(data, tmp_path):
    out = tmp_path / "out"
    run_bench(data, out, codecs=["jpeg", "png"], qualities=[10, 30, 50, 70, 90], progress=False,
              view_points=2, view_images=2)
    html = (out / "report.html").read_text()
    assert "<script src" not in html and "<link" not in html  # nothing fetched: works from file://
    d = page_data(out / "report.html")
    assert [c["name"] for c in d["curves"]] == ["jpeg", "png"]
    jpeg = json.loads((out / "json" / "jpeg.json").read_text())
    assert [p["bpp"] for p in d["curves"][0]["points"]] == jpeg["results"]["bpp"]
    assert [im["name"] for im in d["images"]] == ["im0.png", "im1.png"]  # --view-images 2
    cells = {(c["codec"], c["quality"], c["image"]): c for c in map(json.loads, (out / "cells.jsonl").open())}
    for im in d["images"]:
        names = [e["name"] for e in im["entries"]]
        assert names == ["original", "jpeg", "png"]
        for e in im["entries"][1:]:
            assert 1 <= len(e["points"]) <= 2  # --view-points 2
            for p in e["points"]:
                c = cells[(e["name"], p["quality"], im["name"])]
                assert (p["bytes"], p["bpp"], p["psnr"]) == (c["bytes"], c["bpp"], c["psnr"] if c["psnr"] != "inf"
                                                             else "inf")
                codec = registry.get(e["name"])
                src = read_image(data / im["name"])
                assert np.array_equal(read_image(out / p["src"]), codec.decode(codec.encode(src, p["quality"])))
    stored = sorted(f.relative_to(out).as_posix() for f in (out / "view").rglob("*.webp"))
    shown = sorted(p["src"] for im in d["images"] for e in im["entries"] for p in e["points"])
    assert stored == shown
    for section in ("Summary", "BD-rate", "Speed", "Lossless codecs"):
        assert f'data-section="{section}"' in html


def test_a_rerun_from_the_cache_renders_missing_images_and_removes_those_no_longer_shown(data, tmp_path):
    out = tmp_path / "out"
    run_bench(data, out, codecs=["jpeg"], qualities=[10, 50, 90], progress=False, view_points=3, view_images=1)
    first = {f.name for f in (out / "view").rglob("*.webp")}
    (im,) = page_data(out / "report.html")["images"]
    assert len(first) == 1 + len(im["entries"][1]["points"]) >= 3  # the original and two or three points
    for f in (out / "view").rglob("jpeg-*.webp"):
        f.unlink()
    summary = run_bench(data, out, codecs=["jpeg"], qualities=[10, 50, 90], progress=False, view_points=1,
                        view_images=1)
    assert summary.computed == 0  # every cell from the cache; the one image shown is encoded again
    now = {f.name for f in (out / "view").rglob("*.webp")}
    assert len(now) == 2 and now < first
    run_bench(data, out, codecs=["jpeg"], qualities=[10, 50, 90], progress=False, view_points=0)
    assert not list((out / "view").rglob("*.webp")) and not page_data(out / "report.html")["images"]


def test_the_points_kept_are_those_nearest_log_spaced_targets():
    assert view_targets(4) == pytest.approx([0.2, 0.4, 0.8, 1.6])
    cells = [Cell("x", q, "i.png", "s", bpp=b) for q, b in [(1, 0.1), (2, 0.21), (3, 0.45), (4, 0.9), (5, 2.5)]]
    assert [c.quality for c in select_points(cells, 4)] == [2, 3, 4, 5]
    assert [c.quality for c in select_points(cells, 1)] == [3]  # nearest 0.57 on a log scale
    assert select_points(cells, 0) == []


def test_markdown_tables_lists_and_inline_code_become_html():
    md = "Para with `a<b` and **bold** [link](x.md).\n\n- one\n  more\n- two\n\n| a | b |\n|---|---:|\n| `x` | 1 |"
    html = markdown_html(md)
    assert "<p>Para with <code>a&lt;b</code> and <strong>bold</strong> <a href=\"x.md\">link</a>.</p>" in html
    assert "<ul><li>one more</li><li>two</li></ul>" in html
    assert '<th>a</th><th class="num">b</th>' in html and '<td><code>x</code></td><td class="num">1</td>' in html
