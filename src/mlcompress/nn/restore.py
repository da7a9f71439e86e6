"""The restoration network the ``+nn`` codecs run on a classical decoder's output (torch).

A DnCNN-style residual CNN that works at half resolution: the decoded RGB image is folded into
12 channels by a 2x2 pixel-unshuffle (so each output sample sees the full-resolution luma detail
around a 4:2:0 chroma sample, and chroma is rebuilt from luma), a constant plane holding the
base codec's quality (0..1) is appended, ``depth`` 3x3 convolutions of ``width`` channels with
ReLUs follow, and a pixel-shuffle turns the last 12 channels back into an RGB correction that is
added to the input::

    x (N,3,H,W) in 0..1 --unshuffle 2--> (N,12,H/2,W/2) ++ quality plane
        -> conv3x3(13->C) ReLU -> (depth-2) x [conv3x3(C->C) ReLU] -> conv3x3(C->12)
        --shuffle 2--> (N,3,H,W) + x

H and W must be even (``restore_image`` pads by edge replication). The receptive field is
``2 * depth + 1`` half-resolution samples, so tiles with a halo of ``halo()`` full-resolution
pixels give the same result as the whole image.

The convolutions may run in bfloat16 (:func:`for_inference` chooses it where the CPU has native
bfloat16 arithmetic, where it is about twice as fast): the unshuffle, the quality plane and the
residual addition stay float32, so only the correction carries bfloat16's 3 significant digits.
"""

from __future__ import annotations

import numpy as np

#: architecture of the shipped restoration networks (a weights file may record others)
WIDTH = 32
DEPTH = 7
#: tile edge (full-resolution pixels) for images larger than one tile: bounds memory on big photos
TILE = 768


def _torch():
    import torch

    return torch


#: the orientations of the image a network with ``views`` = n averages: the first n of these
#: (transposed first or not, then the dimensions flipped): the image as it is, mirrored left to
#: right, upside down, both, and the same four of the transposed image
ORIENTATIONS = [(False, ()), (False, (3,)), (False, (2,)), (False, (2, 3)),
                (True, ()), (True, (3,)), (True, (2,)), (True, (2, 3))]
VIEWS = range(1, len(ORIENTATIONS) + 1)


def build(width: int = WIDTH, depth: int = DEPTH, views: int = 1):
    """A fresh restoration network (float32, final layer zero so it starts as the identity);
    ``views`` is how many orientations :func:`restore_image` averages (docs/CODECS.md)."""
    if views not in VIEWS:
        raise ValueError(f"views must be 1..{len(ORIENTATIONS)}, got {views}")
    torch = _torch()
    nn = torch.nn

    class RestoreNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.width, self.depth, self.views = width, depth, views
            layers = [nn.Conv2d(13, width, 3, padding=1), nn.ReLU(inplace=True)]
            for _ in range(depth - 2):
                layers += [nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True)]
            layers.append(nn.Conv2d(width, 12, 3, padding=1))
            self.body = nn.Sequential(*layers)
            nn.init.zeros_(self.body[-1].weight)
            nn.init.zeros_(self.body[-1].bias)

        def forward(self, x, quality):
            """x: float (N,3,H,W) in 0..1, H and W even; quality: float (N,) in 0..1 -> same shape as x."""
            f = torch.nn.functional.pixel_unshuffle(x, 2)
            q = quality.to(f.dtype).view(-1, 1, 1, 1).expand(f.shape[0], 1, f.shape[2], f.shape[3])
            # the body in its own dtype (float32, or bfloat16 after for_inference), the sum in x's
            h = torch.cat([f, q], 1).to(self.body[0].weight.dtype).contiguous(memory_format=torch.channels_last)
            return x + torch.nn.functional.pixel_shuffle(self.body(h).to(x.dtype), 2)

    return RestoreNet()


def native_bf16() -> bool:
    """Whether this CPU does bfloat16 arithmetic in hardware (AVX512-BF16 or AMX); without it
    oneDNN emulates bfloat16 and float32 is the faster choice."""
    torch = _torch()
    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except AttributeError:  # a torch without these probes: stay with float32
        return False


def for_inference(model, bf16: bool | None = None):
    """``model`` ready to decode: eval mode, no gradients, channels-last, and its convolutions in
    bfloat16 when ``bf16`` (default: :func:`native_bf16`). The shipped networks' held-out gains
    move by 0.001 dB or less (docs/CODECS.md); the network's input and output stay float32."""
    torch = _torch()
    model = model.eval().requires_grad_(False).to(memory_format=torch.channels_last)
    if native_bf16() if bf16 is None else bf16:
        model.body.to(torch.bfloat16)
    return model


