"""Method ``sc-sam``: the co-training step, its three evaluations, probe snapshots, and resume."""

from __future__ import annotations

import pytest
import torch

from scsam_lite import config as C
from scsam_lite import pseudo_labels
from scsam_lite.data import TwoStreamBatches, load_dataset, make_label_split
from scsam_lite.methods.sc_sam import SCSAM
from scsam_lite.runs import load_probes
from scsam_lite.runtime import setup
from scsam_lite.trainer import train


def _cfg(**over) -> C.Config:
    base = {"train.iterations": 20, "train.val_every": 10, "cotrain.probe_images": 3}
    return C.build_config("quick", {**base, **over}, method="sc-sam")


def _method(cfg: C.Config):
    data = load_dataset("synthetic-polyp")
    split = make_label_split(data, 0.05, seed=0, require_unlabeled=True)
    method = SCSAM(cfg, data, setup(0, "cpu", verbose=False))
    batches = TwoStreamBatches(data, split, 4, 4, seed=0, device=torch.device("cpu"))
    return method, batches


@pytest.mark.slow
def test_sc_sam_trains_evaluates_three_ways_and_saves_probes(tmp_path):
    res = train(_cfg(), tmp_path / "run", verbose=False)
    assert set(res.metrics) == {"unet", "sam", "agreement"}
    for m in res.metrics.values():
        assert 0.0 <= m["dice"] <= 1.0
    probes = load_probes(tmp_path / "run")
    assert [int(p["step"]) for p in probes] == [0, 10, 20]
    first, last = probes[0], probes[-1]
    assert first["unet_prob"].shape == (3, 64, 64) and first["sam_prob"].shape == (3, 64, 64)
    assert first["points"].shape == (3, 10, 2) and set(first["point_labels"].ravel()) <= {-1, 0, 1}
    assert (first["index"] == last["index"]).all()  # the same images all along
    assert set(first["index"]).isdisjoint(res.label_split.labeled)  # unlabeled ones
    assert float(first["w"]) < float(last["w"]) <= 1.0


@pytest.mark.slow
def test_each_validation_scores_the_pseudo_labels_against_the_unlabeled_masks(tmp_path):
    """``pseudo_dice`` in the history is the Dice of each teacher's hard masks of the unlabeled images, which a
    run never trains on: recomputed here from the last checkpoint (the models of the last validation)."""
    import numpy as np

    from scsam_lite.evaluation import predict_split
    from scsam_lite.metrics import dice_scores
    from scsam_lite.runs import RunDir
    from scsam_lite.trainer import load_run

    res = train(_cfg(), tmp_path / "run", verbose=False)
    history = RunDir(tmp_path / "run").history()
    assert [sorted(h["pseudo_dice"]) for h in history] == [["sam", "unet"]] * 2
    method, data, _ = load_run(tmp_path / "run", checkpoint="last", device="cpu")
    unlabeled = np.sort(res.label_split.unlabeled)
    preds = predict_split(method, data, unlabeled)
    for model in ("unet", "sam"):
        expected = dice_scores(preds[model], data.masks[unlabeled]).mean()
        assert history[-1]["pseudo_dice"][model] == pytest.approx(expected, abs=1e-6)


def test_one_step_updates_both_models_with_detached_pseudo_labels():
    method, batches = _method(_cfg())
    before_u = [p.detach().clone() for p in method.unet.parameters()]
    before_s = [p.detach().clone() for p in method.sam.parameters() if p.requires_grad]
    out = method.train_step(batches.batch(0), 0)
    for key in ("loss_unet_sup", "loss_unet_pseudo", "loss_entropy", "loss_sam_sup", "loss_sam_pseudo"):
        assert torch.isfinite(torch.tensor(out[key])), key
    assert 0.0 <= out["pseudo_agreement"] <= 1.0
    assert out["w_sam_pseudo"] == pytest.approx(method.rampup_weight(0))
    assert any(not torch.equal(a, b) for a, b in zip(before_u, method.unet.parameters(), strict=True))
    trainable = [p for p in method.sam.parameters() if p.requires_grad]
    assert any(not torch.equal(a, b) for a, b in zip(before_s, trainable, strict=True))
    logits = torch.randn(2, 2, 8, 8, requires_grad=True)
    assert not pseudo_labels.from_unet(logits).requires_grad
    assert not pseudo_labels.from_sam(torch.randn(2, 1, 8, 8, requires_grad=True)).requires_grad


