"""Function-preserving widening of a hyperprior's latent (nn.widen) and train's --init with a larger M."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from mlcompress.errors import UsageError  # noqa: E402
from mlcompress.nn.models import ContextHyperprior, FactorizedPrior, MeanScaleHyperprior  # noqa: E402
from mlcompress.nn.widen import widen_latents  # noqa: E402
from mlcompress.train.loop import init_from, rd_loss  # noqa: E402

N, M0, M1 = 16, 16, 32
#: each model class, its constructor's extra arguments, and where its old latent channels go
CASES = {
    "hyperprior": (MeanScaleHyperprior, {}, torch.arange(M0)),
    "hyperprior-ctx": (ContextHyperprior, {},
                       torch.cat([s * (M1 // 4) + torch.arange(M0 // 4) for s in range(4)])),
}


def _trained_like(cls, kw):
    """A narrow model whose zero-initialised layers (context nets, Refiner) are not zero, so that
    widening has every kind of weight to carry over; entropy tables frozen."""
    torch.manual_seed(1)
    src = cls(N, M0, refine=4, **kw)
    with torch.no_grad():
        for p in src.parameters():
            p.add_(0.05 * torch.randn_like(p))
    src.update()
    return src


@pytest.fixture(params=sorted(CASES))
def pair(request):
    cls, kw, old = CASES[request.param]
    src = _trained_like(cls, kw)
    wide = cls(N, M1, refine=4, **kw)
    widen_latents(src, wide)
    return src.eval(), wide.eval(), old


def test_widened_model_decodes_the_same_image_and_codes_old_channels_alike(pair):
    src, wide, old = pair
    x = torch.rand(1, 3, 128, 128, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a, b = src(x), wide(x)
    assert torch.allclose(a["x_hat"], b["x_hat"], atol=1e-5)
    assert torch.allclose(a["likelihoods"]["y"], b["likelihoods"]["y"][:, old], atol=1e-6)
    assert torch.equal(a["likelihoods"]["z"], b["likelihoods"]["z"])
    new = torch.ones(M1, dtype=torch.bool)
    new[old] = False
    extra_bits = -torch.log2(b["likelihoods"]["y"][:, new]).sum().item()
    assert extra_bits < 0.1  # the new channels start near 0 with the smallest scale


def test_widened_model_files_decode_to_the_narrow_models_pixels(pair):
    src, wide, _ = pair
    wide.update()
    x = torch.rand(1, 3, 128, 128, generator=torch.Generator().manual_seed(2))
    enc_a, enc_b = src.compress(x), wide.compress(x)
    size_a, size_b = sum(map(len, enc_a["strings"])), sum(map(len, enc_b["strings"]))
    assert size_b <= size_a * 1.02 + 16
    da = src.decompress(enc_a["strings"], enc_a["shape"])
    db = wide.decompress(enc_b["strings"], enc_b["shape"])
    assert (da - db).abs().max().item() < 1e-5


def test_every_new_latent_channel_gets_a_gradient_in_training(pair):
    _, wide, old = pair
    wide.train()
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    rd_loss(wide(x), x, 0.05)["loss"].backward()
    new = torch.ones(M1, dtype=torch.bool)
    new[old] = False
    # g_s reads the new channels with zero weights, which still learn (the channels are not 0)
    assert (wide.g_s[0].weight.grad[new].abs().sum((1, 2, 3)) > 0).all()
    # h_s's outputs for the new channels (scales, then means) start at zero and learn too
    rows = torch.cat([new, new])
    assert wide.h_s[-1].weight.grad[rows].abs().sum() > 0


@pytest.mark.parametrize("change", [
    {"M": M0 // 2},  # narrower
    {"N": N * 2},  # another transform width
    {"refine": 0},  # no Refiner
])
def test_widening_refuses_anything_but_a_larger_M(change):
    src = _trained_like(MeanScaleHyperprior, {})
    args = {"N": N, "M": M1, "refine": 4} | change
    with pytest.raises(ValueError):
        widen_latents(src, MeanScaleHyperprior(**args))


def test_a_factorized_model_does_not_widen():
    torch.manual_seed(0)
    with pytest.raises(ValueError, match="only hyperprior"):
        widen_latents(FactorizedPrior(N, M0), FactorizedPrior(N, M1))


def test_train_init_with_a_larger_M_widens_the_weights():
    src = _trained_like(ContextHyperprior, {})
    wide = ContextHyperprior(N, M1, refine=4)
    said = []
    init_from(wide, src, log=said.append)
    assert said == [f"init: ContextHyperprior widened from M={M0} to M={M1} (decodes as before)"]
    assert torch.equal(wide.g_a[0].weight, src.g_a[0].weight)
    with pytest.raises(UsageError, match="only hyperprior"):
        init_from(FactorizedPrior(N, M1), FactorizedPrior(N, M0))


def test_a_context_model_with_uneven_channel_groups_does_not_widen():
    with pytest.raises(ValueError, match="equal channel groups"):
        widen_latents(ContextHyperprior(N, M0, groups=(2, 2, 4, 8)), ContextHyperprior(N, M1))
