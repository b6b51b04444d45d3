"""What the U-Net would teach itself: its pseudo-labels on unlabeled images, and where they are wrong.

Semi-supervised methods turn the model's own predictions on unlabeled images into training targets. The rule is
:func:`pseudo_label`: the hard label is ``prob > 0.5``, and a pixel only counts when the model is confident,
``max(p, 1 - p) >= threshold``. :class:`UNetPseudoLabelExplorer` shows that rule on real predictions, so a student
can see how a higher threshold trades coverage (fewer pixels used) for accuracy (fewer wrong targets).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import ipywidgets as W
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import ListedColormap, to_rgba
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from .. import viz
from ..errors import ConfigError
from ..evaluation import predict_probabilities
from ..metrics import dice_scores
from .explorer import Explorer

IGNORED_COLOR = "#9a9a9a"
FP_COLOR = "#ff8c00"  # predicted polyp where there is none
FN_COLOR = "#1f77ff"  # missed polyp


def pseudo_label(prob: Any, threshold: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """The U-Net's hard pseudo-label ``prob > 0.5`` and the mask of pixels confident enough to train on.

    A pixel is confident when ``max(p, 1 - p) >= threshold``; ``threshold=0.5`` keeps every pixel.
    """
    if not 0.5 <= threshold <= 1.0:
        raise ConfigError(
            f"pseudo-label threshold {threshold} is outside [0.5, 1]",
            "use a confidence between 0.5 (keep all) and 1",
        )
    p = viz._to_numpy(prob).astype(np.float32)
    label = (p > 0.5).astype(np.uint8)
    confident = np.maximum(p, 1.0 - p) >= threshold
    return label, confident


def dice(pred: np.ndarray, gt: np.ndarray) -> float:
    """Dice of two binary masks (both empty counts as 1, as in the evaluation)."""
    return float(dice_scores(pred[None], gt[None])[0])


def predict_probs(method: Any, data: Any, indices: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """The U-Net's foreground probabilities ``(N, H, W)`` float32 for ``data.images[indices]``."""
    return predict_probabilities(method, data, indices, batch_size)["unet"]


class UNetPseudoLabelExplorer(Explorer):
    """Image slider over unlabeled items and a confidence-threshold slider; shows the U-Net's pseudo-labels.

    Panels: the image; the foreground probability map; the hard pseudo-label with the not-confident pixels in grey;
    and (with ground truth) its false positives and false negatives, with the pseudo-label's Dice in the title.
    All predictions are computed once here, so moving a slider only redraws.

    Args:
        method: a trained method (e.g. ``TrainResult.method``) whose ``predict`` returns ``{"unet": probs}``.
        data: the dataset (a :class:`~scsam_lite.data.base.SegData`).
        indices: dataset indices to browse, typically ``label_split.unlabeled``.
        gt_available: draw the error panel from ``data.masks`` (the synthetic and benchmark sets have masks for
            every image; the method never saw those of the unlabeled ones).
    """

    def __init__(self, method: Any, data: Any, indices: Sequence[int], *, gt_available: bool = True) -> None:
        self.indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        if not len(self.indices):
            raise ConfigError("no items to show", "pass the unlabeled indices, e.g. label_split.unlabeled")
        self.data = data
        self.gt_available = gt_available
        self.probs = predict_probs(method, data, self.indices)
        controls = {
            "item": W.IntSlider(
                value=0, min=0, max=len(self.indices) - 1, description="image", continuous_update=False
            ),
            "threshold": W.FloatSlider(
                value=0.9,
                min=0.5,
                max=0.99,
                step=0.01,
                description="confidence",
                readout_format=".2f",
                continuous_update=False,
            ),
        }
        super().__init__(controls)

    def render(self, item: int, threshold: float) -> Figure:
        item = min(max(int(item), 0), len(self.indices) - 1)
        idx = int(self.indices[item])
        prob = self.probs[item]
        label, confident = pseudo_label(prob, threshold)
        ncols = 4 if self.gt_available else 3
        fig, axes = plt.subplots(1, ncols, figsize=(2.9 * ncols, 3.3))
        name = self.data.ids[idx] if hasattr(self.data, "ids") else str(idx)
        viz.show_image(axes[0], self.data.images[idx], title=f"{name} ({item + 1}/{len(self.indices)})")

        im = axes[1].imshow(prob, cmap="magma", vmin=0, vmax=1, interpolation="nearest")
        axes[1].axis("off")
        axes[1].set_title("U-Net P(foreground)", fontsize=9)
        fig.colorbar(im, ax=axes[1], fraction=0.046, pad=0.04)

        axes[2].imshow(
            label, cmap=ListedColormap(["black", "white"]), vmin=0, vmax=1, interpolation="nearest"
        )
        grey = np.zeros((*label.shape, 4))
        grey[~confident] = to_rgba(IGNORED_COLOR)
        axes[2].imshow(grey, interpolation="nearest")
        axes[2].axis("off")
        axes[2].set_title(f"pseudo-label, {1 - confident.mean():.0%} ignored (grey)", fontsize=9)

        if self.gt_available:
            gt = np.asarray(self.data.masks[idx]).astype(bool)
            pl = label.astype(bool)
            err = np.zeros((*gt.shape, 4))
            err[gt & pl] = to_rgba(viz.GT_COLOR, 0.45)
            err[pl & ~gt] = to_rgba(FP_COLOR)
            err[gt & ~pl] = to_rgba(FN_COLOR)
            viz.show_image(axes[3], self.data.images[idx])
            axes[3].imshow(err, interpolation="nearest")
            kept = dice(pl & confident, gt & confident) if confident.any() else float("nan")
            axes[3].set_title(f"vs truth: Dice {dice(pl, gt):.3f} (confident px {kept:.3f})", fontsize=9)
            axes[3].legend(
                handles=[
                    Patch(color=FP_COLOR, label="false pos."),
                    Patch(color=FN_COLOR, label="false neg."),
                ],
                loc="lower right",
                fontsize=7,
                framealpha=0.7,
            )
        fig.suptitle(f"confidence threshold {threshold:.2f}", fontsize=10)
        fig.tight_layout()
        return fig
