"""How much of the refining encoder's gain (nn.refine, SGA) fewer steps keep, and at what time:
run from the repository root as

    nice -n 19 .venv/bin/python benchmarks/refine_speed.py [--arch hyperprior-ctx] [--q 3]
        [--images kodim01,kodim07] [--variants 100:0.04,30:0.04,30:0.08,15:0.1]

For each image, the shipped weights of ARCH at quality Q code it with the plain encoder (0 steps)
and with refine() for each STEPS:LR variant (through the Refiner, as the codec does; STEPS:LR:r1
fits before the Refiner, refinement revision 1, whose steps cost about half). Printed per
image and variant: CPU seconds of the refinement (one thread, time.process_time), bytes of the
entropy-coded streams (the post-filter block, the same kind for all, is left out), PSNR of the
decoded uint8 image, and the real rate-distortion cost J = lambda * MSE(0..255) + bpp that
refine() lowers; "kept" is (J_plain - J_variant) / (J_plain - J_first variant), so with the
codec's 100 steps first it is the share of today's gain a variant keeps. Kodak is for evaluation
only: nothing is fitted on it but each image's own latents, as the codec does.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from mlcompress.codecs.learned import LAMBDAS
from mlcompress.data import kodak_dir
from mlcompress.image import read_image
from mlcompress.nn.refine import refine
from mlcompress.weights import WEIGHTS_DIR, load_weights


def measure(model, x, img, lmbda, steps, lr, through_refiner=True):
    t = time.process_time()
    lat = refine(model, x, lmbda, steps, lr=lr, through_refiner=through_refiner) if steps else model.latents(x)
    cpu = time.process_time() - t
    enc = model.compress_latents(lat)
    nbytes = sum(len(s) for s in enc["strings"])
    h, w = img.shape[:2]
    dec = model.decompress_uint8(enc["strings"], enc["shape"])[:h, :w]
    mse = float(np.mean((dec.astype(np.float64) - img) ** 2))
    bpp = 8 * nbytes / (h * w)
    return {"cpu": cpu, "bytes": nbytes, "psnr": 10 * np.log10(255**2 / mse), "J": lmbda * mse + bpp}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", default="hyperprior-ctx")
    ap.add_argument("--q", type=int, default=3)
    ap.add_argument("--images", default="kodim01,kodim07")
    ap.add_argument("--variants", default="100:0.04,30:0.04,30:0.08,15:0.1")
    a = ap.parse_args()
    torch.set_num_threads(1)
    model = load_weights(WEIGHTS_DIR / f"{a.arch}-q{a.q}.safetensors")[0]
    lmbda = LAMBDAS[a.q - 1]
    variants = [v.split(":") for v in a.variants.split(",")]
    print(f"{a.arch}-q{a.q}, lambda {lmbda}\n")
    print("| image | steps:lr | CPU s | bytes | PSNR | J | kept |\n|---|---|---|---|---|---|---|")
    for name in a.images.split(","):
        img = read_image(kodak_dir() / f"{name}.png")
        m = model.multiple
        pad = np.pad(img, ((0, -img.shape[0] % m), (0, -img.shape[1] % m), (0, 0)), mode="edge")
        x = torch.from_numpy(np.ascontiguousarray(pad)).permute(2, 0, 1)[None].float().div(255)
        base = measure(model, x, img, lmbda, 0, 0)
        print(f"| {name} | plain | {base['cpu']:.1f} | {base['bytes']} | {base['psnr']:.3f} | {base['J']:.5f} | 0 |",
              flush=True)
        ref = None
        for steps, lr, *rev in variants:
            r = measure(model, x, img, lmbda, int(steps), float(lr), through_refiner=rev != ["r1"])
            ref = ref if ref is not None else r["J"]
            kept = (base["J"] - r["J"]) / (base["J"] - ref) if base["J"] != ref else float("nan")
            print(f"| {name} | {':'.join([steps, lr, *rev])} | {r['cpu']:.1f} | {r['bytes']} | {r['psnr']:.3f} | {r['J']:.5f} | "
                  f"{kept:.2f} |", flush=True)


if __name__ == "__main__":
    main()
