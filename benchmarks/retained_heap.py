"""What heap.retained_heap saves a refining encoder, or training: run from the repository root as

    .venv/bin/python benchmarks/retained_heap.py [--codec hyperprior-ctx-sga] [--image kodim07]
        [--q 3] [--runs 2]
    .venv/bin/python benchmarks/retained_heap.py --train 150 [--threads 2] [--data DIR]

For each mode, a fresh interpreter does the work: ``retained`` as the package runs it, ``free``
with the retained heap replaced by a no-op, so glibc gives the freed activations back to the
kernel and every step faults them in again. Each mode needs its own process: how much a heap
reuses depends on what it held before, so modes run one after the other in one process would
measure each other's leftovers.

Without ``--train``: the codec encodes the image (a Kodak name, or a path) RUNS times on one
core; printed per encode are its wall seconds, user and kernel CPU seconds, minor page faults,
the process's peak memory and the start of the file's sha256 (the modes must write the same
bytes; the script checks it). With ``--train STEPS``: ``mlcompress train hyperprior-ctx`` from
the shipped q3 weights (with a 24-channel Refiner, lambda 0.0067, batch 8 of 128-px crops from
DIR, the BSDS training photos by default) for STEPS steps on THREADS threads; printed are the
seconds per step between the first and the last logged step (every 50), then the same columns
for the whole run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

COMMON = """
import contextlib, hashlib, json, resource, sys, tempfile, time
def usage(r0, r1, wall, **extra):
    print(json.dumps({"wall": wall, "user": r1.ru_utime - r0.ru_utime, "sys": r1.ru_stime - r0.ru_stime,
                      "faults": r1.ru_minflt - r0.ru_minflt, "peak_mb": r1.ru_maxrss / 1024, **extra}), flush=True)
"""

ENCODE = COMMON + """
from mlcompress import registry
from mlcompress.data import kodak_dir
from mlcompress.image import read_image
from mlcompress.nn import refine
from mlcompress.threads import one_core
codec_name, image, q, runs, mode = sys.argv[1:6]
if mode == "free":
    refine.retained_heap = contextlib.nullcontext
path = image if "/" in image else str(kodak_dir() / f"{image}.png")
img, codec = read_image(path), registry.get(codec_name)
for _ in range(int(runs)):
    r0, t = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    with one_core():
        data = codec.encode(img, float(q))
    usage(r0, resource.getrusage(resource.RUSAGE_SELF), time.perf_counter() - t,
          sha=hashlib.sha256(data).hexdigest()[:16])
"""

TRAIN = COMMON + """
from mlcompress.train import loop
from mlcompress.weights import WEIGHTS_DIR
data, steps, threads, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
if mode == "free":
    loop.retained_heap = contextlib.nullcontext
cfg = loop.TrainConfig(model="hyperprior-ctx", data=data, lmbda=0.0067, steps=steps,
                       out=tempfile.mkdtemp() + "/ck.pt", refine=24, threads=threads, eval_every=0,
                       progress=False, checkpoint_minutes=1e9, init=str(WEIGHTS_DIR / "hyperprior-ctx-q3.safetensors"))
stamps = []
r0, t = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
loop.train(cfg, log=lambda line, *a, **k: stamps.append(time.perf_counter()) if line.startswith("step ") else None)
step_s = (stamps[-1] - stamps[0]) / (50 * (len(stamps) - 1)) if len(stamps) > 1 else float("nan")
usage(r0, resource.getrusage(resource.RUSAGE_SELF), time.perf_counter() - t, step_s=step_s)
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--codec", default="hyperprior-ctx-sga")
    ap.add_argument("--image", default="kodim07", help="a Kodak name, or a path")
    ap.add_argument("--q", default="3")
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--train", type=int, metavar="STEPS", help="time training steps instead (at least 100)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data", help="training photos (default: the shared BSDS training set)")
    a = ap.parse_args()
    if a.train is not None:
        from mlcompress.data import shared_dir

        data = a.data or str(shared_dir() / "data" / "train")
        print(f"mlcompress train hyperprior-ctx, {a.train} steps on {a.threads} threads, a fresh process per mode\n")
        print("| mode | s per step | wall s | user s | kernel s | page faults (k) | peak MB |\n|---|---|---|---|---|---|---|")
    else:
        print(f"{a.codec} -q {a.q} on {a.image}, one core, a fresh process per mode\n")
        print("| mode | wall s | user s | kernel s | page faults (k) | peak MB | bytes sha256 |\n|---|---|---|---|---|---|---|")
    shas = set()
    for mode in ("retained", "free"):
        if a.train is not None:
            cmd = [sys.executable, "-c", TRAIN, data, str(a.train), str(a.threads), mode]
        else:
            cmd = [sys.executable, "-c", ENCODE, a.codec, a.image, a.q, str(a.runs), mode]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode:
            raise SystemExit(f"retained_heap: the {mode} run failed: {(out.stderr.strip().splitlines() or ['?'])[-1]}")
        for line in out.stdout.splitlines():
            r = json.loads(line)
            cols = f"{r['wall']:.2f} | {r['user']:.2f} | {r['sys']:.2f} | {r['faults'] / 1e3:.0f} | {r['peak_mb']:.0f}"
            if a.train is not None:
                print(f"| {mode} | {r['step_s']:.3f} | {cols} |", flush=True)
            else:
                shas.add(r["sha"])
                print(f"| {mode} | {cols} | {r['sha']} |", flush=True)
    if len(shas) > 1:
        raise SystemExit("retained_heap: the modes wrote different bytes")


if __name__ == "__main__":
    main()
