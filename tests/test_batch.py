"""Folders compress and decompress file by file: bad files are skipped, runs resume, outputs are whole."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import mlcompress
from mlcompress import batch, cli
from mlcompress.image import to_pil

CODEC = "png"  # classical and lossless: fast, and independent of the native codecs' progress


def _save(path: Path, img: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    to_pil(img).save(path)


def _images() -> dict[str, np.ndarray]:
    r = np.random.default_rng(3)
    return {
        "a.png": r.integers(0, 256, (8, 9, 3), dtype=np.uint8),
        "b.bmp": r.integers(0, 256, (5, 4), dtype=np.uint8),
        "sub/c.png": r.integers(0, 256, (6, 6, 4), dtype=np.uint8),
        "sub/deeper/d.tif": r.integers(0, 256, (3, 7, 3), dtype=np.uint8),
    }


@pytest.fixture
def tree(tmp_path) -> Path:
    """Good images (two levels deep), a corrupt PNG, a text file, an unreadable 'image'."""
    src = tmp_path / "in"
    for rel, img in _images().items():
        _save(src / rel, img)
    (src / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    (src / "notes.txt").write_text("not an image\n")
    (src / "sub" / "fake.jpg").write_text("a text file named like an image\n")
    os.symlink(src / "missing.png", src / "broken-link.png")  # unreadable, even for root
    return src


def _names(results) -> list[str]:
    return sorted(r.source.name for r in results)


def test_a_folder_tree_is_compressed_mirrored_and_bad_files_are_reported(tree, tmp_path):
    out = tmp_path / "out"
    s = batch.compress_tree(tree, out, codec=CODEC, recursive=True)
    assert _names(s.done) == ["a.png", "b.bmp", "c.png", "d.tif"]
    assert _names(s.failed) == ["broken-link.png", "corrupt.png", "fake.jpg"]
    assert all(r.message for r in s.failed)
    assert [p.name for p in s.ignored] == ["notes.txt"]
    assert not s.ok and "4 done" in s.format() and "3 failed" in s.format()
    for rel, img in _images().items():
        target = out / Path(rel).with_suffix(".png")
        assert np.array_equal(mlcompress.open(target), img), rel
    assert not list(out.rglob("*.part")) and not list(out.rglob(".*"))


def test_without_recursion_only_the_top_folder_is_compressed(tree, tmp_path):
    s = batch.compress_tree(tree, tmp_path / "out", codec=CODEC)
    assert _names(s.done) == ["a.png", "b.bmp"]
    assert not (tmp_path / "out" / "sub").exists()


def test_a_run_without_recursion_counts_the_subfolders_it_left_and_hints_at_r(tree, tmp_path, capsys):
    out = tree / "out"  # an output folder inside the input is not one of them
    s = batch.compress_tree(tree, out, codec=CODEC)
    assert [p.name for p in s.subfolders] == ["sub"]
    assert "1 ignored, 1 subfolder not entered (-r enters them)" in s.format()
    assert not batch.compress_tree(tree, out, codec=CODEC, recursive=True, force=True).subfolders
    assert cli.main(["decompress", str(out), "-o", str(tmp_path / "back")]) == 0
    assert "1 subfolder not entered (-r enters them)" in capsys.readouterr().out  # out/sub
    assert cli.main(["decompress", str(out), "-o", str(tmp_path / "back"), "-r"]) == 0
    assert "subfolder" not in capsys.readouterr().out


def test_a_second_run_resumes_and_redoes_only_the_missing_output(tree, tmp_path):
    out = tmp_path / "out"
    first = batch.compress_tree(tree, out, codec=CODEC, recursive=True)
    assert len(first.done) == 4
    (out / "sub" / "c.png").unlink()
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.png")}
    second = batch.compress_tree(tree, out, codec=CODEC, recursive=True)
    assert _names(second.done) == ["c.png"]
    assert _names(second.skipped) == ["a.png", "b.bmp", "d.tif"]
    assert {p: p.stat().st_mtime_ns for p in before} == before  # finished outputs untouched
    forced = batch.compress_tree(tree, out, codec=CODEC, recursive=True, force=True)
    assert len(forced.done) == 4 and not forced.skipped


def test_an_interrupted_run_leaves_no_partial_file_and_resumes(tree, tmp_path, monkeypatch):
    out = tmp_path / "out"
    real_fsync, calls = os.fsync, []

    def fsync_interrupted_on_third_file(fd):
        calls.append(fd)
        if len(calls) == 3:  # Ctrl-C while the third output's temporary file is half done
            raise KeyboardInterrupt
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync_interrupted_on_third_file)
    with pytest.raises(KeyboardInterrupt):
        batch.compress_tree(tree, out, codec=CODEC, recursive=True)
    monkeypatch.undo()
    written = sorted(p.name for p in out.rglob("*") if p.is_file())
    assert len(written) == 2 and not any(n.endswith(".part") or n.startswith(".") for n in written)
    again = batch.compress_tree(tree, out, codec=CODEC, recursive=True)
    assert len(again.skipped) == 2 and len(again.done) == 2


def test_compressing_with_two_jobs_gives_the_same_files_as_one(tree, tmp_path):
    one = batch.compress_tree(tree, tmp_path / "one", codec=CODEC, recursive=True)
    two = batch.compress_tree(tree, tmp_path / "two", codec=CODEC, recursive=True, jobs=2)
    assert _names(two.done) == _names(one.done) and _names(two.failed) == _names(one.failed)
    for r in one.done:
        twin = tmp_path / "two" / r.output.relative_to(tmp_path / "one")
        assert twin.read_bytes() == r.output.read_bytes()


def test_clashing_names_keep_their_extension_in_the_output_name(tmp_path):
    img = np.zeros((2, 2, 3), np.uint8)
    _save(tmp_path / "in" / "x.png", img)
    _save(tmp_path / "in" / "x.bmp", img + 1)
    s = batch.compress_tree(tmp_path / "in", tmp_path / "out", codec=CODEC)
    assert sorted(r.output.name for r in s.done) == ["x.bmp.png", "x.png.png"]


def test_an_output_folder_inside_the_input_is_not_walked(tree):
    s = batch.compress_tree(tree, tree / "compressed", codec=CODEC, recursive=True)
    assert len(s.done) == 4
    again = batch.compress_tree(tree, tree / "compressed", codec=CODEC, recursive=True)
    assert len(again.skipped) == 4 and not again.done


def test_decompressing_a_folder_writes_pngs_and_reports_corrupt_files(tree, tmp_path):
    packed, unpacked = tmp_path / "packed", tmp_path / "unpacked"
    if "rle" not in mlcompress.list_codecs(available_only=True):
        pytest.skip("the rle codec is not available")
    batch.compress_tree(tree, packed, codec="rle", recursive=True)
    victim = next(packed.rglob("a*"))
    victim.write_bytes(victim.read_bytes()[:-3])  # truncated
    (packed / "readme.txt").write_text("ignored")
    s = batch.decompress_tree(packed, unpacked, recursive=True)
    assert _names(s.failed) == [victim.name]
    assert len(s.done) == 3 and [p.name for p in s.ignored] == ["readme.txt"]
    assert sorted(p.relative_to(unpacked).as_posix() for p in unpacked.rglob("*.png")) == [
        "b.png", "sub/c.png", "sub/deeper/d.png"]
    assert np.array_equal(mlcompress.open(unpacked / "sub" / "c.png"), _images()["sub/c.png"])  # lossless


def test_decompressing_in_place_twice_redoes_nothing_and_never_reads_its_own_pngs(tree):
    if "rle" not in mlcompress.list_codecs(available_only=True):
        pytest.skip("the rle codec is not available")
    batch.compress_tree(tree, tree, codec="rle", recursive=True)
    first = batch.decompress_tree(tree, tree, recursive=True)
    again = batch.decompress_tree(tree, tree, recursive=True)
    assert _names(first.done) == ["b.mlc", "d.mlc"]  # a.png and c.png are there already
    assert _names(first.skipped) == ["a.mlc", "c.mlc"]
    assert _names(first.failed) == _names(again.failed) == ["fake.jpg"]  # text named .jpg
    assert not again.done and len(again.skipped) == 4
    assert all(r.source.suffix != ".png" for r in first.results + again.results)


def test_bad_parameters_are_refused_before_any_file_is_touched(tree, tmp_path):
    with pytest.raises(mlcompress.UsageError):
        batch.compress_tree(tree, tmp_path / "out", codec="no-such-codec")
    with pytest.raises(mlcompress.UsageError):
        batch.compress_tree(tree, tmp_path / "out", codec="jpeg", quality=1000)
    with pytest.raises(mlcompress.UsageError):
        batch.compress_tree(tree / "a.png", tmp_path / "out", codec=CODEC)
    assert not (tmp_path / "out").exists()


def test_the_cli_compresses_a_folder_and_exits_1_when_a_file_failed(tree, tmp_path, capsys):
    out = tmp_path / "out"
    assert cli.main(["compress", str(tree), "-o", str(out), "-r", "-c", CODEC, "--jobs", "1"]) == 1
    err = capsys.readouterr().err
    assert "corrupt.png" in err and "4 done" in err and "3 failed" in err
    (tree / "corrupt.png").unlink()
    (tree / "sub" / "fake.jpg").unlink()
    (tree / "broken-link.png").unlink()
    assert cli.main(["compress", str(tree), "-o", str(out), "-r", "-c", CODEC]) == 0
    assert "0 done, 4 already present, 0 failed" in capsys.readouterr().out
    assert cli.main(["decompress", str(out), "-o", str(tmp_path / "back"), "-r", "--quiet"]) == 0
    assert cli.main(["compress", str(tree), "-c", CODEC]) == 2  # a folder needs -o


def test_an_unreadable_file_is_reported_when_permissions_apply(tmp_path):
    src = tmp_path / "in"
    _save(src / "locked.png", np.zeros((2, 2, 3), np.uint8))
    (src / "locked.png").chmod(0)
    try:
        if os.access(src / "locked.png", os.R_OK):
            pytest.skip("running as root: chmod 000 does not stop reading (the broken link covers it)")
        s = batch.compress_tree(src, tmp_path / "out", codec=CODEC)
        assert _names(s.failed) == ["locked.png"] and "cannot read" in s.failed[0].message
    finally:
        (src / "locked.png").chmod(0o644)
