"""How far bfloat16 autocast (train.accel.bf16_transforms) moves a training step: run from the
repository root as

    nice -n 19 .venv/bin/python benchmarks/bf16_gradients.py [WEIGHTS] [TRAIN_DIR]

One step's loss and gradients of the given weights (default the shipped hyperprior-ctx-q3) on
four 128-px training crops, in float32 and with train.accel's autocast, under the same
quantisation noise; and, for scale, float32 under another noise draw. Prints the loss of each
and, per g_a/g_s tensor, the cosine between gradients (1: the same direction). One CPU thread;
about 30 s.
"""

from __future__ import annotations

import copy
import sys

import numpy as np
import torch

from mlcompress.data import shared_dir
from mlcompress.train.accel import bf16_transforms
from mlcompress.train.data import CropSampler
from mlcompress.train.loop import rd_loss, to_tensor
from mlcompress.weights import WEIGHTS_DIR, load_weights


def step(model, x, lmbda, seed, bf16):
    m = copy.deepcopy(model)
    if bf16:
        bf16_transforms(m, "cpu")
    torch.manual_seed(seed)
    res = rd_loss(m(x), x, lmbda)
    res["loss"].backward()
    return float(res["loss"].detach()), {n: p.grad for n, p in m.named_parameters() if p.grad is not None}


def main() -> None:
    torch.set_num_threads(1)
    path = sys.argv[1] if len(sys.argv) > 1 else WEIGHTS_DIR / "hyperprior-ctx-q3.safetensors"
    data = sys.argv[2] if len(sys.argv) > 2 else shared_dir() / "data" / "train"
    model, meta, _ = load_weights(path)
    model = model.to(memory_format=torch.channels_last).train().requires_grad_(True)
    x = to_tensor(CropSampler(data, 128).batch(np.random.default_rng(0), 4))
    lmbda = float(meta["lambda"])
    l32, g32 = step(model, x, lmbda, 1, False)
    l16, g16 = step(model, x, lmbda, 1, True)
    l32b, g32b = step(model, x, lmbda, 2, False)
    print(f"loss float32 {l32:.5f}, bf16 {l16:.5f} ({(l16 - l32) / l32 * 100:+.3f} %), float32 other noise {l32b:.5f}")
    print("| tensor | cos(float32, bf16), same noise | cos(float32, float32), other noise |\n|---|---|---|")

    def cos(a, b):
        return float(torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0))

    rows = [(cos(g32[k], g16[k]), cos(g32[k], g32b[k]), k) for k in g32 if k.startswith(("g_a.", "g_s."))]
    for c16, cnoise, k in sorted(rows):
        print(f"| {k} | {c16:.4f} | {cnoise:.4f} |")


if __name__ == "__main__":
    main()
