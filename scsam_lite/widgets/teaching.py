"""Two small explorers for the formulas of the course, computed instantly.

:class:`LossExplorer`: a toy ground-truth disc and a predicted disc you can shift, grow and make more or less
confident; it shows the hard Dice (the metric), the soft Dice loss and the cross-entropy (the training loss of
``scsam_lite/losses.py``, the very functions the trainer calls), so a student sees which one moves when.

:class:`PEFTCountExplorer`: the adapter ratio and the LoRA rank against the number of trainable weights of a real
encoder, counted from its own block widths and ``qkv`` layers with the formulas of notebook 03.
"""

from __future__ import annotations

from typing import Any

import ipywidgets as W
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from ..errors import ConfigError
from ..losses import ce_dice_loss, dice_loss
from ..metrics import dice_scores
from .explorer import Explorer

GT_COLOR, PRED_COLOR = "#2ca02c", "#d62728"
WIDE = {"description_width": "initial"}  # slider labels in full


def toy_prediction(
    size: int = 64, shift: float = 0.0, radius: float = 12.0, confidence: float = 4.0, gt_radius: float = 12.0
) -> tuple[np.ndarray, np.ndarray]:
    """A ground-truth disc at the centre and a predicted foreground probability: a disc of ``radius`` moved right
    by ``shift`` pixels, whose edge is a sigmoid of steepness ``confidence`` (large: a hard mask; small: a blur
    that is unsure everywhere). Returns ``(gt (H, W) bool, prob (H, W) float)``."""
    yy, xx = np.mgrid[:size, :size].astype(np.float64)
    c = (size - 1) / 2
    gt = (xx - c) ** 2 + (yy - c) ** 2 <= gt_radius**2
    dist = np.sqrt((xx - c - shift) ** 2 + (yy - c) ** 2)
    prob = 1.0 / (1.0 + np.exp(-confidence * (radius - dist) / max(radius, 1.0)))
    return gt, prob


def toy_losses(gt: np.ndarray, prob: np.ndarray) -> dict[str, float]:
    """The metric and the losses of one prediction: hard Dice (threshold 0.5), the soft Dice loss and the
    cross-entropy as the trainer computes them (``scsam_lite.losses``), and their sum as a training loss."""
    p = torch.from_numpy(np.clip(prob, 1e-6, 1 - 1e-6)).float()
    logits = torch.log(torch.stack([1 - p, p]))[
        None
    ]  # two-class log-probabilities: their softmax is (1-p, p)
    target = torch.from_numpy(gt.astype(np.int64))[None]
    ce = torch.nn.functional.cross_entropy(logits, target).item()
    soft = dice_loss(logits, target).item()
    return {
        "Dice (metric, threshold 0.5)": float(dice_scores((prob > 0.5)[None], gt[None])[0]),
        "soft Dice loss": soft,
        "cross-entropy": ce,
        "0.5 x (CE + Dice): the loss": ce_dice_loss(logits, target, 0.5).item(),
    }


class LossExplorer(Explorer):
    """Shift, grow and sharpen a predicted disc against a true one; see the Dice metric and both losses."""

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self.shown: dict[str, float] = {}
        controls = {
            "shift": W.FloatSlider(
                value=0.0,
                min=0.0,
                max=30.0,
                step=1.0,
                description="shift (px)",
                continuous_update=False,
                style=WIDE,
            ),
            "radius": W.FloatSlider(
                value=12.0,
                min=2.0,
                max=28.0,
                step=1.0,
                description="radius (px)",
                continuous_update=False,
                style=WIDE,
            ),
            "confidence": W.FloatSlider(
                value=4.0,
                min=0.5,
                max=40.0,
                step=0.5,
                description="confidence",
                continuous_update=False,
                style=WIDE,
            ),
        }
        super().__init__(controls)

    def render(self, shift: float, radius: float, confidence: float) -> Figure:
        gt, prob = toy_prediction(self.size, shift, radius, confidence)
        self.shown = toy_losses(gt, prob)
        fig, (ax, bx) = plt.subplots(1, 2, figsize=(9.5, 3.8), gridspec_kw={"width_ratios": [1, 1.3]})
        ax.imshow(prob, cmap="gray", vmin=0, vmax=1)
        ax.contour(gt, levels=[0.5], colors=GT_COLOR, linewidths=2)
        ax.contour(prob, levels=[0.5], colors=PRED_COLOR, linewidths=1.5, linestyles="--")
        ax.set_title("predicted probability (grey), truth (green), 0.5 (red)", fontsize=9)
        ax.axis("off")
        names, values = list(self.shown), list(self.shown.values())
        bars = bx.barh(names, values, color=["#1f77b4", "#ff7f0e", "#9467bd", "#7f7f7f"])
        bx.bar_label(bars, fmt="%.3f", padding=3, fontsize=9)
        bx.invert_yaxis()
        bx.set_xlim(0, max(1.05, max(values) * 1.25))
        bx.spines[["top", "right"]].set_visible(False)
        bx.set_title("higher Dice is better; lower losses are better", fontsize=9)
        fig.tight_layout()
        return fig


