"""Method ``mean-teacher``: the standard semi-supervised baseline (Tarvainen & Valpola 2017, SSL4MIS defaults).

The teacher is an exponential moving average of the student. On unlabeled images the student sees the strong
(photometric) view and must match the teacher's prediction on the weak view; both views share the geometry, so
the predictions align pixel for pixel. The consistency weight ramps up with :func:`~scsam_lite.rampup.sigmoid_rampup`.
"""

from __future__ import annotations

import copy

import torch

from ..config import Config
from ..data import Batch, SegData, strong_view
from ..losses import ce_dice_loss
from ..rampup import sigmoid_rampup
from ..runtime import Runtime, draw_seed
from .supervised import Supervised


class MeanTeacher(Supervised):
    needs_unlabeled = True

    def __init__(self, cfg: Config, data: SegData, rt: Runtime) -> None:
        super().__init__(cfg, data, rt)
        teacher = copy.deepcopy(self.unet)
        for p in teacher.parameters():
            p.requires_grad_(False)
        self.teacher = self.add_model("teacher", teacher)

    @torch.no_grad()
    def update_teacher(self, step: int) -> None:
        # as in SSL4MIS: a shorter memory at the start, so the teacher is not stuck on the random initialisation
        alpha = min(1.0 - 1.0 / (step + 1), self.cfg.ssl.ema_decay)
        for t, s in zip(self.teacher.parameters(), self.unet.parameters(), strict=True):
            t.mul_(alpha).add_(s.detach(), alpha=1 - alpha)
        for t, s in zip(self.teacher.buffers(), self.unet.buffers(), strict=True):
            t.copy_(s)

    def train_step(self, batch: Batch, step: int) -> dict[str, float]:
        n_lab = len(batch.labeled_image)
        strong = strong_view(batch.unlabeled_image, seed=draw_seed(self.cfg.train.seed, step))
        with self.autocast():
            logits = self.unet(self.prepare(torch.cat([batch.labeled_image, strong])))
            with torch.no_grad():
                teacher_prob = self.teacher(self.prepare(batch.unlabeled_image)).float().softmax(1)
        sup = ce_dice_loss(logits[:n_lab], batch.labeled_mask)
        student_prob = logits[n_lab:].float().softmax(1)
        consistency = torch.mean((student_prob - teacher_prob) ** 2)
        weight = self.cfg.ssl.consistency * sigmoid_rampup(step, self.cfg.ssl.consistency_rampup)
        loss = sup + weight * consistency
        self.step_optimizer("unet", loss, step)
        self.finish_step()
        self.update_teacher(step)
        return {
            "loss": loss.item(),
            "loss_sup": sup.item(),
            "loss_cons": consistency.item(),
            "w_cons": weight,
        }
