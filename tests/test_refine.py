"""Encoder-side latent refinement (nn.refine) and the `hyperprior-sga` codec that uses it."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")

import mlcompress  # noqa: E402
from mlcompress import container as mlc  # noqa: E402
from mlcompress import registry  # noqa: E402
from mlcompress.codecs import learned  # noqa: E402
from mlcompress.errors import CorruptDataError, UnsupportedError  # noqa: E402
from mlcompress.nn.refine import refine, sga_round  # noqa: E402
from conftest import LEARNED_ARCHS, tiny_model  # noqa: E402


#: each refining encoder and the codec whose files it writes
REFINERS = {"hyperprior-sga": "hyperprior", "hyperprior-ctx-sga": "hyperprior-ctx",
            "hyperprior-ctx-vr-sga": "hyperprior-ctx-vr"}


@pytest.fixture
def sga(tiny_weights, monkeypatch):
    for name in ("hyperprior", "hyperprior-sga"):
        monkeypatch.setattr(registry.get(name), "weights_dir", tiny_weights)
    return registry.get("hyperprior-sga")


def test_sga_round_mixes_floor_and_ceiling_and_becomes_rounding_as_the_temperature_falls():
    gen = torch.Generator().manual_seed(0)
    v = torch.tensor([-1.7, -0.2, 0.1, 0.3, 0.69, 2.45, 7.9])
    soft = sga_round(v, 0.5, gen)
    assert torch.all(soft >= torch.floor(v)) and torch.all(soft <= torch.floor(v) + 1)
    assert not torch.equal(soft, torch.round(v))
    assert torch.allclose(sga_round(v, 1e-3, gen), torch.round(v), atol=1e-4)


def test_sga_round_passes_gradients_to_its_input():
    v = torch.tensor([0.2, 1.6], requires_grad=True)
    sga_round(v, 0.3, torch.Generator().manual_seed(1)).sum().backward()
    assert v.grad is not None and torch.all(v.grad != 0)


@pytest.mark.parametrize("arch", LEARNED_ARCHS)
def test_zero_steps_give_the_encoder_latents_and_refining_leaves_the_model_as_it_was(arch):
    model = tiny_model(arch).eval()
    model.update()
    x = torch.rand(1, 3, 64, 64)
    plain = model.latents(x)
    assert all(torch.equal(a, b) for a, b in zip(refine(model, x, 0.013, 0), plain))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    refined = refine(model, x, 0.013, 3)
    assert [t.shape for t in refined] == [t.shape for t in plain]
    assert not all(torch.equal(a, b) for a, b in zip(refined, plain))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.requires_grad for p in model.parameters())
    assert model.compress_latents(plain) == model.compress(x)


@pytest.mark.parametrize("arch", ["hyperprior", "hyperprior-ctx"])
def test_refinement_fits_the_latents_through_the_refiner_at_every_step(arch):
    model = tiny_model(arch, refine=4).eval()
    model.update()
    layers, calls = len(model.g_s), []
    model.g_s[-1].register_forward_hook(lambda mod, inp, out: calls.append(torch.is_grad_enabled()))
    refine(model, torch.rand(1, 3, 64, 64), 0.013, 3)
    assert calls == [True] * 3  # on the private copy, with autograd: the loss sees the Refiner
    assert len(model.g_s) == layers and not model.g_s[-1].training  # the caller's model is as it was
    refine(model, torch.rand(1, 3, 64, 64), 0.013, 3, through_refiner=False)
    assert calls == [True] * 3  # revision 1 stops before it


def test_bfloat16_refinement_lowers_the_cost_about_as_much_as_float32(kodak_images):
    """Revision 3's bfloat16 autocast: on a Kodak crop with the shipped hyperprior-ctx q3 weights,
    the latents it reaches cost (the model's own soft estimate, rounded) within 1 % of float32's."""
    if not learned.weights_path("hyperprior-ctx-q3").is_file():
        pytest.skip("no shipped hyperprior-ctx-q3 weights yet")
    from mlcompress.weights import load_weights

    model = load_weights(learned.weights_path("hyperprior-ctx-q3"))[0]
    img = np.ascontiguousarray(kodak_images[1][128:256, 192:384])  # kodim07, 192x128
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float().div(255)
    lmbda = learned.LAMBDAS[2]

    def cost(lat):
        with torch.no_grad():
            x_hat, bits = model.soft_rd(lat, torch.round)
        return float(lmbda * 255**2 * torch.mean((x_hat.clamp(0, 1) - x) ** 2) + bits / img[..., 0].size)

    plain = cost(model.latents(x))
    fp32, bf16 = (cost(refine(model, x, lmbda, 20, lr=0.08, tau_max=0.3, bf16=b)) for b in (False, True))
    assert fp32 < 0.97 * plain and bf16 < 0.97 * plain, (plain, fp32, bf16)
    assert abs(bf16 - fp32) < 0.01 * fp32, (fp32, bf16)


@pytest.mark.parametrize("native", [True, False], ids=["bf16-cpu", "no-bf16-cpu"])
@pytest.mark.parametrize("name", sorted(REFINERS))
def test_a_refining_encoder_runs_its_revisions_recipe_and_its_tag_names_the_revision(name, native, tiny_weights, monkeypatch, rng):
    """The recipe is the revision's, except that bfloat16 runs only on a CPU that has it."""
    import mlcompress.nn.refine as nn_refine
    import mlcompress.nn.restore as nn_restore

    monkeypatch.setattr(nn_restore, "native_bf16", lambda: native)
    codec = registry.get(name)
    monkeypatch.setattr(codec, "weights_dir", tiny_weights)
    seen = []
    real = nn_refine.refine
    monkeypatch.setattr(nn_refine, "refine", lambda *a, **k: seen.append(k) or real(*a, **k))
    codec.encode(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8), 3)
    recipe = learned.REFINE_REVISIONS[codec.refine_revision]
    assert seen == [{**recipe, "bf16": native} if "bf16" in recipe else recipe]
    assert seen[0]["through_refiner"] == (codec.refine_revision > 1)
    assert codec.weights_tag(3).endswith(f"-sga{seen[0]['steps']}r{codec.refine_revision}") == (codec.refine_revision > 1)


