"""The two teaching widgets, driven through their controls: the loss explorer's numbers are the trainer's losses and
move the way the notebook says; the PEFT counter agrees with trainable_table."""

import dataclasses

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

from scsam_lite import config as C  # noqa: E402
from scsam_lite.generalist import generalist_from_config  # noqa: E402
from scsam_lite.generalist.peft import trainable_table  # noqa: E402
from scsam_lite.widgets import LossExplorer, PEFTCountExplorer  # noqa: E402
from scsam_lite.widgets.teaching import adapter_weights, lora_weights, toy_losses, toy_prediction  # noqa: E402

DICE, SOFT, CE = "Dice (metric, threshold 0.5)", "soft Dice loss", "cross-entropy"


def test_a_perfect_confident_prediction_scores_dice_one_and_small_losses():
    gt, prob = toy_prediction(shift=0, radius=12, confidence=40)
    out = toy_losses(gt, prob)
    assert out[DICE] > 0.97 and out[SOFT] < 0.1 and out[CE] < 0.1


def test_the_controls_move_metric_and_losses_as_the_notebook_says():
    w = LossExplorer()
    w.controls["confidence"].value = 40.0
    sharp = dict(w.shown)
    w.controls["shift"].value = 12.0  # half a radius off: overlap drops, so Dice falls and both losses rise
    shifted = dict(w.shown)
    assert shifted[DICE] < sharp[DICE] - 0.2 and shifted[SOFT] > sharp[SOFT] and shifted[CE] > sharp[CE]
    w.controls["shift"].value = 0.0
    w.controls[
        "confidence"
    ].value = 1.0  # unsure everywhere: the thresholded mask barely changes, the losses do
    unsure = dict(w.shown)
    assert abs(unsure[DICE] - sharp[DICE]) < 0.1 and unsure[CE] > 3 * sharp[CE] and unsure[SOFT] > sharp[SOFT]
    assert w.renders >= 4


def test_toy_losses_are_the_trainers_losses():
    gt, prob = toy_prediction(shift=5, radius=10, confidence=6)
    out = toy_losses(gt, prob)
    assert out["0.5 x (CE + Dice): the loss"] == pytest.approx(0.5 * (out[CE] + out[SOFT]), rel=1e-5)
    p = np.clip(prob, 1e-6, 1 - 1e-6)
    ce = -np.mean(np.where(gt, np.log(p), np.log(1 - p)))
    assert out[CE] == pytest.approx(ce, rel=1e-4)


@pytest.mark.parametrize("generalist", ["tiny", "lite_medsam"])
def test_the_peft_counter_agrees_with_trainable_table(generalist):
    gcfg = dataclasses.replace(C.build_config("quick").generalist, name=generalist, adapter_blocks="all")
    tables = {}
    for peft in ("adapter", "lora"):
        rows = trainable_table(generalist_from_config(dataclasses.replace(gcfg, peft=peft)))
        tables[peft] = {r.part: r.trainable for r in rows}
    w = PEFTCountExplorer(generalist_from_config(dataclasses.replace(gcfg, peft="none")))
    w.controls["ratio"].value, w.controls["rank"].value = gcfg.adapter_ratio, gcfg.lora_rank
    assert w.shown["adapters"] == tables["adapter"]["image_encoder (adapters)"]
    assert w.shown["LoRA"] == tables["lora"]["image_encoder (lora)"]
    before = w.shown["LoRA"]
    w.controls["rank"].value = 2 * gcfg.lora_rank
    assert w.shown["LoRA"] == 2 * before  # LoRA grows linearly with the rank
    w.controls["blocks"].value = 1
    assert w.shown["adapters"] == adapter_weights(w.dims[-1:], gcfg.adapter_ratio)


def test_count_formulas_by_hand():
    assert adapter_weights([768], 0.25) == 591_744  # SAM ViT-B, one block (notebook 03)
    assert lora_weights([(768, 2304)], 4) == 12_288
