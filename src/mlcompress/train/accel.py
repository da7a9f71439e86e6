"""bfloat16 autocast for the training step, where it leaves the gradients as they were (docs/GPU.md).

:func:`bf16_transforms` runs the inner layers of g_a and g_s under bfloat16 autocast: from the
layer after each transform's first convolution up to its last convolution, exclusive (in g_a:
GDN, conv, GDN, conv, GDN; in g_s likewise with IGDN). Those convolutions at 1/2 .. 1/8 of the
resolution with N x N channels are nearly all of a step's arithmetic. What stays float32:

- the first convolution of each: its input (pixels k/255 into g_a, latents up to about +-100
  into g_s) is not exact in bfloat16 (8 significant bits: half a grey level near white, a
  step of 0.5 at 64, as coarse as the quantiser);
- the last convolution of each, and g_s's Refiner: y and x_hat keep float32's precision;
- h_a, h_s, the context models and the entropy models (likelihoods, log2): they run at 1/16
  and 1/64 of the resolution and carry the rate.

Measured on the shipped hyperprior-ctx-q3 weights, four 128-px training crops, the same noise
(``benchmarks/bf16_gradients.py``): the loss moves by 0.03 % and every g_a/g_s tensor's
gradient keeps a cosine of 0.96 or more with the float32 one. Autocasting the first
convolution too gave cosines down to 0.56 (g_a.0.weight), below the 0.85 between two noise
draws in float32: that is why the first layer stays out.

It replaces ``forward`` on the two module instances only: the state dict, and so every
checkpoint and export, is unchanged; in eval mode (the fixed-crop losses) everything runs in
float32, and the codecs never see the wrapper.
"""

from __future__ import annotations

from torch import nn


def _convs(seq: nn.Sequential) -> list[int]:
    """Indices of the top-level convolutions (plain or transposed) in ``seq``."""
    return [i for i, m in enumerate(seq) if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]


def bf16_transforms(model, device_type: str) -> None:
    """Run g_a's and g_s's layers between their first and last convolution under bfloat16
    autocast on ``device_type`` ("cuda" or "cpu") while the model is in training mode; the
    region's output is cast back to float32 (see the module docstring)."""
    import torch

    for seq in (model.g_a, model.g_s):
        convs = _convs(seq)
        layers = list(seq)
        head, body, tail = layers[: convs[0] + 1], layers[convs[0] + 1 : convs[-1]], layers[convs[-1] :]

        def forward(x, seq=seq, head=head, body=body, tail=tail):
            x = x.contiguous(memory_format=torch.channels_last)
            for layer in head:
                x = layer(x)
            with torch.autocast(device_type, dtype=torch.bfloat16, enabled=seq.training):
                for layer in body:
                    x = layer(x)
            x = x.float()
            for layer in tail:
                x = layer(x)
            return x

        seq.forward = forward
