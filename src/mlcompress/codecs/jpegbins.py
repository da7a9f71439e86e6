"""Keep a restored JPEG inside the file's quantisation bins (docs/CODECS.md, "Restored classical
codecs": the step after the network in ``jpeg+nn`` and ``enhance``).

Every 8x8 block's DCT coefficient (u, v) of a JPEG component was k * Q(u, v) after quantisation, so
the original lay within (k +- 1/2) * Q(u, v). :func:`constrain` reads k back from the file (each
component decoded at its stored resolution) and clips the restored image's coefficients to the
central ``SHRINK`` of their bins. numpy and Pillow only.
"""

from __future__ import annotations

import io

import numpy as np

#: the share of each quantisation bin (around its centre) that restored coefficients are clipped to
SHRINK = 0.8
#: rows per pass (a multiple of 16, the height of a 4:2:0 chroma block's square)
BAND = 256

#: JFIF's RGB -> YCbCr matrix (libjpeg's), before the +128 offset of the chroma rows
_YCC = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])
#: its inverse, rounded to 6 places: each RGB channel's change from the Y, Cb, Cr changes
_RGB = np.round(np.linalg.inv(_YCC), 6)


def _dct_matrix() -> np.ndarray:
    n = np.arange(8)
    c = np.sqrt(2 / 8) * np.cos((2 * n[None, :] + 1) * n[:, None] * np.pi / 16)
    c[0] /= np.sqrt(2)
    return c.astype(np.float32)


#: orthonormal 8-point DCT-II: the JPEG block transform is C @ block @ C.T
_C = _dct_matrix()


