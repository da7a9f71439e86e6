"""Per-image latent refinement on the encoder side (no change to the file format or the decoder).

A trained encoder g_a gives latents that are good on average over the training set, not the
best ones for a given image. Starting from them, :func:`refine` runs ``steps`` Adam steps on the
latents themselves (y, and z for the hyperprior) to lower that image's own rate-distortion loss
``lambda * 255^2 * MSE + bpp`` under the fixed decoder and entropy model, then hands them to the
ordinary ``compress_latents``, which rounds and codes them. Rounding is made differentiable with
stochastic Gumbel annealing (SGA, Yang, Bamler & Mandt, "Improving inference for neural image
compression", NeurIPS 2020, https://arxiv.org/abs/2006.04240): each value is a random soft mix of
its floor and ceiling whose temperature falls towards hard rounding over the run, so the
optimiser sees the rounding it will get at the end.

The run is single-threaded and its noise comes from a seeded generator, so the same image gives
the same bytes on any machine thread count, like the plain encoder. With ``bf16`` the forward
passes run under bfloat16 autocast (the convolutions in bfloat16, the loss and the latents in
float32): a step takes about 0.4 s instead of 1.0 s on a Kodak image here, and the optimiser
reaches nearly the same latents (docs/CODECS.md, "Refinement revisions"). The steps run inside
:func:`mlcompress.heap.retained_heap`, so each reuses the memory the one before it freed instead of
faulting it in again from the kernel (about a sixth of a Kodak encode's time before).
"""

from __future__ import annotations

import copy
import math

import torch

from ..heap import retained_heap
from ..threads import single_torch_thread

#: the annealing temperature decays as exp(-DECAY * step / steps), capped at a start value
#: (TAU_MAX unless the caller gives another)
TAU_MAX, DECAY = 0.5, 3.0
EPS = 1e-5


def sga_round(v: torch.Tensor, tau: float, gen: torch.Generator) -> torch.Tensor:
    """A soft rounding of v: floor(v) + w, w in (0, 1) drawn from a two-way Gumbel-softmax whose
    logits, -atanh(distance to floor or ceiling) / tau, favour the nearer integer; as tau -> 0 it
    becomes round(v). Differentiable in v."""
    fl = torch.floor(v).detach()
    r = v - fl  # distance to the floor, in [0, 1)
    logit_floor = -torch.atanh(r.clamp(EPS, 1 - EPS)) / tau
    logit_ceil = -torch.atanh((1 - r).clamp(EPS, 1 - EPS)) / tau
    u = torch.rand((2, *v.shape), generator=gen).clamp_(EPS, 1 - EPS)
    g = -torch.log(-torch.log(u))  # Gumbel noise
    w = torch.sigmoid((logit_ceil + g[1]) - (logit_floor + g[0]))  # softmax weight of the ceiling
    return fl + w


def temperature(step: int, steps: int, tau_max: float = TAU_MAX) -> float:
    return min(tau_max, math.exp(-DECAY * step / max(steps, 1)))


def refine(model, x: torch.Tensor, lmbda: float, steps: int, lr: float = 0.04, seed: int = 0,
           through_refiner: bool = True, tau_max: float = TAU_MAX, bf16: bool = False) -> tuple:
    """Latents of x (as ``model.latents(x)`` gives them) after ``steps`` SGA steps on
    ``lmbda * 255^2 * MSE + bits / pixels``; the learning rate falls linearly to 0. The MSE is
    that of the decoder's whole output, the model's Refiner included: a Refiner changes what the
    best latents are, and fitting them through it lowers the cost of Kodak crops by 1.6 % at q1
    and q3 (the Refiner's forward and backward passes make a step 1.5x slower on those crops;
    a Kodak image takes about 162 s instead of 88 in the benchmark). ``through_refiner=False``
    fits them to g_s's output before the Refiner instead (the cheaper objective of revision 1).
    ``tau_max`` is the annealing's start temperature; ``bf16`` runs the forward passes under
    bfloat16 autocast. The model's weights are not touched."""
    with single_torch_thread(), retained_heap():
        if steps <= 0:
            return model.latents(x)
        # a private copy in channels_last memory order (about 25 % faster here); the caller's
        # model, whose hyper-synthesis must match the decoder's bit for bit, is left as it is.
        # A context model's small 5x5 nets on the latent grid run faster in the default order
        work = copy.deepcopy(model).requires_grad_(False).to(memory_format=torch.channels_last)
        if hasattr(work, "ctx"):
            work.ctx.to(memory_format=torch.contiguous_format)
        if getattr(work, "refine", 0) and not through_refiner:
            work.g_s = work.g_s[:-1]
        x = x.contiguous(memory_format=torch.channels_last)
        lat = [t.clone().requires_grad_(True) for t in work.latents(x)]
        opt = torch.optim.Adam(lat, lr=lr)
        gen = torch.Generator().manual_seed(seed)
        pixels = x.shape[-2] * x.shape[-1]
        for i in range(steps):
            tau = temperature(i, steps, tau_max)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                x_hat, bits = work.soft_rd(lat, lambda v: sga_round(v, tau, gen))
            loss = lmbda * 255**2 * torch.mean((x_hat.float() - x) ** 2) + bits.float() / pixels
            opt.zero_grad(set_to_none=True)
            loss.backward()
            for group in opt.param_groups:
                group["lr"] = lr * (1 - i / steps)
            opt.step()
        return tuple(t.detach().contiguous() for t in lat)
