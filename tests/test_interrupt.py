"""Stopping cleanly: SIGTERM is taken like Ctrl-C, and no worker process outlives its command."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mlcompress.interrupt import grad_mode_restored, sigterm_as_interrupt, stop_workers, worker_pool

needs_proc = pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads child processes from /proc (Linux)")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def _descendants(pid: int) -> set[int]:
    out = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids = [int(k) for k in (task / "children").read_text().split()]
        except OSError:
            continue
        for k in kids:
            out |= {k} | _descendants(k)
    return out


def _sleep_and_say(folder: str) -> None:
    Path(folder, str(os.getpid())).touch()
    time.sleep(120)


def test_sigterm_inside_the_block_raises_keyboard_interrupt_and_the_old_handler_comes_back():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt):
        with sigterm_as_interrupt():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
    assert signal.getsignal(signal.SIGTERM) is before


def test_torch_gradients_are_on_again_after_an_interrupt_that_landed_while_torch_had_them_off():
    torch = pytest.importorskip("torch")
    with pytest.raises(KeyboardInterrupt), grad_mode_restored():
        torch.set_grad_enabled(False)  # as inside an optimizer's step, when the signal comes
        raise KeyboardInterrupt
    assert torch.is_grad_enabled()


@needs_proc
@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_stopped_workers_end_at_once_instead_of_finishing_their_task(method, tmp_path):
    ctx = multiprocessing.get_context(method)
    with worker_pool(2, mp_context=ctx) as pool:  # forked workers inherit its SIGTERM handler
        for _ in range(4):
            pool.submit(_sleep_and_say, str(tmp_path))
        deadline = time.monotonic() + 60
        while len(list(tmp_path.iterdir())) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        pids = [int(p.name) for p in tmp_path.iterdir()]
        assert len(pids) == 2
        stop_workers(pool)
    assert not [pid for pid in pids if _alive(pid)]
    assert len(list(tmp_path.iterdir())) == 2  # the queued tasks never started


def _photos(folder: Path, n: int) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    folder.mkdir()
    yy, xx = np.mgrid[0:256, 0:256]
    for i in range(n):
        img = np.stack([xx + i * 9, yy * 0.9, (xx + yy) / 2], 2) + rng.normal(0, 12, (256, 256, 3))
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(folder / f"p{i}.png")


@needs_proc
@pytest.mark.parametrize("command", ["bench", "compress"])
def test_sigterm_stops_a_parallel_command_like_ctrl_c_and_leaves_no_worker_running(command, tmp_path):
    """`kill` or `timeout` on `bench --jobs 2` or `compress DIR --jobs 2` with a slow encoder: the
    command exits as interrupted, its workers end with it, and what it wrote is complete."""
    pytest.importorskip("torch")
    _photos(tmp_path / "in", 16)  # minutes of work, so it is still running when stopped
    out = tmp_path / "out"
    args = {"bench": ["bench", "--data", tmp_path / "in", "--out", out, "--codecs", "hyperprior-sga", "--jobs", "2"],
            "compress": ["compress", tmp_path / "in", "-o", out, "-c", "hyperprior-ctx-sga", "-q", "1", "--jobs", "2"]}
    exe = Path(sys.executable).with_name("mlcompress")
    proc = subprocess.Popen([exe, *args[command]], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    workers: set[int] = set()
    try:
        deadline = time.monotonic() + 120
        while len(workers) < 2 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
            workers = {pid for pid in _descendants(proc.pid) if _alive(pid)}
        time.sleep(3)  # the workers are importing or encoding
        workers |= {pid for pid in _descendants(proc.pid) if _alive(pid)}
        assert proc.poll() is None, "the command ended before it could be stopped"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130
        assert err.strip().splitlines()[-1] == "mlcompress: interrupted" and "Traceback" not in err
        deadline = time.monotonic() + 10
        while [pid for pid in workers if _alive(pid)] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [pid for pid in workers if _alive(pid)]
        assert not list(out.rglob("*.part"))
        if command == "compress":
            import mlcompress

            for f in out.glob("*.mlc"):
                assert mlcompress.decode(f.read_bytes()).shape == (256, 256, 3)
    finally:
        proc.kill()
        for pid in workers:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
