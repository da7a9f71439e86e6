"""How much of the refining encoder's gain (nn.refine, SGA) fewer steps keep, and at what time:
run from the repository root as

    nice -n 19 .venv/bin/python benchmarks/refine_speed.py [--arch hyperprior-ctx] [--q 3]
        [--data DIR] [--images kodim01,kodim07] [--variants 100:0.04,45:0.06:bf16:tau_max=0.3]

For each image (DIR/NAME.*, Kodak by default), the shipped weights of ARCH at quality Q code it
with the plain encoder (0 steps) and with refine() for each STEPS:LR[:OPTION...] variant, through
the Refiner as the codec does. Options: r1 fits before the Refiner (refinement revision 1, whose
steps cost about half), bf16 runs the steps under bfloat16 autocast, tau_max=T starts the
annealing at temperature T (codecs.learned.REFINE_REVISIONS lists the codecs' recipes; revision
4 is 45:0.06:bf16:tau_max=0.3). Choose recipes on training photos
(``--data ../shared/data/train --images 10081,160067,231015,365025``), not on Kodak. Printed per
image and variant: CPU seconds of the refinement (one thread, time.process_time, the kernel's
time for page faults included; benchmarks/retained_heap.py measures those) and its minor page
faults in thousands, bytes of the
entropy-coded streams (the post-filter block, the same kind for all, is left out), PSNR of the
decoded uint8 image, and the real rate-distortion cost J = lambda * MSE(0..255) + bpp that
refine() lowers; "kept" is (J_plain - J_variant) / (J_plain - J_first variant), so with the
codec's recipe first it is the share of its gain a variant keeps; the last table gives each
variant's mean over the images.
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import numpy as np
import torch

from mlcompress.codecs.learned import LAMBDAS
from mlcompress.data import kodak_dir
from mlcompress.image import read_image
from mlcompress.nn.refine import refine
from mlcompress.weights import WEIGHTS_DIR, load_weights


def measure(model, x, img, lmbda, steps, lr, **options):
    faults, t = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.process_time()
    lat = refine(model, x, lmbda, steps, lr=lr, **options) if steps else model.latents(x)
    cpu = time.process_time() - t
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    enc = model.compress_latents(lat)
    nbytes = sum(len(s) for s in enc["strings"])
    h, w = img.shape[:2]
    dec = model.decompress_uint8(enc["strings"], enc["shape"])[:h, :w]
    mse = float(np.mean((dec.astype(np.float64) - img) ** 2))
    bpp = 8 * nbytes / (h * w)
    return {"cpu": cpu, "faults": faults, "bytes": nbytes, "psnr": 10 * np.log10(255**2 / mse), "J": lmbda * mse + bpp}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", default="hyperprior-ctx")
    ap.add_argument("--q", type=int, default=3)
    ap.add_argument("--data", help="folder of the images (default: Kodak)")
    ap.add_argument("--images", default="kodim01,kodim07", help="names in it, without the extension")
    ap.add_argument("--variants", default="100:0.04,45:0.06:bf16:tau_max=0.3")
    a = ap.parse_args()
    torch.set_num_threads(1)
    model = load_weights(WEIGHTS_DIR / f"{a.arch}-q{a.q}.safetensors")[0]
    lmbda = LAMBDAS[a.q - 1]
    variants = [(v, *parse(v)) for v in a.variants.split(",")]
    folder = Path(a.data) if a.data else kodak_dir()
    print(f"{a.arch}-q{a.q}, lambda {lmbda}\n")
    print("| image | steps:lr | CPU s | faults (k) | bytes | PSNR | J | kept |\n|---|---|---|---|---|---|---|---|")
    kept_by = {v: [] for v, *_ in variants}
    for name in a.images.split(","):
        found = sorted(folder.glob(f"{name}.*"))
        if not found:
            raise SystemExit(f"refine_speed: no image {name}.* in {folder}")
        img = read_image(found[0])
        m = model.multiple
        pad = np.pad(img, ((0, -img.shape[0] % m), (0, -img.shape[1] % m), (0, 0)), mode="edge")
        x = torch.from_numpy(np.ascontiguousarray(pad)).permute(2, 0, 1)[None].float().div(255)
        base = measure(model, x, img, lmbda, 0, 0)
        print(f"| {name} | plain | {base['cpu']:.1f} | {base['faults'] / 1e3:.0f} | {base['bytes']} | {base['psnr']:.3f} | {base['J']:.5f} | 0 |",
              flush=True)
        ref = None
        for v, steps, lr, options in variants:
            r = measure(model, x, img, lmbda, steps, lr, **options)
            ref = ref if ref is not None else r["J"]
            kept = (base["J"] - r["J"]) / (base["J"] - ref) if base["J"] != ref else float("nan")
            kept_by[v].append(kept)
            print(f"| {name} | {v} | {r['cpu']:.1f} | {r['faults'] / 1e3:.0f} | {r['bytes']} | {r['psnr']:.3f} | {r['J']:.5f} | {kept:.3f} |",
                  flush=True)
    print("\n| steps:lr | mean kept |\n|---|---|")
    for v, ks in kept_by.items():
        print(f"| {v} | {np.mean(ks):.3f} |")


def parse(variant: str) -> tuple:
    """STEPS:LR[:r1][:bf16][:tau_max=T] -> (steps, lr, refine()'s keyword arguments)."""
    steps, lr, *opts = variant.split(":")
    options = {}
    for o in opts:
        if o == "r1":
            options["through_refiner"] = False
        elif o == "bf16":
            options["bf16"] = True
        elif o.startswith("tau_max="):
            options["tau_max"] = float(o.split("=", 1)[1])
        else:
            raise SystemExit(f"refine_speed: unknown option {o!r} in {variant!r}")
    return int(steps), float(lr), options


if __name__ == "__main__":
    main()
