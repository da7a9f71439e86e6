"""Widening a trained hyperprior's latent: a model with more latent channels (M) that starts as
exactly the trained one, so a level can gain capacity by fine-tuning instead of training anew
(function-preserving widening, Chen, Goodfellow & Shlens, "Net2Net", ICLR 2016,
https://arxiv.org/abs/1511.05641).

``widen_latents(src, model)`` fills ``model`` (same class, N, Refiner and slices as ``src``, a
larger M) from ``src``:

- every old latent channel keeps its role; with a context model each channel group keeps its old
  channels first and gets the new ones after them (group s of the wide model = old group s, then
  M_new/slices - M_old/slices new channels), so the context nets see the same inputs in the
  same places;
- the new latent channels come out of g_a with small weights (so they start near 0 and cost
  almost no bits) and go nowhere: g_s, h_a and every context net read them with zero weights;
- the hyper-synthesis and the context nets get wider hidden layers whose new units start from
  the wide model's own initialisation but feed the next layer through zero weights; their new
  outputs (the scales and means of the new channels, and the context's corrections for them)
  start at zero;
- every other tensor (the rest of g_a and g_s, GDN, the Refiner, the entropy models) is copied.

So the wide model decodes the old model's latents to the same image, codes the old channels with
the same entropy parameters, and every new weight can still learn (each new unit has non-zero
weights on one side)."""

from __future__ import annotations

import torch

#: g_a's new output rows start at this fraction of the wide model's initialisation
NEW_LATENT_GAIN = 0.01


def _prefix(n: int) -> torch.Tensor:
    return torch.arange(n)


def _blocks(count: int, old: int, new: int) -> torch.Tensor:
    """New positions of ``count`` consecutive blocks of ``old`` channels when each block grows to
    ``new`` channels, its old channels first."""
    return torch.cat([b * new + torch.arange(old) for b in range(count)])


def _place(fresh: torch.Tensor, old: torch.Tensor, maps: dict, zero: tuple = ()) -> torch.Tensor:
    """``fresh`` with ``old`` written at the positions ``maps`` gives per dimension (dimensions
    not named keep their index); entries outside the mapped positions of each dimension in
    ``zero`` are set to 0 first."""
    out = fresh.detach().clone()
    for d in zero:
        keep = torch.zeros(out.shape[d], dtype=torch.bool)
        keep[maps[d]] = True
        shape = [1] * out.dim()
        shape[d] = -1
        out = out * keep.view(shape).to(out.dtype)
    index = [maps.get(d, _prefix(old.shape[d])) for d in range(old.dim())]
    out[torch.meshgrid(*index, indexing="ij")] = old
    return out


def widen_latents(src, model) -> None:
    """Fill ``model`` from ``src`` as the module docstring says; raises ValueError when the two
    differ in anything but M or when ``model`` is not wider."""
    if type(src) is not type(model):
        raise ValueError(f"cannot widen {type(src).__name__} into {type(model).__name__}")
    if not hasattr(src, "h_s"):
        raise ValueError(f"only hyperprior models widen ({type(src).__name__}'s entropy model is per channel)")
    if getattr(src, "uneven", False) or getattr(model, "uneven", False):
        raise ValueError("only models with equal channel groups widen")
    slices = getattr(src, "slices", 1)
    same = (src.N, src.refine, slices) == (model.N, model.refine, getattr(model, "slices", 1))
    if not same or model.M <= src.M:
        raise ValueError(f"widening needs the same N, Refiner and slices and a larger M "
                         f"(from N={src.N}, M={src.M}, refine={src.refine} to "
                         f"N={model.N}, M={model.M}, refine={model.refine})")
    m0, m1 = src.M, model.M
    lat = _blocks(slices, m0 // slices, m1 // slices)  # where each old latent channel goes
    stats = torch.cat([lat, m1 + lat])  # h_s's output: the scales, then the means
    # h_s = deconv, act, deconv, act, conv: its two hidden widths are read off the narrow model
    hs1, hs2 = _prefix(src.h_s[0].out_channels), _prefix(src.h_s[2].out_channels)
    ga = f"g_a.{len(src.g_a) - 1}"  # g_a's last conv makes the latent; g_s's first reads it
    specs = {
        f"{ga}.weight": ({0: lat}, ()), f"{ga}.bias": ({0: lat}, (0,)),
        "g_s.0.weight": ({0: lat}, (0,)),
        "h_a.0.weight": ({1: lat}, (1,)),
        "h_s.0.weight": ({1: hs1}, ()), "h_s.0.bias": ({0: hs1}, ()),
        "h_s.2.weight": ({0: hs1, 1: hs2}, (0,)), "h_s.2.bias": ({0: hs2}, ()),
        "h_s.4.weight": ({0: stats, 1: hs2}, (0, 1)), "h_s.4.bias": ({0: stats}, (0,)),
    }
    k0, k1 = m0 // slices, m1 // slices
    for i, net in enumerate(getattr(src, "ctx", ())):
        hidden = _prefix(net[0].out_channels)
        blocks_in = _blocks(net[0].in_channels // k0, k0, k1)
        blocks_out = _blocks(2, k0, k1)
        specs.update({
            f"ctx.{i}.0.weight": ({0: hidden, 1: blocks_in}, (1,)), f"ctx.{i}.0.bias": ({0: hidden}, ()),
            f"ctx.{i}.2.weight": ({0: hidden, 1: hidden}, (1,)), f"ctx.{i}.2.bias": ({0: hidden}, ()),
            f"ctx.{i}.4.weight": ({0: blocks_out, 1: hidden}, (0, 1)), f"ctx.{i}.4.bias": ({0: blocks_out}, (0,)),
        })
    fresh, old = model.state_dict(), src.state_dict()
    if set(fresh) != set(old):
        raise ValueError("the two models do not have the same tensors")
    state = {}
    for name, t in old.items():
        if name in specs:
            maps, zero = specs[name]
            base = fresh[name] * NEW_LATENT_GAIN if name == f"{ga}.weight" else fresh[name]
            state[name] = _place(base, t, maps, zero)
        elif fresh[name].shape == t.shape or ".tables." in name:  # frozen tables resize on loading
            state[name] = t.clone()
        else:
            raise ValueError(f"{name}: no rule to widen {tuple(t.shape)} to {tuple(fresh[name].shape)}")
    model.load_state_dict(state)
