"""Learned entropy models (torch): likelihoods for training, frozen tables for coding.

* :class:`EntropyBottleneck` -- a factorized, per-channel learned density (Ballé et al. 2018,
  "Variational image compression with a scale hyperprior", appendix 6.1): a small monotone
  network gives each channel's CDF; the likelihood of a value is the CDF mass of the unit bin
  around it.
* :class:`GaussianConditional` -- a zero-mean Gaussian of a given scale for ``y - mu``, coded
  through a table of 64 log-spaced scales (0.11 .. 256).

Both return likelihoods (same shape as the input) from ``forward`` and, after ``update()`` has
frozen the integer tables (stored as buffers, so they travel in the state dict), code integer
symbols to bytes with :mod:`mlcompress.entropy.coder`. Neither knows about images: inputs are
any ``B x C x ...`` float tensors.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import coder
from .quantize import add_noise, lower_bound, round_ste

LIKELIHOOD_BOUND = 1e-9
TAIL_MASS = 1e-9


class _Tables(nn.Module):
    """Holds a TableSet as three int32 buffers that resize when a state dict is loaded."""

    def __init__(self):
        super().__init__()
        self.register_buffer("freqs", torch.zeros(0, 0, dtype=torch.int32))
        self.register_buffer("offsets", torch.zeros(0, dtype=torch.int32))
        self.register_buffer("lengths", torch.zeros(0, dtype=torch.int32))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for name in ("freqs", "offsets", "lengths"):
            key = prefix + name
            if key in state_dict:
                setattr(self, name, torch.zeros_like(state_dict[key], dtype=torch.int32))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def set(self, ts: coder.TableSet) -> None:
        self.freqs = torch.from_numpy(ts.freqs.astype(np.int32))
        self.offsets = torch.from_numpy(ts.offsets.astype(np.int32))
        self.lengths = torch.from_numpy(ts.lengths.astype(np.int32))

    def get(self) -> coder.TableSet:
        if self.freqs.numel() == 0:
            raise RuntimeError("entropy model tables are not frozen; call update() first")
        return coder.TableSet(
            self.freqs.numpy().astype(np.int64), self.offsets.numpy().astype(np.int64),
            self.lengths.numpy().astype(np.int64),
        )


class EntropyBottleneck(nn.Module):
    """Factorized learned prior over C channels (Ballé et al. 2018, appendix 6.1).

    Each channel has its own univariate CDF ``c(x) = sigmoid(f_K(...f_1(x)))`` where every
    ``f_k(x) = h(H_k x + b_k)`` uses non-negative matrices ``H_k = softplus(.)`` and the
    monotone non-linearity ``h(x) = x + tanh(a) * tanh(x)`` with ``tanh(a) > -1``, so ``c`` is
    monotone by construction. Symbols are ``round(y)`` (zero offset).

    forward(y: float B x C x ...) -> (y_tilde or y_hat, likelihoods), both the shape of ``y``.
    """

    def __init__(self, channels: int, filters=(3, 3, 3), init_scale: float = 10.0):
        super().__init__()
        self.channels = channels
        dims = (1, *filters, 1)
        scale = init_scale ** (1 / (len(filters) + 1))
        self.matrices = nn.ParameterList()
        self.biases = nn.ParameterList()
        self.factors = nn.ParameterList()
        for i in range(len(filters) + 1):
            init = math.log(math.expm1(1 / scale / dims[i + 1]))
            self.matrices.append(nn.Parameter(torch.full((channels, dims[i + 1], dims[i]), init)))
            self.biases.append(nn.Parameter(torch.empty(channels, dims[i + 1], 1).uniform_(-0.5, 0.5)))
            if i < len(filters):
                self.factors.append(nn.Parameter(torch.zeros(channels, dims[i + 1], 1)))
        self.tables = _Tables()

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logit of the CDF at x: C x 1 x n -> C x 1 x n."""
        for i, (m, b) in enumerate(zip(self.matrices, self.biases)):
            h = F.softplus(m)  # C x out x in; tiny dims, so broadcast sums beat batched matmul
            x = sum(h[:, :, k : k + 1] * x[:, k : k + 1, :] for k in range(h.shape[2])) + b
            if i < len(self.factors):
                x = x + torch.tanh(self.factors[i]) * torch.tanh(x)
        return x

    def likelihood(self, y: torch.Tensor) -> torch.Tensor:
        """P(bin of width 1 centred at y) per element, y: B x C x ... -> same shape."""
        shape = y.shape
        v = y.transpose(0, 1).reshape(self.channels, 1, -1)
        lower, upper = self._logits(torch.cat([v - 0.5, v + 0.5], 2)).chunk(2, 2)
        sign = -torch.sign(lower + upper).detach()  # evaluate in the tail that is far from 1
        lik = torch.abs(torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower))
        lik = lik.reshape(shape[1], shape[0], *shape[2:]).transpose(0, 1)
        return lik.clamp_min(LIKELIHOOD_BOUND)

    def forward(self, y: torch.Tensor, training: bool | None = None, decoder: str = "noise"):
        """(latent for the decoder, likelihoods). Training: likelihoods of y + U(-.5,.5); the
        decoder gets that noisy y ("noise") or ``round_ste(y)`` ("round"). Else round(y) for both."""
        training = self.training if training is None else training
        if not training:
            y_q = torch.round(y)
            return y_q, self.likelihood(y_q)
        y_n = add_noise(y)
        return (y_n if decoder == "noise" else round_ste(y)), self.likelihood(y_n)

    # ---------------------------------------------------------------- frozen tables

    @torch.no_grad()
    def update(self, tail: float = TAIL_MASS, max_half: int = 2048) -> None:
        """Freeze one integer table per channel from the learned CDF (run once after training)."""
        pmfs, offsets, tails = [], [], []
        half = 32
        while True:  # widen the grid until every channel's tails are inside it (or the cap)
            x = torch.arange(-half, half + 1, dtype=torch.float32)
            grid = x.expand(self.channels, 1, -1)
            lower, upper = self._logits(grid - 0.5), self._logits(grid + 0.5)
            sign = -torch.sign(lower + upper)
            pmf = torch.abs(torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower))[:, 0].double()
            lo_tail = torch.sigmoid(self._logits(grid[:, :, :1] - 0.5))[:, 0, 0].double()
            hi_tail = torch.sigmoid(-self._logits(grid[:, :, -1:] + 0.5))[:, 0, 0].double()
            if (lo_tail.max() < tail and hi_tail.max() < tail) or half >= max_half:
                break
            half *= 2
        pmf = pmf.numpy()
        for c in range(self.channels):
            p = pmf[c]
            cum = np.cumsum(p)
            lo = int(np.searchsorted(cum, tail / 2))
            hi = int(np.searchsorted(cum, cum[-1] - tail / 2))
            hi = min(max(hi, lo), len(p) - 1)
            keep = p[lo : hi + 1]
            pmfs.append(keep)
            offsets.append(lo - half)
            tails.append(max(1.0 - keep.sum(), 0.0))
        self.tables.set(coder.tables_from_pmfs(pmfs, offsets, tails))

    def _table_index(self, shape) -> np.ndarray:
        """Channel index of every element of a B x C x ... tensor."""
        idx = np.arange(self.channels).reshape(1, -1, *([1] * (len(shape) - 2)))
        return np.broadcast_to(idx, shape)

    def compress(self, y: torch.Tensor) -> bytes:
        """Code round(y) (B x C x ...) with the frozen tables -> bytes."""
        sym = torch.round(y).to(torch.int64).numpy()
        return coder.encode_symbols(sym, self._table_index(sym.shape), self.tables.get())

    def decompress(self, data: bytes, shape) -> torch.Tensor:
        """Bytes -> y_hat (float32, ``shape`` = B x C x ...)."""
        sym = coder.decode_symbols(data, self._table_index(tuple(shape)), self.tables.get())
        return torch.from_numpy(sym.astype(np.float32))

    def bits(self, y: torch.Tensor) -> float:
        """Ideal code length of round(y) under the frozen tables (excluding stream framing)."""
        sym = torch.round(y).to(torch.int64).numpy()
        return self.tables.get().bits(sym, self._table_index(sym.shape))


