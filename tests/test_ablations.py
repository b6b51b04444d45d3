"""Reading an ablation grid: each variant against the default, paired by seed, decided on validation."""

from __future__ import annotations

import matplotlib
import pandas as pd
import pytest

matplotlib.use("Agg")

from scsam_lite import ablations, viz  # noqa: E402
from scsam_lite.controls import REGIMES, regime_controls  # noqa: E402
from scsam_lite.reference import best_validation, get_reference  # noqa: E402


def table(rows: dict[str, list[tuple[float, float, float]]], model: str = "sam") -> pd.DataFrame:
    """A sweep table of one grid: ``variant -> [(val_best, val_last, test dice) per seed]``."""
    out = []
    for order, (variant, seeds) in enumerate(rows.items()):
        for seed, (best, last, dice) in enumerate(seeds):
            out.append(
                {"grid": "prompts", "variant": variant, "order": order, "seed": seed, "model": model,
                 "dice": dice, "iou": dice / 2, "hd95": 1.0, "asd": 1.0, "val_best": best, "val_last": last}
            )  # fmt: skip
    return pd.DataFrame(out)


BASE = [(0.50, 0.45, 0.40), (0.60, 0.55, 0.50), (0.40, 0.35, 0.30)]


def test_ahead_behind_and_noise_follow_the_rule():
    t = table(
        {
            "5+5": BASE,
            "1+0": [
                (0.55, 0.50, 0.10),
                (0.58, 0.60, 0.10),
                (0.45, 0.40, 0.10),
            ],  # 2 of 3, mean +0.027, last +0.05
            "3+3": [
                (0.45, 0.40, 0.90),
                (0.50, 0.50, 0.90),
                (0.41, 0.30, 0.90),
            ],  # 2 lower, mean -0.047, last -0.05
            "10+10": [(0.60, 0.30, 0.40), (0.61, 0.30, 0.50), (0.41, 0.30, 0.30)],  # best ahead, last behind
        }
    )
    found = {r.variant: r for r in ablations.compare(t, "sam", "5+5")}
    assert list(found) == ["1+0", "3+3", "10+10"]
    assert found["1+0"].verdict == "ahead" and (found["1+0"].won, found["1+0"].lost) == (2, 1)
    assert found["1+0"].mean_diff == pytest.approx((0.05 - 0.02 + 0.05) / 3)
    # the test column is reported, never used: 1+0 is far behind on test and still "ahead"
    assert found["1+0"].test_diff == pytest.approx(-0.3)
    assert found["3+3"].verdict == "behind" and found["3+3"].test_diff == pytest.approx(0.5)
    assert found["10+10"].verdict == "noise"
    text = ablations.reading(t, "sam", "5+5")
    assert "1+0: ahead; best validation ahead on 2 of 3 seeds, mean +0.027" in text and "10+10: noise" in text


def test_pairs_by_seed_and_stays_open_below_three_seeds():
    t = table({"5+5": BASE, "1+0": [(0.9, 0.9, 0.9), (0.9, 0.9, 0.9)]})
    (r,) = ablations.compare(t, "sam", "5+5")
    assert r.seeds == 2 and r.verdict == "open (2 of 3 seeds)"
    assert r.mean_diff == pytest.approx(((0.9 - 0.5) + (0.9 - 0.6)) / 2)  # seeds 0 and 1 only, paired
    assert ablations.compare(t, "sam", "7+7") == []  # no default: nothing to read against
    assert "nothing to compare" in ablations.reading(t.iloc[0:0], "sam", "5+5")
    assert ablations.compare(t, "unet", "5+5") == []  # another model's rows


def test_the_lab_table_reads_the_committed_records():
    t = ablations.lab_table("prompt-type")
    points = t[(t["variant"] == "points") & (t["model"] == "sam")].set_index("seed")
    for seed in (0, 1, 2):  # today's default is lab/sc-sam: same config hash
        ref = get_reference(f"lab/sc-sam-s{seed}")
        assert points.loc[seed, "dice"] == pytest.approx(ref.metrics["sam"]["dice"])
        assert points.loc[seed, "val_best"] == pytest.approx(best_validation(ref.history(), "sam")[1])
    box = t[(t["variant"] == "box") & (t["model"] == "unet")].set_index("seed")
    ref = get_reference("regime/box-s0")  # the regime study's box run is this grid's box variant, by hash
    assert box.loc[0, "dice"] == pytest.approx(ref.metrics["unet"]["dice"])
    assert set(t["variant"]) <= set(ablations.LAB_VARIANTS["prompt-type"]) | {"points"}


