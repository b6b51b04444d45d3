"""Semi-supervised baselines, backbones and the ramp-up."""

import math

import pytest
import torch

from scsam_lite import config as C
from scsam_lite.losses import entropy_loss
from scsam_lite.rampup import sigmoid_rampup
from scsam_lite.specialist import SPECIALISTS, build_specialist
from scsam_lite.trainer import train


def test_sigmoid_rampup_values():
    assert sigmoid_rampup(0, 10_000) == pytest.approx(math.exp(-5))
    assert sigmoid_rampup(5_000, 10_000) == pytest.approx(math.exp(-1.25))
    assert sigmoid_rampup(10_000, 10_000) == 1.0 == sigmoid_rampup(50_000, 10_000)
    assert sigmoid_rampup(0, 10_000, scale=1) == pytest.approx(math.exp(-1))
    assert sigmoid_rampup(3, 0) == 1.0
    assert sigmoid_rampup(0, 1) == pytest.approx(math.exp(-5))  # a one-step ramp-up still starts near 0


def test_entropy_loss_bounds():
    confident = torch.tensor([[[[20.0]], [[-20.0]]]])
    unsure = torch.zeros(1, 2, 1, 1)
    assert entropy_loss(confident).item() < 1e-6
    assert entropy_loss(unsure).item() == pytest.approx(1.0)


@pytest.mark.parametrize("name", SPECIALISTS.names())
def test_every_backbone_maps_images_to_logits(name):
    net = build_specialist(name, in_channels=1, num_classes=2).eval()
    with torch.no_grad():
        assert net(torch.rand(1, 1, 64, 64)).shape == (1, 2, 64, 64)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["mean-teacher", "entropy-min"])
def test_semi_supervised_methods_train_and_record_their_terms(method, tmp_path):
    cfg = C.build_config(
        "quick",
        {"train.method": method, "train.iterations": "12", "train.val_every": "6", "data.labeled": "0.1"},
    )
    result = train(cfg, tmp_path / method, verbose=False)
    history = (tmp_path / method / "history.jsonl").read_text()
    assert ("loss_cons" if method == "mean-teacher" else "loss_entropy") in history
    assert 0 <= result.metrics["unet"]["dice"] <= 1


@pytest.mark.slow
def test_mean_teacher_teacher_follows_the_student(tmp_path):
    cfg = C.build_config(
        "quick", {"train.method": "mean-teacher", "train.iterations": "4", "train.val_every": "4"}
    )
    result = train(cfg, tmp_path / "mt", verbose=False)
    student, teacher = result.method.models["unet"], result.method.models["teacher"]
    assert not any(p.requires_grad for p in teacher.parameters())
    s = torch.cat([p.flatten() for p in student.parameters()])
    t = torch.cat([p.flatten() for p in teacher.parameters()])
    assert not torch.equal(s, t) and torch.allclose(s, t, atol=0.05)
