"""Method ``sc-sam``: the specialist (U-Net) and the generalist (PEFT-SAM) co-trained, each teaching the other.

One co-training step (:meth:`SCSAM.train_step`), as the reference does it (the options that differ from it are
listed in docs/differences.md; the ``paper`` preset sets the reference's values):

1. the U-Net predicts every image of the batch, labeled and unlabeled;
2. point prompts are sampled from its hard prediction for every image (5 positive + 5 negative, uniform; optionally
   ground-truth prompts for the labeled images, or a box from the prediction, see ``cotrain.*`` / ``prompts.*``);
3. SAM segments every image from those prompts, as two-class logits (:meth:`SCSAM.sam_two_class`:
   ``cotrain.sam_output``, one foreground pass or the reference's background and foreground passes);
4. U-Net loss = CE+Dice(labeled, ground truth) + CE+Dice(unlabeled, SAM's hard pseudo-label)
   (+ 0.9 x the entropy of its predictions: the whole batch as the reference (the default), or the unlabeled ones,
   ``cotrain.entropy_scope``); full weight from step 0 as in the reference, or ramped up like SAM's term with
   ``cotrain.unet_rampup`` (for a SAM whose first masks are poor). Each CE+Dice term is scaled by
   ``cotrain.loss_scale``: 1.0 sums them as the reference (the default, picked on the lab runs); 0.5 as SSL4MIS;
5. SAM loss = CE+Dice(labeled, ground truth) + w(t) CE+Dice(unlabeled, the U-Net's hard pseudo-label), with the
   sigmoid ramp-up w(t) of :mod:`scsam_lite.rampup` (T = 10,000 in the reference), so the U-Net's noisy early
   pseudo-labels cannot spoil SAM;
6. pseudo-labels are detached; two optimisers (U-Net: SGD; SAM: Adam) step separately.

With ``generalist.embedding_cache`` (a frozen encoder; SAM on a CPU), SAM works from the stored embeddings of the
un-augmented images while the U-Net still trains on augmented ones. The step then keeps two frames apart
(:meth:`SCSAM.sam_frame`): the U-Net also predicts the un-augmented images (no gradient, eval mode) for SAM's
prompts and pseudo-labels, and SAM's masks are warped with the batch's own augmentation before the U-Net learns from them.

Evaluation reports three predictions: ``unet`` (the U-Net alone), ``sam`` (SAM prompted by the U-Net's prediction,
what the reference reports: SAM needs the U-Net at test time; prompts seeded per image) and ``agreement`` (pixels
both call foreground).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from .. import pseudo_labels
from ..config import Config
from ..data import Batch, SegData
from ..data.augment import strong_view, weak_view_masks
from ..data.batches import load_images, load_masks
from ..generalist import Generalist, as_two_class, generalist_from_config
from ..generalist.embedding_cache import embeddings_for_run, segment
from ..generalist.learned_tokens import make_learned_tokens
from ..losses import ce_dice_loss, entropy_loss
from ..metrics import dice_scores
from ..prompts import Points, prompts_from_masks, shift_seed
from ..rampup import sigmoid_rampup
from ..runtime import Runtime, draw_seed
from .base import CheckpointSelection
from .peft_sam import eval_seeds
from .supervised import Supervised


class SAMFrame(NamedTuple):
    """What SAM sees in a step: the images, their dataset indices (for stored embeddings), the labeled images'
    ground truth and the U-Net's hard prediction, all in one pixel frame."""

    images: torch.Tensor
    index: np.ndarray | None
    labeled_mask: torch.Tensor
    unet_label: torch.Tensor
    #: SAM saw the unlabeled images un-augmented (stored embeddings) while the U-Net saw them augmented: SAM's masks
    #: are re-augmented with the batch's own augmentation before the U-Net learns from them
    reaugment: bool = False


class UNetLoss(NamedTuple):
    """Step 4's terms: ``total = sup + weight * pseudo (+ ssl.entropy_weight * entropy)``."""

    total: torch.Tensor
    sup: torch.Tensor
    pseudo: torch.Tensor
    entropy: torch.Tensor  # zero (and not in ``total``) with ``cotrain.entropy`` off
    weight: float


