"""Tests that fail when the co-training loop is wrong: who teaches whom, what is detached, w(t), the entropy's
scope, the loss scale, the mean teacher's EMA, and where SC-SAM's test-time prompts come from.

Each one checks a quantity against an independent computation (written out here, not taken from the method's own
log), so that a mutated loop (a dropped weight, a swapped target, a missing detach) makes it fail.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from scsam_lite import config as C
from scsam_lite.data import TwoStreamBatches, load_dataset, make_label_split
from scsam_lite.methods.mean_teacher import MeanTeacher
from scsam_lite.methods.sc_sam import SCSAM
from scsam_lite.runtime import setup


def _sc_sam(**over):
    cfg = C.build_config("quick", {"data.augment": "none", **over}, method="sc-sam")
    data = load_dataset("synthetic-polyp")
    split = make_label_split(data, 0.05, seed=0, require_unlabeled=True)
    method = SCSAM(cfg, data, setup(0, "cpu", verbose=False))
    batches = TwoStreamBatches(data, split, 3, 3, seed=0, device=torch.device("cpu"), augment="none")
    method.train(True)
    return method, batches


def _mean_teacher(over: dict, augment: str = "none"):
    """A mean-teacher method on the synthetic polyps and its batches of 3 + 3."""
    cfg = C.build_config("quick", over, method="mean-teacher")
    data = load_dataset("synthetic-polyp")
    split = make_label_split(data, 0.05, seed=0, require_unlabeled=True)
    method = MeanTeacher(cfg, data, setup(0, "cpu", verbose=False))
    batches = TwoStreamBatches(data, split, 3, 3, seed=0, device=torch.device("cpu"), augment=augment)
    method.train(True)
    return method, batches


def _capture_losses(method):
    """Replace the optimiser steps by a record of the loss tensors (graphs kept for autograd.grad)."""
    losses = {}
    method.step_optimizer = lambda name, loss, step: losses.__setitem__(name, loss)
    method.finish_step = lambda: None
    return losses


def _ce_dice(logits: torch.Tensor, target: torch.Tensor, scale: float) -> torch.Tensor:
    """CE + soft Dice over both classes pooled over the batch, written out independently of losses.py/MONAI."""
    ce = F.cross_entropy(logits, target)
    p = logits.softmax(1)
    onehot = F.one_hot(target, 2).permute(0, 3, 1, 2).float()
    inter = (p * onehot).sum(dim=(0, 2, 3))
    denom = p.sum(dim=(0, 2, 3)) + onehot.sum(dim=(0, 2, 3))
    dice = (1 - (2 * inter + 1e-5) / (denom + 1e-5)).mean()
    return scale * (ce + dice)


def _entropy(logits: torch.Tensor) -> torch.Tensor:
    p = logits.softmax(1)
    return (-(p * torch.log(p.clamp_min(1e-8))).sum(1)).mean() / np.log(2)


def test_each_loss_gives_the_other_model_no_gradient():
    """The detach, proved with gradients: SAM's loss never reaches the U-Net's weights, nor the other way round."""
    method, batches = _sc_sam()
    losses = _capture_losses(method)
    method.train_step(batches.batch(0), 0)
    unet_params = list(method.unet.parameters())
    sam_params = [p for p in method.sam.parameters() if p.requires_grad]
    for grad in torch.autograd.grad(losses["sam"], unet_params, allow_unused=True, retain_graph=True):
        assert grad is None or not grad.abs().any()
    for grad in torch.autograd.grad(losses["unet"], sam_params, allow_unused=True, retain_graph=True):
        assert grad is None or not grad.abs().any()
    # and each loss does reach its own model
    assert any(
        g is not None and g.abs().any()
        for g in torch.autograd.grad(losses["unet"], unet_params, allow_unused=True, retain_graph=True)
    )
    assert any(
        g is not None and g.abs().any()
        for g in torch.autograd.grad(losses["sam"], sam_params, allow_unused=True)
    )


class _Constant(torch.nn.Module):
    """A 'U-Net' that says foreground everywhere, with a trainable bias so the loss has a graph."""

    def __init__(self, h: int, w: int) -> None:
        super().__init__()
        self.bias = torch.nn.Parameter(torch.tensor([-2.0, 2.0]))
        self.hw = (h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bias.view(1, 2, 1, 1).expand(len(x), 2, *self.hw) + 0 * x[:, :1]


def test_sams_masks_teach_the_unet_and_the_unets_masks_teach_sam(monkeypatch):
    """The models disagree everywhere on known images: the U-Net says all foreground, SAM all background. The
    U-Net's pseudo-target must then be all background (SAM's), SAM's all foreground (the U-Net's)."""
    import scsam_lite.methods.sc_sam as module

    method, batches = _sc_sam()
    batch = batches.batch(0)
    h, w = batch.labeled_mask.shape[-2:]
    method.models["unet"] = method.unet = _Constant(h, w)
    monkeypatch.setattr(
        module, "segment", lambda model, emb, images, *a, **k: torch.full((len(images), 1, h, w), -4.0)
    )
    targets = []
    real = module.ce_dice_loss

    def spy(logits, target, scale=0.5, squared=False):
        targets.append(target.clone())
        return real(logits, target, scale, squared)

    monkeypatch.setattr(module, "ce_dice_loss", spy)
    _capture_losses(method)
    out = method.train_step(batch, 0)
    unet_sup, unet_pseudo, sam_sup, sam_pseudo = targets
    assert torch.equal(unet_sup, batch.labeled_mask) and torch.equal(sam_sup, batch.labeled_mask)
    assert not unet_pseudo.any(), "the U-Net learns SAM's (all background) mask"
    assert unet_pseudo.shape[0] == len(batch.unlabeled_image)
    assert sam_pseudo.all(), "SAM learns the U-Net's (all foreground) mask"
    assert out["pseudo_agreement"] == 0.0


@pytest.mark.slow
@pytest.mark.parametrize("scale", [0.5, 1.0])
def test_sams_loss_is_sup_plus_w_times_pseudo_at_two_steps(scale, monkeypatch):
    """loss_sam = sup + w(t) * pseudo with w from the ramp-up formula, recomputed here from SAM's logits."""
    import scsam_lite.methods.sc_sam as module

    seen = {}
    real = module.SCSAM.sam_two_class

    def spy(self, images, index, masks, seed):
        seen["logits"] = real(self, images, index, masks, seed)
        seen["prompt_masks"] = masks.clone()
        return seen["logits"]

    monkeypatch.setattr(module.SCSAM, "sam_two_class", spy)
    for step in (0, 150):
        method, batches = _sc_sam(**{"cotrain.loss_scale": scale, "cotrain.rampup_length": 300})
        losses = _capture_losses(method)
        batch = batches.batch(step)
        out = method.train_step(batch, step)
        n = len(batch.labeled_image)
        w = float(np.exp(-5.0 * (1 - step / 300) ** 2))
        logits = seen["logits"].detach()
        unet_label = seen["prompt_masks"]  # the U-Net's hard mask (labeled prompts come from the U-Net)
        expected = _ce_dice(logits[:n], batch.labeled_mask, scale) + w * _ce_dice(
            logits[n:], unet_label[n:], scale
        )
        assert out["w_sam_pseudo"] == pytest.approx(w, rel=1e-6)
        assert losses["sam"].item() == pytest.approx(expected.item(), rel=1e-4)


