"""Learned image-compression models with the three-method contract::

    out = model(x)                      # training: {"x_hat": B x 3 x H x W, "likelihoods": {...}}
    enc = model.compress(x)             # {"strings": [bytes, ...], "shape": (h, w)}
                                        # = model.compress_latents(model.latents(x))
    x_hat = model.decompress(enc["strings"], enc["shape"])

``x`` is float NCHW RGB in 0..1 with H, W multiples of ``model.multiple``. ``update()``
freezes the entropy models' integer tables after training (they are stored as buffers).

``compress`` and ``decompress`` run single-threaded (:func:`single_thread`), so their bytes and
pixels do not depend on the caller's torch thread count: the hyper-synthesis that both sides
compute must agree bit for bit, or the scale indices (and so the whole stream) would differ.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..entropy.models import EntropyBottleneck, GaussianConditional
from .layers import GDN, conv, deconv


from ..threads import single_torch_thread as single_thread  # noqa: E402


def analysis(n: int, m: int) -> nn.Sequential:
    """g_a: B x 3 x H x W -> B x M x H/16 x W/16 (4 stride-2 5x5 convs, GDN between)."""
    return nn.Sequential(conv(3, n), GDN(n), conv(n, n), GDN(n), conv(n, n), GDN(n), conv(n, m))


class Synthesis(nn.Sequential):
    """g_s's layers in a Sequential (the same parameter names) that runs them on channels-last
    tensors: the CPU's transposed convolutions are much faster that way (a Kodak image's g_s
    0.63-0.69 -> 0.48-0.49 s on one core, the 64-channel layer at half resolution about 3x).
    Training and refinement already run the whole model channels-last; decoding, the encoder's
    own decode included, now does too, so all of them compute the same function the same way."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.contiguous(memory_format=torch.channels_last))


def synthesis(n: int, m: int, refine: int = 0) -> Synthesis:
    """g_s: B x M x h x w -> B x 3 x 16h x 16w (4 stride-2 5x5 transposed convs, IGDN between),
    then, with ``refine`` > 0, a :class:`Refiner` of that many channels at full resolution."""
    layers = [deconv(m, n), GDN(n, inverse=True), deconv(n, n), GDN(n, inverse=True),
              deconv(n, n), GDN(n, inverse=True), deconv(n, 3)]
    return Synthesis(*layers, *([Refiner(refine)] if refine else []))


class Refiner(nn.Module):
    """A small residual CNN at the output resolution that ends g_s: ``x + f(x)`` with ``f`` four
    3x3 convs (3 -> C -> C -> C -> 3, ReLU between). Its last conv starts at zero, so a trained
    synthesis transform with a fresh Refiner decodes exactly as before, and training it on the
    rounded latents (train's ``--freeze all-but-refiner``) starts from there. It
    sees a receptive field of 9 x 9 pixels, well inside the tiles' halo (TILE, HALO).

    It runs on channels-last tensors (about 1.8x faster on the CPU for so few channels); the
    result is the same function, and deterministic for a given thread count and layout. Without
    autograd (decoding) it runs in strips of STRIP rows, each with a halo of one row per conv, and
    ReLUs in place, so the C-channel activations stay in cache: the same numbers (the rows a
    strip keeps see only real neighbours; checked bit for bit), about 1.4x faster (0.37 -> 0.26 s
    inside a Kodak decode on one core)."""

    STRIP = 32

    def __init__(self, channels: int):
        super().__init__()
        c = channels
        self.net = nn.Sequential(conv(3, c, 3, 1), nn.ReLU(), conv(c, c, 3, 1), nn.ReLU(),
                                 conv(c, c, 3, 1), nn.ReLU(), conv(c, 3, 3, 1))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous(memory_format=torch.channels_last)
        if torch.is_grad_enabled():
            return x + self.net(x)
        convs = [m for m in self.net if isinstance(m, nn.Conv2d)]
        halo, h = len(convs), x.shape[2]
        out = torch.empty_like(x)
        for a in range(0, h, self.STRIP):
            b = min(h, a + self.STRIP)
            lo, hi = max(0, a - halo), min(h, b + halo)
            y = x[:, :, lo:hi]
            for i, c in enumerate(convs):
                y = c(y)
                if i < len(convs) - 1:
                    y.relu_()
            out[:, :, a:b] = x[:, :, a:b] + y[:, :, a - lo:b - lo]
        return out


