"""Pseudo-labels: one model's hard prediction used as another model's training target.

In SC-SAM they flow both ways (see :mod:`scsam_lite.methods.sc_sam`): the U-Net's hard prediction on an
unlabeled image is SAM's target (and the source of SAM's point prompts), and SAM's hard mask is the U-Net's
target. They are always detached: a pseudo-label is a fixed target for this step, never a path for gradients back
into the model that made it.
"""

from __future__ import annotations

import torch


@torch.no_grad()
def from_unet(logits: torch.Tensor) -> torch.Tensor:
    """The U-Net's hard pseudo-label ``(B, H, W)`` int64 from its class logits ``(B, 2, H, W)`` (argmax)."""
    return logits.detach().argmax(1)


@torch.no_grad()
def from_sam(logits: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """SAM's hard pseudo-label ``(B, H, W)`` int64: foreground probability > ``threshold``, from its single mask
    logit ``(B, 1, H, W)`` (sigmoid) or its two-class logits ``(B, 2, H, W)`` (softmax, background first)."""
    logits = logits.detach().float()
    if logits.shape[1] == 1:
        return (logits[:, 0].sigmoid() > threshold).long()
    if logits.shape[1] == 2:
        return (logits.softmax(1)[:, 1] > threshold).long()
    raise ValueError(
        f"SAM's logits have {logits.shape[1]} channels; expected 1 (foreground) or 2 (background, foreground)"
    )


@torch.no_grad()
def agreement(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image share of pixels where two hard pseudo-labels ``(B, H, W)`` agree (1 = identical)."""
    return (a == b).flatten(1).float().mean(1)
