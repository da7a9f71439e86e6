"""Stopping cleanly: SIGTERM taken like Ctrl-C, worker processes that stop with their parent, and
torch's grad mode as it was.

A shell's background jobs ignore SIGINT, and ``kill``, ``timeout`` and job schedulers send
SIGTERM, whose default action ends the process on the spot: no checkpoint, no message, and the
workers of a process pool left running on their own until they finish what they were given (a
refining encoder can be minutes into one image). Inside :func:`sigterm_as_interrupt` SIGTERM
raises KeyboardInterrupt instead, so the same cleanup runs as for Ctrl-C, and
:func:`stop_workers` ends a pool's workers at once rather than after their current task.
"""

from __future__ import annotations

import time
from contextlib import contextmanager


@contextmanager
def sigterm_as_interrupt():
    """Within the block, SIGTERM raises KeyboardInterrupt in the main thread; the previous handler
    comes back after it. Elsewhere than in the main thread (where Python cannot set handlers) the
    block runs unchanged."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


@contextmanager
def grad_mode_restored():
    """Within the block, anything; after it, however it ends, torch's grad mode is as before. An
    interrupt (Ctrl-C, or SIGTERM above) can land inside torch's own switches of that mode (an
    optimizer's step, gradient clipping) between the switch and its restore, which would leave
    gradients off for whatever the process runs next."""
    import torch

    mode = torch.is_grad_enabled()
    try:
        yield
    finally:
        torch.set_grad_enabled(mode)


def stop_workers(pool) -> None:
    """Cancel a ProcessPoolExecutor's queued work and end its worker processes now: SIGTERM, then
    SIGKILL for any still alive after a few seconds."""
    terminate = getattr(pool, "terminate_workers", None)  # Python 3.14+
    if terminate is not None:
        terminate()
        return
    procs = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in procs:
        if proc.is_alive():
            proc.terminate()
    deadline = time.monotonic() + 5
    for proc in procs:
        proc.join(max(0.0, deadline - time.monotonic()))
        if proc.is_alive():
            proc.kill()
            proc.join()


def worker_default_sigterm() -> None:
    """In a worker: SIGTERM ends it at once. A forked worker inherits its parent's handler, which
    would turn SIGTERM into an exception that the pool hands back as the task's result before the
    worker takes the next one."""
    import signal

    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _start_worker(initializer, initargs: tuple) -> None:
    worker_default_sigterm()
    if initializer is not None:
        initializer(*initargs)


@contextmanager
def worker_pool(max_workers: int, mp_context=None, initializer=None, initargs: tuple = ()):
    """A ProcessPoolExecutor whose workers do not outlive the block: SIGTERM interrupts it like
    Ctrl-C, and on any exception (Ctrl-C, SIGTERM, a failed task) the queued work is cancelled and
    the workers end at once (:func:`stop_workers`)."""
    from concurrent.futures import ProcessPoolExecutor

    with sigterm_as_interrupt(), ProcessPoolExecutor(max_workers=max_workers, mp_context=mp_context,
                                                     initializer=_start_worker,
                                                     initargs=(initializer, initargs)) as pool:
        try:
            yield pool
        except BaseException:
            stop_workers(pool)
            raise
