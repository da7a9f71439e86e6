"""Learned image-compression models with the three-method contract::

    out = model(x)                      # training: {"x_hat": B x 3 x H x W, "likelihoods": {...}}
    enc = model.compress(x)             # {"strings": [bytes, ...], "shape": (h, w)}
    x_hat = model.decompress(enc["strings"], enc["shape"])

``x`` is float NCHW RGB in 0..1 with H, W multiples of ``model.multiple``. ``update()``
freezes the entropy models' integer tables after training (they are stored as buffers).

``compress`` and ``decompress`` run single-threaded (:func:`single_thread`), so their bytes and
pixels do not depend on the caller's torch thread count: the hyper-synthesis that both sides
compute must agree bit for bit, or the scale indices (and so the whole stream) would differ.
"""

from __future__ import annotations


import torch
from torch import nn

from ..entropy.models import EntropyBottleneck, GaussianConditional
from .layers import GDN, conv, deconv


from ..threads import single_torch_thread as single_thread  # noqa: E402


def analysis(n: int, m: int) -> nn.Sequential:
    """g_a: B x 3 x H x W -> B x M x H/16 x W/16 (4 stride-2 5x5 convs, GDN between)."""
    return nn.Sequential(conv(3, n), GDN(n), conv(n, n), GDN(n), conv(n, n), GDN(n), conv(n, m))


def synthesis(n: int, m: int) -> nn.Sequential:
    """g_s: B x M x h x w -> B x 3 x 16h x 16w (4 stride-2 5x5 transposed convs, IGDN between)."""
    return nn.Sequential(
        deconv(m, n), GDN(n, inverse=True), deconv(n, n), GDN(n, inverse=True),
        deconv(n, n), GDN(n, inverse=True), deconv(n, 3),
    )


class FactorizedPrior(nn.Module):
    """bmshj2018-factorized: Ballé, Minnen, Singh, Hwang, Johnston, "Variational image compression
    with a scale hyperprior", ICLR 2018 (https://arxiv.org/abs/1802.01436), the factorized-prior
    baseline (itself Ballé et al. 2017, https://arxiv.org/abs/1611.01704, with N, M channels)::

        x (B,3,H,W) --g_a--> y (B,M,H/16,W/16) --Q--> y_hat --g_s--> x_hat (B,3,H,W)
                                     |  EntropyBottleneck(M): P(y_hat)
    """

    multiple = 16

    def __init__(self, N: int = 128, M: int = 192):
        super().__init__()
        self.N, self.M = N, M
        self.g_a = analysis(N, M)
        self.g_s = synthesis(N, M)
        self.entropy_bottleneck = EntropyBottleneck(M)

    def forward(self, x: torch.Tensor) -> dict:
        y = self.g_a(x)
        y_hat, y_lik = self.entropy_bottleneck(y)
        return {"x_hat": self.g_s(y_hat), "likelihoods": {"y": y_lik}}

    def update(self) -> None:
        self.entropy_bottleneck.update()

    @torch.no_grad()
    def compress(self, x: torch.Tensor) -> dict:
        with single_thread():
            y = self.g_a(x)
        return {"strings": [self.entropy_bottleneck.compress(y)], "shape": tuple(y.shape[-2:])}

    @torch.no_grad()
    def decompress(self, strings: list[bytes], shape) -> torch.Tensor:
        y_hat = self.entropy_bottleneck.decompress(strings[0], (1, self.M, *shape))
        with single_thread():
            return self.g_s(y_hat).clamp_(0, 1)

    @torch.no_grad()
    def estimate_bits(self, x: torch.Tensor) -> float:
        """The model's own rate estimate of x: -sum log2 likelihood of round(y) (bits)."""
        y_hat, lik = self.entropy_bottleneck(self.g_a(x), training=False)
        return float(-torch.log2(lik).sum())


class MeanScaleHyperprior(nn.Module):
    """mbt2018-mean: Minnen, Ballé, Toderici, "Joint autoregressive and hierarchical priors for
    learned image compression", NeurIPS 2018 (https://arxiv.org/abs/1809.02736), the mean-scale
    hyperprior without the context model::

        x (B,3,H,W) --g_a--> y (B,M,H/16,W/16) --h_a--> z (B,N,H/64,W/64) --Q--> z_hat
                                                          EntropyBottleneck(N): P(z_hat)
        z_hat --h_s--> (scales, means) (B,M,H/16,W/16 each)
        y_hat = round(y - means) + means, P(y_hat | z_hat) = N(means, scales) on unit bins
        y_hat --g_s--> x_hat (B,3,H,W)
    """

    multiple = 64

    def __init__(self, N: int = 128, M: int = 192):
        super().__init__()
        self.N, self.M = N, M
        self.g_a = analysis(N, M)
        self.g_s = synthesis(N, M)
        act = nn.LeakyReLU
        self.h_a = nn.Sequential(conv(M, N, 3, 1), act(), conv(N, N), act(), conv(N, N))
        self.h_s = nn.Sequential(
            deconv(N, M), act(), deconv(M, M * 3 // 2), act(), conv(M * 3 // 2, 2 * M, 3, 1),
        )
        self.entropy_bottleneck = EntropyBottleneck(N)
        self.gaussian_conditional = GaussianConditional()

    def forward(self, x: torch.Tensor) -> dict:
        y = self.g_a(x)
        z = self.h_a(y)
        z_hat, z_lik = self.entropy_bottleneck(z)
        scales, means = self.h_s(z_hat).chunk(2, 1)
        y_hat, y_lik = self.gaussian_conditional(y, scales, means)
        return {"x_hat": self.g_s(y_hat), "likelihoods": {"y": y_lik, "z": z_lik}}

    def update(self) -> None:
        self.entropy_bottleneck.update()
        self.gaussian_conditional.update()

    def _params(self, z_hat: torch.Tensor):
        with single_thread():
            scales, means = self.h_s(z_hat).chunk(2, 1)
        return self.gaussian_conditional.index(scales), means.contiguous()

    @torch.no_grad()
    def compress(self, x: torch.Tensor) -> dict:
        with single_thread():
            y = self.g_a(x)
            z = self.h_a(y)
        z_str = self.entropy_bottleneck.compress(z)
        indexes, means = self._params(torch.round(z))
        y_str = self.gaussian_conditional.compress(y, indexes, means)
        return {"strings": [y_str, z_str], "shape": tuple(z.shape[-2:])}

    @torch.no_grad()
    def decompress(self, strings: list[bytes], shape) -> torch.Tensor:
        z_hat = self.entropy_bottleneck.decompress(strings[1], (1, self.N, *shape))
        indexes, means = self._params(z_hat)
        y_hat = self.gaussian_conditional.decompress(strings[0], indexes, means)
        with single_thread():
            return self.g_s(y_hat).clamp_(0, 1)

    @torch.no_grad()
    def estimate_bits(self, x: torch.Tensor) -> float:
        """The model's own rate estimate of x: -sum log2 likelihoods of y_hat and z_hat (bits)."""
        out = self.eval()(x)
        return float(sum(-torch.log2(v).sum() for v in out["likelihoods"].values()))


MODELS = {"factorized": FactorizedPrior, "hyperprior": MeanScaleHyperprior}


def build(name: str, N: int, M: int) -> nn.Module:
    """A fresh model of architecture ``name`` ("factorized" or "hyperprior")."""
    try:
        return MODELS[name](N=N, M=M)
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(MODELS)}") from None
