"""The rate-distortion training loop: it learns, checkpoints, resumes exactly and exports."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mlcompress.train.loop import TrainConfig, rd_loss, to_tensor, train  # noqa: E402


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    """Four synthetic 112x120 PNG images (64x64 crops fit after downscaling by 0.6)."""
    from PIL import Image

    d = tmp_path_factory.mktemp("train")
    yy, xx = np.mgrid[0:112, 0:120]
    for i in range(4):
        img = np.stack([(xx * (i + 1)) % 256, (yy * 2 + i * 40) % 256, ((xx + yy) * 3) % 256], 2)
        Image.fromarray(img.astype(np.uint8)).save(d / f"img{i}.png")
    return d


def _cfg(tiny_data, out, steps, **kw):
    base = dict(model="hyperprior", data=str(tiny_data), lmbda=0.01, steps=steps, out=str(out), N=8, M=8,
                batch=2, crop=64, lr=1e-3, threads=1, seed=3, progress=False, eval_every=2)
    base.update(kw)
    return TrainConfig(**base)


@pytest.mark.parametrize("arch", ["factorized", "hyperprior"])
def test_a_few_training_steps_lower_the_loss_on_a_fixed_batch(arch, tiny_data):
    from mlcompress.nn.models import build
    from mlcompress.train.data import CropSampler

    torch.manual_seed(0)
    model = build(arch, 8, 8).train()
    x = to_tensor(CropSampler(tiny_data, 64).batch(np.random.default_rng(0), 2))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def loss():
        torch.manual_seed(1)  # the same quantisation noise every time
        return rd_loss(model(x), x, 0.01)["loss"]

    before = float(loss().detach())
    for _ in range(3):
        opt.zero_grad()
        loss().backward()
        opt.step()
    assert float(loss().detach()) < before


@pytest.mark.parametrize("arch", ["factorized", "hyperprior"])
def test_round_quantisation_trains_the_decoder_on_the_latents_it_will_decode_and_the_rate_on_noisy_ones(
        arch, tiny_data):
    from mlcompress.nn.models import build
    from mlcompress.train.data import CropSampler

    torch.manual_seed(0)
    model = build(arch, 8, 8)
    x = to_tensor(CropSampler(tiny_data, 64).batch(np.random.default_rng(0), 2))
    with torch.no_grad():
        decoded = model.eval()(x)["x_hat"]  # eval: rounded latents, as compress/decompress code them
    model.train()
    outs = {}
    for mode in ("noise", "round"):
        model.train_quant = mode
        torch.manual_seed(1)
        outs[mode] = model(x)
    assert torch.allclose(outs["round"]["x_hat"], decoded, atol=1e-5)
    assert not torch.allclose(outs["noise"]["x_hat"], decoded, atol=1e-3)
    first = "y" if arch == "factorized" else "z"  # the latent under the learned factorized prior
    assert torch.equal(outs["noise"]["likelihoods"][first], outs["round"]["likelihoods"][first])  # noisy rate
    torch.mean((outs["round"]["x_hat"] - x) ** 2).backward()  # straight through to the encoder
    assert model.g_a[0].weight.grad.abs().sum() > 0


def test_an_unknown_quantisation_mode_is_a_usage_error(tiny_data, tmp_path):
    from mlcompress.errors import UsageError

    with pytest.raises(UsageError, match="quant"):
        train(_cfg(tiny_data, tmp_path / "q.pt", 1, quant="floor"))
    assert not (tmp_path / "q.pt").exists()


def test_the_progress_bar_shows_the_running_loss_without_warnings(tiny_data, tmp_path, capsys):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. converting a tensor that requires grad to a float
        train(_cfg(tiny_data, tmp_path / "p.pt", 10, progress=True, eval_every=0))
    assert "loss=" in capsys.readouterr().err


def test_resume_continues_exactly_like_an_uninterrupted_run(tiny_data, tmp_path):
    train(_cfg(tiny_data, tmp_path / "a.pt", 4))
    train(_cfg(tiny_data, tmp_path / "a.pt", 6, resume=True))
    train(_cfg(tiny_data, tmp_path / "b.pt", 6))
    a = torch.load(tmp_path / "a.pt", weights_only=False)
    b = torch.load(tmp_path / "b.pt", weights_only=False)
    assert a["step"] == b["step"] == 6
    for k, v in a["model"].items():
        assert torch.equal(v, b["model"][k]), k
    assert [e["step"] for e in a["evals"]] == [0, 2, 4, 6]
    assert a["evals"] == b["evals"]  # the fixed-crop losses neither draw random numbers nor differ
    train(_cfg(tiny_data, tmp_path / "a.pt", 7, resume=True, eval_every=4))
    assert [e["step"] for e in torch.load(tmp_path / "a.pt", weights_only=False)["evals"]] == [0, 2, 4, 6, 7]


def test_fixed_crop_losses_measure_the_rounded_latents_on_the_same_crops_every_time(tiny_data, tmp_path):
    from mlcompress.nn.models import build
    from mlcompress.train.loop import fixed_crop_loss

    train(_cfg(tiny_data, tmp_path / "f.pt", 2, model="factorized"))
    ck = torch.load(tmp_path / "f.pt", weights_only=False)
    model = build("factorized", 8, 8)
    model.load_state_dict(ck["model"])
    model.train()
    x = to_tensor(np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8))
    first = fixed_crop_loss(model, x, 0.01)
    assert model.training and fixed_crop_loss(model, x, 0.01) == first
    assert [e["step"] for e in ck["evals"]] == [0, 2] and ck["evals"][1]["loss"] > 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_training_on_cuda_without_a_gpu_is_refused_before_any_work(tiny_data, tmp_path):
    from mlcompress.errors import UsageError

    with pytest.raises(UsageError, match="no CUDA device"):
        train(_cfg(tiny_data, tmp_path / "c.pt", 2, device="cuda"))
    assert not (tmp_path / "c.pt").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("arch", ["hyperprior", "hyperprior-ctx"])
def test_a_run_trained_on_cuda_checkpoints_cpu_tensors_and_resumes_on_the_cpu(arch, tiny_data, tmp_path):
    from mlcompress.train.loop import load_checkpoint

    ck = tmp_path / "g.pt"
    train(_cfg(tiny_data, ck, 3, model=arch, device="cuda"))
    state = load_checkpoint(ck)
    assert state["step"] == 3 and all(v.device.type == "cpu" for v in state["model"].values())
    res = train(_cfg(tiny_data, ck, 5, model=arch, resume=True))
    assert res["step"] == 5 and np.isfinite(res["last"]["loss"])


def test_an_existing_checkpoint_is_not_overwritten_without_resume(tiny_data, tmp_path):
    from mlcompress.errors import UsageError

    (tmp_path / "c.pt").write_bytes(b"x")
    with pytest.raises(UsageError):
        train(_cfg(tiny_data, tmp_path / "c.pt", 1))


def test_export_writes_weights_and_recipe_that_the_codec_loads(tiny_data, tmp_path):

    from mlcompress.codecs.learned import load_model
    from mlcompress.train.export import export

    train(_cfg(tiny_data, tmp_path / "d.pt", 2))
    rec = export(tmp_path / "d.pt", "hyperprior-q3", tmp_path)
    assert json.loads((tmp_path / "hyperprior-q3.json").read_text())["steps"] == 2 == rec["steps"]
    model, digest = load_model(tmp_path / "hyperprior-q3.safetensors")
    assert digest.hex() == rec["weights_sha256"]
    enc = model.compress(torch.rand(1, 3, 64, 64))
    assert model.decompress(enc["strings"], enc["shape"]).shape == (1, 3, 64, 64)


def test_exporting_the_same_weights_twice_writes_identical_bytes_in_any_process(tmp_path):
    """The container records the weights' SHA-256, so re-exporting must not change the file."""
    import subprocess
    import sys

    from mlcompress.codecs.learned import load_model

    script = (
        "import sys, torch; from mlcompress.nn.models import build; "
        "from mlcompress.train.export import write_weights; torch.manual_seed(0); "
        "write_weights(build('hyperprior', 8, 8), 'hyperprior-q3', 0.013, sys.argv[1])"
    )
    blobs = []
    for i in range(3):
        out = tmp_path / str(i)
        subprocess.run([sys.executable, "-c", script, str(out)], check=True)
        blobs.append((out / "hyperprior-q3.safetensors").read_bytes())
    assert blobs[0] == blobs[1] == blobs[2]
    model, _ = load_model(tmp_path / "0" / "hyperprior-q3.safetensors")
    assert model.M == 8