class _Recorder(torch.nn.Module):
    """Wraps the U-Net and keeps each call's input and output (the step's own tensors, graphs included)."""

    def __init__(self, unet: torch.nn.Module) -> None:
        super().__init__()
        self.unet, self.calls = unet, []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.unet(x)
        self.calls.append((x.detach().clone(), out))
        return out


@pytest.mark.parametrize("scale", [0.5, 1.0])
def test_the_unets_loss_and_the_steps_seeds_follow_their_formulas(scale, monkeypatch):
    """loss_unet = scale (CE + Dice) on the labels + scale (CE + Dice) on SAM's masks + 0.9 entropy, recomputed
    here from the U-Net's own logits; the unlabeled images' strong view and SAM's prompts are drawn from
    ``train.seed * 1,000,003 + step`` (seed 1, so that a wrong multiplier or sign shows)."""
    import scsam_lite.methods.sc_sam as module
    from scsam_lite import pseudo_labels
    from scsam_lite.data import strong_view

    seen = {}
    real = module.SCSAM.sam_two_class

    def spy(self, images, index, masks, seed):
        seen["seed"], seen["logits"] = seed, real(self, images, index, masks, seed)
        return seen["logits"]

    monkeypatch.setattr(module.SCSAM, "sam_two_class", spy)
    over = {"cotrain.loss_scale": scale, "cotrain.unlabeled_view": "strong", "train.seed": 1}
    method, batches = _sc_sam(**over)
    method.models["unet"] = method.unet = _Recorder(method.unet)
    losses = _capture_losses(method)
    step = 7
    batch = batches.batch(step)
    out = method.train_step(batch, step)
    n = len(batch.labeled_image)
    assert seen["seed"] == 1_000_003 + step
    strong = strong_view(batch.unlabeled_image, seed=1_000_003 + step)
    images, logits = method.unet.calls[0]
    torch.testing.assert_close(images, method.prepare(torch.cat([batch.labeled_image, strong])))
    logits = logits.float()
    sam_label = pseudo_labels.from_sam(seen["logits"].detach())[n:]
    sup = _ce_dice(logits[:n], batch.labeled_mask, scale)
    pseudo = _ce_dice(logits[n:], sam_label, scale)
    expected = sup + pseudo + 0.9 * _entropy(logits[n:])
    assert out["loss_unet_sup"] == pytest.approx(sup.item(), rel=1e-4)
    assert out["loss_unet_pseudo"] == pytest.approx(pseudo.item(), rel=1e-4)
    assert losses["unet"].item() == pytest.approx(expected.item(), rel=1e-4)
    assert out["loss_sam"] == pytest.approx(losses["sam"].item())
    assert out["loss"] == pytest.approx(losses["unet"].item() + losses["sam"].item())


