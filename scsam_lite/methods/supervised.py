"""Method ``unet``: the specialist trained on the labeled images only (the lower bound every SSL method must beat)."""

from __future__ import annotations

import torch

from ..config import Config
from ..data import Batch, SegData
from ..losses import ce_dice_loss
from ..runtime import Runtime
from ..specialist import build_specialist
from .base import Method


class Supervised(Method):
    needs_unlabeled = False

    def __init__(self, cfg: Config, data: SegData, rt: Runtime) -> None:
        super().__init__(cfg, data, rt)
        net = build_specialist(cfg.specialist.name, in_channels=data.channels, num_classes=2)
        opt = torch.optim.SGD(
            net.parameters(),
            lr=cfg.train.lr,
            momentum=cfg.train.momentum,
            weight_decay=cfg.train.weight_decay,
        )
        self.unet = self.add_model("unet", net, opt)

    def train_step(self, batch: Batch, step: int) -> dict[str, float]:
        with self.autocast():
            logits = self.unet(self.prepare(batch.labeled_image))
        loss = ce_dice_loss(logits, batch.labeled_mask)
        self.step_optimizer("unet", loss, step)
        self.finish_step()
        return {"loss": loss.item()}

    @torch.no_grad()
    def predict(self, images: torch.Tensor, **_) -> dict[str, torch.Tensor]:
        with self.autocast():
            logits = self.unet(self.prepare(images))
        return {"unet": logits.float().softmax(1)[:, 1]}
