"""The paper's metrics in one place: Dice, IoU, HD95 and ASD.

Every trainer, notebook and results table goes through these functions, so a number means the same thing
everywhere.

What is measured
    - **Dice** = 2|P∩G| / (|P| + |G|) and **IoU** = |P∩G| / |P∪G| on the foreground pixels (voxels).
    - **HD95** and **ASD** come from MONAI (``compute_hausdorff_distance(percentile=95)`` and
      ``compute_average_surface_distance(symmetric=True)``). Both work on *boundary* pixels: the pixels of a mask
      that have a background neighbour along an axis (the mask minus its binary erosion). For every boundary pixel of
      P the Euclidean distance to the nearest boundary pixel of G is taken, and the other way round.
      HD95 is the larger of the two directed 95th percentiles (linear interpolation between ranks);
      ASD is the mean of all distances of both directions (the average *symmetric* surface distance).
    - Distances are in pixels when ``spacing`` is None and in the spacing's unit (mm) otherwise. Spacing is given
      in array-axis order: ``(y, x)`` for an image, ``(z, y, x)`` for a volume. A spacing containing NaN is taken
      as "unknown" (that is how :class:`~scsam_lite.data.base.SegData` marks photos) and falls back to pixels.

Empty masks (the conventions MONAI leaves open: it returns nan or inf there)
    - Both empty: Dice = IoU = 1 and HD95 = ASD = 0. Predicting "nothing" where there is nothing is perfect.
    - Exactly one empty: Dice = IoU = 0 and HD95 = ASD = the image diagonal (``sqrt(sum((n_i * s_i)^2))``, same
      unit). The diagonal is the largest distance two pixels of that image can have, so a missed or hallucinated
      object never scores better than any real prediction; it is finite, so means and standard deviations stay
      defined; and it scales with spacing, so pixel and mm figures stay consistent. Dropping such cases (nan) would
      reward a model that predicts nothing on hard images; a fixed constant would not scale with image size.
    No nan or inf ever leaves this module.

How this differs from the reference SC-SAM code
    The reference implementation (``utils/utils.py``, ``eval``) reports as "HD95" ``0.95 *
    hausdorff_distance(y_true, y_pred)`` from the ``hausdorff`` package, which computes the Hausdorff distance
    between the *rows* of the two arrays treated as point sets: on (H, W) masks that is the largest distance between
    mask rows seen as W-dimensional vectors, scaled by 0.95. It is not the 95th percentile of surface distances.
    Its ASD is medpy's ``asd(pred, gt)``, which is directed (prediction to ground truth only), and it uses 100 for
    HD95 and ASD when exactly one mask is empty, 0 when both are. Its Dice and IoU (medpy ``dc`` and ``jc``) are the
    usual overlap ratios (empty masks aside). HD95 and ASD numbers from this package are therefore not comparable
    with the reference's tables; Dice and IoU are.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch

from .errors import ConfigError, DataError

#: The metric keys every function here returns, in reporting order.
METRIC_NAMES = ("dice", "iou", "hd95", "asd")
#: Whether a larger value is better, for tables and plots.
HIGHER_IS_BETTER = {"dice": True, "iou": True, "hd95": False, "asd": False}

Spacing = float | Sequence[float] | np.ndarray | None


def as_mask(x: Any, name: str = "mask") -> np.ndarray:
    """A boolean array from a bool/int/float array or tensor.

    Integers count as foreground where non-zero (0/1 or 0/255 masks). Floats must already be 0/1: probabilities or
    logits would otherwise be silently thresholded at an arbitrary level.
    """
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    if arr.dtype == bool:
        return arr
    if np.issubdtype(arr.dtype, np.integer):
        return arr != 0
    if np.issubdtype(arr.dtype, np.floating):
        if arr.size and not np.isin(arr, (0.0, 1.0)).all():
            raise DataError(
                f"{name} holds values other than 0 and 1 (min {np.nanmin(arr):.3g}, max {np.nanmax(arr):.3g}): "
                "it looks like probabilities or logits, not a mask",
                "threshold it first, e.g. probs > 0.5 or logits > 0",
            )
        return arr == 1.0
    raise DataError(
        f"{name} has dtype {arr.dtype}, which is not a mask", "pass a bool, integer or 0/1 float array"
    )


def _spacing(spacing: Spacing, ndim: int) -> tuple[float, ...] | None:
    """Per-axis spacing, or None for pixel units (None given, or any NaN = unknown)."""
    if spacing is None:
        return None
    if isinstance(spacing, torch.Tensor):
        spacing = spacing.detach().cpu().numpy()
    values = np.atleast_1d(np.asarray(spacing, dtype=float))
    if values.ndim != 1 or values.size not in (1, ndim):
        raise ConfigError(
            f"spacing {spacing!r} does not fit a {ndim}D mask",
            f"give one number (isotropic) or {ndim} numbers in array-axis order "
            f"{'(z, y, x)' if ndim == 3 else '(y, x)'}, or None for pixels",
        )
    if np.isnan(values).any():
        return None
    if not (np.isfinite(values).all() and (values > 0).all()):
        raise ConfigError(
            f"spacing {spacing!r} must be positive and finite", "pass the pixel size in mm, e.g. 0.5"
        )
    return tuple(float(v) for v in np.broadcast_to(values, (ndim,)))


def _diagonal(shape: tuple[int, ...], spacing: tuple[float, ...] | None) -> float:
    steps = spacing or (1.0,) * len(shape)
    return float(math.sqrt(sum((n * s) ** 2 for n, s in zip(shape, steps, strict=True))))


def _surface_distances(
    pred: np.ndarray, gt: np.ndarray, spacing: tuple[float, ...] | None
) -> tuple[float, float]:
    """HD95 and ASD of two non-empty masks through MONAI."""
    from monai.metrics import compute_average_surface_distance, compute_hausdorff_distance

    p = torch.from_numpy(np.ascontiguousarray(pred))[None, None]
    g = torch.from_numpy(np.ascontiguousarray(gt))[None, None]
    sp = list(spacing) if spacing is not None else None
    with warnings.catch_warnings():
        # MONAI 1.5+ warns about its own internal use of a deprecated argument; nothing a user can act on.
        warnings.filterwarnings("ignore", message=".*always_return_as_numpy.*")
        hd95 = compute_hausdorff_distance(p, g, include_background=True, percentile=95, spacing=sp)
        asd = compute_average_surface_distance(p, g, include_background=True, symmetric=True, spacing=sp)
    return float(hd95.reshape(-1)[0]), float(asd.reshape(-1)[0])


def segmentation_metrics(pred: Any, gt: Any, spacing: Spacing = None) -> dict[str, float]:
    """Dice, IoU, HD95 and ASD of one 2D (or 3D) binary prediction against its ground truth.

    Args:
        pred, gt: masks of the same shape, ``(H, W)`` or ``(D, H, W)``; bool, integer (non-zero = foreground) or
            0/1 float, numpy or torch.
        spacing: pixel size per axis in array order (``(y, x)``), one number for isotropic pixels, or None for
            distances in pixels. NaN means unknown and gives pixels.

    Returns:
        ``{"dice", "iou", "hd95", "asd"}`` as floats, never nan or inf (see the module docstring for empty masks).
    """
    p, g = as_mask(pred, "pred"), as_mask(gt, "gt")
    if p.shape != g.shape:
        raise DataError(
            f"prediction shape {p.shape} differs from ground-truth shape {g.shape}",
            "resize the prediction to the mask's resolution (nearest neighbour) before scoring",
        )
    if p.ndim not in (2, 3):
        raise DataError(
            f"masks must be 2D (H, W) or 3D (D, H, W), got shape {p.shape}",
            "drop batch/channel axes (e.g. pred[0, 0]) or use batch_metrics for a stack",
        )
    sp = _spacing(spacing, p.ndim)
    n_p, n_g = int(p.sum()), int(g.sum())
    if n_p == 0 and n_g == 0:
        return {"dice": 1.0, "iou": 1.0, "hd95": 0.0, "asd": 0.0}
    if n_p == 0 or n_g == 0:
        worst = _diagonal(p.shape, sp)
        return {"dice": 0.0, "iou": 0.0, "hd95": worst, "asd": worst}
    inter = int(np.logical_and(p, g).sum())
    union = n_p + n_g - inter
    hd95, asd = _surface_distances(p, g, sp)
    worst = _diagonal(p.shape, sp)
    return {
        "dice": 2.0 * inter / (n_p + n_g),
        "iou": inter / union,
        "hd95": hd95 if math.isfinite(hd95) else worst,
        "asd": asd if math.isfinite(asd) else worst,
    }


def batch_metrics(preds: Any, gts: Any, spacings: Sequence[Spacing] | np.ndarray | None = None) -> list[dict]:
    """One :func:`segmentation_metrics` row per item of a stack.

    Args:
        preds, gts: ``(N, H, W)`` arrays/tensors, or sequences of ``(H, W)`` masks, of equal length.
        spacings: None (pixels), or one spacing per item, e.g. ``data.spacing[indices]`` (an ``(N, 2)`` array).
    """
    preds = preds.detach().cpu().numpy() if isinstance(preds, torch.Tensor) else preds
    gts = gts.detach().cpu().numpy() if isinstance(gts, torch.Tensor) else gts
    if len(preds) != len(gts):
        raise DataError(
            f"{len(preds)} predictions but {len(gts)} ground-truth masks", "pass one mask per prediction"
        )
    if spacings is None:
        spacings = [None] * len(preds)
    elif len(spacings) != len(preds):
        raise ConfigError(
            f"{len(spacings)} spacings for {len(preds)} items",
            "pass one spacing per item (e.g. data.spacing[indices]) or None for pixels",
        )
    return [segmentation_metrics(p, g, s) for p, g, s in zip(preds, gts, spacings, strict=True)]


def volume_metrics(pred_vol: Any, gt_vol: Any, spacing_zyx: Spacing = None) -> dict[str, float]:
    """The same four metrics on a whole volume ``(D, H, W)``, with voxel spacing ``(z, y, x)`` in mm.

    Volumetric datasets (PROMISE12) are reported per case in 3D, as in the literature; stack a case's slices in
    slice order (``SegData.split_cases``) and pass ``(slice_spacing[case], *spacing[first_slice])``.
    """
    p = as_mask(pred_vol, "pred_vol")
    if p.ndim != 3:
        raise DataError(
            f"a volume must be 3D (D, H, W), got shape {p.shape}",
            "stack the case's slices with np.stack(slices) in slice order",
        )
    return segmentation_metrics(p, gt_vol, spacing_zyx)


def summarize(rows: Iterable[dict[str, float]]) -> dict[str, float]:
    """Mean and population standard deviation of every metric over rows: ``{"dice", "dice_std", ..., "n"}``."""
    rows = list(rows)
    if not rows:
        raise DataError("no metric rows to summarize", "score at least one prediction before summarizing")
    keys = [k for k in rows[0] if isinstance(rows[0][k], int | float) and not isinstance(rows[0][k], bool)]
    out: dict[str, float] = {}
    for key in keys:
        missing = sum(key not in r for r in rows)
        if missing:
            raise DataError(
                f"{missing} of {len(rows)} rows have no {key!r}", "summarize rows from one scorer"
            )
        values = np.asarray([r[key] for r in rows], dtype=float)
        out[key] = float(values.mean())
        out[f"{key}_std"] = float(values.std())
    out["n"] = float(len(rows))
    return out


def dice_scores(preds: np.ndarray, gts: np.ndarray) -> np.ndarray:
    """Per-item Dice (both empty counts as 1), vectorised for validation."""
    p = preds.reshape(len(preds), -1).astype(bool)
    g = gts.reshape(len(gts), -1).astype(bool)
    inter = (p & g).sum(1)
    total = p.sum(1) + g.sum(1)
    return np.where(total == 0, 1.0, 2 * inter / np.maximum(total, 1))
