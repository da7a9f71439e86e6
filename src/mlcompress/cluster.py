"""The folder commands and the benchmark on a Dask cluster: ``--cluster ADDRESS``.

ADDRESS is a Dask scheduler (``tcp://HOST:8786``; ``HOST:8786`` means tcp), or ``local`` /
``local:N``: a LocalCluster of N worker processes (default: one per core) on 127.0.0.1 only,
started for the command and stopped after it. dask is imported here only, and only when a
command is given ``--cluster`` (the ``cluster`` extra: ``pip install 'mlcompress[cluster]'``).

:func:`run` is the engine. batch.py and bench/runner.py hand it their own per-file and per-cell
functions, so a cluster run does exactly the work of a serial one and gives the same bytes.

- Work goes out in partitions (several items in one task) of about ``PARTITION_SECONDS`` of
  work, sized from the time per item measured so far and never more than a worker's share of
  what is left, so the scheduler's cost per task is paid once per partition and the last tasks
  still balance. At most two partitions per worker thread are in flight: a million files never
  sit in the scheduler's (or the client's) memory as tasks at once.
- Workers are long-lived processes, and module-level caches last across their tasks: each
  learned model's weights load once per worker (codecs.learned.load_model), not once per image.
- A worker that dies loses nothing: the scheduler runs its tasks again on another worker. A
  partition that keeps killing workers (dask's KilledWorker) is split and its items run one by
  one; an item that still fails becomes the caller's ``lost(item, why)`` result and the run goes
  on.
- Results come back to the client, which alone records them (bench's cells.jsonl has one
  writer). Outputs that workers write themselves (batch) are atomic, so a run stopped by Ctrl-C
  or a lost scheduler leaves only whole files, and running it again does only what is missing.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections import deque
from contextlib import contextmanager
from typing import Callable, Iterable, Iterator

from .errors import Error, UsageError

#: seconds of work a partition aims at, once the time per item is known
PARTITION_SECONDS = 1.0
#: most items in one partition
MAX_PARTITION = 64
#: how long to try to reach a scheduler before giving up
CONNECT_TIMEOUT_S = 5
#: how long to wait for the first worker of a scheduler that has none
WORKERS_TIMEOUT_S = 60
LOCALHOST = "127.0.0.1"


class ClusterError(Error):
    """The cluster could not carry on (the scheduler was lost); what is done is kept."""


def check_jobs(cluster, jobs: int) -> None:
    """UsageError for ``--jobs`` beside ``--cluster``: the cluster's workers are the jobs."""
    if cluster is not None and jobs != 1:
        raise UsageError("--jobs and --cluster do not go together: the cluster's workers are the jobs")


def _distributed():
    try:
        import distributed
    except ImportError:
        raise UsageError("--cluster needs Dask (pip install 'mlcompress[cluster]')") from None
    return distributed


def parse_address(address: str) -> tuple[str, int]:
    """("local", N) for ``local`` / ``local:N``; (scheduler URL, 0) for a scheduler address.
    UsageError for anything else."""
    text = address.strip()
    if text == "local":
        return "local", os.cpu_count() or 1
    if text.startswith("local:"):
        n = text[len("local:"):]
        if not n.isdigit() or int(n) < 1:
            raise UsageError(f"--cluster local:N needs a number of workers of at least 1, got {address!r}")
        return "local", int(n)
    url = text if "://" in text else f"tcp://{text}"
    host, _, port = url.partition("://")[2].rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(f"--cluster {address!r} is not a Dask scheduler address "
                         "(tcp://HOST:PORT, or local, or local:N)")
    return url, 0


@contextmanager
def connect(cluster) -> Iterator:
    """A distributed.Client for ``cluster``: an address (see :func:`parse_address`; a local
    cluster is started here and stopped on exit) or a Client the caller keeps open.

    UsageError, within CONNECT_TIMEOUT_S, when the scheduler cannot be reached.
    """
    if not isinstance(cluster, str):
        yield cluster
        return
    url, workers = parse_address(cluster)
    distributed = _distributed()
    with _quiet():
        if url == "local":
            with local_cluster(workers) as local, distributed.Client(local, set_as_default=False) as client:
                yield client
        else:
            with _remote(distributed, url) as client:
                yield client


@contextmanager
def local_cluster(workers: int, processes: bool = True) -> Iterator:
    """A distributed.LocalCluster of ``workers`` single-threaded workers (processes, or threads
    of this process with ``processes=False``) whose scheduler, workers and HTTP endpoints listen
    on 127.0.0.1 only, at free ports; no dashboard, so no statistical profiler either (it samples
    every worker's stack every 10 ms for the dashboard). Stopped when the block ends.

    Workers keep glibc's own malloc trimming: Dask's default MALLOC_TRIM_THRESHOLD_=65536 hands
    freed memory back to the system at once, and the learned codecs, which allocate and free
    large tensors all the time, then spent 50 % more CPU per image (page faults). The variables
    Dask sets in this process's environment for its workers (OMP_NUM_THREADS=1, ...) are put
    back as they were, so that later child processes of a caller do not inherit them.
    """
    distributed = _distributed()
    import dask

    quiet_workers = {"distributed.worker.profile.enabled": False,
                     "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}
    keys = list(dask.config.get("distributed.nanny.pre-spawn-environ"))
    saved = {k: os.environ.get(k) for k in keys}
    try:
        with dask.config.set(quiet_workers):  # read as the workers start
            local = distributed.LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=processes, protocol="tcp://",
                host=LOCALHOST, scheduler_port=0, dashboard_address=None,
                scheduler_kwargs={"dashboard_address": f"{LOCALHOST}:0"}, silence_logs=logging.CRITICAL)
        _put_back(saved)
        with local:
            yield local
    finally:
        _put_back(saved)