def scale_table(levels: int = 64, lo: float = 0.11, hi: float = 256.0) -> np.ndarray:
    """The log-spaced scales the Gaussian conditional is coded with (float64 [levels])."""
    return np.exp(np.linspace(math.log(lo), math.log(hi), levels))


class GaussianConditional(nn.Module):
    """Conditional Gaussian model for ``y`` given per-element ``scales`` and means ``mu``.

    Training: ``forward(y, scales, mu)`` -> (y_tilde, likelihoods), where the likelihood is the
    mass of N(mu, scale) on the unit bin around y. Coding: symbols ``round(y - mu)`` use the table
    of the smallest tabulated scale >= scale (``index(scales)``); the tables are frozen by
    ``update()`` and stored as buffers.
    """

    def __init__(self, levels: int = 64, lo: float = 0.11, hi: float = 256.0, tail: float = TAIL_MASS):
        super().__init__()
        self.register_buffer("scale_table", torch.tensor(scale_table(levels, lo, hi), dtype=torch.float32))
        self.scale_bound = lo
        self.tail = tail
        self.tables = _Tables()

    @staticmethod
    def _ncdf(x: torch.Tensor) -> torch.Tensor:
        return 0.5 * torch.erfc(-x * (2**-0.5))

    def likelihood(self, y: torch.Tensor, scales: torch.Tensor, mu: torch.Tensor | None) -> torch.Tensor:
        v = torch.abs(y - mu) if mu is not None else torch.abs(y)
        s = lower_bound(scales, self.scale_bound)
        lik = self._ncdf((0.5 - v) / s) - self._ncdf((-0.5 - v) / s)
        return lik.clamp_min(LIKELIHOOD_BOUND)

    def forward(self, y, scales, mu=None, training: bool | None = None, decoder: str = "noise"):
        """(latent for the decoder, likelihoods), as :meth:`EntropyBottleneck.forward`; rounding
        is relative to ``mu``."""
        training = self.training if training is None else training
        if not training:
            y_q = torch.round(y - mu) + mu if mu is not None else torch.round(y)
            return y_q, self.likelihood(y_q, scales, mu)
        y_n = add_noise(y)
        return (y_n if decoder == "noise" else round_ste(y, mu)), self.likelihood(y_n, scales, mu)

    @torch.no_grad()
    def update(self) -> None:
        """Freeze one integer table per tabulated scale."""
        from scipy.special import ndtr

        z = -float(_ndtri(self.tail / 2))
        pmfs, offsets, tails = [], [], []
        for s in self.scale_table.double().numpy():
            half = min(int(math.ceil(s * z)), coder.MAX_LENGTH // 2 - 1)
            k = np.arange(-half, half + 1, dtype=np.float64)
            pmf = ndtr((k + 0.5) / s) - ndtr((k - 0.5) / s)
            pmfs.append(pmf)
            offsets.append(-half)
            tails.append(2 * ndtr(-(half + 0.5) / s))
        self.tables.set(coder.tables_from_pmfs(pmfs, offsets, tails))

    def index(self, scales: torch.Tensor) -> np.ndarray:
        """Table index per element (int64 numpy, scales' shape): first table scale >= scale."""
        tab = self.scale_table
        idx = torch.searchsorted(tab, scales.clamp_min(self.scale_bound).contiguous())
        return idx.clamp_max(len(tab) - 1).numpy().astype(np.int64)

    def compress(self, y: torch.Tensor, indexes: np.ndarray, mu: torch.Tensor | None) -> bytes:
        sym = torch.round(y - mu if mu is not None else y).to(torch.int64).numpy()
        return coder.encode_symbols(sym, indexes, self.tables.get())

    def decompress(self, data: bytes, indexes: np.ndarray, mu: torch.Tensor | None) -> torch.Tensor:
        sym = torch.from_numpy(coder.decode_symbols(data, indexes, self.tables.get()).astype(np.float32))
        return sym + mu if mu is not None else sym

    def bits(self, y: torch.Tensor, indexes: np.ndarray, mu: torch.Tensor | None) -> float:
        sym = torch.round(y - mu if mu is not None else y).to(torch.int64).numpy()
        return self.tables.get().bits(sym, indexes)


def _ndtri(p: float) -> float:
    from scipy.special import ndtri

    return float(ndtri(p))