# -- trainable weights of adapters and LoRA -------------------------------------------------------------------------
def adapter_weights(dims: list[int], ratio: float) -> int:
    """Med-SA adapters on blocks of widths ``dims``: two per block, each ``d -> round(ratio d) -> d`` with biases."""
    total = 0
    for d in dims:
        h = max(1, round(d * ratio))
        total += 2 * (2 * d * h + h + d)
    return total


def lora_weights(shapes: list[tuple[int, int]], rank: int) -> int:
    """LoRA of ``rank`` beside linear layers of ``(in, out)`` shapes: ``rank * (in + out)`` each, no biases."""
    return sum(rank * (i + o) for i, o in shapes)


def encoder_shapes(generalist: Any) -> tuple[list[int], list[tuple[int, int]]]:
    """The block widths and the ``qkv`` layers' ``(in, out)`` of a generalist's image encoder."""
    from ..generalist.adapters import attention_of, block_dim, encoder_blocks

    blocks = encoder_blocks(generalist.image_encoder)
    qkv = [attention_of(b).qkv for b in blocks]
    return [block_dim(b) for b in blocks], [(q.in_features, q.out_features) for q in qkv]


class PEFTCountExplorer(Explorer):
    """Adapter ratio, LoRA rank and how many of the encoder's last blocks are adapted, against trainable weights.

    Args:
        generalist: a built generalist (any PEFT); its encoder's blocks give the widths and ``qkv`` shapes.
        fixed: the weights that train whatever the PEFT (prompt encoder + mask decoder), drawn as a reference.
    """

    def __init__(self, generalist: Any, fixed: int = 0) -> None:
        self.dims, self.qkv = encoder_shapes(generalist)
        if not self.dims:
            raise ConfigError("this generalist's encoder has no blocks to adapt", "pass a SAM or LiteMedSAM")
        self.fixed = int(fixed)
        self.encoder_total = sum(p.numel() for p in generalist.image_encoder.parameters())
        self.shown: dict[str, int] = {}
        n = len(self.dims)
        controls = {
            "ratio": W.FloatSlider(
                value=0.25,
                min=0.05,
                max=1.0,
                step=0.05,
                description="adapter ratio",
                continuous_update=False,
                style=WIDE,
            ),
            "rank": W.IntSlider(
                value=4, min=1, max=64, step=1, description="LoRA rank", continuous_update=False, style=WIDE
            ),
            "blocks": W.IntSlider(
                value=n,
                min=1,
                max=n,
                step=1,
                description="last N blocks",
                continuous_update=False,
                style=WIDE,
            ),
        }
        super().__init__(controls)

    def render(self, ratio: float, rank: int, blocks: int) -> Figure:
        dims, qkv = self.dims[-blocks:], self.qkv[-blocks:]
        self.shown = {
            "adapters": adapter_weights(dims, ratio),
            "LoRA": lora_weights(qkv, rank),
            "prompt encoder + decoder": self.fixed,
        }
        fig, ax = plt.subplots(figsize=(8, 2.8))
        names = list(self.shown)
        big = max(max(self.shown.values()), self.encoder_total) >= 1e6
        unit, name = (1e6, "millions") if big else (1e3, "thousands")
        bars = ax.barh(
            names, [v / unit for v in self.shown.values()], color=["#ff7f0e", "#9467bd", "#7f7f7f"]
        )
        ax.bar_label(bars, labels=[f"{v:,}" for v in self.shown.values()], padding=3, fontsize=9)
        ax.invert_yaxis()
        ax.set_xlabel(f"trainable weights ({name})")
        ax.spines[["top", "right"]].set_visible(False)
        ax.set_title(
            f"{blocks} adapted block(s) of {len(self.dims)}; the frozen encoder has {self.encoder_total:,} weights",
            fontsize=9,
        )
        ax.set_xlim(0, max(self.shown.values()) / unit * 1.3 + 1e-3)
        fig.tight_layout()
        return fig
