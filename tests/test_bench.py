"""mlcompress bench: results schema, cache, BD-rate, errors, and the thesis's PSNR formula."""

from __future__ import annotations

import csv
import json
import math
import shutil

import numpy as np
import pytest

from mlcompress import registry
from mlcompress.bench import run_bench
from mlcompress.bench.bdrate import TARGET_PSNR, bd_rate, monotone
from mlcompress.bench.runner import CELLS_FILE
from mlcompress.bench.thesis import THESIS_PSNR_OFFSET_DB, thesis_psnr
from mlcompress.cli import main
from mlcompress.errors import UsageError
from mlcompress.metrics import psnr

QUALITIES = [20, 50, 80]


def _write_images(folder):
    """Two tiny synthetic photos-to-be as PNG files, and a file that is not an image."""
    folder.mkdir()
    yy, xx = np.mgrid[0:40, 0:56]
    smooth = np.stack([xx * 4, yy * 6, (xx + yy) * 2], axis=2).astype(np.uint8)
    noisy = np.clip(smooth + np.random.default_rng(3).normal(0, 12, smooth.shape), 0, 255).astype(np.uint8)
    png = registry.get("png")
    (folder / "a_smooth.png").write_bytes(png.encode(smooth))
    (folder / "b_noisy.png").write_bytes(png.encode(noisy[:32]))
    (folder / "notes.txt").write_text("not an image")
    return folder


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return _write_images(tmp_path_factory.mktemp("bench") / "images")


def bench(data, out, **kw):
    kw.setdefault("codecs", ["jpeg", "png"])
    kw.setdefault("qualities", QUALITIES)
    return run_bench(data, out, progress=False, **kw)


@pytest.fixture(scope="module")
def first_run(data, tmp_path_factory):
    """One bench of jpeg (3 qualities) and png on the two images; tests read, never change, it."""
    out = tmp_path_factory.mktemp("bench") / "out"
    return bench(data, out), out


