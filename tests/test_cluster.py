"""Folder commands and the benchmark on a Dask cluster (loopback only): the same bytes as a serial
run, nothing lost when a worker dies, re-runs do only what is missing."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from pathlib import Path

import numpy as np
import pytest

import mlcompress
from mlcompress import batch, cli, cluster
from mlcompress.errors import UsageError
from mlcompress.image import to_pil

distributed = pytest.importorskip("distributed")

N_IMAGES = 12


def _images(n: int, size: int = 16) -> dict[str, np.ndarray]:
    r = np.random.default_rng(5)
    return {(f"sub/{i:02d}.png" if i % 4 == 0 else f"{i:02d}.png"): r.integers(0, 256, (size, size + 3, 3), np.uint8)
            for i in range(n)}


def _write(root: Path, images: dict[str, np.ndarray]) -> Path:
    for rel, img in images.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        to_pil(img).save(root / rel)
    return root


@pytest.fixture(scope="module")
def client():
    """Two worker processes on 127.0.0.1, shared by the tests of this module."""
    with cluster.local_cluster(2) as lc, distributed.Client(lc, set_as_default=False) as c:
        yield c


@pytest.fixture
def photos(tmp_path) -> Path:
    src = _write(tmp_path / "in", _images(N_IMAGES))
    (src / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    return src


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_local_cluster_compresses_and_decompresses_a_folder_to_the_same_bytes_as_a_serial_run(photos, tmp_path, client):
    serial = batch.compress_tree(photos, tmp_path / "serial", codec="jpeg", recursive=True)
    on = batch.compress_tree(f"file://{photos}", tmp_path / "cluster", codec="jpeg", recursive=True, cluster=client)
    assert len(on.done) == N_IMAGES and [r.source.name for r in on.failed] == ["corrupt.png"]
    assert on.failed[0].message == serial.failed[0].message
    assert _files(tmp_path / "cluster") == _files(tmp_path / "serial") and len(_files(tmp_path / "serial")) == N_IMAGES
    batch.decompress_tree(tmp_path / "serial", tmp_path / "back-serial", recursive=True)
    back = batch.decompress_tree(tmp_path / "cluster", tmp_path / "back-cluster", recursive=True, cluster=client)
    assert len(back.done) == N_IMAGES and back.ok
    assert _files(tmp_path / "back-cluster") == _files(tmp_path / "back-serial")


def test_a_local_cluster_enhances_a_folder_of_jpegs_to_the_same_pngs_as_a_serial_run(tmp_path, client):
    pytest.importorskip("torch")
    src = tmp_path / "jpegs"
    for rel, img in list(_images(6, size=40).items()):
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        to_pil(img).save((src / rel).with_suffix(".jpg"), quality=30)
    (src / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\0" * 30)
    serial = batch.enhance_tree(src, tmp_path / "serial", recursive=True)
    on = batch.enhance_tree(src, tmp_path / "cluster", recursive=True, cluster=client)
    assert len(on.done) == 6 and [r.source.name for r in on.failed] == ["broken.jpg"]
    assert _files(tmp_path / "cluster") == _files(tmp_path / "serial") and len(_files(tmp_path / "serial")) == 6


def test_the_cli_runs_a_folder_on_a_scheduler_address(photos, tmp_path, client, capsys):
    address = client.scheduler.address
    assert address.startswith("tcp://127.0.0.1:")
    rc = cli.main(["compress", str(photos), "-o", str(tmp_path / "out"), "-r", "-c", "png", "--cluster", address])
    assert rc == cli.EXIT_DATA  # the corrupt file is reported, the rest is done
    err = capsys.readouterr().err
    assert "corrupt.png" in err and f"{N_IMAGES} done" in err
    for rel, img in _images(N_IMAGES).items():
        assert np.array_equal(mlcompress.open(tmp_path / "out" / rel), img)


def test_memory_urls_round_trip_through_an_in_process_cluster(tmp_path):
    fsspec = pytest.importorskip("fsspec")
    fs = fsspec.filesystem("memory")
    images = _images(6)
    for rel, img in images.items():
        fs.pipe_file(f"/cl-in/{rel}", mlcompress.get_codec("png").encode(img))
    with cluster.local_cluster(2, processes=False) as lc, distributed.Client(lc, set_as_default=False) as c:
        s = batch.compress_tree("memory://cl-in", "memory://cl-out", codec="webp", quality=80, recursive=True, cluster=c)
        back = batch.decompress_tree("memory://cl-out", "memory://cl-back", recursive=True, cluster=c)
    serial = batch.compress_tree("memory://cl-in", "memory://cl-serial", codec="webp", quality=80, recursive=True)
    try:
        assert len(s.done) == 6 and len(back.done) == 6 and s.ok and back.ok
        for rel in images:
            name = rel.replace(".png", ".webp")
            assert fs.cat_file(f"/cl-out/{name}") == fs.cat_file(f"/cl-serial/{name}")
            decoded = mlcompress.decode(fs.cat_file(f"/cl-back/{rel}"))
            assert np.array_equal(decoded, mlcompress.decode(fs.cat_file(f"/cl-out/{name}")))
        assert not [p for p in fs.find("/") if p.endswith(".part")]
    finally:
        for folder in ("/cl-in", "/cl-out", "/cl-back", "/cl-serial"):
            fs.rm(folder, recursive=True)


def test_memory_urls_are_refused_for_workers_in_other_processes(client):
    fsspec = pytest.importorskip("fsspec")
    fs = fsspec.filesystem("memory")
    fs.pipe_file("/cl-private/a.png", mlcompress.get_codec("png").encode(np.zeros((4, 4, 3), np.uint8)))
    try:
        with pytest.raises(UsageError, match="this process only"):
            batch.compress_tree("memory://cl-private", "memory://cl-private-out", codec="png", cluster=client)
        with pytest.raises(UsageError, match="this process only"):
            batch.compress_tree("memory://cl-private", "memory://cl-private-out", codec="png", jobs=2)
    finally:
        fs.rm("/cl-private", recursive=True)
        if fs.exists("/cl-private-out"):
            fs.rm("/cl-private-out", recursive=True)


def test_bench_on_a_cluster_measures_the_same_cells_as_a_serial_run_and_writes_them_alone(tmp_path, monkeypatch):
    from mlcompress.bench import runner

    data = _write(tmp_path / "data", dict(list(_images(3, size=40).items())[1:]))
    p = runner.plan(data, ["jpeg", "png"], [40, 80])
    serial, *_ = runner.measure(p, _made(tmp_path / "serial"), progress=False)
    # workers in this process, where torch (MS-SSIM) is already imported: seconds, not a torch
    # import per worker process; the thread limits of a worker process would stay on this one
    monkeypatch.setattr(runner, "_worker_init", lambda: None)
    with cluster.local_cluster(2, processes=False) as lc, distributed.Client(lc, set_as_default=False) as client:
        on, computed, cached, failures = runner.measure(p, _made(tmp_path / "cluster"), progress=False, cluster=client)
        again = runner.measure(p, tmp_path / "cluster", progress=False, cluster=client)
    assert computed == len(serial) == 2 * 3 and not failures and not cached
    timing = {"encode_s", "decode_s", "encode_cpu_s", "decode_cpu_s"}

    def same(c):  # through JSON: NaN (MS-SSIM of a small image) compares equal as null
        return {k: v for k, v in json.loads(c.to_json()).items() if k not in timing}

    assert {k: same(c) for k, c in on.items()} == {k: same(c) for k, c in serial.items()}
    lines = (tmp_path / "cluster" / runner.CELLS_FILE).read_text().splitlines()
    assert len(lines) == len(serial) and {runner.Cell.from_json(x).key for x in lines} == set(serial)
    assert again[1:3] == (0, len(serial))  # the cache is read back: nothing measured twice


def _made(path: Path) -> Path:
    path.mkdir(parents=True)
    return path


def test_a_bad_scheduler_address_is_a_one_line_error_with_exit_2_within_seconds(photos, tmp_path, capsys):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for address in (f"tcp://127.0.0.1:{port}", "no-port-here", "local:0"):
        t0 = time.monotonic()
        rc = cli.main(["compress", str(photos), "-o", str(tmp_path / "out"), "-c", "png", "--cluster", address])
        assert rc == cli.EXIT_USAGE and time.monotonic() - t0 < cluster.CONNECT_TIMEOUT_S + 10
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("mlcompress: error:") and "Traceback" not in err, err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_jobs_and_cluster_together_are_refused(photos, tmp_path):
    with pytest.raises(UsageError, match="--jobs and --cluster"):
        batch.compress_tree(photos, tmp_path / "out", codec="png", jobs=2, cluster="local:2")


def test_rerunning_after_an_interrupted_cluster_run_redoes_only_what_is_missing(tmp_path, client):
    images = _images(24, size=48)
    src = _write(tmp_path / "in", images)
    out, seen = tmp_path / "out", []

    def interrupt_after_three(r):
        seen.append(r)
        if len(seen) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # as on the command line: the cluster stops before this returns
        batch.compress_tree(src, out, codec="avif", recursive=True, cluster="local:2", on_result=interrupt_after_three)
    written = _files(out)
    time.sleep(1)
    assert _files(out) == written  # the workers are stopped: nothing more appears
    assert 3 <= len(written) < len(images)
    assert not [n for n in written if Path(n).name.startswith(".")]  # no temporary file left
    before = {n: (out / n).stat().st_mtime_ns for n in written}
    again = batch.compress_tree(src, out, codec="avif", recursive=True, cluster=client)
    assert len(again.skipped) == len(written) and len(again.done) == len(images) - len(written)
    assert {n: (out / n).stat().st_mtime_ns for n in written} == before  # finished outputs untouched
    batch.compress_tree(src, tmp_path / "serial", codec="avif", recursive=True)
    assert _files(out) == _files(tmp_path / "serial")


def test_a_worker_killed_mid_run_loses_no_image_and_every_output_appears_once(tmp_path, client):
    images = _images(32, size=64)
    src = _write(tmp_path / "in", images)
    killed = []

    def kill_a_busy_worker(r):
        if killed:
            return
        busy = [w for w, keys in client.processing().items() if keys]
        if busy:
            pid = client.run(os.getpid, workers=[busy[0]])[busy[0]]
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    s = batch.compress_tree(src, tmp_path / "out", codec="avif", recursive=True, cluster=client,
                            on_result=kill_a_busy_worker)
    assert killed, "no worker was busy after the first result: the test did not kill one mid-run"
    assert s.ok and len(s.done) == len(images) and len({r.output for r in s.done}) == len(images)
    batch.compress_tree(src, tmp_path / "serial", codec="avif", recursive=True)
    assert _files(tmp_path / "out") == _files(tmp_path / "serial")  # every output once, whole, no .part left
