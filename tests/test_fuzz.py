"""The fuzzer finds crashes, and finds none in the codecs we ship (a short bounded run)."""

from __future__ import annotations

import os
import random
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mlcompress
from mlcompress import container as mlc
from mlcompress import fuzz, registry
from mlcompress.errors import CorruptDataError, Error

#: crash inputs found by the fuzzer and fixed since: (codec, hex of the minimal reproducer).
#: Each must now decode to an image or raise an mlcompress.Error.
REGRESSIONS: list[tuple[str, str]] = [
    # classical codecs, seed 3: Pillow's AVIF plugin raised RuntimeError("Failed to decode image: Not
    # implemented") through image.read_image (fixed there: RuntimeError -> CorruptDataError)
    ("avif", (
        "00000020667479706176696600000000617669666d6966316d6961664d413142000000eb6d6574610000000000000021"
        "68646c72000000000000000070696374000000000000000000000000000000000e7069746d0000000000010000001e69"
        "6c6f63000000004400000100010000000100000113000000410000002869696e660000000000010000001a696e666502"
        "0000000001000061763031436f6c6f72000000006a697072700000004b6970636f000000146973706500000000000000"
        "0a0000000600000010706978690000000000404341a1323317878786218492492655400000fd45faa8e8c80c7886b7a7"
        "28350e744f6e578a7caf2be29b3c8191006220ee4936f1fd1999b5"
    )),
    # same run: RuntimeError("Failed to decode frame 0: Decoding of alpha plane failed")
    ("avif", (
        "00000020667479706176696600000000617669666d6966316d6961664d413142000001866d6574610000000000000021"
        "68646c72000000000000000070696374000000000000000000000000000000000e7069746d0000000000010000002c69"
        "6c6f630000000044000002000100000001000001d900000033000200000001000001ae0000002b0000004269696e6600"
        "00000000020000001a696e6665020000000001000061763031436f6c6f72000000001a696e6665020000000002000061"
        "763031416c706861000000001a69726566000000000000000e6175786c000200010001000000c3697072700000009d69"
        "70636f0000001469737065000000000000000600000004000000107069786900000000030808080000000c6176314381"
        "000c0000000013636f6c726e636c780001000d0006800000000e706978690000000001080000000c6176314381001c00"
        "00000038617578430000000075726e3a6d7065673a6d706567423a636963703a73797374656d733a617578696c696172"
        "793a616c706861000000001e69706d6100000000000000020001040102830400020401058607000000666d6461741200"
        "0a0518086ec2a032201640186100fbbe6966fec68ecc01f8f374b8c2a708ffffffff4b1c9b46b7409812000a0818086e"
        "d1010d0684322517878786218492492650000000485436a7763bda1477ffec3fec553294ef18a3ae1916d340"
    )),
]


def _available_native() -> list:
    codecs, skipped = fuzz.native_codecs()
    if not codecs:
        pytest.skip(f"no native codec available to fuzz (skipped: {skipped or 'none registered'})")
    return codecs


def test_fuzzing_every_native_codec_for_1500_cases_finds_no_crash(tmp_path):
    names = [c.name for c in _available_native()]
    report = fuzz.run(1500, seed=20241125, codecs=names, crash_dir=tmp_path)
    assert report.cases == 1500
    assert report.crashes == 0, report.summary()
    assert set(report.mutations) == set(fuzz.MUTATIONS)
    assert not report.slow, report.summary()


def test_encoders_writing_another_codecs_files_are_fuzzed_through_that_codec_unless_named():
    chosen, skipped = fuzz.native_codecs()
    names = {c.name for c in chosen}
    variants = [c for c in registry.codecs() if c.native and c.file_codec != c.name]
    assert variants, "no registered encoder writes another codec's files"
    for codec in variants:
        assert codec.name not in names
        assert skipped[codec.name] == f"writes {codec.file_codec} files, fuzzed as {codec.file_codec}"
    available = [c for c in variants if not c.unavailable_reason()]
    if available:  # named, it is fuzzed with its own seeds
        named, _ = fuzz.native_codecs([available[0].name])
        assert [c.name for c in named] == [available[0].name]