class SAMLoss(NamedTuple):
    """Step 5's terms: ``total = sup + weight * pseudo``, ``weight`` the ramp-up w(t)."""

    total: torch.Tensor
    sup: torch.Tensor
    pseudo: torch.Tensor
    weight: float


class SCSAM(Supervised):
    needs_unlabeled = True
    selection_model = "sam"
    logs_pseudo_quality = True
    #: where SAM's test-time prompts come from: "unet" (its own U-Net, as the paper evaluates) or "masks" (the masks
    #: given to predict, e.g. another run's U-Net: separates how good SAM is from how good its prompts are)
    prompt_source: str = "unet"

    def __init__(self, cfg: Config, data: SegData, rt: Runtime) -> None:
        super().__init__(cfg, data, rt)  # the U-Net and its SGD optimiser
        sam = generalist_from_config(cfg.generalist)
        sam.learned_tokens = make_learned_tokens(cfg.cotrain.learned_tokens, sam.prompt_encoder.embed_dim)
        opt = torch.optim.Adam([p for p in sam.parameters() if p.requires_grad], lr=cfg.generalist.lr)
        self.sam: Generalist = self.add_model("sam", sam, opt)
        if cfg.generalist.compile:
            self.sam.image_encoder.compile()
        #: stored image embeddings (``generalist.embedding_cache``), or None: the encoder runs every step
        self.embeddings = embeddings_for_run(cfg, data, self.sam, rt.device)

    @classmethod
    def selection_for(cls, cfg: Config) -> CheckpointSelection:
        """``cotrain.checkpoints``: separate (the reference) tests the U-Net of its own best step, not SAM's best
        step's; its own best is saved either way."""
        own = ("unet",) if cfg.cotrain.checkpoints == "separate" else ()
        return CheckpointSelection(saved=("unet",), own=own)

    # -- the pieces of a step, public so notebook 04 can unroll one step cell by cell ----------------------------
    def rampup_weight(self, step: int) -> float:
        """w(t): how much SAM's loss on the U-Net's pseudo-labels counts at ``step``."""
        c = self.cfg.cotrain
        return sigmoid_rampup(step, c.rampup_length, c.rampup_scale)

    def ce_dice(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Each CE + Dice term of the step, with ``cotrain.loss_scale`` and ``cotrain.dice_denominator``."""
        c = self.cfg.cotrain
        return ce_dice_loss(logits, target, c.loss_scale, squared=c.dice_denominator == "squared")

    def prompts_for(
        self, masks: torch.Tensor, seed: int | list[int]
    ) -> tuple[Points | None, torch.Tensor | None]:
        """Prompts (points and/or box, as ``prompts.kind`` says) sampled from hard masks ``(B, H, W)``."""
        return prompts_from_masks(masks, self.cfg.prompts, seed)

    def sam_two_class(
        self,
        images: torch.Tensor,
        index: np.ndarray | None,
        masks: torch.Tensor,
        seed: int | list[int],
    ) -> torch.Tensor:
        """SAM's two-class logits ``(B, 2, H, W)`` for images prompted from hard masks ``(B, H, W)``.

        ``cotrain.sam_output``: ``one-pass`` decodes once, prompted for the foreground, and reads its logit ``l``
        as ``[0, l]`` (softmax = sigmoid); ``two-pass`` (the reference) also decodes the background, prompted by
        points sampled from ``1 - masks`` (positives in the background), and stacks the two logits. ``index``: the
        images' dataset indices for stored embeddings, or None to run the encoder on ``images``.
        """
        embeddings = self.embeddings if index is not None else None
        points, boxes = self.prompts_for(masks, seed)
        if self.cfg.cotrain.sam_output == "one-pass":
            return as_two_class(segment(self.sam, embeddings, images, index, points, boxes).float())
        bg_points, bg_boxes = self.prompts_for(1 - masks, shift_seed(seed, 1))
        both_points = None if points is None else Points.cat([bg_points, points])
        both_boxes = None if boxes is None else torch.cat([bg_boxes, boxes])
        both_index = None if index is None else np.concatenate([index, index])
        b = len(images)
        classes = torch.arange(2, device=images.device).repeat_interleave(
            b
        )  # each decode's pass (0: background)
        logits = segment(
            self.sam, embeddings, torch.cat([images, images]), both_index, both_points, both_boxes, classes
        )
        return torch.cat([logits[:b], logits[b:]], dim=1).float()  # channel 0: background, 1: foreground

    def sam_frame(self, batch: Batch, images: torch.Tensor, unet_label: torch.Tensor) -> SAMFrame:
        """The batch as SAM sees it: the batch itself, or, with stored embeddings of augmented images, the
        un-augmented images with their ground truth and the U-Net's (gradient-free) prediction of them."""
        if self.embeddings is None:
            return SAMFrame(images, None, batch.labeled_mask, unet_label)
        index = np.concatenate([batch.labeled_index, batch.unlabeled_index])
        if batch.labeled_aug_seed is None and batch.unlabeled_aug_seed is None:
            return SAMFrame(images, index, batch.labeled_mask, unet_label)
        raw = self.prepare(load_images(self.data, index, self.rt.device))
        # a look, not a training pass: eval mode, so dropout is off and the batch norms' running statistics are
        # updated once per step (by the augmented pass), not twice
        was_training = self.unet.training
        self.unet.eval()
        try:
            with torch.no_grad(), self.autocast():
                raw_label = pseudo_labels.from_unet(self.unet(raw))
        finally:
            self.unet.train(was_training)
        labeled_mask = load_masks(self.data, batch.labeled_index, self.rt.device)
        return SAMFrame(raw, index, labeled_mask, raw_label, reaugment=batch.unlabeled_aug_seed is not None)

    # -- the options of a step, one helper each ---------------------------------------------------------------------
    def unet_input(self, batch: Batch, seed: int) -> torch.Tensor:
        """The U-Net's input: labeled then unlabeled images, the unlabeled ones in ``cotrain.unlabeled_view``
        (strong: also photometric only, so pixels and pseudo-labels stay aligned)."""
        unlabeled = batch.unlabeled_image
        if self.cfg.cotrain.unlabeled_view == "strong":
            unlabeled = strong_view(unlabeled, seed=seed)
        return self.prepare(torch.cat([batch.labeled_image, unlabeled]))

    def prompt_masks(self, frame: SAMFrame, n_lab: int) -> torch.Tensor:
        """The hard masks SAM's prompts are sampled from: the U-Net's, for every image (the reference), or the
        ground truth for the labeled images (``cotrain.labeled_prompts=gt``)."""
        if self.cfg.cotrain.labeled_prompts == "gt":
            return torch.cat([frame.labeled_mask, frame.unet_label[n_lab:]])
        return frame.unet_label

    def unet_targets(self, sam_two: torch.Tensor, frame: SAMFrame, batch: Batch, n_lab: int) -> torch.Tensor:
        """SAM's hard masks of the unlabeled images, the U-Net's pseudo-labels, in the U-Net's pixel frame."""
        sam_label = pseudo_labels.from_sam(sam_two)[n_lab:]
        if frame.reaugment:
            sam_label = weak_view_masks(sam_label, seed=batch.unlabeled_aug_seed)
        return sam_label

    def unet_pseudo_weight(self, step: int) -> float:
        """The weight of the U-Net's loss on SAM's masks: ``cotrain.unet_pseudo_weight``, from step 0 (the
        reference) or ramped up with w(t) (``cotrain.unet_rampup``)."""
        c = self.cfg.cotrain
        return c.unet_pseudo_weight * (self.rampup_weight(step) if c.unet_rampup else 1.0)

    def entropy_term(self, unet_logits: torch.Tensor, n_lab: int) -> torch.Tensor | None:
        """The entropy of the U-Net's predictions (``cotrain.entropy``) over the images ``cotrain.entropy_scope``
        names (the whole batch, as the reference, or the unlabeled ones); None when off."""
        c = self.cfg.cotrain
        if not c.entropy:
            return None
        return entropy_loss(unet_logits if c.entropy_scope == "batch" else unet_logits[n_lab:])

    # -- the step ------------------------------------------------------------------------------------------------
    def unet_loss(
        self, unet_logits: torch.Tensor, labeled_mask: torch.Tensor, sam_label: torch.Tensor, step: int
    ) -> UNetLoss:
        """Step 4: CE+Dice on the ground truth + the weighted CE+Dice on SAM's masks (+ the entropy)."""
        n_lab = len(labeled_mask)
        sup = self.ce_dice(unet_logits[:n_lab], labeled_mask)
        pseudo = self.ce_dice(unet_logits[n_lab:], sam_label)
        weight = self.unet_pseudo_weight(step)
        total = sup + weight * pseudo
        entropy = self.entropy_term(unet_logits, n_lab)
        if entropy is None:
            entropy = torch.zeros((), device=total.device)
        else:
            total = total + self.cfg.ssl.entropy_weight * entropy
        return UNetLoss(total, sup, pseudo, entropy, weight)

    def sam_loss(self, sam_two: torch.Tensor, frame: SAMFrame, step: int) -> SAMLoss:
        """Step 5: CE+Dice on the ground truth + w(t) CE+Dice on the U-Net's masks."""
        n_lab = len(frame.labeled_mask)
        sup = self.ce_dice(sam_two[:n_lab], frame.labeled_mask)
        pseudo = self.ce_dice(sam_two[n_lab:], frame.unet_label[n_lab:])
        w = self.rampup_weight(step)
        return SAMLoss(sup + w * pseudo, sup, pseudo, w)

    def train_step(self, batch: Batch, step: int) -> dict[str, float]:
        """One co-training step, the six steps of the module docstring."""
        n_lab = len(batch.labeled_image)
        seed = draw_seed(self.cfg.train.seed, step)
        # 1. the U-Net predicts every image, labeled and unlabeled; SAM's frame of them
        images = self.unet_input(batch, seed)
        with self.autocast():
            unet_logits = self.unet(images)
        unet_label = pseudo_labels.from_unet(unet_logits)
        frame = self.sam_frame(batch, images, unet_label)
        # 2. prompts from the U-Net's hard prediction
        prompt_masks = self.prompt_masks(frame, n_lab)
        # 3. SAM segments every image from them; its masks become the U-Net's pseudo-labels
        with self.autocast():
            sam_two = self.sam_two_class(frame.images, frame.index, prompt_masks, seed)
        sam_label = self.unet_targets(sam_two, frame, batch, n_lab)
        # 4. the U-Net learns from the ground truth and from SAM's masks
        unet = self.unet_loss(unet_logits.float(), batch.labeled_mask, sam_label, step)
        # 5. SAM learns from the ground truth and, ramped up, from the U-Net's masks
        sam = self.sam_loss(sam_two, frame, step)
        # 6. two optimisers (both losses checked first, so a NaN in SAM's leaves the U-Net unchanged too)
        self.check_finite({"unet": unet.total, "sam": sam.total}, step)
        self.step_optimizer("unet", unet.total, step)
        self.step_optimizer("sam", sam.total, step)
        self.finish_step()
        agreement = pseudo_labels.agreement(unet_label[n_lab:], sam_label)
        return step_log(unet, sam, agreement)

    @torch.no_grad()
    def background_dice(self, data: SegData, indices: np.ndarray, batch_size: int = 32) -> float | None:
        """Two-pass runs: mean Dice of the background pass alone (its logit > 0) against the true background of
        items ``indices``, prompted as at test time from the U-Net's prediction; None for one-pass runs.

        With identical prompts and no per-class tokens the two passes return identical logits: this number shows
        whether the background pass learns to segment the background at all."""
        if self.cfg.cotrain.sam_output != "two-pass":
            return None
        was_training = self.unet.training
        self.train(False)
        scores = []
        try:
            for start in range(0, len(indices), batch_size):
                idx = indices[start : start + batch_size]
                images = self.prepare(load_images(data, idx, self.rt.device))
                with self.autocast():
                    label = pseudo_labels.from_unet(self.unet(images))
                    bg = self.sam_two_class(images, idx, label, eval_seeds(self.cfg, idx, len(idx)))[:, 0]
                truth = 1 - data.masks[idx].astype(np.uint8)
                scores.append(dice_scores((bg > 0).cpu().numpy().astype(np.uint8), truth))
        finally:
            self.train(was_training)
        return float(np.concatenate(scores).mean())

    def accept_prompt_masks(self) -> bool:
        self.prompt_source = "masks"
        return True

    @torch.no_grad()
    def predict(
        self, images: torch.Tensor, *, masks: torch.Tensor | None = None, index: np.ndarray | None = None
    ) -> dict[str, torch.Tensor]:
        images = self.prepare(images)
        seeds = eval_seeds(self.cfg, index, len(images))
        if self.prompt_source == "masks":  # SAM alone, prompted from the given masks
            if masks is None:
                raise ValueError("prompt_source='masks': pass the masks to prompt SAM from")
            with self.autocast():
                sam_two = self.sam_two_class(images, index, masks, seeds)
            return {"sam": sam_two.float().softmax(1)[:, 1]}
        with self.autocast():
            unet_logits = self.unet(images)
        unet_prob = unet_logits.float().softmax(1)[:, 1]
        with self.autocast():
            sam_prob = self.sam_two_class(images, index, (unet_prob > 0.5).long(), seeds).softmax(1)[:, 1]
        both = torch.minimum(unet_prob, sam_prob)  # > 0.5 exactly where both say foreground
        return {"unet": unet_prob, "sam": sam_prob, "agreement": both}

    @torch.no_grad()
    def probe(self, images: torch.Tensor, index: np.ndarray, step: int) -> dict[str, np.ndarray]:
        """What a probe snapshot keeps of fixed unlabeled images: U-Net probability, its pseudo-label, the
        prompts sampled from it, SAM's probability, and w(t) (see ``PseudoLabelExplorer``)."""
        was_training = self.unet.training
        self.train(False)
        try:
            images = self.prepare(images)
            with self.autocast():
                unet_prob = self.unet(images).float().softmax(1)[:, 1]
            label = (unet_prob > 0.5).long()
            seeds = eval_seeds(self.cfg, index, len(images))
            points, boxes = self.prompts_for(
                label, seeds
            )  # the foreground prompts, as sam_two_class samples them
            with self.autocast():
                sam_prob = self.sam_two_class(images, index, label, seeds).softmax(1)[:, 1]
        finally:
            self.train(was_training)
        out = {
            "index": np.asarray(index),
            "step": np.asarray(step),
            "w": np.asarray(self.rampup_weight(step), dtype=np.float32),
            "unet_prob": unet_prob.cpu().numpy().astype(np.float16),
            "sam_prob": sam_prob.cpu().numpy().astype(np.float16),
        }
        if points is not None:
            out["points"] = points.coords.cpu().numpy()
            out["point_labels"] = points.labels.cpu().numpy()
        if boxes is not None:
            out["boxes"] = boxes.cpu().numpy()
        return out


def step_log(unet: UNetLoss, sam: SAMLoss, agreement: torch.Tensor) -> dict[str, float]:
    """What a step logs: both models' loss terms and weights, and how often their pseudo-labels agree."""
    return {
        "loss": (unet.total + sam.total).item(),
        "loss_unet": unet.total.item(),
        "loss_unet_sup": unet.sup.item(),
        "loss_unet_pseudo": unet.pseudo.item(),
        "loss_entropy": unet.entropy.item(),
        "loss_sam": sam.total.item(),
        "loss_sam_sup": sam.sup.item(),
        "loss_sam_pseudo": sam.pseudo.item(),
        "w_sam_pseudo": sam.weight,
        "w_unet_pseudo": unet.weight,
        "pseudo_agreement": agreement.mean().item(),
    }
