"""Measurements behind README's "More than one machine": run from the repository root as

    nice -n 19 .venv/bin/python benchmarks/cluster.py [--images 200] [--codecs jpeg,hyperprior-ctx] \\
        [--kills 10] [--data ../shared/data] > /tmp/cluster.md

A folder of N images (the 24 Kodak images, then the training photos, as links) is compressed by
each codec twice: with ``--jobs 2`` (batch.py's process pool) and on ``--cluster local:2`` (a Dask
LocalCluster of two worker processes on 127.0.0.1, cluster.py). Both runs start cold: the pool's
processes and the cluster's workers load codecs and weights inside the timed run; the cluster's
own start-up (scheduler and worker processes) is timed apart, since a cluster serves many runs.
The outputs of the two runs must be byte-identical.

Throughput is images per second of wall time; CPU seconds (all processes of the run: this one,
the pool's or the cluster's workers) tell the same story with less noise on a shared machine. The overhead per task is the wall time of 200
no-op tasks through cluster.run, one item per task, times the two workers, over 200. The learned
codec also reports how many models each worker holds after the run (one per quality level used:
weights loaded once per worker, not per image).

Then ``--kills`` runs of the first codec: each compresses the folder on the cluster and kills one
worker that is busy (SIGKILL, as the OOM killer would) when half the results are in; the script
counts the outputs that are missing, wrong, or left as temporary files afterwards.

Wall times on a shared machine include other load: compare the two runs of one codec, measured
back to back, rather than absolute numbers.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from mlcompress import batch, cluster
from mlcompress.image import IMAGE_EXTENSIONS


def _folder(data: Path, n: int, dest: Path) -> Path:
    """``n`` images: Kodak first, then the training photos, linked into ``dest``."""
    files = sorted((data / "kodak").iterdir()) + sorted((data / "train").iterdir())
    files = [f for f in files if f.suffix.lower() in IMAGE_EXTENSIONS][:n]
    if len(files) < n:
        sys.exit(f"only {len(files)} images under {data}/kodak and {data}/train")
    dest.mkdir(parents=True)
    for f in files:
        (dest / f"{f.parent.name}-{f.name}").symlink_to(f.resolve())
    return dest


def _files(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(root.iterdir())}


def _noop(i: int) -> int:
    return i


def _models_held() -> int:
    from mlcompress.codecs import learned

    return len(learned._cache)


def overhead_per_task_ms(client, tasks: int = 200) -> float:
    """Wall ms x workers per no-op task, each item its own task (partitions of one)."""
    old = cluster.MAX_PARTITION
    cluster.MAX_PARTITION = 1
    try:
        workers = len(client.scheduler_info()["workers"])
        t0 = time.perf_counter()
        n = sum(1 for _ in cluster.run(client, _noop, [(i,) for i in range(tasks)], lambda item, why: None))
        assert n == tasks
        return (time.perf_counter() - t0) * workers / tasks * 1000
    finally:
        cluster.MAX_PARTITION = old


def _cpu_self_and_children() -> float:
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def _cpu_of(pids) -> float:
    import psutil

    return sum(sum(psutil.Process(p).cpu_times()[:2]) for p in pids)


def throughput(src: Path, work: Path, codec: str, quality) -> dict:
    import distributed

    row = {"codec": codec}
    t0, c0 = time.perf_counter(), _cpu_self_and_children()
    s = batch.compress_tree(src, work / f"{codec}-jobs", codec=codec, quality=quality, jobs=2)
    row["jobs_s"] = time.perf_counter() - t0
    row["jobs_cpu"] = _cpu_self_and_children() - c0  # the pool's processes are reaped by now
    assert s.ok and len(s.done) == len(list(src.iterdir())), s.format()
    t0 = time.perf_counter()
    with cluster.local_cluster(2) as lc, distributed.Client(lc, set_as_default=False) as client:
        row["start_s"] = time.perf_counter() - t0
        pids = list(client.run(os.getpid).values())
        t1, c1, w1 = time.perf_counter(), _cpu_self_and_children(), _cpu_of(pids)
        with distributed.get_task_stream(client=client) as stream:
            s = batch.compress_tree(src, work / f"{codec}-cluster", codec=codec, quality=quality, cluster=client)
        row["cluster_s"] = time.perf_counter() - t1
        # this process (client, scheduler, nannies) and the two workers
        row["cluster_cpu"] = _cpu_self_and_children() - c1 + _cpu_of(pids) - w1
        assert s.ok and len(s.done) == len(list(src.iterdir())), s.format()
        row["tasks"] = len(stream.data)
        row["models_per_worker"] = sorted(client.run(_models_held).values())
        row["overhead_ms"] = overhead_per_task_ms(client)
    row["end_to_end_s"] = time.perf_counter() - t0
    row["same_bytes"] = _files(work / f"{codec}-jobs") == _files(work / f"{codec}-cluster")
    return row


def _wait_for_two(client, timeout: float = 300) -> int:
    """The number of workers once there are two, or after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        n = len(client.scheduler_info()["workers"])
        if n >= 2 or time.monotonic() > deadline:
            return n
        time.sleep(1)


