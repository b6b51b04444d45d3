"""The reference's co-training step, faithfully: per-class learned tokens, its point encoding, its Dice, and the
background pass's own Dice logged for two-pass runs (issue: 'the reference's co-training step, faithfully')."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from scsam_lite import config as C
from scsam_lite.data import TwoStreamBatches, load_dataset, make_label_split
from scsam_lite.generalist import generalist_from_config
from scsam_lite.generalist.learned_tokens import LearnedTokens, PerClassTokens
from scsam_lite.generalist.point_encoding import uses_reference_point_encoding
from scsam_lite.losses import ce_dice_loss
from scsam_lite.methods.sc_sam import SCSAM
from scsam_lite.runtime import setup


def _method(**over):
    cfg = C.build_config("quick", {"train.iterations": 20, "train.val_every": 10, **over}, method="sc-sam")
    data = load_dataset("synthetic-polyp")
    split = make_label_split(data, 0.05, seed=0, require_unlabeled=True)
    method = SCSAM(cfg, data, setup(0, "cpu", verbose=False))
    batches = TwoStreamBatches(data, split, 4, 4, seed=0, device=torch.device("cpu"))
    return method, batches


def _two_pass_logits(method, batch):
    """Both passes prompted from the same (all-foreground) mask: any difference comes from the tokens."""
    images = method.prepare(batch.labeled_image)
    same = torch.ones(images.shape[0], *images.shape[-2:], dtype=torch.long)
    from scsam_lite.generalist.embedding_cache import segment
    from scsam_lite.prompts import Points

    points, _ = method.prompts_for(same, 0)
    b = len(images)
    both = Points.cat([points, points])
    classes = torch.cat([torch.zeros(b), torch.ones(b)]).long()
    with torch.no_grad():
        logits = segment(method.sam, None, torch.cat([images, images]), None, both, None, classes)
    return logits[:b], logits[b:]


def test_per_class_tokens_give_each_pass_its_own_trained_tokens():
    method, batches = _method(**{"cotrain.learned_tokens": "per-class", "cotrain.sam_output": "two-pass"})
    tokens = method.sam.learned_tokens
    assert isinstance(tokens, PerClassTokens) and len(tokens.per_class) == 2
    assert tokens.per_class[0] is not tokens.per_class[1]
    assert all(net.out.weight.abs().sum() > 0 for net in tokens.per_class), "non-zero initialised"
    bg, fg = _two_pass_logits(method, batches.batch(0))
    assert not torch.allclose(bg, fg), "identical prompts: only per-class tokens can make the passes differ"
    before = [net.out.weight.detach().clone() for net in tokens.per_class]
    trainable = {id(p) for g in method.optimizers["sam"].param_groups for p in g["params"]}
    assert all(id(p) in trainable for p in tokens.parameters()), "the SAM optimiser trains the tokens"
    method.train(True)
    method.train_step(batches.batch(0), 0)
    for net, old in zip(tokens.per_class, before, strict=True):
        assert not torch.equal(net.out.weight, old), "each pass's tokens train"


def test_shared_tokens_leave_identical_prompts_identical():
    method, batches = _method(**{"cotrain.learned_tokens": True, "cotrain.sam_output": "two-pass"})
    assert isinstance(method.sam.learned_tokens, LearnedTokens)
    bg, fg = _two_pass_logits(method, batches.batch(0))
    assert torch.allclose(bg, fg)


def test_learned_tokens_read_true_false_and_per_class_from_the_command_line():
    for text, value in (("true", True), ("off", False), ("per-class", "per-class")):
        cfg = C.build_config("quick", C.parse_overrides([f"cotrain.learned_tokens={text}"]), method="sc-sam")
        assert cfg.cotrain.learned_tokens == value
    with pytest.raises(C.ConfigError, match="did you mean 'per-class'"):
        C.build_config("quick", {"cotrain.learned_tokens": "perclass"}, method="sc-sam")


def _codes(model, xy: list[tuple[float, float]]) -> torch.Tensor:
    coords = torch.tensor([xy], dtype=torch.float)
    return model.prompt_encoder.pe_layer.forward_with_coords(coords, (256, 256))[0]


def test_the_references_point_encoding_is_used_only_when_asked_for():
    gcfg = C.build_config("quick", method="sc-sam").generalist
    sam = generalist_from_config(gcfg)
    assert gcfg.point_encoding == "sam" and not uses_reference_point_encoding(sam.prompt_encoder)
    ref = generalist_from_config(
        C.build_config("quick", {"generalist.point_encoding": "reference"}).generalist
    )
    assert uses_reference_point_encoding(ref.prompt_encoder)
    ref.prompt_encoder.pe_layer.load_state_dict(sam.prompt_encoder.pe_layer.state_dict())
    cos = torch.nn.functional.cosine_similarity
    near = [(100.5, 100.5), (101.5, 100.5)]  # neighbouring pixels
    a, b = _codes(sam, near)
    assert cos(a, b, dim=0) > 0.99, "SAM's encoding: neighbours get nearly the same code"
    a, b = _codes(ref, near)
    assert cos(a, b, dim=0) < 0.5, (
        "the reference's: unnormalised coordinates make the code a hash of the position"
    )
    state = set(ref.state_dict())
    assert state == set(sam.state_dict()), "no key changes: checkpoints load either way"


def test_the_options_added_later_keep_every_recorded_runs_hash():
    base = C.build_config("lab", method="sc-sam")
    before = C.config_hash(base)
    for key, value in (("generalist.point_encoding", "reference"), ("cotrain.dice_denominator", "squared")):
        changed = C.build_config("lab", {key: value}, method="sc-sam")
        assert C.config_hash(changed) != before
    assert before == C.config_hash(
        C.build_config("lab", {"generalist.point_encoding": "sam"}, method="sc-sam")
    )


def test_the_squared_dice_is_the_references_denominator():
    logits = torch.tensor([[[[2.0, -1.0]], [[0.0, 1.0]]]])  # (1, 2, 1, 2)
    target = torch.tensor([[[1, 0]]])
    p = logits.softmax(1)
    onehot = torch.stack([1 - target, target], 1).float()
    inter = (p * onehot).sum((0, 2, 3))
    squared = 1 - (2 * inter) / ((p**2).sum((0, 2, 3)) + (onehot**2).sum((0, 2, 3)))
    ce = torch.nn.functional.cross_entropy(logits, target)
    expected = ce + squared.mean()
    assert ce_dice_loss(logits, target, 1.0, squared=True) == pytest.approx(expected.item(), abs=1e-4)
    assert ce_dice_loss(logits, target, 1.0) != pytest.approx(expected.item(), abs=1e-4)


@pytest.mark.slow
def test_two_pass_runs_log_the_background_pass_dice(tmp_path):
    from scsam_lite.runs import RunDir
    from scsam_lite.trainer import train

    cfg = C.build_config(
        "quick",
        {"train.iterations": 10, "train.val_every": 10, "cotrain.sam_output": "two-pass"},
        method="sc-sam",
    )
    train(cfg, tmp_path / "run", verbose=False)
    (row,) = RunDir(tmp_path / "run").history()
    assert 0.0 <= row["background_dice"] <= 1.0
    method, _ = _method()
    assert method.background_dice(load_dataset("synthetic-polyp"), np.arange(4)) is None  # one pass: nothing
