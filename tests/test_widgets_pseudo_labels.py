"""The pseudo-label rule and its explorer, driven headless with a fake method (no training)."""

from __future__ import annotations

import types

import matplotlib
import numpy as np
import pytest
import torch

matplotlib.use("Agg")

from scsam_lite import viz  # noqa: E402
from scsam_lite.data.base import SegData  # noqa: E402
from scsam_lite.errors import ConfigError  # noqa: E402
from scsam_lite.widgets import UNetPseudoLabelExplorer, pseudo_label  # noqa: E402
from scsam_lite.widgets.pseudo_labels import dice  # noqa: E402


@pytest.fixture(autouse=True)
def headless(monkeypatch):
    monkeypatch.setenv("SCSAM_WIDGETS", "static")


def tiny_data(n: int = 6, res: int = 16) -> SegData:
    images = np.zeros((n, res, res, 3), np.uint8)
    masks = np.zeros((n, res, res), np.uint8)
    for i in range(n):
        images[i] = 30 + 30 * i
        masks[i, 2 + i : 8 + i, 3:9] = 1
    splits = {"train": np.arange(0, 4), "val": np.arange(4, 5), "test": np.arange(5, 6)}
    return SegData.from_arrays(images, masks, splits, name="tiny", ids=[f"img{i:02d}" for i in range(n)])


class FakeMethod:
    """Predicts a smooth probability ramp across columns, shifted by the image brightness; counts its calls."""

    def __init__(self) -> None:
        self.calls = 0
        self.modes: list[bool] = []
        self.rt = types.SimpleNamespace(device=torch.device("cpu"))

    def train(self, mode: bool = True) -> None:
        self.modes.append(mode)

    def predict(self, images: torch.Tensor, **_) -> dict[str, torch.Tensor]:
        self.calls += 1
        b, _, h, w = images.shape
        ramp = torch.linspace(0.02, 0.98, w).expand(b, h, w)
        shift = images.mean(dim=(1, 2, 3)).view(b, 1, 1) - 0.5
        return {"unet": (ramp + 0.3 * shift).clamp(0, 1)}


def test_pseudo_label_rule():
    prob = np.array([[0.05, 0.45, 0.5, 0.55, 0.97]])
    label, confident = pseudo_label(prob, 0.9)
    assert label.tolist() == [[0, 0, 0, 1, 1]]
    assert confident.tolist() == [[True, False, False, False, True]]
    _, all_kept = pseudo_label(prob, 0.5)
    assert all_kept.all()
    label_t, _ = pseudo_label(torch.tensor(prob), 0.7)
    assert np.array_equal(label_t, label)


@pytest.mark.parametrize("bad", [0.3, 1.2])
def test_pseudo_label_rejects_bad_threshold(bad):
    with pytest.raises(ConfigError) as err:
        pseudo_label(np.zeros((2, 2)), bad)
    assert err.value.fix


def test_dice_edge_cases():
    z = np.zeros((3, 3), bool)
    assert dice(z, z) == 1.0
    o = np.ones((3, 3), bool)
    assert dice(o, z) == 0.0 and dice(o, o) == 1.0


def test_predictions_are_computed_once_and_cached():
    method = FakeMethod()
    ex = UNetPseudoLabelExplorer(method, tiny_data(), [0, 1, 2, 3])
    assert method.calls == 1 and ex.probs.shape == (4, 16, 16)
    assert method.modes == [False, True], "predict in eval mode, then restore training mode"
    ex.controls["item"].value = 2
    ex.controls["threshold"].value = 0.6
    ex.controls["item"].value = 3
    assert method.calls == 1 and ex.renders >= 4


def test_both_sliders_change_the_figure():
    ex = UNetPseudoLabelExplorer(FakeMethod(), tiny_data(), [0, 1, 2, 3])
    assert ex.controls["item"].max == 3 and not ex.controls["threshold"].continuous_update
    first = viz.figure_pixels(ex.figure)
    assert "img00" in ex.figure.axes[0].get_title()

    ex.controls["item"].value = 2
    assert "img02" in ex.figure.axes[0].get_title()
    second = viz.figure_pixels(ex.figure)
    assert not np.array_equal(first, second)

    grey_before = ex.figure.axes[2].get_title()
    ex.controls["threshold"].value = 0.99
    assert ex.figure.axes[2].get_title() != grey_before
    assert not np.array_equal(second, viz.figure_pixels(ex.figure))


def test_error_panel_and_dice_in_title():
    data = tiny_data()
    ex = UNetPseudoLabelExplorer(FakeMethod(), data, [1])
    title = ex.figure.axes[3].get_title()
    label, _ = pseudo_label(ex.probs[0], 0.5)
    assert f"Dice {dice(label, data.masks[1]):.3f}" in title
    no_gt = UNetPseudoLabelExplorer(FakeMethod(), data, [1], gt_available=False)
    assert "Dice" not in " ".join(ax.get_title() for ax in no_gt.figure.axes)


def test_empty_indices_is_a_clear_error():
    with pytest.raises(ConfigError):
        UNetPseudoLabelExplorer(FakeMethod(), tiny_data(), [])


def test_show_leaves_a_static_picture(monkeypatch):
    shown = []
    monkeypatch.setattr("scsam_lite.widgets.explorer.display", lambda obj: shown.append(obj))
    UNetPseudoLabelExplorer(FakeMethod(), tiny_data(), [0, 1]).show()
    assert any(type(o).__name__ == "Image" for o in shown)
