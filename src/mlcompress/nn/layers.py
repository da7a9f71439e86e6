"""Layers: GDN / IGDN (Ballé et al. 2016, "Density modeling of images using a generalized
normalization transformation", https://arxiv.org/abs/1511.06281) and conv helpers."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..entropy.quantize import lower_bound

_PEDESTAL = (2**-18) ** 2


class _NonNegative(nn.Module):
    """Stores ``p = sqrt(v + pedestal)`` and returns ``v = max(p, bound)^2 - pedestal`` (>= minimum).

    The square-root reparametrisation keeps gradient steps well scaled near zero.
    """

    def __init__(self, init: torch.Tensor, minimum: float = 0.0):
        super().__init__()
        self.bound = (minimum + _PEDESTAL) ** 0.5
        self.p = nn.Parameter(torch.sqrt(torch.clamp_min(init + _PEDESTAL, _PEDESTAL)))

    def forward(self) -> torch.Tensor:
        return lower_bound(self.p, self.bound) ** 2 - _PEDESTAL


class GDN(nn.Module):
    """Generalized divisive normalization over channels, B x C x H x W -> same shape.

    ``y_i = x_i / sqrt(beta_i + sum_j gamma_ij x_j^2)``; ``inverse=True`` gives IGDN
    (multiplies instead), used by synthesis transforms.
    """

    def __init__(self, channels: int, inverse: bool = False, beta_min: float = 1e-6, gamma_init: float = 0.1):
        super().__init__()
        self.inverse = inverse
        self.beta = _NonNegative(torch.ones(channels), beta_min)
        self.gamma = _NonNegative(gamma_init * torch.eye(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        norm = F.conv2d(x * x, self.gamma().view(c, c, 1, 1), self.beta())
        return x * torch.sqrt(norm) if self.inverse else x * torch.rsqrt(norm)


def conv(cin: int, cout: int, k: int = 5, stride: int = 2) -> nn.Conv2d:
    """'same'-padded conv; with stride 2 halves H and W (H/2 rounded up)."""
    return nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2)


def deconv(cin: int, cout: int, k: int = 5, stride: int = 2) -> nn.ConvTranspose2d:
    """Transposed conv that exactly doubles H and W with stride 2."""
    return nn.ConvTranspose2d(cin, cout, k, stride=stride, padding=k // 2, output_padding=stride - 1)
