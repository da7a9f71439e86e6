"""train.accel: bfloat16 autocast of the transforms' inner layers, float32 at both ends."""

from __future__ import annotations

import copy

import pytest

torch = pytest.importorskip("torch")

from mlcompress.nn.models import build  # noqa: E402
from mlcompress.train.accel import bf16_transforms  # noqa: E402


def _model():
    torch.manual_seed(0)
    return build("hyperprior", 8, 8, refine=4).to(memory_format=torch.channels_last)


def test_only_the_layers_between_the_first_and_last_convolution_run_in_bf16():
    model = _model().train()
    bf16_transforms(model, "cpu")
    seen = {}
    for name, seq in (("g_a", model.g_a), ("g_s", model.g_s)):
        for i, layer in enumerate(seq):
            layer.register_forward_hook(lambda m, inp, out, key=f"{name}.{i}": seen.__setitem__(key, out.dtype))
    model(torch.rand(2, 3, 64, 64))
    convs = {f"{t}.{i}" for t in ("g_a", "g_s") for i in (0, 2, 4, 6)}
    assert {k for k in convs if seen[k] == torch.bfloat16} == {"g_a.2", "g_a.4", "g_s.2", "g_s.4"}
    assert {seen[k] for k in ("g_a.0", "g_a.6", "g_s.0", "g_s.6", "g_s.7")} == {torch.float32}


def test_the_wrapped_model_keeps_its_state_dict_and_evaluates_in_float32_bit_for_bit():
    model = _model()
    plain = copy.deepcopy(model).eval()
    bf16_transforms(model, "cpu")
    assert model.state_dict().keys() == plain.state_dict().keys()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        a, b = plain(x), model.eval()(x)
    assert torch.equal(a["x_hat"], b["x_hat"])
    assert all(torch.equal(a["likelihoods"][k], b["likelihoods"][k]) for k in a["likelihoods"])


def test_a_bf16_training_step_gives_nearly_the_float32_loss_and_gradients():
    from mlcompress.train.loop import rd_loss

    x = torch.rand(2, 3, 64, 64)
    out = []
    for bf16 in (False, True):
        model = _model().train()
        if bf16:
            bf16_transforms(model, "cpu")
        torch.manual_seed(1)
        res = rd_loss(model(x), x, 0.01)
        res["loss"].backward()
        out.append((float(res["loss"].detach()), torch.cat([p.grad.flatten() for p in model.g_s.parameters()])))
    (l32, g32), (l16, g16) = out
    assert l16 != l32 and abs(l16 - l32) / l32 < 0.01
    assert torch.nn.functional.cosine_similarity(g32, g16, dim=0) > 0.99