def _put_back(saved: dict) -> None:
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@contextmanager
def _quiet():
    """dask's own log records off (its tracebacks when a scheduler goes away): the command reports
    what happened in one line."""
    handlers = logging.getLogger("distributed").handlers  # dask's config gives it its own handler
    before = [h.level for h in handlers]
    for h in handlers:
        h.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for h, level in zip(handlers, before):
            h.setLevel(level)


@contextmanager
def _remote(distributed, url: str) -> Iterator:
    try:
        client = distributed.Client(url, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise UsageError(f"cannot reach the Dask scheduler at {url}: {exc}") from None
    with client:
        if not client.scheduler_info().get("workers"):
            try:
                client.wait_for_workers(1, timeout=WORKERS_TIMEOUT_S)
            except TimeoutError:
                raise UsageError(f"the Dask scheduler at {url} has no workers after {WORKERS_TIMEOUT_S} s "
                                 f"(start them with `dask worker {url}`)") from None
        yield client


def _require_this_process(client) -> None:
    """UsageError unless every worker runs in this process (an in-process cluster)."""
    if any(pid != os.getpid() for pid in client.run(os.getpid).values()):
        raise UsageError("memory:// lives in this process only and the cluster's workers run in others: "
                         "use storage every worker sees (a shared folder, file://, s3://, ...)")


# ---------------------------------------------------------------- on a worker

_READY: set = set()


def _partition(fn: Callable, items: list[tuple], init: Callable | None, init_args: tuple) -> tuple[list, float]:
    """On a worker: ``init(*init_args)`` once per process, then fn(*item) for each item.
    Returns (results, seconds spent on the items)."""
    if init is not None and (init, init_args) not in _READY:
        init(*init_args)
        _READY.add((init, init_args))
    t0 = time.perf_counter()
    results = [fn(*item) for item in items]
    return results, time.perf_counter() - t0


# ---------------------------------------------------------------- on the client


def run(cluster, fn: Callable, items: Iterable[tuple], lost: Callable[[tuple, str], object],
        init: Callable | None = None, init_args: tuple = (), this_process_only: bool = False) -> Iterator:
    """fn(*item) for every item, computed on ``cluster`` (an address or a distributed.Client),
    yielded in the order partitions complete (a partition's results in item order).

    ``fn``, ``init`` and the items must pickle (module-level functions, plain data). ``init``
    runs once per worker process before its first item (thread limits, the pixel limit).
    ``lost(item, why)`` is yielded for an item the cluster could not compute (its partition kept
    killing workers). ``this_process_only``: the items name storage that only this process sees
    (memory://), so the workers must run in it. Stopping early (Ctrl-C, closing the generator)
    cancels what is queued. ClusterError when the scheduler is lost.
    """
    with connect(cluster) as client:
        if this_process_only:
            _require_this_process(client)
        yield from _stream(client, fn, list(items), lost, init, init_args)


class _Slots:
    """The cluster's worker threads, asked of the scheduler at most every few seconds."""

    def __init__(self, client):
        self.client, self.value, self.at = client, 1, -math.inf

    def __call__(self) -> int:
        if time.monotonic() - self.at > 5:
            self.value = max(1, sum(self.client.nthreads().values()))
            self.at = time.monotonic()
        return self.value


def _stream(client, fn, items: list[tuple], lost, init, init_args) -> Iterator:
    from distributed import as_completed

    queue, alone = deque(items), deque()  # alone: items of a failed partition, retried one by one
    running: dict = {}  # future -> its items
    # seconds per item: it follows a faster partition at once and a slower one half-way, since a
    # worker's first items also pay for its imports and weights (a mean over the run would carry
    # that for long, and keep partitions small)
    per_item: float | None = None
    slots = _Slots(client)
    futures = as_completed(loop=client.loop)

    def submit() -> None:
        while len(running) < 2 * slots() and (queue or alone):
            if alone:
                chunk = [alone.popleft()]
            else:
                size = 1 if per_item is None else round(PARTITION_SECONDS / max(per_item, 1e-6))
                share = math.ceil(len(queue) / (2 * slots()))
                chunk = [queue.popleft() for _ in range(max(1, min(size, MAX_PARTITION, share)))]
            fut = client.submit(_partition, fn, chunk, init, init_args, pure=False,
                                key=f"mlcompress-{getattr(fn, '__name__', 'task')}-{os.urandom(8).hex()}")
            running[fut] = chunk
            futures.add(fut)

    try:
        submit()
        for fut in futures:
            chunk = running.pop(fut)
            if fut.status == "finished":
                results, seconds = fut.result()
                rate = seconds / len(chunk)
                per_item = rate if per_item is None else min(rate, (per_item + rate) / 2)
                submit()  # keep the workers fed while the caller records
                yield from results
            elif fut.status == "cancelled":
                raise ClusterError("lost the Dask scheduler; the finished outputs are kept: "
                                   "run the same command again to do the rest")
            elif len(chunk) > 1:
                alone.extend(chunk)
                submit()
            else:
                exc = fut.exception()
                submit()
                yield lost(chunk[0], f"the cluster could not compute it ({type(exc).__name__}: {exc})")
            fut.release()
    finally:
        if running:
            try:
                client.cancel(list(running))
            except Exception:  # noqa: BLE001 - the scheduler may be gone; nothing is left to stop then
                pass