def kill_runs(src: Path, work: Path, codec: str, runs: int) -> list[dict]:
    import distributed

    reference = _files(work / f"{codec}-jobs") if (work / f"{codec}-jobs").is_dir() else None
    n = len(list(src.iterdir()))
    rows = []
    with cluster.local_cluster(2) as lc, distributed.Client(lc, set_as_default=False) as client:
        for run in range(runs):
            back = _wait_for_two(client)  # the nanny restarts the one killed last time
            out = work / f"kill-{run}"
            killed: list[int] = []
            seen = [0]

            def kill_at_half(r):
                seen[0] += 1
                if killed or seen[0] < n // 2:
                    return
                busy = [w for w, keys in client.processing().items() if keys]
                if busy:
                    pid = client.run(os.getpid, workers=[busy[0]])[busy[0]]
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)

            t0 = time.perf_counter()
            s = batch.compress_tree(src, out, codec=codec, cluster=client, on_result=kill_at_half)
            files = _files(out)
            missing = n - len([k for k in files if not k.startswith(".")])
            rows.append({
                "run": run + 1, "workers": back, "killed": bool(killed), "seconds": time.perf_counter() - t0,
                "done": len(s.done), "failed": len(s.failed), "missing": missing,
                "temporaries": len([k for k in files if k.startswith(".")]),
                "same_bytes": None if reference is None else files == reference,
            })
            shutil.rmtree(out)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--codecs", default="jpeg,hyperprior-ctx")
    ap.add_argument("--kills", type=int, default=10)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mlcompress-cluster-bench-"))
    try:
        src = _folder(Path(args.data), args.images, work / "in")
        rows = [throughput(src, work, c, None) for c in args.codecs.split(",")]
        print(f"### --jobs 2 against --cluster local:2, {args.images} images "
              f"(Kodak, then training photos; {os.cpu_count()} cores, load average at the end "
              f"{os.getloadavg()[0]:.1f})\n")
        print("| codec | --jobs 2 s | cluster s | cluster / jobs throughput | CPU s jobs | CPU s cluster | tasks | "
              "overhead per task | cluster start s | end to end s | models per worker | same bytes |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")
        for r in rows:
            print(f"| {r['codec']} | {r['jobs_s']:.1f} | {r['cluster_s']:.1f} | {r['jobs_s'] / r['cluster_s']:.1%} | "
                  f"{r['jobs_cpu']:.1f} | {r['cluster_cpu']:.1f} | "
                  f"{r['tasks']} | {r['overhead_ms']:.1f} ms | {r['start_s']:.1f} | {r['end_to_end_s']:.1f} | "
                  f"{r['models_per_worker']} | {r['same_bytes']} |")
        print()
        if args.kills:
            codec = args.codecs.split(",")[0]
            kills = kill_runs(src, work, codec, args.kills)
            lost = sum(k["missing"] for k in kills)
            print(f"### One of two workers killed (SIGKILL) at half of each run: {codec}, {args.images} images\n")
            print("| run | workers at start | a busy worker killed | s | done | failed | missing | temporary files | "
                  "same bytes as --jobs 2 |")
            print("|---:|---:|---|---:|---:|---:|---:|---:|---|")
            for k in kills:
                print(f"| {k['run']} | {k['workers']} | {k['killed']} | {k['seconds']:.1f} | {k['done']} | {k['failed']} | "
                      f"{k['missing']} | {k['temporaries']} | {k['same_bytes']} |")
            print(f"\n{sum(k['killed'] for k in kills)} of {len(kills)} runs lost a worker mid-run; "
                  f"{lost} images lost in all, {sum(k['missing'] == 0 and k['failed'] == 0 for k in kills)} "
                  f"of {len(kills)} runs complete.")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