def grow(state: dict, width: int, depth: int | None = None) -> dict:
    """The state dict of a network of ``width`` channels and ``depth`` layers (default: the same
    depth) that computes exactly what the smaller network ``state`` computes (function-preserving
    growth, as nn/widen.py does for the hyperprior's latent).

    Wider: every old weight keeps its place, each new hidden channel reads the layer below with
    the fresh network's initial weights and feeds the layer above through zero weights, so it
    changes nothing until training gives it a use. Deeper: the new hidden layers go in before the
    output layer, each a 3x3 identity (a centre tap of 1 from its own channel, bias 0); what it
    reads is a ReLU's output, never negative, so its own ReLU passes it on unchanged."""
    torch = _torch()
    old = state["body.0.weight"].shape[0]
    convs = sorted({int(k.split(".")[1]) for k in state})
    depth = len(convs) if depth is None else depth
    if width < old:
        raise ValueError(f"cannot widen a {old}-channel network to {width} channels")
    if depth < len(convs):
        raise ValueError(f"cannot make a {len(convs)}-layer network {depth} layers deep")
    fresh = build(width, depth).state_dict()
    # the new network's layer for each old one: the hidden layers in place, the output layer last
    place = [2 * i for i in range(len(convs) - 1)] + [2 * (depth - 1)]
    out = {}
    for i, (c, n) in enumerate(zip(convs, place)):
        w, b = fresh[f"body.{n}.weight"].clone(), fresh[f"body.{n}.bias"].clone()
        if i > 0:  # the new input channels (the layer below's new outputs) are read with zeros
            w[:, old:] = 0
        ow, ob = state[f"body.{c}.weight"], state[f"body.{c}.bias"]
        w[: ow.shape[0], : ow.shape[1]] = ow
        b[: ob.shape[0]] = ob
        out[f"body.{n}.weight"], out[f"body.{n}.bias"] = w, b
    for n in range(2 * (len(convs) - 1), 2 * (depth - 1), 2):  # the new layers: identities
        w = torch.zeros_like(fresh[f"body.{n}.weight"])
        torch.nn.init.dirac_(w)
        out[f"body.{n}.weight"], out[f"body.{n}.bias"] = w, torch.zeros_like(fresh[f"body.{n}.bias"])
    return out


def run_views(model, x, quality):
    """The network's restored image of x (float N,3,H,W in 0..1, H and W even), averaged over its
    ``views`` orientations: each view is turned (ORIENTATIONS), restored, turned back, and the
    mean taken in float. One view is the plain ``model(x, quality)``."""
    if model.views == 1:
        return model(x, quality)
    torch = _torch()
    total = None
    for transposed, dims in ORIENTATIONS[: model.views]:
        v = x.transpose(2, 3) if transposed else x
        y = model((v.flip(dims) if dims else v).contiguous(memory_format=torch.channels_last), quality)
        y = y.flip(dims) if dims else y
        y = y.transpose(2, 3) if transposed else y
        total = y if total is None else total.add_(y)
    return total.div_(model.views)


def halo(depth: int) -> int:
    """Full-resolution pixels of context each side that a tile needs (even, >= the receptive field)."""
    return 2 * depth + 2


def restore_image(model, img: np.ndarray, quality: float) -> np.ndarray:
    """Run ``model`` on a uint8 HxWx3 image (any size) and return the uint8 HxWx3 result.

    Large images go through in tiles of TILE pixels with a halo, so memory stays bounded; the
    result equals one pass over the whole image up to float rounding order. Every tile starts on
    an even row and column and has an even size, so its flipped views keep the 2x2 grid."""
    torch = _torch()
    h, w, _ = img.shape
    pad = halo(model.depth)
    out = np.empty_like(img)
    q = torch.tensor([float(quality)])
    with torch.no_grad():
        for y0 in range(0, h, TILE):
            for x0 in range(0, w, TILE):
                y1, x1 = min(h, y0 + TILE), min(w, x0 + TILE)
                # the tile plus its halo, padded to even size by edge replication
                ya, xa = max(0, y0 - pad), max(0, x0 - pad)
                yb, xb = min(h, y1 + pad), min(w, x1 + pad)
                rows = np.arange(ya, yb + ((yb - ya) % 2))
                cols = np.arange(xa, xb + ((xb - xa) % 2))
                patch = img[np.minimum(rows, h - 1)][:, np.minimum(cols, w - 1)]
                x = torch.from_numpy(np.ascontiguousarray(patch)).permute(2, 0, 1)[None].float().div_(255)
                x = x.contiguous(memory_format=torch.channels_last)
                y = run_views(model, x, q)[0].mul_(255).round_().clamp_(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
                out[y0:y1, x0:x1] = y[y0 - ya : y1 - ya, x0 - xa : x1 - xa]
    return out
