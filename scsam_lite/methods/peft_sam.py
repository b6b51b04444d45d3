"""Method ``peft-sam``: the generalist alone, fine-tuned on the labeled images with ground-truth prompts.

The SAM baseline of the paper. Points (and/or a box) are sampled from each labeled image's ground truth at every
step; at test time they are sampled from the ground truth again, seeded per image (``prompts.eval_seed`` + the
item's index), so the score is repeatable. Ground-truth prompts make this an upper-bound-style number: at test time
a real user has no ground truth, which is why SC-SAM prompts SAM with the U-Net's prediction instead.
"""

from __future__ import annotations

import numpy as np
import torch

from ..config import Config
from ..data import Batch, SegData
from ..data.batches import load_masks
from ..generalist import Generalist, as_two_class, generalist_from_config
from ..generalist.embedding_cache import embeddings_for_run, segment
from ..losses import ce_dice_loss
from ..prompts import prompts_from_masks
from ..runtime import Runtime, draw_seed
from .base import Method


def eval_seeds(cfg: Config, index: np.ndarray | None, n: int) -> list[int]:
    """One prompt seed per image, from its dataset index: the same image gets the same prompts in any batch."""
    idx = np.arange(n) if index is None else np.asarray(index)
    return [cfg.prompts.eval_seed + int(i) for i in idx]


class PEFTSAM(Method):
    needs_unlabeled = False
    selection_model = "sam"

    def __init__(self, cfg: Config, data: SegData, rt: Runtime) -> None:
        super().__init__(cfg, data, rt)
        sam = generalist_from_config(cfg.generalist)
        params = [p for p in sam.parameters() if p.requires_grad]
        opt = torch.optim.Adam(params, lr=cfg.generalist.lr)
        self.sam: Generalist = self.add_model("sam", sam, opt)
        if cfg.generalist.compile:
            self.sam.image_encoder.compile()
        #: stored image embeddings (``generalist.embedding_cache``), or None: the encoder runs every step
        self.embeddings = embeddings_for_run(cfg, data, self.sam, rt.device)

    def accept_prompt_masks(self) -> bool:
        return True  # evaluated from masks anyway: the ground truth, or whatever masks evaluation passes

    def train_step(self, batch: Batch, step: int) -> dict[str, float]:
        masks, index = batch.labeled_mask, None
        if self.embeddings is not None:
            # the stored embeddings are of the un-augmented images: their masks must be too
            index = batch.labeled_index
            masks = load_masks(self.data, index, self.rt.device)
        points, boxes = prompts_from_masks(masks, self.cfg.prompts, draw_seed(self.cfg.train.seed, step))
        with self.autocast():
            logits = segment(
                self.sam, self.embeddings, self.prepare(batch.labeled_image), index, points, boxes
            )
        loss = ce_dice_loss(as_two_class(logits.float()), masks)
        self.step_optimizer("sam", loss, step)
        self.finish_step()
        return {"loss": loss.item()}

    @torch.no_grad()
    def predict(
        self, images: torch.Tensor, *, masks: torch.Tensor | None = None, index: np.ndarray | None = None
    ) -> dict[str, torch.Tensor]:
        if masks is None:
            raise ValueError("peft-sam is evaluated with ground-truth prompts: pass masks")
        points, boxes = prompts_from_masks(masks, self.cfg.prompts, eval_seeds(self.cfg, index, len(images)))
        with self.autocast():
            logits = segment(self.sam, self.embeddings, self.prepare(images), index, points, boxes)
        return {"sam": logits.float().sigmoid()[:, 0]}
