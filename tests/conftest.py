"""Shared fixtures: synthetic images and the shared data sets (skipped when absent, unless CI=true)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("MLCOMPRESS_DATA", REPO.parent / "shared" / "data"))


def data_dir(name: str) -> Path:
    """A folder of ../shared/data; skip with a reason when absent, fail under CI=true."""
    path = SHARED_DATA / name
    if not path.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{path} is missing but CI=true requires the shared data")
        pytest.skip(f"shared data {path} not present (set MLCOMPRESS_DATA or run beside ../shared)")
    return path


@pytest.fixture(autouse=True)
def _restore_pixel_limit():
    """Undo a pixel limit set by a test (``cli.main(["--max-pixels", ...])`` sets it for the process)."""
    from mlcompress import limits

    old = limits._max_pixels
    yield
    limits._max_pixels = old


@pytest.fixture(scope="session")
def kodak_dir() -> Path:
    return data_dir("kodak")


@pytest.fixture(scope="session")
def kodak_images(kodak_dir) -> list[np.ndarray]:
    """Three Kodak images (uint8 HxWx3), enough for round trips without making tests slow."""
    from mlcompress.image import read_image

    return [read_image(kodak_dir / f"kodim{i:02d}.png") for i in (1, 7, 23)]


@pytest.fixture(scope="session")
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def synthetic_images() -> dict[str, np.ndarray]:
    """Small images of every layout: gradients, noise, flat areas, odd sizes."""
    r = np.random.default_rng(7)
    yy, xx = np.mgrid[0:37, 0:53]
    grad = np.stack([(xx * 4) % 256, (yy * 6) % 256, ((xx + yy) * 3) % 256], axis=2).astype(np.uint8)
    return {
        "rgb_gradient": grad,
        "rgb_noise": r.integers(0, 256, (29, 31, 3), dtype=np.uint8),
        "grey": (xx * 4 % 256).astype(np.uint8),
        "rgba": np.dstack([grad, r.integers(0, 256, (37, 53), dtype=np.uint8)]),
        "flat": np.full((16, 16, 3), 128, np.uint8),
        "one_pixel": np.array([[[10, 20, 30]]], np.uint8),
        "thin": r.integers(0, 256, (1, 40, 3), dtype=np.uint8),
    }


@pytest.fixture(params=sorted(synthetic_images()))
def synthetic(request) -> np.ndarray:
    return synthetic_images()[request.param]


def require_codec(name: str):
    """The registered codec ``name``; skip with the codec's reason when it cannot run here."""
    from mlcompress import registry

    if name == "<none>":
        pytest.skip("no native codec is registered")
    codec = registry.get(name)
    reason = codec.unavailable_reason()
    if reason:
        pytest.skip(f"codec {name} unavailable: {reason}")
    return codec


#: the learned codecs' model architectures (nn.models.MODELS)
LEARNED_ARCHS = ("factorized", "hyperprior", "hyperprior-ctx")


#: the tiny codec weights of these architectures end g_s with a Refiner, so the codec tests
#: (thread counts, tiling, corruption, ...) run through one as well as without
REFINED_ARCHS = ("hyperprior",)


def tiny_model(arch: str, seed: int = 0, refine: int = 0):
    """A tiny randomly initialised learned model (N=8, M=12): fast, and good enough for coding tests."""
    import torch

    from mlcompress.nn.models import build

    torch.manual_seed(seed)
    model = build(arch, 8, 12, refine)
    for net in getattr(model, "ctx", ()):  # an untrained context model changes nothing: make it act
        torch.nn.init.normal_(net[-1].weight, std=0.3)
    if refine:  # nor does a fresh Refiner
        torch.nn.init.normal_(model.g_s[-1].net[-1].weight, std=0.1)
    return model


#: the variable-rate model's architecture, name and weights file (one for every quality)
VR_ARCH = "hyperprior-ctx-vr"


def tiny_vr_model(seed: int = 0):
    """A tiny variable-rate model (with a Refiner) whose gains start as training starts them from level 3."""
    from mlcompress.codecs.learned import LAMBDAS

    model = tiny_model(VR_ARCH, seed=seed, refine=4)
    model.init_gains(LAMBDAS, LAMBDAS[2])
    return model


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory):
    """A folder with tiny random weights for quality 3 of every learned codec, and the variable-rate
    model's one file for every quality."""
    pytest.importorskip("torch")
    pytest.importorskip("safetensors")
    from mlcompress.codecs.learned import LAMBDAS
    from mlcompress.train.export import write_weights

    d = tmp_path_factory.mktemp("weights")
    for arch in LEARNED_ARCHS:
        write_weights(tiny_model(arch, refine=4 if arch in REFINED_ARCHS else 0), f"{arch}-q3", 0.013, d)
    write_weights(tiny_vr_model(), VR_ARCH, LAMBDAS, d)
    return d
