"""What heap.retained_heap saves a refining encoder: run from the repository root as

    .venv/bin/python benchmarks/refine_heap.py [--codec hyperprior-ctx-sga] [--image kodim07]
        [--q 3] [--runs 2]

For each mode, a fresh interpreter encodes the image (Kodak by default, or a path) with the
codec, RUNS times on one core, and prints per encode its wall seconds, user and kernel CPU
seconds, minor page faults and the process's peak memory: ``retained`` as the codec runs,
``free`` with nn.refine's retained heap replaced by a no-op, so glibc gives the freed
activations back to the kernel and every step faults them in again. Each mode needs its own
process: how much a heap reuses depends on what it held before, so modes run one after the
other in one process would measure each other's leftovers. The two encodes must give the same
bytes; the script checks it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = """
import contextlib, hashlib, json, resource, sys, time
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
    wall, r1 = time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"wall": wall, "user": r1.ru_utime - r0.ru_utime, "sys": r1.ru_stime - r0.ru_stime,
                      "faults": r1.ru_minflt - r0.ru_minflt, "peak_mb": r1.ru_maxrss / 1024,
                      "sha": hashlib.sha256(data).hexdigest()[:16]}), flush=True)
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--codec", default="hyperprior-ctx-sga")
    ap.add_argument("--image", default="kodim07", help="a Kodak name, or a path")
    ap.add_argument("--q", default="3")
    ap.add_argument("--runs", type=int, default=2)
    a = ap.parse_args()
    print(f"{a.codec} -q {a.q} on {a.image}, one core, a fresh process per mode\n")
    print("| mode | wall s | user s | kernel s | page faults (k) | peak MB | bytes sha256 |\n|---|---|---|---|---|---|---|")
    shas = set()
    for mode in ("retained", "free"):
        out = subprocess.run([sys.executable, "-c", CHILD, a.codec, a.image, a.q, str(a.runs), mode],
                             capture_output=True, text=True)
        if out.returncode:
            raise SystemExit(f"refine_heap: the {mode} run failed: {out.stderr.strip().splitlines()[-1]}")
        for line in out.stdout.splitlines():
            r = json.loads(line)
            shas.add(r["sha"])
            print(f"| {mode} | {r['wall']:.2f} | {r['user']:.2f} | {r['sys']:.2f} | {r['faults'] / 1e3:.0f} | "
                  f"{r['peak_mb']:.0f} | {r['sha']} |", flush=True)
    if len(shas) != 1:
        raise SystemExit("refine_heap: the modes wrote different bytes")


if __name__ == "__main__":
    main()