def test_without_entropy_the_unets_loss_has_none_and_logs_zero():
    method, batches = _sc_sam(**{"cotrain.entropy": False})
    losses = _capture_losses(method)
    out = method.train_step(batches.batch(0), 0)
    assert out["loss_entropy"] == 0.0
    assert out["loss_unet"] == pytest.approx(out["loss_unet_sup"] + out["loss_unet_pseudo"], rel=1e-5)
    assert losses["unet"].item() == pytest.approx(out["loss_unet"])


@pytest.mark.parametrize("which", ["unet", "sam"])
def test_a_non_finite_co_training_loss_stops_the_run_naming_its_step(which, monkeypatch):
    """Either model's loss, before any weight changes, with the step in the message."""
    import scsam_lite.methods.sc_sam as module
    from scsam_lite.errors import TrainingError

    method, batches = _sc_sam()
    if which == "sam":  # NaN logits from SAM, a finite U-Net
        real = module.SCSAM.sam_two_class
        monkeypatch.setattr(module.SCSAM, "sam_two_class", lambda *a: real(*a) * float("nan"))
    else:
        method.models["unet"] = method.unet = _Recorder(method.unet)
        method.unet.forward = lambda x: method.unet.unet(x) * float("nan")
    before = [p.detach().clone() for m in (method.unet, method.sam) for p in m.parameters()]
    with pytest.raises(TrainingError, match=f"the {which} loss became nan at step 9; no weight was changed"):
        method.train_step(batches.batch(9), 9)
    after = [p.detach() for m in (method.unet, method.sam) for p in m.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(after, before, strict=True)), "a weight changed"


@pytest.mark.parametrize("scope", ["unlabeled", "batch"])
def test_the_entropy_covers_what_its_scope_says(scope, monkeypatch):
    import scsam_lite.methods.sc_sam as module

    seen = []
    real = module.entropy_loss
    monkeypatch.setattr(module, "entropy_loss", lambda logits: seen.append(logits.detach()) or real(logits))
    method, batches = _sc_sam(**{"cotrain.entropy_scope": scope})
    _capture_losses(method)
    batch = batches.batch(0)
    out = method.train_step(batch, 0)
    n_lab, n_unl = len(batch.labeled_image), len(batch.unlabeled_image)
    assert seen[0].shape[0] == (n_unl if scope == "unlabeled" else n_lab + n_unl)
    assert out["loss_entropy"] == pytest.approx(_entropy(seen[0]).item(), rel=1e-5)


def test_two_pass_output_is_a_softmax_over_background_and_foreground_decodes(monkeypatch):
    """The reference's SAM output: the background decoded from points whose positives lie in the background."""
    import scsam_lite.methods.sc_sam as module

    method, batches = _sc_sam(**{"cotrain.sam_output": "two-pass"})
    batch = batches.batch(0)
    images = torch.cat([batch.labeled_image, batch.unlabeled_image])
    masks = torch.cat([batch.labeled_mask, batch.labeled_mask[:0], batch.labeled_mask])[: len(images)]
    calls = []
    real = module.segment

    def spy(model, emb, imgs, index, points, boxes, token_class=None):
        calls.append(points)
        return real(model, emb, imgs, index, points, boxes, token_class)

    monkeypatch.setattr(module, "segment", spy)
    with torch.no_grad():
        two = method.sam_two_class(images, None, masks, 7)
    assert two.shape == (len(images), 2, *images.shape[-2:]) and len(calls) == 1
    pts = calls[0]
    b = len(images)
    for i in range(b):  # first half: background prompts (positives off the mask), second: foreground prompts
        for half, inside in ((0, 0), (1, 1)):
            coords, labels = pts.coords[half * b + i], pts.labels[half * b + i]
            for (x, y), lab in zip(coords.tolist(), labels.tolist(), strict=True):
                if lab == 1:
                    assert masks[i, int(y), int(x)].item() == inside
    one, _ = _sc_sam()
    with torch.no_grad():
        single = one.sam_two_class(images, None, masks, 7)
    assert torch.equal(single[:, 0], torch.zeros_like(single[:, 0]))  # one-pass: [0, l]


