"""The README's examples run as written, in order, on a sample photo in a temporary folder.

Every ```sh block runs through bash (set -euo pipefail) and every ```python block through Python,
in one folder holding ``photo.png`` (a 256x256 crop of scikit-image's astronaut) and ``photos/``
(two small images), with this interpreter's ``mlcompress`` first on PATH. A block that cannot run
there says why on the line before it: ``<!-- not run by tests: REASON -->``. A ``# -> NAME``
comment promises that NAME exists after the block; that is checked too.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
SKIP = re.compile(r"<!-- not run by tests: (.+?) -->")
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def blocks(text: str) -> list[tuple[str, str, str | None]]:
    """(language, code, reason not run or None) of every fenced block, in order."""
    out = []
    for m in BLOCK.finditer(text):
        before = text[:m.start()].rstrip().splitlines()
        reason = SKIP.fullmatch(before[-1].strip()) if before else None
        out.append((m[1], m[2], reason[1] if reason else None))
    return out


def promised_files(code: str) -> list[str]:
    return [m[1] for m in re.finditer(r"#\s*->\s*([\w./-]+\.\w+)", code)]


@pytest.fixture
def folder(tmp_path):
    from skimage import data

    from mlcompress import registry

    png = registry.get("png")
    img = data.astronaut()
    (tmp_path / "photo.png").write_bytes(png.encode(np.ascontiguousarray(img[0:256, 128:384])))
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "a.png").write_bytes(png.encode(np.ascontiguousarray(img[256:352, 0:128])))
    (tmp_path / "photos" / "b.png").write_bytes(png.encode(np.ascontiguousarray(img[300:396, 300:428])))
    return tmp_path


@pytest.mark.slow  # about 15 commands, several starting torch
def test_every_readme_example_runs_as_written_in_order(folder):
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    ran = 0
    for lang, code, reason in blocks(README.read_text()):
        if reason or lang not in ("sh", "python"):
            assert reason or lang not in ("sh", "bash", "console", "shell"), f"a shell block without a reason:\n{code}"
            continue
        argv = ["bash", "-euo", "pipefail", "-c", code] if lang == "sh" else [sys.executable, "-c", code]
        res = subprocess.run(argv, cwd=folder, env=env, capture_output=True, text=True, timeout=600,
                             stdin=subprocess.DEVNULL)
        assert res.returncode == 0, f"README example failed (exit {res.returncode}):\n{code}\n{res.stderr[-2000:]}"
        for name in promised_files(code):
            assert (folder / name).exists(), f"the README promises {name}, which is not there:\n{code}"
        ran += 1
    assert ran >= 3


def test_the_readme_is_for_users_under_8_kb_and_its_links_resolve():
    text = README.read_text()
    assert len(text.encode()) < 8 * 1024
    for target in re.findall(r"\]\(([^)#\s]+)\)", text):
        if "://" not in target:
            assert (REPO / target).exists(), target
    assert all(reason for lang, _, reason in blocks(text) if lang == "sh" and "make " in _)


def test_blocks_are_found_with_their_reasons():
    text = "a\n<!-- not run by tests: slow -->\n```sh\nmake x\n```\n\n```python\nprint(1)  # -> out.txt\n```\n"
    assert blocks(text) == [("sh", "make x\n", "slow"), ("python", "print(1)  # -> out.txt\n", None)]
    assert promised_files("mlcompress x  # -> photo.avif, then") == ["photo.avif"]
