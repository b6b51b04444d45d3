"""Turning decoded pixels into training arrays: resizing, mask binarisation, intensity normalisation.

Shared by every loader so that Kvasir-SEG, CVC-ClinicDB and PROMISE12 are prepared the same way, and so that
the checks that catch bad masks (too many grey levels, a JPEG mask that is not black-and-white) live in one
place. Raises :class:`~scsam_lite.errors.DataError` naming the file.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..errors import DataError

#: A JPEG mask is thresholded at this grey level (0-255).
JPEG_THRESHOLD = 127
#: ... and must be bimodal: at most this share of its pixels may be mid-grey (64-191), i.e. compression noise
#: along edges, not a photo saved as a mask.
JPEG_MAX_MIDGREY = 0.08
#: The command-line fix for masks that need a threshold (named in every mask error).
THRESHOLD_FIX = "--set data.mask_threshold={} (load_dataset(..., mask_threshold={}) in Python)"
#: Robust intensity window of volumes (MRI has no fixed scale): these percentiles map to 0 and 255.
PERCENTILES = (0.5, 99.5)


def resize_image(img: Image.Image, res: int) -> np.ndarray:
    """An RGB or L PIL image resized (antialiased bilinear) to ``res`` x ``res``: ``(res, res, C)`` uint8."""
    out = np.asarray(img.resize((res, res), Image.BILINEAR))
    return out[..., None] if out.ndim == 2 else out


def resize_mask(mask: np.ndarray, res: int) -> np.ndarray:
    """A {0, 1} mask resized to ``res`` x ``res`` by area-weighted averaging then a 0.5 threshold.

    Photos are shrunk about threefold; nearest-neighbour would alias thin borders, averaging keeps the shape.
    """
    img = Image.fromarray((mask > 0).astype(np.uint8) * 255)
    small = np.asarray(img.resize((res, res), Image.BILINEAR))
    return (small >= 128).astype(np.uint8)


def binarize_mask(mask: np.ndarray, name: str, lossy: bool, threshold: int | None = None) -> np.ndarray:
    """A decoded mask (H, W) or (H, W, C) as {0, 1} uint8, or a DataError if it is not a binary mask.

    Lossless masks (PNG, TIFF, MHD) must have at most two grey levels; the higher one is the foreground (so
    0/1, 0/255 and RGB 0/255 masks all work). JPEG masks are thresholded at 127 after checking that they are
    bimodal, because compression leaves grey pixels along the edges. ``threshold`` (0-255) accepts lossless
    masks with more levels (resized or anti-aliased copies) by thresholding them too.
    """
    if mask.ndim == 3:
        mask = mask.max(axis=2)
    if lossy:
        if threshold is None and mask.max(initial=0) < 128:
            # a two-level mask saved dark (0/1, 0/k) and compressed: threshold halfway to its foreground level
            level = _foreground_level(mask)
            if level == 0:
                return np.zeros(mask.shape, np.uint8)
            cut = level / 2
        else:
            mid = float(((mask >= 64) & (mask <= 191)).mean())
            if mid > JPEG_MAX_MIDGREY:
                raise DataError(
                    f"mask {name} is not black-and-white: {mid:.0%} of its pixels are mid-grey",
                    "masks must be binary (foreground white on black); check that the masks folder holds masks",
                )
            cut = JPEG_THRESHOLD if threshold is None else threshold
        bright = int((mask > cut).sum())
        dim = int(((mask >= 16) & (mask <= cut)).sum())  # clearly not background, yet below the threshold
        if dim > max(bright, 0.0005 * mask.size):  # most of the foreground would vanish
            raise DataError(
                f"mask {name} has a foreground (values up to {int(mask.max())}) that vanished when thresholded",
                f"threshold below the mask's foreground value with {THRESHOLD_FIX.format('N', 'N')}, or save "
                "the mask as 0/255",
            )
        return (mask > cut).astype(np.uint8)
    if threshold is not None:
        return (mask > threshold).astype(np.uint8)
    levels = np.unique(mask)
    if len(levels) > 2:
        shown = ", ".join(str(v) for v in levels[:6]) + (", ..." if len(levels) > 6 else "")
        raise DataError(
            f"mask {name} has {len(levels)} grey levels ({shown}); a binary mask has two",
            f"for resized or anti-aliased masks add {THRESHOLD_FIX.format(127, 127)}; otherwise use binary "
            "masks (0 = background, one value for the foreground); multi-class label maps are not supported",
        )
    if len(levels) == 2:
        return (mask == levels[1]).astype(np.uint8)
    return (mask > 0).astype(np.uint8)


def grey_levels(mask: np.ndarray) -> int:
    """How many grey levels a decoded mask has (an RGB mask counts by its brightest channel, as it is read)."""
    return len(np.unique(mask.max(axis=2) if mask.ndim == 3 else mask))


def _foreground_level(mask: np.ndarray) -> int:
    """The most common non-zero value of a mask, ignoring compression noise (values seen on under 0.05% of
    pixels); 0 for an empty one."""
    counts = np.bincount(mask.ravel().astype(np.int64), minlength=256)[1:]
    counts[counts < max(1, 0.0005 * mask.size)] = 0
    return int(np.argmax(counts)) + 1 if counts.any() else 0


def normalize_intensity(volume: np.ndarray, percentiles: tuple[float, float] = PERCENTILES) -> np.ndarray:
    """A volume scaled to [0, 1] between its robust low and high percentiles (per case: MRI has no units)."""
    v = volume.astype(np.float32)
    lo, hi = np.percentile(v, percentiles)
    if hi <= lo:
        return np.zeros_like(v)
    return np.clip((v - lo) / (hi - lo), 0, 1)


def resize_slices(volume: np.ndarray, res: int, mask: bool) -> np.ndarray:
    """``(Z, H, W)`` slices resized in-plane to ``res``: bilinear (antialiased) for images, nearest for masks."""
    t = torch.from_numpy(np.ascontiguousarray(volume, dtype=np.float32))[:, None]
    if mask:
        out = F.interpolate(t, size=(res, res), mode="nearest-exact")
    else:
        out = F.interpolate(t, size=(res, res), mode="bilinear", antialias=True, align_corners=False)
    return out[:, 0].numpy()


def to_uint8(x: np.ndarray) -> np.ndarray:
    """[0, 1] floats as uint8 (rounded)."""
    return (np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8)
