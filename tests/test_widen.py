"""Function-preserving widening of a hyperprior's transforms and latent (nn.widen) and train's
--init with a larger N or M."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from mlcompress.errors import UsageError  # noqa: E402
from mlcompress.nn.models import ContextHyperprior, FactorizedPrior, MeanScaleHyperprior  # noqa: E402
from mlcompress.nn.widen import widen  # noqa: E402
from mlcompress.train.loop import init_from, rd_loss  # noqa: E402

N0, M0 = 16, 16
MODELS = {"hyperprior": MeanScaleHyperprior, "hyperprior-ctx": ContextHyperprior}
#: the wide sizes: a larger latent, wider transforms, both
SIZES = {"M": (N0, 2 * M0), "N": (2 * N0, M0), "N+M": (2 * N0, 2 * M0)}


def _old_latents(cls, m1: int) -> torch.Tensor:
    """Where the narrow model's latent channels go in a model with m1 of them."""
    if cls is MeanScaleHyperprior or m1 == M0:
        return torch.arange(M0)
    return torch.cat([s * (m1 // 4) + torch.arange(M0 // 4) for s in range(4)])


def _trained_like(cls, **kw):
    """A narrow model whose zero-initialised layers (context nets, Refiner) are not zero, so that
    widening has every kind of weight to carry over; entropy tables frozen."""
    torch.manual_seed(1)
    src = cls(N0, M0, refine=4, **kw)
    with torch.no_grad():
        for p in src.parameters():
            p.add_(0.05 * torch.randn_like(p))
    src.update()
    return src


@pytest.fixture(params=[(m, s) for m in sorted(MODELS) for s in SIZES], ids="-".join)
def pair(request):
    cls = MODELS[request.param[0]]
    n1, m1 = SIZES[request.param[1]]
    src = _trained_like(cls)
    wide = cls(n1, m1, refine=4)
    widen(src, wide)
    return src.eval(), wide.eval(), _old_latents(cls, m1)


def test_widened_model_decodes_the_same_image_and_codes_old_channels_alike(pair):
    src, wide, old = pair
    x = torch.rand(1, 3, 128, 128, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a, b = src(x), wide(x)
    assert torch.allclose(a["x_hat"], b["x_hat"], atol=1e-5)
    assert torch.allclose(a["likelihoods"]["y"], b["likelihoods"]["y"][:, old], atol=1e-6)
    assert torch.allclose(a["likelihoods"]["z"], b["likelihoods"]["z"][:, :N0], atol=1e-6)
    new = torch.ones(wide.M, dtype=torch.bool)
    new[old] = False
    extra_bits = -torch.log2(b["likelihoods"]["y"][:, new]).sum().item()
    assert extra_bits < 0.1  # the new channels start near 0 with the smallest scale
    # the new hyper-latent channels round to 0, coded as the old channel that codes 0 most cheaply
    z = wide.h_a(wide.g_a(x))
    assert torch.equal(torch.round(z[:, N0:]), torch.zeros_like(z[:, N0:]))
    cheapest = a["likelihoods"]["z"].new_tensor(
        src.entropy_bottleneck.likelihood(torch.zeros(1, N0, 1)).max().item())
    assert torch.allclose(b["likelihoods"]["z"][:, N0:], cheapest.expand_as(b["likelihoods"]["z"][:, N0:]))


def test_widened_model_files_decode_to_the_narrow_models_pixels(pair):
    src, wide, _ = pair
    wide.update()
    x = torch.rand(1, 3, 128, 128, generator=torch.Generator().manual_seed(2))
    enc_a, enc_b = src.compress(x), wide.compress(x)
    size_a, size_b = sum(map(len, enc_a["strings"])), sum(map(len, enc_b["strings"]))
    # beyond the old file, only the new hyper-latent channels' zeros (at the cheapest old rate)
    zeros = (wide.N - N0) * enc_b["shape"][0] * enc_b["shape"][1]
    p0 = src.entropy_bottleneck.likelihood(torch.zeros(1, N0, 1)).max().item()
    assert size_b <= size_a * 1.02 + 16 + zeros * -math.log2(p0) / 8
    da = src.decompress(enc_a["strings"], enc_a["shape"])
    db = wide.decompress(enc_b["strings"], enc_b["shape"])
    assert (da - db).abs().max().item() < 1e-5


def test_every_new_channel_gets_a_gradient_in_training(pair):
    src, wide, old = pair
    wide.train()
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    rd_loss(wide(x), x, 0.05)["loss"].backward()
    new = torch.ones(wide.M, dtype=torch.bool)
    new[old] = False
    if new.any():
        # g_s reads the new channels with zero weights, which still learn (the channels are not 0)
        assert (wide.g_s[0].weight.grad[new].abs().sum((1, 2, 3)) > 0).all()
        # h_s's outputs for the new channels (scales, then means) start at zero and learn too
        rows = torch.cat([new, new])
        assert wide.h_s[-1].weight.grad[rows].abs().sum() > 0
    if wide.N > N0:
        # every layer reads the new units below it with zero weights, which learn
        for conv, reads in ((wide.g_a[2], 1), (wide.g_a[6], 1), (wide.g_s[2], 0), (wide.g_s[6], 0),
                            (wide.h_a[2], 1), (wide.h_s[0], 0)):
            grad = conv.weight.grad.transpose(0, reads)[N0:]
            assert (grad.abs().flatten(1).sum(1) > 0).all()


@pytest.mark.parametrize("change", [
    {"M": M0 // 2},  # a narrower latent
    {"N": N0 // 2},  # narrower transforms
    {"N": N0, "M": M0},  # the same size
    {"refine": 0},  # no Refiner
])
def test_widening_refuses_anything_but_a_larger_N_or_M(change):
    src = _trained_like(MeanScaleHyperprior)
    args = {"N": 2 * N0, "M": 2 * M0, "refine": 4} | change
    with pytest.raises(ValueError, match="at least as large"):
        widen(src, MeanScaleHyperprior(**args))


def test_a_factorized_model_does_not_widen():
    torch.manual_seed(0)
    with pytest.raises(ValueError, match="only hyperprior"):
        widen(FactorizedPrior(N0, M0), FactorizedPrior(N0, 2 * M0))


def test_train_init_with_a_larger_N_and_M_widens_the_weights():
    src = _trained_like(ContextHyperprior)
    wide = ContextHyperprior(2 * N0, 2 * M0, refine=4)
    said = []
    init_from(wide, src, log=said.append)
    assert said == [f"init: ContextHyperprior widened from N={N0}, M={M0} to N={2 * N0}, M={2 * M0} "
                    "(decodes as before)"]
    assert torch.equal(wide.g_a[0].weight[:N0], src.g_a[0].weight)
    with pytest.raises(UsageError, match="only hyperprior"):
        init_from(FactorizedPrior(N0, 2 * M0), FactorizedPrior(N0, M0))


def test_a_context_model_with_uneven_channel_groups_widens_its_transforms_but_not_its_latent():
    groups = (2, 2, 4, 8)
    with pytest.raises(ValueError, match="equal channel groups"):
        widen(ContextHyperprior(N0, M0, groups=groups), ContextHyperprior(N0, 2 * M0))
    src = _trained_like(ContextHyperprior, groups=groups).eval()
    wide = ContextHyperprior(2 * N0, M0, groups=groups).eval()
    with pytest.raises(ValueError, match="Refiner"):
        widen(src, wide)
    wide = ContextHyperprior(2 * N0, M0, refine=4, groups=groups).eval()
    widen(src, wide)
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        assert torch.allclose(src(x)["x_hat"], wide(x)["x_hat"], atol=1e-5)
    with pytest.raises(ValueError, match="keeps the channel groups"):
        widen(src, ContextHyperprior(2 * N0, M0, refine=4))
