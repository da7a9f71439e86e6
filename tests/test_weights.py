"""mlcompress.weights: reading safetensors files and the models they hold."""

from __future__ import annotations

import hashlib

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")

from mlcompress.errors import CorruptDataError, UsageError  # noqa: E402
from mlcompress.weights import WEIGHTS_DIR, load_weights, read_safetensors  # noqa: E402


def test_read_safetensors_gives_the_tensors_dtypes_metadata_and_file_hash(tmp_path):
    from safetensors.torch import save_file

    t = {"a": torch.randn(3, 4).half(), "b": torch.arange(5, dtype=torch.int32)}
    path = tmp_path / "x.safetensors"
    save_file(t, str(path), metadata={"model": "restore", "N": "8"})
    tensors, meta, digest = read_safetensors(path)
    assert tensors.keys() == t.keys()
    assert all(tensors[k].dtype == t[k].dtype and torch.equal(tensors[k], t[k]) for k in t)
    assert meta == {"model": "restore", "N": "8"}
    assert digest == hashlib.sha256(path.read_bytes()).digest()


def test_read_safetensors_without_metadata_gives_an_empty_table(tmp_path):
    from safetensors.torch import save_file

    save_file({"w": torch.ones(2)}, str(tmp_path / "x.safetensors"))
    assert read_safetensors(tmp_path / "x.safetensors")[1] == {}


def test_a_missing_weights_file_is_a_usage_error_and_damaged_bytes_are_corrupt_data(tmp_path):
    from safetensors.torch import save

    with pytest.raises(UsageError, match="does not exist"):
        read_safetensors(tmp_path / "none.safetensors")
    blob = save({"w": torch.ones(64)}, metadata={"model": "x"})
    for bad in (b"", b"not a weights file at all", blob[: len(blob) // 2], b"\xff" * 8 + blob[8:]):
        (tmp_path / "bad.safetensors").write_bytes(bad)
        with pytest.raises(CorruptDataError, match="not a safetensors weights file"):
            read_safetensors(tmp_path / "bad.safetensors")


def test_load_weights_gives_back_the_exported_model_in_float32(tmp_path):
    from mlcompress.nn.models import build
    from mlcompress.train.export import write_weights

    torch.manual_seed(0)
    blob = write_weights(build("hyperprior", 8, 12), "hyperprior-q3", 0.013, tmp_path)
    model, meta, digest = load_weights(tmp_path / "hyperprior-q3.safetensors")
    assert (meta["model"], meta["N"], meta["M"]) == ("hyperprior", "8", "12")
    assert digest == hashlib.sha256(blob).digest() and not model.training
    stored = read_safetensors(tmp_path / "hyperprior-q3.safetensors")[0]
    for k, v in model.state_dict().items():
        assert torch.equal(v, stored[k].float() if stored[k].dtype == torch.float16 else stored[k]), k
    assert not any(p.requires_grad for p in model.parameters())


def test_weights_record_uneven_channel_groups_and_load_them_and_default_groups_add_no_metadata(tmp_path):
    from mlcompress.nn.models import build
    from mlcompress.train.export import write_weights

    torch.manual_seed(0)
    write_weights(build("hyperprior-ctx", 8, 12, groups=(2, 2, 8)), "hyperprior-ctx-q3", 0.013, tmp_path / "u")
    model, meta, _ = load_weights(tmp_path / "u" / "hyperprior-ctx-q3.safetensors")
    assert meta["groups"] == "2,2,8" and model.groups == (2, 2, 8) and len(model.ctx) == 6
    write_weights(build("hyperprior-ctx", 8, 12, groups=(3, 3, 3, 3)), "hyperprior-ctx-q3", 0.013, tmp_path / "e")
    model, meta, _ = load_weights(tmp_path / "e" / "hyperprior-ctx-q3.safetensors")
    assert "groups" not in meta and model.groups == (3, 3, 3, 3)


@pytest.mark.parametrize("groups, model", [("2,2,x", "hyperprior-ctx"), ("2,2,9", "hyperprior-ctx"),
                                           ("0,4,8", "hyperprior-ctx"), ("12", "hyperprior")])
def test_weights_whose_channel_groups_do_not_fit_are_refused_as_corrupt(groups, model, tmp_path):
    from safetensors.torch import save_file

    meta = {"model": model, "N": "8", "M": "12", "groups": groups}
    save_file({"w": torch.ones(2)}, str(tmp_path / "g.safetensors"), metadata=meta)
    with pytest.raises(CorruptDataError, match=f"does not describe a {model} model"):
        load_weights(tmp_path / "g.safetensors")


def test_weights_of_an_unknown_model_or_the_wrong_shapes_are_refused_as_corrupt(tmp_path):
    from safetensors.torch import save_file

    save_file({"w": torch.ones(2)}, str(tmp_path / "a.safetensors"), metadata={"model": "nope", "N": "8", "M": "8"})
    with pytest.raises(CorruptDataError, match="does not name a model"):
        load_weights(tmp_path / "a.safetensors")
    save_file({"w": torch.ones(2)}, str(tmp_path / "b.safetensors"), metadata={"model": "hyperprior", "N": "8", "M": "8"})
    with pytest.raises(CorruptDataError, match="do not fit hyperprior"):
        load_weights(tmp_path / "b.safetensors")


def test_the_shipped_weights_folder_is_the_package_data_folder():
    assert WEIGHTS_DIR.is_dir() and (WEIGHTS_DIR / "hyperprior-q3.safetensors").is_file()
