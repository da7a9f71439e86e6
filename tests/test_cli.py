"""The command line: happy paths, output naming, and every error path (one line, right exit code)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import mlcompress
from mlcompress import cli, registry
from mlcompress.image import read_image
from mlcompress.metrics import psnr

NATIVE = "rle"  # a numpy-only native codec: .mlc files without torch


@pytest.fixture()
def photo(tmp_path) -> Path:
    yy, xx = np.mgrid[0:48, 0:64]
    img = np.stack([xx * 4, yy * 5, (xx + yy) * 2], axis=2).astype(np.uint8)
    path = tmp_path / "photo.png"
    path.write_bytes(registry.get("png").encode(img))
    return path


def run(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(err: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mlcompress: error:"), err
    assert "Traceback" not in err


def test_compress_then_decompress_follows_the_naming_convention(capsys, photo):
    code, out, _ = run(capsys, "compress", photo, "-c", NATIVE)
    assert code == 0 and (photo.parent / "photo.mlc").exists()
    code, _, _ = run(capsys, "decompress", photo.parent / "photo.mlc")
    assert code == 0
    assert np.array_equal(read_image(photo.parent / "photo.decoded.png"), read_image(photo))


def test_compress_with_a_classical_codec_writes_its_native_format(capsys, photo):
    code, _, _ = run(capsys, "compress", photo, "-c", "jpeg", "-q", "80")
    assert code == 0
    assert (photo.parent / "photo.jpg").read_bytes()[:3] == b"\xff\xd8\xff"


def test_png_codec_never_writes_over_its_own_input(capsys, photo):
    before = photo.read_bytes()
    code, _, _ = run(capsys, "compress", photo, "-c", "png", "--force")
    assert code == 0 and photo.read_bytes() == before
    assert (photo.parent / "photo.compressed.png").exists()


def test_default_codec_is_used_without_dash_c(capsys, photo):
    code, out, _ = run(capsys, "compress", photo, "-o", photo.parent / "x.bin")
    assert code == 0 and mlcompress.default_codec() in out


def test_the_default_codec_compresses_a_grey_photo_and_gives_it_back_grey(capsys, tmp_path):
    # avif, the default, once refused grey images ("does not support grey images")
    yy, xx = np.mgrid[0:48, 0:64]
    grey = ((xx * 3 + yy * 2) % 256).astype(np.uint8)
    path = tmp_path / "grey.png"
    path.write_bytes(registry.get("png").encode(grey))
    code, out, err = run(capsys, "compress", path, "-o", tmp_path / "grey.out")
    assert code == 0, err
    code, _, err = run(capsys, "decompress", tmp_path / "grey.out", "-o", tmp_path / "back.png")
    assert code == 0, err
    back = read_image(tmp_path / "back.png")
    assert back.shape[:2] == grey.shape and back.size == grey.size  # one channel, as it came
    assert psnr(grey, back.reshape(grey.shape)) > 30


def test_info_reports_container_fields_as_json(capsys, photo):
    run(capsys, "compress", photo, "-c", NATIVE)
    code, out, _ = run(capsys, "info", photo.parent / "photo.mlc", "--json")
    info = json.loads(out)
    assert code == 0 and info["codec"] == NATIVE and (info["width"], info["height"]) == (64, 48)
    assert info["bytes"] == (photo.parent / "photo.mlc").stat().st_size


def test_codecs_lists_every_registered_codec_as_json(capsys):
    code, out, _ = run(capsys, "codecs", "--json")
    names = [r["name"] for r in json.loads(out)]
    assert code == 0 and names == registry.list_codecs()


def test_compare_reports_psnr_of_two_files(capsys, photo, tmp_path):
    run(capsys, "compress", photo, "-c", "jpeg", "-q", "50")
    code, out, _ = run(capsys, "compare", photo, tmp_path / "photo.jpg", "--json")
    res = json.loads(out)
    expected = mlcompress.metrics.psnr(read_image(photo), mlcompress.open(tmp_path / "photo.jpg"))
    assert code == 0 and res["psnr"] == pytest.approx(expected)


# ------------------------------------------------------------------ errors


def test_missing_input_is_a_usage_error(capsys, tmp_path):
    code, _, err = run(capsys, "compress", tmp_path / "nope.png")
    assert code == 2
    assert_one_line_error(err)


def test_input_that_is_not_an_image_is_a_data_error(capsys, tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("hello, I am text")
    code, _, err = run(capsys, "compress", bad, "-c", NATIVE)
    assert code == 1
    assert_one_line_error(err)
    assert not (tmp_path / "notes.mlc").exists()


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda d: d[: len(d) // 2], id="truncated"),
        pytest.param(lambda d: d[:40] + bytes([d[40] ^ 0x01]) + d[41:], id="flipped-byte"),
        pytest.param(lambda d: b"NOPE" + d[4:], id="wrong-magic"),
        pytest.param(lambda d: d[:4] + b"\x09" + d[5:], id="future-version"),
    ],
)
def test_damaged_mlc_file_is_a_data_error_and_writes_nothing(capsys, photo, damage):
    run(capsys, "compress", photo, "-c", NATIVE)
    mlc = photo.parent / "photo.mlc"
    mlc.write_bytes(damage(mlc.read_bytes()))
    code, _, err = run(capsys, "decompress", mlc)
    assert code == 1
    assert_one_line_error(err)
    assert not (photo.parent / "photo.decoded.png").exists()


def test_existing_output_is_not_overwritten_without_force(capsys, photo):
    target = photo.parent / "photo.mlc"
    target.write_bytes(b"precious")
    code, _, err = run(capsys, "compress", photo, "-c", NATIVE)
    assert code == 2 and target.read_bytes() == b"precious"
    assert_one_line_error(err)
    assert run(capsys, "compress", photo, "-c", NATIVE, "--force")[0] == 0
    assert target.read_bytes() != b"precious"


def test_unwritable_output_folder_is_a_usage_error(capsys, photo, tmp_path):
    code, _, err = run(capsys, "compress", photo, "-o", tmp_path / "missing" / "x.mlc", "-c", NATIVE)
    assert code == 2
    assert_one_line_error(err)
    if os.geteuid() != 0:  # root can write anywhere
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        code, _, err = run(capsys, "compress", photo, "-o", ro / "x.mlc", "-c", NATIVE)
        assert code == 2


def test_output_path_over_a_file_where_a_folder_is_expected_is_a_usage_error(capsys, photo, tmp_path):
    (tmp_path / "afile").write_text("x")
    code, _, err = run(capsys, "compress", photo, "-o", tmp_path / "afile" / "x.mlc", "-c", NATIVE)
    assert code == 2
    assert_one_line_error(err)


def test_unknown_codec_and_bad_quality_are_usage_errors(capsys, photo):
    code, _, err = run(capsys, "compress", photo, "-c", "nosuchcodec")
    assert code == 2 and "unknown codec" in err
    code, _, err = run(capsys, "compress", photo, "-c", "jpeg", "-q", "high")
    assert code == 2
    assert_one_line_error(err)


def test_bad_arguments_give_one_line_and_exit_2(capsys):
    code, _, err = run(capsys, "compress")
    assert code == 2
    assert_one_line_error(err)


def test_pixel_limit_option_refuses_big_images(capsys, photo):
    code, _, err = run(capsys, "--max-pixels", "100", "compress", photo, "-c", NATIVE)
    assert code == 1 and "limit" in err


@pytest.mark.parametrize("limit", [100, 2000])  # over twice and under twice the photo's 3072 pixels
@pytest.mark.parametrize("where", ["before", "after"])
def test_pixel_limit_is_one_line_naming_our_limit_and_its_option_on_either_side_of_the_command(
        capsys, photo, limit, where):
    import warnings

    opt = ["--max-pixels", str(limit)]
    argv = [*opt, "compress", photo, "-c", NATIVE] if where == "before" else ["compress", photo, "-c", NATIVE, *opt]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, _, err = run(capsys, *argv)
    assert code == 1
    assert_one_line_error(err)
    assert f"48 = 3,072 pixels exceeds the limit of {limit:,} pixels" in err and "--max-pixels" in err
    assert not caught, [str(w.message) for w in caught]  # no DecompressionBombWarning first
    assert not (photo.parent / "photo.mlc").exists()


def test_stdin_to_stdout_pipeline_through_the_console_script(photo, tmp_path):
    exe = Path(sys.executable).with_name("mlcompress")
    enc = subprocess.run([exe, "compress", "-", "-c", NATIVE], input=photo.read_bytes(), capture_output=True, check=True)
    assert enc.stdout[:4] == b"\x8aMLC"
    dec = subprocess.run([exe, "decompress", "-"], input=enc.stdout, capture_output=True, check=True)
    assert np.array_equal(read_image(dec.stdout), read_image(photo))


def test_console_script_error_has_no_traceback(tmp_path):
    exe = Path(sys.executable).with_name("mlcompress")
    bad = tmp_path / "x.mlc"
    bad.write_bytes(b"\x8aMLC\x01" + b"\x00" * 30)
    res = subprocess.run([exe, "decompress", bad], capture_output=True, text=True)
    assert res.returncode == 1
    assert_one_line_error(res.stderr)


def _forged_params_file(path: Path, params: bytes) -> Path:
    """A 5x4 rle file (valid payload and CRC) whose params block is ``params``, written as is."""
    import zlib

    from mlcompress import container

    c = container.unpack(registry.get("rle").encode(np.zeros((4, 5, 3), np.uint8)))
    var = bytes([3]) + b"rle" + len(params).to_bytes(2, "big") + params + b"\x00\x00"
    body = container.FIXED.pack(container.MAGIC, 1, 3, len(var), 5, 4) + var
    body += len(c.payload).to_bytes(4, "big") + c.payload
    path.write_bytes(body + zlib.crc32(body).to_bytes(4, "big"))
    return path


def test_deeply_nested_params_are_one_line_from_decompress_and_info(capsys, tmp_path):
    bad = _forged_params_file(tmp_path / "deep.mlc", b"[" * 2000 + b"]" * 2000)
    for argv in (("decompress", bad), ("info", bad), ("info", bad, "--json")):
        code, out, err = run(capsys, *argv)
        assert code == 1 and out == "", argv
        assert_one_line_error(err)
        assert "nested deeper than 16" in err
    assert not (tmp_path / "deep.decoded.png").exists()


def test_info_shows_the_header_of_a_codec_it_does_not_know_and_decompress_refuses_it(capsys, tmp_path):
    # docs/FORMAT.md, step 8: info reads unknown codecs' headers on purpose; decoding needs the codec
    from mlcompress import container

    path = tmp_path / "future.mlc"
    path.write_bytes(container.pack(container.Container("nosuchcodec", 5, 4, 3, b"\x00" * 9, {"v": 7})))
    code, out, err = run(capsys, "info", path, "--json")
    info = json.loads(out)
    assert code == 0 and err == ""
    assert (info["codec"], info["width"], info["height"], info["params"], info["payload_bytes"]) == (
        "nosuchcodec", 5, 4, {"v": 7}, 9)
    code, _, err = run(capsys, "decompress", path)
    assert code == 1 and "unknown codec 'nosuchcodec'" in err
    assert_one_line_error(err)


# ------------------------------------------------------------------ issue 26: found by a hostile review


def test_decompress_writes_a_default_level_png_and_the_smallest_on_request(capsys, photo, tmp_path):
    from mlcompress.image import png_bytes

    run(capsys, "compress", photo, "-c", NATIVE)
    img = read_image(photo)
    assert run(capsys, "decompress", photo.parent / "photo.mlc", "-o", tmp_path / "fast.png")[0] == 0
    assert (tmp_path / "fast.png").read_bytes() == png_bytes(img, 6)
    assert run(capsys, "decompress", photo.parent / "photo.mlc", "-o", tmp_path / "small.png", "--png-level", "9")[0] == 0
    assert (tmp_path / "small.png").read_bytes() == registry.get("png").encode(img)
    code, _, err = run(capsys, "decompress", photo.parent / "photo.mlc", "-o", tmp_path / "x.png", "--png-level", "10")
    assert code == 2 and "--png-level must be an integer in 0..9" in err
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("command", ["compress", "decompress"])
def test_an_unusable_output_is_refused_before_the_codec_runs(capsys, photo, tmp_path, monkeypatch, command):
    src = photo
    if command == "decompress":
        run(capsys, "compress", photo, "-c", NATIVE)
        src = photo.parent / "photo.mlc"
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    outputs = [tmp_path / "missing" / "x.out", "-"]
    if os.geteuid() != 0:  # root writes anywhere
        (tmp_path / "ro").mkdir(mode=0o500)
        outputs.append(tmp_path / "ro" / "x.out")

    def fail(*args, **kwargs):
        raise AssertionError("the codec ran before the output was checked")

    monkeypatch.setattr(registry.get(NATIVE), "encode", fail)
    monkeypatch.setattr(mlcompress, "decode", fail)
    for out in outputs:
        code, _, err = run(capsys, command, src, "-c", NATIVE, "-o", out) if command == "compress" else \
            run(capsys, command, src, "-o", out)
        assert code == 2, err
        assert_one_line_error(err)
        assert "terminal" in err if out == "-" else ("does not exist" in err or "cannot write" in err)


def test_an_output_named_for_another_format_is_refused_without_force(capsys, photo, tmp_path):
    code, _, err = run(capsys, "compress", photo, "-c", "jpeg", "-o", tmp_path / "x.mlc")
    assert code == 2 and "codec 'jpeg' writes .jpg files, not .mlc" in err and "--force" in err
    assert not (tmp_path / "x.mlc").exists()
    assert run(capsys, "compress", photo, "-c", "jpeg", "-o", tmp_path / "x.mlc", "--force")[0] == 0
    assert (tmp_path / "x.mlc").read_bytes()[:3] == b"\xff\xd8\xff"
    assert run(capsys, "compress", photo, "-c", "jpeg", "-o", tmp_path / "x.jpeg")[0] == 0  # the same format
    assert run(capsys, "compress", photo, "-c", NATIVE, "-o", tmp_path / "x.bin")[0] == 0  # no format's name
    code, _, err = run(capsys, "decompress", tmp_path / "x.bin", "-o", tmp_path / "back.jpg")
    assert code == 2 and "decompress writes .png files, not .jpg" in err
    assert not (tmp_path / "back.jpg").exists()


def test_compare_says_identical_and_too_small_instead_of_inf_and_nan(capsys, tmp_path):
    img = np.random.default_rng(0).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    for name, pixels in (("a.png", img), ("b.png", img), ("dot.png", img[:1, :1])):
        (tmp_path / name).write_bytes(registry.get("png").encode(pixels))
    code, out, _ = run(capsys, "compare", tmp_path / "a.png", tmp_path / "b.png")
    assert code == 0 and "nan" not in out
    assert "psnr: inf (identical images)" in out
    assert "ms_ssim: n/a (image too small for MS-SSIM: under 161 px a side)" in out
    code, out, _ = run(capsys, "compare", tmp_path / "dot.png", tmp_path / "dot.png")
    assert "ssim: n/a (image too small for SSIM: under 11 px a side)" in out
    code, out, _ = run(capsys, "compare", tmp_path / "a.png", tmp_path / "b.png", "--json")
    assert json.loads(out)["identical"] is True and json.loads(out)["psnr"] is None
    code, _, err = run(capsys, "compare", tmp_path / "a.png", tmp_path / "dot.png")
    assert code == 2 and "images differ in size or channels: 96x64 RGB vs 1x1 RGB" in err


def test_a_file_that_is_not_an_image_is_named_in_the_error(capsys, tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("hello, I am text")
    for argv in (["compress", bad, "-c", NATIVE], ["compare", bad, bad], ["info", bad], ["decompress", bad]):
        code, _, err = run(capsys, *argv)
        assert code == 1 and f"{bad}: not a recogni" in err, (argv, err)
        assert_one_line_error(err)
