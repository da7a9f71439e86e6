"""Image-quality and size metrics: the one implementation used by the CLI, training and bench.

Images are uint8 arrays (HxW, HxWx3, HxWx4) in 0..255. PSNR uses peak 255 over every channel
(RGB PSNR for RGB images). bpp counts the real bytes of a file: 8 * bytes / (H * W).
"""

from __future__ import annotations

import math

import numpy as np

from .errors import UsageError
from .image import as_hwc


def _pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = as_hwc(a), as_hwc(b)
    if a.shape != b.shape:
        raise UsageError(f"images differ in size or channels: {_size(a)} vs {_size(b)}")
    return a, b


def _size(hwc: np.ndarray) -> str:
    """``768x512 RGB``: width x height and the channels, as every other message says it."""
    return f"{hwc.shape[1]}x{hwc.shape[0]} {({1: 'grey', 3: 'RGB', 4: 'RGBA'})[hwc.shape[2]]}"


def mse(a: np.ndarray, b: np.ndarray) -> float:
    """Mean squared error over all samples, on the 0..255 scale."""
    a, b = _pair(a, b)
    d = np.subtract(a, b, dtype=np.float64).ravel()
    # a dot product of float64 differences: one pass, and exact for 8-bit samples (every partial
    # sum is an integer below 2**53 up to 10**11 samples), so the summation order does not matter
    return float(np.dot(d, d)) / d.size


def psnr_from_mse(m: float, peak: float = 255.0) -> float:
    """PSNR in dB for an MSE on the scale of ``peak``; inf for identical images."""
    return math.inf if m == 0 else 10.0 * math.log10(peak * peak / m)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB with peak 255 over all channels of two uint8 images (inf when identical)."""
    return psnr_from_mse(mse(a, b))


def _torch_pair(a: np.ndarray, b: np.ndarray):
    import torch

    a, b = _pair(a, b)
    ta = torch.from_numpy(a.astype(np.float32)).permute(2, 0, 1)[None]
    tb = torch.from_numpy(b.astype(np.float32)).permute(2, 0, 1)[None]
    return ta, tb


#: The smallest side SSIM's 11-pixel window is defined for.
SSIM_MIN_SIDE = 11


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM (Gaussian window 11, sigma 1.5, Wang et al. 2004), averaged over channels; NaN below
    11 px per side."""
    from pytorch_msssim import ssim as _ssim

    ta, tb = _torch_pair(a, b)
    if min(ta.shape[-2:]) < SSIM_MIN_SIDE:
        return math.nan
    return float(_ssim(ta, tb, data_range=255.0, size_average=True))


#: The smallest side MS-SSIM with 5 scales and an 11-pixel window is defined for.
MS_SSIM_MIN_SIDE = 161


def ms_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """MS-SSIM (5 scales, Wang et al. 2003), averaged over channels; NaN below 161 px per side."""
    from pytorch_msssim import ms_ssim as _ms_ssim

    ta, tb = _torch_pair(a, b)
    if min(ta.shape[-2:]) < MS_SSIM_MIN_SIDE:
        return math.nan
    return float(_ms_ssim(ta, tb, data_range=255.0, size_average=True))


def bpp(num_bytes: int, width: int, height: int) -> float:
    """Bits per pixel of a file of ``num_bytes`` bytes holding a width x height image."""
    if width <= 0 or height <= 0:
        raise UsageError("image size must be positive")
    return 8.0 * num_bytes / (width * height)


def raw_bits(img: np.ndarray) -> int:
    """Bits of the uncompressed image: H * W * C * 8."""
    return int(as_hwc(img).size) * 8


def compression_ratio(original_bits: int, compressed_bits: int) -> float:
    """The thesis's CR = original bits / compressed bits."""
    if compressed_bits <= 0:
        raise UsageError("compressed size must be positive")
    return original_bits / compressed_bits


def compression_rate(original_bits: int, compressed_bits: int) -> float:
    """The thesis's compression rate in percent: (1 - 1/CR) * 100 (negative when a file grows)."""
    return (1.0 - 1.0 / compression_ratio(original_bits, compressed_bits)) * 100.0


def entropy_h0(img: np.ndarray) -> float:
    """Zero-order entropy in bits per sample of the histogram of all 8-bit sample values."""
    counts = np.bincount(as_hwc(img).ravel(), minlength=256).astype(np.float64)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum()) + 0.0


def bmp_size(width: int, height: int, channels: int = 3) -> int:
    """Bytes of an uncompressed 24-bit (or 8-bit grey / 32-bit) BMP file: the thesis's baseline."""
    bits = {1: 8, 3: 24, 4: 32}[channels]
    row = (width * bits // 8 + 3) // 4 * 4
    palette = 1024 if channels == 1 else 0
    return 14 + 40 + palette + row * height
