"""The comparison page in a real browser: headless Chromium driven by selenium, pages from file://.

Skipped with the reason when Chromium, its driver or selenium is absent; under CI=true they must
run (.ci/run installs Debian's chromium and chromium-driver first). One browser serves the module;
each page is small (a 200x150 image, or a two-image bench), so each test takes a few seconds.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import time

import numpy as np
import pytest

from mlcompress import registry
from mlcompress.cli import main

W, H = 200, 150
#: the left image: every pixel tells where it is (red = x, green = y), blue never 255
PATTERN = np.stack(np.broadcast_arrays(np.arange(W)[None, :] % 256, np.arange(H)[:, None] % 256,
                                       np.full((H, W), 77)), axis=2).astype(np.uint8)
BLUE = (0, 0, 255)


def _find(*names):
    return next((shutil.which(n) for n in names if shutil.which(n)), None)


@pytest.fixture(scope="module")
def browser():
    chromium = _find("chromium", "chromium-browser", "google-chrome")
    driver_bin = _find("chromedriver")
    why = None
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        why = "selenium is not installed (pip install -e '.[dev]')"
    if why is None and not (chromium and driver_bin):
        why = "Chromium or chromedriver is absent (Debian: apt-get install chromium chromium-driver)"
    if why:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{why}, but CI=true requires the browser tests (.ci/run installs them)")
        pytest.skip(why)
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1000,900", "--force-device-scale-factor=1", "--allow-file-access-from-files"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    drv = webdriver.Chrome(service=Service(driver_bin), options=opts)
    drv.set_page_load_timeout(30)
    yield drv
    drv.quit()


def load(drv, path):
    drv.get(path.resolve().as_uri())
    drv.get_log("browser")  # nothing from an earlier page
    drv.get(path.resolve().as_uri())
    for _ in range(100):
        if drv.execute_script("return document.documentElement.dataset.ready === 'true' && "
                              "[...document.images].every(i => i.complete)"):
            return
        time.sleep(0.05)
    raise AssertionError("the page did not finish loading")


def errors(drv) -> list[str]:
    return [e["message"] for e in drv.get_log("browser") if e["level"] == "SEVERE"]


def screenshot(drv) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(drv.get_screenshot_as_png())).convert("RGB"))


def rect(drv, css) -> dict:
    return drv.execute_script("const r = document.querySelector(arguments[0]).getBoundingClientRect();"
                              "return {x: r.left, y: r.top, w: r.width, h: r.height};", css)


def keys(drv, *ks):
    from selenium.webdriver.common.action_chains import ActionChains

    stage = drv.find_element("id", "stage")
    drv.execute_script("arguments[0].focus()", stage)
    chain = ActionChains(drv)
    for k in ks:
        chain.send_keys(k)
    chain.perform()


@pytest.fixture(scope="module")
def files_page(tmp_path_factory):
    """`mlcompress view pattern.png blue.png`: the first is the reference, left; blue is right."""
    d = tmp_path_factory.mktemp("view")
    png = registry.get("png")
    (d / "pattern.png").write_bytes(png.encode(PATTERN))
    (d / "blue.png").write_bytes(png.encode(np.broadcast_to(np.array(BLUE, np.uint8), (H, W, 3)).copy()))
    assert main(["view", str(d / "pattern.png"), str(d / "blue.png"), "-o", str(d / "ab.html"), "--quiet"]) == 0
    return d / "ab.html"


def _stage_point(drv, fx: float):
    """A point (x, y) in the screenshot inside the stage at fraction ``fx`` of its width, mid height."""
    drv.execute_script("document.getElementById('stage').scrollIntoView()")
    r = rect(drv, "#stage")
    return int(r["x"] + fx * r["w"]), int(r["y"] + r["h"] * 0.6)


def test_page_loads_from_file_without_console_errors_and_its_screenshot_is_not_blank(browser, files_page):
    load(browser, files_page)
    browser.execute_script("document.getElementById('stage').scrollIntoView()")
    shot = screenshot(browser)
    r = rect(browser, "#stage")
    stage = shot[int(r["y"]):int(r["y"] + min(r["h"], 300)), int(r["x"]):int(r["x"] + r["w"])]
    assert stage.size and stage.std() > 20, "the stage is one flat colour"
    assert any(tuple(p) == BLUE for p in stage.reshape(-1, 3)[::97])  # the right side shows
    assert errors(browser) == []


def test_moving_the_divider_by_keyboard_changes_which_image_shows_at_a_point(browser, files_page):
    load(browser, files_page)
    x, y = _stage_point(browser, 0.45)  # left of the divider (at 0.5): the pattern
    assert tuple(screenshot(browser)[y, x]) != BLUE
    keys(browser, *["\ue012"] * 10)  # ArrowLeft x 10: 1 % each, the divider goes to 0.40
    assert tuple(screenshot(browser)[y, x]) == BLUE
    keys(browser, *["\ue014"] * 10)  # ArrowRight x 10: back to 0.5
    assert tuple(screenshot(browser)[y, x]) != BLUE
    keys(browser, "s")  # swap: blue is on the left now
    assert tuple(screenshot(browser)[y, x]) == BLUE
    assert browser.find_element("id", "left-select").get_attribute("value") == "blue.png"
    assert errors(browser) == []


def test_zoom_one_to_one_shows_image_pixels_one_to_one(browser, files_page):
    load(browser, files_page)
    keys(browser, "1")
    assert browser.execute_script("return window.devicePixelRatio") == 1
    browser.execute_script("document.getElementById('stage').scrollIntoView()")
    img = rect(browser, "#layer-left img")
    stage = rect(browser, "#stage")
    assert (img["w"], img["h"]) == (W, H)
    shot = screenshot(browser)
    x0, y0 = int(img["x"]), int(img["y"])
    assert (x0, y0) == (img["x"], img["y"]), "the image sits between device pixels"
    # the left part of the image, away from the divider's handle and the labels, is the pattern exactly
    x1 = min(x0 + W, int(stage["x"] + stage["w"] / 2) - 24)
    ys = slice(max(y0, int(stage["y"]) + 40), y0 + H)
    seen = shot[ys, x0:x1].astype(int)
    want = PATTERN[ys.start - y0:ys.stop - y0, 0:x1 - x0].astype(int)
    assert seen.shape == want.shape and seen.shape[1] >= 40
    assert np.array_equal(seen, want)
    keys(browser, "2")
    assert rect(browser, "#layer-left img")["w"] == 2 * W
    assert errors(browser) == []


@pytest.fixture(scope="module")
def bench_page(tmp_path_factory):
    """A bench of jpeg and webp on two small images, with its report.html."""
    from mlcompress.bench import run_bench

    d = tmp_path_factory.mktemp("benchview")
    (d / "data").mkdir()
    rng = np.random.default_rng(5)
    png = registry.get("png")
    yy, xx = np.mgrid[0:96, 0:128]
    smooth = np.stack([xx * 2, yy * 2, (xx + yy)], axis=2).astype(np.uint8)
    (d / "data" / "a.png").write_bytes(png.encode(smooth))
    noisy = np.clip(smooth + rng.normal(0, 20, smooth.shape), 0, 255).astype(np.uint8)
    (d / "data" / "b.png").write_bytes(png.encode(noisy))
    run_bench(d / "data", d / "out", codecs=["jpeg", "webp"], qualities=[10, 30, 50, 70, 90], progress=False,
              view_points=3)
    return d / "out"


def test_bench_report_readouts_equal_the_bench_json(browser, bench_page):
    from selenium.webdriver.support.select import Select

    cells = [json.loads(line) for line in (bench_page / "cells.jsonl").read_text().splitlines()]
    load(browser, bench_page / "report.html")
    Select(browser.find_element("id", "image-select")).select_by_visible_text("b.png")
    Select(browser.find_element("id", "left-select")).select_by_value("webp")
    Select(browser.find_element("id", "right-select")).select_by_value("jpeg")
    for target in ("0.3", "2.5"):
        box = browser.find_element("id", "bpp-input")
        box.clear()
        box.send_keys(target + "\n")
        browser.execute_script("arguments[0].dispatchEvent(new Event('change'))", box)
        for side, codec in (("left", "webp"), ("right", "jpeg")):
            def shown(what):
                return browser.find_element("css selector", f'[data-readout="{side}-{what}"]').text
            cell = next(c for c in cells if c["codec"] == codec and c["image"] == "b.png"
                        and c["quality"] == int(shown("quality")))
            assert shown("name") == codec
            assert shown("bytes") == str(cell["bytes"])
            assert shown("bpp") == f"{cell['bpp']:.4f}"
            assert shown("psnr") == f"{cell['psnr']:.2f}"
            assert shown("ms_ssim") == ("n/a" if cell["ms_ssim"] is None else f"{cell['ms_ssim']:.4f}")
        diff = browser.find_element("css selector", '[data-readout="diff-bytes"]').text
        left = int(browser.find_element("css selector", '[data-readout="left-bytes"]').text)
        right = int(browser.find_element("css selector", '[data-readout="right-bytes"]').text)
        assert diff.startswith(f"{right - left:+d} (")
    assert errors(browser) == []


def test_bench_report_rd_points_show_their_numbers_on_hover_and_codecs_toggle(browser, bench_page):
    from selenium.webdriver.common.action_chains import ActionChains

    load(browser, bench_page / "report.html")
    jpeg = json.loads((bench_page / "json" / "jpeg.json").read_text())
    dot = browser.find_element("css selector", 'svg[data-metric="psnr"] g[data-codec="jpeg"] circle')
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", dot)
    ActionChains(browser).move_to_element(dot).perform()
    tip = browser.find_element("css selector", ".tooltip")
    assert tip.is_displayed()
    text = tip.text
    assert text.startswith("jpeg") and f"{jpeg['results']['bpp'][0]:.4f} bpp" in text
    assert f"{jpeg['results']['psnr-rgb'][0]:.2f} dB" in text and "encode" in text
    browser.find_element("css selector", '.legend-item[data-codec="jpeg"]').click()
    assert not browser.find_elements("css selector", 'svg[data-metric="psnr"] g[data-codec="jpeg"]')
    assert browser.find_elements("css selector", 'svg[data-metric="psnr"] g[data-codec="webp"]')
    assert errors(browser) == []
