"""train.pieces: a checkpoint cut into pieces small enough for the device tool, and joined back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from mlcompress.errors import CorruptDataError, UsageError  # noqa: E402
from mlcompress.train import pieces  # noqa: E402


def _state(n=50_000, steps=3):
    """A train.loop-like checkpoint dict with a real Adam state (n weights, float32)."""
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(n))
    opt = torch.optim.Adam([w], lr=1e-3)
    for _ in range(steps):
        opt.zero_grad()
        (w ** 2).sum().backward()
        opt.step()
    return {"config": {"model": "hyperprior"}, "model": {"w": w.detach().clone()}, "optimizer": opt.state_dict(),
            "step": steps, "history": [{"step": steps}]}


def test_a_checkpoint_comes_back_exactly_from_its_pieces_with_the_optimizer_state_in_fp32(tmp_path):
    st = _state()
    man = pieces.write_pieces(tmp_path / "ck", st, "fp32", piece_bytes=100_000)
    assert man["optimizer"] == "fp32" and len(man["pieces"]) >= 3
    assert all(p.stat().st_size <= 100_000 for p in (tmp_path / "ck").glob("checkpoint.*"))
    back = pieces.read_pieces(tmp_path / "ck")
    assert torch.equal(back["model"]["w"], st["model"]["w"]) and back["step"] == 3
    for k in ("exp_avg", "exp_avg_sq"):
        assert torch.equal(back["optimizer"]["state"][0][k], st["optimizer"]["state"][0][k])


def test_auto_keeps_adam_in_bf16_or_drops_it_to_fit_and_the_weights_stay_fp32(tmp_path):
    st = _state()  # weights 200 kB, Adam 400 kB in float32
    man = pieces.write_pieces(tmp_path / "a", st, max_bytes=450_000, piece_bytes=100_000)
    back = pieces.read_pieces(tmp_path / "a")
    assert man["optimizer"] == "bf16" and back["model"]["w"].dtype == torch.float32
    assert torch.equal(back["model"]["w"], st["model"]["w"])
    m, m0 = back["optimizer"]["state"][0]["exp_avg_sq"], st["optimizer"]["state"][0]["exp_avg_sq"]
    assert m.dtype == torch.float32 and torch.allclose(m, m0, rtol=1 / 128, atol=0) and (m > 0).all()
    man = pieces.write_pieces(tmp_path / "b", st, max_bytes=250_000, piece_bytes=100_000)
    assert man["optimizer"] == "dropped" and pieces.read_pieces(tmp_path / "b")["optimizer"] is None
    with pytest.raises(UsageError, match="more than"):
        pieces.write_pieces(tmp_path / "c", st, max_bytes=150_000, piece_bytes=100_000)


def test_the_pieces_stay_within_the_device_tools_file_count(tmp_path):
    with pytest.raises(UsageError, match="in 2 pieces"):
        pieces.write_pieces(tmp_path / "ck", _state(), "dropped", piece_bytes=50_000, max_files=3)


def test_a_smaller_save_removes_the_pieces_it_no_longer_needs(tmp_path):
    pieces.write_pieces(tmp_path / "ck", _state(), "fp32", piece_bytes=100_000)
    man = pieces.write_pieces(tmp_path / "ck", _state(), "dropped", piece_bytes=100_000)
    names = sorted(p.name for p in (tmp_path / "ck").iterdir())
    assert names == sorted([*(p["name"] for p in man["pieces"]), "manifest.json"])


@pytest.mark.parametrize("damage", ["truncate", "swap", "remove", "manifest"])
def test_a_damaged_or_missing_piece_is_corrupt_data_before_anything_is_unpickled(tmp_path, damage):
    man = pieces.write_pieces(tmp_path / "ck", _state(), "fp32", piece_bytes=100_000)
    first, second = (tmp_path / "ck" / p["name"] for p in man["pieces"][:2])
    if damage == "truncate":
        first.write_bytes(first.read_bytes()[:-1])
    elif damage == "swap":
        a, b = first.read_bytes(), second.read_bytes()
        first.write_bytes(b)
        second.write_bytes(a)
    elif damage == "remove":
        second.unlink()
    else:
        (tmp_path / "ck" / "manifest.json").write_text(json.dumps({"format": "x"}))
    with pytest.raises(CorruptDataError):
        pieces.read_pieces(tmp_path / "ck")


def test_join_writes_one_checkpoint_that_train_loop_reads_and_never_overwrites_without_force(tmp_path):
    from mlcompress.train.loop import load_checkpoint

    st = _state()
    pieces.write_pieces(tmp_path / "ck", st, "dropped")
    assert pieces.join(tmp_path / "ck", tmp_path / "ck.pt") == {"step": 3, "optimizer": "dropped"}
    back = load_checkpoint(tmp_path / "ck.pt")
    assert torch.equal(back["model"]["w"], st["model"]["w"]) and back["optimizer"] is None
    with pytest.raises(UsageError, match="exists"):
        pieces.join(tmp_path / "ck", tmp_path / "ck.pt")
    assert load_checkpoint(tmp_path / "ck")["step"] == 3  # the folder itself reads as a checkpoint


def test_a_folder_without_a_manifest_is_not_pieces(tmp_path):
    assert not pieces.is_pieces(tmp_path)
    with pytest.raises(CorruptDataError, match="no manifest.json"):
        pieces.read_pieces(tmp_path)


def test_gpu_slim_sets_weights_aside_but_the_kept_one_and_puts_them_back_with_git_clean(tmp_path):
    import shutil
    import subprocess

    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    (repo / "src/mlcompress/weights").mkdir(parents=True)
    shutil.copy(Path(__file__).parents[1] / "scripts" / "gpu_slim.sh", repo / "scripts")
    for name, size in (("a.safetensors", 3 << 20), ("b.safetensors", 2 << 20), ("keep.safetensors", 1 << 20)):
        (repo / "src/mlcompress/weights" / name).write_bytes(b"w" * size)

    def sh(*args):
        return subprocess.run(args, cwd=repo, capture_output=True, text=True, check=True).stdout

    sh("git", "init", "-q")
    sh("git", "add", ".")
    sh("git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x")
    out = sh("bash", "scripts/gpu_slim.sh", "aside", "keep.safetensors")
    assert sorted(p.name for p in (repo / "src/mlcompress/weights").iterdir()) == ["keep.safetensors"]
    assert out.startswith("1.0 MiB would travel")  # the kept weights and the script
    assert "back; git status clean" in sh("bash", "scripts/gpu_slim.sh", "back")
    assert sh("git", "status", "--porcelain") == ""