def test_bench_writes_compressai_json_per_image_csv_plots_and_report(first_run):
    summary, out = first_run
    assert summary.computed == 2 * len(QUALITIES) + 2 and not summary.failures

    jpeg = json.loads((out / "json" / "jpeg.json").read_text())
    assert set(jpeg) >= {"name", "description", "results"} and jpeg["name"] == "jpeg"
    res = jpeg["results"]
    assert set(res) == {"bpp", "psnr-rgb", "ms-ssim-rgb", "encoding_time", "decoding_time"}
    assert all(len(v) == len(QUALITIES) for v in res.values())
    assert res["bpp"] == sorted(res["bpp"]) and all(b > 0 for b in res["bpp"])
    assert all(20 < p < 60 for p in res["psnr-rgb"])
    png = json.loads((out / "json" / "png.json").read_text())
    assert png["lossless"] and len(png["results"]["bpp"]) == 1 and png["results"]["psnr-rgb"] == [None]

    rows = list(csv.DictReader((out / "per_image.csv").open()))
    assert len(rows) == 2 * len(QUALITIES) + 2
    assert {r["image"] for r in rows} == {"a_smooth.png", "b_noisy.png"}
    first = rows[0]
    assert int(first["bytes"]) * 8 / (int(first["width"]) * int(first["height"])) == pytest.approx(float(first["bpp"]))

    for stem in ("rd-psnr", "rd-ms-ssim"):
        assert (out / f"{stem}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert b"<svg" in (out / f"{stem}.svg").read_bytes()[:2000]
    report = (out / "report.md").read_text()
    assert "## BD-rate" in report and "## Speed" in report and "| png |" in report and "CPU count" in report


def test_mean_bpp_and_psnr_in_json_are_means_of_the_per_image_rows(first_run):
    _, out = first_run
    rows = [r for r in csv.DictReader((out / "per_image.csv").open()) if r["codec"] == "jpeg" and r["quality"] == "50"]
    res = json.loads((out / "json" / "jpeg.json").read_text())["results"]
    assert len(rows) == 2
    assert res["bpp"][1] == pytest.approx(np.mean([float(r["bpp"]) for r in rows]))
    assert res["psnr-rgb"][1] == pytest.approx(np.mean([float(r["psnr"]) for r in rows]), abs=1e-3)


def test_rerun_skips_finished_cells_and_measures_only_new_ones(first_run, data, tmp_path, monkeypatch):
    out = tmp_path / "out"
    shutil.copytree(first_run[1], out)
    with (out / CELLS_FILE).open("a") as fh:
        fh.write('{"codec": "jpeg", "qual')  # the torn last line of an interrupted run
    calls = []
    jpeg = registry.get("jpeg")
    original = jpeg.encode
    monkeypatch.setattr(jpeg, "encode", lambda *a, **k: calls.append(1) or original(*a, **k))

    again = bench(data, out)
    assert (again.computed, again.cached, calls) == (0, 2 * len(QUALITIES) + 2, [])

    more = bench(data, out, codecs=["jpeg", "qoi"], qualities=QUALITIES + [95])
    assert (more.computed, more.cached) == (2 + 2, 2 * len(QUALITIES))
    assert len(calls) == 2
    assert len((out / CELLS_FILE).read_text().split("\n")) == 2 * len(QUALITIES) + 2 + 4 + 2


def test_cells_of_codecs_with_weights_are_measured_again_when_the_weights_change(first_run, data, tmp_path,
                                                                                 monkeypatch):
    out = tmp_path / "out"
    shutil.copytree(first_run[1], out)
    jpeg = registry.get("jpeg")  # stands in for a learned codec: a weights tag per quality
    monkeypatch.setattr(jpeg, "weights_tag", lambda q: "aaaa")
    first = bench(data, out, codecs=["jpeg"])
    assert first.computed == 2 * len(QUALITIES)  # untagged cells do not count for tagged weights
    report = json.loads((out / "json" / "jpeg.json").read_text())
    assert len(report["results"]["bpp"]) == len(QUALITIES)  # the tagged cells reach the results
    assert "a_smooth.png" in (out / "per_image.csv").read_text()
    assert bench(data, out, codecs=["jpeg"]).computed == 0
    monkeypatch.setattr(jpeg, "weights_tag", lambda q: "bbbb" if q == 50 else "aaaa")
    assert bench(data, out, codecs=["jpeg"]).computed == 2


def test_a_codec_failing_on_an_image_is_reported_not_raised(data, tmp_path, monkeypatch):
    png = registry.get("png")
    original = png.decode
    monkeypatch.setattr(png, "decode", lambda d: original(d)[1:])  # one row short

    summary = bench(data, tmp_path / "out", codecs=["png"])
    assert len(summary.failures) == 2 and "shape" in summary.failures[0].error
    assert "Failures" in (tmp_path / "out" / "report.md").read_text()
    assert not (tmp_path / "out" / CELLS_FILE).read_text().strip()  # failures are retried next time


def test_bd_rate_of_a_codec_against_itself_is_zero(first_run):
    rate = [0.2, 0.4, 0.8, 1.6]
    quality = [27.0, 30.0, 33.0, 36.0]
    assert bd_rate(rate, quality, rate, quality).percent == pytest.approx(0.0, abs=1e-9)
    assert bd_rate(rate, quality, rate, quality, TARGET_PSNR).percent == pytest.approx(0.0, abs=1e-9)
    row = next(r for r in (first_run[1] / "report.md").read_text().splitlines() if r.startswith("| jpeg | "))
    assert row.split("|")[3].strip().startswith("+0.0 % (")  # jpeg against JPEG over the curves' overlap


def test_bd_rate_of_half_the_bits_is_minus_fifty_percent_and_matches_bjontegaard():
    from bjontegaard import bd_rate as reference

    rate = np.array([0.2, 0.4, 0.8, 1.6])
    quality = np.array([27.0, 30.5, 33.0, 36.0])
    assert bd_rate(rate, quality, rate / 2, quality).percent == pytest.approx(-50.0)
    other = np.array([0.25, 0.45, 0.7, 1.3])
    ours = bd_rate(rate, quality, other, quality + 0.3)
    assert ours.percent == pytest.approx(reference(rate, quality, other, quality + 0.3, "pchip", min_overlap=0))
    assert (ours.lo, ours.hi) == (27.3, 36.0)
    clipped = bd_rate(rate, quality, other, quality + 0.3, (29.0, 35.0))
    assert (clipped.lo, clipped.hi) == (29.0, 35.0)
    assert not bd_rate(rate, quality, rate, quality + 20).defined  # no overlap


def test_a_bd_rate_over_less_than_one_db_of_overlap_is_refused_and_every_figure_names_its_interval():
    from mlcompress.bench.bdrate import MIN_OVERLAP, NO_OVERLAP

    rate = np.array([0.2, 0.4, 0.8, 1.6])
    anchor = np.array([27.0, 30.5, 33.0, 36.0])
    test = anchor - 6.4  # the review's case: the curves meet on 29.0-29.6 dB only
    short = bd_rate(rate, anchor, rate * 0.7, test, TARGET_PSNR)
    assert MIN_OVERLAP == 1.0 and not short.defined
    assert (short.lo, short.hi) == pytest.approx((29.0, 29.6))
    assert short.text() == "n/a (overlap 0.6 dB)"
    assert NO_OVERLAP.text() == "n/a (no overlap)"
    assert bd_rate(rate, anchor, rate / 2, anchor, TARGET_PSNR).text() == "-50.0 % (29.0-35.0 dB)"
    assert bd_rate(rate, anchor, rate / 2, anchor).text() == "-50.0 % (27.0-36.0 dB)"


def test_the_report_gives_the_interval_of_each_bd_rate(first_run):
    table = (first_run[1] / "report.md").read_text().split("## BD-rate")[1].split("\n## ")[0]
    rows = [r for r in table.splitlines() if r.startswith("| ") and not r.startswith("| codec")]
    assert rows
    for row in rows:
        for cell in row.split("|")[2:-1]:
            cell = cell.strip()
            assert cell.startswith("n/a (") or " dB" in cell, row


def test_monotone_drops_points_no_better_than_a_cheaper_one():
    r, q = monotone([1.0, 0.5, 2.0, 1.5, float("nan")], [30.0, 28.0, 29.5, 31.0, 40.0])
    assert r.tolist() == [0.5, 1.0, 1.5] and q.tolist() == [28.0, 30.0, 31.0]


def test_unknown_codec_missing_data_and_empty_folder_are_usage_errors(data, tmp_path):
    with pytest.raises(UsageError, match="unknown codec"):
        bench(data, tmp_path / "out", codecs=["no-such-codec"])
    with pytest.raises(UsageError, match="does not exist"):
        bench(tmp_path / "missing", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no images"):
        bench(tmp_path / "empty", tmp_path / "out")
    with pytest.raises(UsageError, match="quality"):
        bench(data, tmp_path / "out", codecs=["jpeg"], qualities=[500])


def test_cli_bench_exits_2_on_bad_usage_and_0_on_success(data, tmp_path, capsys):
    assert main(["bench", "--data", str(data), "--codecs", "nope", "--out", str(tmp_path / "o")]) == 2
    assert main(["bench", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    assert "error" in capsys.readouterr().err
    assert main(["bench", "--data", str(data), "--codecs", "jpeg", "--qualities", "40,60", "--limit", "1",
                 "--out", str(tmp_path / "o"), "--quiet"]) == 0
    assert "2 cells measured" in capsys.readouterr().out


def test_thesis_psnr_is_true_psnr_plus_20_log10_255():
    a = np.zeros((8, 8, 3), np.uint8)
    b = a.copy()
    b[0, 0, 0] = 16  # MSE = 256 / 192 on 0..255
    assert psnr(a, b) == pytest.approx(10 * math.log10(255**2 / (256 / 192)))
    assert thesis_psnr(a, b) - psnr(a, b) == pytest.approx(20 * math.log10(255), abs=1e-9)
    assert THESIS_PSNR_OFFSET_DB == pytest.approx(48.1308, abs=1e-4)


def test_thesis_tables_include_cae_thesis_exactly_when_it_is_available(tmp_path):
    from mlcompress.bench import thesis

    names, notes = thesis.resolve_codecs(None)
    cae_ready = "cae-thesis" in registry.list_codecs() and registry.get("cae-thesis").available()
    assert ("cae-thesis" in names) == cae_ready
    assert any("cae-thesis" in n for n in notes) != cae_ready

    path = thesis.write_tables(tmp_path / "T.md", codecs=["jpeg"], kodak_images=0)
    text = path.read_text()
    assert "48.1308" in text and "skimage astronaut" in text and "| jpeg |" in text
    # the named codecs are the only ones measured, in the Kodak tables (section 3) too
    section3 = text.split("## 3.")[1]
    rows = [line.split(" | ")[1] for line in section3.splitlines() if line.startswith("| kodim")]
    if "Skipped: the Kodak images" not in section3:
        assert rows and set(rows) == {"jpeg"}


def test_published_anchors_load_from_both_layouts_and_are_labelled_published():
    from mlcompress.bench import anchors

    if not anchors.anchors_dir().is_dir():
        pytest.skip(f"published anchors {anchors.anchors_dir()} not present")
    curves = anchors.load_anchors(True)
    assert len(curves) == len(anchors.DEFAULT_ANCHORS)
    assert all(c.published and c.label.endswith("(published)") for c in curves)
    vtm = anchors.load_anchor("compressai-kodak/vtm")
    b, p = vtm.points("psnr")
    assert len(b) >= 4 and np.all(np.diff(p) > 0)
    tfc = anchors.load_anchor("tfc-kodak/bpg444")
    assert len(tfc.points("psnr")[0]) >= 4 and len(tfc.points("ms_ssim")[0]) >= 4
    with pytest.raises(UsageError, match="no published anchor"):
        anchors.load_anchor("compressai-kodak/no-such-curve")


def test_speeds_below_one_megapixel_per_second_keep_two_significant_digits():
    from mlcompress.bench.report import _mps

    assert [_mps(v) for v in (0.0137, 0.46, 1.04, 104.5, float("nan"))] == ["0.014", "0.46", "1.0", "104.5", "n/a"]


def test_bench_worker_processes_time_codecs_on_one_blas_thread_and_one_torch_thread():
    # numpy's BLAS starts a thread per core, so --jobs 2 would otherwise oversubscribe the cores
    import subprocess
    import sys

    code = ("from mlcompress.bench.runner import _worker_init; _worker_init()\n"
            "from threadpoolctl import threadpool_info\n"
            "print(sorted({p['num_threads'] for p in threadpool_info() if p['user_api'] == 'blas'}))\n"
            "import importlib.util\n"
            "if importlib.util.find_spec('torch'):\n"
            "    import torch; print(torch.get_num_threads())\n"
            "else:\n"
            "    print(1)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["[1]", "1"]


def test_a_data_path_that_is_a_file_is_refused_as_not_a_folder(tmp_path):
    from mlcompress.bench.runner import list_images

    (tmp_path / "x.png").write_bytes(b"not a folder")
    with pytest.raises(UsageError, match="x.png is not a folder"):
        list_images(tmp_path / "x.png")
    with pytest.raises(UsageError, match="nope does not exist"):
        list_images(tmp_path / "nope")
