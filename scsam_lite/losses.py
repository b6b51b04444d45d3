"""Segmentation losses: cross-entropy + Dice, as the reference trains both of its networks.

Both halves take class logits ``(B, K, H, W)`` and integer targets ``(B, H, W)``; the Dice term is MONAI's
soft Dice over all classes, pooled over the batch (``batch=True``), so a batch with empty masks still gives a
well-defined gradient.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.losses import DiceLoss

_dice = DiceLoss(to_onehot_y=True, softmax=True, include_background=True, batch=True)
# the reference's co-training Dice: squared terms in the denominator, sum p^2 + sum g^2
_dice_squared = DiceLoss(
    to_onehot_y=True, softmax=True, include_background=True, batch=True, squared_pred=True
)


def dice_loss(logits: torch.Tensor, target: torch.Tensor, squared: bool = False) -> torch.Tensor:
    return (_dice_squared if squared else _dice)(logits.float(), target.unsqueeze(1))


def ce_dice_loss(
    logits: torch.Tensor, target: torch.Tensor, scale: float = 0.5, squared: bool = False
) -> torch.Tensor:
    """``scale * (CE + Dice)``: 0.5 is SSL4MIS's supervised loss (the U-Net baselines here); the reference SC-SAM
    code sums the two (``scale=1``), as ``sc-sam`` does by default (``cotrain.loss_scale``). ``squared``: the
    Dice's denominator squared, as the reference's co-training Dice (``cotrain.dice_denominator``)."""
    return scale * (F.cross_entropy(logits.float(), target) + dice_loss(logits, target, squared))


def entropy_loss(logits: torch.Tensor) -> torch.Tensor:
    """Mean per-pixel entropy of the softmax, normalised by log(K) to lie in [0, 1]."""
    p = logits.float().softmax(1)
    ent = -(p * torch.log(p.clamp_min(1e-8))).sum(1)
    return ent.mean() / torch.log(torch.tensor(float(logits.shape[1])))