def test_cli_train_and_export_run_end_to_end(tiny_data, tmp_path):
    from mlcompress.cli import main

    ck = tmp_path / "e.pt"
    assert main(["train", "factorized", "--data", str(tiny_data), "--lambda", "0.01", "--steps", "1",
                 "--out", str(ck), "--N", "8", "--M", "8", "--batch", "1", "--crop", "32",
                 "--threads", "1", "--quiet"]) == 0
    assert main(["export", str(ck), "--name", "factorized-q2", "--views", "2", "--out-dir", str(tmp_path / "v")]) == 2
    assert not (tmp_path / "v").exists()  # views are a restoration network's
    assert main(["export", str(ck), "--name", "factorized-q2", "--out-dir", str(tmp_path)]) == 0
    assert (tmp_path / "factorized-q2.safetensors").is_file()


@pytest.mark.parametrize("model, args, named", [
    ("factorized", ["--lambda", "0.01", "--steps", "5", "--max-steps", "1"], "--max-steps"),
    ("hyperprior-ctx", ["--lambda", "0.01", "--steps", "5", "--epochs", "2", "--val-split", "0.1"], "--epochs, --val-split"),
    ("cae-thesis", ["--lambda", "0.01", "--quant", "round"], "--lambda, --quant"),
    ("hyperprior", ["--lambda", "0.01", "--steps", "5", "--width", "48"], "--width"),
    ("factorized", ["--lambda", "0.01", "--steps", "5", "--depth", "11"], "--depth"),
    ("hyperprior", ["--lambda", "0.01", "--steps", "5", "--pairs-per-image", "8"], "--pairs-per-image"),
    ("restore-jpeg", ["--steps", "5", "--N", "32"], "--N"),
])
def test_cli_train_refuses_options_the_model_does_not_read_before_any_work(model, args, named, tiny_data, tmp_path, capsys):
    from mlcompress.cli import main

    out = tmp_path / "run"
    assert main(["train", model, "--data", str(tiny_data), "--out", str(out), "--quiet", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"does not take {named}" in err
    assert not out.exists()


_LOOP_ARGS = ["--lambda", "0.01", "--steps", "1"]
_CAE_ARGS = ["--max-steps", "1"]


@pytest.mark.parametrize("model, args, message", [
    ("hyperprior", ["--lambda", "-1", "--steps", "1"], "--lambda must be a positive number, got -1.0"),
    ("hyperprior", ["--lambda", "nan", "--steps", "1"], "--lambda must be a positive number, got nan"),
    ("factorized", ["--lambda", "inf", "--steps", "1"], "--lambda must be a positive number, got inf"),
    ("hyperprior", ["--lambda", "0.01", "--steps", "0"], "--steps must be at least 1, got 0"),
    ("hyperprior", [*_LOOP_ARGS, "--batch", "0"], "--batch must be at least 1, got 0"),
    ("hyperprior", [*_LOOP_ARGS, "--N", "0"], "--N must be at least 1, got 0"),
    ("hyperprior", [*_LOOP_ARGS, "--threads", "0"], "--threads must be at least 1, got 0"),
    ("hyperprior", [*_LOOP_ARGS, "--refine", "-1"], "--refine must be at least 0, got -1"),
    ("hyperprior", [*_LOOP_ARGS, "--seed", "-1"], "--seed must be at least 0, got -1"),
    ("hyperprior", [*_LOOP_ARGS, "--lr", "-1"], "--lr must be a number >= 0, got -1.0"),
    ("hyperprior", [*_LOOP_ARGS, "--eval-every", "-1"], "--eval-every must be at least 0, got -1"),
    ("hyperprior", [*_LOOP_ARGS, "--time-limit", "0"], "--time-limit must be a positive number, got 0.0"),
    ("hyperprior", [*_LOOP_ARGS, "--checkpoint-minutes", "-1"], "--checkpoint-minutes must be a positive number"),
    ("hyperprior", [*_LOOP_ARGS, "--crop", "96"], "--crop must be a multiple of 64 for hyperprior"),
    ("factorized", [*_LOOP_ARGS, "--crop", "0"], "--crop must be a multiple of 16 for factorized"),
    ("hyperprior-ctx", [*_LOOP_ARGS, "--M", "10"], "--M: M=10 is not a multiple of 4 (the default channel groups)"),
    ("hyperprior-ctx", [*_LOOP_ARGS, "--M", "12", "--groups", "4,4"], "--groups: channel groups 4,4 are not "
                                                                      "sizes >= 1 summing to M=12"),
    ("hyperprior-ctx", [*_LOOP_ARGS, "--groups", "8,x"], "argument --groups: '8,x' is not a list like 8,8,16,32,32"),
    ("hyperprior-ctx", [*_LOOP_ARGS, "--groups", "96,0"], "--groups: channel groups 96,0 are not sizes >= 1"),
    ("hyperprior", [*_LOOP_ARGS, "--groups", "48,48"], "--groups: hyperprior has no channel groups"),
    ("hyperprior-ctx-vr", ["--steps", "1", "--level-weights", "1,1,1"], "--level-weights: 6 numbers >= 0, not all 0"),
    ("hyperprior-ctx-vr", ["--steps", "1", "--level-weights", "0,0,0,0,0,0"], "--level-weights: 6 numbers >= 0"),
    ("hyperprior-ctx-vr", ["--steps", "1", "--level-weights", "1,1,1,1,1,-1"], "--level-weights: 6 numbers >= 0"),
    ("hyperprior-ctx-vr", ["--steps", "1", "--level-weights", "1,nan,1,1,1,1"], "--level-weights: 6 numbers >= 0"),
    ("hyperprior-ctx-vr", ["--steps", "1", "--level-weights", "1,a"], "argument --level-weights: '1,a' is not a list"),
    ("hyperprior", [*_LOOP_ARGS, "--level-weights", "1,1,1,1,1,1"], "--level-weights: hyperprior has one lambda"),
    ("cae-thesis", [*_CAE_ARGS, "--epochs", "0"], "--epochs must be at least 1, got 0"),
    ("cae-thesis", [*_CAE_ARGS, "--batch", "0"], "--batch must be at least 1, got 0"),
    ("cae-thesis", ["--max-steps", "0"], "--max-steps must be at least 1, got 0"),
    ("cae-thesis", [*_CAE_ARGS, "--lr", "inf"], "--lr must be a positive number, got inf"),
    ("restore-jpeg", ["--steps", "1", "--pairs-per-image", "0"], "--pairs-per-image must be at least 1, got 0"),
])
def test_cli_train_refuses_values_no_run_can_use_in_one_line_before_any_work(model, args, message, tiny_data,
                                                                                tmp_path, capsys):
    # 0 is a value, not "the default": it was once taken for the default (--batch 0 trained at 8)
    from mlcompress.cli import main

    out = tmp_path / "run"
    assert main(["train", model, "--data", str(tiny_data), "--out", str(out), "--quiet", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("mlcompress: error: ") and message in err
    assert not out.exists()


def _runs_q2_q4(tiny_data, tmp_path):
    """A run folder with one-step checkpoints of levels 2 and 4 (lambda 0.05)."""
    runs = tmp_path / "runs"
    runs.mkdir()
    train(_cfg(tiny_data, runs / "q2.pt", 1))
    train(_cfg(tiny_data, runs / "q4.pt", 1, lmbda=0.05))
    return runs


def test_publish_exports_every_level_and_writes_a_model_card(tiny_data, tmp_path):
    from mlcompress.train.evaluate import publish

    runs = _runs_q2_q4(tiny_data, tmp_path)
    res = publish("hyperprior", runs, None, out_dir=tmp_path, command="test")
    assert [r["name"] for r in res["recipes"]] == ["hyperprior-q2", "hyperprior-q4"]
    card = (tmp_path / "hyperprior.md").read_text()
    assert "hyperprior-q4 | 0.05" in card


def test_publish_refuses_a_missing_or_checkpointless_runs_folder_and_leaves_the_card_as_it_was(tmp_path):
    from mlcompress.errors import UsageError
    from mlcompress.train.evaluate import publish

    (tmp_path / "hyperprior.md").write_text("the shipped card, Kodak table included\n")
    (tmp_path / "runs").mkdir()
    with pytest.raises(UsageError, match="does not exist"):
        publish("hyperprior", tmp_path / "nowhere", None, out_dir=tmp_path)
    with pytest.raises(UsageError, match="no checkpoint q1.pt..q9.pt in .*: nothing to export"):
        publish("hyperprior", tmp_path / "runs", None, out_dir=tmp_path)
    assert (tmp_path / "hyperprior.md").read_text() == "the shipped card, Kodak table included\n"


@pytest.mark.parametrize("content, message", [
    (b"garbage\n", "is not a readable training checkpoint"),
    ({"weights": [0.0, 1.0]}, "is not an mlcompress training checkpoint"),
    ([1, 2], "is not an mlcompress training checkpoint"),
    ({"config": {"model": "hyperprior"}, "model": {}}, "holds weights but not their training record"),
])
def test_export_refuses_a_file_that_is_not_a_training_checkpoint_as_corrupt_data(content, message, tmp_path):
    from mlcompress.errors import CorruptDataError
    from mlcompress.train.export import export

    ck = tmp_path / "ck.pt"
    if isinstance(content, bytes):
        ck.write_bytes(content)
    else:
        torch.save(content, ck)
    with pytest.raises(CorruptDataError, match=message):
        export(ck, "hyperprior-q3", tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["../evil", "a/b", "", ".hidden", "q3 x"])
def test_export_refuses_a_weights_name_that_is_not_a_plain_file_name(name, tiny_data, tmp_path):
    from mlcompress.errors import UsageError
    from mlcompress.train.export import export

    ck = tmp_path / "ck.pt"
    train(_cfg(tiny_data, ck, 1))
    with pytest.raises(UsageError, match="weights name must be"):
        export(ck, name, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path / "evil.safetensors").exists()


def test_publish_keeps_the_shipped_weights_and_recipe_of_levels_without_a_checkpoint(tiny_data, tmp_path):
    import json

    from mlcompress.errors import UsageError
    from mlcompress.train.evaluate import publish

    runs = _runs_q2_q4(tiny_data, tmp_path)
    first = publish("hyperprior", runs, None, out_dir=tmp_path, command="test")
    shipped = (tmp_path / "hyperprior-q4.safetensors").read_bytes()
    (runs / "q4.pt").unlink()  # a later session's run folder holds q2 alone
    (tmp_path / "hyperprior.notes.md").write_text("- q4 came from an earlier session.\n")
    res = publish("hyperprior", runs, None, out_dir=tmp_path, command="test")
    assert res["recipes"][1] == first["recipes"][1]
    assert (tmp_path / "hyperprior-q4.safetensors").read_bytes() == shipped
    card = (tmp_path / "hyperprior.md").read_text()
    assert "hyperprior-q4 | 0.05" in card and "- q4 came from an earlier session." in card
    recipe = json.loads((tmp_path / "hyperprior-q4.json").read_text())
    recipe["weights_sha256"] = "0" * 64
    (tmp_path / "hyperprior-q4.json").write_text(json.dumps(recipe))
    with pytest.raises(UsageError, match="weights hash differs"):
        publish("hyperprior", runs, None, out_dir=tmp_path, command="test")


def test_recipes_record_every_run_of_a_checkpoint_and_the_card_shows_schedule_init_and_notes(tiny_data, tmp_path):
    from mlcompress.train.evaluate import publish

    runs = tmp_path / "runs"
    runs.mkdir()
    train(_cfg(tiny_data, runs / "q3.pt", 3))
    train(_cfg(tiny_data, runs / "q3.pt", 5, lr=1e-4, resume=True))
    train(_cfg(tiny_data, runs / "q1.pt", 2, lmbda=0.002, init=str(runs / "q3.pt")))
    train(_cfg(tiny_data, runs / "q1.pt", 3, lmbda=0.002, resume=True))  # resumed without --init
    train(_cfg(tiny_data, runs / "q3.pt", 6, lr=1e-4, resume=True, quant="round"))
    (runs / "NOTES.md").write_text("q3 was trained on a test machine.\n")
    res = publish("hyperprior", runs, None, out_dir=tmp_path, command="test")
    q1, q3 = res["recipes"]
    assert [(s["from_step"], s["to_step"], s["lr"], s["quant"]) for s in q3["stages"]] == [
        (0, 3, 1e-3, "noise"), (3, 5, 1e-4, "noise"), (5, 6, 1e-4, "round")]
    assert q1["stages"][0]["init"] == {"path": str(runs / "q3.pt"), "step": 5}
    assert q1["init"] == str(runs / "q3.pt") and q1["steps"] == 3
    card = (tmp_path / "hyperprior.md").read_text()
    assert "0-3: 0.001; 3-5: 0.0001; 5-6: 0.0001 round" in card and "q3.pt at step 5" in card
    assert "q3 was trained on a test machine." in card
    assert [e["step"] for e in q3["fixed_crop_curve"]] == [0, 6]  # the starting point, then the end
    assert [e["step"] for e in q1["fixed_crop_curve"]] == [0, 3]  # measured at 0, 2 and where the run ended


def test_the_card_lists_other_encoders_of_the_weights_from_bench_cells_of_exactly_those_weights(tiny_weights, tmp_path):

    from mlcompress import registry
    from mlcompress.train.evaluate import model_card, variant_rows

    sga = registry.get("hyperprior-sga")
    saved = sga.weights_dir
    sga.weights_dir = tiny_weights
    try:
        tag = sga.weights_tag(3)
    finally:
        sga.weights_dir = saved
    # the bytes depend on the steps and on what the refinement optimises too (revision 1 untagged)
    assert tag.endswith(f"-sga{sga.refine_steps}" + (f"r{sga.refine_revision}" if sga.refine_revision > 1 else ""))

    def cell(image, bpp, weights, codec="hyperprior-sga", quality=3):
        return {"codec": codec, "quality": quality, "image": image, "image_sha256": image, "bpp": bpp,
                "psnr": 30.0, "encode_s": 20.0, "decode_s": 0.5, "error": None, "weights": weights}

    cells = [cell("a", 9.0, tag), cell("a", 0.5, tag), cell("b", 0.7, tag), cell("c", 0.1, "other-weights"),
             cell("a", 0.1, tag.split("-")[0], codec="hyperprior"), cell("a", 0.3, tag, quality=2)]
    path = tmp_path / "cells.jsonl"
    path.write_text("".join(json.dumps(c) + "\n" for c in cells))
    rows = variant_rows("hyperprior", [2, 3], path, images=2, weights_dir=tiny_weights)
    assert [(r["codec"], r["quality"]) for r in rows] == [("hyperprior-sga", 3)]  # q2 has 1 of 2 images
    assert rows[0]["bpp"] == pytest.approx(0.6)  # a's last cell and b; other weights left out
    assert variant_rows("hyperprior", [3], path, images=3, weights_dir=tiny_weights) == []
    card = model_card("hyperprior", [], [], "test", rows)
    assert "| hyperprior-sga | q3 | 0.6000 | 30.00 | 20.0 | 0.50 |" in card


def test_classical_psnr_at_bpp_reads_the_last_measurement_of_each_cell_and_only_complete_levels(tmp_path):
    from mlcompress.train.evaluate import classical_at

    def cell(image, quality, bpp, psnr):
        return {"codec": "jpeg", "quality": quality, "image": image, "image_sha256": image, "bpp": bpp,
                "psnr": psnr, "error": None, "weights": ""}

    cells = [cell("a", 50, 9.0, 99.0), cell("a", 50, 0.4, 30.0), cell("b", 50, 0.6, 32.0),  # a measured twice
             cell("a", 90, 1.0, 36.0), cell("b", 90, 1.0, 38.0), cell("a", 70, 0.1, 10.0)]  # q70: 1 of 2 images
    path = tmp_path / "cells.jsonl"
    path.write_text("".join(json.dumps(c) + "\n" for c in cells))
    rows = [{"bpp": 0.75}, {"bpp": 0.2}]
    classical_at(rows, path, images=2)
    assert rows[0]["jpeg_psnr_at_bpp"] == pytest.approx(34.0)  # halfway between (0.5, 31) and (1.0, 37)
    assert rows[1]["jpeg_psnr_at_bpp"] is None  # below the measured curve
    assert "webp_psnr_at_bpp" not in rows[0]  # not measured


def test_the_card_shows_the_fixed_crop_curve_beside_the_train_loss_curve():
    from mlcompress.train.evaluate import _curve_lines

    def curve(*losses):
        return [{"step": s, "loss": v, "bpp": 0.5, "psnr": 30.0} for s, v in zip((500, 1000, 1500), losses)]

    lines = "\n".join(_curve_lines([{"name": "hyperprior-q3", "loss_curve": curve(3.0, 2.0, 1.9),
                                      "fixed_crop_curve": curve(2.5, 2.0, 1.5)},
                                     {"name": "hyperprior-q1", "loss_curve": curve(1.0, 0.9, 0.8)}]))
    assert "fixed set of training crops" in lines
    assert "1000->1500: loss -25.0 %" in lines  # the fixed crops' last doubling
    assert lines.count("| hyperprior-q3 |") == 2 and lines.count("| hyperprior-q1 |") == 1


def test_fixed_crop_curve_keeps_the_last_measurement_at_or_before_each_doubling():
    from mlcompress.train.export import fixed_crop_curve

    evals = [{"step": s, "loss": 10.0 / s, "bpp": 1.0, "psnr": 30.0} for s in range(300, 5001, 300)]
    assert [e["step"] for e in fixed_crop_curve(evals)] == [300, 900, 1800, 3900, 4800]
    assert fixed_crop_curve([]) == []
    assert [e["step"] for e in fixed_crop_curve([{**evals[0], "step": 0}] + evals)] == [0, 300, 900, 1800, 3900, 4800]


def test_loss_curve_averages_the_last_fifth_before_each_doubling():
    from mlcompress.train.export import loss_curve

    hist = [{"step": s, "loss": 1000 / s, "bpp": 1.0, "psnr": 30.0} for s in range(50, 2601, 50)]
    curve = loss_curve(hist)
    assert [p["step"] for p in curve] == [500, 1000, 2000, 2600]
    assert curve[1]["loss"] == pytest.approx(sum(1000 / s for s in range(850, 1001, 50)) / 4, abs=1e-4)


def test_reexporting_keeps_a_file_with_the_same_weights_in_another_header_order(tmp_path):
    """Weights exported before headers were canonical keep their bytes (and the hash that .mlc
    files record); different weights are written."""
    import struct

    from mlcompress.nn.models import build
    from mlcompress.train.export import write_weights

    torch.manual_seed(0)
    blob = write_weights(build("hyperprior", 8, 8), "hyperprior-q3", 0.013, tmp_path)
    (n,) = struct.unpack_from("<Q", blob)
    header = json.loads(blob[8:8 + n])
    shuffled = json.dumps(dict(reversed(list(header.items())))).encode()
    shuffled += b" " * (-len(shuffled) % 8)
    old = struct.pack("<Q", len(shuffled)) + shuffled + blob[8 + n:]
    assert old != blob
    path = tmp_path / "hyperprior-q3.safetensors"
    path.write_bytes(old)
    torch.manual_seed(0)
    assert write_weights(build("hyperprior", 8, 8), "hyperprior-q3", 0.013, tmp_path) == old
    assert path.read_bytes() == old
    torch.manual_seed(1)
    assert write_weights(build("hyperprior", 8, 8), "hyperprior-q3", 0.013, tmp_path) != old
    assert path.read_bytes() != old


def test_init_from_weights_of_another_shape_is_a_usage_error():
    from mlcompress.errors import UsageError
    from mlcompress.nn.models import build
    from mlcompress.train.loop import init_from

    with pytest.raises(UsageError, match="shapes do not fit"):
        init_from(build("hyperprior", 8, 8), build("hyperprior", 8, 16), log=lambda msg: None)
    # a larger N and M widen (tests/test_widen.py); a larger M with a narrower N does not
    with pytest.raises(UsageError, match="shapes do not fit"):
        init_from(build("hyperprior", 8, 16), build("hyperprior", 16, 8), log=lambda msg: None)


def test_init_from_a_context_model_with_other_channel_groups_keeps_all_but_the_context_nets():
    from mlcompress.nn.models import build
    from mlcompress.train.loop import init_from

    torch.manual_seed(0)
    src = build("hyperprior-ctx", 8, 12)
    for net in src.ctx:
        torch.nn.init.normal_(net[-1].weight, std=0.3)
    model = build("hyperprior-ctx", 8, 12, groups=(2, 2, 8))
    said = []
    init_from(model, src, log=said.append)
    assert said == ["init: channel groups 2,2,8 instead of 3,3,3,3: new context nets "
                    "(at zero, so coding as the hyperprior)"]
    own, theirs = model.state_dict(), src.state_dict()
    assert all(torch.equal(v, theirs[k]) for k, v in own.items() if not k.startswith("ctx."))
    assert len(model.ctx) == 6 and all(not net[-1].weight.any() for net in model.ctx)


def test_channel_groups_are_kept_by_the_checkpoint_checked_on_resuming_and_shown_by_recipe_and_card(
        tiny_data, tmp_path):
    from mlcompress.errors import UsageError
    from mlcompress.train.evaluate import model_card
    from mlcompress.train.export import export

    ck = tmp_path / "ctx.pt"
    train(_cfg(tiny_data, ck, 1, model="hyperprior-ctx", M=12, groups=(2, 2, 8)))
    assert torch.load(ck, weights_only=False)["config"]["groups"] == (2, 2, 8)
    with pytest.raises(UsageError, match=r"checkpoint has groups=\(2, 2, 8\), asked for None"):
        train(_cfg(tiny_data, ck, 2, model="hyperprior-ctx", M=12, resume=True))
    assert train(_cfg(tiny_data, ck, 2, model="hyperprior-ctx", M=12, groups=[2, 2, 8], resume=True))["step"] == 2
    rec = export(ck, "hyperprior-ctx-q3", tmp_path / "w")
    assert rec["groups"] == [2, 2, 8]
    assert "context model: channel groups 2,2,8 x 2 checkerboard passes" in model_card("hyperprior-ctx", [], [rec], "cmd")


def test_factorized_init_from_a_hyperprior_takes_its_transforms_and_keeps_its_own_entropy_model():
    from mlcompress.errors import UsageError
    from mlcompress.nn.models import build
    from mlcompress.train.loop import init_from

    torch.manual_seed(0)
    hyper, fact = build("hyperprior", 8, 12), build("factorized", 8, 12)
    before = {k: v.clone() for k, v in fact.state_dict().items()}
    init_from(fact, hyper, log=lambda msg: None)
    h, f = hyper.state_dict(), fact.state_dict()
    assert all(torch.equal(f[k], h[k]) for k in f if k.startswith(("g_a.", "g_s.")))
    assert all(torch.equal(f[k], before[k]) for k in f if k.startswith("entropy_bottleneck."))
    with pytest.raises(UsageError, match="shares no transform weights"):
        init_from(fact, torch.nn.Linear(2, 2), log=lambda msg: None)


def test_frozen_transforms_train_only_the_entropy_model_on_the_rate(tiny_data, tmp_path):
    from mlcompress.nn.models import build
    from mlcompress.train.evaluate import model_card
    from mlcompress.train.export import export
    from mlcompress.train.loop import fixed_crop_loss, load_model

    torch.manual_seed(0)
    hyper = build("hyperprior", 8, 8)
    torch.save({"config": {"model": "hyperprior", "N": 8, "M": 8}, "model": hyper.state_dict(), "step": 7},
               tmp_path / "h.pt")
    out = tmp_path / "ctx.pt"
    res = train(_cfg(tiny_data, out, 6, model="hyperprior-ctx", init=str(tmp_path / "h.pt"), freeze="transforms",
                     eval_every=6, lr=1e-2))
    assert res["step"] == 6 and res["last"]["psnr"] is None  # the rate alone was trained
    ctx = load_model(out)
    h, c = hyper.state_dict(), ctx.state_dict()
    assert all(torch.equal(c[k], h[k]) for k in h if k.startswith(("g_a.", "g_s.")))
    assert any(not torch.equal(c[k], h[k]) for k in h if k.startswith("h_s."))
    ck = torch.load(out, weights_only=False)
    assert ck["stages"][-1]["freeze"] == "transforms"
    first, last = ck["evals"][0], ck["evals"][-1]
    assert first["step"] == 0 and last["step"] == 6 and last["bpp"] < first["bpp"]
    x = to_tensor(np.zeros((1, 64, 64, 3), np.uint8))
    assert fixed_crop_loss(ctx, x, 0.01)["psnr"] > 0
    rec = export(out, "hyperprior-ctx-q3", tmp_path / "w")
    card = model_card("hyperprior-ctx", [], [rec], "cmd")
    assert "0-6: 0.01 (g_a, g_s frozen)" in card and "| - |" in card  # no train PSNR where none was computed
    assert "context model: channel groups 2,2,2,2 x 2 checkerboard passes" in card


@pytest.mark.parametrize("arch", ["hyperprior", "hyperprior-ctx"])
def test_synthesis_only_training_changes_g_s_alone_so_every_file_keeps_its_bytes(arch, tiny_data, tmp_path):
    from mlcompress.errors import UsageError
    from mlcompress.nn.models import build
    from mlcompress.train.evaluate import model_card
    from mlcompress.train.export import export, write_weights
    from mlcompress.train.loop import load_model
    from mlcompress.weights import load_weights

    torch.manual_seed(0)
    blob = write_weights(build(arch, 8, 8), f"{arch}-q3", 0.01, tmp_path / "w0")  # shipped weights ...
    (tmp_path / "w0" / f"{arch}-q3.json").write_text('{"steps": 7}')  # ... and their recipe
    init = str(tmp_path / "w0" / f"{arch}-q3.safetensors")
    src = load_weights(init)[0]
    with pytest.raises(UsageError, match="--quant round"):
        train(_cfg(tiny_data, tmp_path / "bad.pt", 2, model=arch, init=init, freeze="all-but-synthesis"))
    out = tmp_path / "gs.pt"
    res = train(_cfg(tiny_data, out, 6, model=arch, init=init, freeze="all-but-synthesis",
                     quant="round", eval_every=6, lr=1e-2))
    assert res["step"] == 6 and res["last"]["psnr"] is not None
    tuned = load_model(out)
    a, b = src.state_dict(), tuned.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a if not k.startswith("g_s."))
    assert any(not torch.equal(a[k], b[k]) for k in a if k.startswith("g_s."))
    ck = torch.load(out, weights_only=False)
    import hashlib

    assert ck["stages"][0]["init"]["sha256"] == hashlib.sha256(blob).hexdigest()
    assert ck["stages"][0]["init"]["recipe"] == {"steps": 7}  # what made the starting weights
    first, last = ck["evals"][0], ck["evals"][-1]
    assert last["bpp"] == pytest.approx(first["bpp"], abs=1e-6)  # the rate cannot move
    x = to_tensor(np.random.default_rng(0).integers(0, 256, (1, 64, 64, 3), dtype=np.uint8))
    tuned.update()
    assert src.eval().compress(x)["strings"] == tuned.eval().compress(x)["strings"]
    card = model_card(arch, [], [export(out, f"{arch}-q3", tmp_path / "w")], "cmd")
    assert "0-6: 0.01 round (g_s only)" in card
    assert f"{arch}-q3.safetensors (sha256 {hashlib.sha256(blob).hexdigest()[:8]}, 7 steps)" in card


def test_a_refiner_trains_alone_and_another_level_can_start_from_it(tiny_data, tmp_path):
    from mlcompress.errors import UsageError
    from mlcompress.nn.models import build
    from mlcompress.train.evaluate import model_card
    from mlcompress.train.export import export, write_weights
    from mlcompress.train.loop import load_model
    from mlcompress.weights import load_weights

    torch.manual_seed(0)
    for q in (2, 3):
        write_weights(build("hyperprior", 8, 8), f"hyperprior-q{q}", 0.01, tmp_path / "w0")
    base = str(tmp_path / "w0" / "hyperprior-q3.safetensors")
    with pytest.raises(UsageError, match="needs a Refiner"):
        train(_cfg(tiny_data, tmp_path / "bad.pt", 2, init=base, freeze="all-but-refiner", quant="round"))
    out = tmp_path / "r3.pt"
    res = train(_cfg(tiny_data, out, 4, init=base, refine=4, freeze="all-but-refiner", quant="round", lr=1e-2))
    assert res["step"] == 4
    src, tuned = load_weights(base)[0].state_dict(), load_model(out).state_dict()
    assert all(torch.equal(src[k], tuned[k]) for k in src)  # everything but the Refiner as it was
    assert any(tuned[k].abs().sum() > 0 for k in tuned if k.startswith("g_s.7.net.6."))  # it left zero
    export(out, "hyperprior-q3", tmp_path / "w1")
    with pytest.raises(UsageError, match="no Refiner of 8 channels"):
        train(_cfg(tiny_data, tmp_path / "bad2.pt", 1, init=str(tmp_path / "w0" / "hyperprior-q2.safetensors"),
                   refine=8, init_refiner=str(tmp_path / "w1" / "hyperprior-q3.safetensors")))
    out2 = tmp_path / "r2.pt"
    train(_cfg(tiny_data, out2, 1, lr=0.0, init=str(tmp_path / "w0" / "hyperprior-q2.safetensors"), refine=4,
               init_refiner=str(tmp_path / "w1" / "hyperprior-q3.safetensors"), freeze="all-but-refiner",
               quant="round"))
    q3, q2 = load_weights(tmp_path / "w1" / "hyperprior-q3.safetensors")[0], load_model(out2)
    assert all(torch.equal(v, q2.g_s[-1].state_dict()[k]) for k, v in q3.g_s[-1].state_dict().items())
    card = model_card("hyperprior", [], [export(out2, "hyperprior-q2", tmp_path / "w2")], "cmd")
    assert "hyperprior-q2.safetensors (sha256" in card and "; Refiner from hyperprior-q3.safetensors (sha256" in card
    assert "(Refiner only)" in card


def test_sigterm_stops_training_with_a_checkpoint_like_ctrl_c(tiny_data, tmp_path):
    import os
    import signal
    import threading

    out = tmp_path / "ck.pt"
    before = signal.getsignal(signal.SIGTERM)
    threading.Timer(3.0, lambda: os.kill(os.getpid(), signal.SIGTERM)).start()
    with pytest.raises(KeyboardInterrupt):
        train(_cfg(tiny_data, out, 100000))
    assert torch.load(out, weights_only=False)["step"] > 0
    assert signal.getsignal(signal.SIGTERM) is before
    assert torch.is_grad_enabled()  # wherever the signal landed


# ------------------------------------------------ the GPU training command (docs/GPU.md), run on the CPU


@pytest.fixture(scope="module")
def crops_pack(tiny_data, tmp_path_factory):
    from mlcompress.cli import main

    out = tmp_path_factory.mktemp("crops") / "crops.safetensors"
    assert main(["crops", "--data", str(tiny_data), "--out", str(out), "--crop", "64"]) == 0
    return out


def _gpu_args(pack, out, *extra):
    return ["train", "hyperprior", "--crops", str(pack), "--lambda", "0.01", "--out", str(out), "--pieces",
            "--N", "8", "--M", "8", "--batch", "2", "--crop", "64", "--eval-every", "2", "--quiet", *extra]


def test_the_gpu_training_command_runs_on_the_cpu_for_its_minutes_and_resumes_from_its_own_pieces(
        crops_pack, tmp_path):
    from mlcompress import cli
    from mlcompress.train.loop import load_checkpoint

    out = tmp_path / "ck"
    assert cli.main(_gpu_args(crops_pack, out, "--steps", "100000", "--time-limit", "0.03", "--bf16")) == 0
    first = load_checkpoint(out)
    assert 0 < first["step"] < 100000 and first["stages"][-1]["bf16"] and first["optimizer"] is not None
    files = list(out.iterdir())
    assert len(files) <= 8 and all(f.stat().st_size <= 16 << 20 for f in files)
    goal = first["step"] + 2
    assert cli.main(_gpu_args(crops_pack, out, "--steps", str(goal), "--resume")) == 0
    again = load_checkpoint(out)
    assert again["step"] == goal and [s["from_step"] for s in again["stages"]] == [0, first["step"]]
    assert [e["step"] for e in again["evals"]][-1] == goal
    assert cli.main(["pieces", "join", str(out), "--out", str(tmp_path / "ck.pt")]) == 0
    assert cli.main(["export", str(out), "--name", "hyperprior-q3", "--out-dir", str(tmp_path / "w")]) == 0
    assert (tmp_path / "w" / "hyperprior-q3.safetensors").is_file()


def test_a_run_resumed_from_its_pieces_continues_exactly_as_one_uninterrupted_run(crops_pack, tmp_path):
    from mlcompress.train.loop import load_checkpoint

    cfg = dict(crops=str(crops_pack), pieces=True)
    train(_cfg(crops_pack, tmp_path / "one", 4, **cfg))
    train(_cfg(crops_pack, tmp_path / "two", 2, **cfg))
    train(_cfg(crops_pack, tmp_path / "two", 4, resume=True, **cfg))
    a, b = load_checkpoint(tmp_path / "one"), load_checkpoint(tmp_path / "two")
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


def test_a_checkpoint_cut_without_its_optimizer_state_resumes_with_a_warm_up(crops_pack, tmp_path):
    from mlcompress.cli import main
    from mlcompress.train.loop import WARMUP_STEPS, load_checkpoint

    cfg = dict(crops=str(crops_pack))
    train(_cfg(crops_pack, tmp_path / "ck.pt", 2, **cfg))
    assert main(["pieces", "split", str(tmp_path / "ck.pt"), "--out", str(tmp_path / "p"), "--optimizer",
                 "dropped"]) == 0
    train(_cfg(crops_pack, tmp_path / "p", 3, resume=True, pieces=True, **cfg))
    ck = load_checkpoint(tmp_path / "p")
    assert ck["stages"][-1]["optimizer"] == "fresh, lr warmed up from step 2" and ck["warmup_from"] == 2
    step = ck["optimizer"]["state"][0]["step"]
    assert float(step) == 1 and WARMUP_STEPS > 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_the_gpu_training_command_on_cuda_writes_pieces_that_resume_on_the_cpu(crops_pack, tmp_path):
    from mlcompress.train.loop import load_checkpoint

    cfg = dict(crops=str(crops_pack), pieces=True, model="hyperprior-ctx")
    train(_cfg(crops_pack, tmp_path / "g", 3, device="cuda", bf16=True, **cfg))
    assert all(v.device.type == "cpu" for v in load_checkpoint(tmp_path / "g")["model"].values())
    res = train(_cfg(crops_pack, tmp_path / "g", 5, resume=True, **cfg))
    assert res["step"] == 5 and np.isfinite(res["last"]["loss"])


def test_crops_over_six_tenths_of_the_short_side_raise_the_lowest_downscale_instead_of_skipping_images(tmp_path):
    from PIL import Image

    from mlcompress.errors import UsageError
    from mlcompress.train.data import CropSampler

    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (100, 150, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
    assert CropSampler(tmp_path, 48).lows == [0.6, 0.6]  # as before: U(0.6, 1)
    big = CropSampler(tmp_path, 80)
    assert big.lows == [0.8, 0.8] and big.batch(np.random.default_rng(1), 3).shape == (3, 80, 80, 3)
    with pytest.raises(UsageError, match="no usable training images"):
        CropSampler(tmp_path, 101)