def test_sc_sams_test_prompts_come_from_its_unet_not_the_masks_passed_in(monkeypatch):
    method, batches = _sc_sam()
    method.train(False)
    batch = batches.batch(0)
    seen = []
    real = method.prompts_for
    monkeypatch.setattr(
        method, "prompts_for", lambda masks, seed: seen.append(masks.clone()) or real(masks, seed)
    )
    truth = batch.labeled_mask
    with torch.no_grad():
        out = method.predict(batch.labeled_image, masks=truth, index=batch.labeled_index)
    assert torch.equal(seen[0], (out["unet"] > 0.5).long())
    assert not torch.equal(seen[0], truth)  # an untrained U-Net is not the ground truth


@pytest.mark.slow
def test_the_mean_teacher_is_an_ema_of_the_student():
    """After a step the teacher equals alpha * its old weights + (1 - alpha) * the student's new ones, with SSL4MIS's
    alpha = min(1 - 1/(step + 1), ema_decay); an EMA stuck at alpha = 1 (a teacher that never moves) fails."""
    method, batches = _mean_teacher({"ssl.ema_decay": 0.99}, augment="weak")
    for step in (0, 5, 500):
        old = [t.detach().clone() for t in method.teacher.parameters()]
        method.train_step(batches.batch(step), step)
        alpha = min(1 - 1 / (step + 1), 0.99)
        moved = False
        for t, o, s in zip(method.teacher.parameters(), old, method.unet.parameters(), strict=True):
            torch.testing.assert_close(t, alpha * o + (1 - alpha) * s.detach(), rtol=1e-5, atol=1e-6)
            moved |= not torch.equal(t, o)
        assert moved, f"the teacher did not move at step {step}"


@pytest.mark.slow
@pytest.mark.parametrize("step", [3, 40])
def test_the_mean_teachers_losses_equal_their_formulas(step):
    """One mean-teacher step against the loss written out here: CE + Dice on the labeled images, plus
    ``w(t) * mean((softmax(student on the strong view) - softmax(teacher on the weak view))^2)`` over the channel
    axis, with ``w(t) = consistency * sigmoid_rampup``; the strong view's seed is the run's, so the step is
    reproducible (train.seed 1). A wrong sign, power, softmax axis, weight, view or seed makes it fail; the logged
    terms are the ones the optimiser gets."""
    from scsam_lite.data import strong_view
    from scsam_lite.rampup import sigmoid_rampup

    over = {"ssl.consistency": 0.7, "ssl.consistency_rampup": 50, "data.augment": "none", "train.seed": 1}
    method, batches = _mean_teacher(over)
    batch = batches.batch(step)
    losses = _capture_losses(method)
    method.update_teacher = lambda step: None
    torch.manual_seed(0)
    logged = method.train_step(batch, step)

    torch.manual_seed(0)  # the same dropout masks as the step's forward passes
    strong = strong_view(
        batch.unlabeled_image, seed=1_000_003 + step
    )  # train.seed 1: a wrong multiplier shows
    logits = method.unet(method.prepare(torch.cat([batch.labeled_image, strong]))).float()
    with torch.no_grad():
        teacher = method.teacher(method.prepare(batch.unlabeled_image)).float().softmax(1)
    sup = _ce_dice(logits[: len(batch.labeled_image)], batch.labeled_mask, 0.5)
    cons = ((logits[len(batch.labeled_image) :].softmax(1) - teacher) ** 2).mean()
    w = 0.7 * sigmoid_rampup(step, 50)
    assert 0 < w < 0.7 and cons > 0
    assert logged["w_cons"] == pytest.approx(w)
    assert logged["loss_sup"] == pytest.approx(sup.item(), rel=1e-4)
    assert logged["loss_cons"] == pytest.approx(cons.item(), rel=1e-4)
    assert logged["loss"] == pytest.approx((sup + w * cons).item(), rel=1e-4)
    assert losses["unet"].item() == pytest.approx(logged["loss"])


