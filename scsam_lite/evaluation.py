"""Evaluation of a method's models on a split: per image for 2D datasets, per volume for volumetric ones.

Validation during training only needs Dice (cheap); the final test evaluation computes Dice, IoU, HD95 and ASD
through :mod:`scsam_lite.metrics`, in mm where the dataset knows its pixel spacing.
"""

from __future__ import annotations

import numpy as np
import torch

from .data import SegData
from .data.batches import load_images
from .methods.base import Method
from .metrics import batch_metrics, dice_scores, summarize, volume_metrics


@torch.no_grad()
def predict_probabilities(
    method: Method,
    data: SegData,
    indices: np.ndarray,
    batch_size: int = 32,
    prompt_masks: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Foreground probabilities ``(N, H, W)`` float32 per model for the items ``indices`` (eval mode).

    ``prompt_masks`` ``(N, H, W)``: what methods prompted from a mask (``peft-sam``) get instead of the ground
    truth, e.g. a U-Net's predictions (:func:`unet_prompt_masks`); metrics are still against the ground truth.
    """
    stored = getattr(method, "embeddings", None)
    if stored is not None:  # looked up by index only: they must be of these very items
        stored.check(data)
    method.train(False)
    out: dict[str, list[np.ndarray]] = {}
    try:
        for start in range(0, len(indices), batch_size):
            idx = indices[start : start + batch_size]
            images = load_images(data, idx, method.rt.device)
            source = data.masks[idx] if prompt_masks is None else prompt_masks[start : start + batch_size]
            masks = torch.from_numpy(np.ascontiguousarray(source)).to(method.rt.device).long()
            for name, prob in method.predict(images, masks=masks, index=idx).items():
                out.setdefault(name, []).append(prob.float().cpu().numpy())
    finally:
        method.train(True)
    return {k: np.concatenate(v) for k, v in out.items()}


def predict_split(
    method: Method,
    data: SegData,
    indices: np.ndarray,
    batch_size: int = 32,
    prompt_masks: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Hard predictions ``(N, H, W)`` uint8 per model for the items ``indices``."""
    probs = predict_probabilities(method, data, indices, batch_size, prompt_masks)
    return {k: (p > 0.5).astype(np.uint8) for k, p in probs.items()}


def validate(method: Method, data: SegData, split: str = "val", batch_size: int = 32) -> dict[str, float]:
    """Mean Dice per model on ``split`` (per volume for volumetric datasets)."""
    idx = data.splits[split]
    preds = predict_split(method, data, idx, batch_size)
    gts = data.masks[idx]
    if not data.is_volumetric:
        return {k: float(dice_scores(p, gts).mean()) for k, p in preds.items()}
    out = {}
    for name, p in preds.items():
        scores = []
        for case_idx in data.split_cases(split).values():
            pos = np.searchsorted(idx, case_idx)
            scores.append(dice_scores(p[pos].reshape(1, -1), gts[pos].reshape(1, -1))[0])
        out[name] = float(np.mean(scores))
    return out


def pseudo_label_dice(
    method: Method, data: SegData, indices: np.ndarray, batch_size: int = 32
) -> dict[str, float]:
    """Mean Dice of each model's pseudo-labels of the unlabeled items ``indices`` against their masks.

    The pseudo-labels are the hard predictions a teacher hands the other model (the U-Net's for SAM; SAM's,
    prompted by the U-Net, for the U-Net), made here on the un-augmented images in eval mode with test-time
    prompts. The masks are read only to score them, never to train: how good each teacher is, step by step,
    where pixel agreement between the two would be dominated by the background.
    """
    preds = predict_split(method, data, indices, batch_size)
    gts = data.masks[indices]
    return {k: float(dice_scores(p, gts).mean()) for k, p in preds.items() if k in ("unet", "sam")}


def evaluate_items(
    method: Method,
    data: SegData,
    split: str = "test",
    batch_size: int = 32,
    prompt_masks: np.ndarray | None = None,
    unit: str = "item",
) -> dict[str, list[dict]]:
    """Dice, IoU, HD95 and ASD per model, one row per image (2D) or volume (3D), each named by its ``"item"`` (and,
    for images of a dataset with groups, e.g. CVC-ClinicDB's videos, the item's ``"group"``).

    Kept per item so two runs scored on the same split can be compared image by image
    (:mod:`scsam_lite.compare`); :func:`evaluate` averages these rows. ``prompt_masks``: see
    :func:`predict_probabilities` (``peft-sam`` prompted by a U-Net instead of the truth). ``unit="slice"``
    scores a volumetric dataset slice by slice in 2D (as the reference scores PROMISE12; rows named by slice).
    """
    preds = predict_split(method, data, data.splits[split], batch_size, prompt_masks)
    return score_items(preds, data, split, unit)


def score_items(
    preds: dict[str, np.ndarray], data: SegData, split: str, unit: str = "item"
) -> dict[str, list[dict]]:
    """The rows of :func:`evaluate_items` for hard predictions ``preds`` of ``split`` (one prediction, two units)."""
    if unit not in ("item", "slice"):
        raise ValueError(f"unit must be 'item' or 'slice', not {unit!r}")
    idx = data.splits[split]
    gts = data.masks[idx]
    results: dict[str, list[dict]] = {}
    for name, p in preds.items():
        rows = []
        if data.is_volumetric and unit == "item":
            for case, case_idx in data.split_cases(split).items():
                pos = np.searchsorted(idx, case_idx)
                sy, sx = data.spacing[case_idx[0]]
                row = volume_metrics(p[pos], gts[pos], (data.slice_spacing[case], sy, sx))
                rows.append({"item": case, **row})
        else:
            spacing = None if np.isnan(data.spacing[idx]).any() else data.spacing[idx]
            for i, row in zip(idx, batch_metrics(p, gts, spacing), strict=True):
                group = {} if data.groups is None else {"group": data.groups[i]}
                rows.append({"item": data.ids[i], **group, **row})
        results[name] = rows
    return results


def evaluate(
    method: Method,
    data: SegData,
    split: str = "test",
    batch_size: int = 32,
    prompt_masks: np.ndarray | None = None,
) -> dict[str, dict[str, float]]:
    """Dice, IoU, HD95 and ASD per model on ``split``, averaged over images (2D) or volumes (3D)."""
    return summarize_items(evaluate_items(method, data, split, batch_size, prompt_masks))


def summarize_items(items: dict[str, list[dict]]) -> dict[str, dict[str, float]]:
    """The per-model means and standard deviations (``metrics.json``) of :func:`evaluate_items` rows."""
    return {name: summarize(rows) for name, rows in items.items()}


def unet_prompt_masks(
    unet_method: Method, data: SegData, split: str = "test", batch_size: int = 32
) -> np.ndarray:
    """A trained method's U-Net hard predictions on ``split``: prompts for a SAM evaluated without ground truth."""
    preds = predict_split(unet_method, data, data.splits[split], batch_size)
    if "unet" not in preds:
        from .errors import ConfigError

        raise ConfigError(
            f"the run given for prompts has no U-Net (it predicts {sorted(preds)})",
            "point --prompts-from at a unet, mean-teacher, entropy-min or sc-sam run",
        )
    return preds["unet"]
