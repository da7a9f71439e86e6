"""Widening a trained hyperprior: a model with wider transforms (N) and/or more latent channels
(M) that starts as exactly the trained one, so a model can gain capacity by fine-tuning instead
of training anew (function-preserving widening, Chen, Goodfellow & Shlens, "Net2Net", ICLR 2016,
https://arxiv.org/abs/1511.05641).

``widen(src, model)`` fills ``model`` (same class, Refiner and channel groups as ``src``, an N
and an M at least as large, one of them larger) from ``src``:

- every old unit keeps its place: the old channels of each hidden layer come first and the new
  ones after them; with a context model each channel group keeps its old latent channels first
  and gets the new ones after them (group s of the wide model = old group s, then
  M_new/slices - M_old/slices new channels), so the context nets see the same inputs in the
  same places;
- every new unit reads the layer below with the wide model's own initial weights and feeds the
  layer above through zero weights (as ``nn.restore.grow`` does), so it changes nothing until
  training gives it a use; GDN normalises old channels by old channels only;
- the new latent channels come out of g_a, and the new hyper-latent channels (z has N channels)
  out of h_a, with 1/100 of the usual initial weights, so they start near 0 and round to 0; the
  new channels of z are coded with a copy of the old channel that gives 0 the highest
  probability, so they start nearly free;
- the scales, means and context corrections of the new latent channels start at zero;
- every other tensor (the Refiner, the Gaussian conditional's scales, the gains) is copied.

So the wide model decodes the old model's latents to the same image, codes the old channels with
the same entropy parameters, and every new weight can still learn (each new unit has non-zero
weights on one side)."""

from __future__ import annotations

import torch

#: g_a's new latent rows and h_a's new hyper-latent rows start at this fraction of the wide
#: model's initialisation
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


def _check(src, model) -> None:
    if type(src) is not type(model):
        raise ValueError(f"cannot widen {type(src).__name__} into {type(model).__name__}")
    if not hasattr(src, "h_s"):
        raise ValueError(f"only hyperprior models widen ({type(src).__name__}'s entropy model is per channel)")
    sizes = f"(from N={src.N}, M={src.M}, refine={src.refine} to N={model.N}, M={model.M}, refine={model.refine})"
    if src.refine != model.refine or model.N < src.N or model.M < src.M or (model.N, model.M) == (src.N, src.M):
        raise ValueError(f"widening needs the same Refiner, an N and an M at least as large and one "
                         f"of them larger {sizes}")
    if model.M > src.M and (getattr(src, "uneven", False) or getattr(model, "uneven", False)):
        raise ValueError("only models with equal channel groups widen their latent")
    if getattr(src, "groups", None) != getattr(model, "groups", None) and model.M == src.M:
        raise ValueError("widening keeps the channel groups")
    if getattr(src, "slices", 1) != getattr(model, "slices", 1):
        raise ValueError(f"widening keeps the number of channel groups {sizes}")


def _specs(src, model) -> dict:
    """{tensor name: (maps, zero dims)} for every tensor whose shape depends on N or M (the
    context nets' only when M grows)."""
    n, m1, m0 = _prefix(src.N), model.M, src.M
    slices = getattr(src, "slices", 1)
    lat = _blocks(slices, m0 // slices, m1 // slices)  # where each old latent channel goes
    stats = torch.cat([lat, m1 + lat])  # h_s's output: the scales, then the means
    # h_s = deconv, act, deconv, act, conv: its two hidden widths are read off the narrow model
    hs1, hs2 = _prefix(src.h_s[0].out_channels), _prefix(src.h_s[2].out_channels)
    last_a, last_s = len(src.g_a) - 1, len(src.g_s) - 1 - (1 if src.refine else 0)
    specs = {}
    for t, end, out, cin in (("g_a", last_a, 0, 1), ("g_s", last_s, 1, 0)):  # conv: out x in; deconv: in x out
        for i in range(0, end + 1, 2):
            first, last = i == 0, i == end
            rows = (lat if t == "g_a" else None) if last else n
            cols = (lat if t == "g_s" else None) if first else n
            maps = {d: p for d, p in ((out, rows), (cin, cols)) if p is not None}
            specs[f"{t}.{i}.weight"] = (maps, (cin,) if cin in maps else ())
            if rows is not None:
                specs[f"{t}.{i}.bias"] = ({0: rows}, (0,) if t == "g_a" and last else ())
            if not last:  # the GDN after it
                specs[f"{t}.{i + 1}.beta.p"] = ({0: n}, ())
                specs[f"{t}.{i + 1}.gamma.p"] = ({0: n, 1: n}, ())
    specs.update({
        "h_a.0.weight": ({0: n, 1: lat}, (1,)), "h_a.0.bias": ({0: n}, ()),
        "h_a.2.weight": ({0: n, 1: n}, (1,)), "h_a.2.bias": ({0: n}, ()),
        "h_a.4.weight": ({0: n, 1: n}, (1,)), "h_a.4.bias": ({0: n}, (0,)),
        "h_s.0.weight": ({0: n, 1: hs1}, (0,)), "h_s.0.bias": ({0: hs1}, ()),
        "h_s.2.weight": ({0: hs1, 1: hs2}, (0,)), "h_s.2.bias": ({0: hs2}, ()),
        "h_s.4.weight": ({0: stats, 1: hs2}, (0, 1)), "h_s.4.bias": ({0: stats}, (0,)),
    })
    if m1 == m0:
        return specs
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
    return specs


def widen(src, model) -> None:
    """Fill ``model`` from ``src`` as the module docstring says; raises ValueError when the two
    differ in anything but N and M or when ``model`` is not wider."""
    _check(src, model)
    specs = _specs(src, model)
    small = {f"g_a.{len(src.g_a) - 1}.weight", "h_a.4.weight"}  # rows that start near 0
    fresh, old = model.state_dict(), src.state_dict()
    if set(fresh) != set(old):
        raise ValueError("the two models do not have the same tensors")
    with torch.no_grad():  # the old hyper-latent channel that codes 0 most cheaply
        cheapest = int(src.entropy_bottleneck.likelihood(torch.zeros(1, src.N, 1)).argmax())
    state = {}
    for name, t in old.items():
        if name in specs:
            maps, zero = specs[name]
            base = fresh[name] * NEW_LATENT_GAIN if name in small else fresh[name]
            state[name] = _place(base, t, maps, zero)
        elif name.startswith("entropy_bottleneck.") and ".tables." not in name:
            state[name] = torch.cat([t, t[cheapest : cheapest + 1].expand(model.N - src.N, *t.shape[1:])])
        elif ".tables." in name:  # frozen tables resize on loading; z's are per channel
            state[name] = (fresh if name.startswith("entropy_bottleneck.") and model.N > src.N else old)[name].clone()
        elif fresh[name].shape == t.shape:
            state[name] = t.clone()
        else:
            raise ValueError(f"{name}: no rule to widen {tuple(t.shape)} to {tuple(fresh[name].shape)}")
    model.load_state_dict(state)
