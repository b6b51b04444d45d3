"""The 'try it' widget of notebook 05: sliders set a short co-training run, the button trains it (driven here)."""

from __future__ import annotations

import pytest

from scsam_lite import config as C
from scsam_lite.reference import get_reference
from scsam_lite.widgets import TryItTrainer
from scsam_lite.widgets.try_it import try_config


def _base():
    return C.build_config("quick", {"cotrain.probe_images": 0}, method="sc-sam")


@pytest.mark.slow
def test_the_sliders_set_the_run_and_the_button_trains_it(tmp_path):
    committed = {"lab sc-sam s0": get_reference("lab/sc-sam-s0").path}
    w = TryItTrainer(_base(), tmp_path, committed, steps=10)
    assert all(getattr(c, "continuous_update", False) is False for c in w.controls.values())
    w.controls["rampup"].value = 0.0
    w.controls["n_pos"].value = 2
    w.controls["n_neg"].value = 1
    cfg = try_config(_base(), **w.values)
    assert (cfg.cotrain.rampup_length, cfg.prompts.n_pos, cfg.prompts.n_neg, cfg.train.iterations) == (
        0,
        2,
        1,
        10,
    )
    lines_before = len(w.figure.axes[0].lines)
    w.button.click()
    assert len(w.trained) == 1 and (w.trained[0][1] / "metrics.json").is_file()
    assert len(w.figure.axes[0].lines) == lines_before + 1, "the live run's curve is drawn"
    assert "trained in" in w.figure._suptitle.get_text()
    w.button.click()  # the same settings again: reused, not trained twice
    assert w.trained[1][1] == w.trained[0][1] and w.trained[1][2] < w.trained[0][2] + 5


def test_settings_that_cannot_train_say_why_instead_of_raising(tmp_path):
    w = TryItTrainer(_base(), tmp_path, steps=10)
    w.controls["n_pos"].value = 0
    w.controls["n_neg"].value = 0  # points prompts with no point
    assert w.train_now() is None and not w.trained
    assert "not trained" in w.figure._suptitle.get_text()
    assert not any(tmp_path.iterdir())


def test_the_ramp_up_panel_follows_the_slider(tmp_path):
    w = TryItTrainer(_base(), tmp_path, steps=40)
    w.controls["rampup"].value = 1.0
    late = w.figure.axes[1].lines[0].get_ydata()
    w.controls["rampup"].value = 0.0
    off = w.figure.axes[1].lines[0].get_ydata()
    assert late[0] < 0.01 and late[-1] == 1.0 and all(v == 1.0 for v in off)