def _dct(plane: np.ndarray) -> np.ndarray:
    """H x W (multiples of 8) -> coefficients indexed [block row, u, block column, v]."""
    h, w = plane.shape
    return (_C @ plane.reshape(h // 8, 8, w)).reshape(h // 8, 8, w // 8, 8) @ _C.T


def _idct(coef: np.ndarray) -> np.ndarray:
    a, _, b, _ = coef.shape
    return (_C.T @ (coef @ _C).reshape(a, 8, b * 8)).reshape(a * 8, b * 8)


def _change(stored: np.ndarray, plane: np.ndarray, table: np.ndarray, shrink: float) -> tuple[np.ndarray, int, int]:
    """(the change to ``plane``'s top-left h x w that moves its coefficients into the central
    ``shrink`` of the bins that the decoded ``stored`` plane's coefficients fall in, h, w). Blocks that
    the plane's edge cuts, or with a stored sample the decoder clipped (0 or 255), are left alone."""
    h, w = (min(stored.shape[0], plane.shape[0]) // 8) * 8, (min(stored.shape[1], plane.shape[1]) // 8) * 8
    if not h or not w:
        return np.zeros((0, 0)), 0, 0
    s = stored[:h, :w]
    q = table[None, :, None, :]
    k = np.round(_dct(s.astype(np.float32) - 128) / q)
    c = _dct(plane[:h, :w] - 128)
    half = shrink / 2
    d = np.clip(c, (k - half) * q, (k + half) * q) - c
    clipped = ((s == 0) | (s == 255)).reshape(h // 8, 8, w // 8, 8).any(axis=(1, 3))
    d *= ~clipped[:, None, :, None]
    return _idct(d), h, w


def _layout(im) -> str | None:
    """"grey", "444", "420", or None for a layout the step does not handle."""
    layer = getattr(im, "layer", None) or []
    if im.mode == "L" and len(layer) == 1:
        return "grey"
    if im.mode != "RGB" or len(layer) != 3:
        return None
    if im.info.get("adobe_transform") == 0 or [c[0] for c in layer] in (["R", "G", "B"], [82, 71, 66]):
        return None
    sampling = [(c[1], c[2]) for c in layer]
    if sampling == [(1, 1)] * 3:
        return "444"
    if sampling == [(2, 2), (1, 1), (1, 1)]:
        return "420"
    return None


def _tables(im) -> list[np.ndarray] | None:
    """Each component's 8x8 quantisation table (natural order); None where one is missing or
    holds a 0, which a valid file never does."""
    try:
        tables = [np.asarray(im.quantization[c[3]], np.float32).reshape(8, 8) for c in im.layer]
    except (KeyError, ValueError, TypeError, AttributeError):
        return None
    return tables if all(t.min() > 0 for t in tables) else None


def _half(plane: np.ndarray) -> np.ndarray:
    """The mean of each 2x2 square (libjpeg's 4:2:0 downsampling) of the even-sized top-left."""
    h, w = (plane.shape[0] // 2) * 2, (plane.shape[1] // 2) * 2
    return (plane[0:h:2, 0:w:2] + plane[1:h:2, 0:w:2] + plane[0:h:2, 1:w:2] + plane[1:h:2, 1:w:2]) * 0.25


def _band(img: np.ndarray, luma: np.ndarray, chroma: np.ndarray | None, tables: list, layout: str,
          shrink: float) -> np.ndarray:
    """:func:`constrain` on rows of the image (starting on a multiple of 16) and of its stored planes."""
    if layout == "grey":
        plane = img.reshape(img.shape[0], img.shape[1]).astype(np.float32)
        d, h, w = _change(luma, plane, tables[0], shrink)
        plane[:h, :w] += d
        return np.clip(np.round(plane), 0, 255).astype(np.uint8).reshape(img.shape)
    rgb = [img[:, :, i].astype(np.float32) for i in range(3)]
    ycc = [sum(float(m) * c for m, c in zip(row, rgb)) + (128 if i else 0) for i, row in enumerate(_YCC)]
    change = [np.zeros(img.shape[:2], np.float32) for _ in range(3)]
    d, h, w = _change(luma[:, :, 0], ycc[0], tables[0], shrink)
    change[0][:h, :w] = d
    if chroma is not None:
        for ch in (1, 2):
            d, h, w = _change(chroma[:, :, ch], ycc[ch] if layout == "444" else _half(ycc[ch]), tables[ch], shrink)
            if layout == "420":
                d, h, w = d.repeat(2, axis=0).repeat(2, axis=1), 2 * h, 2 * w
            change[ch][:h, :w] = d
    out = np.empty_like(img)
    for i, row in enumerate(_RGB):
        v = rgb[i] + sum(float(m) * c for m, c in zip(row, change) if m)
        out[:, :, i] = np.clip(np.round(v), 0, 255)
    return out


def constrain(data: bytes, img: np.ndarray, shrink: float = SHRINK) -> np.ndarray:
    """The restored uint8 image ``img`` (the JPEG ``data``'s size; H x W, H x W x 1 or H x W x 3, in
    the file's stored orientation) with its DCT coefficients clipped into the central ``shrink``
    (0..1) of the file's quantisation bins; ``img`` itself when the file's layout is not handled. Works in bands
    of BAND rows, so its memory is bounded as the network's tiles are."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        layout = _layout(im)
        if layout is None or im.size != (img.shape[1], img.shape[0]):
            return img
        if layout != "grey" and (img.ndim != 3 or img.shape[2] != 3):
            return img
        tables = _tables(im)
        if tables is None:
            return img
        if layout != "grey":
            im.draft("YCbCr", im.size)
        luma = np.asarray(im)
    chroma = luma if layout == "444" else None
    if layout == "420":
        with Image.open(io.BytesIO(data)) as im:
            im.draft("YCbCr", (max(1, im.size[0] // 2), max(1, im.size[1] // 2)))
            chroma = np.asarray(im)
        if chroma.shape[:2] != ((img.shape[0] + 1) // 2, (img.shape[1] + 1) // 2):  # not the stored chroma
            chroma = None
    sub = 2 if layout == "420" else 1
    out = np.empty_like(img)
    for y0 in range(0, img.shape[0], BAND):
        y1 = y0 + BAND
        out[y0:y1] = _band(img[y0:y1], luma[y0:y1], None if chroma is None else chroma[y0 // sub : y1 // sub],
                           tables, layout, shrink)
    return out
