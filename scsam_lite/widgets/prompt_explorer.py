"""Prompt SAM yourself: points and boxes from the ground truth, and what the generalist makes of them.

SC-SAM never clicks: it samples prompts from a mask (:mod:`scsam_lite.prompts`). :class:`PromptExplorer` lets a
student change that sampling (how many positive and negative points, which strategy, points or a box or both, a
new random draw) on one image at a time and see SAM's answer and its Dice at once. SAM's image encoder is the
expensive half, so each image is embedded once and cached; a prompt control only re-runs the small decoder.

:func:`zero_shot_table` is the same computation over a whole split (per-image Dice of SAM prompted from the
ground truth, for each prompt kind); :func:`prompt_gallery` draws the prompts sampled from a few masks.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import ipywidgets as W
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from .. import viz
from ..data.batches import load_images
from ..errors import ConfigError
from ..generalist.embedding_cache import image_embeddings
from ..metrics import dice_scores
from ..prompts import STRATEGIES, Points, Seed, boxes_from_masks, sample_points
from ..registry import unknown_name
from .explorer import Explorer

#: The prompt kinds SAM is given (as ``prompts.kind`` in a run config).
KINDS = ("points", "box", "points+box")
#: Largest number of positive or negative points the explorer's sliders offer.
MAX_POINTS = 10


def gt_prompts(
    masks: torch.Tensor,
    kind: str = "points",
    n_pos: int = 5,
    n_neg: int = 5,
    strategy: str = "random",
    seed: Seed = 0,
) -> tuple[Points | None, torch.Tensor | None]:
    """The prompts of ``kind`` sampled from ``masks`` ``(B, H, W)``: (points or None, boxes or None).

    Unlike :func:`~scsam_lite.prompts.sample_points`, zero points is allowed: with ``kind="points"`` SAM then gets
    no prompt at all, which is worth seeing once.
    """
    if kind not in KINDS:
        raise unknown_name("prompt kind", kind, list(KINDS))
    points = boxes = None
    if kind != "box" and n_pos + n_neg > 0:
        points = sample_points(masks, n_pos, n_neg, strategy, seed=seed)
    if kind != "points":
        boxes = boxes_from_masks(masks)
    return points, boxes


@contextmanager
def _inference(model: torch.nn.Module) -> Iterator[None]:
    """Eval mode and no autograd for the block; the model's own mode afterwards (it may be mid-training)."""
    was_training = model.training
    model.train(False)
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def _device(model: torch.nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def _masks(data: Any, idx: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(data.masks[idx])).to(device).bool()


def _indices(data: Any, indices: Sequence[int] | None, split: str, max_items: int | None) -> np.ndarray:
    """The dataset items to use: ``indices``, or the whole ``split``; the first ``max_items`` of them."""
    if indices is None:
        if split not in data.splits:
            raise unknown_name("split", split, list(data.splits))
        indices = data.splits[split]
    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    if max_items is not None:
        if max_items < 1:
            raise ConfigError(f"max_items={max_items} leaves nothing to show", "pass max_items >= 1 or None")
        idx = idx[:max_items]
    if not len(idx):
        raise ConfigError(
            "no items to show", "pass some dataset indices, or indices=None for the whole split"
        )
    bad = idx[(idx < 0) | (idx >= len(data.images))]
    if len(bad):
        raise ConfigError(
            f"item index {int(bad[0])} is outside the dataset ({len(data.images)} items)",
            f"pass indices from 0 to {len(data.images) - 1}, e.g. data.splits['test']",
        )
    return idx


def zero_shot_table(
    generalist: Any,
    data: Any,
    indices: Sequence[int] | None = None,
    *,
    split: str = "test",
    kinds: Sequence[str] = KINDS,
    n_pos: int = 5,
    n_neg: int = 5,
    strategy: str = "random",
    seed: int = 1234,
    batch_size: int = 16,
    embeddings: Any = None,
) -> dict[str, np.ndarray]:
    """Per-image Dice of ``generalist`` prompted from each image's ground truth, for each prompt kind.

    Each batch is embedded once and decoded once per kind (the encoder is the costly half). Point prompts are
    seeded per image (``seed`` + its dataset index), as ``peft-sam`` evaluates, so a score does not depend on the
    batch. Runs in eval mode without gradients on the generalist's device. ``embeddings``: the stored image
    embeddings of a frozen encoder (``generalist.embedding_cache``; the ``lab`` profile), read instead of running
    the encoder, which on a CPU is seconds per image.
    """
    for kind in kinds:
        if kind not in KINDS:
            raise unknown_name("prompt kind", kind, list(KINDS))
    idx = _indices(data, indices, split, None)
    device = _device(generalist)
    scores: dict[str, list[np.ndarray]] = {kind: [] for kind in kinds}
    with _inference(generalist):
        for start in range(0, len(idx), batch_size):
            part = idx[start : start + batch_size]
            masks = _masks(data, part, device)
            if embeddings is not None:
                emb = image_embeddings(generalist, embeddings, part, device)  # embedded once, then read
            else:
                emb = generalist.embed(load_images(data, part, device))
            seeds = [seed + int(i) for i in part]
            for kind in kinds:
                points, boxes = gt_prompts(masks, kind, n_pos, n_neg, strategy, seeds)
                logits = generalist.decode(emb, points, boxes, size=tuple(masks.shape[-2:]))
                pred = (logits[:, 0] > 0).cpu().numpy()
                scores[kind].append(dice_scores(pred, masks.cpu().numpy()))
    return {kind: np.concatenate(v) for kind, v in scores.items()}


def zero_shot_scores(
    generalist: Any,
    data: Any,
    indices: Sequence[int] | None = None,
    *,
    kind: str = "box",
    **kwargs: Any,
) -> np.ndarray:
    """Per-image Dice for one prompt ``kind``; the other arguments as :func:`zero_shot_table`."""
    return zero_shot_table(generalist, data, indices, kinds=(kind,), **kwargs)[kind]


def prompt_gallery(
    data: Any,
    indices: Sequence[int],
    *,
    n_pos: int = 5,
    n_neg: int = 5,
    strategies: Sequence[str] = STRATEGIES,
    seed: int = 0,
    box: bool = True,
    size: float = 2.5,
) -> Figure:
    """The prompts sampled from a few ground-truth masks: one row per strategy, one column per image."""
    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    if not len(idx) or not len(strategies):
        raise ConfigError("nothing to draw", "pass at least one index and one strategy")
    masks = torch.from_numpy(np.ascontiguousarray(data.masks[idx])).bool()
    boxes = boxes_from_masks(masks) if box else None
    fig, axes = plt.subplots(
        len(strategies), len(idx), figsize=(size * len(idx), size * len(strategies) + 0.3), squeeze=False
    )
    for r, strategy in enumerate(strategies):
        points = sample_points(masks, n_pos, n_neg, strategy, seed=[seed + int(i) for i in idx])
        for c, i in enumerate(idx):
            ax = axes[r][c]
            viz.overlay(ax, data.images[i], data.masks[i], title=data.ids[int(i)] if r == 0 else None)
            viz.draw_points(ax, points, item=c)
            if boxes is not None:
                viz.draw_box(ax, boxes[c])
        axes[r][0].set_ylabel(strategy, fontsize=10)
    fig.suptitle(
        f"{n_pos} positive (yellow) and {n_neg} negative (red) points" + (", box (blue)" if box else "")
    )
    fig.tight_layout()
    return fig


class PromptExplorer(Explorer):
    """Sliders for the image and the number of points, dropdowns for strategy and prompt kind, a prompt seed.

    Panels: the image with the ground truth (green), the points (yellow = positive, red = negative) and the box;
    SAM's foreground probability; SAM's mask (magenta) against the truth with its Dice in the title.

    Args:
        generalist: a :class:`~scsam_lite.generalist.Generalist` (e.g. ``result.method.models["sam"]``); used in
            eval mode without gradients on its own device, and left in the mode it came in.
        data: the dataset (a :class:`~scsam_lite.data.base.SegData`), RGB or grey.
        indices: dataset indices to browse; None means the whole ``split``.
        seed: the initial prompt seed (the "prompt seed" control draws new random points).
        max_items: browse only the first ``max_items`` items.
        kind, n_pos, n_neg, strategy: the initial prompt settings.
    """

    def __init__(
        self,
        generalist: Any,
        data: Any,
        indices: Sequence[int] | None = None,
        *,
        split: str = "test",
        seed: int = 0,
        max_items: int | None = None,
        kind: str = "points",
        n_pos: int = 5,
        n_neg: int = 5,
        strategy: str = "random",
    ) -> None:
        if kind not in KINDS:
            raise unknown_name("prompt kind", kind, list(KINDS))
        if strategy not in STRATEGIES:
            raise unknown_name("prompt strategy", strategy, list(STRATEGIES))
        for name, n in (("n_pos", n_pos), ("n_neg", n_neg)):
            if not 0 <= n <= MAX_POINTS:
                raise ConfigError(
                    f"{name}={n} is outside 0..{MAX_POINTS}", f"pass {name} between 0 and {MAX_POINTS}"
                )
        self.generalist = generalist
        self.data = data
        self.indices = _indices(data, indices, split, max_items)
        self.device = _device(generalist)
        self.last_dice = float("nan")  # Dice of the latest render
        #: dataset index -> image embedding (computed on first view, reused for every prompt)
        self.embeddings: dict[int, torch.Tensor] = {}

        def slider(value: int, lo: int, hi: int, description: str) -> W.IntSlider:
            return W.IntSlider(value=value, min=lo, max=hi, description=description, continuous_update=False)

        controls = {
            "item": slider(0, 0, len(self.indices) - 1, "image"),
            "n_pos": slider(n_pos, 0, MAX_POINTS, "positive"),
            "n_neg": slider(n_neg, 0, MAX_POINTS, "negative"),
            "strategy": W.Dropdown(options=list(STRATEGIES), value=strategy, description="strategy"),
            "kind": W.Dropdown(options=list(KINDS), value=kind, description="prompt"),
            "prompt_seed": W.BoundedIntText(value=seed, min=0, max=2**31 - 1, description="prompt seed"),
        }
        super().__init__(controls)

    def layout(self) -> W.Widget:
        """Image and point counts on one row, how the prompts are made on a second, the picture below."""
        c = self.controls
        rows = [
            W.HBox([c["item"], c["n_pos"], c["n_neg"]]),
            W.HBox([c["kind"], c["strategy"], c["prompt_seed"]]),
        ]
        return W.VBox([*rows, self.output])

    def embedding(self, idx: int) -> torch.Tensor:
        """The image embedding of dataset item ``idx``, computed once and cached."""
        if idx not in self.embeddings:
            with _inference(self.generalist):
                self.embeddings[idx] = self.generalist.embed(
                    load_images(self.data, np.array([idx]), self.device)
                )
        return self.embeddings[idx]

    def predict(
        self, idx: int, *, kind: str, n_pos: int, n_neg: int, strategy: str, prompt_seed: int
    ) -> tuple[np.ndarray, Points | None, torch.Tensor | None]:
        """SAM's foreground probability ``(H, W)`` for item ``idx`` and the prompts it was given."""
        mask = _masks(self.data, np.array([idx]), self.device)
        points, boxes = gt_prompts(mask, kind, n_pos, n_neg, strategy, int(prompt_seed))
        emb = self.embedding(idx)
        with _inference(self.generalist):
            logits = self.generalist.decode(emb, points, boxes, size=tuple(mask.shape[-2:]))
        return logits[0, 0].sigmoid().float().cpu().numpy(), points, boxes

    def render(self, item: int, n_pos: int, n_neg: int, strategy: str, kind: str, prompt_seed: int) -> Figure:
        item = min(max(int(item), 0), len(self.indices) - 1)
        idx = int(self.indices[item])
        prob, points, boxes = self.predict(
            idx, kind=kind, n_pos=n_pos, n_neg=n_neg, strategy=strategy, prompt_seed=prompt_seed
        )
        gt = np.asarray(self.data.masks[idx]).astype(bool)
        pred = prob > 0.5
        score = float(dice_scores(pred[None], gt[None])[0])
        image = self.data.images[idx]

        fig, axes = plt.subplots(1, 3, figsize=(9.6, 3.5))
        viz.overlay(axes[0], image, gt, title=f"{self.data.ids[idx]} ({item + 1}/{len(self.indices)})")
        n_drawn = viz.draw_points(axes[0], points, item=0) if points is not None else (0, 0)
        if boxes is not None:
            viz.draw_box(axes[0], boxes[0])
        im = axes[1].imshow(prob, cmap="magma", vmin=0, vmax=1, interpolation="nearest")
        axes[1].axis("off")
        axes[1].set_title("SAM P(foreground)", fontsize=9)
        fig.colorbar(im, ax=axes[1], fraction=0.046, pad=0.04)
        viz.overlay(axes[2], image, gt, pred)
        note = " (empty truth: 1 only if SAM finds nothing)" if not gt.any() else ""
        axes[2].set_title(f"SAM mask vs truth: Dice {score:.3f}{note}", fontsize=9)
        fig.suptitle(_describe(kind, n_drawn, boxes is not None, strategy, gt.any()), fontsize=10)
        fig.tight_layout()
        self.last_dice = score
        return fig


def _describe(kind: str, n_drawn: tuple[int, int], box: bool, strategy: str, has_object: bool) -> str:
    """The suptitle: what SAM was actually given (after padding), so empty masks and 0 points are explicit."""
    parts = []
    if kind != "box":
        parts.append(f"{n_drawn[0]} positive + {n_drawn[1]} negative points ({strategy})")
    if box:
        parts.append("box" if has_object else "box = whole image (no object)")
    if not parts or (kind == "points" and sum(n_drawn) == 0):
        return "no prompt at all: SAM guesses" + ("" if has_object else " (no object in this image)")
    return "prompt: " + " + ".join(parts) + ("" if has_object else "; no object, so no positive points")
