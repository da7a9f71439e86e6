"""`mlcompress vq-experiments`: the thesis's grid runs and its table reports real measurements."""

from __future__ import annotations

import numpy as np
import pytest

from mlcompress import cli, experiments
from mlcompress.image import to_pil


@pytest.fixture
def folder(tmp_path):
    r = np.random.default_rng(0)
    yy, xx = np.mgrid[0:24, 0:32]
    img = np.clip(np.stack([xx * 8, yy * 10, xx + yy], 2) + r.normal(0, 6, (24, 32, 3)), 0, 255).astype(np.uint8)
    to_pil(img).save(tmp_path / "tiny.png")
    return tmp_path


def test_vq_experiments_measure_every_method_and_rle_vq_equals_vq(folder):
    rows = experiments.run_vq_experiments(folder, ["tiny"], grid=((4, 1), (8, 2)))
    assert [r.method for r in rows] == ["RLE"] + ["VQ", "VQ_RLE", "RLE_VQ"] * 2
    assert all(r.bmp_bytes == 54 + 96 * 24 for r in rows)  # 32 px x 3 B per row, no padding
    by = {(r.method, r.n_clusters): r for r in rows}
    assert by[("RLE", None)].psnr == float("inf")
    for k in (4, 8):
        assert by[("RLE_VQ", k)].pixels_sha256 == by[("VQ", k)].pixels_sha256
    text = experiments.format_markdown(rows, "mlcompress vq-experiments --data X")
    assert "mlcompress vq-experiments --data X" in text and "| tiny | RLE_VQ |" in text


def test_vq_experiments_command_writes_the_table_and_refuses_to_overwrite(folder, tmp_path, capsys):
    out = tmp_path / "t.md"
    argv = ["vq-experiments", "--data", str(folder), "--images", "tiny", "--grid", "6/2", "--out", str(out), "--quiet"]
    assert cli.main(argv) == 0
    assert "| VQ | 6 | 2 |" in out.read_text() and "--grid 6/2" in out.read_text()
    assert cli.main(argv) == 2  # exists, no --force
    assert cli.main(["vq-experiments", "--data", str(folder / "missing")]) == 2
    assert cli.main(["vq-experiments", "--data", str(folder), "--grid", "64-10"]) == 2