def test_rampup_shape_is_configurable():
    method, _ = _method(_cfg(**{"cotrain.rampup_length": 100, "cotrain.rampup_scale": 5.0}))
    assert method.rampup_weight(0) == pytest.approx(0.0067, abs=1e-4)
    assert method.rampup_weight(100) == 1.0 and method.rampup_weight(500) == 1.0
    method.cfg.cotrain.rampup_scale = 1.0  # the formula as a summary of the paper writes it
    assert method.rampup_weight(0) == pytest.approx(0.3679, abs=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("ramp", [False, True])
def test_unets_loss_on_sams_masks_has_full_weight_or_the_rampup(ramp):
    method, batches = _method(_cfg(**{"cotrain.unet_rampup": ramp, "cotrain.rampup_length": 100}))
    out = method.train_step(batches.batch(0), 0)
    expected = method.rampup_weight(0) if ramp else 1.0
    assert out["w_unet_pseudo"] == pytest.approx(expected)
    total = out["loss_unet_sup"] + expected * out["loss_unet_pseudo"] + 0.9 * out["loss_entropy"]
    assert out["loss_unet"] == pytest.approx(total, rel=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("source", ["unet", "gt"])
def test_labeled_prompts_come_from_the_unet_or_the_ground_truth(source, monkeypatch):
    method, batches = _method(_cfg(**{"cotrain.labeled_prompts": source}))
    batch = batches.batch(0)
    seen = {}
    real = method.prompts_for

    def spy(masks, seed):
        seen["masks"] = masks.clone()
        return real(masks, seed)

    monkeypatch.setattr(method, "prompts_for", spy)
    method.train_step(batch, 0)
    n = len(batch.labeled_image)
    assert seen["masks"].shape[0] == n + len(batch.unlabeled_image)
    if source == "gt":
        assert torch.equal(seen["masks"][:n], batch.labeled_mask)
    else:
        assert not torch.equal(
            seen["masks"][:n], batch.labeled_mask
        )  # a random U-Net is not the ground truth


def test_agreement_is_where_both_say_foreground():
    method, batches = _method(_cfg())
    method.train(False)
    b = batches.batch(0)
    out = method.predict(b.labeled_image, masks=b.labeled_mask, index=b.labeled_index)
    both = (out["unet"] > 0.5) & (out["sam"] > 0.5)
    assert torch.equal(out["agreement"] > 0.5, both)


@pytest.mark.slow
def test_resume_mid_run_gives_the_same_metrics(tmp_path):
    cfg = _cfg(**{"train.deterministic": True})
    whole = train(cfg, tmp_path / "whole", verbose=False)
    train(cfg, tmp_path / "parts", verbose=False, stop_after=10)
    resumed = train(cfg, tmp_path / "parts", resume=True, verbose=False)
    assert resumed.metrics == whole.metrics


@pytest.mark.slow
def test_learned_tokens_are_off_by_default_and_train_when_on():
    method, batches = _method(_cfg())
    assert method.sam.learned_tokens is None
    method, batches = _method(_cfg(**{"cotrain.learned_tokens": True}))
    tokens = method.sam.learned_tokens
    assert tokens is not None and all(p.requires_grad for p in tokens.parameters())
    opt_params = {id(p) for g in method.optimizers["sam"].param_groups for p in g["params"]}
    assert all(id(p) in opt_params for p in tokens.parameters())
    before = tokens.out.weight.detach().clone()
    method.train_step(batches.batch(0), 0)
    assert not torch.equal(before, tokens.out.weight)


@pytest.mark.slow
def test_sc_sams_sam_can_be_prompted_by_another_runs_unet(tmp_path, capsys):
    """Separates how good SC-SAM's SAM is from how good its own U-Net's prompts are."""
    import json

    from scsam_lite.cli import main
    from scsam_lite.evaluation import evaluate
    from scsam_lite.trainer import load_run

    short = {"train.iterations": 10, "train.val_every": 10}
    train(_cfg(**short), tmp_path / "sc", verbose=False)
    # a U-Net trained long enough to find polyps, so its prompts differ from the barely trained one inside "sc"
    unet_cfg = C.build_config("quick", {"train.iterations": 150, "train.val_every": 150}, method="unet")
    train(unet_cfg, tmp_path / "unet", verbose=False)
    assert main(["evaluate", str(tmp_path / "sc"), "--prompts-from", str(tmp_path / "unet")]) == 0
    other = json.loads((tmp_path / "sc" / "metrics_test_best_prompts_from_unet.json").read_text())
    own = json.loads((tmp_path / "sc" / "metrics.json").read_text())
    assert set(other) == {"sam"} and other["sam"]["dice"] != own["sam"]["dice"]
    # the given masks really are the prompt source: the ground truth gives yet another score
    method, data, _ = load_run(tmp_path / "sc")
    assert method.accept_prompt_masks()
    gt = data.masks[data.splits["test"]]
    assert evaluate(method, data, "test", prompt_masks=gt)["sam"]["dice"] != other["sam"]["dice"]
    # a run without a SAM says so instead of writing a file of unchanged U-Net scores
    assert main(["evaluate", str(tmp_path / "unet"), "--prompts-from", str(tmp_path / "unet")]) == 2
    assert "no SAM to prompt" in capsys.readouterr().err
    assert not list((tmp_path / "unet").glob("metrics_test_best_prompts_from_*.json"))