def test_lab_defaults_and_baseline_lines():
    assert ablations.lab_defaults() == {"rampup": "T = 1/2", "prompts": "5+5", "prompt-type": "points",
                                        "backbone": "unet"}  # fmt: skip
    lines = ablations.baseline_lines()
    controls = [c for c in regime_controls(REGIMES["lab"]) if c.side == "unet" and c.baseline == "unet"]
    assert lines["unet"]["unet alone"] == pytest.approx(sum(c.test.mean_b for c in controls) / len(controls))
    assert set(lines["sam"]) == {"PEFT-SAM prompted by unet", "PEFT-SAM prompted by mean-teacher"}


def test_the_plot_draws_the_fair_controls_as_lines():
    t = table({"5+5": BASE, "1+0": BASE})
    fig = viz.plot_ablation(t, "dice", "sam", lines={"PEFT-SAM prompted by unet": 0.52})
    ax = fig.axes[0]
    flat = [ln for ln in ax.lines if len(set(ln.get_ydata())) == 1 and ln.get_linestyle() == "--"]
    assert [ln.get_ydata()[0] for ln in flat] == [0.52]
    assert "PEFT-SAM prompted by unet: 0.520" in [t.get_text() for t in ax.get_legend().get_texts()]
    assert ax.get_title() == "sam on prompts: 3 seeds per variant"
    viz.close(fig)
    fig = viz.plot_ablation(t[(t["variant"] == "5+5") | (t["seed"] < 2)], "dice", "sam")
    assert fig.axes[0].get_title() == "sam on prompts: 2-3 seeds per variant"  # a grid still filling up
    viz.close(fig)


def test_the_paper_check_says_what_reproduces():
    def grid(off_best: float) -> pd.DataFrame:
        t = table({"T = 1/2": BASE, "off": [(b + off_best, last + off_best, d) for b, last, d in BASE]})
        return t.assign(grid="rampup")

    assert "'off' behind 'T = 1/2'; here (sam) behind: reproduces" in ablations.paper_check(
        grid(-0.1), "T = 1/2"
    )
    assert "here (sam) ahead: does not reproduce" in ablations.paper_check(grid(+0.1), "T = 1/2")
    assert "undecided here" in ablations.paper_check(grid(-0.1).query("seed < 2"), "T = 1/2")
    assert "no record here" in ablations.paper_check(grid(0).query("variant != 'off'"), "T = 1/2")
    assert "nothing to reproduce" in ablations.paper_check(table({"5+5": BASE}), "5+5")
    narrow = ablations.paper_check(grid(-0.01), "T = 1/2")
    assert "here (sam) behind, narrow (under 0.02: seeds 3-4 to confirm): reproduces, narrowly" in narrow


def test_a_verdict_by_under_the_margin_is_marked_narrow():
    """The rule's direction stands, but a mean best-check difference under 0.02 is flagged for seeds 3-4."""
    shifted = {
        "1+0": [(b + 0.01, last + 0.01, d) for b, last, d in BASE],  # ahead on every seed, by 0.01
        "3+3": [(b - 0.05, last - 0.05, d) for b, last, d in BASE],  # behind by 0.05: not narrow
        "10+10": [(b + 0.01, last - 0.01, d) for b, last, d in BASE],  # noise is never narrow
    }
    t = table({"5+5": BASE, **shifted})
    found = {r.variant: r for r in ablations.compare(t, "sam", "5+5")}
    assert found["1+0"].verdict == "ahead" and found["1+0"].narrow
    assert found["1+0"].verdict_note == "ahead, narrow (under 0.02: seeds 3-4 to confirm)"
    assert (
        found["3+3"].verdict == "behind" and not found["3+3"].narrow and found["3+3"].verdict_note == "behind"
    )
    assert found["10+10"].verdict == "noise" and not found["10+10"].narrow
    assert "1+0: ahead, narrow" in ablations.reading(t, "sam", "5+5")
    frame = ablations.readings_frame({"prompts": t}, {"prompts": "5+5"})
    assert set(frame.loc[frame["variant"] == "1+0", "verdict"]) == {
        "ahead, narrow (under 0.02: seeds 3-4 to confirm)"
    }


def test_notebook_05_shows_the_committed_grids_on_lab_and_trains_little_on_quick():
    assert ablations.course_grids("quick") == ["rampup"]
    assert ablations.course_grids("lab") == [*ablations.LAB_VARIANTS, "fidelity"]
    assert "peft" in ablations.course_grids("classroom")


def test_lab_records_name_the_committed_runs_of_one_seed():
    found = ablations.lab_records("prompt-type", 1)
    assert found == {
        "prompt-type points": get_reference("lab/sc-sam-s1").path,
        "prompt-type box": get_reference("regime/box-s1").path,
    }
