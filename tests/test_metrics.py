"""Metric values against hand-computed cases."""

import math

import numpy as np
import pytest

from mlcompress import metrics
from mlcompress.errors import UsageError


def test_mse_and_psnr_of_a_constant_offset_match_hand_computation():
    a = np.zeros((4, 4, 3), np.uint8)
    b = np.full((4, 4, 3), 10, np.uint8)
    assert metrics.mse(a, b) == 100.0
    assert metrics.psnr(a, b) == pytest.approx(10 * math.log10(255**2 / 100))  # 28.1308 dB


def test_psnr_of_one_wrong_sample_in_four():
    a = np.zeros((2, 2), np.uint8)
    b = a.copy()
    b[0, 0] = 255
    assert metrics.mse(a, b) == 255**2 / 4
    assert metrics.psnr(a, b) == pytest.approx(10 * math.log10(4))


def test_psnr_of_identical_images_is_infinite():
    a = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
    assert metrics.psnr(a, a) == math.inf


def test_psnr_uses_uint8_scale_not_overflowing_arithmetic():
    a = np.zeros((1, 1, 3), np.uint8)
    b = np.full((1, 1, 3), 255, np.uint8)
    assert metrics.psnr(a, b) == pytest.approx(0.0)


def test_shape_mismatch_is_a_usage_error():
    with pytest.raises(UsageError):
        metrics.psnr(np.zeros((2, 2), np.uint8), np.zeros((2, 3), np.uint8))


def test_bpp_counts_file_bytes_over_pixels():
    assert metrics.bpp(1000, 100, 80) == pytest.approx(1.0)
    assert metrics.bpp(3, 2, 3) == pytest.approx(4.0)


def test_compression_ratio_and_rate_follow_the_thesis_definitions():
    assert metrics.compression_ratio(800, 200) == 4.0
    assert metrics.compression_rate(800, 200) == pytest.approx(75.0)
    assert metrics.compression_rate(100, 200) == pytest.approx(-100.0)


def test_entropy_h0_of_uniform_and_constant_images():
    assert metrics.entropy_h0(np.zeros((8, 8), np.uint8)) == 0.0
    two = np.array([[0, 255], [0, 255]], np.uint8)
    assert metrics.entropy_h0(two) == pytest.approx(1.0)
    all_values = np.arange(256, dtype=np.uint8).reshape(16, 16)
    assert metrics.entropy_h0(all_values) == pytest.approx(8.0)


def test_bmp_size_matches_a_real_bmp_file(tmp_path):
    from PIL import Image

    for w, h in [(7, 5), (8, 3), (1, 1)]:
        Image.new("RGB", (w, h)).save(tmp_path / "x.bmp")
        assert metrics.bmp_size(w, h, 3) == (tmp_path / "x.bmp").stat().st_size


def test_ssim_and_ms_ssim_are_one_for_identical_and_lower_for_noisy_images(rng):
    yy, xx = np.mgrid[0:192, 0:192]
    a = np.stack([xx, yy, (xx + yy) // 2], axis=2).astype(np.uint8)
    noisy = np.clip(a.astype(int) + rng.integers(-40, 41, a.shape), 0, 255).astype(np.uint8)
    assert metrics.ssim(a, a) == pytest.approx(1.0, abs=1e-6)
    assert metrics.ms_ssim(a, a) == pytest.approx(1.0, abs=1e-6)
    assert metrics.ssim(a, noisy) < 0.9
    assert metrics.ms_ssim(a, noisy) < metrics.ms_ssim(a, a)


def test_ms_ssim_is_nan_below_its_minimum_size():
    a = np.zeros((100, 100, 3), np.uint8)
    assert math.isnan(metrics.ms_ssim(a, a))
