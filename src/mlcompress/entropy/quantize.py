"""Quantisation: additive uniform noise for training, rounding for coding (torch).

For a mean-scale model the symbols are ``round(y - mu)`` and the decoder rebuilds
``y_hat = symbols + mu``; for a zero-mean model ``mu`` is omitted.

Training modes of the latent the synthesis transform sees (the rate term always uses the noisy
latent): ``"noise"`` (Ballé et al. 2017) or ``"round"``, rounding with a straight-through gradient,
so the decoder trains on the values it will decode ("mixed" quantisation, Minnen & Singh 2020,
https://arxiv.org/abs/2007.08739).
"""

from __future__ import annotations

QUANT_MODES = ("noise", "round")


def add_noise(y):
    """y + U(-0.5, 0.5): the differentiable training proxy of rounding. Same shape as ``y``."""
    import torch

    return y + torch.empty_like(y).uniform_(-0.5, 0.5)


def round_ste(y, mu=None):
    """round(y - mu) + mu whose gradient passes straight through (the "round" training mode)."""
    v = y if mu is None else y - mu
    out = v + (v.round() - v).detach()
    return out if mu is None else out + mu


def lower_bound(x, bound: float):
    """max(x, bound) whose gradient still flows where it would push x up towards the bound."""
    return _LowerBound.apply(x, bound)


def _make_lower_bound():
    import torch

    class LowerBound(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, bound):
            ctx.save_for_backward(x)
            ctx.bound = bound
            return x.clamp_min(bound)

        @staticmethod
        def backward(ctx, grad):
            (x,) = ctx.saved_tensors
            passes = (x >= ctx.bound) | (grad < 0)
            return grad * passes, None

    return LowerBound


class _Lazy:
    """Builds the autograd Function on first use so that importing this module needs no torch."""

    fn = None

    @classmethod
    def apply(cls, *args):
        if cls.fn is None:
            cls.fn = _make_lower_bound()
        return cls.fn.apply(*args)


_LowerBound = _Lazy