@pytest.mark.parametrize("name", sorted(REFINERS))
def test_a_refining_encoder_writes_files_of_its_plain_codec_that_every_decoder_reads(name, tiny_weights, monkeypatch, rng):
    plain = REFINERS[name]
    for n in (name, plain):
        monkeypatch.setattr(registry.get(n), "weights_dir", tiny_weights)
    sga = registry.get(name)
    img = rng.integers(0, 256, (40, 70, 3), dtype=np.uint8)
    data = sga.encode(img, 3)
    c = mlc.unpack(data)
    assert c.codec == plain and c.model == registry.get(plain).model_name(3)
    out = mlcompress.decode(data)
    assert out.shape == img.shape
    assert np.array_equal(out, registry.get(plain).decode(data))
    assert np.array_equal(out, sga.decode(data))
    assert data != registry.get(plain).encode(img, 3)


def test_the_variable_rate_refining_encoder_fits_a_fractional_quality_to_its_interpolated_lambda(tiny_weights, monkeypatch, rng):
    import mlcompress.nn.refine as nn_refine

    for n in ("hyperprior-ctx-vr", "hyperprior-ctx-vr-sga"):
        monkeypatch.setattr(registry.get(n), "weights_dir", tiny_weights)
    sga = registry.get("hyperprior-ctx-vr-sga")
    seen = []
    real = nn_refine.refine
    monkeypatch.setattr(nn_refine, "refine", lambda m, x, lmbda, **k: seen.append((m.quality, lmbda)) or real(m, x, lmbda, **k))
    img = rng.integers(0, 256, (40, 70, 3), dtype=np.uint8)
    data = sga.encode(img, 2.5)
    lam = (learned.LAMBDAS[1] * learned.LAMBDAS[2]) ** 0.5
    assert len(seen) == 1 and seen[0][0] == 2.5 and seen[0][1] == pytest.approx(lam)
    assert mlc.unpack(data).params == {"quality": 2.5}
    assert np.array_equal(registry.get("hyperprior-ctx-vr").decode(data), mlcompress.decode(data))


def test_hyperprior_sga_refuses_files_of_other_codecs(sga):
    with pytest.raises(CorruptDataError):
        sga.decode(registry.get("rle").encode(np.zeros((4, 4, 3), np.uint8)))


def test_images_too_large_to_refine_are_refused_before_any_work(sga, monkeypatch):
    monkeypatch.setattr(learned, "REFINE_MAX_PIXELS", 64 * 64)
    sga.encode(np.zeros((64, 64, 3), np.uint8), 3)
    with pytest.raises(UnsupportedError, match="hyperprior"):
        sga.encode(np.zeros((65, 64, 3), np.uint8), 3)


@pytest.mark.parametrize("name,quality", [("hyperprior-sga", 3), ("hyperprior-ctx-vr-sga", 2.5)])
def test_refinement_lowers_the_real_rate_distortion_cost_of_a_kodak_crop(name, quality, kodak_images):
    """lambda * 255^2 * MSE + bpp measured on the decoded file, with the shipped weights; the
    variable-rate model's at a quality between two trained levels, with its interpolated lambda."""
    from mlcompress.metrics import psnr

    plain = REFINERS[name]
    if not learned.weights_path(registry.get(plain).model_name(quality)).is_file():
        pytest.skip(f"no shipped {plain} weights for quality {quality} yet")
    img = np.ascontiguousarray(kodak_images[1][128:320, 192:448])  # kodim07, 256x192
    lmbda = registry.get(name).lmbda(quality)
    costs = {}
    for n in (plain, name):
        data = registry.get(n).encode(img, quality)
        out = mlcompress.decode(data)
        mse = np.mean((out.astype(np.float64) - img) ** 2)
        costs[n] = (lmbda * mse + 8 * len(data) / img[..., 0].size, psnr(img, out))
    assert costs[name][0] < 0.97 * costs[plain][0], costs
