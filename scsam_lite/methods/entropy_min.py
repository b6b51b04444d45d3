"""Method ``entropy-min``: supervised loss plus entropy minimisation on unlabeled predictions.

The reference's U-Net adds the mean per-pixel entropy of its softmax on unlabeled images (weight 0.9), pushing
predictions away from 0.5 where no label says otherwise (Grandvalet & Bengio 2005). Alone it is a baseline; in
SC-SAM it is one term of the specialist's loss.
"""

from __future__ import annotations

import torch

from ..data import Batch
from ..losses import ce_dice_loss, entropy_loss
from .supervised import Supervised


class EntropyMin(Supervised):
    needs_unlabeled = True

    def train_step(self, batch: Batch, step: int) -> dict[str, float]:
        n_lab = len(batch.labeled_image)
        with self.autocast():
            logits = self.unet(self.prepare(torch.cat([batch.labeled_image, batch.unlabeled_image])))
        sup = ce_dice_loss(logits[:n_lab], batch.labeled_mask)
        ent = entropy_loss(logits[n_lab:])
        loss = sup + self.cfg.ssl.entropy_weight * ent
        self.step_optimizer("unet", loss, step)
        self.finish_step()
        return {"loss": loss.item(), "loss_sup": sup.item(), "loss_entropy": ent.item()}
