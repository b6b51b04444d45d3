"""SC-SAM's explorers: probe replay on a real tiny run and on hand-made probes, and the ramp-up curve."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

from matplotlib.patches import Rectangle  # noqa: E402

from scsam_lite import viz  # noqa: E402
from scsam_lite.config import build_config  # noqa: E402
from scsam_lite.data.base import SegData  # noqa: E402
from scsam_lite.errors import ConfigError, DataError, ScsamError  # noqa: E402
from scsam_lite.rampup import sigmoid_rampup  # noqa: E402
from scsam_lite.runs import RunDir, save_probe, write_json  # noqa: E402
from scsam_lite.trainer import train  # noqa: E402
from scsam_lite.widgets import PseudoLabelExplorer, RampUpExplorer, probe_timeline  # noqa: E402
from scsam_lite.widgets.cotraining import (  # noqa: E402
    PAPER_LENGTH,
    PAPER_SCALE,
    half_weight_step,
    probe_frame,
    read_probes,
)

RES = 16


@pytest.fixture(autouse=True)
def headless(monkeypatch):
    monkeypatch.setenv("SCSAM_WIDGETS", "static")


@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    """A real sc-sam run of 20 steps: probes at steps 0, 10 and 20."""
    cfg = build_config("quick", {"train.iterations": 20, "train.val_every": 10}, method="sc-sam")
    return train(cfg, tmp_path_factory.mktemp("runs") / "scq", verbose=False)


def tiny_data(n: int = 4) -> SegData:
    images = np.zeros((n, RES, RES, 3), np.uint8)
    masks = np.zeros((n, RES, RES), np.uint8)
    for i in range(n):
        images[i] = 40 + 40 * i
        masks[i, 4:12, 4:12] = 1  # an 8x8 square
    return SegData.from_arrays(images, masks, name="tiny", ids=[f"img{i:02d}" for i in range(n)])


def fake_run(path, method: str = "sc-sam", probes: bool = True, **overrides):
    """A run folder with a config and two hand-made probe snapshots of images 1 and 2 (no training)."""
    cfg = build_config("quick", {"data.resolution": RES, **overrides}, method=method)
    write_json(path / "config.json", {"config": cfg.to_dict()})
    if not probes:
        return path
    unet = np.zeros((2, RES, RES), np.float16)
    unet[:, :, :6] = 0.9  # columns 0-5
    sam = np.zeros((2, RES, RES), np.float16)
    sam[:, :7, :] = 0.8  # rows 0-6
    points = np.array([[[5, 5], [6, 6], [0, 0], [14, 14], [13, 2], [1, 15]]] * 2, np.float32)
    labels = np.array([[1, 1, -1, 0, 0, 0]] * 2)
    for step in (0, 50):
        snap = {"index": np.array([1, 2]), "step": np.asarray(step), "w": np.float32(0.25 + step / 100)}
        snap.update(unet_prob=unet, sam_prob=sam, points=points, point_labels=labels)
        if cfg.prompts.kind != "points":
            snap["boxes"] = np.array([[0, 0, 7, 15]] * 2, np.float32)
        save_probe(path / "probes" / f"step_{step:06d}.npz", snap)
    return path


@pytest.mark.slow
def test_replays_a_real_run(real_run):
    ex = PseudoLabelExplorer(real_run.run_dir, real_run.data)
    cfg = ex.cfg.cotrain
    assert ex.steps == [0, 10, 20] and ex.controls["step"].value == 20
    assert all(not w.continuous_update for w in ex.controls.values() if hasattr(w, "continuous_update"))
    probes = read_probes(real_run.run_dir)
    first_idx = int(probes[0]["index"][0])
    assert real_run.data.ids[first_idx] in ex.figure.axes[0].get_title()
    assert first_idx in real_run.label_split.unlabeled

    before = viz.figure_pixels(ex.figure)
    ex.controls["step"].value = 10
    w = sigmoid_rampup(10, cfg.rampup_length, cfg.rampup_scale)
    assert ex.shown["step"] == 10 and ex.shown["w"] == pytest.approx(w, rel=1e-5)
    assert f"w(t) = {w:.3f}" in ex.figure.get_suptitle()
    assert not np.array_equal(before, viz.figure_pixels(ex.figure))

    ex.controls["item"].value = 2
    idx = int(probes[1]["index"][2])
    assert real_run.data.ids[idx] in ex.figure.axes[0].get_title()
    unet = probes[1]["unet_prob"][2] > 0.5
    sam = probes[1]["sam_prob"][2] > 0.5
    assert ex.shown["disagreement"] == pytest.approx((unet != sam).mean())
    gt = real_run.data.masks[idx].astype(bool)
    expected = 2 * (unet & gt).sum() / max(unet.sum() + gt.sum(), 1) if unet.any() or gt.any() else 1.0
    assert ex.shown["dice_unet"] == pytest.approx(expected)


@pytest.mark.slow
def test_loads_the_runs_own_data_when_none_is_given(real_run):
    ex = PseudoLabelExplorer(real_run.run_dir, step=7)
    assert ex.data.ids == real_run.data.ids
    assert ex.controls["step"].value == 10, "the nearest saved step"


def test_numbers_and_prompts_on_hand_made_probes(tmp_path):
    ex = PseudoLabelExplorer(fake_run(tmp_path), tiny_data(), step=0)
    # unet = columns 0-5 (96 px), sam = rows 0-6 (112 px), both = 42 px: 96 + 112 - 2 * 42 = 124 differ.
    assert ex.shown["disagreement"] == pytest.approx(124 / 256)
    # truth = the 8x8 square at rows/cols 4-11: unet covers 8 x 2 = 16 of it, sam 3 x 8 = 24.
    assert ex.shown["dice_unet"] == pytest.approx(2 * 16 / (96 + 64))
    assert ex.shown["dice_sam"] == pytest.approx(2 * 24 / (112 + 64))
    titles = " ".join(ax.get_title() for ax in ex.figure.axes)
    assert "disagree on 48.4%" in titles and "Dice U-Net 0.200 · SAM 0.273" in titles
    assert "w(t) = 0.250" in ex.figure.get_suptitle()
    pseudo_label_panel = ex.figure.axes[2]
    drawn = [len(c.get_offsets()) for c in pseudo_label_panel.collections]
    assert drawn == [2, 3], "2 positive and 3 negative points; the padding slot is not drawn"

    ex.controls["truth"].value = False
    titles = " ".join(ax.get_title() for ax in ex.figure.axes)
    assert "Dice" not in titles and "dice_unet" not in ex.shown
    ex.controls["step"].value = 50
    assert "w(t) = 0.750" in ex.figure.get_suptitle()
    hidden = PseudoLabelExplorer(tmp_path, tiny_data(), truth=False)
    assert not hidden.controls["truth"].value and "dice_unet" not in hidden.shown


def test_box_prompts_are_drawn(tmp_path):
    ex = PseudoLabelExplorer(fake_run(tmp_path, **{"prompts.kind": "points+box"}), tiny_data())
    assert any(isinstance(p, Rectangle) for p in ex.figure.axes[2].patches)
    assert probe_frame(ex.probes[0], 1).box.tolist() == [0, 0, 7, 15]


def test_a_run_without_probes_names_the_fix(tmp_path):
    for i, (method, extra) in enumerate([("unet", {}), ("sc-sam", {"cotrain.probe_images": 0})]):
        run = fake_run(tmp_path / str(i), method, probes=False, **extra)
        with pytest.raises(ConfigError) as err:
            PseudoLabelExplorer(run, tiny_data())
        assert method in str(err.value)
        assert "--method sc-sam" in err.value.fix and "cotrain.probe_images" in err.value.fix
    with pytest.raises(ScsamError, match="not a run directory"):
        PseudoLabelExplorer(tmp_path / "nothing-here", tiny_data())


def test_other_data_or_a_broken_probe_is_one_clear_error(tmp_path):
    run = fake_run(tmp_path)
    with pytest.raises(ConfigError, match="not what the run trained on"):
        PseudoLabelExplorer(run, tiny_data(n=2))  # the probes show image 2
    (run / "probes" / "step_000050.npz").write_bytes(b"not a zip file")
    with pytest.raises(DataError) as err:
        PseudoLabelExplorer(run, tiny_data())
    assert err.value.__cause__ is None and err.value.__suppress_context__


@pytest.mark.slow
def test_timeline_has_one_column_per_saved_step(real_run, tmp_path):
    probes = read_probes(real_run.run_dir)
    fig = probe_timeline(probes, real_run.data, item=1)
    assert len(fig.axes) == 3 * 3 and "step 10" in fig.axes[1].get_title()
    few = probe_timeline(probes, real_run.data, max_columns=2)
    assert [ax.get_title().split(",")[0] for ax in few.axes[:2]] == ["step 0", "step 20"]
    with pytest.raises(ConfigError):
        probe_timeline(probes, real_run.data, max_columns=0)
    viz.close(fig)
    viz.close(few)


def test_rampup_curve_follows_the_sliders():
    ex = RampUpExplorer()
    assert (ex.controls["length"].value, ex.controls["scale"].value) == (PAPER_LENGTH, PAPER_SCALE)
    curve, reference = ex.figure.axes[0].lines[:2]
    t, w = curve.get_xdata(), curve.get_ydata()
    assert w[0] == pytest.approx(sigmoid_rampup(0, PAPER_LENGTH, PAPER_SCALE))
    assert w[len(t) // 7] == pytest.approx(sigmoid_rampup(t[len(t) // 7], PAPER_LENGTH, PAPER_SCALE))
    before = viz.figure_pixels(ex.figure)

    ex.controls["scale"].value = 1.0  # a summary's formula
    assert "w(0) = 0.368" in ex.figure.axes[0].get_title()
    assert ex.figure.axes[0].lines[0].get_ydata()[0] == pytest.approx(np.exp(-1.0))
    assert ex.shown["w0"] == pytest.approx(np.exp(-1.0)) and ex.shown["half_step"] == pytest.approx(
        PAPER_LENGTH * (1 - np.sqrt(np.log(2)))
    )
    ex.controls["length"].value = 2000
    assert sigmoid_rampup(ex.shown["half_step"], 2000, 1.0) == pytest.approx(0.5)
    new_reference = ex.figure.axes[0].lines[1]
    assert np.array_equal(new_reference.get_ydata(), reference.get_ydata()), "the reference stays put"
    assert not np.array_equal(before, viz.figure_pixels(ex.figure))
    ex.controls["length"].value = 0
    assert "no ramp-up" in ex.figure.axes[0].get_title() and ex.shown["w0"] == 1.0


def test_half_weight_step_edge_cases():
    assert half_weight_step(0, 5.0) == 0.0 and half_weight_step(100, 0.5) == 0.0  # w(0) is already >= 0.5
    assert sigmoid_rampup(half_weight_step(300, 5.0), 300, 5.0) == pytest.approx(0.5)


@pytest.mark.slow
def test_rampup_marks_a_runs_position(real_run, tmp_path):
    ex = RampUpExplorer(real_run.run_dir)
    cfg = real_run.method.cfg.cotrain
    assert (ex.controls["length"].value, ex.controls["scale"].value) == (cfg.rampup_length, cfg.rampup_scale)
    assert ex.shown["run_step"] == 20, "the last step of the run's history"
    w = sigmoid_rampup(20, cfg.rampup_length, cfg.rampup_scale)
    marker = ex.figure.axes[0].lines[-1]
    assert marker.get_xdata()[0] == 20 and marker.get_ydata()[0] == pytest.approx(w)
    n_lines = len(ex.figure.axes[0].lines)
    ex.controls["length"].value = 5000  # the run's own curve now appears beside the slider's
    assert len(ex.figure.axes[0].lines) == n_lines + 1 and ex.shown["run_w"] == pytest.approx(w)

    with pytest.raises(ConfigError, match="no ramp-up"):
        RampUpExplorer(fake_run(tmp_path / "u", "unet", probes=False))
    mt = RampUpExplorer(fake_run(tmp_path / "mt", "mean-teacher", probes=False))
    assert mt.controls["length"].value == build_config("quick").ssl.consistency_rampup
    assert mt.shown["run_step"] == 0, "no history yet"
    with pytest.raises(ConfigError):
        RampUpExplorer(scale=0.0)


@pytest.mark.slow
def test_show_leaves_static_pictures(real_run, monkeypatch):
    shown = []
    monkeypatch.setattr("scsam_lite.widgets.explorer.display", lambda obj: shown.append(obj))
    PseudoLabelExplorer(real_run.run_dir, real_run.data).show()
    RampUpExplorer(real_run.run_dir).show()
    assert sum(type(o).__name__ == "Image" for o in shown) == 2


@pytest.mark.slow
def test_plot_run_draws_every_model_and_the_asked_terms(real_run):
    history = RunDir(real_run.run_dir).history()
    fig = viz.plot_run(real_run.run_dir, terms=("w_sam_pseudo", "not_logged"))
    dice_ax, terms_ax = fig.axes
    assert [line.get_label() for line in dice_ax.lines] == ["unet", "sam", "agreement"]
    assert list(dice_ax.lines[1].get_ydata()) == [r["val_dice"]["sam"] for r in history]
    assert [line.get_label() for line in terms_ax.lines] == ["w_sam_pseudo"], "unlogged terms are skipped"
    assert list(terms_ax.lines[0].get_xdata()) == [10, 20]
    viz.close(fig)
    assert len(viz.plot_run(real_run.run_dir).axes) == 1