def test_a_non_finite_loss_stops_the_run_naming_its_step():
    """Before any weight changes, with the step in the message (the error a user reads first)."""
    from scsam_lite.errors import TrainingError

    method, batches = _mean_teacher({"data.augment": "none"})
    batch = batches.batch(7)
    before = [p.detach().clone() for p in method.unet.parameters()]
    batch.labeled_image[:] = float("nan")
    with pytest.raises(TrainingError, match="at step 7; no weight was changed"):
        method.train_step(batch, 7)
    assert all(torch.equal(p, b) for p, b in zip(method.unet.parameters(), before, strict=True))


@pytest.mark.slow
def test_the_paper_preset_is_the_reference_step_and_trains_end_to_end(tmp_path):
    from scsam_lite.trainer import train

    paper = C.build_config("paper").cotrain
    assert (paper.sam_output, paper.loss_scale, paper.entropy_scope) == ("two-pass", 1.0, "batch")
    assert (paper.learned_tokens, paper.dice_denominator) == ("per-class", "squared")
    assert C.build_config("paper").generalist.point_encoding == "reference"
    assert C.build_config("paper").train.lr_schedule == "linear"
    quick = C.build_config("quick").cotrain
    # the defaults where they were measured against the reference (README): ours for SAM's output, the reference's
    # for the rest
    assert (quick.sam_output, quick.loss_scale, quick.entropy_scope, quick.checkpoints) == (
        "one-pass",
        1.0,
        "batch",
        "separate",
    )
    with pytest.raises(Exception, match="sam_output"):
        C.build_config("quick", {"cotrain.sam_output": "three-pass"})
    reference_step = {
        "cotrain.sam_output": "two-pass",
        "cotrain.loss_scale": 1.0,
        "cotrain.entropy_scope": "batch",
        "cotrain.learned_tokens": "per-class",
        "cotrain.dice_denominator": "squared",
        "generalist.point_encoding": "reference",
    }
    cfg = C.build_config(
        "quick", {"train.iterations": 4, "train.val_every": 2, **reference_step}, method="sc-sam"
    )
    res = train(cfg, tmp_path / "run", verbose=False)
    assert set(res.metrics) == {"unet", "sam", "agreement"}
    assert all(0.0 <= m["dice"] <= 1.0 for m in res.metrics.values())


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["joint", "separate"])
def test_tested_weights_come_from_the_chosen_checkpoints(mode, tmp_path):
    """separate (the reference): the U-Net tested is the one from its own best validation step; joint: SAM's."""
    from scsam_lite.runs import RunDir, load_checkpoint, read_results
    from scsam_lite.trainer import load_run, train

    over = {
        "train.iterations": 6,
        "train.val_every": 2,
        "cotrain.checkpoints": mode,
        "cotrain.probe_images": 0,
    }
    res = train(C.build_config("quick", over, method="sc-sam"), tmp_path / "run", verbose=False)
    run = RunDir(tmp_path / "run")
    own = run.best_model_path("unet")
    assert own.is_file()  # saved either way, so `evaluate --selection` can score the other choice
    expected = load_checkpoint(own if mode == "separate" else run.best_path)
    unet_state = expected["models"]["unet"] if mode == "separate" else expected["method"]["models"]["unet"]
    for name, value in res.method.unet.state_dict().items():
        assert torch.equal(value, unet_state[name]), name
    history = run.history()
    best_unet_step = max(history, key=lambda r: (r["val_dice"]["unet"], r["step"]))["step"]
    row = read_results(tmp_path / "results.jsonl")[-1]
    assert row["best_step_unet"] == best_unet_step == load_checkpoint(own)["step"]
    method, _, _ = load_run(tmp_path / "run")  # `scsam-lite evaluate` tests the same weights
    for name, value in method.unet.state_dict().items():
        assert torch.equal(value, unet_state[name]), name


@pytest.mark.parametrize("view", ["weak", "strong"])
def test_the_unlabeled_view_reaches_the_unet_and_leaves_the_labeled_images_alone(view, monkeypatch):
    method, batches = _sc_sam(**{"cotrain.unlabeled_view": view})
    batch = batches.batch(3)
    seen = []
    real = method.unet.forward
    monkeypatch.setattr(method.unet, "forward", lambda x: seen.append(x.detach().clone()) or real(x))
    _capture_losses(method)
    method.train_step(batch, 3)
    n = len(batch.labeled_image)
    first = seen[0]
    assert torch.allclose(first[:n], batch.labeled_image)
    assert torch.allclose(first[n:], batch.unlabeled_image) == (view == "weak")