#: Images whose latent grid exceeds TILE x TILE (1024 x 1024 pixels) run g_a and g_s tile by
#: tile, each tile with HALO latent pixels of context on every side, so memory stays bounded
#: (about 0.5 GB for N=64) at any image size. The receptive field of g_a and g_s is about 2
#: latent pixels, so the halo makes each tile's result the same function of the same inputs as
#: the whole-image pass; only floating-point summation order can differ. Decoding tiles the same
#: way for the same size every time, and the hyper-networks, whose outputs the encoder and the
#: decoder must agree on bit for bit, are never tiled.
TILE, HALO = 64, 4


def _spans(n: int, tile: int, halo: int):
    """(start, stop, ext_start, ext_stop) latent spans covering 0..n in tiles with halos."""
    for a in range(0, n, tile):
        b = min(n, a + tile)
        yield a, b, max(0, a - halo), min(n, b + halo)


def run_tiled(net, x: torch.Tensor, scale: float, put) -> None:
    """Apply a translation-equivariant net (output = input resolution x ``scale``: 16 for g_s,
    1/16 for g_a) to x (1 x C x H x W) tile by tile; ``put(r0, r1, c0, c1, out_tile)`` receives
    each output tile with its output rows r0:r1 and columns c0:c1. The tiling is on the latent
    grid (the lower-resolution side)."""
    lat = 1 / scale if scale < 1 else 1  # input pixels per latent pixel
    out_per_lat = scale if scale > 1 else 1  # output pixels per latent pixel
    lh, lw = int(x.shape[-2] // lat), int(x.shape[-1] // lat)
    for a0, a1, e0, e1 in _spans(lh, TILE, HALO):
        for b0, b1, f0, f1 in _spans(lw, TILE, HALO):
            tile = x[..., int(e0 * lat) : int(e1 * lat), int(f0 * lat) : int(f1 * lat)]
            y = net(tile)
            k = int(out_per_lat)
            put(a0 * k, a1 * k, b0 * k, b1 * k, y[..., (a0 - e0) * k : (a1 - e0) * k, (b0 - f0) * k : (b1 - f0) * k])


def _needs_tiles(latent_h: int, latent_w: int) -> bool:
    return latent_h > TILE or latent_w > TILE


def analyse(g_a, x: torch.Tensor) -> torch.Tensor:
    """g_a(x), tile by tile for large images (see TILE)."""
    if not _needs_tiles(x.shape[-2] // 16, x.shape[-1] // 16):
        return g_a(x)
    out = None

    def put(r0, r1, c0, c1, t):
        nonlocal out
        if out is None:
            out = t.new_empty((*t.shape[:2], x.shape[-2] // 16, x.shape[-1] // 16))
        out[..., r0:r1, c0:c1] = t

    run_tiled(g_a, x, 1 / 16, put)
    return out


def synthesise_uint8(g_s, y_hat: torch.Tensor) -> "np.ndarray":
    """g_s(y_hat) as an H x W x 3 uint8 image (clamped to 0..1, times 255, rounded), tile by
    tile for large images, so no full-size float image is ever held."""
    import numpy as np

    def to_uint8(t):
        return (t[0].clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)

    h, w = y_hat.shape[-2:]
    if not _needs_tiles(h, w):
        return to_uint8(g_s(y_hat))
    out = np.empty((16 * h, 16 * w, 3), np.uint8)

    def put(r0, r1, c0, c1, t):
        out[r0:r1, c0:c1] = to_uint8(t)

    run_tiled(g_s, y_hat, 16, put)
    return out


class _Decoder(nn.Module):
    """What both models share after entropy decoding: ``_latents(strings, shape) -> y_hat`` is
    each model's own; g_s turns y_hat into the image."""

    #: what g_s (and h_s) see in training: "noise" or "round" (entropy.quantize); set by train()
    train_quant = "noise"
    #: False while g_s is frozen and only the rate trains: training forwards then skip g_s and
    #: return x_hat None (set by train())
    synthesis_in_training = True

    def _gain(self, y: torch.Tensor) -> torch.Tensor:
        """y as the entropy model codes it: g_a's output as it is (a variable-rate model scales it)."""
        return y

    def _inverse_gain(self, y_hat: torch.Tensor) -> torch.Tensor:
        """The coded latents as g_s reads them: as they are (a variable-rate model rescales them)."""
        return y_hat

    @torch.no_grad()
    def decompress(self, strings: list[bytes], shape) -> torch.Tensor:
        y_hat = self._inverse_gain(self._latents(strings, shape))
        with single_thread():
            return self.g_s(y_hat).clamp_(0, 1)

    @torch.no_grad()
    def decompress_uint8(self, strings: list[bytes], shape):
        """The decoded image as H x W x 3 uint8 (what the codec writes), tiled for large images."""
        y_hat = self._inverse_gain(self._latents(strings, shape))
        with single_thread():
            return synthesise_uint8(self.g_s, y_hat)


class FactorizedPrior(_Decoder):
    """bmshj2018-factorized: Ballé, Minnen, Singh, Hwang, Johnston, "Variational image compression
    with a scale hyperprior", ICLR 2018 (https://arxiv.org/abs/1802.01436), the factorized-prior
    baseline (itself Ballé et al. 2017, https://arxiv.org/abs/1611.01704, with N, M channels)::

        x (B,3,H,W) --g_a--> y (B,M,H/16,W/16) --Q--> y_hat --g_s--> x_hat (B,3,H,W)
                                     |  EntropyBottleneck(M): P(y_hat)
    """

    multiple = 16

    def __init__(self, N: int = 128, M: int = 192, refine: int = 0):
        super().__init__()
        self.N, self.M, self.refine = N, M, refine
        self.g_a = analysis(N, M)
        self.g_s = synthesis(N, M, refine)
        self.entropy_bottleneck = EntropyBottleneck(M)

    def forward(self, x: torch.Tensor) -> dict:
        y = self.g_a(x)
        y_hat, y_lik = self.entropy_bottleneck(y, decoder=self.train_quant)
        return {"x_hat": self.g_s(y_hat), "likelihoods": {"y": y_lik}}

    def update(self) -> None:
        self.entropy_bottleneck.update()

    @torch.no_grad()
    def compress(self, x: torch.Tensor) -> dict:
        return self.compress_latents(self.latents(x))

    @torch.no_grad()
    def latents(self, x: torch.Tensor) -> tuple:
        """(y,): what the encoder codes (before rounding)."""
        with single_thread():
            return (analyse(self.g_a, x),)

    @torch.no_grad()
    def compress_latents(self, lat: tuple) -> dict:
        (y,) = lat
        return {"strings": [self.entropy_bottleneck.compress(y)], "shape": tuple(y.shape[-2:])}

    def soft_rd(self, lat: tuple, quantise) -> tuple:
        """(x_hat, bits) of latents rounded by the differentiable ``quantise`` (nn.refine)."""
        y_q = quantise(lat[0])
        return self.g_s(y_q), -torch.log2(self.entropy_bottleneck.likelihood(y_q)).sum()

    def _latents(self, strings: list[bytes], shape) -> torch.Tensor:
        return self.entropy_bottleneck.decompress(strings[0], (1, self.M, *shape))

    @torch.no_grad()
    def estimate_bits(self, x: torch.Tensor) -> float:
        """The model's own rate estimate of x: -sum log2 likelihood of round(y) (bits)."""
        y_hat, lik = self.entropy_bottleneck(self.g_a(x), training=False)
        return float(-torch.log2(lik).sum())


class MeanScaleHyperprior(_Decoder):
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

    def __init__(self, N: int = 128, M: int = 192, refine: int = 0):
        super().__init__()
        self.N, self.M, self.refine = N, M, refine
        self.g_a = analysis(N, M)
        self.g_s = synthesis(N, M, refine)
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
        z_hat, z_lik = self.entropy_bottleneck(z, decoder=self.train_quant)
        scales, means = self.h_s(z_hat).chunk(2, 1)
        y_hat, y_lik = self.gaussian_conditional(y, scales, means, decoder=self.train_quant)
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
        return self.compress_latents(self.latents(x))

    @torch.no_grad()
    def latents(self, x: torch.Tensor) -> tuple:
        """(y, z): what the encoder codes (before rounding)."""
        with single_thread():
            y = self._gain(analyse(self.g_a, x))
            return y, self.h_a(y)

    @torch.no_grad()
    def compress_latents(self, lat: tuple) -> dict:
        y, z = lat
        z_str = self.entropy_bottleneck.compress(z)
        indexes, means = self._params(torch.round(z))
        y_str = self.gaussian_conditional.compress(y, indexes, means)
        return {"strings": [y_str, z_str], "shape": tuple(z.shape[-2:])}

    def soft_rd(self, lat: tuple, quantise) -> tuple:
        """(x_hat, bits) of latents rounded by the differentiable ``quantise`` (nn.refine); y is
        rounded relative to the means, as in coding."""
        y, z = lat
        z_q = quantise(z)
        scales, means = self.h_s(z_q).chunk(2, 1)
        y_q, scales, means = self._soft_y(y, scales, means, quantise)
        bits = -torch.log2(self.gaussian_conditional.likelihood(y_q, scales, means)).sum()
        bits = bits - torch.log2(self.entropy_bottleneck.likelihood(z_q)).sum()
        return self.g_s(self._inverse_gain(y_q)), bits

    def _soft_y(self, y, scales, means, quantise) -> tuple:
        """(y rounded by ``quantise`` relative to the means, scales, means) for soft_rd."""
        return quantise(y - means) + means, scales, means

    def _latents(self, strings: list[bytes], shape) -> torch.Tensor:
        z_hat = self.entropy_bottleneck.decompress(strings[1], (1, self.N, *shape))
        indexes, means = self._params(z_hat)
        return self.gaussian_conditional.decompress(strings[0], indexes, means)

    @torch.no_grad()
    def estimate_bits(self, x: torch.Tensor) -> float:
        """The model's own rate estimate of x: -sum log2 likelihoods of y_hat and z_hat (bits)."""
        out = self.eval()(x)
        return float(sum(-torch.log2(v).sum() for v in out["likelihoods"].values()))


def check_groups(M: int, groups) -> tuple[int, ...]:
    """The channel groups of a context model with M latent channels: ``groups`` (sizes in channel
    order, each >= 1, summing to M) as a tuple, or ContextHyperprior.SLICES equal groups when it is
    None; raises ValueError for sizes that do not fit."""
    if groups is None:
        n = ContextHyperprior.SLICES
        if M % n:
            raise ValueError(f"M={M} is not a multiple of {n} (the default channel groups)")
        return (M // n,) * n
    groups = tuple(int(g) for g in groups)
    if not groups or min(groups) < 1 or sum(groups) != M:
        raise ValueError(f"channel groups {','.join(map(str, groups))} are not sizes >= 1 summing to M={M}")
    return groups


def checkerboard(h: int, w: int, anchors: bool, device=None) -> torch.Tensor:
    """1 x 1 x h x w bool mask of the anchor positions ((row + column) even) or of the others."""
    i, j = torch.arange(h, device=device)[:, None], torch.arange(w, device=device)[None, :]
    return (((i + j) % 2 == 0) == anchors)[None, None]


class ContextHyperprior(MeanScaleHyperprior):
    """The mean-scale hyperprior with a context model that needs no serial decoding: the M latent
    channels are coded in ``groups`` (consecutive channels; sizes in channel order, by default
    SLICES equal ones; uneven ones as in He et al., "ELIC", CVPR 2022) one after another (channel conditioning, Minnen &
    Singh, "Channel-wise autoregressive entropy models for learned image compression", ICIP 2020,
    https://arxiv.org/abs/2007.08739), and each group in two checkerboard passes, the anchors
    ((row + column) even) first and then the rest, which see the decoded anchors around them
    (He et al., "Checkerboard context model for efficient learned image compression", CVPR 2021,
    https://arxiv.org/abs/2103.15306)::

        (scales, means) = h_s(z_hat)                          as in the hyperprior
        for group k, pass p (anchors, then the rest):
            d = ctx[2k + p](scales_k, means_k, y_hat of groups < k[, anchors of group k])
            scales_k *= exp(d_scale), means_k += d_mean        at the positions of pass p

    g_a, g_s, h_a and h_s are the hyperprior's, so a trained hyperprior is a starting point; every
    ctx net ends in a zero-initialised layer, so the untrained context model is exactly that
    hyperprior, and training it can only refine the entropy parameters. Each pass runs on the
    latent grid (1/16 of the image side), so the 2 x len(groups) sequential steps cost little.

    The encoder and the decoder run the same sequence (``_context``) on the same values, single
    threaded, so they agree bit for bit on every scale index and mean.
    """

    #: channel groups of the shipped weights (M must be a multiple): equal groups of M / SLICES
    SLICES = 4

    def __init__(self, N: int = 128, M: int = 192, refine: int = 0, groups: tuple[int, ...] | None = None):
        super().__init__(N, M, refine)
        self.groups = check_groups(M, groups)
        self._starts = np.cumsum((0, *self.groups)).tolist()
        self.ctx = nn.ModuleList()
        for s, k in enumerate(self.groups):
            hidden = max(M, 2 * k)
            for p in (0, 1):
                cin = 2 * k + self._starts[s] + (k if p else 0)
                net = nn.Sequential(conv(cin, hidden, 5, 1), nn.LeakyReLU(), conv(hidden, hidden, 1, 1),
                                    nn.LeakyReLU(), conv(hidden, 2 * k, 1, 1))
                nn.init.zeros_(net[-1].weight)
                nn.init.zeros_(net[-1].bias)
                self.ctx.append(net)

    @property
    def slices(self) -> int:
        """How many channel groups (and so 2 x as many context passes)."""
        return len(self.groups)

    @property
    def uneven(self) -> bool:
        """Whether the groups differ from the default (SLICES equal ones): weights record them then."""
        return self.groups != check_groups(self.M, None)

    def _context(self, scales: torch.Tensor, means: torch.Tensor, code) -> tuple:
        """Run the group-by-group, pass-by-pass sequence from the hyperprior's (scales, means).

        ``code(k, mask, scales_k, means_k)`` returns group k's latents (B x groups[k] x h x w) as the
        decoder will know them, of which only the ``mask`` positions (this pass's) are used.
        -> (y_hat, scales, means), each B x M x h x w."""
        h, w = scales.shape[-2:]
        masks = (checkerboard(h, w, True, scales.device), checkerboard(h, w, False, scales.device))
        done, out_s, out_m = [], [], []
        for s in range(self.slices):
            sc, mu = self._group(scales, s), self._group(means, s)
            y_s = sc_s = mu_s = None
            for p in (0, 1):
                inp = [sc, mu, *done] + ([y_s] if p else [])
                d_scale, d_mean = self.ctx[2 * s + p](torch.cat(inp, 1)).chunk(2, 1)
                sc_p, mu_p = sc * torch.exp(d_scale), mu + d_mean
                v = code(s, masks[p], sc_p, mu_p)
                if p == 0:
                    y_s = torch.where(masks[0], v, torch.zeros((), dtype=v.dtype))
                    sc_s, mu_s = sc_p, mu_p
                else:
                    y_s = torch.where(masks[0], y_s, v)
                    sc_s = torch.where(masks[0], sc_s, sc_p)
                    mu_s = torch.where(masks[0], mu_s, mu_p)
            done.append(y_s)
            out_s.append(sc_s)
            out_m.append(mu_s)
        return torch.cat(done, 1), torch.cat(out_s, 1), torch.cat(out_m, 1)

    def _group(self, y: torch.Tensor, s: int) -> torch.Tensor:
        return y[:, self._starts[s] : self._starts[s + 1]]

    def forward(self, x: torch.Tensor) -> dict:
        from ..entropy.quantize import add_noise, round_ste

        y = self._gain(self.g_a(x))
        z = self.h_a(y)
        z_hat, z_lik = self.entropy_bottleneck(z, decoder=self.train_quant)
        scales, means = self.h_s(z_hat).chunk(2, 1)
        if self.training:  # the context sees rounded latents (straight-through), as the decoder will
            y_hat, scales, means = self._context(scales, means, lambda s, m, sc, mu: round_ste(self._group(y, s), mu))
            y_n = add_noise(y)
            y_lik = self.gaussian_conditional.likelihood(y_n, scales, means)
            y_dec = y_n if self.train_quant == "noise" else y_hat
        else:
            y_hat, scales, means = self._context(scales, means, lambda s, m, sc, mu: torch.round(self._group(y, s) - mu) + mu)
            y_lik = self.gaussian_conditional.likelihood(y_hat, scales, means)
            y_dec = y_hat
        x_hat = self.g_s(self._inverse_gain(y_dec)) if self.synthesis_in_training or not self.training else None
        return {"x_hat": x_hat, "likelihoods": {"y": y_lik, "z": z_lik}}

    @torch.no_grad()
    def compress_latents(self, lat: tuple) -> dict:
        from ..entropy.coder import encode_chunks

        y, z = lat
        z_str = self.entropy_bottleneck.compress(z)
        z_hat = torch.round(z)
        chunks = []

        def code(s, mask, sc, mu):
            q = torch.round(self._group(y, s) - mu)
            m = mask.expand_as(q)
            chunks.append((q[m].to(torch.int64).numpy(), self.gaussian_conditional.index(sc[m])))
            return q + mu

        with single_thread():
            scales, means = self.h_s(z_hat).chunk(2, 1)
            self._context(scales, means.contiguous(), code)
        y_str = encode_chunks(chunks, self.gaussian_conditional.tables.get())
        return {"strings": [y_str, z_str], "shape": tuple(z.shape[-2:])}

    def _latents(self, strings: list[bytes], shape) -> torch.Tensor:
        from ..entropy.coder import ChunkDecoder

        z_hat = self.entropy_bottleneck.decompress(strings[1], (1, self.N, *shape))
        dec = ChunkDecoder(strings[0], self.gaussian_conditional.tables.get())

        def code(s, mask, sc, mu):
            m = mask.expand_as(mu)
            q = torch.zeros_like(mu)
            q[m] = torch.from_numpy(dec.decode(self.gaussian_conditional.index(sc[m])).astype(np.float32))
            return q + mu

        with single_thread():
            scales, means = self.h_s(z_hat).chunk(2, 1)
            y_hat, _, _ = self._context(scales, means.contiguous(), code)
        dec.finish()
        return y_hat

    def _soft_y(self, y, scales, means, quantise) -> tuple:
        return self._context(scales, means, lambda s, m, sc, mu: quantise(self._group(y, s) - mu) + mu)


class GainedContextHyperprior(ContextHyperprior):
    """ContextHyperprior at every rate: one network, one gain vector per trained lambda. Cui et
    al., "Asymmetric gained deep image compression with continuous rate adaptation", CVPR 2021
    (https://arxiv.org/abs/2003.02012)::

        y = g_a(x) * gain(q)               (B,M,h,w) times (M,): each channel's quantisation step 1/gain
        y_hat coded as ContextHyperprior codes y (z = h_a(y), context passes, unit bins)
        x_hat = g_s(y_hat * inverse_gain(q))

    ``log_gain`` and ``log_inverse_gain`` (LEVELS x M) hold the logarithms of the gain vectors of
    the trained levels 1..LEVELS (the lambdas of codecs.learned.LAMBDAS, which training draws one
    per batch). A quality q in [1, LEVELS] between levels l and l + 1 (t = q - l) takes
    ``gain = gain_l^(1-t) * gain_{l+1}^t``, the exponential interpolation of the paper, i.e. the
    linear one of the logarithms; an integer q takes its level's vectors exactly. ``quality`` is
    the level the transforms use (set by the codec before coding, by training per batch).

    The gains act on y only: the hyper latent z is h_a of the scaled y, and the entropy coding
    (h_s, the context nets, the tables) runs on the scaled, unit-step latents, so encoder and
    decoder need not agree on the gains bit for bit: only g_s reads the inverse gains.
    """

    #: trained levels (rows of the gain tables)
    LEVELS = 6

    def __init__(self, N: int = 128, M: int = 192, refine: int = 0, groups: tuple[int, ...] | None = None):
        super().__init__(N, M, refine, groups)
        self.log_gain = nn.Parameter(torch.zeros(self.LEVELS, M))
        self.log_inverse_gain = nn.Parameter(torch.zeros(self.LEVELS, M))
        self.quality: float = 1.0

    def init_gains(self, lambdas, lmbda: float) -> None:
        """Gains for transforms trained at ``lmbda``: 1 where a level's lambda is ``lmbda``, and
        per level the constant sqrt(lambda_l / lmbda) (its inverse on the way back). At high rate
        the best quantisation step of a loss ``lambda * MSE + bits`` goes as 1/sqrt(lambda)."""
        import math

        if len(lambdas) != self.LEVELS:
            raise ValueError(f"{len(lambdas)} lambdas for {self.LEVELS} levels")
        with torch.no_grad():
            for i, lam in enumerate(lambdas):
                self.log_gain[i].fill_(0.5 * math.log(lam / lmbda))
                self.log_inverse_gain[i].fill_(-0.5 * math.log(lam / lmbda))

    def gains(self, quality: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(gain, inverse gain), each 1 x M x 1 x 1, of a quality in [1, LEVELS]."""
        q = float(self.quality if quality is None else quality)
        if not 1 <= q <= self.LEVELS:
            raise ValueError(f"quality {q} is outside 1..{self.LEVELS}")
        lo = min(int(q), self.LEVELS - 1)
        t = q - lo
        if t == 0:
            g, ig = self.log_gain[lo - 1], self.log_inverse_gain[lo - 1]
        else:
            g = (1 - t) * self.log_gain[lo - 1] + t * self.log_gain[lo]
            ig = (1 - t) * self.log_inverse_gain[lo - 1] + t * self.log_inverse_gain[lo]
        return torch.exp(g)[None, :, None, None], torch.exp(ig)[None, :, None, None]

    def _gain(self, y: torch.Tensor) -> torch.Tensor:
        return y * self.gains()[0]

    def _inverse_gain(self, y_hat: torch.Tensor) -> torch.Tensor:
        return y_hat * self.gains()[1]


MODELS = {"factorized": FactorizedPrior, "hyperprior": MeanScaleHyperprior, "hyperprior-ctx": ContextHyperprior,
          "hyperprior-ctx-vr": GainedContextHyperprior}


def build(name: str, N: int, M: int, refine: int = 0, groups: tuple[int, ...] | None = None) -> nn.Module:
    """A fresh model of architecture ``name`` (a key of MODELS), with a Refiner of ``refine``
    channels ending g_s where that is > 0 and, for a context model, the channel ``groups``
    (None: the default; ValueError for a model without channel groups)."""
    try:
        cls = MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(MODELS)}") from None
    if groups is None:
        return cls(N=N, M=M, refine=refine)
    if not issubclass(cls, ContextHyperprior):
        raise ValueError(f"{name} has no channel groups")
    return cls(N=N, M=M, refine=refine, groups=groups)
