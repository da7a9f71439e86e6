"""Locations of the folder commands: local paths, globs and fsspec URLs, written atomically."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import numpy as np
import pytest

import mlcompress
from mlcompress import batch, cli, storage
from mlcompress.errors import UsageError
from mlcompress.fileio import remove_temporaries, write_atomic


def _png(value: int = 0) -> bytes:
    return mlcompress.get_codec("png").encode(np.full((3, 4, 3), value, np.uint8))


@pytest.fixture
def memory():
    fsspec = pytest.importorskip("fsspec")
    fs = fsspec.filesystem("memory")
    yield fs
    for p in fs.ls("/", detail=False):
        if p.lstrip("/").startswith("st-"):
            fs.rm(p, recursive=True)


def test_file_urls_are_local_paths_and_other_urls_stay_urls():
    assert storage.location("file:///tmp/a b") == Path("/tmp/a b")
    assert storage.location("memory://x/y") == "memory://x/y"
    assert storage.location("photos/a.png") == Path("photos/a.png")
    assert not storage.is_url("file:///tmp") and storage.is_url("s3://bucket/x")


def test_a_glob_lists_its_files_relative_to_the_part_before_the_first_wildcard(tmp_path):
    for rel in ("a.png", "b.jpg", "sub/c.png", "sub/deep/d.png"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    found = storage.list_files(f"{tmp_path}/**/*.png", recursive=False)
    assert [rel.as_posix() for _, rel in found] == ["a.png", "sub/c.png", "sub/deep/d.png"]
    assert [rel.as_posix() for _, rel in storage.list_files(f"{tmp_path}/sub/*.png", False)] == ["c.png"]
    with pytest.raises(UsageError, match="matches no file"):
        storage.list_files(f"{tmp_path}/*.webp", False)


def test_a_glob_on_the_command_line_compresses_the_files_it_matches(tmp_path, capsys):
    (tmp_path / "in").mkdir()
    for name, value in (("a.png", 1), ("b.png", 2), ("c.bmp", 3)):
        (tmp_path / "in" / name).write_bytes(_png(value))
    rc = cli.main(["compress", f"{tmp_path}/in/[ab].png", "-o", str(tmp_path / "out"), "-c", "png", "--quiet"])
    assert rc == 0 and sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "b.png"]


def test_a_url_folder_is_listed_without_the_output_folder_inside_it(memory):
    for rel in ("a.png", "sub/b.png", "out/a.png"):
        memory.pipe_file(f"/st-in/{rel}", b"x")
    found = storage.list_files("memory://st-in", recursive=True, exclude="memory://st-in/out")
    assert [rel.as_posix() for _, rel in found] == ["a.png", "sub/b.png"]
    assert [rel.as_posix() for _, rel in storage.list_files("memory://st-in", recursive=False)] == ["a.png"]
    with pytest.raises(UsageError, match="is not a folder"):
        storage.list_files("memory://st-nothing", recursive=True)


def test_a_url_output_is_never_overwritten_without_force_and_leaves_no_temporary(memory):
    write_atomic("memory://st-w/x.bin", b"one")
    with pytest.raises(UsageError, match="exists"):
        write_atomic("memory://st-w/x.bin", b"two")
    write_atomic("memory://st-w/x.bin", b"three", force=True)
    assert memory.cat_file("/st-w/x.bin") == b"three" and memory.find("/st-w") == ["/st-w/x.bin"]
    assert storage.existing(["memory://st-w/x.bin", "memory://st-w/y.bin", "memory://st-none/z"]) == {
        "memory://st-w/x.bin"}


def test_a_folder_of_urls_compresses_to_the_same_bytes_as_a_local_one(memory, tmp_path):
    (tmp_path / "in").mkdir()
    for i in range(3):
        memory.pipe_file(f"/st-src/{i}.png", _png(i * 50))
        (tmp_path / "in" / f"{i}.png").write_bytes(_png(i * 50))
    memory.pipe_file("/st-src/bad.png", b"not a png")
    s = batch.compress_tree("memory://st-src", "memory://st-dst", codec="jpeg")
    batch.compress_tree(tmp_path / "in", tmp_path / "out", codec="jpeg")
    assert len(s.done) == 3 and [str(r.source).rpartition("/")[2] for r in s.failed] == ["bad.png"]
    for i in range(3):
        assert memory.cat_file(f"/st-dst/{i}.jpg") == (tmp_path / "out" / f"{i}.jpg").read_bytes()
    again = batch.compress_tree("memory://st-src", "memory://st-dst", codec="jpeg")
    assert len(again.skipped) == 3 and not again.done


def test_only_the_temporaries_of_the_given_outputs_are_removed(tmp_path):
    for name in (".a.png.k2x9_q1z.part", ".b.png.abcdefgh.part", "a.png", ".a.png.other", "c.part"):
        (tmp_path / name).write_bytes(b"x")
    assert remove_temporaries([tmp_path / "a.png"]) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [".a.png.other", ".b.png.abcdefgh.part", "a.png", "c.part"]


def test_join_builds_output_names_for_paths_and_urls():
    assert storage.join(Path("out"), PurePosixPath("a/b.png")) == Path("out/a/b.png")
    assert storage.join("s3://bucket/out/", PurePosixPath("a/b.png")) == "s3://bucket/out/a/b.png"