def test_fuzz_command_runs_under_a_memory_cap_and_exits_zero(tmp_path):
    _available_native()
    env = dict(os.environ, PYTHONHASHSEED="0")
    proc = subprocess.run(
        [sys.executable, "-m", "mlcompress.fuzz", "--cases", "300", "--seed", "7",
         "--crash-dir", str(tmp_path / "crashes"), "--quiet"],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "fuzzed 300 cases" in proc.stdout
    assert "crashes: 0 (0 distinct)" in proc.stdout
    assert "address space capped" in proc.stdout or "not available" in proc.stdout
    assert not (tmp_path / "crashes").exists()


@pytest.mark.parametrize("args, message", [
    (["--cases", "0"], "--cases must be at least 1, got 0"),
    (["--mem-mb", "-1"], "--mem-mb must be at least 0, got -1"),
    (["--fuzz-max-pixels", "0"], "--fuzz-max-pixels must be at least 1, got 0"),
    (["--hang-seconds", "-1"], "--hang-seconds must be a positive number, got -1.0"),
])
def test_fuzz_command_refuses_values_no_run_can_use_before_any_work(args, message, tmp_path, capsys):
    from mlcompress.cli import main

    assert main(["fuzz", "--crash-dir", str(tmp_path / "crashes"), "--quiet", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err == f"mlcompress: error: {message}"
    assert not (tmp_path / "crashes").exists()


def test_the_fuzzers_own_entry_point_takes_the_same_options_and_errors_in_one_line(tmp_path, capsys):
    assert fuzz.main(["--cases", "0", "--crash-dir", str(tmp_path / "crashes")]) == 2
    err = capsys.readouterr().err
    assert err == "python -m mlcompress.fuzz: error: --cases must be at least 1, got 0\n"
    assert fuzz.main(["--no-such-option"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert not (tmp_path / "crashes").exists()


@pytest.mark.parametrize("codec,hexdata", REGRESSIONS)
def test_fixed_fuzz_crash_no_longer_crashes(codec, hexdata):
    if codec not in mlcompress.list_codecs(available_only=True):
        pytest.skip(f"codec {codec} is not available here")
    outcome, exc, _ = fuzz.decode_case(bytes.fromhex(hexdata), hang_seconds=20)
    assert outcome not in ("crash", "hang", "bad-result"), repr(exc)


def test_fuzzing_the_classical_decoders_for_600_cases_finds_no_crash(tmp_path):
    codecs, _ = fuzz.native_codecs([c for c in mlcompress.list_codecs() if not mlcompress.get_codec(c).native],
                                   classical=True)
    if not codecs:
        pytest.skip("no classical codec available")
    report = fuzz.run(600, seed=5, codecs=[c.name for c in codecs], crash_dir=tmp_path, classical=True)
    assert report.cases == 600
    assert report.crashes == 0, report.summary()


def test_fuzzing_native_and_classical_codecs_together_splices_only_mlc_files(tmp_path):
    # the container mutations once took a JPEG or PNG seed apart as if it were an .mlc file and
    # stopped the run with "not an .mlc file" (`make fuzz` with --classical)
    report = fuzz.run(400, seed=18, codecs=["rle", "png"], crash_dir=tmp_path, classical=True)
    assert report.cases == 400 and report.crashes == 0, report.summary()
    assert report.mutations["swap-codec"] + report.mutations["stacked"] > 0


# ------------------------------------------------------------ the fuzzer itself, on a fake codec


def _fake_file(n: int) -> bytes:
    payload = bytes(range(n))
    return mlc.pack(mlc.Container("fake", n, 1, 1, payload, {"n": n, "v": 1}))


def _buggy_decode(data: bytes) -> np.ndarray:
    """A decoder with the classic bugs: trusts a count from params and indexes past the payload."""
    c = mlc.unpack(data)
    if c.codec != "fake":
        raise CorruptDataError("not fake")
    out = np.frombuffer(c.payload, np.uint8)
    _ = c.payload[c.params["n"] - 1]  # IndexError / KeyError / TypeError on forged params
    return out.reshape(c.height, c.width)  # ValueError when the payload has the wrong length


def test_fuzzer_saves_crashing_inputs_and_a_smaller_reproducer(tmp_path):
    corpus = {"fake": [_fake_file(12), _fake_file(30)]}
    report = fuzz.run(400, seed=1, crash_dir=tmp_path, corpus=corpus, decode=_buggy_decode)
    assert report.crashes > 0
    kinds = {f.signature.split()[0] for f in report.findings.values()}
    assert kinds & {"IndexError", "KeyError", "TypeError", "ValueError"}
    saved = sorted(tmp_path.glob("*.mlc"))
    assert saved and all(p.with_suffix(".txt").exists() for p in saved)
    for f in report.findings.values():
        small = bytes.fromhex(f.minimal)
        assert len(small) <= len(_fake_file(30))
        outcome, exc, _ = fuzz.decode_case(small, _buggy_decode)
        assert outcome == f.kind
        assert f.kind != "crash" or fuzz._signature(exc) == f.signature
    assert "crashes:" in report.summary()


def test_fuzzer_interrupts_a_hanging_decoder_and_reports_it(tmp_path):
    def hang(data: bytes):
        while True:
            pass

    report = fuzz.run(2, seed=0, crash_dir=tmp_path, corpus={"fake": [_fake_file(4)]}, decode=hang,
                      hang_seconds=0.2)
    assert report.outcomes["hang"] == 2
    assert any(f.kind == "hang" for f in report.findings.values())


def test_fuzzer_reports_a_decode_that_returns_the_wrong_shape(tmp_path):
    report = fuzz.run(5, seed=0, crash_dir=None, corpus={"fake": [_fake_file(4)]},
                      decode=lambda data: np.zeros((2, 2), np.uint8))
    assert report.outcomes["bad-result"] + report.outcomes["crash"] == 5


def test_an_error_without_a_message_counts_as_a_crash():
    def silent(data: bytes):
        raise CorruptDataError("")

    outcome, _, _ = fuzz.decode_case(_fake_file(4), silent)
    assert outcome == "crash"


def test_mutations_are_deterministic_for_a_seed():
    files = [_fake_file(10), _fake_file(20)]

    def stream(seed: int) -> list[tuple[str, bytes]]:
        rng = random.Random(seed)
        return [fuzz.mutate(files[i % 2], rng, files) for i in range(300)]

    assert stream(3) == stream(3)
    assert stream(3) != stream(4)


def test_payload_and_param_mutations_keep_a_valid_checksum_so_they_reach_the_codec():
    rng = random.Random(0)
    data = _fake_file(16)
    for mutation in (fuzz.m_payload, fuzz.m_params, fuzz.m_geometry, fuzz.m_swap_codec):
        changed = 0
        for _ in range(50):
            out = mutation(data, rng, [data, _fake_file(3)])
            c = mlc.unpack(out, check_limits=False)  # raises on a bad CRC
            changed += out != data
            assert c.codec == "fake"
        assert changed > 10, mutation.__name__


def test_every_mutation_kind_is_used():
    rng = random.Random(0)
    used = {fuzz.mutate(_fake_file(8), rng)[0] for _ in range(500)}
    assert used == set(fuzz.MUTATIONS)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200))
def test_arbitrary_bytes_after_the_magic_decode_or_raise_an_mlcompress_error(tail):
    for data in (mlc.MAGIC + tail, fuzz.fix_crc(bytearray(mlc.MAGIC + tail))):
        try:
            img = mlcompress.decode(bytes(data))
        except Error as exc:
            assert str(exc)
        else:
            assert fuzz.check_result(bytes(data), img) is None


def test_the_time_limit_puts_back_an_outer_timer():
    import signal

    fired = []
    old = signal.signal(signal.SIGALRM, lambda *a: fired.append(1))
    try:
        signal.setitimer(signal.ITIMER_REAL, 5.0)
        with fuzz.time_limit(1.0):
            pass
        remaining, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 3.0 < remaining <= 5.0
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert not fired
